//! Syslog lines (RFC 3164 and RFC 5424, told apart per line) into the
//! columns of `system_events`, and the messages that matter for security
//! normalised into an `event_type`, a user and a source address.
//!
//! ```text
//! line ─parse─▶ SyslogLine (ts, host, app, pid, facility, severity, message) ─normalize─▶ Normalized
//! ```
//!
//! No regular expressions: fields are found with `memchr` and fixed
//! prefixes, since every line of a host's log goes through here. A line
//! that is not syslog is an error that says why; a message we do not
//! recognise is not an error, it is `event_type = "other"`.

use std::borrow::Cow;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use memchr::memchr;

use super::RecordSink;
use super::builder::{SystemBuilder, SystemRow};
use super::framing::Span;
use super::timestamp::{days_from_civil, parse_rfc3339};

/// Which RFC a line follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc {
    /// BSD syslog: `<PRI>Mmm dd hh:mm:ss host tag[pid]: message` (PRI optional;
    /// rsyslog's RFC 3339 timestamps accepted in place of the BSD one).
    R3164,
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`.
    R5424,
}

/// One parsed line; text borrows from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// UTC microseconds since the epoch.
    pub ts_us: i64,
    /// Sending host, if the line names one.
    pub host: Option<&'a str>,
    /// Application (RFC 3164 tag without its pid; RFC 5424 APP-NAME).
    pub app: Option<&'a str>,
    /// Process id as written (RFC 5424 PROCID need not be a number).
    pub pid: Option<&'a str>,
    /// Facility from `<PRI>` (0-23), if there was one.
    pub facility: Option<u8>,
    /// Severity from `<PRI>` (0 emergency … 7 debug), if there was one.
    pub severity: Option<u8>,
    /// RFC 5424 MSGID.
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data, as written (`[id k="v"]…`).
    pub structured_data: Option<&'a str>,
    /// The free-text message.
    pub message: &'a str,
    /// Which RFC the line follows.
    pub rfc: Rfc,
}

/// What a line without a year or a zone means: RFC 3164 timestamps carry
/// neither. The year is the reference's (the file's modification time, or a
/// configured date), or the year before when the month and day come after
/// the reference's: a log modified on 2 January holds December's lines of
/// the year before. Each line is read on its own, so chunks of one file
/// decoded on different threads agree.
#[derive(Debug, Clone)]
pub struct SyslogClock {
    /// Zone of timestamps written without one.
    pub tz: Tz,
    /// Year of the reference date.
    pub year: i32,
    /// Month and day of the reference date.
    month_day: (u32, u32),
}

impl SyslogClock {
    /// A clock for a file last written at `reference_us` (UTC µs), reading
    /// zone-less times in `tz`.
    pub fn new(reference_us: i64, tz: Tz) -> Self {
        let secs = reference_us.div_euclid(1_000_000);
        let date = chrono::DateTime::from_timestamp(secs, 0)
            .map(|d| d.with_timezone(&tz).date_naive())
            .unwrap_or_default();
        use chrono::Datelike;
        Self {
            tz,
            year: date.year(),
            month_day: (date.month(), date.day()),
        }
    }

    /// A clock whose RFC 3164 timestamps are all in `year`.
    pub fn in_year(year: i32, tz: Tz) -> Self {
        Self {
            tz,
            year,
            month_day: (12, 31),
        }
    }

    /// UTC microseconds of BSD timestamp `t` in year `y`, a wall-clock time
    /// in this clock's zone; `None` for a date that does not exist or a time
    /// a DST change skipped (a fold takes the earlier instant).
    fn local_us(&self, y: i32, t: &Bsd) -> Option<i64> {
        if t.day > super::timestamp::days_in_month(i64::from(y), t.month) {
            return None;
        }
        if self.tz == Tz::UTC {
            let days = days_from_civil(i64::from(y), t.month, t.day);
            let secs = days * 86_400 + i64::from(t.hour * 3600 + t.min * 60 + t.sec);
            return Some(secs * 1_000_000 + t.us);
        }
        let naive =
            NaiveDate::from_ymd_opt(y, t.month, t.day)?.and_hms_opt(t.hour, t.min, t.sec)?;
        let dt = self.tz.from_local_datetime(&naive).earliest()?;
        Some(dt.timestamp_micros() + t.us)
    }

    /// The year of a BSD timestamp on `month`/`day`. A day after the
    /// reference's is last year's; one day of slack covers clocks a little
    /// ahead of the file system's.
    fn year_for(&self, month: u32, day: u32) -> i32 {
        // Day of the year, February always 28 days long: near enough for a
        // comparison with a day of slack.
        const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let ordinal = |m: u32, d: u32| BEFORE[(m - 1) as usize] + d;
        let (rm, rd) = self.month_day;
        if ordinal(month, day) > ordinal(rm, rd) + 1 {
            self.year - 1
        } else {
            self.year
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(c - b'0'))
        }
        _ => None,
    }
}

/// A BSD timestamp as real senders write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bsd {
    year: Option<i32>,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    us: i64,
    /// Bytes used, including a `:` right after the time.
    len: usize,
}

/// `Mmm dd hh:mm:ss[.frac]`, as RFC 3164 has it (the day space-padded), and
/// as senders write it: any case of month, one or two spaces and digits for
/// the day, a year before the time (`Mar 7 2008 19:06:53`), a `:` after it.
fn bsd_timestamp(b: &[u8]) -> Option<Bsd> {
    let name = b.get(..3)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))? as u32 + 1;
    let mut i = 3;
    let spaces = |i: &mut usize| {
        let start = *i;
        while b.get(*i) == Some(&b' ') {
            *i += 1;
        }
        *i > start
    };
    let number = |i: &mut usize, max_digits: usize| {
        let start = *i;
        let mut v = 0u32;
        while *i - start < max_digits && b.get(*i).is_some_and(u8::is_ascii_digit) {
            v = v * 10 + u32::from(b[*i] - b'0');
            *i += 1;
        }
        (*i > start).then_some(v)
    };
    if !spaces(&mut i) {
        return None;
    }
    let day = number(&mut i, 2)?;
    if !spaces(&mut i) {
        return None;
    }
    let mut year = None;
    if b.get(i + 4) == Some(&b' ') && b.get(i + 2) != Some(&b':') {
        year = Some(number(&mut i, 4)? as i32);
        spaces(&mut i);
    }
    let hour = two_digits(b.get(i..i + 2)?)?;
    let min = two_digits(b.get(i + 3..i + 5)?)?;
    let sec = two_digits(b.get(i + 6..i + 8)?)?;
    if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
        return None;
    }
    if day == 0 || day > 31 || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    i += 8;
    let mut us = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 6 {
                us = us * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start).min(6)..6 {
            us *= 10;
        }
    }
    if b.get(i) == Some(&b':') {
        i += 1;
    }
    // Leap seconds are folded into the last second of the minute.
    Some(Bsd {
        year,
        month,
        day,
        hour,
        min,
        sec: sec.min(59),
        us,
        len: i,
    })
}

/// An RFC 3339 timestamp, or one without a zone (read in the clock's zone).
fn iso_timestamp(token: &str, clock: &SyslogClock) -> Option<i64> {
    if let Some(us) = parse_rfc3339(token) {
        return Some(us);
    }
    // No zone: parse it as UTC, then move it into the configured zone.
    let mut utc = String::with_capacity(token.len() + 1);
    utc.push_str(token);
    utc.push('Z');
    let as_utc = parse_rfc3339(&utc)?;
    if clock.tz == Tz::UTC {
        return Some(as_utc);
    }
    let secs = as_utc.div_euclid(1_000_000);
    let us = as_utc.rem_euclid(1_000_000);
    let naive = chrono::DateTime::from_timestamp(secs, 0)?.naive_utc();
    let local = clock.tz.from_local_datetime(&naive).earliest()?;
    Some(local.timestamp_micros() + us)
}

/// `<PRI>`: facility and severity, and the bytes used.
fn pri(b: &[u8]) -> Result<Option<(u8, u8, usize)>, String> {
    if b.first() != Some(&b'<') {
        return Ok(None);
    }
    let close = memchr(b'>', &b[..b.len().min(5)])
        .ok_or_else(|| "a `<` that opens no <PRI> (1-3 digits and `>`)".to_string())?;
    let digits = &b[1..close];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("<PRI> is not a number".into());
    }
    let v: u32 = digits.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0'));
    if v > 191 {
        return Err(format!("<PRI> {v} is over 191"));
    }
    Ok(Some(((v / 8) as u8, (v % 8) as u8, close + 1)))
}

/// The next space-delimited token of `s` and the rest after the space.
fn token(s: &str) -> (&str, &str) {
    match memchr(b' ', s.as_bytes()) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// Whether `line` continues the record before it: macOS and some daemons
/// write a multi-line message as lines indented with a tab or spaces, where
/// rsyslog would have escaped the newline. The caller appends such a line to
/// the previous record's message.
pub fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

/// Parses one line (a trailing CR is ignored).
pub fn parse<'a>(line: &'a [u8], clock: &SyslogClock) -> Result<SyslogLine<'a>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "invalid UTF-8 at byte {} (syslog lines must be UTF-8)",
            e.valid_up_to()
        )
    })?;
    let (facility, severity, at) = match pri(line)? {
        Some((f, s, n)) => (Some(f), Some(s), n),
        None => (None, None, 0),
    };
    let rest = &text[at..];
    if let Some(after) = rest.strip_prefix("1 ") {
        return parse_5424(after, facility, severity, clock);
    }
    parse_3164(rest, facility, severity, clock)
}

fn parse_5424<'a>(
    s: &'a str,
    facility: Option<u8>,
    severity: Option<u8>,
    clock: &SyslogClock,
) -> Result<SyslogLine<'a>, String> {
    let (ts, s) = token(s);
    let ts_us = iso_timestamp(ts, clock)
        .ok_or_else(|| format!("RFC 5424 timestamp {ts:?} is not RFC 3339"))?;
    let (host, s) = token(s);
    let (app, s) = token(s);
    let (pid, s) = token(s);
    let (msgid, s) = token(s);
    let (structured_data, message) = if let Some(s) = s.strip_prefix('-') {
        (None, s)
    } else if s.starts_with('[') {
        let end = structured_data_end(s)
            .ok_or_else(|| "RFC 5424 structured data is not closed by `]`".to_string())?;
        (Some(&s[..end]), &s[end..])
    } else {
        return Err("RFC 5424 line with no structured data or `-` after the MSGID".into());
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Ok(SyslogLine {
        ts_us,
        host: nil(host),
        app: nil(app),
        pid: nil(pid),
        facility,
        severity,
        msgid: nil(msgid),
        structured_data,
        message,
        rfc: Rfc::R5424,
    })
}

/// End (exclusive) of the SD-ELEMENTs at the start of `s`: `]` inside a
/// quoted value may be escaped as `\]`.
fn structured_data_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut quoted = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    Some(i)
}

fn parse_3164<'a>(
    s: &'a str,
    facility: Option<u8>,
    severity: Option<u8>,
    clock: &SyslogClock,
) -> Result<SyslogLine<'a>, String> {
    let s = s.trim_start_matches(' ');
    let (ts_us, after) = if let Some(t) = bsd_timestamp(s.as_bytes()) {
        let year = t.year.unwrap_or_else(|| clock.year_for(t.month, t.day));
        let n = t.len;
        let ts = clock
            .local_us(year, &t)
            .ok_or_else(|| format!("{:?} does not exist in {year} in {}", &s[..n], clock.tz))?;
        (ts, s[n..].trim_start_matches(' '))
    } else {
        let (t, rest) = token(s);
        let ts = iso_timestamp(t, clock).ok_or_else(|| {
            "no syslog timestamp: expected `Mmm dd hh:mm:ss` (RFC 3164) or an RFC 3339 time"
                .to_string()
        })?;
        (ts, rest)
    };
    // A host, unless the next word is already the tag (`sudo: …`).
    let (first, rest) = token(after);
    let (host, tagged) = if first.ends_with(':') || first.contains('[') || rest.is_empty() {
        (None, after)
    } else {
        (Some(first), rest)
    };
    let (app, pid, message) = tag(tagged);
    Ok(SyslogLine {
        ts_us,
        host: host.filter(|h| !h.is_empty()),
        app,
        pid,
        facility,
        severity,
        msgid: None,
        structured_data: None,
        message,
        rfc: Rfc::R3164,
    })
}

/// `app[pid]: message` or `app: message`; failing those, as rsyslog does,
/// the first word up to a `[` or `,` is the program and the rest the message.
fn tag(s: &str) -> (Option<&str>, Option<&str>, &str) {
    let b = s.as_bytes();
    let limit = b.len().min(64);
    if let Some(colon) = memchr(b':', &b[..limit]) {
        let head = &s[..colon];
        if !head.is_empty() && !head.contains(' ') {
            let message = s[colon + 1..].strip_prefix(' ').unwrap_or(&s[colon + 1..]);
            return match (head.find('['), head.strip_suffix(']')) {
                (Some(open), Some(inner)) => {
                    (Some(&head[..open]), Some(&inner[open + 1..]), message)
                }
                _ => (Some(head), None, message),
            };
        }
    }
    let (word, message) = token(s);
    let end = word.find(['[', ',']).unwrap_or(word.len());
    (Some(&word[..end]).filter(|w| !w.is_empty()), None, message)
}

/// Facility names by number (RFC 5424 table 1, as rsyslog names them).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Severity names by number.
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Decodes the lines of one chunk into `builder`, rejecting bad ones through
/// `sink`. Lines that continue a record ([`is_continuation`]) are joined to
/// its message with newlines; returns how many were joined, since they are
/// part of a record rather than records.
///
/// `rejected_lines` (ascending) are the lines the framer already rejected
/// (over the size limit). Continuation lines right after one belong to that
/// record: they go with it, uncounted, rather than joining the record before
/// it or standing as records of their own.
pub fn decode_lines(
    buf: &[u8],
    spans: &[Span],
    rejected_lines: &[u64],
    clock: &SyslogClock,
    builder: &mut SystemBuilder,
    sink: &mut RecordSink,
) -> usize {
    let text = |s: &Span| {
        let b = &buf[s.start..s.end];
        b.strip_suffix(b"\r").unwrap_or(b)
    };
    // Whether the framer rejected a line after span `j - 1` and before span `j`
    // (blank lines between do not count): span `j` then follows that record.
    let after_rejected = |j: usize| {
        let prev = if j == 0 { 0 } else { spans[j - 1].line };
        let k = rejected_lines.partition_point(|&r| r <= prev);
        rejected_lines.get(k).is_some_and(|&r| r < spans[j].line)
    };
    let mut joined = 0;
    // Whether the span before went with a record the framer rejected.
    let mut with_rejected = false;
    let mut i = 0;
    while i < spans.len() {
        let span = &spans[i];
        let line = text(span);
        sink.begin(span.offset, line);
        if is_continuation(line) && (after_rejected(i) || with_rejected) {
            with_rejected = true;
            joined += 1;
            i += 1;
            continue;
        }
        with_rejected = false;
        if is_continuation(line) {
            sink.reject(
                span.line,
                "an indented line continues the record before it, and there is none here \
                 (an indented first line)"
                    .into(),
            );
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while end < spans.len() && is_continuation(text(&spans[end])) && !after_rejected(end) {
            end += 1;
        }
        joined += end - i - 1;
        let parsed = parse(line, clock).and_then(|l| {
            let mut message = Cow::Borrowed(l.message);
            for s in &spans[i + 1..end] {
                let more = std::str::from_utf8(text(s))
                    .map_err(|_| format!("invalid UTF-8 in continuation line {}", s.line))?;
                let m = message.to_mut();
                m.push('\n');
                m.push_str(more);
            }
            Ok((l, message))
        });
        match parsed {
            Ok((l, message)) => {
                let n = normalize(l.app, &message);
                let row = SystemRow {
                    ts: l.ts_us,
                    host: l.host,
                    app: l.app,
                    pid: l.pid,
                    facility: l.facility.map(|f| FACILITIES[usize::from(f)]),
                    severity: l.severity.map(|s| SEVERITIES[usize::from(s)]),
                    msgid: l.msgid,
                    structured_data: l.structured_data,
                    event_type: n.event_type,
                    user: n.user,
                    src_ip: n.src_ip,
                    src_port: n.src_port,
                    message: Cow::Borrowed(message.as_ref()),
                };
                builder.append(&row, span.line);
            }
            Err(reason) => sink.reject(span.line, reason),
        }
        i = end;
    }
    joined
}

/// What a message means for security, when we know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized<'a> {
    /// `auth_success`, `auth_failure`, `invalid_user`, `session_opened`,
    /// `session_closed`, `disconnect`, `sudo`, `sudo_failure`, `su`,
    /// `su_failure`, `user_added`, `user_deleted`, `user_modified`,
    /// `group_added`, `group_changed`, `admin_group_added`,
    /// `password_changed`, `service_stopped`, `service_started` (logging
    /// and auditing services only), `log_cleared`, or `other`.
    pub event_type: &'static str,
    /// The account the event is about (the one logging in, running sudo,
    /// being added…).
    pub user: Option<&'a str>,
    /// Remote address, for network logins.
    pub src_ip: Option<&'a str>,
    /// Remote port.
    pub src_port: Option<u16>,
}

impl<'a> Normalized<'a> {
    fn new(event_type: &'static str, user: Option<&'a str>) -> Self {
        Self {
            event_type,
            user,
            src_ip: None,
            src_port: None,
        }
    }

    const OTHER: Self = Self {
        event_type: "other",
        user: None,
        src_ip: None,
        src_port: None,
    };
}

/// Groups whose members administer the host.
const ADMIN_GROUPS: [&str; 4] = ["sudo", "wheel", "admin", "root"];

/// The word of `s` after `prefix`, up to a space, comma, quote or `(`.
fn word_after<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let at = s.find(prefix)? + prefix.len();
    let rest = &s[at..];
    let end = rest
        .find([' ', ',', '\'', '"', '(', ';'])
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// `from IP port N` (sshd): the address and port.
fn from_ip_port(s: &str) -> (Option<&str>, Option<u16>) {
    let ip = word_after(s, " from ").or_else(|| word_after(s, "rhost="));
    // "port 45022", "port 45022:11: Bye" (Received disconnect)
    let port = word_after(s, " port ").and_then(|p| {
        let digits = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
        p[..digits].parse().ok()
    });
    (ip, port)
}

/// The part of a `pam_unix(SERVICE:…)` message's service before the colon.
fn pam_service(message: &str) -> Option<&str> {
    let inner = message.strip_prefix("pam_unix(")?;
    let end = inner.find([':', ')'])?;
    Some(&inner[..end])
}

/// Normalises a message from `app` (`sshd(pam_unix)` counts as `sshd`).
pub fn normalize<'a>(app: Option<&'a str>, message: &'a str) -> Normalized<'a> {
    // PAM's messages start with its module (`pam_unix(sshd:auth): …`) or
    // come under a tag naming it (`sshd(pam_unix)[42]: …`); only they are
    // searched for PAM's phrases, which were a third of decoding otherwise.
    let pam = message.starts_with("pam_") || app.is_some_and(|a| a.contains("(pam_"));
    let app = app.map_or("", |a| a.split('(').next().unwrap_or(a));
    let app = app.rsplit('/').next().unwrap_or(app);
    let with_addr = |mut n: Normalized<'a>| {
        if n.src_ip.is_none() {
            (n.src_ip, n.src_port) = from_ip_port(message);
        }
        n
    };
    if pam && let Some(n) = pam_message(app, message) {
        return with_addr(n);
    }
    match app {
        "sshd" => sshd(message).map_or(Normalized::OTHER, with_addr),
        "sudo" => sudo(message),
        "su" => su(message),
        "useradd" | "adduser" => {
            if let Some(user) = word_after(message, "new user: name=") {
                Normalized::new("user_added", Some(user))
            } else if let Some(group) = word_after(message, "new group: name=") {
                Normalized::new("group_added", Some(group))
            } else if message.starts_with("add '") {
                group_member(message)
            } else {
                Normalized::OTHER
            }
        }
        "userdel" | "deluser" => word_after(message, "delete user '")
            .or_else(|| word_after(message, "removed user "))
            .map_or(Normalized::OTHER, |u| {
                Normalized::new("user_deleted", Some(u))
            }),
        "usermod" => {
            if message.starts_with("add '") {
                group_member(message)
            } else {
                word_after(message, "change user '").map_or(Normalized::OTHER, |u| {
                    Normalized::new("user_modified", Some(u))
                })
            }
        }
        "groupadd" => word_after(message, "name=").map_or(Normalized::OTHER, |g| {
            Normalized::new("group_added", Some(g))
        }),
        "gpasswd" => {
            // "user bob added by root to group sudo"
            match (
                word_after(message, "user "),
                word_after(message, " to group "),
            ) {
                (Some(user), Some(group)) if message.contains(" added by ") => Normalized::new(
                    if ADMIN_GROUPS.contains(&group) {
                        "admin_group_added"
                    } else {
                        "group_changed"
                    },
                    Some(user),
                ),
                _ => Normalized::OTHER,
            }
        }
        "chpasswd" | "passwd" => Normalized::OTHER,
        "systemd" | "init" => service(message),
        "auditctl" | "auditd" | "audit" | "kernel"
            if message.contains("remove_rule") || message.contains("op=remove") =>
        {
            Normalized::new("log_cleared", None)
        }
        "auditd" if message.contains("exiting") || message.contains("stopped") => {
            Normalized::new("service_stopped", None)
        }
        "auditd" if message.starts_with("Started dispatcher") || message.contains(" start,") => {
            Normalized::new("service_started", None)
        }
        "rsyslogd" if message.contains("exiting on signal") => {
            Normalized::new("service_stopped", None)
        }
        // rsyslogd's own `[origin software="rsyslogd" …] start`.
        "rsyslogd" if message.ends_with("] start") || message == "start" => {
            Normalized::new("service_started", None)
        }
        _ => Normalized::OTHER,
    }
}

/// PAM's own messages, the same for every service: failures, sessions,
/// password changes.
fn pam_message<'a>(app: &'a str, message: &'a str) -> Option<Normalized<'a>> {
    if message.contains("authentication failure;") {
        let user = word_after(message, " user=");
        let kind = match pam_service(message).unwrap_or(app) {
            "sudo" => "sudo_failure",
            "su" | "su-l" => "su_failure",
            _ => "auth_failure",
        };
        return Some(Normalized::new(kind, user));
    }
    if let Some(rest) = message
        .find("session opened for user ")
        .map(|i| &message[i + 24..])
    {
        let user = rest.split(['(', ' ']).next().filter(|u| !u.is_empty());
        return Some(match pam_service(message).unwrap_or(app) {
            // su's PAM session is the only trace of su on many systems: the
            // user is who switched ("by alice(uid=1000)"), else the account
            // switched to. sudo's session only repeats its COMMAND line,
            // which is the `sudo` event, so it stays a session.
            "su" | "su-l" => {
                let by = word_after(message, " by ");
                Normalized::new("su", by.or(user))
            }
            _ => Normalized::new("session_opened", user),
        });
    }
    if let Some(rest) = message
        .find("session closed for user ")
        .map(|i| &message[i + 24..])
    {
        let user = rest.split(['(', ' ']).next().filter(|u| !u.is_empty());
        return Some(Normalized::new("session_closed", user));
    }
    if let Some(user) = word_after(message, "password changed for ") {
        return Some(Normalized::new("password_changed", Some(user)));
    }
    None
}

/// `add 'USER' to group 'GROUP'` (usermod, useradd).
fn group_member(message: &str) -> Normalized<'_> {
    let user = word_after(message, "add '");
    let group = word_after(message, "group '");
    match (user, group) {
        (Some(u), Some(g)) if !message.contains("shadow group") => Normalized::new(
            if ADMIN_GROUPS.contains(&g) {
                "admin_group_added"
            } else {
                "group_changed"
            },
            Some(u),
        ),
        (Some(u), Some(_)) => Normalized::new("group_changed", Some(u)),
        _ => Normalized::OTHER,
    }
}

/// sshd's own messages (PAM ones are handled before).
fn sshd(m: &str) -> Option<Normalized<'_>> {
    let n = |t, u| Some(Normalized::new(t, u));
    if let Some(rest) = m.strip_prefix("Accepted ") {
        // "Accepted password for USER from …", "Accepted publickey for USER from …"
        return n("auth_success", word_after(rest, " for "));
    }
    if let Some(rest) = m.strip_prefix("Failed ") {
        let user = word_after(rest, " for invalid user ").or_else(|| word_after(rest, " for "));
        return n("auth_failure", user);
    }
    if let Some(rest) = m.strip_prefix("Invalid user ") {
        let user = rest.split(' ').next().filter(|u| *u != "from");
        return n("invalid_user", user);
    }
    if m.starts_with("error: maximum authentication attempts exceeded") {
        let user = word_after(m, " for invalid user ").or_else(|| word_after(m, " for "));
        return n("auth_failure", user);
    }
    // "Disconnected from [authenticating|invalid] user USER IP port N",
    // "Connection closed by [invalid user USER] IP [port N] [preauth]"
    if let Some(rest) = m
        .strip_prefix("Disconnected from ")
        .or_else(|| m.strip_prefix("Connection closed by "))
    {
        let user = word_after(rest, "user ");
        let words: Vec<&str> = rest.split(' ').collect();
        let mut n = Normalized::new("disconnect", user);
        match words.iter().position(|w| *w == "port") {
            Some(i) => {
                n.src_ip = i.checked_sub(1).map(|j| words[j]);
                n.src_port = words.get(i + 1).and_then(|p| p.parse().ok());
            }
            None => n.src_ip = words.first().copied().filter(|w| w.contains(['.', ':'])),
        }
        return Some(n);
    }
    if m.starts_with("Received disconnect from ") {
        return n("disconnect", word_after(m, " user "));
    }
    None
}

/// `USER : TTY=… ; PWD=… ; USER=root ; COMMAND=…`, or
/// `USER : 3 incorrect password attempts ; …`.
fn sudo(m: &str) -> Normalized<'_> {
    let Some((user, rest)) = m.split_once(" : ") else {
        return Normalized::OTHER;
    };
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return Normalized::OTHER;
    }
    let command = rest.find("COMMAND=").map(|i| &rest[i + 8..]);
    if rest.contains("incorrect password attempt") || rest.contains("NOT in sudoers") {
        Normalized::new("sudo_failure", Some(user))
    } else if command.is_some_and(clears_logs) {
        Normalized::new("log_cleared", Some(user))
    } else if command.is_some() {
        Normalized::new("sudo", Some(user))
    } else {
        Normalized::OTHER
    }
}

/// A command that deletes audit rules or log history.
fn clears_logs(command: &str) -> bool {
    let program = command.split(' ').next().unwrap_or("");
    let program = program.rsplit('/').next().unwrap_or(program);
    let args = &command[command.find(' ').unwrap_or(command.len())..];
    match program {
        "auditctl" => args.split(' ').any(|a| a == "-D" || a == "-e0") || args.contains("-e 0"),
        "journalctl" => args.contains("--vacuum") || args.contains("--rotate"),
        "rm" | "shred" | "truncate" | "unlink" => args.contains("/var/log"),
        _ => false,
    }
}

/// `Successful su for root by USER`, `FAILED su for root by USER`,
/// `(to root) USER on pts/0`.
fn su(m: &str) -> Normalized<'_> {
    let by = word_after(m, " by ");
    if m.starts_with("Successful su") {
        Normalized::new("su", by)
    } else if m.starts_with("FAILED su") || m.starts_with("FAILED SU") {
        Normalized::new("su_failure", by)
    } else if let Some(rest) = m.strip_prefix("(to ") {
        let user = rest.split(' ').nth(1);
        Normalized::new("su", user)
    } else {
        Normalized::OTHER
    }
}

/// systemd stopping a service that keeps the audit trail.
fn service(m: &str) -> Normalized<'_> {
    const WATCHED: [&str; 7] = [
        "auditd",
        "rsyslog",
        "syslog",
        "systemd-journald",
        "Security Auditing",
        "System Logging",
        "Journal Service",
    ];
    // "Stopping …" and "Stopped …" come in pairs: only the second counts;
    // likewise "Starting …" and "Started …". A stop followed by a start is a
    // restart (log rotation does it nightly), which log_tampering forgives.
    let watched = || WATCHED.iter().any(|n| m.contains(n));
    if m.starts_with("Stopped ") && watched() {
        Normalized::new("service_stopped", None)
    } else if m.starts_with("Started ") && watched() {
        Normalized::new("service_started", None)
    } else {
        Normalized::OTHER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> SyslogClock {
        SyslogClock::in_year(2026, Tz::UTC)
    }

    fn us(rfc3339: &str) -> i64 {
        parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn rfc3164_with_and_without_pri() {
        let l = parse(
            b"<38>Mar 27 19:06:53 source_server sshd(pam_unix)[12750]: session opened for user foo by (uid=0)\r",
            &clock(),
        )
        .unwrap();
        assert_eq!(l.rfc, Rfc::R3164);
        assert_eq!((l.facility, l.severity), (Some(4), Some(6)));
        assert_eq!(l.ts_us, us("2026-03-27T19:06:53Z"));
        assert_eq!(l.host, Some("source_server"));
        assert_eq!((l.app, l.pid), (Some("sshd(pam_unix)"), Some("12750")));
        assert_eq!(l.message, "session opened for user foo by (uid=0)");

        let l = parse(b"Nov  3 09:47:02 veridian sudo: timstack : TTY=pts/6 ; PWD=/x ; USER=root ; COMMAND=/usr/bin/tail", &clock()).unwrap();
        assert_eq!(
            (l.facility, l.host, l.app, l.pid),
            (None, Some("veridian"), Some("sudo"), None)
        );
        assert_eq!(l.ts_us, us("2026-11-03T09:47:02Z"));
    }

    #[test]
    fn lenient_bsd_timestamps_as_senders_write_them() {
        for line in [
            "<38>Mar 7 19:06:53 example tag: m",
            "<38> Mar  7 19:06:53 example tag: m",
            "<38>MAR 07 19:06:53 example tag: m",
            "<38>Mar 7 19:06:53: example tag: m",
        ] {
            let l = parse(line.as_bytes(), &clock()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(l.ts_us, us("2026-03-07T19:06:53Z"), "{line}");
            assert_eq!(
                (l.host, l.app, l.message),
                (Some("example"), Some("tag"), "m"),
                "{line}"
            );
        }
        let l = parse(b"<38>Mar 7 2008 19:06:53 example tag: m", &clock()).unwrap();
        assert_eq!(l.ts_us, us("2008-03-07T19:06:53Z"), "a written year wins");
        let l = parse(
            b"Feb 29 12:00:00.25 h a: m",
            &SyslogClock::in_year(2024, Tz::UTC),
        )
        .unwrap();
        assert_eq!(l.ts_us, us("2024-02-29T12:00:00.25Z"));
        let e = parse(b"Feb 29 12:00:00 h a: m", &clock()).unwrap_err();
        assert!(e.contains("does not exist in 2026"), "{e}");
    }

    #[test]
    fn the_year_comes_from_the_reference_date_and_the_zone_applies() {
        // A file written on 2 January 2026 in Zurich holds last December's lines.
        let c = SyslogClock::new(us("2026-01-02T08:00:00Z"), "Europe/Zurich".parse().unwrap());
        let a = parse(b"Dec 31 23:59:59 h a: m", &c).unwrap();
        let b = parse(b"Jan  1 00:00:01 h a: m", &c).unwrap();
        let c3 = parse(b"Jan  3 00:00:01 h a: m", &c).unwrap();
        assert_eq!(a.ts_us, us("2025-12-31T22:59:59Z"));
        assert_eq!(b.ts_us, us("2025-12-31T23:00:01Z"));
        assert_eq!(c3.ts_us, us("2026-01-02T23:00:01Z"), "a day of slack");
        let d = parse(b"Jan  4 00:00:01 h a: m", &c).unwrap();
        assert_eq!(
            d.ts_us,
            us("2025-01-03T23:00:01Z"),
            "later than the file: last year"
        );
        let c = SyslogClock::new(us("2026-02-28T10:00:00Z"), Tz::UTC);
        let e = parse(b"Mar  1 00:00:01 h a: m", &c).unwrap();
        assert_eq!(
            e.ts_us,
            us("2026-03-01T00:00:01Z"),
            "the next day, across a month end"
        );
        // A zone-less RFC 3339 time is read in the configured zone too.
        let c = SyslogClock::in_year(2025, "Europe/Zurich".parse().unwrap());
        let l = parse(b"2019-06-14T10:40:20.912134 localhost sudo: x", &c).unwrap();
        assert_eq!(l.ts_us, us("2019-06-14T08:40:20.912134Z"));
        let l = parse(
            b"1986-04-26T01:23:45.101+0400 rmbkmonitor04 shutdown[2649]: halt",
            &c,
        )
        .unwrap();
        assert_eq!(l.ts_us, us("1986-04-25T21:23:45.101Z"));
        assert_eq!(
            (l.host, l.app, l.pid),
            (Some("rmbkmonitor04"), Some("shutdown"), Some("2649"))
        );
    }

    #[test]
    fn rfc5424_fields_and_structured_data() {
        let l = parse(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appl]ication\"][examplePriority@32473 class=\"high\"] \xEF\xBB\xBFAn application event log entry",
            &clock(),
        )
        .unwrap();
        assert_eq!(l.rfc, Rfc::R5424);
        assert_eq!((l.facility, l.severity), (Some(20), Some(5)));
        assert_eq!(l.ts_us, us("2003-10-11T22:14:15.003Z"));
        assert_eq!(
            (l.host, l.app, l.pid, l.msgid),
            (
                Some("mymachine.example.com"),
                Some("evntslog"),
                None,
                Some("ID47")
            )
        );
        assert_eq!(
            l.structured_data,
            Some(
                "[exampleSDID@32473 iut=\"3\" eventSource=\"Appl]ication\"][examplePriority@32473 class=\"high\"]"
            )
        );
        assert_eq!(l.message, "An application event log entry");
        let l = parse(
            b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% do-nuts",
            &clock(),
        )
        .unwrap();
        assert_eq!(
            (l.app, l.pid, l.structured_data, l.message),
            (Some("myproc"), Some("8710"), None, "%% do-nuts")
        );
        assert_eq!(l.ts_us, us("2003-08-24T12:14:15.000003Z"));
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, why) in [
            (&b"Header1: abc"[..], "no syslog timestamp"),
            (b"<999>Mar  7 19:06:53 h a: m", "over 191"),
            (b"<3x>Mar  7 19:06:53 h a: m", "<PRI>"),
            (b"<34>1 yesterday h a - - - m", "RFC 3339"),
            (
                b"<34>1 2003-10-11T22:14:15Z h a - - [x y=\"z\" m",
                "not closed",
            ),
            (b"Mar  7 19:06:53 h a: \xff\xfe", "UTF-8"),
        ] {
            let e = parse(line, &clock()).unwrap_err();
            assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(line));
        }
    }

    fn norm(app: &str, m: &str) -> (&'static str, Option<String>, Option<String>, Option<u16>) {
        let n = normalize(Some(app), m);
        (
            n.event_type,
            n.user.map(str::to_string),
            n.src_ip.map(str::to_string),
            n.src_port,
        )
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn messages_that_matter_are_normalised() {
        let cases = [
            (
                "sshd",
                "Accepted password for vagrant from 192.168.33.1 port 58803 ssh2",
                ("auth_success", s("vagrant"), s("192.168.33.1"), Some(58803)),
            ),
            (
                "sshd",
                "Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: RSA 39:33",
                ("auth_success", s("vagrant"), s("10.0.2.2"), Some(63673)),
            ),
            (
                "sshd",
                "Failed password for root from 216.160.83.57 port 29160 ssh2",
                ("auth_failure", s("root"), s("216.160.83.57"), Some(29160)),
            ),
            (
                "sshd",
                "Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
                (
                    "auth_failure",
                    s("webmaster"),
                    s("173.234.31.186"),
                    Some(38926),
                ),
            ),
            (
                "sshd",
                "Invalid user test from 10.0.2.2",
                ("invalid_user", s("test"), s("10.0.2.2"), None),
            ),
            (
                "sshd(pam_unix)",
                "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ",
                ("auth_failure", None, s("218.188.2.4"), None),
            ),
            (
                "sshd",
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root",
                (
                    "auth_failure",
                    s("root"),
                    s("5.36.59.76.dynamic-dsl-ip.omantel.net.om"),
                    None,
                ),
            ),
            (
                "sshd",
                "Received disconnect from 112.95.230.3 port 45022:11: Bye Bye [preauth]",
                ("disconnect", None, s("112.95.230.3"), Some(45022)),
            ),
            (
                "sshd",
                "Disconnected from invalid user admin 112.95.230.3 port 45022 [preauth]",
                ("disconnect", s("admin"), s("112.95.230.3"), Some(45022)),
            ),
            (
                "sshd",
                "pam_unix(sshd:session): session opened for user bob(uid=1001) by (uid=0)",
                ("session_opened", s("bob"), None, None),
            ),
            (
                "sudo",
                "vagrant : TTY=pts/0 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls",
                ("sudo", s("vagrant"), None, None),
            ),
            (
                "sudo",
                "bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/sh",
                ("sudo_failure", s("bob"), None, None),
            ),
            (
                "sudo",
                "eve : TTY=pts/2 ; PWD=/root ; USER=root ; COMMAND=/sbin/auditctl -D",
                ("log_cleared", s("eve"), None, None),
            ),
            (
                "sudo",
                "pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1001)",
                ("session_opened", s("root"), None, None),
            ),
            (
                "su",
                "pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)",
                ("su", s("alice"), None, None),
            ),
            (
                "su",
                "Successful su for root by alice",
                ("su", s("alice"), None, None),
            ),
            (
                "su",
                "FAILED su for root by mallory",
                ("su_failure", s("mallory"), None, None),
            ),
            (
                "useradd",
                "new user: name=svc_sync7, UID=1500, GID=1500, home=/home/svc_sync7, shell=/bin/bash",
                ("user_added", s("svc_sync7"), None, None),
            ),
            (
                "usermod",
                "add 'svc_sync7' to group 'sudo'",
                ("admin_group_added", s("svc_sync7"), None, None),
            ),
            (
                "usermod",
                "add 'svc_sync7' to shadow group 'sudo'",
                ("group_changed", s("svc_sync7"), None, None),
            ),
            (
                "usermod",
                "add 'carol' to group 'docker'",
                ("group_changed", s("carol"), None, None),
            ),
            (
                "gpasswd",
                "user dave added by root to group wheel",
                ("admin_group_added", s("dave"), None, None),
            ),
            (
                "userdel",
                "delete user 'svc_sync7'",
                ("user_deleted", s("svc_sync7"), None, None),
            ),
            (
                "passwd",
                "pam_unix(passwd:chauthtok): password changed for u01234",
                ("password_changed", s("u01234"), None, None),
            ),
            (
                "systemd",
                "Stopped rsyslog.service - System Logging Service.",
                ("service_stopped", None, None, None),
            ),
            (
                "systemd",
                "Stopping rsyslog.service - System Logging Service...",
                ("other", None, None, None),
            ),
            (
                "systemd",
                "Stopped auditd.service - Security Auditing Service.",
                ("service_stopped", None, None, None),
            ),
            (
                "systemd",
                "Started rsyslog.service - System Logging Service.",
                ("service_started", None, None, None),
            ),
            (
                "systemd",
                "Starting rsyslog.service - System Logging Service...",
                ("other", None, None, None),
            ),
            (
                "rsyslogd",
                r#"[origin software="rsyslogd" swVersion="8.2302.0" x-pid="612" x-info="https://www.rsyslog.com"] start"#,
                ("service_started", None, None, None),
            ),
            (
                "rsyslogd",
                r#"[origin software="rsyslogd" swVersion="8.2302.0" x-pid="612" x-info="https://www.rsyslog.com"] exiting on signal 15."#,
                ("service_stopped", None, None, None),
            ),
            (
                "systemd",
                "Started Session 42 of User alice.",
                ("other", None, None, None),
            ),
            (
                "systemd",
                "Stopped target Basic System.",
                ("other", None, None, None),
            ),
            (
                "rsyslogd",
                "rsyslogd was HUPed",
                ("other", None, None, None),
            ),
            (
                "automount",
                "lookup(file): lookup for foobar failed",
                ("other", None, None, None),
            ),
        ];
        for (app, m, want) in cases {
            assert_eq!(norm(app, m), want, "{app}: {m}");
        }
    }

    /// The real logs under ../shared/data/external that are syslog: every
    /// line parses, and a few are checked field by field.
    fn external(rel: &str) -> Option<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/external")
            .join(rel);
        std::fs::read(&path).ok()
    }

    #[test]
    fn real_syslog_files_parse_without_a_reject() {
        let files = [
            "loghub/Linux/Linux_2k.log",
            "loghub/OpenSSH/OpenSSH_2k.log",
            "elastic-beats-system/auth/test.log",
            "elastic-beats-system/auth/timestamp.log",
            "elastic-beats-system/syslog/tz-offset.log",
            "elastic-beats-system/syslog/suse-syslog.log",
            "lnav-testlogs/logfile_syslog.0",
            "lnav-testlogs/logfile_syslog.1",
            "lnav-testlogs/logfile_syslog.2",
            "lnav-testlogs/logfile_syslog.3",
            "lnav-testlogs/logfile_with_zones.0",
            "elastic-beats-system/syslog/darwin-syslog-sample.log",
        ];
        let mut seen = 0;
        for rel in files {
            let Some(bytes) = external(rel) else {
                eprintln!("skipped: ../shared/data/external/{rel} is not here");
                continue;
            };
            let c = clock();
            let mut lines = 0;
            for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.is_empty() || line == b"\r" {
                    continue;
                }
                if is_continuation(line) {
                    assert!(lines > 0, "{rel}:{}: continues nothing", i + 1);
                    continue;
                }
                lines += 1;
                if let Err(e) = parse(line, &c) {
                    panic!("{rel}:{}: {e}: {}", i + 1, String::from_utf8_lossy(line));
                }
            }
            assert!(lines > 0, "{rel} is empty");
            seen += 1;
        }
        if std::env::var_os("CI").is_some() {
            assert_eq!(seen, files.len(), "CI has ../shared");
        }
    }

    /// Specific lines of the real files, parsed and normalised.
    #[test]
    fn real_lines_field_by_field() {
        type Want = (
            &'static str,
            usize,
            &'static str,
            &'static str,
            Option<&'static str>,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        );
        // (file, line number, host, app, pid, event_type, user, src_ip)
        let want: [Want; 20] = [
            (
                "loghub/Linux/Linux_2k.log",
                1,
                "combo",
                "sshd(pam_unix)",
                Some("19939"),
                "auth_failure",
                None,
                Some("218.188.2.4"),
            ),
            (
                "loghub/Linux/Linux_2k.log",
                2,
                "combo",
                "sshd(pam_unix)",
                Some("19937"),
                "other",
                None,
                None,
            ),
            (
                "loghub/Linux/Linux_2k.log",
                14,
                "combo",
                "su(pam_unix)",
                Some("21416"),
                "su",
                Some("cyrus"),
                None,
            ),
            (
                "loghub/Linux/Linux_2k.log",
                15,
                "combo",
                "su(pam_unix)",
                Some("21416"),
                "session_closed",
                Some("cyrus"),
                None,
            ),
            (
                "loghub/OpenSSH/OpenSSH_2k.log",
                1,
                "LabSZ",
                "sshd",
                Some("24200"),
                "other",
                None,
                None,
            ),
            (
                "loghub/OpenSSH/OpenSSH_2k.log",
                2,
                "LabSZ",
                "sshd",
                Some("24200"),
                "invalid_user",
                Some("webmaster"),
                Some("173.234.31.186"),
            ),
            (
                "loghub/OpenSSH/OpenSSH_2k.log",
                6,
                "LabSZ",
                "sshd",
                Some("24200"),
                "auth_failure",
                Some("webmaster"),
                Some("173.234.31.186"),
            ),
            (
                "loghub/OpenSSH/OpenSSH_2k.log",
                7,
                "LabSZ",
                "sshd",
                Some("24200"),
                "disconnect",
                None,
                Some("173.234.31.186"),
            ),
            (
                "loghub/OpenSSH/OpenSSH_2k.log",
                13,
                "LabSZ",
                "sshd",
                Some("24206"),
                "auth_failure",
                Some("test9"),
                Some("52.80.34.196"),
            ),
            (
                "elastic-beats-system/auth/test.log",
                1,
                "localhost",
                "sshd",
                Some("3402"),
                "auth_success",
                Some("vagrant"),
                Some("10.0.2.2"),
            ),
            (
                "elastic-beats-system/auth/test.log",
                2,
                "localhost",
                "sshd",
                Some("7483"),
                "auth_success",
                Some("vagrant"),
                Some("192.168.33.1"),
            ),
            (
                "elastic-beats-system/auth/test.log",
                3,
                "localhost",
                "sshd",
                Some("3430"),
                "invalid_user",
                Some("test"),
                Some("10.0.2.2"),
            ),
            (
                "elastic-beats-system/auth/test.log",
                4,
                "slave22",
                "sshd",
                Some("5774"),
                "auth_failure",
                Some("root"),
                Some("216.160.83.57"),
            ),
            (
                "elastic-beats-system/auth/test.log",
                5,
                "localhost",
                "sudo",
                None,
                "sudo",
                Some("vagrant"),
                None,
            ),
            (
                "elastic-beats-system/auth/timestamp.log",
                1,
                "localhost",
                "sudo",
                None,
                "session_opened",
                Some("root"),
                None,
            ),
            (
                "elastic-beats-system/syslog/tz-offset.log",
                1,
                "rmbkmonitor04",
                "shutdown",
                Some("2649"),
                "other",
                None,
                None,
            ),
            (
                "elastic-beats-system/syslog/suse-syslog.log",
                1,
                "linux-sqrz",
                "systemd",
                Some("4179"),
                "other",
                None,
                None,
            ),
            (
                "lnav-testlogs/logfile_syslog.0",
                1,
                "veridian",
                "automount",
                Some("7998"),
                "other",
                None,
                None,
            ),
            (
                "lnav-testlogs/logfile_syslog.0",
                4,
                "veridian",
                "sudo",
                None,
                "sudo",
                Some("timstack"),
                None,
            ),
            (
                "lnav-testlogs/logfile_syslog.3",
                1,
                "Tims-Air",
                "syslogd",
                Some("314"),
                "other",
                None,
                None,
            ),
        ];
        for (rel, n, host, app, pid, event_type, user, ip) in want {
            let Some(bytes) = external(rel) else { continue };
            let line = bytes.split(|b| *b == b'\n').nth(n - 1).unwrap();
            let l = parse(line, &clock()).unwrap();
            let norm = normalize(l.app, l.message);
            assert_eq!(
                (
                    l.host,
                    l.app,
                    l.pid,
                    norm.event_type,
                    norm.user,
                    norm.src_ip
                ),
                (Some(host), Some(app), pid, event_type, user, ip),
                "{rel}:{n}"
            );
        }
    }

    /// rsyslog's parser test vectors: each file holds a line and the fields
    /// rsyslog parses from it (PRI,facility,severity,timestamp,host,
    /// programname,…). Where rsyslog finds a host and a program, so do we.
    #[test]
    fn rsyslog_test_vectors() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/external/rsyslog-parser-testvectors");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut checked = 0;
        let mut report = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("parse1") {
                continue;
            }
            let text = std::fs::read(&path).unwrap();
            let mut lines = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty() && !l.starts_with(b"#"));
            let (Some(input), Some(expected)) = (lines.next(), lines.next()) else {
                continue;
            };
            // rsyslog's harness turns `\011` in the input into a tab and
            // prints it back as `#011`: not the bytes a sender would send.
            if input.windows(2).any(|w| w == b"\\0") {
                continue;
            }
            let expected = String::from_utf8_lossy(expected);
            let fields: Vec<&str> = expected.splitn(7, ',').collect();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            match parse(input, &clock()) {
                Err(e) => report.push(format!("{name}: rejected: {e}")),
                Ok(l) => {
                    if let [_, _, _, _, host, program, ..] = fields[..] {
                        let ours = (l.host.unwrap_or(""), l.app.unwrap_or(""));
                        if !program.is_empty() && ours != (host, program) {
                            report.push(format!("{name}: {ours:?} != {:?}", (host, program)));
                        }
                    }
                    checked += 1;
                }
            }
        }
        eprintln!("{checked} vectors parsed\n{}", report.join("\n"));
        assert!(report.is_empty());
    }

    #[test]
    fn continuations_of_a_line_the_framer_rejected_go_with_it() {
        // Line 2 was over the size limit (a framer reject, so no span); lines
        // 3 and 5 continue it (line 4 is blank), not line 1's record.
        let text = "Mar  7 19:06:53 h app[1]: first\n\n\tsecond\n\n\tthird\n";
        let spans: Vec<Span> = [(0, 31, 1), (33, 40, 3), (42, 48, 5)]
            .into_iter()
            .map(|(start, end, line)| Span {
                start,
                end,
                line,
                offset: start as u64,
            })
            .collect();
        let mut builder = SystemBuilder::with_capacity(4);
        let mut sink = RecordSink::new("mem://t".into());
        let joined = decode_lines(
            text.as_bytes(),
            &spans,
            &[2],
            &clock(),
            &mut builder,
            &mut sink,
        );
        assert_eq!(joined, 2);
        assert!(sink.rejects.is_empty(), "{:?}", sink.rejects);
        let batch = builder.finish("mem://t");
        let message = batch.column_by_name("message").unwrap();
        let message = message
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(message.value(0), "first");
    }

    #[test]
    fn a_chunk_joins_continuations_and_counts_every_record_once() {
        let text = "\tan orphan continuation\n\
                    Mar  7 19:06:53 h app[1]: first\n\
                    \tsecond line\n  third line\n\
                    not syslog\n\tits continuation\n\
                    <13>Mar  7 19:06:54 h sshd[2]: Accepted password for bob from 10.0.0.1 port 22 ssh2\n";
        let mut spans = Vec::new();
        let mut start = 0;
        for (i, line) in text.split_terminator('\n').enumerate() {
            spans.push(Span {
                start,
                end: start + line.len(),
                line: i as u64 + 1,
                offset: start as u64,
            });
            start += line.len() + 1;
        }
        let mut builder = SystemBuilder::with_capacity(4);
        let mut sink = RecordSink::new("mem://t".into());
        let joined = decode_lines(
            text.as_bytes(),
            &spans,
            &[],
            &clock(),
            &mut builder,
            &mut sink,
        );
        assert_eq!(joined, 3, "two after `first`, one after the bad line");
        let batch = builder.finish("mem://t");
        assert_eq!(batch.num_rows(), 2);
        let lines: Vec<u64> = sink.rejects.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 5]);
        assert!(
            sink.rejects[0].reason.contains("continues"),
            "{:?}",
            sink.rejects[0]
        );
        // records framed (7 lines - 3 joined) = 2 stored + 2 rejected
        assert_eq!(spans.len() - joined, batch.num_rows() + sink.rejects.len());
        let message = batch
            .column_by_name("message")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!(message.value(0), "first\n\tsecond line\n  third line");
        let event = batch.column_by_name("event_type").unwrap();
        let event = arrow::compute::cast(event, &arrow::datatypes::DataType::Utf8).unwrap();
        let event = event
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        assert_eq!((event.value(0), event.value(1)), ("other", "auth_success"));
    }
}
