-- id: vip_snooping
-- title: Access to a VIP's record
-- severity: critical
-- scenario: vip_snooping
-- description: unexplained access to the chart of a patient flagged VIP
-- lookback: 0
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' opened ', CAST(count(*) AS VARCHAR),
           ' time(s) the chart of VIP patient ', a.patient_id, ', with no encounter linking them') AS summary
FROM unexplained_access a
JOIN patients p ON p.patient_id = a.patient_id
WHERE p.vip
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
