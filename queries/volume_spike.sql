-- id: volume_spike
-- title: Unusual number of distinct patients in a day
-- severity: high
-- scenario: volume_spike
-- description: distinct charts a user opened in a day, far above both their own baseline and their role's that day (robust z-scores)
-- lookback: 30d
-- param.min_patients: 60
-- param.min_z_self: 8
-- param.min_z_role: 8
-- Distinct patients are counted in two steps, per user, day and patient,
-- then per user and day, because DataFusion's count(DISTINCT) keeps a hash
-- set per group, which took 6.8 GB on a 10-million-event store. Patient lists are gathered only
-- for the flagged days.
WITH per_patient AS (
    SELECT
        user_id,
        date_trunc('day', ts) AS day,
        patient_id
    FROM access_events
    -- chart_access's opens, read straight from the events: the role is
    -- joined to the user's days below, not to every event.
    -- Reading charts: exports and prints are bulk_export's, edits record_tampering's.
    WHERE patient_id IS NOT NULL
      AND outcome = 'success'
      AND action IN ('view', 'query')
    GROUP BY user_id, date_trunc('day', ts), patient_id
),
daily AS (
    SELECT
        d.*,
        coalesce(s.role, 'unknown') AS role
    FROM staff s
    RIGHT JOIN (
        SELECT
            user_id,
            day,
            count(*) AS patients
        FROM per_patient
        GROUP BY user_id, day
    ) d ON s.user_id = d.user_id
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
