-- id: self_access
-- title: Employee opened their own record
-- severity: medium
-- scenario: self_access
-- description: a user opens the chart whose patient is that user (patients.employee_user_id)
-- lookback: 0
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
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' opened their own chart (',
           max(a.patient_id), ') ', CAST(count(*) AS VARCHAR),
           ' time(s); employees must request their records through HIM') AS summary
FROM patients p
JOIN chart_access a ON a.patient_id = p.patient_id AND a.user_id = p.employee_user_id
GROUP BY a.user_id, date_trunc('day', a.ts)
