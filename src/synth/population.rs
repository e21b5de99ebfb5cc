//! The people of the synthetic hospital: staff, patients and the encounters
//! (treatment relationships) that explain most chart access. Written as the
//! reference CSVs of DESIGN.md ("Reference tables").

use std::io::Write;
use std::path::Path;

use super::{Rng, civil_from_days, rfc3339};
use crate::error::Result;

/// Departments with the roles that work in them; clinical ones hold encounters.
pub const DEPARTMENTS: &[(&str, &[&str], bool)] = &[
    ("medicine", &["physician", "nurse", "nurse", "nurse"], true),
    ("surgery", &["physician", "nurse", "nurse"], true),
    ("emergency", &["physician", "nurse", "nurse"], true),
    ("icu", &["physician", "nurse", "nurse", "nurse"], true),
    ("pediatrics", &["physician", "nurse", "nurse"], true),
    ("oncology", &["physician", "nurse"], true),
    ("imaging", &["radiology"], false),
    ("pharmacy", &["pharmacist"], false),
    ("registration", &["clerk"], false),
    ("health-information", &["him"], false),
    ("finance", &["billing"], false),
    ("it", &["admin"], false),
];

/// When a worker works. Background activity stays inside it, so "hours the
/// user never works" (after_hours) has a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// `day`, `evening`, `night` or `office`.
    pub name: &'static str,
    /// First hour (UTC).
    pub start_hour: u8,
    /// Length in hours; a night shift wraps past midnight.
    pub hours: u8,
    /// Whether the worker also works on Saturdays and Sundays.
    pub weekends: bool,
}

/// 07:00–15:00, every day of the week (on a rota).
pub const DAY_SHIFT: Shift = Shift {
    name: "day",
    start_hour: 7,
    hours: 8,
    weekends: true,
};
/// 15:00–23:00.
pub const EVENING_SHIFT: Shift = Shift {
    name: "evening",
    start_hour: 15,
    hours: 8,
    weekends: true,
};
/// 23:00–07:00: permanent night staff.
pub const NIGHT_SHIFT: Shift = Shift {
    name: "night",
    start_hour: 23,
    hours: 8,
    weekends: true,
};
/// 08:00–17:00 on weekdays: HIM, billing, registration, IT.
pub const OFFICE_HOURS: Shift = Shift {
    name: "office",
    start_hour: 8,
    hours: 9,
    weekends: false,
};

impl Shift {
    /// Whether the hour of day `h` (0–23) is inside the shift.
    pub fn covers(&self, h: u8) -> bool {
        (h + 24 - self.start_hour) % 24 < self.hours
    }
    /// A moment of the shift on `day` (days since the epoch), UTC microseconds.
    /// A night shift's hours after midnight fall on the same calendar day.
    pub fn moment(&self, rng: &mut Rng, day: i64) -> i64 {
        let hour = (u64::from(self.start_hour) + rng.below(u64::from(self.hours))) % 24;
        day * 86_400_000_000
            + (hour * 3600 + rng.below(3600)) as i64 * 1_000_000
            + rng.below(1000) as i64 * 1000
    }
}

/// Whether `day` (days since the epoch) is a Saturday or a Sunday.
pub fn is_weekend(day: i64) -> bool {
    // 1970-01-01 was a Thursday.
    matches!((day + 3).rem_euclid(7), 5 | 6)
}

