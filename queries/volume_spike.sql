-- id: volume_spike
-- title: Unusual number of distinct patients in a day
-- severity: high
-- scenario: volume_spike
-- description: distinct charts a user opened in a day, far above both their own baseline and their role's that day (robust z-scores)
-- lookback: 30d
-- param.min_patients: 60
-- param.min_z_self: 8
-- param.min_z_role: 8
-- The day's distinct charts come from the shared user_days view.
WITH daily AS (
    SELECT
        d.user_id,
        d.day,
        d.charts_read AS patients,
        coalesce(s.role, 'unknown') AS role
    FROM staff s
    RIGHT JOIN user_days d ON s.user_id = d.user_id
    -- Days with no chart read are no baseline for reading charts.
    WHERE d.charts_read > 0
),
scored AS (
    SELECT
        d.*,
        median(d.patients) OVER (PARTITION BY d.user_id) AS own_median,
        robust_z(d.patients) OVER (PARTITION BY d.user_id) AS z_self,
        robust_z(d.patients) OVER (PARTITION BY d.role, d.day) AS z_role
    FROM daily d
),
flagged AS (
    SELECT *
    FROM scored
    WHERE patients >= ${min_patients}
      AND z_self >= ${min_z_self}
      AND z_role >= ${min_z_role}
)
-- flagged is read once: a CTE read twice is computed twice. The window and
-- the event count come from the flagged days' events, read again here,
-- rather than from three more aggregates over every (user, day, patient).
SELECT
    f.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(a.patient_id) AS patient_ids,
    min(a.ts) AS first_ts,
    max(a.ts) AS last_ts,
    count(*) AS event_count,
    least(f.z_self, f.z_role) AS score,
    concat(f.role, ' ', f.user_id, ' opened the charts of ', CAST(f.patients AS VARCHAR),
           ' distinct patients on ', CAST(CAST(f.day AS DATE) AS VARCHAR), ', against a usual ',
           CAST(round(f.own_median) AS VARCHAR), ' (robust z ', CAST(round(f.z_self, 1) AS VARCHAR),
           ' against their own days, ', CAST(round(f.z_role, 1) AS VARCHAR), ' against other ', f.role, 's that day)') AS summary
FROM flagged f
JOIN access_events a ON a.user_id = f.user_id AND date_trunc('day', a.ts) = f.day
WHERE a.patient_id IS NOT NULL
  AND a.outcome = 'success'
  AND a.action IN ('view', 'query')
GROUP BY f.user_id, f.day, f.role, f.patients, f.own_median, f.z_self, f.z_role
