-- view: unexplained_access
-- materialize: yes
-- Chart opens that no treatment relationship explains: no encounter of the
-- patient with the user, or with the user's department, open within a day of
-- the access (the day before covers emergency break-the-glass minutes before
-- the encounter is opened; the day after, notes finished after discharge).
-- Materialized: a small share of the events, read by most snooping rules.
--
-- How it is written, for speed and memory on millions of events
-- (DataFusion builds a hash join's table on its left input):
-- - the encounters are on the left of a RIGHT ANTI JOIN (DataFusion's
--   spelling of "the right input's rows that nothing on the left matches"),
--   so the hash table holds encounters, not events (NOT EXISTS built it on
--   the events: 1.7 GB instead of 0.3 GB on 10 million events), and only
--   the unmatched opens are copied out (a RIGHT JOIN and an IS NULL test
--   copied all 9.7 million first: 2.9-3.1 s of CPU against 2.4-2.6 s);
-- - the encounter columns have names of their own: an earlier spelling
--   filtered on one being NULL, and with the events' names DataFusion 55
--   pushed that test into the events side as well (apache/datafusion#20213);
-- - two joins on two equal keys each, not one with an OR, which would leave
--   the patient as the only hash key and test every encounter of the patient;
-- - the department's encounters first: they explain most opens (a user's own
--   encounters are of their department too), so the join on the user sees
--   a twentieth of the events (view 5.0 s to 3.3 s on 10 million events).
WITH windows AS (
    SELECT
        patient_id AS enc_patient,
        user_id AS enc_user,
        department AS enc_department,
        start_ts - INTERVAL '1' DAY AS enc_from,
        coalesce(end_ts, start_ts) + INTERVAL '1' DAY AS enc_to
    FROM encounters
),
not_by_department AS (
    SELECT a.ts, a.user_id, a.patient_id, a.action, a.src_ip, a.workstation, a.staff_department
    FROM windows c
    RIGHT ANTI JOIN chart_access a
        ON c.enc_patient = a.patient_id AND c.enc_department = a.staff_department
       AND a.ts >= c.enc_from AND a.ts <= c.enc_to
),
opened AS (
    SELECT a.*
    FROM windows c
    RIGHT ANTI JOIN not_by_department a
        ON c.enc_patient = a.patient_id AND c.enc_user = a.user_id
       AND a.ts >= c.enc_from AND a.ts <= c.enc_to
)
-- chart_access's columns, in its order; the other staff columns are joined
-- to the few unexplained rows, not carried through the joins above.
SELECT o.ts, o.user_id, o.patient_id, o.action, o.src_ip, o.workstation, s.role,
       o.staff_department, s.last_name AS user_last_name, s.address AS user_address,
       s.zip AS user_zip
FROM staff s
RIGHT JOIN opened o ON s.user_id = o.user_id
