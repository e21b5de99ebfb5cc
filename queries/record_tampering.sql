-- id: record_tampering
-- title: Burst of changes to charts without a treatment relationship
-- severity: critical
-- scenario: record_tampering
-- description: a user updates or deletes several charts in a day that no encounter explains
-- lookback: 0
-- param.min_changes: 5
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) + 2 * CAST(sum(CASE WHEN a.action = 'delete' THEN 1 ELSE 0 END) AS DOUBLE) AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' deleted ',
           CAST(sum(CASE WHEN a.action = 'delete' THEN 1 ELSE 0 END) AS VARCHAR), ' and updated ',
           CAST(sum(CASE WHEN a.action = 'update' THEN 1 ELSE 0 END) AS VARCHAR),
           ' records of ', CAST(count(DISTINCT a.patient_id) AS VARCHAR),
           ' patients with no encounter explaining it, between ', CAST(min(a.ts) AS VARCHAR),
           ' and ', CAST(max(a.ts) AS VARCHAR), ': review and restore the changes') AS summary
FROM unexplained_access a
WHERE a.action IN ('update', 'delete')
GROUP BY a.user_id, date_trunc('day', a.ts)
HAVING count(*) >= ${min_changes}
