//! Injected incidents: the malicious events of a scenario from DESIGN.md's
//! vocabulary, and the label that says where they are.
//!
//! Done so far: self_access, family_snooping, vip_snooping, bulk_export. Each
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
    "vip_snooping",
    "bulk_export",
];

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
                    "bulk_export" => Some((user, None)),
                    _ => None,
                }
            });
            let Some((user, patient)) = found else {
                continue;
            };
            let start = when(rng);
            let mut these = Vec::new();
            match (*scenario, patient) {
                ("bulk_export", _) => {
                    // Dozens of charts printed or exported within the hour.
                    let n = 40 + rng.below(40) as i64;
                    for k in 0..n {
                        these.push(Injected {
                            ts: start + k * (MINUTE / 2) + rng.below(20_000) as i64 * 1000,
                            user,
                            patient: rng.below(pop.patients.len() as u64) as usize,
                            kind: if rng.below(3) == 0 {
                                Kind::Print
                            } else {
                                Kind::Export
                            },
                        });
                    }
                }
                (_, Some(p)) => {
                    // From one blatant look to a few views over a quarter of an hour.
                    let n = 1 + rng.below(3) as i64;
                    for k in 0..n {
                        these.push(Injected {
                            ts: start + k * 5 * MINUTE + rng.below(60_000) as i64 * 1000,
                            user,
                            patient: p,
                            kind: Kind::Plain("R", "view"),
                        });
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
