-- view: unexplained_access
-- Chart opens that no treatment relationship explains: no encounter of the
-- patient with the user, or with the user's department, open within a day of
-- the access (the day before covers emergency break-the-glass minutes before
-- the encounter is opened; the day after, notes finished after discharge).
SELECT a.*
FROM chart_access a
WHERE NOT EXISTS (
    SELECT 1
    FROM encounters c
    WHERE c.patient_id = a.patient_id
      AND (c.user_id = a.user_id OR c.department = a.staff_department)
      AND a.ts >= c.start_ts - INTERVAL '1' DAY
      AND a.ts <= coalesce(c.end_ts, c.start_ts) + INTERVAL '1' DAY
)
