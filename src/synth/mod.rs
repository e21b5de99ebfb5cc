//! `emrwatch gen`: a deterministic synthetic hospital. It writes the EMR
//! access log (FHIR R4 AuditEvent NDJSON by default, one file per day), the
//! servers' syslog, the reference CSVs (`OUT/ref/`), and `OUT/labels.csv`, the
//! injected incidents a detector should find.
//!
//! The arrows: [`population`] draws staff (with shifts and leavers), patients
//! and encounters; [`incidents`] and [`hosts`] plan the incidents;
//! [`background`] draws each day's ordinary activity, including the benign
//! look-alikes; [`write`] formats the events. Days are independent random
//! streams, written in parallel.

pub mod background;
pub mod hosts;
pub mod incidents;
pub mod population;
pub mod write;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};
pub use write::OutputFormat;

/// SplitMix64: tiny, fast and stable across releases, so a seed means the same archive forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

/// Settings of [`generate`].
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Where to write (`DIR/logs/`, `DIR/syslog/`, `DIR/ref/`, `DIR/labels.csv`).
    pub out: PathBuf,
    /// Random seed.
    pub seed: u64,
    /// Total events.
    pub events: u64,
    /// Days covered, starting at `start_day` (days since 1970-01-01).
    pub days: u32,
    /// First day.
    pub start_day: i64,
    /// Workforce size.
    pub staff: u32,
    /// Patient population.
    pub patients: u32,
    /// Compress each day's file with gzip.
    pub gzip: bool,
    /// Incidents injected per scenario.
    pub incidents: u32,
    /// Format of the access log.
    pub format: OutputFormat,
    /// Threads writing day files (0: one per core).
    pub threads: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("demo-out"),
            seed: 42,
            events: 5_000,
            days: 7,
            start_day: crate::ingest::timestamp::days_from_civil(2026, 11, 1),
            staff: 200,
            patients: 5_000,
            gzip: true,
            incidents: 2,
            format: OutputFormat::Fhir,
            threads: 0,
        }
    }
}

/// What [`generate`] wrote: the ground truth tests compare the store against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Access events written.
    pub events: u64,
    /// Syslog lines written.
    pub syslog_lines: u64,
    /// Events per normalised action.
    pub per_action: BTreeMap<String, u64>,
    /// Distinct patients that appear in some event.
    pub distinct_patients: u64,
    /// Access-log files written, in day order.
    pub files: Vec<PathBuf>,
    /// Syslog files written, one per host.
    pub syslog_files: Vec<PathBuf>,
    /// Incidents injected (also written to `labels.csv`).
    pub labels: Vec<incidents::Label>,
}

const RESOURCES: &[&str] = &[
    "Observation",
    "Condition",
    "MedicationRequest",
    "DocumentReference",
    "DiagnosticReport",
    "Encounter",
    "ImagingStudy",
];

/// Formats UTC microseconds as RFC 3339 with milliseconds.
pub fn rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let ms = us.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// The date of a day number (inverse of [`crate::ingest::timestamp::days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One access event before formatting.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// UTC microseconds.
    pub ts: i64,
    /// Staff index.
    pub user: usize,
    /// Patient index (unused for logins and logouts).
    pub patient: usize,
    /// What was done.
    pub kind: Kind,
    /// The last octet of an address in 203.0.113.0/24 the user never used, if not their own.
    pub foreign_ip: Option<u8>,
}

impl Access {
    /// An access from the user's own workstation.
    pub fn new(ts: i64, user: usize, patient: usize, kind: Kind) -> Self {
        Self {
            ts,
            user,
            patient,
            kind,
            foreign_ip: None,
        }
    }
}

/// Events of each day: weekdays are busier than weekends, and the total is exact.
fn per_day(events: u64, start_day: i64, days: u32) -> Vec<u64> {
    let weight = |d: u32| {
        if population::is_weekend(start_day + i64::from(d)) {
            3
        } else {
            5
        }
    };
    let total: u64 = (0..days).map(weight).sum();
    let mut n: Vec<u64> = (0..days).map(|d| events * weight(d) / total).collect();
    let short = events - n.iter().sum::<u64>();
    for d in 0..short as usize {
        n[d % days as usize] += 1;
    }
    n
}

