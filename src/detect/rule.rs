//! A detection rule: one `.sql` file with a comment header (DESIGN.md,
//! "Detection rules").
//!
//! ```sql
//! -- id: family_snooping
//! -- title: Access to a family member's record
//! -- severity: high
//! -- scenario: family_snooping
//! -- description: user and patient share a last name or address, no encounter links them
//! -- lookback: 1d
//! -- param.care_days: 30
//! SELECT ... ${care_days} ...
//! ```
//!
//! `param.NAME: VALUE` lines are the rule's thresholds; `${NAME}` in the SQL is
//! replaced by the value, so tuning a rule is editing its header (or passing
//! `--set rule_id.NAME=VALUE`), never Rust.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Severity {
    /// Worth a look when there is time.
    Low,
    /// Review this week.
    Medium,
    /// Review today.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::parse(s).ok_or(())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id (`family_snooping`).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// Severity of its alerts.
    pub severity: Severity,
    /// Scenario from DESIGN.md's vocabulary.
    pub scenario: String,
    /// What it detects, in a sentence.
    pub description: String,
    /// How much history before the detection range the rule reads, in µs.
    pub lookback_us: i64,
    /// Thresholds, by name.
    pub params: BTreeMap<String, String>,
    /// The SQL as written (with `${param}` placeholders).
    pub sql_template: String,
    /// Where it came from (file name, or `builtin:NAME`).
    pub origin: String,
}

/// Parses a duration: `30d`, `12h`, `90m`, `0`.
pub fn parse_duration_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    let unit_us: i64 = match unit.trim() {
        "d" => 86_400_000_000,
        "h" => 3_600_000_000,
        "m" => 60_000_000,
        "s" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(unit_us)
}

impl Rule {
    /// Parses a rule file's text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, String> {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut params = BTreeMap::new();
        let mut body = String::new();
        let mut in_header = true;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if in_header {
                if t.is_empty() {
                    continue;
                }
                if let Some(c) = t.strip_prefix("--") {
                    let c = c.trim();
                    let Some((k, v)) = c.split_once(':') else {
                        continue; // a plain comment
                    };
                    let (k, v) = (k.trim(), v.trim().to_string());
                    if let Some(p) = k.strip_prefix("param.") {
                        params.insert(p.to_string(), v);
                    } else if matches!(
                        k,
                        "id" | "title" | "severity" | "scenario" | "description" | "lookback"
                    ) {
                        fields.insert(k.to_string(), v);
                    } else if !k.contains(' ') {
                        return Err(format!(
                            "line {}: unknown header key `{k}` (known: id, title, severity, \
                             scenario, description, lookback, param.NAME)",
                            n + 1
                        ));
                    }
                    continue;
                }
                in_header = false;
            }
            body.push_str(line);
            body.push('\n');
        }
        let get = |k: &str| {
            fields
                .get(k)
                .cloned()
                .ok_or_else(|| format!("header has no `-- {k}:` line"))
        };
        let severity = get("severity")?;
        let lookback = fields.get("lookback").map_or("0", String::as_str);
        let rule = Self {
            id: get("id")?,
            title: get("title")?,
            severity: Severity::parse(&severity).ok_or_else(|| {
                format!("severity `{severity}` is not one of low, medium, high, critical")
            })?,
            scenario: get("scenario")?,
            description: get("description")?,
            lookback_us: parse_duration_us(lookback).ok_or_else(|| {
                format!("lookback `{lookback}` is not a duration like 30d, 12h or 0")
            })?,
            params,
            sql_template: body.trim().trim_end_matches(';').to_string(),
            origin: origin.to_string(),
        };
        if rule.sql_template.is_empty() {
            return Err("no SQL after the header".into());
        }
        rule.sql()?;
        Ok(rule)
    }

    /// The SQL with every `${param}` replaced.
    pub fn sql(&self) -> Result<String, String> {
        let t = &self.sql_template;
        let mut out = String::with_capacity(t.len());
        let mut rest = t.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| "unclosed `${` in the SQL".to_string())?;
            let name = &after[..end];
            let v = self.params.get(name).ok_or_else(|| {
                format!("the SQL uses ${{{name}}} but the header has no `-- param.{name}:` line")
            })?;
            out.push_str(v);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The rules shipped in `queries/`, compiled into the binary.
pub fn builtin() -> Vec<(String, &'static str)> {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"))
        .iter()
        .map(|(name, text)| (format!("builtin:{name}"), *text))
        .collect()
}

/// A view the rules share (`queries/views/NAME.sql`, a header line
/// `-- view: NAME` and a SELECT), registered before each rule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The name rules use.
    pub name: String,
    /// Its SELECT.
    pub sql: String,
    /// `-- materialize: yes`: computed once and kept in memory while the
    /// rules that share a look-back run, when two or more of them read it.
    /// For views much smaller than the events they are computed from.
    pub materialize: bool,
}

