//! Injected incidents: the malicious events of a scenario from DESIGN.md's
//! vocabulary, and the label that says where they are.
//!
//! Each scenario comes from blatant to subtle (one family-member chart view, a
//! slow exfiltration over days, a brute force that succeeds), and each
//! incident's label window covers exactly its injected events. Culprits act
//! during their own shift, except where being off-shift is the incident; the
//! host-level scenarios live in [`super::hosts`].

use std::collections::{HashMap, HashSet};

use super::population::{Encounter, Population};
use super::{Access, Kind, Rng};

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;

/// A row of `labels.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Scenario name.
    pub scenario: &'static str,
    /// The culprit: a user id, or for host-level scenarios the host or source address.
    pub actor: String,
    /// The patient concerned, when one is.
    pub patient_id: Option<String>,
    /// First injected event.
    pub start_us: i64,
    /// Last injected event.
    pub end_us: i64,
}

/// The scenarios injected into the EMR access log.
pub const ACCESS_SCENARIOS: &[&str] = &[
    "self_access",
    "family_snooping",
    "neighbor_snooping",
    "coworker_snooping",
    "vip_snooping",
    "deceased_access",
    "terminated_access",
    "volume_spike",
    "bulk_export",
    "break_glass_misuse",
    "after_hours",
    "record_tampering",
    "account_compromise",
];

/// The scenarios injected into the servers' syslog (see [`super::hosts`]).
pub const HOST_SCENARIOS: &[&str] = &["ssh_bruteforce", "privilege_escalation", "log_tampering"];

/// Every scenario this generator injects: the access ones, then the host ones.
pub fn scenarios() -> impl Iterator<Item = &'static str> {
    ACCESS_SCENARIOS.iter().chain(HOST_SCENARIOS).copied()
}

/// The street of an address (`12 OAK ST` → `OAK ST`).
fn street(address: &str) -> &str {
    address.split_once(' ').map_or(address, |(_, s)| s)
}

