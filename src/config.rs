//! The scheduled job's configuration (`emrwatch run --config FILE`): a TOML
//! file whose every setting can also be given, or overridden, by a flag.
//! `contrib/emrwatch.toml` is the complete, commented example.
//!
//! Unknown keys are errors that name the key: a misspelt `fail_on` must not
//! silently become "never fail".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::rule::Severity;
use crate::error::{Error, Result};
use crate::ingest::Format;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Store root: a folder, `file://` or `s3://bucket/prefix` URL.
    pub store: Option<String>,
    /// Folder with staff.csv, patients.csv and encounters.csv.
    pub reference: Option<PathBuf>,
    /// Folder of rule files (*.sql); the built-in rules when absent.
    pub rules: Option<PathBuf>,
    /// Rule thresholds: `"RULE.PARAM" = value`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, toml::Value>,
    /// Exit with status 1 when a new alert is at least this severe (`never` to always exit 0).
    pub fail_on: Option<String>,
    /// A file (or a compressed one) changed less than this many seconds ago
    /// may still be being written: its last line without a line feed, or a
    /// compressed file, waits for a later run.
    pub settle_seconds: Option<u64>,
    /// Decoding threads (default: all cores).
    pub threads: Option<usize>,
    /// MiB of events the rules may share in memory (0: every rule reads the store).
    pub memory_cache_mib: Option<usize>,
    /// Where the logs are.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Where alerts go, as sink URLs (see [`crate::siem::SinkSpec`]).
    #[serde(default)]
    pub sinks: Vec<String>,
    /// TLS for `+tls` sinks.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Object storage settings for `s3://` sources and stores.
    #[serde(default)]
    pub s3: S3Config,
}

/// One log source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A folder, file, `file://` or `s3://bucket/prefix/` URL.
    pub url: String,
    /// Which objects under `url` to read (`*.ndjson`, `**/audit-*.log`); all when absent.
    pub glob: Option<String>,
    /// `auto` (default), `fhir`, `ndjson`, `csv`, `syslog`, `atna`.
    pub format: Option<String>,
    /// Field mapping TOML for `ndjson` and `csv`.
    pub mapping: Option<PathBuf>,
    /// Zone of syslog times written without one (IANA name).
    pub syslog_tz: Option<String>,
}

/// TLS settings for syslog sinks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates the SIEM's certificate is checked
    /// against (default: the system's roots).
    pub ca_file: Option<PathBuf>,
}

/// S3-compatible object storage. Anything not set here comes from the usual
/// AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of a non-AWS server (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: Option<bool>,
    /// Give up on a failing request after retrying this long (default 30 s).
    pub retry_timeout_seconds: Option<u64>,
}

impl RunConfig {
    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::Config {
            path: origin.to_string(),
            reason: e.to_string(),
        })?;
        cfg.check(origin)?;
        Ok(cfg)
    }

    /// Checks the values serde cannot: formats, severities, URLs, sinks.
    pub fn check(&self, origin: &str) -> Result<()> {
        let bad = |reason: String| Error::Config {
            path: origin.to_string(),
            reason,
        };
        if let Some(f) = &self.fail_on {
            parse_fail_on(f).map_err(bad)?;
        }
        for (i, s) in self.sources.iter().enumerate() {
            if let Some(f) = &s.format {
                parse_format(f).map_err(|r| bad(format!("source {}: {r}", i + 1)))?;
            }
            check_location(&s.url).map_err(|r| bad(format!("source {}: {r}", i + 1)))?;
        }
        if let Some(store) = &self.store {
            check_location(store).map_err(|r| bad(format!("store: {r}")))?;
        }
        for s in &self.sinks {
            crate::siem::SinkSpec::parse(s).map_err(bad)?;
        }
        for key in self.thresholds.keys() {
            if !key.contains('.') {
                return Err(bad(format!(
                    "threshold {key:?}: write it as \"RULE.PARAM\" (e.g. \"volume_spike.min_patients\")"
                )));
            }
        }
        Ok(())
    }

    /// The thresholds as `RULE.PARAM=VALUE` settings, as `--set` takes them.
    pub fn threshold_settings(&self) -> Vec<String> {
        self.thresholds
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect()
    }
}

/// `never` or a severity name.
pub fn parse_fail_on(s: &str) -> std::result::Result<Option<Severity>, String> {
    if s == "never" {
        return Ok(None);
    }
    s.parse::<Severity>()
        .map(Some)
        .map_err(|()| format!("fail_on {s:?}: expected low, medium, high, critical or never"))
}

/// An input format name.
pub fn parse_format(s: &str) -> std::result::Result<Format, String> {
    use clap::ValueEnum;
    Format::from_str(s, true)
        .map_err(|_| format!("format {s:?}: expected auto, fhir, ndjson, csv, syslog or atna"))
}

/// A store or source location: a path, or a `file://` / `s3://` URL.
fn check_location(s: &str) -> std::result::Result<(), String> {
    if !s.contains("://") {
        return if s.is_empty() {
            Err("empty location".into())
        } else {
            Ok(())
        };
    }
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not a valid URL: {e}"))?;
    match url.scheme() {
        "file" => Ok(()),
        "s3" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "s3" => Err(format!(
            "{s:?}: an s3:// URL needs a bucket (s3://bucket/prefix)"
        )),
        other => Err(format!(
            "{s:?}: unsupported scheme {other}:// (use a path, file:// or s3://)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let e = RunConfig::parse("stor = \"x\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("stor"), "{e}");
        let e =
            RunConfig::parse("[[source]]\nurl = \"/x\"\nglobb = \"*\"\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("globb"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        for (text, needle) in [
            ("fail_on = \"urgent\"", "urgent"),
            ("store = \"ftp://host/x\"", "ftp"),
            ("store = \"s3://\"", "bucket"),
            ("[[source]]\nurl = \"/x\"\nformat = \"xml\"", "xml"),
            ("sinks = [\"cef+smtp://h:1\"]", "smtp"),
            ("[thresholds]\nmin_patients = 3", "RULE.PARAM"),
        ] {
            let e = RunConfig::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_full_config_parses() {
        let cfg = RunConfig::parse(
            r#"
store = "s3://bucket/emrwatch"
reference = "/etc/emrwatch/ref"
fail_on = "high"
settle_seconds = 30
memory_cache_mib = 512
sinks = ["cef+tcp://127.0.0.1:6514", "ecs+file:///var/lib/emrwatch/alerts.json"]
[thresholds]
"volume_spike.min_patients" = 80
[s3]
endpoint = "http://127.0.0.1:9000"
allow_http = true
[[source]]
url = "/var/log/emr"
glob = "*.ndjson"
format = "fhir"
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(
            cfg.threshold_settings(),
            vec!["volume_spike.min_patients=80"]
        );
        assert_eq!(parse_fail_on("never"), Ok(None));
        assert_eq!(cfg.memory_cache_mib, Some(512));
    }
}
