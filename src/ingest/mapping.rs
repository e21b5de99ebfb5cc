//! Field mappings for generic access-log formats (`ndjson`, `csv`): which
//! source field fills which canonical column, how values are renamed, and how
//! timestamps are written. For CSV a column is named by its header, or by its
//! 1-based number when the file has none.
//!
//! ```toml
//! [columns]              # canonical column = dotted source path
//! ts = "event.time"
//! user_id = "actor.id"
//! patient_id = "subject.mrn"
//! action = "event.type"
//!
//! [values.action]        # source value = canonical value
//! R = "view"
//! W = "update"
//!
//! [defaults]             # used when the source has no value
//! outcome = "success"
//! app = "EMR"
//!
//! [timestamp]
//! format = "%Y-%m-%d %H:%M:%S%.f"   # or rfc3339, epoch_s, epoch_ms, epoch_us
//! timezone = "America/Chicago"      # for patterns without an offset
//!
//! [csv]                  # CSV only
//! delimiter = ";"        # , ; | tab, or auto (default: told from the first line)
//! header = true          # false: [columns] name 1-based column numbers
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::builder::AccessRow;
use super::json::clip;
use super::timestamp::TimestampFormat;
use crate::error::{Error, Result};
use crate::schema;

/// The canonical columns a mapping can fill (provenance columns are ours).
pub const MAPPABLE: &[&str] = &[
    schema::TS,
    schema::USER_ID,
    schema::USER_ROLE,
    schema::DEPARTMENT,
    schema::PATIENT_ID,
    schema::ACTION,
    schema::RESOURCE,
    schema::OUTCOME,
    schema::WORKSTATION,
    schema::SRC_IP,
    schema::SESSION_ID,
    schema::APP,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: Option<TimestampSection>,
    #[serde(default)]
    csv: Option<CsvSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvSection {
    delimiter: Option<String>,
    header: Option<bool>,
}

/// How CSV files are read (the mapping's `[csv]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvSettings {
    /// The field delimiter, or `None` to tell it from the first line.
    pub delimiter: Option<u8>,
    /// Whether the first record names the columns.
    pub header: bool,
}

impl Default for CsvSettings {
    fn default() -> Self {
        Self {
            delimiter: None,
            header: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimestampSection {
    format: String,
    timezone: Option<String>,
}

/// Indices of the columns in [`MAPPABLE`] (and so in [`Mapping::fields`]).
#[allow(missing_docs)]
pub mod col {
    pub const TS: usize = 0;
    pub const USER_ID: usize = 1;
    pub const USER_ROLE: usize = 2;
    pub const DEPARTMENT: usize = 3;
    pub const PATIENT_ID: usize = 4;
    pub const ACTION: usize = 5;
    pub const RESOURCE: usize = 6;
    pub const OUTCOME: usize = 7;
    pub const WORKSTATION: usize = 8;
    pub const SRC_IP: usize = 9;
    pub const SESSION_ID: usize = 10;
    pub const APP: usize = 11;
}

/// How one canonical column is filled.
#[derive(Debug, Clone, Default)]
pub struct FieldSpec {
    /// Dotted path split into keys; empty when the column only has a default.
    pub path: Vec<String>,
    /// Source value → canonical value.
    pub values: HashMap<String, String>,
    /// Used when the source has no value.
    pub default: Option<String>,
}

/// A validated mapping: one [`FieldSpec`] per canonical column, in [`MAPPABLE`] order.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Specs indexed like [`MAPPABLE`].
    pub fields: Vec<FieldSpec>,
    /// How `ts` is written.
    pub timestamp: TimestampFormat,
    /// How CSV is laid out.
    pub csv: CsvSettings,
}

impl Default for Mapping {
    /// The identity mapping: canonical field names at the top level, RFC 3339 times.
    fn default() -> Self {
        let fields = MAPPABLE
            .iter()
            .map(|c| FieldSpec {
                path: vec![(*c).to_string()],
                default: (*c == schema::OUTCOME).then(|| "success".to_string()),
                ..FieldSpec::default()
            })
            .collect();
        Self {
            fields,
            timestamp: TimestampFormat::Rfc3339,
            csv: CsvSettings::default(),
        }
    }
}

impl Mapping {
    /// Reads and validates a mapping file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Mapping {
            path: path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text).map_err(|reason| Error::Mapping {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses mapping TOML; the error names the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: MappingFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let known = |section: &str, key: &str| -> Result<usize, String> {
            MAPPABLE.iter().position(|c| *c == key).ok_or_else(|| {
                format!(
                    "[{section}] {key:?} is not a column emrwatch fills; use one of {}",
                    MAPPABLE.join(", ")
                )
            })
        };
        let mut fields = vec![FieldSpec::default(); MAPPABLE.len()];
        for (col, path) in &file.columns {
            let i = known("columns", col)?;
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!(
                    "[columns] {col} = {path:?} is not a dotted path like \"actor.id\""
                ));
            }
            fields[i].path = path.split('.').map(str::to_string).collect();
        }
        for (col, map) in file.values {
            let i = known("values", &col)?;
            fields[i].values = map.into_iter().collect();
        }
        for (col, value) in file.defaults {
            let i = known("defaults", &col)?;
            fields[i].default = Some(value);
        }
        // Columns the file does not mention keep their canonical name.
        for (i, spec) in fields.iter_mut().enumerate() {
            if spec.path.is_empty() {
                spec.path = vec![MAPPABLE[i].to_string()];
            }
        }
        fields[col::OUTCOME]
            .default
            .get_or_insert_with(|| "success".to_string());
        let timestamp = match file.timestamp {
            Some(t) => TimestampFormat::from_config(&t.format, t.timezone.as_deref())
                .map_err(|e| format!("[timestamp] {e}"))?,
            None => TimestampFormat::Rfc3339,
        };
        for (col, spec) in MAPPABLE.iter().zip(&fields) {
            if *col == schema::ACTION {
                for v in spec.values.values().chain(spec.default.iter()) {
                    if !schema::ACTIONS.contains(&v.as_str()) {
                        return Err(format!(
                            "[values.action] maps to {v:?}, which is not an action; use one of {}",
                            schema::ACTIONS.join(", ")
                        ));
                    }
                }
            }
        }
        let csv = match file.csv {
            None => CsvSettings::default(),
            Some(c) => CsvSettings {
                delimiter: match c.delimiter.as_deref() {
                    None | Some("auto") => None,
                    Some("tab" | "\t") => Some(b'\t'),
                    Some(d @ ("," | ";" | "|" | ":")) => Some(d.as_bytes()[0]),
                    Some(d) => {
                        return Err(format!(
                            "[csv] delimiter = {d:?}: use \",\", \";\", \"|\", \":\", \"tab\" or \"auto\""
                        ));
                    }
                },
                header: c.header.unwrap_or(true),
            },
        };
        if !csv.header {
            for (col, spec) in MAPPABLE.iter().zip(&fields) {
                let named = spec.path.join(".");
                if file.columns.contains_key(*col)
                    && named.parse::<usize>().map_or(true, |n| n == 0)
                {
                    return Err(format!(
                        "[columns] {col} = {named:?}: with [csv] header = false, name columns by their 1-based number, like \"3\""
                    ));
                }
            }
        }
        Ok(Self {
            fields,
            timestamp,
            csv,
        })
    }

