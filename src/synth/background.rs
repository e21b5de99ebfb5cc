//! A day of ordinary hospital activity: chart access that follows the
//! encounters, by the people on shift, and the legitimate habits that look like
//! incidents to a naive rule (the benign look-alikes a detector must not flag).
//!
//! - A few percent of chart access is unexplained but legitimate (consults,
//!   covering colleagues).
//! - HIM and billing touch the charts of deceased patients (closing records,
//!   final bills).
//! - Emergency physicians break the glass on a patient just before the
//!   patient's emergency encounter opens.
//! - HIM prints a batch of charts for a release-of-information request.
//! - A mistyped password is followed by a successful login seconds later.
//!
//! Every day draws from its own random stream (seeded by the archive seed and
//! the day), so days can be written in parallel and stay deterministic.

use super::population::{Encounter, Population, is_weekend};
use super::{Access, Kind, Rng};

const MINUTE: i64 = 60_000_000;

/// What every day needs to know about the hospital.
pub struct Hospital<'a> {
    /// Staff and patients.
    pub pop: &'a Population,
    /// All encounters, sorted by start.
    pub encounters: &'a [Encounter],
    /// Per day of the archive: the encounters open on it.
    pub open: Vec<Vec<usize>>,
    /// Living patients (random legitimate access never opens a dead patient's chart).
    pub living: Vec<usize>,
    /// Deceased patients.
    pub deceased: Vec<usize>,
    /// First day of the archive (days since the epoch).
    pub start_day: i64,
    /// Index of the emergency department.
    pub emergency: usize,
}

impl<'a> Hospital<'a> {
    /// Indexes the encounters by day.
    pub fn new(
        pop: &'a Population,
        encounters: &'a [Encounter],
        start_day: i64,
        days: u32,
    ) -> Self {
        let mut open: Vec<Vec<usize>> = vec![Vec::new(); days as usize];
        for (i, e) in encounters.iter().enumerate() {
            let first = e.start_us.div_euclid(86_400_000_000) - start_day;
            let last = e.end_us.div_euclid(86_400_000_000) - start_day;
            for d in first.max(0)..=last.min(i64::from(days) - 1) {
                open[d as usize].push(i);
            }
        }
        let (deceased, living): (Vec<usize>, Vec<usize>) =
            (0..pop.patients.len()).partition(|&p| pop.patients[p].deceased_day.is_some());
        let emergency = super::population::DEPARTMENTS
            .iter()
            .position(|d| d.0 == "emergency")
            .unwrap_or(0);
        Self {
            pop,
            encounters,
            open,
            living,
            deceased,
            start_day,
            emergency,
        }
    }

    /// The ordinary activity of day `day` (0-based): about `n` events, unsorted.
    pub fn day(&self, rng: &mut Rng, day: u32, n: u64) -> Vec<Access> {
        let date = self.start_day + i64::from(day);
        let pop = self.pop;
        let workers: Vec<usize> = (0..pop.staff.len())
            .filter(|&u| pop.staff[u].works_on(date))
            .collect();
        let mut out: Vec<Access> = Vec::with_capacity(n as usize + 64);
        if workers.is_empty() {
            return out;
        }
        let at = |rng: &mut Rng, user: usize| pop.staff[user].shift.moment(rng, date);
        let today = &self.open[day as usize];
        let office: Vec<usize> = workers
            .iter()
            .copied()
            .filter(|&u| matches!(pop.staff[u].role, "him" | "billing"))
            .collect();

        // Emergency break-the-glass shortly before the encounter opens.
        for &i in today {
            let e = &self.encounters[i];
            if e.dept_index == self.emergency
                && e.start_us.div_euclid(86_400_000_000) == date
                && i % 3 == 0
            {
                let ts = e.start_us - (5 + rng.below(40) as i64) * MINUTE;
                out.push(Access::new(ts, e.attending, e.patient, Kind::BreakGlass));
            }
        }
        if !office.is_empty() && !is_weekend(date) {
            // Release of information: HIM prints a requester's batch of charts.
            // Requests (lawyers, insurers, patients) arrive every working day.
            let batches = 1 + n / 50_000;
            let him: Vec<usize> = office
                .iter()
                .copied()
                .filter(|&u| pop.staff[u].role == "him")
                .collect();
            for _ in 0..if him.is_empty() { 0 } else { batches } {
                let user = him[rng.below(him.len() as u64) as usize];
                let start = at(rng, user);
                for k in 0..10 + rng.below(20) as i64 {
                    let e = &self.encounters[rng.below(self.encounters.len() as u64) as usize];
                    let ts = start + k * 40_000_000 + rng.below(20_000) as i64 * 1000;
                    out.push(Access::new(ts, user, e.patient, Kind::Print));
                }
            }
            // Closing the records and the bills of patients who died.
            if !self.deceased.is_empty() {
                for _ in 0..1 + n / 5_000 {
                    let user = office[rng.below(office.len() as u64) as usize];
                    let p = self.deceased[rng.below(self.deceased.len() as u64) as usize];
                    let kind = if pop.staff[user].role == "him" && rng.below(4) == 0 {
                        Kind::Print
                    } else {
                        Kind::Plain("R", "view")
                    };
                    out.push(Access::new(at(rng, user), user, p, kind));
                }
            }
        }

        let pick_worker = |rng: &mut Rng| workers[rng.below(workers.len() as u64) as usize];
        while (out.len() as u64) < n {
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
            if !kind.has_patient() {
                let user = pick_worker(rng);
                let ts = at(rng, user);
                out.push(Access::new(ts, user, 0, kind));
                if matches!(kind, Kind::Login { failed: true }) {
                    // A typo, then the right password.
                    let ok = Kind::Login { failed: false };
                    let retry = ts + (3 + rng.below(40) as i64) * 1_000_000;
                    out.push(Access::new(retry, user, 0, ok));
                }
                continue;
            }
            // Chart access follows an encounter of the day, mostly (always for
            // break-the-glass); the rest is legitimate but unexplained.
            let explained = matches!(kind, Kind::BreakGlass) || rng.below(100) < 93;
            let (user, patient) = if explained && !today.is_empty() {
                let e = &self.encounters[today[rng.below(today.len() as u64) as usize]];
                let team = &pop.by_department[e.dept_index];
                let colleague = team[rng.below(team.len() as u64) as usize];
                // A colleague covers, unless off today or the patient themselves.
                let is_patient = pop.patients[e.patient].employee_user_id.as_deref()
                    == Some(pop.staff[colleague].user_id.as_str());
                let user =
                    if rng.below(2) == 0 || !pop.staff[colleague].works_on(date) || is_patient {
                        e.attending
                    } else {
                        colleague
                    };
                (user, e.patient)
            } else if !self.living.is_empty() {
                let p = self.living[rng.below(self.living.len() as u64) as usize];
                (pick_worker(rng), p)
            } else {
                break;
            };
            out.push(Access::new(at(rng, user), user, patient, kind));
        }
        out
    }
}
