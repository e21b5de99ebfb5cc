//! Timestamp parsing into UTC microseconds since the Unix epoch.
//!
//! RFC 3339 is parsed by hand (it is on every record of every FHIR file, so it
//! is on the hot path); strftime patterns go through chrono with a time zone.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// How a source writes its timestamps.
#[derive(Debug, Clone, PartialEq)]
pub enum TimestampFormat {
    /// RFC 3339 / ISO 8601 with an offset or `Z` (FHIR `instant`).
    Rfc3339,
    /// Seconds since the epoch (a number or a numeric string; fractions allowed).
    EpochSeconds,
    /// Milliseconds since the epoch.
    EpochMillis,
    /// Microseconds since the epoch.
    EpochMicros,
    /// A chrono strftime pattern with no offset in it, read in the given zone.
    Pattern {
        /// e.g. `%Y-%m-%d %H:%M:%S%.f`
        pattern: String,
        /// The zone the wall-clock times are in.
        tz: Tz,
    },
}

impl TimestampFormat {
    /// Parses a format name as written in a mapping file: `rfc3339`,
    /// `epoch_s`, `epoch_ms`, `epoch_us`, or a strftime pattern (which then needs `tz`).
    pub fn from_config(name: &str, tz: Option<&str>) -> Result<Self, String> {
        let zone = |tz: Option<&str>| -> Result<Tz, String> {
            tz.unwrap_or("UTC").parse::<Tz>().map_err(|_| {
                format!(
                    "unknown time zone {:?} (use an IANA name such as Europe/Zurich)",
                    tz.unwrap_or("")
                )
            })
        };
        Ok(match name {
            "rfc3339" | "iso8601" => Self::Rfc3339,
            "epoch_s" | "epoch" => Self::EpochSeconds,
            "epoch_ms" => Self::EpochMillis,
            "epoch_us" => Self::EpochMicros,
            p if p.contains('%') => Self::Pattern {
                pattern: p.to_string(),
                tz: zone(tz)?,
            },
            other => {
                return Err(format!(
                    "unknown timestamp format {other:?}: use rfc3339, epoch_s, epoch_ms, epoch_us or a strftime pattern like \"%Y-%m-%d %H:%M:%S\""
                ));
            }
        })
    }

    /// Parses a textual timestamp.
    pub fn parse_str(&self, s: &str) -> Option<i64> {
        match self {
            Self::Rfc3339 => parse_rfc3339(s),
            Self::EpochSeconds | Self::EpochMillis | Self::EpochMicros => {
                if let Ok(i) = s.parse::<i64>() {
                    self.from_i64(i)
                } else {
                    self.from_f64(s.parse::<f64>().ok()?)
                }
            }
            Self::Pattern { pattern, tz } => {
                let naive = NaiveDateTime::parse_from_str(s, pattern).ok()?;
                // In a DST fold take the earlier instant; a time in a DST gap does not exist.
                let dt = tz.from_local_datetime(&naive).earliest()?;
                Some(dt.timestamp_micros())
            }
        }
    }

    /// Parses an integer timestamp (epoch formats only).
    pub fn from_i64(&self, v: i64) -> Option<i64> {
        match self {
            Self::EpochSeconds => v.checked_mul(1_000_000),
            Self::EpochMillis => v.checked_mul(1_000),
            Self::EpochMicros => Some(v),
            _ => None,
        }
    }

    /// Parses a floating-point timestamp (epoch formats only).
    pub fn from_f64(&self, v: f64) -> Option<i64> {
        let scale = match self {
            Self::EpochSeconds => 1e6,
            Self::EpochMillis => 1e3,
            Self::EpochMicros => 1.0,
            _ => return None,
        };
        let us = (v * scale).round();
        (us.is_finite() && us.abs() < 9.2e18).then_some(us as i64)
    }
}

