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