impl View {
    /// Parses a view file; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self, String> {
        let header = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("--"))
                .filter_map(|c| c.trim().strip_prefix(key))
                .map(|v| v.trim().to_string())
                .next()
        };
        let name = header("view:").ok_or_else(|| format!("{origin}: no `-- view: NAME` line"))?;
        let materialize = match header("materialize:").as_deref() {
            None | Some("no") => false,
            Some("yes") => true,
            Some(other) => {
                return Err(format!(
                    "{origin}: `-- materialize: {other}`: write yes or no"
                ));
            }
        };
        let sql: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let sql = sql.trim().trim_end_matches(';').to_string();
        if sql.is_empty() {
            return Err(format!("{origin}: no SQL after the header"));
        }
        Ok(Self {
            name,
            sql,
            materialize,
        })
    }

    /// Whether `rule`'s SQL names this view (as a whole word).
    pub fn used_by(&self, rule: &Rule) -> bool {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        rule.sql_template
            .match_indices(self.name.as_str())
            .any(|(i, m)| {
                let before = rule.sql_template[..i].chars().next_back();
                let after = rule.sql_template[i + m.len()..].chars().next();
                !before.is_some_and(word) && !after.is_some_and(word)
            })
    }
}

/// The views shipped in `queries/views/`, in file-name order.
pub fn builtin_views() -> Vec<(String, &'static str)> {
    include!(concat!(env!("OUT_DIR"), "/builtin_views.rs"))
        .iter()
        .map(|(name, text)| (format!("builtin:views/{name}"), *text))
        .collect()
}

/// A rule file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// File name (or `builtin:NAME`).
    pub origin: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses `(origin, text)` pairs; bad ones become errors, the others still load.
pub fn parse_all(files: Vec<(String, String)>) -> (Vec<Rule>, Vec<RuleError>) {
    let mut rules: Vec<Rule> = Vec::new();
    let mut errors = Vec::new();
    for (origin, text) in files {
        match Rule::parse(&origin, &text) {
            Ok(r) if rules.iter().any(|o| o.id == r.id) => errors.push(RuleError {
                origin,
                reason: format!("id `{}` is used by another rule", r.id),
            }),
            Ok(r) => rules.push(r),
            Err(reason) => errors.push(RuleError { origin, reason }),
        }
    }
    (rules, errors)
}

/// Reads every `*.sql` of `dir`, by name.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| Ok((p.display().to_string(), std::fs::read_to_string(&p)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "-- id: r1\n-- title: T\n-- severity: high\n-- scenario: s\n\
        -- description: d\n-- lookback: 30d\n-- param.min: 5\n-- a plain comment\n\
        SELECT ${min} AS x;\n";

    #[test]
    fn parses_header_params_and_lookback() {
        let r = Rule::parse("f.sql", OK).unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(r.severity, Severity::High);
        assert_eq!(r.lookback_us, 30 * 86_400_000_000);
        assert_eq!(r.sql().unwrap(), "SELECT 5 AS x");
    }

    #[test]
    fn view_header_and_which_rules_use_it() {
        let v = View::parse("v.sql", "-- view: ua\n-- materialize: yes\nSELECT 1").unwrap();
        assert!(v.materialize);
        assert_eq!(v.sql, "SELECT 1");
        assert!(
            !View::parse("v.sql", "-- view: ua\nSELECT 1")
                .unwrap()
                .materialize
        );
        let e = View::parse("v.sql", "-- view: ua\n-- materialize: sure\nSELECT 1").unwrap_err();
        assert!(e.contains("yes or no"), "{e}");
        let rule = |from: &str| Rule::parse("f.sql", &OK.replace("AS x", from)).unwrap();
        assert!(v.used_by(&rule("AS x FROM ua a")));
        assert!(v.used_by(&rule("AS x FROM t JOIN ua\nON 1=1")));
        assert!(!v.used_by(&rule("AS x FROM ua_old")));
        assert!(!v.used_by(&rule("AS x FROM dual")));
    }

    #[test]
    fn header_errors_say_what_to_fix() {
        let e = Rule::parse("f.sql", &OK.replace("high", "urgent")).unwrap_err();
        assert!(e.contains("urgent"), "{e}");
        let e = Rule::parse("f.sql", &OK.replace("-- param.min: 5\n", "")).unwrap_err();
        assert!(e.contains("${min}"), "{e}");
        let e = Rule::parse("f.sql", &OK.replace("-- id: r1\n", "")).unwrap_err();
        assert!(e.contains("id"), "{e}");
        let e = Rule::parse("f.sql", &OK.replace("lookback: 30d", "lookback: 1 week")).unwrap_err();
        assert!(e.contains("1 week"), "{e}");
        let e = Rule::parse("f.sql", &OK.replace("-- title", "-- titel")).unwrap_err();
        assert!(e.contains("titel"), "{e}");
    }

    #[test]
    fn duplicate_ids_are_errors_and_the_rest_load() {
        let (rules, errors) = parse_all(vec![
            ("a.sql".into(), OK.into()),
            ("b.sql".into(), OK.into()),
            ("c.sql".into(), "SELECT 1".into()),
        ]);
        assert_eq!(rules.len(), 1);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].origin, "b.sql");
    }

    #[test]
    fn every_builtin_rule_parses() {
        let (rules, errors) = parse_all(
            builtin()
                .into_iter()
                .map(|(o, t)| (o, t.to_string()))
                .collect(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!rules.is_empty());
    }
}
