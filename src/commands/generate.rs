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
    let opts = GenOptions {
        out: args.out,
        seed: args.seed,
        events: args.events,
        days: args.days,
        start_day: days_from_civil(i64::from(start.year()), start.month(), start.day()),
        staff: args.staff.max(1),
        patients: args.patients.max(1),
        gzip: !args.no_gzip,
        incidents: args.incidents,
    };
    let t = std::time::Instant::now();
    let s = generate(&opts)?;
    eprintln!(
        "gen: {} events in {} files under {}, {} incidents in labels.csv ({:.1}s)",
        s.events,
        s.files.len(),
        crate::synth::logs_dir(&opts.out).display(),
        s.labels.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