// Common surnames on purpose: staff share them with patients they legitimately treat.
const LAST: &[&str] = &[
    "GARCIA", "SMITH", "JOHNSON", "NGUYEN", "MULLER", "ROSSI", "KIM", "PATEL", "BROWN", "LOPEZ",
    "MARTIN", "WILSON", "SCHMIDT", "ANDERSON", "TAYLOR", "THOMAS", "MOORE", "JACKSON", "WHITE",
    "HARRIS", "CLARK", "LEWIS", "WALKER", "HALL", "YOUNG", "KING", "WRIGHT", "SCOTT", "GREEN",
    "BAKER", "ADAMS", "NELSON", "HILL", "CAMPBELL", "MITCHELL", "ROBERTS", "CARTER", "PHILLIPS",
    "EVANS", "TURNER", "TORRES", "PARKER", "COLLINS", "EDWARDS", "STEWART", "MORRIS", "MURPHY",
    "COOK", "ROGERS", "MORGAN",
];
const FIRST: &[&str] = &[
    "ANA", "JOHN", "MARIA", "DAVID", "LINH", "ELENA", "JAMES", "PRIYA", "SARAH", "LUCA", "MIN",
    "OMAR", "EMMA", "NOAH", "OLIVIA", "LIAM", "SOFIA", "ETHAN", "MIA", "LUKAS", "AVA", "HUGO",
    "ZOE", "IVAN", "NORA", "FELIX", "ALMA", "OSCAR", "RUTH", "ELI",
];
const STREETS: &[&str] = &[
    "OAK ST",
    "MAPLE AVE",
    "PINE RD",
    "CEDAR LN",
    "ELM ST",
    "LAKE DR",
    "HILL RD",
    "RIVER RD",
    "PARK AVE",
    "MILL ST",
    "CHURCH ST",
    "HIGH ST",
    "SCHOOL LN",
    "BIRCH WAY",
    "WILLOW CT",
    "SUNSET BLVD",
    "FOREST DR",
    "MEADOW LN",
    "SPRING ST",
    "VALLEY RD",
];
const ZIPS: &[&str] = &[
    "60601", "60602", "60605", "60607", "60610", "60614", "60618", "60622",
];

/// A workforce member.
#[derive(Debug, Clone)]
pub struct Staff {
    /// `u00042`.
    pub user_id: String,
    /// Given name.
    pub first: &'static str,
    /// Family name.
    pub last: &'static str,
    /// Role.
    pub role: &'static str,
    /// Department.
    pub department: &'static str,
    /// Index into [`DEPARTMENTS`].
    pub dept_index: usize,
    /// Street address.
    pub address: String,
    /// ZIP code.
    pub zip: &'static str,
    /// Days since the epoch.
    pub hire_day: i64,
    /// Last day of employment (days since the epoch), if they left.
    pub termination_day: Option<i64>,
    /// When they work.
    pub shift: Shift,
}

impl Staff {
    /// Whether they are employed on `day` (the termination day is their last).
    pub fn employed_on(&self, day: i64) -> bool {
        day >= self.hire_day && self.termination_day.is_none_or(|t| day <= t)
    }
    /// Whether they are at work on `day`: employed, and it is one of their days.
    pub fn works_on(&self, day: i64) -> bool {
        self.employed_on(day) && (self.shift.weekends || !is_weekend(day))
    }
}

/// A patient.
#[derive(Debug, Clone)]
pub struct Patient {
    /// `MRN0000042`.
    pub patient_id: String,
    /// Given name.
    pub first: &'static str,
    /// Family name.
    pub last: &'static str,
    /// Days since the epoch.
    pub birth_day: i64,
    /// Street address.
    pub address: String,
    /// ZIP code.
    pub zip: &'static str,
    /// Days since the epoch, if dead.
    pub deceased_day: Option<i64>,
    /// A VIP (celebrity, official, board member).
    pub vip: bool,
    /// The staff member this patient is, if any.
    pub employee_user_id: Option<String>,
}

/// A treatment relationship: `user_id` (the attending) and the department's
/// care team look after `patient` between `start_us` and `end_us`.
#[derive(Debug, Clone)]
pub struct Encounter {
    /// `E0000042`.
    pub encounter_id: String,
    /// Index into the patients.
    pub patient: usize,
    /// Index into the staff (the attending).
    pub attending: usize,
    /// Index into [`DEPARTMENTS`].
    pub dept_index: usize,
    /// Start, UTC microseconds.
    pub start_us: i64,
    /// End, UTC microseconds.
    pub end_us: i64,
}

