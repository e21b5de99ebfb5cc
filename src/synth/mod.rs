//! A deterministic synthetic EMR access log: FHIR R4 AuditEvent NDJSON, one
//! file per day. It feeds the demo, the tests and the benchmarks with realistic
//! records whose counts are known exactly.
//!
//! The hospital has a workforce, patients and encounters (written as the
//! reference CSVs under `OUT/ref/`), and most chart access follows an
//! encounter: the attending or a colleague of the encounter's department opens
//! the patient's chart on a day of the encounter. A few percent of access is
//! legitimately unexplained (consults, covering colleagues). Injected incidents
//! with their labels are still to come.

pub mod incidents;
pub mod population;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Result;

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
    /// Where to write (`DIR/logs/*.ndjson[.gz]`).
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
        }
    }
}

/// What [`generate`] wrote: the ground truth tests compare the store against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenSummary {
    /// Events written.
    pub events: u64,
    /// Events per normalised action.
    pub per_action: BTreeMap<String, u64>,
    /// Distinct patients that appear in some event.
    pub distinct_patients: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
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

/// Writes the archive and returns what it holds.
pub fn generate(opts: &GenOptions) -> Result<GenSummary> {
    let logs = opts.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut rng = Rng::new(opts.seed);
    let mut summary = GenSummary::default();
    let days = opts.days.max(1);
    let pop = population::Population::new(&mut rng, opts.staff, opts.patients, opts.start_day);
    // About twenty chart accesses per encounter.
    let n_enc = (opts.events / 20).max(1) as usize;
    let encs = population::encounters(&mut rng, &pop, n_enc, opts.start_day, days);
    population::write_reference(&opts.out.join("ref"), &pop, &encs)?;
    let (injected, labels) =
        incidents::inject(&mut rng, &pop, &encs, opts.start_day, days, opts.incidents);
    write_labels(&opts.out.join("labels.csv"), &labels)?;
    let mut injected = injected.into_iter().peekable();
    let mut active: Vec<Vec<usize>> = vec![Vec::new(); days as usize];
    for (i, e) in encs.iter().enumerate() {
        let first = e.start_us.div_euclid(86_400_000_000) - opts.start_day;
        let last = e.end_us.div_euclid(86_400_000_000) - opts.start_day;
        for d in first.max(0)..=last.min(i64::from(days) - 1) {
            active[d as usize].push(i);
        }
    }
    let mut seen = vec![false; pop.patients.len()];
    let n_staff = pop.staff.len() as u64;
    let n_patients = pop.patients.len() as u64;
    for day in 0..days {
        let n = opts.events / u64::from(days)
            + u64::from(u64::from(day) < opts.events % u64::from(days));
        let date = opts.start_day + i64::from(day);
        let (y, m, d) = civil_from_days(date);
        let name = format!(
            "{y:04}-{m:02}-{d:02}.ndjson{}",
            if opts.gzip { ".gz" } else { "" }
        );
        let path = logs.join(name);
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        let mut out: Box<dyn Write> = if opts.gzip {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        };
        // Events spread over the day in time order, mostly in the day shift.
        let mut times: Vec<i64> = (0..n)
            .map(|_| {
                let hour = if rng.below(10) < 8 {
                    7 + rng.below(12)
                } else {
                    rng.below(24)
                };
                let us = (hour * 3600 + rng.below(3600)) * 1_000_000 + rng.below(1000) * 1000;
                date * 86_400_000_000 + us as i64
            })
            .collect();
        times.sort_unstable();
        let today = &active[day as usize];
        let mut planned: Vec<(i64, usize, usize, Kind, Option<u8>)> =
            Vec::with_capacity(times.len());
        for ts in times {
            let roll = rng.below(1000);
            let kind = match roll {
                0..=29 => Kind::Login { failed: roll < 3 },
                30..=49 => Kind::Logout,
                50..=51 => Kind::BreakGlass,
                52..=56 => Kind::Print,
                57..=58 => Kind::Export,
                59..=99 => Kind::Plain("U", "update"),
                100..=119 => Kind::Plain("C", "create"),
                120..=124 => Kind::Plain("D", "delete"),
                125..=199 => Kind::Plain("E", "query"),
                _ => Kind::Plain("R", "view"),
            };
            // Chart access follows an encounter of the day, mostly; the rest
            // is legitimate but unexplained (consults, covering colleagues).
            let (user, patient) = if kind.has_patient() && !today.is_empty() && rng.below(100) < 93
            {
                let e = &encs[today[rng.below(today.len() as u64) as usize]];
                let team = &pop.by_department[e.dept_index];
                let user = if rng.below(2) == 0 {
                    e.attending
                } else {
                    team[rng.below(team.len() as u64) as usize]
                };
                (user, e.patient)
            } else {
                (rng.below(n_staff) as usize, rng.below(n_patients) as usize)
            };
            planned.push((ts, user, patient, kind, None));
        }
        let day_end = (date + 1) * 86_400_000_000;
        while let Some(inj) = injected.next_if(|e| e.ts < day_end) {
            planned.push((inj.ts, inj.user, inj.patient, inj.kind, inj.foreign_ip));
        }
        planned.sort_by_key(|p| p.0);
        for (i, (ts, user, patient, kind, foreign_ip)) in planned.into_iter().enumerate() {
            let staff = &pop.staff[user];
            let event = Event {
                id: format!("{y:04}{m:02}{d:02}-{i}"),
                ts,
                user: &staff.user_id,
                role: staff.role,
                // Each user works from their own address; an intruder from a documentation range.
                ip: match foreign_ip {
                    Some(x) => format!("203.0.113.{x}"),
                    None => format!(
                        "10.{}.{}.{}",
                        user / 65_536 % 256,
                        user / 256 % 256,
                        user % 256
                    ),
                },
                patient: &pop.patients[patient].patient_id,
                resource: RESOURCES[rng.below(RESOURCES.len() as u64) as usize],
                kind,
            };
            if event.kind.has_patient() {
                seen[patient] = true;
            }
            *summary
                .per_action
                .entry(event.kind.action().to_string())
                .or_default() += 1;
            summary.events += 1;
            event.write_fhir(&mut out)?;
        }
        out.flush()?;
        drop(out);
        summary.files.push(path);
    }
    summary.distinct_patients = seen.iter().filter(|s| **s).count() as u64;
    summary.labels = labels;
    Ok(summary)
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
    fn action(&self) -> &'static str {
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
    fn has_patient(&self) -> bool {
        !matches!(self, Kind::Login { .. } | Kind::Logout)
    }
}

