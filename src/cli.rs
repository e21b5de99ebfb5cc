//! Command-line arguments (clap). These structs only parse and validate;
//! [`crate::commands`] turns them into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ingest::Format;
use crate::sql::output::OutputFormat;

/// Catch inappropriate access to patient records in EMR audit logs.
#[derive(Debug, Parser)]
#[command(name = "emrwatch", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read access logs into the store's `access_events` table.
    #[command(after_help = INGEST_EXAMPLES)]
    Ingest(IngestArgs),
    /// Run SQL over the store: one statement with -e/-f, or an interactive shell.
    #[command(after_help = SQL_EXAMPLES)]
    Sql(SqlArgs),
    /// Write a synthetic hospital: access logs, server syslog, reference CSVs and labelled incidents.
    #[command(after_help = GEN_EXAMPLES)]
    Gen(GenArgs),
    /// Score alerts against labelled incidents: precision and recall per scenario.
    #[command(after_help = EVAL_EXAMPLES)]
    Eval(EvalArgs),
    /// Run the detection rules over the store and report new alerts.
    #[command(after_help = DETECT_EXAMPLES)]
    Detect(DetectArgs),
    /// One shot, nothing stored: read an archive in memory, run the rules, report alerts.
    #[command(after_help = SCAN_EXAMPLES)]
    Scan(ScanArgs),
    /// List the detection rules: id, scenario, severity, look-back, description.
    Rules(RulesArgs),
    /// The scheduled job: ingest what is new, detect, deliver alerts to the SIEM.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
}

const RUN_EXAMPLES: &str = "\
Examples:
  emrwatch run --config /etc/emrwatch/emrwatch.toml
  emrwatch run --store s3://audit/emrwatch --source /var/log/emr/ --ref /etc/emrwatch/ref \\
               --sink cef+tcp://siem.example.org:514 --fail-on high

Each run lists the sources and reads only what is new: new objects, and the
bytes appended to a local file since the last run (a rotated or truncated file
is read from its start). What was read is committed in the same Delta commit
as the data, so a run killed at any moment and run again loses and duplicates
nothing. The rules then search the new events (plus each rule's look-back) and
alerts not raised before go to the sinks. Flags override the config file.

Exit status: 0 no new alert at or above --fail-on, 1 some, 2 error. A run that
finds another holding the store's lock does nothing and exits 0.";

/// `emrwatch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (see contrib/emrwatch.toml).
    #[arg(long, short = 'c', value_name = "FILE", env = "EMRWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store root: a folder, file:// or s3://bucket/prefix URL [config: store].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Reference folder: staff.csv, patients.csv, encounters.csv [config: reference].
    #[arg(long = "ref", value_name = "DIR")]
    pub reference: Option<PathBuf>,
    /// Folder of rule files (*.sql) instead of the built-in rules [config: rules].
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Rule threshold RULE.PARAM=VALUE, repeatable [config: [thresholds]].
    #[arg(long = "set", value_name = "RULE.PARAM=VALUE")]
    pub set: Vec<String>,
    /// Exit 1 when a new alert is at least this severe: low, medium, high, critical, never
    /// [config: fail_on; default high].
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// Log source: a folder, file, glob, file:// or s3:// URL; repeatable; replaces the
    /// config's sources [config: [[source]] url, glob].
    #[arg(long = "source", value_name = "URL")]
    pub sources: Vec<String>,
    /// Format of the --source inputs.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Field mapping TOML for the --source inputs.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Zone of syslog times without one, for the --source inputs.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub syslog_tz: String,
    /// Alert sink URL, repeatable; replaces the config's sinks: cef+udp://HOST:PORT,
    /// cef+tcp://…, cef+tls://…, leef+udp|tcp|tls://…, ecs+file:///PATH [config: sinks].
    #[arg(long = "sink", value_name = "URL")]
    pub sinks: Vec<String>,
    /// PEM CA certificates for +tls sinks (default: the system's) [config: [tls] ca_file].
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Seconds a file must be unchanged before its unterminated last line, or a compressed
    /// file, is read [config: settle_seconds; default 60].
    #[arg(long, value_name = "SECONDS")]
    pub settle_seconds: Option<u64>,
    /// Decoding threads (default: all cores) [config: threads].
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// MiB of events the rules may share in memory instead of each reading the store;
    /// 0 never [config: memory_cache_mib; default 2048].
    #[arg(long, value_name = "MIB")]
    pub memory_cache: Option<usize>,
    /// S3 endpoint of a non-AWS server [config: [s3] endpoint; env AWS_ENDPOINT_URL].
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [config: [s3] region; env AWS_REGION].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Allow a plain http:// S3 endpoint [config: [s3] allow_http; env AWS_ALLOW_HTTP].
    #[arg(long)]
    pub s3_allow_http: bool,
    /// New alerts shown in the terminal table (0: only the summary line).
    #[arg(long, default_value_t = 0)]
    pub show: usize,
}

