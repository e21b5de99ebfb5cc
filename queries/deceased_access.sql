-- id: deceased_access
-- title: Clinical access to a long-deceased patient's record
-- severity: medium
-- scenario: deceased_access
-- description: a clinical user opens the chart of a patient who died more than min_days_dead days before
-- lookback: 0
-- param.min_days_dead: 30
-- param.clinical_roles: 'physician', 'nurse', 'resident', 'therapist', 'pharmacist'
-- The reference table comes first: DataFusion builds its hash table on the
-- left side of a join, and the events have no row estimate to swap on.
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(DISTINCT a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' opened ', CAST(count(*) AS VARCHAR),
           ' time(s) the chart of ', a.patient_id, ', who died on ', CAST(max(p.deceased_date) AS VARCHAR),
           '; clinical care of a patient dead this long has no purpose') AS summary
FROM patients p
JOIN chart_access a ON a.patient_id = p.patient_id
WHERE p.deceased_date IS NOT NULL
  AND CAST(a.ts AS DATE) > p.deceased_date + INTERVAL '${min_days_dead}' DAY
  AND a.role IN (${clinical_roles})
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
