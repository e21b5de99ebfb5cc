-- id: neighbor_snooping
-- title: Access to a neighbour's record
-- severity: high
-- scenario: neighbor_snooping
-- description: unexplained access to a patient living on the user's street (another house)
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
           ' time(s) the chart of ', a.patient_id, ', who lives on their street (',
           max(substr(p.address, strpos(p.address, ' ') + 1)), '), with no encounter linking them') AS summary
FROM unexplained_access a
JOIN patients p ON p.patient_id = a.patient_id
WHERE substr(p.address, strpos(p.address, ' ') + 1) = substr(a.user_address, strpos(a.user_address, ' ') + 1)
  AND p.address <> a.user_address
  AND p.last_name <> a.user_last_name
  AND p.employee_user_id IS NULL
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