fn digits<const N: usize>(b: &[u8], at: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + N)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since the epoch of the `YYYY-MM-DD` at the start of `b` (at least 10
/// bytes), or `None` when it is not a valid date.
///
/// Records arrive in time order, so nearly every record has the previous
/// one's date: the last valid date is kept per thread and compared as two
/// words before anything is parsed.
fn date_days(b: &[u8]) -> Option<i64> {
    use std::cell::Cell;
    thread_local! {
        // Zero bytes are not digits, so the initial value never matches.
        static LAST: Cell<(u64, u16, i64)> = const { Cell::new((0, 0, 0)) };
    }
    let head = u64::from_le_bytes(b[..8].try_into().ok()?);
    let tail = u16::from_le_bytes(b[8..10].try_into().ok()?);
    let (h, t, days) = LAST.get();
    if h == head && t == tail {
        return Some(days);
    }
    let year = digits::<4>(b, 0)?;
    let month = digits::<2>(b, 5)?;
    let day = digits::<2>(b, 8)?;
    let y = i64::from(year);
    if b[4] != b'-'
        || b[7] != b'-'
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(y, month)
    {
        return None;
    }
    let days = days_from_civil(y, month, day);
    LAST.set((head, tail, days));
    Some(days)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM|±HHMM)` into UTC
/// microseconds. A time without a zone is refused: guessing a zone for an
/// audit trail silently shifts every event.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    // The shortest valid form, `YYYY-MM-DDTHH:MM:SSZ`.
    if b.len() < 20 {
        return None;
    }
    let days = date_days(b)?;
    let hour = digits::<2>(b, 11)?;
    let min = digits::<2>(b, 14)?;
    let sec = digits::<2>(b, 17)?;
    if !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    // Leap seconds (60) are folded into the next second rather than rejected.
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..6 {
            micros *= 10;
        }
    }
    let offset_secs: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let oh = digits::<2>(b, i + 1)?;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (digits::<2>(b, i + 4)?, i + 6)
            } else {
                (digits::<2>(b, i + 3)?, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let secs = days * 86_400 + i64::from(hour * 3600 + min * 60 + sec) - offset_secs;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_micros(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn rfc3339_matches_chrono() {
        for s in [
            "2013-06-20T23:41:23Z",
            "1970-01-01T12:00:00.123Z",
            "2025-01-15T15:29:00.434+00:00",
            "2024-08-06T14:11:57.560606-04:00",
            "2024-02-29T00:00:00.1+05:30",
            "1969-12-31T23:59:59.999999Z",
            "2000-03-01T00:00:00.123456789Z",
        ] {
            assert_eq!(parse_rfc3339(s), Some(chrono_micros(s)), "{s}");
        }
        assert_eq!(
            parse_rfc3339("2020-04-29T09:49:00+0200"),
            Some(chrono_micros("2020-04-29T09:49:00+02:00"))
        );
    }

    #[test]
    fn a_remembered_date_never_vouches_for_the_rest_of_a_timestamp() {
        // Same day back to back (the per-thread date cache hits), across
        // days, and broken strings sharing a cached date's first ten bytes.
        let run = [
            ("2024-02-29T00:00:00Z", true),
            ("2024-02-29T23:59:59.5Z", true),
            ("2024-02-29X23:59:59Z", false),
            ("2024-02-29T25:00:00Z", false),
            ("2024-02-29T10:00:00", false),
            ("2024-02-29T10:00:00-03:00", true),
            ("2023-02-28T10:00:00Z", true),
            ("2023-02-29T10:00:00Z", false),
            ("2023-02-29T10:00:00Z", false),
            ("2023-02-28T11:00:00Z", true),
        ];
        for (s, valid) in run {
            let want = valid.then(|| chrono_micros(s));
            assert_eq!(parse_rfc3339(s), want, "{s}");
        }
    }

    #[test]
    fn rfc3339_refuses_what_is_not_an_instant() {
        for s in [
            "",
            "3000",
            "1800-02",
            "1970-01-01",
            "1970-01-01T12:00:00.123",
            "2014-10-09T14:58:00",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00Zjunk",
            "2023-01-01T00:00:00+25:00",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }

    #[test]
    fn epochs_and_patterns() {
        let want = chrono_micros("2024-03-10T12:34:56Z");
        assert_eq!(
            TimestampFormat::EpochSeconds.parse_str("1710074096"),
            Some(want)
        );
        assert_eq!(
            TimestampFormat::EpochMillis.from_i64(1_710_074_096_000),
            Some(want)
        );
        assert_eq!(TimestampFormat::EpochMicros.from_i64(want), Some(want));
        assert_eq!(
            TimestampFormat::EpochSeconds.from_f64(1_710_074_096.5),
            Some(want + 500_000)
        );
        let zurich =
            TimestampFormat::from_config("%Y-%m-%d %H:%M:%S%.f", Some("Europe/Zurich")).unwrap();
        // 13:34:56 in Zurich in March (CET, +01:00) is 12:34:56 UTC.
        assert_eq!(zurich.parse_str("2024-03-10 13:34:56"), Some(want));
        assert_eq!(
            zurich.parse_str("2024-03-10 13:34:56.250"),
            Some(want + 250_000)
        );
        // 02:30 on the spring-forward night does not exist in Zurich.
        assert_eq!(zurich.parse_str("2024-03-31 02:30:00"), None);
        assert!(TimestampFormat::from_config("%Y", Some("Mars/Olympus")).is_err());
        assert!(TimestampFormat::from_config("yyyy", None).is_err());
    }
}
