-- view: unexplained_access
-- materialize: yes
-- Chart opens that no treatment relationship explains: no encounter of the
-- patient with the user, or with the user's department, open within a day of
-- the access (the day before covers emergency break-the-glass minutes before
-- the encounter is opened; the day after, notes finished after discharge).
-- Materialized: a small share of the events, read by most snooping rules.
--
-- care_relationship() looks each open up in an index of the encounters by
-- patient (README, "Detection"). It replaced two anti-joins of the opens with
-- the encounters, by patient and department, then by patient and user, which
-- hashed and compared every open twice: on 10 million events the view took
-- 1.66/1.96/1.49 s, this one 1.19/1.09/1.33 s (alternating).
-- chart_access's columns, in its order; the staff columns are joined to the
-- few unexplained rows, not to every event.
SELECT o.ts, o.user_id, o.patient_id, o.action, o.src_ip, s.role,
       s.department AS staff_department, s.last_name AS user_last_name,
       s.address AS user_address, s.zip AS user_zip
FROM staff s
RIGHT JOIN (
    SELECT ts, user_id, patient_id, action, src_ip
    FROM access_events
    WHERE patient_id IS NOT NULL
      AND outcome = 'success'
      AND NOT care_relationship(user_id, patient_id, ts, INTERVAL '1' DAY)
) o ON s.user_id = o.user_id
