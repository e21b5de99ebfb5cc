//! Injected incidents: the malicious events of a scenario from DESIGN.md's
//! vocabulary, and the label that says where they are.
//!
//! Done so far: the access scenarios but terminated_access and after_hours
//! (both need the background to model employment end and shifts first). Each
//! incident's label window covers exactly its injected events.

use std::collections::{HashMap, HashSet};

use super::population::{Encounter, Population};
use super::{Kind, Rng};

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;

/// One event of an incident.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    /// UTC microseconds.
    pub ts: i64,
    /// Staff index.
    pub user: usize,
    /// Patient index (unused for logins).
    pub patient: usize,
    /// What was done.
    pub kind: Kind,
    /// The last octet of an address in 203.0.113.0/24 the user never used, if not their own.
    pub foreign_ip: Option<u8>,
}

/// A row of `labels.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Scenario name.
    pub scenario: &'static str,
    /// The culprit's user id.
    pub actor: String,
    /// The patient concerned, when one is.
    pub patient_id: Option<String>,
    /// First injected event.
    pub start_us: i64,
    /// Last injected event.
    pub end_us: i64,
}

/// The scenarios this generator injects.
pub const SCENARIOS: &[&str] = &[
    "self_access",
    "family_snooping",
    "neighbor_snooping",
    "coworker_snooping",
    "vip_snooping",
    "deceased_access",
    "volume_spike",
    "bulk_export",
    "break_glass_misuse",
    "record_tampering",
    "account_compromise",
];

/// The street of an address (`12 OAK ST` → `OAK ST`).
fn street(address: &str) -> &str {
    address.split_once(' ').map_or(address, |(_, s)| s)
}

