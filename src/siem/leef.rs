//! IBM QRadar Log Event Extended Format (LEEF:2.0), one alert per message.
//!
//! Attributes are separated by `^` (LEEF 2.0's delimiter field), not LEEF
//! 1.0's tab: syslog relays such as rsyslog rewrite control characters on
//! receipt (a tab arrives as `#011`), which would break every attribute.
//!
//! | alert column | LEEF |
//! |---|---|
//! | rule_id | header Event ID |
//! | scenario | `cat` |
//! | severity | `sev`: low 3, medium 5, high 8, critical 10 |
//! | last_ts | `devTime` (ms since the epoch) |
//! | user_id | `usrName` |
//! | host | `identHostName` |
//! | src_ip | `src` |
//! | alert_id | `alertId` |
//! | first_ts / last_ts | `firstTime` / `lastTime` (RFC 3339) |
//! | event_count | `eventCount` |
//! | patient_ids | `patientIds`, comma-separated |
//! | run_id | `runId` |
//! | score | `score` |
//! | summary | `msg` |

use super::{VENDOR, severity_number, unescape_value};
use crate::detect::Alert;
use crate::detect::sink::rfc3339;

/// Escapes a header field: a pipe or backslash is preceded by a backslash;
/// a line break would end the message, so it becomes a space.
pub fn escape_header(s: &str) -> String {
    crate::siem::cef::escape_header(s)
}

/// Escapes an attribute value: the `^` delimiter, the backslash, and tabs
/// and line breaks (which syslog relays would rewrite).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '^' => out.push_str("\\^"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The LEEF message of one alert.
pub fn format(al: &Alert) -> String {
    let mut attrs: Vec<(&str, String)> = vec![
        ("devTime", (al.last_us / 1000).to_string()),
        ("cat", al.scenario.clone()),
        ("sev", severity_number(al.severity).to_string()),
        ("alertId", al.alert_id.clone()),
        ("firstTime", rfc3339(al.first_us)),
        ("lastTime", rfc3339(al.last_us)),
        ("eventCount", al.event_count.to_string()),
    ];
    if let Some(u) = &al.user_id {
        attrs.push(("usrName", u.clone()));
    }
    if let Some(h) = &al.host {
        attrs.push(("identHostName", h.clone()));
    }
    if let Some(ip) = &al.src_ip {
        attrs.push(("src", ip.clone()));
    }
    attrs.push(("patientIds", al.patient_ids.join(",")));
    attrs.push(("runId", al.run_id.clone()));
    attrs.push(("score", format!("{:.3}", al.score)));
    attrs.push(("msg", al.summary.clone()));
    let body: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_value(v)))
        .collect();
    // LEEF 2.0's sixth header field names the attribute delimiter.
    format!(
        "LEEF:2.0|{}|{}|{}|{}|^|{}",
        escape_header(VENDOR.0),
        escape_header(VENDOR.1),
        escape_header(VENDOR.2),
        escape_header(&al.rule_id),
        body.join("^")
    )
}

/// Splits a LEEF 2.0 message into its header fields and attributes
/// (values unescaped): the inverse of [`format`].
pub fn parse(msg: &str) -> Option<super::Parsed> {
    let (header, rest) = super::split_header(msg.strip_prefix("LEEF:")?, 6)?;
    // Attributes end at a `^` that is not escaped.
    let mut attrs = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '^' => {
                attrs.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    attrs.push(&rest[start..]);
    let attrs = attrs
        .into_iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), unescape_value(v)))
        .collect();
    Some((header, attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_escaping() {
        for v in ["a=b", "tab\there", "x\\y", "two\nlines", "ca^ret", ""] {
            assert_eq!(unescape_value(&escape_value(v)), v);
        }
        assert_eq!(escape_value("a\tb^c"), "a\\tb\\^c");
    }
}
