-- id: ssh_bruteforce
-- title: SSH password guessing from one address
-- severity: high
-- scenario: ssh_bruteforce
-- description: a burst of failed SSH logins from one source address on one host; critical when that address then logs in
-- lookback: 1d
-- param.min_failures: 10
-- param.burst_gap_minutes: 60
-- param.success_minutes: 60
--
-- A burst is a run of failures from one address to one host with no pause
-- longer than burst_gap_minutes, so a slow guesser (one try every few minutes
-- for hours) is one burst and an internet scanner's two tries are not. Only
-- sshd's own "Failed ..." lines are counted: PAM repeats each of them, and
-- "Invalid user" precedes them, so each attempt counts once.
WITH failures AS (
    SELECT host AS f_host, src_ip AS f_ip, ts AS f_ts, "user" AS f_user
    FROM system_events
    WHERE app = 'sshd'
      AND event_type = 'auth_failure'
      AND src_ip IS NOT NULL
      AND message NOT LIKE 'pam_%'
),
marked AS (
    SELECT f_host, f_ip, f_ts, f_user,
           CASE WHEN lag(f_ts) OVER (PARTITION BY f_host, f_ip ORDER BY f_ts)
                     >= f_ts - INTERVAL '${burst_gap_minutes}' MINUTE
                THEN 0 ELSE 1 END AS starts_burst
    FROM failures
),
numbered AS (
    SELECT f_host, f_ip, f_ts, f_user,
           sum(starts_burst) OVER (PARTITION BY f_host, f_ip ORDER BY f_ts
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS burst
    FROM marked
),
bursts AS (
    SELECT f_host AS b_host, f_ip AS b_ip, burst,
           min(f_ts) AS b_first, max(f_ts) AS b_last,
           count(*) AS failures,
           count(DISTINCT f_user) AS accounts
    FROM numbered
    GROUP BY f_host, f_ip, burst
    HAVING count(*) >= ${min_failures}
),
successes AS (
    SELECT host AS s_host, src_ip AS s_ip, ts AS s_ts, "user" AS s_user
    FROM system_events
    WHERE app = 'sshd' AND event_type = 'auth_success'
),
judged AS (
    SELECT b.b_host, b.b_ip, b.b_first, b.b_last, b.failures, b.accounts,
           min(s.s_ts) AS got_in_at,
           min(s.s_user) AS got_in_as
    FROM bursts b
    LEFT JOIN successes s
      ON s.s_host = b.b_host
     AND s.s_ip = b.b_ip
     AND s.s_ts >= b.b_first
     AND s.s_ts <= b.b_last + INTERVAL '${success_minutes}' MINUTE
    GROUP BY b.b_host, b.b_ip, b.b_first, b.b_last, b.failures, b.accounts
)
SELECT
    got_in_as AS user_id,
    b_host AS host,
    b_ip AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    b_first AS first_ts,
    greatest(b_last, coalesce(got_in_at, b_last)) AS last_ts,
    failures AS event_count,
    CAST(failures AS DOUBLE) * CASE WHEN got_in_at IS NULL THEN 1.0 ELSE 10.0 END AS score,
    CASE WHEN got_in_at IS NULL THEN 'high' ELSE 'critical' END AS severity,
    CASE WHEN got_in_at IS NULL THEN
        concat(b_ip, ' failed ', CAST(failures AS VARCHAR), ' SSH logins to ', b_host, ' on ',
               CAST(accounts AS VARCHAR), ' account(s) between ', CAST(b_first AS VARCHAR), ' and ',
               CAST(b_last AS VARCHAR), ': block the address at the firewall')
    ELSE
        concat(b_ip, ' failed ', CAST(failures AS VARCHAR), ' SSH logins to ', b_host,
               ', then logged in as ', got_in_as, ' at ', CAST(got_in_at AS VARCHAR),
               ': lock ', got_in_as, ', block the address and treat ', b_host, ' as compromised')
    END AS summary
FROM judged
