//! Scoring alerts against the incidents `emrwatch gen` injected.
//!
//! The matching rule is DESIGN.md's: an alert matches an incident when the
//! scenario is the same, the alert's `user_id`, `host` or `src_ip` is the
//! incident's actor, the alert's `[first_ts, last_ts]` overlaps the incident's
//! `[start_ts, end_ts]`, and, when the label names a patient, the alert's
//! `patient_ids` contains it. Timestamps are compared as instants, whatever
//! offset they were written with.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One injected incident (a row of `labels.csv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Scenario name from the vocabulary.
    pub scenario: String,
    /// User id, host or source address of the culprit.
    pub actor: String,
    /// The patient concerned, if one.
    pub patient_id: Option<String>,
    /// First malicious event, UTC microseconds.
    pub start_us: i64,
    /// Last malicious event, UTC microseconds.
    pub end_us: i64,
}

/// The fields of an alert that scoring reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Scenario the alerting rule detects.
    pub scenario: String,
    /// Acting account, if any.
    pub user_id: Option<String>,
    /// Acting host, if any.
    pub host: Option<String>,
    /// Acting source address, if any.
    pub src_ip: Option<String>,
    /// Patients concerned.
    pub patient_ids: Vec<String>,
    /// First event, UTC microseconds.
    pub first_us: i64,
    /// Last event, UTC microseconds.
    pub last_us: i64,
}

impl Alert {
    /// Whether this alert detects `label`.
    pub fn matches(&self, label: &Label) -> bool {
        let actor = |v: &Option<String>| v.as_deref() == Some(label.actor.as_str());
        self.scenario == label.scenario
            && (actor(&self.user_id) || actor(&self.host) || actor(&self.src_ip))
            && self.first_us <= label.end_us
            && label.start_us <= self.last_us
            && label
                .patient_id
                .as_ref()
                .is_none_or(|p| self.patient_ids.contains(p))
    }
}

/// Scores of one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScenarioScore {
    /// Scenario name.
    pub scenario: String,
    /// Incidents labelled.
    pub incidents: usize,
    /// Incidents matched by at least one alert.
    pub detected: usize,
    /// detected / incidents (None without incidents).
    pub recall: Option<f64>,
    /// Alerts raised for the scenario.
    pub alerts: usize,
    /// Alerts that match at least one incident.
    pub true_alerts: usize,
    /// true_alerts / alerts (None without alerts).
    pub precision: Option<f64>,
    /// Harmonic mean of precision and recall (missing ones count as 0).
    pub f1: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// One row per scenario with incidents or alerts, by name.
    pub scenarios: Vec<ScenarioScore>,
    /// Mean recall over scenarios with incidents.
    pub macro_recall: f64,
    /// Mean precision over scenarios with incidents or alerts (a scenario
    /// with incidents but no alerts counts 0, and so does one with alerts but
    /// no incidents: false alarms of a scenario nobody injected are still false).
    pub macro_precision: f64,
    /// Mean F1 over the same scenarios as precision.
    pub macro_f1: f64,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Scores `alerts` against `labels`.
pub fn evaluate(labels: &[Label], alerts: &[Alert]) -> Report {
    let mut names: BTreeMap<&str, ScenarioScore> = BTreeMap::new();
    for l in labels {
        let s = names.entry(&l.scenario).or_default();
        s.incidents += 1;
        if alerts.iter().any(|a| a.matches(l)) {
            s.detected += 1;
        }
    }
    for a in alerts {
        let s = names.entry(&a.scenario).or_default();
        s.alerts += 1;
        if labels.iter().any(|l| a.matches(l)) {
            s.true_alerts += 1;
        }
    }
    let mut report = Report::default();
    for (name, mut s) in names {
        s.scenario = name.to_string();
        s.recall = (s.incidents > 0).then(|| s.detected as f64 / s.incidents as f64);
        s.precision = (s.alerts > 0).then(|| s.true_alerts as f64 / s.alerts as f64);
        s.f1 = f1(s.precision.unwrap_or(0.0), s.recall.unwrap_or(0.0));
        report.scenarios.push(s);
    }
    let with_incidents: Vec<&ScenarioScore> = report
        .scenarios
        .iter()
        .filter(|s| s.incidents > 0)
        .collect();
    let mean = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    report.macro_recall = mean(&mut with_incidents.iter().map(|s| s.recall.unwrap_or(0.0)));
    report.macro_precision = mean(&mut report.scenarios.iter().map(|s| s.precision.unwrap_or(0.0)));
    report.macro_f1 = mean(&mut report.scenarios.iter().map(|s| s.f1));
    report
}

fn instant(s: &str, what: &str, file: &Path, line: usize) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.timestamp_micros())
        .map_err(|e| Error::Input {
            input: format!("{}:{line}", file.display()),
            reason: format!("{what} {s:?} is not an RFC 3339 timestamp: {e}"),
        })
}

#[derive(Deserialize)]
struct LabelRow {
    scenario: String,
    actor: String,
    patient_id: Option<String>,
    start_ts: String,
    end_ts: String,
}

