-- view: unexplained_access
-- materialize: yes
-- Chart opens that no treatment relationship explains: no encounter of the
-- patient with the user, or with the user's department, open within a day of
-- the access (the day before covers emergency break-the-glass minutes before
-- the encounter is opened; the day after, notes finished after discharge).
-- Materialized: a small share of the events, read by most snooping rules.
-- Two anti-joins on two equal keys each, not one with an OR: an OR leaves the
-- patient as the only hash key and tests every encounter of the patient.
WITH windows AS (
    SELECT
        patient_id,
        user_id,
        department,
        start_ts - INTERVAL '1' DAY AS lo,
        coalesce(end_ts, start_ts) + INTERVAL '1' DAY AS hi
    FROM encounters
)
SELECT a.*
FROM chart_access a
WHERE NOT EXISTS (
    SELECT 1 FROM windows c
    WHERE c.patient_id = a.patient_id AND c.user_id = a.user_id
      AND a.ts >= c.lo AND a.ts <= c.hi
)
  AND NOT EXISTS (
    SELECT 1 FROM windows c
    WHERE c.patient_id = a.patient_id AND c.department = a.staff_department
      AND a.ts >= c.lo AND a.ts <= c.hi
)
