-- id: record_tampering
-- title: Burst of changes to charts without a treatment relationship
-- severity: critical
-- scenario: record_tampering
-- description: a user updates or deletes several charts in a day that no encounter explains
-- lookback: 0
-- param.min_changes: 5
-- Per patient first, then per user and day: DataFusion 55 counts distinct
-- text with one boxed accumulator per group.
WITH changes AS (
    SELECT
        a.user_id,
        date_trunc('day', a.ts) AS day,
        a.patient_id,
        max(a.role) AS role,
        min(a.ts) AS first_ts,
        max(a.ts) AS last_ts,
        count(*) AS events,
        sum(CASE WHEN a.action = 'delete' THEN 1 ELSE 0 END) AS deletes,
        sum(CASE WHEN a.action = 'update' THEN 1 ELSE 0 END) AS updates
    FROM unexplained_access a
    WHERE a.action IN ('update', 'delete')
    GROUP BY a.user_id, date_trunc('day', a.ts), a.patient_id
)
SELECT
    user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(patient_id) AS patient_ids,
    min(first_ts) AS first_ts,
    max(last_ts) AS last_ts,
    sum(events) AS event_count,
    CAST(sum(events) AS DOUBLE) + 2 * CAST(sum(deletes) AS DOUBLE) AS score,
    concat(coalesce(max(role), 'user'), ' ', user_id, ' deleted ',
           CAST(sum(deletes) AS VARCHAR), ' and updated ', CAST(sum(updates) AS VARCHAR),
           ' records of ', CAST(count(*) AS VARCHAR),
           ' patients with no encounter explaining it, between ', CAST(min(first_ts) AS VARCHAR),
           ' and ', CAST(max(last_ts) AS VARCHAR), ': review and restore the changes') AS summary
FROM changes
GROUP BY user_id, day
HAVING sum(events) >= ${min_changes}