/// What one day's file holds.
struct DayResult {
    path: PathBuf,
    events: u64,
    /// Events per [`Kind::slot`], with the slot's action name.
    per_kind: [(&'static str, u64); Kind::SLOTS],
    patients: Vec<usize>,
}

/// Writes the archive and returns what it holds.
pub fn generate(opts: &GenOptions) -> Result<GenSummary> {
    let logs = logs_dir(&opts.out);
    std::fs::create_dir_all(&logs)?;
    let mut rng = Rng::new(opts.seed);
    let days = opts.days.max(1);
    let pop =
        population::Population::new(&mut rng, opts.staff, opts.patients, opts.start_day, days);
    // About twenty chart accesses per encounter.
    let n_enc = (opts.events / 20).max(1) as usize;
    let encs = population::encounters(&mut rng, &pop, n_enc, opts.start_day, days);
    population::write_reference(&opts.out.join("ref"), &pop, &encs)?;
    let (injected, mut labels) =
        incidents::inject(&mut rng, &pop, &encs, opts.start_day, days, opts.incidents);
    let host = hosts::generate(
        &mut rng,
        &pop,
        &opts.out,
        opts.start_day,
        days,
        opts.incidents,
        opts.gzip,
    )?;
    labels.extend(host.labels);
    write_labels(&opts.out.join("labels.csv"), &labels)?;

    let hospital = background::Hospital::new(&pop, &encs, opts.start_day, days);
    let mut by_day: Vec<Vec<Access>> = vec![Vec::new(); days as usize];
    for a in injected {
        let d = a.ts.div_euclid(86_400_000_000) - opts.start_day;
        if (0..i64::from(days)).contains(&d) {
            by_day[d as usize].push(a);
        }
    }
    let counts = per_day(opts.events, opts.start_day, days);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(days as usize);
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(usize, DayResult)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let d = next.fetch_add(1, Ordering::Relaxed);
                        if d >= days as usize {
                            return Ok(done);
                        }
                        let r = write_day(opts, &hospital, d as u32, counts[d], &by_day[d])?;
                        done.push((d, r));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut done: Vec<(usize, DayResult)> = Vec::with_capacity(days as usize);
    for r in results {
        done.extend(r?);
    }
    done.sort_by_key(|(d, _)| *d);

    let mut summary = GenSummary {
        syslog_lines: host.lines,
        syslog_files: host.files,
        labels,
        ..GenSummary::default()
    };
    let mut seen = vec![false; pop.patients.len()];
    for (_, r) in done {
        summary.events += r.events;
        for (k, n) in r.per_kind.into_iter().filter(|(_, n)| *n > 0) {
            *summary.per_action.entry(k.to_string()).or_default() += n;
        }
        for p in r.patients {
            seen[p] = true;
        }
        summary.files.push(r.path);
    }
    summary.distinct_patients = seen.iter().filter(|s| **s).count() as u64;
    Ok(summary)
}

/// Draws, sorts and writes day `day`: its ordinary activity and `injected`.
fn write_day(
    opts: &GenOptions,
    hospital: &background::Hospital,
    day: u32,
    n: u64,
    injected: &[Access],
) -> Result<DayResult> {
    // Each day its own stream, so the bytes do not depend on the thread count.
    let mut rng = Rng::new(opts.seed ^ Rng::new(u64::from(day) + 1).next_u64());
    let mut events = hospital.day(&mut rng, day, n);
    events.extend_from_slice(injected);
    // Unstable is deterministic too, and faster.
    events.sort_unstable_by_key(|e| e.ts);

    let date = opts.start_day + i64::from(day);
    let (y, m, d) = civil_from_days(date);
    let name = format!(
        "{y:04}-{m:02}-{d:02}.{}{}",
        opts.format.extension(),
        if opts.gzip { ".gz" } else { "" }
    );
    let path = logs_dir(&opts.out).join(name);
    let file = std::fs::File::create(&path).map_err(|e| Error::Input {
        input: path.display().to_string(),
        reason: format!("cannot create: {e}"),
    })?;
    let mut out: Box<dyn Write> = if opts.gzip {
        Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    let id_prefix = format!("{y:04}{m:02}{d:02}-");
    let date_prefix = format!("{y:04}-{m:02}-{d:02}T");
    let pop = hospital.pop;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(opts.format.preamble());
    let mut per_kind = [("", 0u64); Kind::SLOTS];
    let mut patients = Vec::new();
    for (i, a) in events.iter().enumerate() {
        let staff = &pop.staff[a.user];
        let e = write::EventView {
            id_prefix: id_prefix.as_bytes(),
            seq: i as u64,
            date_prefix: date_prefix.as_bytes(),
            ts: a.ts,
            user: &staff.user_id,
            role: staff.role,
            user_index: a.user,
            foreign_ip: a.foreign_ip,
            patient: &pop.patients[a.patient].patient_id,
            resource: RESOURCES[rng.below(RESOURCES.len() as u64) as usize],
            kind: a.kind,
        };
        write::event(&mut buf, opts.format, &e);
        if buf.len() >= (1 << 20) - 4096 {
            out.write_all(&buf)?;
            buf.clear();
        }
        if a.kind.has_patient() {
            patients.push(a.patient);
        }
        let slot = &mut per_kind[a.kind.slot()];
        *slot = (a.kind.action(), slot.1 + 1);
    }
    out.write_all(&buf)?;
    out.flush()?;
    drop(out);
    Ok(DayResult {
        path,
        events: events.len() as u64,
        per_kind,
        patients,
    })
}

/// Writes `labels.csv`: scenario, actor, patient_id, start_ts, end_ts.
fn write_labels(path: &Path, labels: &[incidents::Label]) -> Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "scenario,actor,patient_id,start_ts,end_ts")?;
    for l in labels {
        writeln!(
            w,
            "{},{},{},{},{}",
            l.scenario,
            l.actor,
            l.patient_id.as_deref().unwrap_or(""),
            rfc3339(l.start_us),
            rfc3339(l.end_us)
        )?;
    }
    w.flush()?;
    Ok(())
}

/// What an event does.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A login, possibly failed.
    Login {
        /// Whether it failed.
        failed: bool,
    },
    /// A logout.
    Logout,
    /// A break-the-glass chart view.
    BreakGlass,
    /// A chart printed.
    Print,
    /// A chart exported.
    Export,
    /// A plain access: FHIR action code and normalised action.
    Plain(&'static str, &'static str),
}

