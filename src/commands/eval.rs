//! `emrwatch eval`.

use std::io::Write;

use crate::cli::EvalArgs;
use crate::error::Result;
use crate::eval::{evaluate, read_alerts, read_labels, render};

/// Prints the report (table or JSON) to stdout.
pub fn run(args: EvalArgs) -> Result<()> {
    let labels = read_labels(&args.labels)?;
    let alerts = read_alerts(&args.alerts)?;
    let report = evaluate(&labels, &alerts);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&report))?;
    }
    Ok(())
}
