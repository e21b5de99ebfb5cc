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
),
-- flagged is read once: a CTE read twice is computed twice. The window and
-- the event count come from the flagged days' events, read again here,
-- rather than from three more aggregates over every (user, day, patient).
-- The events are joined by user alone, their day as a range and their kind
-- in each aggregate's FILTER: a WHERE on the events would be pushed down to
-- every one of them (0.16 s), and a join on (user, day) hashes every event's
-- day (0.18 s), for the few flagged users' rows.
flagged_events AS (
    SELECT
        f.*,
        a.ts,
        a.patient_id,
        a.patient_id IS NOT NULL
            AND a.outcome = 'success'
            AND a.action IN ('view', 'query') AS read_chart
    FROM flagged f
    JOIN access_events a
      ON a.user_id = f.user_id
     AND a.ts >= f.day
     AND a.ts < f.day + INTERVAL '1' DAY
)
SELECT
    user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(patient_id) FILTER (WHERE read_chart) AS patient_ids,
    min(ts) FILTER (WHERE read_chart) AS first_ts,
    max(ts) FILTER (WHERE read_chart) AS last_ts,
    count(*) FILTER (WHERE read_chart) AS event_count,
    least(z_self, z_role) AS score,
    concat(role, ' ', user_id, ' opened the charts of ', CAST(patients AS VARCHAR),
           ' distinct patients on ', CAST(CAST(day AS DATE) AS VARCHAR), ', against a usual ',
           CAST(round(own_median) AS VARCHAR), ' (robust z ', CAST(round(z_self, 1) AS VARCHAR),
           ' against their own days, ', CAST(round(z_role, 1) AS VARCHAR), ' against other ', role, 's that day)') AS summary
FROM flagged_events
GROUP BY user_id, day, role, patients, own_median, z_self, z_role
