//! ArcSight Common Event Format (CEF:0), one alert per message.
//!
//! | alert column | CEF |
//! |---|---|
//! | rule_id | header Device Event Class ID |
//! | scenario | header Name, and `cat` |
//! | severity | header Severity: low 3, medium 5, high 8, critical 10 |
//! | alert_id | `externalId` |
//! | first_ts / last_ts | `start` / `end` (ms since the epoch); `rt` = last_ts |
//! | user_id | `suser` |
//! | host | `dhost` (the host the activity happened on) |
//! | src_ip | `src` |
//! | event_count | `cnt` |
//! | summary | `msg` |
//! | patient_ids | `cs1` (`cs1Label=patientIds`), comma-separated |
//! | run_id | `cs2` (`cs2Label=runId`) |
//! | score | `cfp1` (`cfp1Label=score`) |

use super::{VENDOR, severity_number, unescape_value};
use crate::detect::Alert;

/// Escapes a header field: backslash and pipe; a line break would end the
/// message, so it becomes a space.
pub fn escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an extension value: backslash, equals sign and line breaks, as
/// CEF defines. CEF has no escape for other control characters (a tab), and
/// syslog daemons mangle them, so they become spaces.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The CEF message of one alert.
pub fn format(al: &Alert) -> String {
    let mut ext: Vec<(&str, String)> = vec![
        ("externalId", al.alert_id.clone()),
        ("rt", (al.last_us / 1000).to_string()),
        ("start", (al.first_us / 1000).to_string()),
        ("end", (al.last_us / 1000).to_string()),
        ("cat", al.scenario.clone()),
        ("cnt", al.event_count.to_string()),
    ];
    if let Some(u) = &al.user_id {
        ext.push(("suser", u.clone()));
    }
    if let Some(h) = &al.host {
        ext.push(("dhost", h.clone()));
    }
    if let Some(ip) = &al.src_ip {
        ext.push(("src", ip.clone()));
    }
    ext.push(("cs1Label", "patientIds".into()));
    ext.push(("cs1", al.patient_ids.join(",")));
    ext.push(("cs2Label", "runId".into()));
    ext.push(("cs2", al.run_id.clone()));
    ext.push(("cfp1Label", "score".into()));
    ext.push(("cfp1", format!("{:.3}", al.score)));
    // Last: the one free-text field.
    ext.push(("msg", al.summary.clone()));
    let extension: Vec<String> = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_value(v)))
        .collect();
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        escape_header(VENDOR.0),
        escape_header(VENDOR.1),
        escape_header(VENDOR.2),
        escape_header(&al.rule_id),
        escape_header(&al.scenario),
        severity_number(al.severity),
        extension.join(" ")
    )
}

/// Splits a CEF message back into its 7 header fields and its extension
/// pairs (values unescaped): the inverse of [`format`], for tests and for
/// anyone checking what a SIEM will see.
pub fn parse(msg: &str) -> Option<super::Parsed> {
    let (header, ext) = super::split_header(msg.strip_prefix("CEF:")?, 7)?;
    // Keys are `word=`; a value runs to the next unescaped ` key=`.
    let bytes = ext.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == b'=' {
            let mut k = i;
            while k > 0 && bytes[k - 1].is_ascii_alphanumeric() {
                k -= 1;
            }
            if k < i && (k == 0 || bytes[k - 1] == b' ') {
                starts.push((k, i));
            }
        }
        i += 1;
    }
    let mut pairs = Vec::new();
    for (n, &(k, eq)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(ext.len(), |&(nk, _)| nk - 1);
        pairs.push((ext[k..eq].to_string(), unescape_value(&ext[eq + 1..end])));
    }
    Some((header, pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_escaping() {
        for v in [
            "a=b",
            "back\\slash",
            "pi|pe",
            "two\nlines\r\n",
            "\\=\\n",
            "",
        ] {
            assert_eq!(unescape_value(&escape_value(v)), v);
        }
        assert_eq!(escape_value("a=b\\c\nd"), "a\\=b\\\\c\\nd");
        assert_eq!(escape_header("x|y\\z"), "x\\|y\\\\z");
    }
}