/// Everybody in the hospital.
#[derive(Debug, Clone)]
pub struct Population {
    /// The workforce.
    pub staff: Vec<Staff>,
    /// The patients.
    pub patients: Vec<Patient>,
    /// Staff indices per department.
    pub by_department: Vec<Vec<usize>>,
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

fn address(rng: &mut Rng) -> String {
    format!("{} {}", 1 + rng.below(1999), pick(rng, STREETS))
}

impl Population {
    /// Draws `staff` workers and `patients` patients; some staff are patients
    /// too, and a few workers leave before or during the `days` from `start_day`.
    pub fn new(rng: &mut Rng, staff: u32, patients: u32, start_day: i64, days: u32) -> Self {
        let mut by_department = vec![Vec::new(); DEPARTMENTS.len()];
        let staff: Vec<Staff> = (0..staff.max(1))
            .map(|i| {
                // Clinical departments are larger: two in three workers are clinical.
                let dept_index = if rng.below(3) < 2 {
                    rng.below(6) as usize
                } else {
                    6 + rng.below((DEPARTMENTS.len() - 6) as u64) as usize
                };
                let (department, roles, _) = DEPARTMENTS[dept_index];
                by_department[dept_index].push(i as usize);
                let role = pick(rng, roles);
                let shift = match role {
                    "physician" | "nurse" => match rng.below(20) {
                        0..=11 => DAY_SHIFT,
                        12..=16 => EVENING_SHIFT,
                        _ => NIGHT_SHIFT,
                    },
                    "pharmacist" | "radiology" => {
                        if rng.below(10) < 7 {
                            DAY_SHIFT
                        } else {
                            EVENING_SHIFT
                        }
                    }
                    _ => OFFICE_HOURS,
                };
                // Three in a hundred leave: some before the archive (their
                // accounts should be silent), some during it.
                let termination_day = (rng.below(100) < 3)
                    .then(|| start_day - 60 + rng.below(60 + u64::from(days) * 2 / 3) as i64);
                Staff {
                    user_id: format!("u{i:05}"),
                    first: pick(rng, FIRST),
                    last: pick(rng, LAST),
                    role,
                    department,
                    dept_index,
                    address: address(rng),
                    zip: pick(rng, ZIPS),
                    hire_day: start_day - 30 - rng.below(7000) as i64,
                    termination_day,
                    shift,
                }
            })
            .collect();
        let mut staff = staff;
        // Every hospital has had somebody leave; terminated_access needs one.
        if staff.len() > 10 && staff.iter().all(|s| s.termination_day.is_none()) {
            let n = staff.len();
            staff[n / 2].termination_day = Some(start_day - 10);
        }
        let mut patients: Vec<Patient> = (0..patients.max(1))
            .map(|i| Patient {
                patient_id: format!("MRN{i:07}"),
                first: pick(rng, FIRST),
                last: pick(rng, LAST),
                birth_day: start_day - 365 * (1 + rng.below(95) as i64) - rng.below(365) as i64,
                address: address(rng),
                zip: pick(rng, ZIPS),
                deceased_day: (rng.below(100) == 0).then(|| start_day - rng.below(2000) as i64),
                vip: rng.below(1000) == 0,
                employee_user_id: None,
            })
            .collect();
        // Every hospital has a celebrity or two on file.
        if patients.len() >= 100 && !patients.iter().any(|p| p.vip) {
            let n = patients.len();
            patients[n / 3].vip = true;
        }
        // One worker in five is also a patient here: same name and home.
        let n_patients = patients.len();
        for (i, s) in staff.iter().enumerate() {
            if i % 5 == 0 && i < n_patients {
                let p = &mut patients[(i * 7919) % n_patients];
                p.first = s.first;
                p.last = s.last;
                p.address = s.address.clone();
                p.zip = s.zip;
                p.deceased_day = None;
                p.employee_user_id = Some(s.user_id.clone());
            }
        }
        Self {
            staff,
            patients,
            by_department,
        }
    }

