-- id: terminated_access
-- title: Activity on a former employee's account
-- severity: critical
-- scenario: terminated_access
-- description: any event by an account after its holder's termination date
-- lookback: 0
-- The reference table comes first: DataFusion builds its hash table on the
-- left side of a join, and the events have no row estimate to swap on.
SELECT
    e.user_id,
    CAST(NULL AS VARCHAR) AS host,
    max(e.src_ip) AS src_ip,
    array_agg(e.patient_id) FILTER (WHERE e.patient_id IS NOT NULL) AS patient_ids,
    min(e.ts) AS first_ts,
    max(e.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) + 10 AS score,
    concat('account ', e.user_id, ' of former ', coalesce(max(s.role), 'employee'),
           ' (left ', CAST(max(s.termination_date) AS VARCHAR), ') was used ', CAST(count(*) AS VARCHAR),
           ' time(s) from ', coalesce(max(e.src_ip), 'an unknown address'),
           ', opening ', CAST(count(DISTINCT e.patient_id) AS VARCHAR),
           ' chart(s): disable it and find out who holds it') AS summary
FROM staff s
JOIN access_events e ON e.user_id = s.user_id
WHERE s.termination_date IS NOT NULL
  AND CAST(e.ts AS DATE) > s.termination_date
GROUP BY e.user_id, date_trunc('day', e.ts)