const DETECT_EXAMPLES: &str = "\
Examples:
  emrwatch detect --store ./emrwatch-store --ref hospital/ref
  emrwatch detect --ref hospital/ref --since 2026-11-01 --until 2026-11-08 --out alerts.jsonl
  emrwatch detect --ref ref/ --rules my-rules/ --set volume_spike.min_patients=80 --out -

Each rule reads the events of [--since, --until) plus the look-back its header
declares, and reports alerts that end in the range. Alerts already in the
store's `alerts` table (same rule, actor and day) are not raised again; new
ones are added to it. Exit status: 0 ok, 2 error (a broken rule is reported
and skipped, not an error).";

const SCAN_EXAMPLES: &str = "\
Examples:
  emrwatch scan hospital/logs/ --ref hospital/ref
  emrwatch scan export-2026-11.ndjson.gz --ref ref/ --out alerts.jsonl

The archive is read in memory (nothing is written to a store), then every rule
runs over all of it.";

/// Which rules to run and how to tune them.
#[derive(Debug, Clone, Args)]
pub struct RuleArgs {
    /// Folder of rule files (*.sql) to run instead of the built-in rules.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Override a rule threshold: RULE_ID.PARAM=VALUE (repeatable).
    #[arg(long = "set", value_name = "RULE.PARAM=VALUE")]
    pub set: Vec<String>,
}

/// Where detection results go.
#[derive(Debug, Args)]
pub struct AlertOutArgs {
    /// Reference folder with staff.csv, patients.csv and encounters.csv.
    #[arg(long = "ref", value_name = "DIR", env = "EMRWATCH_REF")]
    pub reference: Option<PathBuf>,
    /// Also write every new alert as JSON lines to FILE (`-` for stdout, which then holds only JSON).
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Alerts shown in the terminal table.
    #[arg(long, default_value_t = 25)]
    pub show: usize,
}

/// `emrwatch detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub out: AlertOutArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Start of the range: YYYY-MM-DD (UTC midnight) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (exclusive), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Read the events the rules need into memory once, up to this many MiB,
    /// instead of every rule reading the store again; 0 never does.
    #[arg(long, value_name = "MIB", default_value_t = crate::detect::DEFAULT_MEMORY_CACHE_MIB)]
    pub memory_cache: usize,
}

/// `emrwatch scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files, folders, file:// URLs or quoted globs to read.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub out: AlertOutArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Decoding threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
}

/// `emrwatch rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
}

const EVAL_EXAMPLES: &str = "\
Examples:
  emrwatch eval --labels demo-out/labels.csv --alerts alerts.jsonl
  emrwatch eval --labels labels.csv --alerts alerts.jsonl --json | jq .macro_f1

An alert detects an incident when the scenario is the same, its user_id, host
or src_ip is the incident's actor, its [first_ts, last_ts] overlaps the
incident's window, and, when the label names a patient, its patient_ids
contain that patient.";

/// `emrwatch eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// labels.csv: scenario, actor, patient_id, start_ts, end_ts (RFC 3339).
    #[arg(long)]
    pub labels: PathBuf,
    /// Alerts as JSON lines (scenario, user_id, host, src_ip, patient_ids, first_ts, last_ts, …).
    #[arg(long)]
    pub alerts: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const INGEST_EXAMPLES: &str = "\
Examples:
  emrwatch ingest hospital/logs/ --store ./emrwatch-store
  emrwatch ingest 'archive/**/*.ndjson.gz' --format ndjson --mapping mapping.toml
  emrwatch ingest exports/access-2026-11.csv --mapping epic-csv.toml
  emrwatch ingest file:///var/log/emr/audit-2026-11-01.ndjson.zst --strict

Inputs are files, folders (read recursively, hidden files skipped), file:// URLs
or globs (quote them so emrwatch expands them). gzip and zstd are detected by
their magic bytes. Bad records are stored in the `rejects` table with their
source, line and reason, and counted; the run goes on unless --strict.
Re-running the same ingest appends the records again.

Exit status: 0 ok (even with rejects), 2 error.";

