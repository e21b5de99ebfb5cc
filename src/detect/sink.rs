//! Where alerts go: a ranked table for a person at a terminal, JSON lines for
//! machines (`--out FILE`, or `-` for stdout).

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::Alert;

/// RFC 3339 UTC with milliseconds (`2026-11-01T08:00:00.000Z`).
pub fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One alert as a JSON object (DESIGN.md's columns; times as RFC 3339 UTC).
pub fn to_json(al: &Alert) -> serde_json::Value {
    json!({
        "alert_id": al.alert_id,
        "run_id": al.run_id,
        "rule_id": al.rule_id,
        "scenario": al.scenario,
        "severity": al.severity.as_str(),
        "user_id": al.user_id,
        "host": al.host,
        "src_ip": al.src_ip,
        "patient_ids": al.patient_ids,
        "first_ts": rfc3339(al.first_us),
        "last_ts": rfc3339(al.last_us),
        "event_count": al.event_count,
        "score": al.score,
        "summary": al.summary,
    })
}

/// Writes one JSON object per line.
pub fn write_jsonl(alerts: &[Alert], out: &mut dyn Write) -> std::io::Result<()> {
    for al in alerts {
        serde_json::to_writer(&mut *out, &to_json(al))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The window as `MM-DD HH:MM` to `HH:MM` (same day) or to `MM-DD HH:MM`.
fn window(first: i64, last: i64) -> String {
    let f = rfc3339(first);
    let l = rfc3339(last);
    // 2026-11-01T08:00:00.000Z: date 5..10, time 11..16.
    let (fd, ft) = (f.get(5..10).unwrap_or(""), f.get(11..16).unwrap_or(""));
    let (ld, lt) = (l.get(5..10).unwrap_or(""), l.get(11..16).unwrap_or(""));
    if fd == ld {
        format!("{fd} {ft}-{lt}")
    } else {
        format!("{fd} {ft} to {ld} {lt}")
    }
}

/// A ranked table of at most `limit` alerts (already ranked), and a line
/// saying how many more there are.
pub fn render_table(alerts: &[Alert], limit: usize) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "severity".into(),
        "score".into(),
        "actor".into(),
        "patients".into(),
        "window (UTC)".into(),
        "summary".into(),
    ]];
    for al in alerts.iter().take(limit) {
        rows.push([
            al.severity.as_str().to_string(),
            format!("{:.1}", al.score),
            clip(al.actor(), 16),
            al.patient_ids.len().to_string(),
            window(al.first_us, al.last_us),
            clip(&al.summary, 100),
        ]);
    }
    let mut width = [0usize; 6];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(width)
            .enumerate()
            .map(|(j, (c, w))| {
                if j == 5 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    if alerts.len() > limit {
        out.push_str(&format!(
            "… and {} more (all of them with --out FILE or --out -)\n",
            alerts.len() - limit
        ));
    }
    out
}
