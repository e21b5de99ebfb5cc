-- view: chart_access
-- Successful opens of a patient's chart, with the acting user's staff record
-- (the reference data is the truth about who somebody is, whatever the log says).
-- The staff table is on the left: rule sessions build every hash table from a
-- join's left input, and the events are ten thousand times larger.
SELECT
    e.ts,
    e.user_id,
    e.patient_id,
    e.action,
    e.src_ip,
    s.role,
    s.department AS staff_department,
    s.last_name AS user_last_name,
    s.address AS user_address,
    s.zip AS user_zip
FROM staff s
RIGHT JOIN access_events e ON s.user_id = e.user_id
WHERE e.patient_id IS NOT NULL
  AND e.outcome = 'success'