const SQL_EXAMPLES: &str = "\
Examples:
  emrwatch sql -e \"SELECT user_id, distinct_count(patient_id) AS patients FROM access_events GROUP BY 1 ORDER BY 2 DESC LIMIT 10\"
  emrwatch sql -f queries/adhoc.sql --output csv > out.csv
  emrwatch sql            # interactive: \\d lists tables, \\d access_events its columns, \\q quits

Tables: access_events, system_events, rejects, alerts, and with --ref DIR
staff, patients, encounters. Detection functions: median(x), mad(x),
robust_z(x) OVER (...), distinct_count(x) (count(DISTINCT x) for many
groups, in far less memory), and with --ref
care_relationship(user_id, patient_id, ts, INTERVAL '1' DAY).
SQL is read-only (no DDL, INSERT or COPY).";

const GEN_EXAMPLES: &str = "\
Examples:
  emrwatch gen --out demo-out --events 5000 --days 7 --gzip
  emrwatch gen --out /tmp/big --events 2000000 --days 30
  emrwatch gen --out /tmp/flat --format ndjson --seed 7

Writes OUT/logs/ (the EMR access log, one file per day), OUT/syslog/ (one file
per server: RFC 3164 and, for pacs01, RFC 5424), OUT/ref/{staff,patients,
encounters}.csv and OUT/labels.csv (the injected incidents: scenario, actor,
patient_id, start_ts, end_ts). The same seed writes the same bytes, whatever
the number of threads.";

/// Where the store lives.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Store root: a folder or a URL (file://…).
    #[arg(long, env = "EMRWATCH_STORE", default_value = "./emrwatch-store")]
    pub store: String,
}

/// `emrwatch ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files, folders, file:// URLs or quoted globs to read.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Input format; `auto` tells each file's format by its first record (FHIR, other JSON
    /// lines, ATNA, syslog, CSV).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    pub format: Format,
    /// Field mapping TOML for `ndjson` and `csv` (see README, "Mapping files").
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Time zone of syslog timestamps written without one (RFC 3164 ones never have one):
    /// an IANA name such as Europe/Zurich.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub syslog_tz: String,
    /// Year of RFC 3164 syslog timestamps, which have none (default: each file's
    /// modification year, the year before for days after that date).
    #[arg(long, value_name = "YEAR")]
    pub syslog_year: Option<i32>,
    /// Decoding threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    /// Longest accepted record (line) in bytes; longer ones are rejected without being buffered.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(64..))]
    pub max_record_bytes: u64,
    /// Largest accepted single-document file (a pretty-printed FHIR resource or Bundle).
    #[arg(long, default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(64..))]
    pub max_document_bytes: u64,
    /// Fail (exit 2, nothing stored) on the first rejected record.
    #[arg(long)]
    pub strict: bool,
    /// Decode everything but store nothing (measures parsing; reports rejects).
    #[arg(long)]
    pub dry_run: bool,
    /// Show a progress bar even when stderr is not a terminal (or never: --no-progress).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `emrwatch sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Run this statement and exit.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub execute: Option<String>,
    /// Run the statements in this file (separated by `;`) and exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Result format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Reference folder (staff.csv, patients.csv, encounters.csv) to register as tables.
    #[arg(long = "ref", value_name = "DIR", env = "EMRWATCH_REF")]
    pub reference: Option<PathBuf>,
}

/// `emrwatch gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Output folder (OUT/logs/, OUT/syslog/, OUT/ref/, OUT/labels.csv).
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of access events.
    #[arg(long, default_value_t = 5_000)]
    pub events: u64,
    /// Days covered (one file per day).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// First day, YYYY-MM-DD.
    #[arg(long, default_value = "2026-11-01")]
    pub start: String,
    /// Workforce size (default: scaled to --events, about one worker per 650 events, at least 50).
    #[arg(long)]
    pub staff: Option<u32>,
    /// Patient population (default: 25 per worker).
    #[arg(long)]
    pub patients: Option<u32>,
    /// Compress every file with gzip (.gz).
    #[arg(long)]
    pub gzip: bool,
    /// Format of the access log: FHIR R4 AuditEvent NDJSON, flat JSON lines
    /// with the canonical column names, or CSV with a header.
    #[arg(long, value_enum, default_value_t = crate::synth::OutputFormat::Fhir)]
    pub format: crate::synth::OutputFormat,
    /// Threads writing day files (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Incidents injected per scenario (written to OUT/labels.csv).
    #[arg(long, default_value_t = 2)]
    pub incidents: u32,
}
