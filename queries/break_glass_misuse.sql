-- id: break_glass_misuse
-- title: Break-the-glass override without a treatment relationship
-- severity: high
-- scenario: break_glass_misuse
-- description: an emergency override on a patient with no encounter with the user or their department before or soon after
-- lookback: 1d
SELECT
    a.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat(coalesce(max(a.role), 'user'), ' ', a.user_id, ' broke the glass on ', a.patient_id,
           ' (', CAST(count(*) AS VARCHAR), ' override(s)) and no encounter of theirs or of ',
           coalesce(max(a.staff_department), 'their department'), ' with this patient followed') AS summary
FROM unexplained_access a
WHERE a.action = 'break_glass'
GROUP BY a.user_id, a.patient_id, date_trunc('day', a.ts)
