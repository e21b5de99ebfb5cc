-- id: account_compromise
-- title: Password guessing followed by a successful login
-- severity: critical
-- scenario: account_compromise
-- description: a burst of failed logins on one account from one address, then a success from that address, in the EMR or over SSH to a server
-- lookback: 1d
-- param.min_failures: 4
-- param.window_minutes: 30
--
-- The EMR's logins and sshd's are one stream: an account guessed on a server
-- is as compromised as one guessed at the EMR's login page. Only sshd's own
-- "Failed ..." lines count, as PAM repeats each.
WITH logins AS (
    SELECT user_id, src_ip, '' AS host, ts,
           (action = 'login_failed' OR (action = 'login' AND outcome = 'failure')) AS failed
    FROM access_events
    WHERE action IN ('login', 'login_failed')
    UNION ALL
    SELECT "user" AS user_id, src_ip, host, ts, event_type = 'auth_failure' AS failed
    FROM system_events
    WHERE app = 'sshd'
      AND event_type IN ('auth_failure', 'auth_success')
      AND "user" IS NOT NULL
      AND message NOT LIKE 'pam_%'
),
success AS (
    SELECT user_id, src_ip, host, ts FROM logins WHERE NOT failed
),
-- Each failure with the end of the window it counts in, computed once per
-- failure: adding an interval to a timestamp is slow in arrow 59 (about
-- 100 ns a row), and in the join's condition it ran for every candidate
-- pair, 640,000 on 10 million events (the join: 97 ms, now 34 ms).
failures AS (
    SELECT user_id, src_ip, host, ts, ts + INTERVAL '${window_minutes}' MINUTE AS counts_until
    FROM logins
    WHERE failed
),
bursts AS (
    SELECT s.user_id, s.src_ip, s.host, s.ts AS success_ts,
           count(*) AS failures, min(f.ts) AS first_failure
    -- The failures first: DataFusion builds its hash table on the left
    -- input, and there are ten times fewer failures than successful logins.
    FROM failures f
    JOIN success s
      ON f.user_id = s.user_id
     AND f.src_ip = s.src_ip
     AND f.host = s.host
     AND f.ts <= s.ts
     AND s.ts <= f.counts_until
    GROUP BY s.user_id, s.src_ip, s.host, s.ts
    HAVING count(*) >= ${min_failures}
)
SELECT
    b.user_id,
    nullif(b.host, '') AS host,
    b.src_ip,
    array_agg(e.patient_id) FILTER (WHERE e.patient_id IS NOT NULL) AS patient_ids,
    min(b.first_failure) AS first_ts,
    max(coalesce(e.ts, b.success_ts)) AS last_ts,
    max(b.failures) + count(e.ts) AS event_count,
    CAST(max(b.failures) AS DOUBLE) AS score,
    CASE WHEN b.host = '' THEN
        concat('account ', b.user_id, ' logged in from ', b.src_ip, ' after ', CAST(max(b.failures) AS VARCHAR),
               ' failed attempts, then opened ', CAST(count(DISTINCT e.patient_id) AS VARCHAR),
               ' chart(s) from there: reset the password and review the session')
    ELSE
        concat('account ', b.user_id, ' logged in to ', b.host, ' over SSH from ', b.src_ip, ' after ',
               CAST(max(b.failures) AS VARCHAR),
               ' failed attempts: lock the account, rotate its keys and review what it ran')
    END AS summary
FROM bursts b
LEFT JOIN access_events e
  ON b.host = ''
 AND e.user_id = b.user_id
 AND e.src_ip = b.src_ip
 AND e.ts > b.success_ts
 AND e.ts <= b.success_ts + INTERVAL '1' HOUR
GROUP BY b.user_id, b.src_ip, b.host, b.success_ts