/// Reads `labels.csv` (header: scenario, actor, patient_id, start_ts, end_ts).
pub fn read_labels(path: &Path) -> Result<Vec<Label>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::Input {
        input: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<LabelRow>().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| Error::Input {
            input: format!("{}:{line}", path.display()),
            reason: format!("{e} (expected columns scenario, actor, patient_id, start_ts, end_ts)"),
        })?;
        out.push(Label {
            start_us: instant(&row.start_ts, "start_ts", path, line)?,
            end_us: instant(&row.end_ts, "end_ts", path, line)?,
            scenario: row.scenario,
            actor: row.actor,
            patient_id: row.patient_id.filter(|p| !p.is_empty()),
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
struct AlertRow {
    scenario: String,
    user_id: Option<String>,
    host: Option<String>,
    src_ip: Option<String>,
    #[serde(default)]
    patient_ids: Option<Vec<String>>,
    first_ts: String,
    last_ts: String,
}

/// Reads alerts as JSON lines (the `--out` of `detect`/`scan`).
pub fn read_alerts(path: &Path) -> Result<Vec<Alert>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Input {
        input: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = i + 1;
        let row: AlertRow = serde_json::from_str(l).map_err(|e| Error::Input {
            input: format!("{}:{line}", path.display()),
            reason: format!("not an alert: {e}"),
        })?;
        out.push(Alert {
            first_us: instant(&row.first_ts, "first_ts", path, line)?,
            last_us: instant(&row.last_ts, "last_ts", path, line)?,
            scenario: row.scenario,
            user_id: row.user_id,
            host: row.host,
            src_ip: row.src_ip,
            patient_ids: row.patient_ids.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The report as an aligned text table.
pub fn render(report: &Report) -> String {
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.3}"));
    let mut out = format!(
        "{:<22} {:>9} {:>8} {:>7} {:>7} {:>11} {:>9} {:>6}\n",
        "scenario", "incidents", "detected", "recall", "alerts", "true_alerts", "precision", "f1"
    );
    for s in &report.scenarios {
        out.push_str(&format!(
            "{:<22} {:>9} {:>8} {:>7} {:>7} {:>11} {:>9} {:>6.3}\n",
            s.scenario,
            s.incidents,
            s.detected,
            pct(s.recall),
            s.alerts,
            s.true_alerts,
            pct(s.precision),
            s.f1
        ));
    }
    out.push_str(&format!(
        "{:<22} {:>9} {:>8} {:>7.3} {:>7} {:>11} {:>9.3} {:>6.3}\n",
        "macro average",
        "",
        "",
        report.macro_recall,
        "",
        "",
        report.macro_precision,
        report.macro_f1
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn label(scenario: &str, actor: &str, patient: Option<&str>, start: i64, end: i64) -> Label {
        Label {
            scenario: scenario.into(),
            actor: actor.into(),
            patient_id: patient.map(Into::into),
            start_us: start,
            end_us: end,
        }
    }

    fn alert_for(l: &Label) -> Alert {
        Alert {
            scenario: l.scenario.clone(),
            user_id: Some(l.actor.clone()),
            host: None,
            src_ip: None,
            patient_ids: l.patient_id.iter().cloned().collect(),
            first_us: l.start_us,
            last_us: l.end_us,
        }
    }

    fn labels() -> Vec<Label> {
        vec![
            label("family_snooping", "u1", Some("P1"), 0, H),
            label("family_snooping", "u2", Some("P2"), 5 * H, 6 * H),
            label("bulk_export", "u3", None, 10 * H, 12 * H),
        ]
    }

    #[test]
    fn a_perfect_file_scores_one() {
        let l = labels();
        let alerts: Vec<Alert> = l.iter().map(alert_for).collect();
        let r = evaluate(&l, &alerts);
        assert_eq!(r.macro_recall, 1.0);
        assert_eq!(r.macro_precision, 1.0);
        assert_eq!(r.macro_f1, 1.0);
    }

    #[test]
    fn no_alerts_is_zero_recall() {
        let r = evaluate(&labels(), &[]);
        assert_eq!(r.macro_recall, 0.0);
        assert!(
            r.scenarios
                .iter()
                .all(|s| s.detected == 0 && s.precision.is_none())
        );
    }

    #[test]
    fn wrong_scenario_window_actor_or_patient_is_zero_precision() {
        let l = labels();
        let mut wrong = Vec::new();
        for x in &l {
            let mut a = alert_for(x);
            a.scenario = "vip_snooping".into();
            wrong.push(a);
            let mut a = alert_for(x);
            a.first_us = x.end_us + 1;
            a.last_us = x.end_us + H;
            wrong.push(a);
            let mut a = alert_for(x);
            a.user_id = Some("someone-else".into());
            wrong.push(a);
        }
        let mut a = alert_for(&l[0]);
        a.patient_ids = vec!["P9".into()];
        wrong.push(a);
        let r = evaluate(&l, &wrong);
        assert_eq!(r.macro_precision, 0.0);
        assert_eq!(r.macro_recall, 0.0);
        let vip = r
            .scenarios
            .iter()
            .find(|s| s.scenario == "vip_snooping")
            .unwrap();
        assert_eq!(
            (vip.incidents, vip.alerts, vip.precision),
            (0, 3, Some(0.0))
        );
    }

    #[test]
    fn host_and_address_actors_match_too() {
        let l = [label("ssh_bruteforce", "203.0.113.9", None, 0, H)];
        let mut a = alert_for(&l[0]);
        a.user_id = None;
        a.src_ip = Some("203.0.113.9".into());
        assert!(a.matches(&l[0]));
        a.src_ip = None;
        a.host = Some("203.0.113.9".into());
        assert!(a.matches(&l[0]));
    }
}
