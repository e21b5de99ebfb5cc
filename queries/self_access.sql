-- id: self_access
-- title: Employee opened their own record
-- severity: medium
-- scenario: self_access
-- description: a user opens the chart whose patient is that user (patients.employee_user_id)
-- lookback: 0
-- chart_access's opens, read straight from the events: an employee's opens
-- of their own chart are found first, and only they are joined to the staff
-- table (chart_access joins it to every event). The reference table is on
-- the left: DataFusion builds its hash table on a join's left input.
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat(coalesce(max(s.role), 'user'), ' ', a.user_id, ' opened their own chart (',
           max(a.patient_id), ') ', CAST(count(*) AS VARCHAR),
           ' time(s); employees must request their records through HIM') AS summary
FROM patients p
JOIN access_events a ON a.patient_id = p.patient_id AND a.user_id = p.employee_user_id
LEFT JOIN staff s ON s.user_id = a.user_id
WHERE a.outcome = 'success'
GROUP BY a.user_id, date_trunc('day', a.ts)
