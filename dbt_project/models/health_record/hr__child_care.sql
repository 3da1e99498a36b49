-- 0–6 岁儿童 care as far as the sources tell it: one row per child (EMPI id) with a vaccination record —
-- doses received, distinct vaccines, first and last vaccination. The synthetic county has no child check-up
-- (儿童健康检查) export, so growth and development items are not available.
select
    empi_id,
    min(birth_date) as birth_date,
    count(*) as doses,
    count(distinct vaccine_code) as vaccines,
    min(vaccination_date) as first_vaccination_date,
    max(vaccination_date) as last_vaccination_date,
    min(org_code) as vaccination_org_code
from {{ ref('hr__vaccination') }}
where empi_id is not null and age_days < 7 * 365
group by empi_id
