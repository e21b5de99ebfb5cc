-- id: log_tampering
-- title: Logging or auditing switched off, cleared, or silent
-- severity: critical
-- scenario: log_tampering
-- description: audit rules deleted or logs truncated; a logging or auditing service stopped and not started again soon; or a host silent for far longer than its usual gap between messages
-- lookback: 7d
-- param.restart_minutes: 10
-- param.gap_factor: 8
-- param.min_gap_minutes: 120
--
-- Log rotation restarts rsyslog every night: a stop followed within
-- restart_minutes by a start of the same service is a restart, not an alert.
-- A host's usual gap is the 99th percentile of the pauses between its
-- messages over the look-back; a pause gap_factor times longer (and at least
-- min_gap_minutes) means the host stopped sending.
WITH cleared AS (
    SELECT host, "user" AS who, ts, message
    FROM system_events
    WHERE event_type = 'log_cleared'
),
service_events AS (
    SELECT host, ts, event_type,
           CASE WHEN app LIKE 'audit%' OR message LIKE '%audit%' THEN 'auditd'
                WHEN message LIKE '%journal%' THEN 'journald'
                ELSE 'syslog' END AS service
    FROM system_events
    WHERE event_type IN ('service_stopped', 'service_started')
),
stops AS (
    SELECT host AS p_host, service AS p_service, ts AS p_ts
    FROM service_events WHERE event_type = 'service_stopped'
),
starts AS (
    SELECT host AS r_host, service AS r_service, ts AS r_ts
    FROM service_events WHERE event_type = 'service_started'
),
left_off AS (
    SELECT p.p_host, p.p_service, min(p.p_ts) AS p_ts, count(*) AS stops
    FROM stops p
    WHERE NOT EXISTS (
        SELECT 1 FROM starts r
        WHERE r.r_host = p.p_host
          AND r.r_service = p.p_service
          AND r.r_ts >= p.p_ts
          AND r.r_ts <= p.p_ts + INTERVAL '${restart_minutes}' MINUTE
    )
    -- One stop of auditd writes two lines (systemd's and the daemon's).
    GROUP BY p.p_host, p.p_service, date_trunc('minute', p.p_ts)
),
pauses AS (
    SELECT host AS q_host, ts AS q_ts,
           lag(ts) OVER (PARTITION BY host ORDER BY ts) AS q_prev
    FROM system_events
),
gaps AS (
    SELECT q_host, q_prev, q_ts,
           CAST(q_ts AS BIGINT) - CAST(q_prev AS BIGINT) AS gap_us
    FROM pauses
    WHERE q_prev IS NOT NULL
),
usual AS (
    SELECT q_host AS u_host, approx_percentile_cont(gap_us, 0.99) AS usual_us
    FROM gaps
    GROUP BY q_host
),
silences AS (
    SELECT g.q_host, g.q_prev, g.q_ts, g.gap_us, u.usual_us
    FROM usual u
    JOIN gaps g ON g.q_host = u.u_host
    WHERE g.gap_us > greatest(u.usual_us * ${gap_factor}, ${min_gap_minutes} * 60000000)
)
SELECT
    who AS user_id,
    host,
    CAST(NULL AS VARCHAR) AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    ts AS first_ts,
    ts AS last_ts,
    1 AS event_count,
    100.0 AS score,
    concat(coalesce(who, 'someone'), ' cleared audit rules or logs on ', host, ' at ', CAST(ts AS VARCHAR),
           ' (', message, '): preserve what is left and investigate that account') AS summary
FROM cleared
UNION ALL
SELECT
    CAST(NULL AS VARCHAR) AS user_id,
    p_host AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    p_ts AS first_ts,
    p_ts AS last_ts,
    stops AS event_count,
    50.0 AS score,
    concat(p_service, ' was stopped on ', p_host, ' at ', CAST(p_ts AS VARCHAR),
           ' and not started again within ${restart_minutes} minutes: find who stopped it and restart it') AS summary
FROM left_off
UNION ALL
SELECT
    CAST(NULL AS VARCHAR) AS user_id,
    q_host AS host,
    CAST(NULL AS VARCHAR) AS src_ip,
    CAST(NULL AS VARCHAR[]) AS patient_ids,
    q_prev AS first_ts,
    q_ts AS last_ts,
    2 AS event_count,
    CAST(gap_us AS DOUBLE) / greatest(CAST(usual_us AS DOUBLE), 1.0) AS score,
    concat(q_host, ' sent nothing for ', CAST(gap_us / 60000000 AS VARCHAR), ' minutes from ',
           CAST(q_prev AS VARCHAR), ' (usually at most ', CAST(usual_us / 60000000 AS VARCHAR),
           '): check whether its logging was switched off') AS summary
FROM silences
