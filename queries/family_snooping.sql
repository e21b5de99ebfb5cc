-- id: family_snooping
-- title: Access to a family member's record
-- severity: high
-- scenario: family_snooping
-- description: unexplained access to a patient sharing the user's last name or home address
-- lookback: 0
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) + CASE WHEN bool_or(p.address = a.user_address) THEN 2 ELSE 0 END AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' opened ', CAST(count(*) AS VARCHAR),
           ' time(s) the chart of ', a.patient_id, ', who shares ',
           CASE WHEN bool_or(p.address = a.user_address) THEN 'their home address'
                ELSE concat('their surname ', max(p.last_name)) END,
           ', with no encounter linking them') AS summary
FROM unexplained_access a
JOIN patients p ON p.patient_id = a.patient_id
WHERE (p.last_name = a.user_last_name OR (p.address = a.user_address AND p.zip = a.user_zip))
  AND (p.employee_user_id IS NULL OR p.employee_user_id <> a.user_id)
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
