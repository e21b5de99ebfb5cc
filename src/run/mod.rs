//! The scheduled job's building blocks: what has been ingested
//! ([`checkpoint`]), what to read next ([`plan`]), one run at a time
//! ([`lock`]). [`crate::commands::run`] puts them together.

pub mod checkpoint;
pub mod lock;
pub mod plan;

/// Where a test can stop a run to kill it at an exact moment: with
/// `EMRWATCH_PAUSE_AT=<point>`, the run says `paused at <point>` on stderr
/// and sleeps there for a minute. Points: `between-commits` (after the first
/// table of a run is committed, before the others), `before-delivery` (alerts
/// stored, not yet sent).
pub fn pause_point(point: &str) {
    if std::env::var("EMRWATCH_PAUSE_AT").is_ok_and(|p| p == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
