-- view: user_days
-- materialize: yes
-- One row per user and day with any event: the distinct charts the user
-- read (successful views and queries of a patient: chart opens, not
-- exports or edits), and the hours of the day they were active in, as bits
-- (bit h set: some event between h:00 and h:59 UTC).
-- volume_spike and after_hours read this one grouping of the events instead
-- of each grouping every event by (user, day, patient) or (user, day, hour):
-- on 10 million events detect took 4.6 s with those two groupings (README,
-- "Detection"). distinct_count keeps each day's charts in a small vector,
-- where count(DISTINCT) keeps a hash set per group.
SELECT
    user_id,
    date_trunc('day', ts) AS day,
    distinct_count(patient_id) FILTER (
        WHERE patient_id IS NOT NULL
          AND outcome = 'success'
          AND action IN ('view', 'query')
    ) AS charts_read,
    bit_or(1 << date_part('hour', ts)) AS hours
FROM access_events
GROUP BY user_id, date_trunc('day', ts)
