-- id: privilege_escalation
-- title: New administrator, or an account using sudo for the first time
-- severity: high
-- scenario: privilege_escalation
-- description: an account added to an admin group (sudo, wheel, admin), or sudo run by an account that had logged in on earlier days and never used it
-- lookback: 30d
-- param.min_prior_days: 2
--
-- "Never used it" is judged over the look-back. An admin's first sudo comes
-- in the first session seen and is not flagged; an account seen logging in on
-- at least min_prior_days earlier days without sudo, that suddenly runs
-- sudo, is (a service account turned root). A grant to an admin group
-- always alerts, since even a legitimate new administrator deserves a second
-- pair of eyes.
WITH grants AS (
    SELECT "user" AS g_user, host AS g_host, ts AS g_ts
    FROM system_events
    WHERE event_type = 'admin_group_added' AND "user" IS NOT NULL
),
sudo AS (
    SELECT "user" AS s_user, host AS s_host, ts AS s_ts, message AS s_message
    FROM system_events
    WHERE event_type = 'sudo' AND "user" IS NOT NULL
),
grant_alerts AS (
    SELECT g.g_user, g.g_host, g.g_ts,
           count(s.s_ts) AS sudos,
           max(s.s_ts) AS last_sudo
    FROM grants g
    LEFT JOIN sudo s
      ON s.s_user = g.g_user
     AND s.s_ts >= g.g_ts
     AND s.s_ts <= g.g_ts + INTERVAL '1' DAY
    GROUP BY g.g_user, g.g_host, g.g_ts
),
first_sudo AS (
    SELECT s_user AS f_user, min(s_ts) AS f_ts
    FROM sudo
    GROUP BY s_user
),
logins AS (
    SELECT "user" AS l_user, date_trunc('day', ts) AS l_day
    FROM system_events
    WHERE event_type = 'auth_success' AND "user" IS NOT NULL
),
newcomers AS (
    SELECT f.f_user, f.f_ts, count(DISTINCT l.l_day) AS prior_days
    FROM first_sudo f
    JOIN logins l
      ON l.l_user = f.f_user
     AND l.l_day < date_trunc('day', f.f_ts)
    GROUP BY f.f_user, f.f_ts
    HAVING count(DISTINCT l.l_day) >= ${min_prior_days}
)
SELECT
    g_user AS user_id,
    g_host AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    g_ts AS first_ts,
    coalesce(last_sudo, g_ts) AS last_ts,
    1 + sudos AS event_count,
    CAST(2 + sudos AS DOUBLE) AS score,
    concat(g_user, ' was added to an admin group on ', g_host, ' at ', CAST(g_ts AS VARCHAR),
           CASE WHEN sudos > 0 THEN concat(' and ran sudo ', CAST(sudos AS VARCHAR), ' time(s) within a day')
                ELSE '' END,
           ': confirm the change was approved, else remove the account from the group') AS summary
FROM grant_alerts
UNION ALL
SELECT
    n.f_user AS user_id,
    s.s_host AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    n.f_ts AS first_ts,
    n.f_ts AS last_ts,
    1 AS event_count,
    CAST(n.prior_days AS DOUBLE) AS score,
    concat(n.f_user, ' ran sudo on ', s.s_host, ' for the first time after logging in on ',
           CAST(n.prior_days AS VARCHAR), ' earlier day(s) without it (', s.s_message,
           '): find out who is using the account and why') AS summary
FROM newcomers n
JOIN sudo s ON s.s_user = n.f_user AND s.s_ts = n.f_ts
