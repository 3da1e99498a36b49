-- The months the CDR encounters cover (first admission/visit month to the last day seen), with their year and
-- day counts: the spine of every monthly and yearly indicator. data_end is the last day with encounter data
-- (stays without discharge occupy a bed up to and including it).
with bounds as (
    select
        cast(min(cast(start_time as date)) as date) as lo,
        cast(max(cast(coalesce(end_time, start_time) as date)) as date) as hi
    from {{ ref('cdr__encounter') }}
    where start_time is not null
),

months as (
    select cast(t.d as date) as month_start, b.hi as data_end
    from bounds as b, generate_series(
        cast(date_trunc('month', b.lo) as timestamp), cast(b.hi as timestamp), interval '1 month'
    ) as t (d)
)

select
    {{ period_of('month_start', 'month') }} as month,
    {{ period_of('month_start', 'year') }} as year,
    month_start,
    cast(month_start + interval '1 month' as date) as next_month_start,
    {{ day_diff('month_start', "month_start + interval '1 month'") }} as days_in_month,
    {{ day_diff("cast(" ~ period_of('month_start', 'year') ~ " || '-01-01' as date)",
                "cast(cast(" ~ period_of('month_start', 'year') ~ " as integer) + 1 || '-01-01' as date)") }}
        as days_in_year,
    data_end
from months