impl Kind {
    /// How many values [`Kind::slot`] takes.
    const SLOTS: usize = 11;
    /// A small index per action, for counting without hashing.
    fn slot(&self) -> usize {
        match self {
            Kind::Login { failed: true } => 0,
            Kind::Login { failed: false } => 1,
            Kind::Logout => 2,
            Kind::BreakGlass => 3,
            Kind::Print => 4,
            Kind::Export => 5,
            Kind::Plain("C", _) => 6,
            Kind::Plain("U", _) => 7,
            Kind::Plain("D", _) => 8,
            Kind::Plain("E", _) => 9,
            Kind::Plain(..) => 10,
        }
    }
    /// The normalised action the decoders store for it.
    pub fn action(&self) -> &'static str {
        match self {
            Kind::Login { failed: true } => "login_failed",
            Kind::Login { failed: false } => "login",
            Kind::Logout => "logout",
            Kind::BreakGlass => "break_glass",
            Kind::Print => "print",
            Kind::Export => "export",
            Kind::Plain(_, a) => a,
        }
    }
    /// Whether it concerns a patient's chart.
    pub fn has_patient(&self) -> bool {
        !matches!(self, Kind::Login { .. } | Kind::Logout)
    }
}

/// Where [`generate`] puts the day files of an archive rooted at `out`.
pub fn logs_dir(out: &Path) -> PathBuf {
    out.join("logs")
}
