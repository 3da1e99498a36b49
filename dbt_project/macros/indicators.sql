{# Helpers of the public-health staging and the indicator marts (cross-database: DuckDB and PostgreSQL). #}

{# A number from text, NULL when the text is not a plain decimal number. #}
{% macro try_number(expr) -%}
  case when trim({{ expr }}) ~ '^-?[0-9]+(\.[0-9]+)?$' then cast(trim({{ expr }}) as numeric(18, 4)) end
{%- endmacro %}

{# Days from date a to date b (b - a) as an integer. #}
{% macro day_diff(a, b) -%}
  {{ return(adapter.dispatch('day_diff', 'hutong')(a, b)) }}
{%- endmacro %}
{% macro duckdb__day_diff(a, b) -%}
  date_diff('day', cast({{ a }} as date), cast({{ b }} as date))
{%- endmacro %}
{% macro postgres__day_diff(a, b) -%}
  (cast({{ b }} as date) - cast({{ a }} as date))
{%- endmacro %}

{# The period label of a date: 'YYYY' (year) or 'YYYY-MM' (month). #}
{% macro period_of(expr, period_type) -%}
  {%- if period_type == 'year' -%}
    substr(cast(cast({{ expr }} as date) as varchar), 1, 4)
  {%- else -%}
    substr(cast(cast({{ expr }} as date) as varchar), 1, 7)
  {%- endif -%}
{%- endmacro %}

{# A ratio rounded to 4 decimals; NULL when the denominator is 0 or NULL. #}
{% macro ratio(numerator, denominator, multiplier=1) -%}
  round(cast(({{ numerator }}) * {{ multiplier }} as numeric(20, 6)) / nullif(({{ denominator }}), 0), 4)
{%- endmacro %}

{# Age in completed years (周岁) on day `on` of someone born on `birth`. #}
{% macro age_years(birth, on) -%}
  (cast(extract(year from cast({{ on }} as date)) as integer) - cast(extract(year from cast({{ birth }} as date)) as integer)
   - case when extract(month from cast({{ on }} as date)) * 100 + extract(day from cast({{ on }} as date))
               < extract(month from cast({{ birth }} as date)) * 100 + extract(day from cast({{ birth }} as date))
          then 1 else 0 end)
{%- endmacro %}

{# Post-hook of int_marts__stay: drop the stays whose encounter was deleted or is no longer an inpatient stay
   (candidates: stays of encounters landed or deleted since the previous load; checked against the CDR by key). #}
{% macro drop_gone_stays() -%}
    {%- set candidates -%}
        select t.encounter_key from {{ this }} as t
        where t.encounter_key in (
            select n.encounter_key from {{ ref('cdr__encounter') }} as n
            where n._ingested_at > {{ previous_watermark() }} and n.encounter_class_code is distinct from '3'
            union all
            {{ deleted_since_last_load(source('raw', 'his_encounter')) }}
        )
    {%- endset %}
    {%- set kept -%}
        select e.encounter_key from {{ ref('cdr__encounter') }} as e
        inner join ({{ candidates }}) as k on k.encounter_key = e.encounter_key
        where e.encounter_class_code = '3'
    {%- endset %}
    {{ delete_unless_kept('encounter_key', candidates, kept) }}
{%- endmacro %}

{# Post-hook of int_marts__fee: drop the fee lines whose fee or encounter left the CDR or whose fee now names an
   encounter the CDR does not hold (candidates: lines of fees landed or deleted and of encounters deleted since
   the previous load; checked against the CDR by key). #}
{% macro drop_gone_fees() -%}
    {%- set candidates -%}
        select t.fee_key, t.encounter_key from {{ this }} as t
        where t.fee_key in (
                select n.fee_key from {{ ref('cdr__fee') }} as n where n._ingested_at > {{ previous_watermark() }}
                union all
                {{ deleted_since_last_load(source('raw', 'his_fee')) }}
            )
            or t.encounter_key in ({{ deleted_since_last_load(source('raw', 'his_encounter')) }})
    {%- endset %}
    {%- set kept -%}
        select f.fee_key from {{ ref('cdr__fee') }} as f
        inner join ({{ candidates }}) as k on k.fee_key = f.fee_key and k.encounter_key = f.encounter_key
        inner join {{ ref('cdr__encounter') }} as e on e.encounter_key = f.encounter_key
    {%- endset %}
    {{ delete_unless_kept('fee_key', candidates, kept) }}
{%- endmacro %}

{# Delete from the model the `key_column` values of `candidates` that `kept` (the candidates still backed by the
   CDR) does not list: the shared end of the drop_gone_* post-hooks. #}
{% macro delete_unless_kept(key_column, candidates, kept) -%}
    delete from {{ this }}
    where {{ key_column }} in (
        select c.{{ key_column }} from ({{ candidates }}) as c
        left join ({{ kept }}) as kept on kept.{{ key_column }} = c.{{ key_column }}
        where kept.{{ key_column }} is null
    )
{%- endmacro %}
