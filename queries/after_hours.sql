-- id: after_hours
-- title: Substantial activity at hours the user never works
-- severity: medium
-- scenario: after_hours
-- description: many events on one day in hours of the day the user is otherwise never active in, away from their usual hours (an hour next to a usual one is overtime, not after hours)
-- lookback: 30d
-- param.min_events: 10
-- param.min_history_days: 4
-- param.max_days_in_hour: 1
-- Habits are counted on (user, day, hour) cells. Every step below reads the
-- one before it once (DataFusion computes a CTE again for every reader), so
-- the events are read twice: for the cells, and for the events of the few
-- (user, hour) pairs that are unusual.
WITH cells AS (
    SELECT user_id, date_trunc('day', ts) AS day, date_part('hour', ts) AS hour
    FROM access_events
    GROUP BY 1, 2, 3
),
-- One grouping gives a row per (user, hour), with days_in_hour: on how many
-- days the user was active in that hour, and a row per (user, day) they
-- were active at all; counting the latter gives each user's days.
habits AS (
    SELECT user_id, hour, days_in_hour, days
    FROM (
        SELECT
            user_id,
            hour,
            days_in_hour,
            is_day,
            sum(is_day) OVER (PARTITION BY user_id) AS days
        FROM (
            SELECT user_id, hour, count(*) AS days_in_hour, grouping(hour) AS is_day
            FROM cells
            GROUP BY GROUPING SETS ((user_id, hour), (user_id, day))
        ) g
    ) g
    WHERE is_day = 0
),
-- Each hour's count is also shown to the hours before and after it (23 and 0
-- are neighbours), so one grouping sees an hour with both of its neighbours.
around AS (
    SELECT
        h.user_id,
        (h.hour + n.shift + 24) % 24 AS hour,
        max(CASE WHEN n.shift = 0 THEN h.days_in_hour END) AS days_in_hour,
        max(h.days_in_hour) AS busiest_nearby,
        max(h.days) AS days
    FROM habits h
    CROSS JOIN (VALUES (-1), (0), (1)) AS n(shift)
    GROUP BY 1, 2
),
unusual AS (
    SELECT user_id, hour, days
    FROM around
    -- Active at that hour, and at most max_days_in_hour days there and next to it.
    WHERE days_in_hour IS NOT NULL
      AND busiest_nearby <= ${max_days_in_hour}
      AND days >= ${min_history_days}
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
JOIN access_events e ON e.user_id = u.user_id AND date_part('hour', e.ts) = u.hour
GROUP BY e.user_id, date_trunc('day', e.ts)
HAVING count(*) >= ${min_events}
