-- id: deceased_access
-- title: Clinical access to a long-deceased patient's record
-- severity: medium
-- scenario: deceased_access
-- description: a clinical user opens the chart of a patient who died more than min_days_dead days before
-- lookback: 0
-- param.min_days_dead: 30
-- param.clinical_roles: 'physician', 'nurse', 'resident', 'therapist', 'pharmacist'
-- chart_access's opens, read straight from the events: the few opens of a
-- dead patient's chart are found first, and only they are joined to the
-- staff table (chart_access joins it to every event). The reference table
-- comes first: DataFusion builds its hash table on the left side of a join.
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat(max(s.role), ' ', a.user_id, ' opened ', CAST(count(*) AS VARCHAR),
           ' time(s) the chart of ', a.patient_id, ', who died on ', CAST(max(p.deceased_date) AS VARCHAR),
           '; clinical care of a patient dead this long has no purpose') AS summary
FROM patients p
JOIN access_events a ON a.patient_id = p.patient_id
JOIN staff s ON s.user_id = a.user_id
WHERE p.deceased_date IS NOT NULL
  AND a.outcome = 'success'
  AND CAST(a.ts AS DATE) > p.deceased_date + INTERVAL '${min_days_dead}' DAY
  AND s.role IN (${clinical_roles})
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