    /// Clinical departments that have staff.
    pub fn clinical_departments(&self) -> Vec<usize> {
        (0..DEPARTMENTS.len())
            .filter(|&d| DEPARTMENTS[d].2 && !self.by_department[d].is_empty())
            .collect()
    }
}

fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes `DIR/staff.csv`, `DIR/patients.csv` and `DIR/encounters.csv`.
pub fn write_reference(dir: &Path, pop: &Population, encounters: &[Encounter]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("staff.csv"))?);
    writeln!(
        w,
        "user_id,first_name,last_name,role,department,address,zip,hire_date,termination_date"
    )?;
    for s in &pop.staff {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{}",
            s.user_id,
            s.first,
            s.last,
            s.role,
            s.department,
            s.address,
            s.zip,
            date(s.hire_day),
            s.termination_day.map(date).unwrap_or_default()
        )?;
    }
    w.flush()?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("patients.csv"))?);
    writeln!(
        w,
        "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id"
    )?;
    for p in &pop.patients {
        writeln!(
            w,
            "{},{},{},{},{},{},{},{},{}",
            p.patient_id,
            p.first,
            p.last,
            date(p.birth_day),
            p.address,
            p.zip,
            p.deceased_day.map(date).unwrap_or_default(),
            p.vip,
            p.employee_user_id.as_deref().unwrap_or("")
        )?;
    }
    w.flush()?;
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("encounters.csv"))?);
    writeln!(
        w,
        "encounter_id,patient_id,user_id,department,start_ts,end_ts"
    )?;
    for e in encounters {
        writeln!(
            w,
            "{},{},{},{},{},{}",
            e.encounter_id,
            pop.patients[e.patient].patient_id,
            pop.staff[e.attending].user_id,
            DEPARTMENTS[e.dept_index].0,
            rfc3339(e.start_us),
            rfc3339(e.end_us)
        )?;
    }
    w.flush()?;
    Ok(())
}

/// Draws `n` encounters over `days` days from `start_day`: most outpatient
/// visits of a few hours, some inpatient stays of days. Sorted by start.
pub fn encounters(
    rng: &mut Rng,
    pop: &Population,
    n: usize,
    start_day: i64,
    days: u32,
) -> Vec<Encounter> {
    let clinical = pop.clinical_departments();
    if clinical.is_empty() {
        return Vec::new();
    }
    const HOUR: i64 = 3_600_000_000;
    let living: Vec<usize> = (0..pop.patients.len())
        .filter(|&p| pop.patients[p].deceased_day.is_none())
        .collect();
    let mut out: Vec<Encounter> = (0..n)
        .map(|_| {
            let dept_index = pick(rng, &clinical);
            let day = start_day + rng.below(u64::from(days.max(1))) as i64;
            let patient = if living.is_empty() {
                0
            } else {
                pick(rng, &living)
            };
            // The attending is on the payroll for the whole stay, and is not
            // the patient: nobody treats themselves.
            let team = &pop.by_department[dept_index];
            let own = pop.patients[patient].employee_user_id.as_deref();
            let attending = (0..20)
                .map(|_| pick(rng, team))
                .find(|&u| {
                    pop.staff[u].employed_on(day + 6) && own != Some(pop.staff[u].user_id.as_str())
                })
                .unwrap_or(team[0]);
            let start_us = day * 24 * HOUR
                + (6 + rng.below(14) as i64) * HOUR
                + rng.below(3600) as i64 * 1_000_000;
            let len = if rng.below(10) < 7 {
                (1 + rng.below(4) as i64) * HOUR
            } else {
                (24 + rng.below(24 * 5) as i64) * HOUR
            };
            Encounter {
                encounter_id: String::new(),
                patient,
                attending,
                dept_index,
                start_us,
                end_us: start_us + len,
            }
        })
        .collect();
    out.sort_by_key(|e| e.start_us);
    for (i, e) in out.iter_mut().enumerate() {
        e.encounter_id = format!("E{i:07}");
    }
    out
}
