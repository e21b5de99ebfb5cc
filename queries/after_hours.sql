-- id: after_hours
-- title: Substantial activity at hours the user never works
-- severity: medium
-- scenario: after_hours
-- description: many events on one day in hours of the day the user is otherwise never active in, away from their usual hours (an hour next to a usual one is overtime, not after hours)
-- lookback: 30d
-- param.min_events: 10
-- param.min_history_days: 4
-- param.max_days_in_hour: 1
-- Habits are counted from the shared user_days view: a row per (user, day)
-- with the hours of the day active in as bits. The events are read again
-- only for the users with unusual hours.
WITH days AS (
    SELECT user_id, hours, count(*) OVER (PARTITION BY user_id) AS days
    FROM user_days
),
-- A row per (user, hour) the user was active in: on how many days. The 24
-- hours on the left: a cross join emits a batch per row of its left input.
habits AS (
    SELECT d.user_id, h.hour, count(*) AS days_in_hour, max(d.days) AS days
    FROM (SELECT unnest(range(24)) AS hour) h
    CROSS JOIN days d
    WHERE (d.hours >> h.hour) & 1 = 1
    GROUP BY d.user_id, h.hour
),
-- Per user, as bits: the hours they were ever active in, and their working
-- hours (active there on more than max_days_in_hour days).
usual AS (
    SELECT
        user_id,
        bit_or(1 << hour) AS seen,
        coalesce(bit_or(1 << hour) FILTER (WHERE days_in_hour > ${max_days_in_hour}), 0) AS working,
        max(days) AS days
    FROM habits
    GROUP BY user_id
    HAVING max(days) >= ${min_history_days}
),
-- Hours active in that are neither working hours nor next to one (overtime):
-- the working hours turned one bit either way round the clock (23 and 0 are
-- neighbours) and taken out of the 24 bits, 16777215.
unusual AS (
    SELECT user_id, days, seen & (16777215 - (near & 16777215)) AS hours
    FROM (
        SELECT
            user_id,
            days,
            seen,
            working | (working << 1) | (working >> 23) | (working >> 1) | (working << 23) AS near
        FROM usual
    ) u
)
SELECT
    e.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(e.patient_id) FILTER (WHERE e.patient_id IS NOT NULL) AS patient_ids,
    min(e.ts) AS first_ts,
    max(e.ts) AS last_ts,
    count(*) AS event_count,
    CAST(count(*) AS DOUBLE) AS score,
    concat('user ', e.user_id, ' was active ', CAST(count(*) AS VARCHAR), ' times between ',
           CAST(min(e.ts) AS VARCHAR), ' and ', CAST(max(e.ts) AS VARCHAR),
           ', at hours they worked on no other of their ', CAST(max(u.days) AS VARCHAR),
           ' days; ', CAST(count(DISTINCT e.patient_id) AS VARCHAR), ' charts opened') AS summary
-- unusual first: DataFusion builds the hash table on a join's left input.
FROM unusual u
JOIN access_events e
  ON e.user_id = u.user_id
 AND (u.hours >> date_part('hour', e.ts)) & 1 = 1
WHERE u.hours <> 0
GROUP BY e.user_id, date_trunc('day', e.ts)
HAVING count(*) >= ${min_events}
