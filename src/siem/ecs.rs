//! Elastic Common Schema-style JSON lines, appended to a file a log shipper
//! (Filebeat, Elastic Agent, Vector) picks up.
//!
//! | alert column | ECS field |
//! |---|---|
//! | last_ts | `@timestamp` |
//! | first_ts / last_ts | `event.start` / `event.end` |
//! | alert_id | `event.id` |
//! | severity | `event.severity` (3, 5, 8, 10) and `log.level` |
//! | score | `event.risk_score` |
//! | summary | `message`, `event.reason` |
//! | rule_id | `rule.id` |
//! | scenario | `rule.name`, `rule.category` |
//! | user_id | `user.name` |
//! | host | `host.name` |
//! | src_ip | `source.ip` |
//! | patient_ids, event_count, run_id | `emrwatch.*` |

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::severity_number;
use crate::detect::Alert;
use crate::detect::sink::rfc3339;

/// One alert as an ECS document.
pub fn to_ecs(al: &Alert) -> serde_json::Value {
    let mut doc = json!({
        "@timestamp": rfc3339(al.last_us),
        "ecs": {"version": "8.11.0"},
        "message": al.summary,
        "log": {"level": al.severity.as_str()},
        "event": {
            "kind": "alert",
            "category": ["iam"],
            "type": ["access"],
            "module": "emrwatch",
            "dataset": "emrwatch.alerts",
            "id": al.alert_id,
            "severity": severity_number(al.severity),
            "risk_score": al.score,
            "start": rfc3339(al.first_us),
            "end": rfc3339(al.last_us),
            "reason": al.summary,
        },
        "rule": {"id": al.rule_id, "name": al.scenario, "category": al.scenario, "ruleset": "emrwatch"},
        "emrwatch": {
            "patient_ids": al.patient_ids,
            "event_count": al.event_count,
            "run_id": al.run_id,
        },
    });
    if let Some(u) = &al.user_id {
        doc["user"] = json!({ "name": u });
    }
    if let Some(h) = &al.host {
        doc["host"] = json!({ "name": h });
    }
    if let Some(ip) = &al.src_ip {
        doc["source"] = json!({ "ip": ip });
    }
    doc
}

/// Appends one line per alert to `path` (created readable by the owner only).
pub fn append(path: &Path, alerts: &[Alert]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mut out = std::io::BufWriter::new(file);
    for al in alerts {
        serde_json::to_writer(&mut out, &to_ecs(al))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    out.get_ref().sync_data()
}