struct Event<'a> {
    id: String,
    ts: i64,
    user: &'a str,
    role: &'static str,
    ip: String,
    patient: &'a str,
    resource: &'static str,
    kind: Kind,
}

impl Event<'_> {
    fn write_fhir(&self, out: &mut dyn Write) -> std::io::Result<()> {
        const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
        const REST: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
        const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";
        let (type_code, type_system, subtype, action) = match &self.kind {
            Kind::Login { .. } => ("110114", DCM, "110122", "E"),
            Kind::Logout => ("110114", DCM, "110123", "E"),
            Kind::BreakGlass => ("rest", REST, "read", "R"),
            Kind::Print => ("rest", REST, "print", "R"),
            Kind::Export => ("rest", REST, "export", "R"),
            Kind::Plain(code, _) => (
                "rest",
                REST,
                match *code {
                    "C" => "create",
                    "U" => "update",
                    "D" => "delete",
                    "E" => "search-type",
                    _ => "read",
                },
                *code,
            ),
        };
        let sub_system = if type_system == DCM { DCM } else { INTERACTION };
        let outcome = if matches!(self.kind, Kind::Login { failed: true }) {
            "4"
        } else {
            "0"
        };
        write!(
            out,
            r#"{{"resourceType":"AuditEvent","id":"{}","type":{{"system":"{type_system}","code":"{type_code}"}},"subtype":[{{"system":"{sub_system}","code":"{subtype}"}}],"action":"{action}","recorded":"{}","outcome":"{outcome}","#,
            self.id,
            rfc3339(self.ts)
        )?;
        if matches!(self.kind, Kind::BreakGlass) {
            write!(
                out,
                r#""purposeOfEvent":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"BTG"}}]}}],"#
            )?;
        }
        write!(
            out,
            r#""agent":[{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}}]}},"role":[{{"coding":[{{"system":"urn:emrwatch:role","code":"{}"}}]}}],"who":{{"identifier":{{"system":"urn:emrwatch:staff","value":"{}"}}}},"requestor":true,"network":{{"address":"{}","type":"2"}}}}],"source":{{"observer":{{"display":"EMR"}}}}"#,
            self.role, self.user, self.ip
        )?;
        if self.kind.has_patient() {
            write!(
                out,
                r#","entity":[{{"what":{{"reference":"Patient/{p}"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}}},{{"what":{{"reference":"{r}/{id}"}}}}]"#,
                p = self.patient,
                r = self.resource,
                id = self.id
            )?;
        }
        writeln!(out, "}}")
    }
}

/// Where [`generate`] puts the day files of an archive rooted at `out`.
pub fn logs_dir(out: &Path) -> PathBuf {
    out.join("logs")
}