/// Draws `per_scenario` incidents of every scenario in [`ACCESS_SCENARIOS`] (fewer when
/// the population has no candidate, e.g. no VIP), within the archive's days.
pub fn inject(
    rng: &mut Rng,
    pop: &Population,
    encounters: &[Encounter],
    start_day: i64,
    days: u32,
    per_scenario: u32,
) -> (Vec<Access>, Vec<Label>) {
    // Who is under the care of which department: snooping must be unexplained.
    let cared: HashSet<(usize, usize)> = encounters
        .iter()
        .map(|e| (e.patient, e.dept_index))
        .collect();
    // Snooping targets are living and no encounter of the culprit's department
    // explains them (a dead patient's chart would also be deceased_access).
    let unexplained = |user: usize, patient: usize| {
        !cared.contains(&(patient, pop.staff[user].dept_index))
            && pop.patients[patient].deceased_day.is_none()
    };
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
    let living: Vec<usize> = (0..pop.patients.len())
        .filter(|&i| pop.patients[i].deceased_day.is_none())
        .collect();

    let end_day = start_day + i64::from(days.max(1)) - 1;
    // Leavers are culprits of terminated_access only, so each label has one cause.
    let stays = |user: usize| pop.staff[user].termination_day.is_none();
    let gone: Vec<usize> = (0..pop.staff.len())
        .filter(|&u| pop.staff[u].termination_day.is_some_and(|t| t < end_day))
        .collect();

    let mut events = Vec::new();
    let mut labels = Vec::new();
    // A moment of the culprit's shift on a day they work.
    let when = |rng: &mut Rng, user: usize| {
        let s = &pop.staff[user];
        let day = (0..20)
            .map(|_| start_day + rng.below(u64::from(days.max(1))) as i64)
            .find(|&d| s.works_on(d))
            .unwrap_or(start_day);
        s.shift.moment(rng, day)
    };
    let staff_n = pop.staff.len() as u64;
    for scenario in ACCESS_SCENARIOS {
        for _ in 0..per_scenario.max(1) {
            // Up to 50 tries to find a fitting culprit and victim.
            let found = (0..50).find_map(|_| {
                let user = rng.below(staff_n) as usize;
                let s = &pop.staff[user];
                if *scenario == "terminated_access" {
                    let u = *gone.get(rng.below(gone.len() as u64) as usize)?;
                    return Some((u, None));
                }
                if !stays(user) {
                    return None;
                }
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
                        let p = living[rng.below(living.len() as u64) as usize];
                        unexplained(user, p).then_some((user, Some(p)))
                    }
                    // Somebody who never works at night, or it would not be off-hours.
                    "after_hours" => {
                        (!s.shift.covers(2) && !s.shift.covers(5) && !s.shift.covers(0))
                            .then_some((user, None))
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
            let start = when(rng, user);
            let mut these = Vec::new();
            let mut add = |ts: i64, patient: usize, kind: Kind, foreign_ip: Option<u8>| {
                these.push(Access {
                    foreign_ip,
                    ..Access::new(ts, user, patient, kind)
                })
            };
            // Living patients only, so each label has one cause: a dead
            // patient's chart in a volume spike would also be deceased_access.
            let own = own_record.get(pop.staff[user].user_id.as_str()).copied();
            // And never the culprit's own chart (that would be self_access).
            let random_patient = |rng: &mut Rng| {
                let mut p = living[rng.below(living.len() as u64) as usize];
                for _ in 0..10 {
                    if Some(p) != own {
                        break;
                    }
                    p = living[rng.below(living.len() as u64) as usize];
                }
                p
            };
            match (*scenario, patient) {
                ("bulk_export", _) if rng.below(3) == 0 => {
                    // The subtle one: a slow exfiltration, a dozen charts a day for three days.
                    let s = &pop.staff[user];
                    let first = start.div_euclid(DAY).min(end_day - 2).max(start_day);
                    for day in first..first + 3 {
                        for _ in 0..10 + rng.below(6) {
                            let p = random_patient(rng);
                            add(s.shift.moment(rng, day), p, Kind::Export, None);
                        }
                    }
                }
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
                    // Hundreds of distinct charts opened in one shift, inside
                    // its hours (off-shift work would be after_hours too).
                    let shift = &pop.staff[user].shift;
                    let day0 =
                        start.div_euclid(DAY) * DAY + i64::from(shift.start_hour) * 60 * MINUTE;
                    let n = 150 + rng.below(100) as i64;
                    let step = i64::from(shift.hours) * 60 * MINUTE / n;
                    for k in 0..n {
                        let p = random_patient(rng);
                        add(
                            day0 + k * step + rng.below(step as u64 / 2) as i64,
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
                ("terminated_access", _) => {
                    // The account of somebody who left, used from home a day or more later.
                    let t = pop.staff[user].termination_day.unwrap_or(start_day);
                    let day = (t + 1 + rng.below(10) as i64).clamp(start_day, end_day);
                    let ts = day * DAY + (8 * 60 + rng.below(12 * 60) as i64) * MINUTE;
                    let ip = 1 + rng.below(250) as u8;
                    add(ts, 0, Kind::Login { failed: false }, Some(ip));
                    for k in 1..=1 + rng.below(6) as i64 {
                        let p = random_patient(rng);
                        add(ts + k * 2 * MINUTE, p, Kind::Plain("R", "view"), Some(ip));
                    }
                }
                ("after_hours", _) => {
                    // A day worker going through charts between one and four in the morning.
                    let night = start.div_euclid(DAY) * DAY + 60 * MINUTE;
                    for _ in 0..20 + rng.below(25) {
                        let p = random_patient(rng);
                        let ts = night + rng.below(3 * 3600) as i64 * 1_000_000;
                        add(ts, p, Kind::Plain("R", "view"), None);
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
