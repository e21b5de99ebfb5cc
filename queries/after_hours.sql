-- id: after_hours
-- title: Substantial activity at hours the user never works
-- severity: medium
-- scenario: after_hours
-- description: many events on one day in hours of the day the user is otherwise never active in, away from their usual hours (an hour next to a usual one is overtime, not after hours)
-- lookback: 30d
-- param.min_events: 10
-- param.min_history_days: 4
-- param.max_days_in_hour: 1
-- Habits are counted on (user, day, hour) cells, so the events are read twice
-- but joined only once, to the few (user, hour) pairs that are unusual.
WITH cells AS (
    SELECT user_id, date_trunc('day', ts) AS day, date_part('hour', ts) AS hour
    FROM access_events
    GROUP BY 1, 2, 3
),
habits AS (
    SELECT user_id, hour, count(*) AS days_in_hour
    FROM cells
    GROUP BY user_id, hour
),
history AS (
    SELECT user_id, count(DISTINCT day) AS days
    FROM cells
    GROUP BY user_id
),
unusual AS (
    SELECT b.user_id, b.hour, h.days
    FROM habits b
    LEFT JOIN habits before ON before.user_id = b.user_id AND before.hour = (b.hour + 23) % 24
    LEFT JOIN habits after ON after.user_id = b.user_id AND after.hour = (b.hour + 1) % 24
    JOIN history h ON h.user_id = b.user_id
    WHERE b.days_in_hour <= ${max_days_in_hour}
      AND coalesce(before.days_in_hour, 0) <= ${max_days_in_hour}
      AND coalesce(after.days_in_hour, 0) <= ${max_days_in_hour}
      AND h.days >= ${min_history_days}
)
SELECT
    e.user_id,
    CAST(NULL AS VARCHAR) AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    array_agg(DISTINCT e.patient_id) FILTER (WHERE e.patient_id IS NOT NULL) AS patient_ids,
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