    /// Builds a row from the mapped values of one record: `get(c)` is column
    /// `c`'s value as written (before renaming), `ts` the parsed time.
    /// Checks what every access log must have, whatever its format.
    pub fn row<'i>(
        &'i self,
        ts: i64,
        mut get: impl FnMut(usize) -> Option<Cow<'i, str>>,
    ) -> Result<AccessRow<'i>, String> {
        let f = &self.fields;
        // A macro, not a closure: rustc did not inline the closure into its
        // eleven calls, and the call per column was a tenth of JSON-lines decoding.
        macro_rules! get {
            ($c:expr) => {
                apply(get($c), &f[$c])
            };
        }
        let user_id = get!(col::USER_ID)
            .ok_or_else(|| format!("missing user field `{}`", f[col::USER_ID].path.join(".")))?;
        let action = get!(col::ACTION)
            .ok_or_else(|| format!("missing action field `{}`", f[col::ACTION].path.join(".")))?;
        if !schema::is_action(&action) {
            return Err(format!(
                "action {:?} is not one of {}: add it under [values.action] in the mapping",
                clip(&action),
                schema::ACTIONS.join(", ")
            ));
        }
        let outcome = get!(col::OUTCOME).unwrap_or(Cow::Borrowed("success"));
        if outcome != "success" && outcome != "failure" {
            return Err(format!(
                "outcome {:?} is neither success nor failure: add it under [values.outcome] in the mapping",
                clip(&outcome)
            ));
        }
        Ok(AccessRow {
            ts,
            user_id,
            user_role: get!(col::USER_ROLE),
            department: get!(col::DEPARTMENT),
            patient_id: get!(col::PATIENT_ID),
            action,
            resource: get!(col::RESOURCE),
            outcome,
            workstation: get!(col::WORKSTATION),
            src_ip: get!(col::SRC_IP),
            session_id: get!(col::SESSION_ID),
            app: get!(col::APP),
        })
    }
}

/// A value as the mapping wants it: renamed by `[values]`, else as written;
/// missing or empty, the `[defaults]` value.
#[inline(always)]
pub fn apply<'i>(value: Option<Cow<'i, str>>, spec: &'i FieldSpec) -> Option<Cow<'i, str>> {
    match value {
        Some(v) if v.is_empty() => spec.default.as_deref().map(Cow::Borrowed),
        // Most mappings rename nothing: skip hashing the value.
        Some(v) if spec.values.is_empty() => Some(v),
        Some(v) => Some(match spec.values.get(v.as_ref()) {
            Some(mapped) => Cow::Borrowed(mapped.as_str()),
            None => v,
        }),
        None => spec.default.as_deref().map(Cow::Borrowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_columns_and_sections_are_named() {
        let e = Mapping::parse("[columns]\nuser = \"a\"\n").unwrap_err();
        assert!(e.contains("\"user\" is not a column"), "{e}");
        let e = Mapping::parse("[colums]\nuser_id = \"a\"\n").unwrap_err();
        assert!(e.contains("colums"), "{e}");
        let e = Mapping::parse("[values.action]\nR = \"read\"\n").unwrap_err();
        assert!(e.contains("\"read\""), "{e}");
        let e = Mapping::parse("[timestamp]\nformat = \"%Y\"\ntimezone = \"Nowhere/Land\"\n")
            .unwrap_err();
        assert!(e.contains("Nowhere/Land"), "{e}");
    }

    #[test]
    fn unmentioned_columns_keep_canonical_names() {
        let m = Mapping::parse("[columns]\nuser_id = \"actor.id\"\n[defaults]\napp = \"EMR\"\n")
            .unwrap();
        let i = |c: &str| MAPPABLE.iter().position(|x| *x == c).unwrap();
        assert_eq!(m.fields[i("user_id")].path, vec!["actor", "id"]);
        assert_eq!(m.fields[i("patient_id")].path, vec!["patient_id"]);
        assert_eq!(m.fields[i("app")].default.as_deref(), Some("EMR"));
        assert_eq!(m.fields[i("outcome")].default.as_deref(), Some("success"));
    }
}