/// Draws `per_scenario` incidents of every scenario in [`SCENARIOS`] (fewer when
/// the population has no candidate, e.g. no VIP), within the archive's days.
pub fn inject(
    rng: &mut Rng,
    pop: &Population,
    encounters: &[Encounter],
    start_day: i64,
    days: u32,
    per_scenario: u32,
) -> (Vec<Injected>, Vec<Label>) {
    // Who is under the care of which department: snooping must be unexplained.
    let cared: HashSet<(usize, usize)> = encounters
        .iter()
        .map(|e| (e.patient, e.dept_index))
        .collect();
    let unexplained =
        |user: usize, patient: usize| !cared.contains(&(patient, pop.staff[user].dept_index));
    let mut by_last: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pop.patients.iter().enumerate() {
        by_last.entry(p.last).or_default().push(i);
    }
    let own_record: HashMap<&str, usize> = pop
        .patients
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.employee_user_id.as_deref().map(|u| (u, i)))
        .collect();
    let vips: Vec<usize> = (0..pop.patients.len())
        .filter(|&i| pop.patients[i].vip)
        .collect();
    let employees: Vec<usize> = (0..pop.patients.len())
        .filter(|&i| pop.patients[i].employee_user_id.is_some())
        .collect();
    // Dead for more than 30 days before the archive starts.
    let long_dead: Vec<usize> = (0..pop.patients.len())
        .filter(|&i| {
            pop.patients[i]
                .deceased_day
                .is_some_and(|d| d < start_day - 30)
        })
        .collect();
    let mut by_street: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pop.patients.iter().enumerate() {
        by_street.entry(street(&p.address)).or_default().push(i);
    }
    let n_patients = pop.patients.len() as u64;

    let mut events = Vec::new();
    let mut labels = Vec::new();
    // A working-hours moment on a random day.
    let when = |rng: &mut Rng| {
        let day = start_day + rng.below(u64::from(days.max(1))) as i64;
        day * DAY + (9 * 60 + rng.below(8 * 60) as i64) * MINUTE
    };
    let staff_n = pop.staff.len() as u64;
    for scenario in SCENARIOS {
        for _ in 0..per_scenario.max(1) {
            // Up to 50 tries to find a fitting culprit and victim.
            let found = (0..50).find_map(|_| {
                let user = rng.below(staff_n) as usize;
                let s = &pop.staff[user];
                match *scenario {
                    "self_access" => own_record.get(s.user_id.as_str()).map(|&p| (user, Some(p))),
                    "family_snooping" => by_last.get(s.last).and_then(|ps| {
                        let p = ps[rng.below(ps.len() as u64) as usize];
                        (pop.patients[p].employee_user_id.as_deref() != Some(s.user_id.as_str())
                            && unexplained(user, p))
                        .then_some((user, Some(p)))
                    }),
                    "vip_snooping" if !vips.is_empty() => {
                        let p = vips[rng.below(vips.len() as u64) as usize];
                        unexplained(user, p).then_some((user, Some(p)))
                    }
                    "coworker_snooping" if !employees.is_empty() => {
                        let p = employees[rng.below(employees.len() as u64) as usize];
                        (pop.patients[p].employee_user_id.as_deref() != Some(s.user_id.as_str())
                            && unexplained(user, p))
                        .then_some((user, Some(p)))
                    }
                    "neighbor_snooping" => by_street.get(street(&s.address)).and_then(|ps| {
                        let p = ps[rng.below(ps.len() as u64) as usize];
                        let q = &pop.patients[p];
                        (q.address != s.address
                            && q.employee_user_id.is_none()
                            && q.last != s.last
                            && unexplained(user, p))
                        .then_some((user, Some(p)))
                    }),
                    "deceased_access" if !long_dead.is_empty() => {
                        let p = long_dead[rng.below(long_dead.len() as u64) as usize];
                        matches!(s.role, "physician" | "nurse").then_some((user, Some(p)))
                    }
                    "break_glass_misuse" => {
                        let p = rng.below(n_patients) as usize;
                        unexplained(user, p).then_some((user, Some(p)))
                    }
                    "bulk_export" | "volume_spike" | "record_tampering" | "account_compromise" => {
                        Some((user, None))
                    }
                    _ => None,
                }
            });
            let Some((user, patient)) = found else {
                continue;
            };
            let start = when(rng);
            let mut these = Vec::new();
            let mut add = |ts: i64, patient: usize, kind: Kind, foreign_ip: Option<u8>| {
                these.push(Injected {
                    ts,
                    user,
                    patient,
                    kind,
                    foreign_ip,
                })
            };
            let random_patient = |rng: &mut Rng| rng.below(n_patients) as usize;
            match (*scenario, patient) {
                ("bulk_export", _) => {
                    // Dozens of charts printed or exported within the hour.
                    for k in 0..40 + rng.below(40) as i64 {
                        let kind = if rng.below(3) == 0 {
                            Kind::Print
                        } else {
                            Kind::Export
                        };
                        let p = random_patient(rng);
                        add(
                            start + k * (MINUTE / 2) + rng.below(20_000) as i64 * 1000,
                            p,
                            kind,
                            None,
                        );
                    }
                }
                ("volume_spike", _) => {
                    // Hundreds of distinct charts opened in one working day.
                    let day0 = start.div_euclid(DAY) * DAY + 8 * 60 * MINUTE;
                    for k in 0..150 + rng.below(100) as i64 {
                        let p = random_patient(rng);
                        add(
                            day0 + k * 2 * MINUTE + rng.below(60_000) as i64 * 1000,
                            p,
                            Kind::Plain("R", "view"),
                            None,
                        );
                    }
                }
                ("record_tampering", _) => {
                    // A burst of deletions and edits of charts nobody asked them to touch.
                    for k in 0..5 + rng.below(8) as i64 {
                        let p = (0..50)
                            .map(|_| random_patient(rng))
                            .find(|&p| unexplained(user, p))
                            .unwrap_or(0);
                        let kind = if rng.below(3) == 0 {
                            Kind::Plain("U", "update")
                        } else {
                            Kind::Plain("D", "delete")
                        };
                        add(
                            start + k * MINUTE + rng.below(30_000) as i64 * 1000,
                            p,
                            kind,
                            None,
                        );
                    }
                }
                ("account_compromise", _) => {
                    // A password guessed from an address the user never used, then a look around.
                    let ip = 1 + rng.below(250) as u8;
                    let guesses = 6 + rng.below(7) as i64;
                    for k in 0..guesses {
                        add(
                            start + k * 7_000_000,
                            0,
                            Kind::Login { failed: true },
                            Some(ip),
                        );
                    }
                    let t = start + guesses * 7_000_000;
                    add(t, 0, Kind::Login { failed: false }, Some(ip));
                    for k in 1..=3 {
                        let p = random_patient(rng);
                        add(t + k * MINUTE, p, Kind::Plain("R", "view"), Some(ip));
                    }
                }
                ("break_glass_misuse", Some(p)) => {
                    add(start, p, Kind::BreakGlass, None);
                }
                (_, Some(p)) => {
                    // From one blatant look to a few views over a quarter of an hour.
                    for k in 0..1 + rng.below(3) as i64 {
                        add(
                            start + k * 5 * MINUTE + rng.below(60_000) as i64 * 1000,
                            p,
                            Kind::Plain("R", "view"),
                            None,
                        );
                    }
                }
                _ => continue,
            }
            labels.push(Label {
                scenario,
                actor: pop.staff[user].user_id.clone(),
                patient_id: patient.map(|p| pop.patients[p].patient_id.clone()),
                start_us: these.iter().map(|e| e.ts).min().unwrap_or(start),
                end_us: these.iter().map(|e| e.ts).max().unwrap_or(start),
            });
            events.extend(these);
        }
    }
    events.sort_by_key(|e| e.ts);
    (events, labels)
}
