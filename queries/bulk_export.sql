-- id: bulk_export
-- title: Bulk export or printing of patient records
-- severity: critical
-- scenario: bulk_export
-- description: a user exports many distinct patients' charts in a day, or prints many outside HIM's release-of-information work
-- lookback: 0
-- param.min_exports: 8
-- param.min_prints: 25
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(DISTINCT a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(DISTINCT a.patient_id) AS DOUBLE) AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' exported ',
           CAST(count(DISTINCT CASE WHEN a.action = 'export' THEN a.patient_id END) AS VARCHAR),
           ' and printed ', CAST(count(DISTINCT CASE WHEN a.action = 'print' THEN a.patient_id END) AS VARCHAR),
           ' patients'' charts on ', CAST(CAST(min(a.ts) AS DATE) AS VARCHAR),
           ' between ', CAST(min(a.ts) AS VARCHAR), ' and ', CAST(max(a.ts) AS VARCHAR),
           ': check for a release request or a data theft') AS summary
FROM chart_access a
WHERE a.action IN ('export', 'print')
GROUP BY a.user_id, date_trunc('day', a.ts)
HAVING count(DISTINCT CASE WHEN a.action = 'export' THEN a.patient_id END) >= ${min_exports}
    OR (count(DISTINCT CASE WHEN a.action = 'print' THEN a.patient_id END) >= ${min_prints}
        AND coalesce(max(a.role), '') <> 'him')
