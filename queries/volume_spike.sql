-- id: volume_spike
-- title: Unusual number of distinct patients in a day
-- severity: high
-- scenario: volume_spike
-- description: distinct charts a user opened in a day, far above both their own baseline and their role's that day (robust z-scores)
-- lookback: 30d
-- param.min_patients: 60
-- param.min_z_self: 8
-- param.min_z_role: 8
WITH daily AS (
    SELECT
        a.user_id,
        coalesce(max(a.role), 'unknown') AS role,
        date_trunc('day', a.ts) AS day,
        count(DISTINCT a.patient_id) AS patients,
        min(a.ts) AS first_ts,
        max(a.ts) AS last_ts,
        count(*) AS events,
        array_agg(DISTINCT a.patient_id) AS patient_ids
    FROM chart_access a
    -- Reading charts: exports and prints are bulk_export's, edits record_tampering's.
    WHERE a.action IN ('view', 'query')
    GROUP BY a.user_id, date_trunc('day', a.ts)
),
scored AS (
    SELECT
        d.*,
        median(d.patients) OVER (PARTITION BY d.user_id) AS own_median,
        robust_z(d.patients) OVER (PARTITION BY d.user_id) AS z_self,
        robust_z(d.patients) OVER (PARTITION BY d.role, d.day) AS z_role
    FROM daily d
)
SELECT
    user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    patient_ids,
    first_ts,
    last_ts,
    events AS event_count,
    least(z_self, z_role) AS score,
    concat(role, ' ', user_id, ' opened the charts of ', CAST(patients AS VARCHAR),
           ' distinct patients on ', CAST(CAST(day AS DATE) AS VARCHAR), ', against a usual ',
           CAST(round(own_median) AS VARCHAR), ' (robust z ', CAST(round(z_self, 1) AS VARCHAR),
           ' against their own days, ', CAST(round(z_role, 1) AS VARCHAR), ' against other ', role, 's that day)') AS summary
FROM scored
WHERE patients >= ${min_patients}
  AND z_self >= ${min_z_self}
  AND z_role >= ${min_z_role}
