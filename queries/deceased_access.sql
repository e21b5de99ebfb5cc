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
-- Whether an open succeeded is tested in each aggregate's FILTER rather
-- than in a WHERE clause, which DataFusion pushes below the join: there it
-- copied the 99.7 % of 10 million events that succeed (68 ms) before the
-- join kept a few thousand.
WITH opens AS (
    SELECT a.user_id, a.patient_id, a.ts, a.outcome = 'success' AS opened, s.role,
           p.deceased_date
    FROM patients p
    JOIN access_events a ON a.patient_id = p.patient_id
    JOIN staff s ON s.user_id = a.user_id
    WHERE p.deceased_date IS NOT NULL
      AND CAST(a.ts AS DATE) > p.deceased_date + INTERVAL '${min_days_dead}' DAY
      AND s.role IN (${clinical_roles})
)
SELECT
    user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(patient_id) FILTER (WHERE opened) AS patient_ids,
    min(ts) FILTER (WHERE opened) AS first_ts,
    max(ts) FILTER (WHERE opened) AS last_ts,
    count(*) FILTER (WHERE opened) AS event_count,
    CAST(count(*) FILTER (WHERE opened) AS DOUBLE) AS score,
    concat(max(role), ' ', user_id, ' opened ', CAST(count(*) FILTER (WHERE opened) AS VARCHAR),
           ' time(s) the chart of ', patient_id, ', who died on ', CAST(max(deceased_date) AS VARCHAR),
           '; clinical care of a patient dead this long has no purpose') AS summary
FROM opens
GROUP BY user_id, patient_id, date_trunc('day', ts)
HAVING count(*) FILTER (WHERE opened) > 0
