//! `emrwatch gen`.

use crate::cli::GenArgs;
use crate::error::{Error, Result};
use crate::ingest::timestamp::days_from_civil;
use crate::synth::{GenOptions, generate};

/// Writes the archive and prints a one-line summary.
pub fn run(args: GenArgs) -> Result<()> {
    let start =
        chrono::NaiveDate::parse_from_str(&args.start, "%Y-%m-%d").map_err(|e| Error::Input {
            input: args.start.clone(),
            reason: format!("--start must be YYYY-MM-DD: {e}"),
        })?;
    use chrono::Datelike;
    let (staff, patients) = population_for(args.events, args.staff, args.patients);
    let opts = GenOptions {
        out: args.out,
        seed: args.seed,
        events: args.events,
        days: args.days,
        start_day: days_from_civil(i64::from(start.year()), start.month(), start.day()),
        staff: staff.max(1),
        patients: patients.max(1),
        gzip: args.gzip,
        incidents: args.incidents,
        format: args.format,
        threads: args.threads,
    };
    let t = std::time::Instant::now();
    let s = generate(&opts)?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "gen: {} access events in {} files under {}, {} syslog lines from {} hosts, {} incidents in labels.csv ({:.1}s, {:.2} M events/s)",
        s.events,
        s.files.len(),
        crate::synth::logs_dir(&opts.out).display(),
        s.syslog_lines,
        s.syslog_files.len(),
        s.labels.len(),
        secs,
        s.events as f64 / secs.max(1e-9) / 1e6
    );
    Ok(())
}

/// Population sizes for an archive of `events`, unless given: a 2,000-person
/// workforce writes about 1.3 million access events a month, and a hospital
/// keeps charts of some 25 patients per worker.
fn population_for(events: u64, staff: Option<u32>, patients: Option<u32>) -> (u32, u32) {
    let staff = staff.unwrap_or_else(|| (events / 650).clamp(50, 50_000) as u32);
    (staff, patients.unwrap_or(staff.saturating_mul(25)))
}

#[cfg(test)]
mod tests {
    use super::population_for;

    #[test]
    fn population_scales_with_events_unless_given() {
        assert_eq!(population_for(1_300_000, None, None), (2_000, 50_000));
        assert_eq!(population_for(1_000, None, None), (50, 1_250));
        assert_eq!(population_for(1_300_000, Some(10), None), (10, 250));
        assert_eq!(population_for(1_300_000, None, Some(7)), (2_000, 7));
    }
}
