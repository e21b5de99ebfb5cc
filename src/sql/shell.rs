//! The interactive SQL shell: statements end with `;`, `\d` lists tables,
//! `\d NAME` describes one, `\q` quits; history is kept between sessions.

use std::io::Write;

use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use super::output::{self, OutputFormat};
use crate::error::Result;

const HELP: &str = "\
Statements end with ';' and may span lines.
  \\d          list tables
  \\d NAME     columns of a table
  \\o FORMAT   output as table, csv, json or ndjson
  \\q          quit (or Ctrl-D)";

/// Runs a query and prints its result (or its error, without leaving the shell).
pub async fn run_statement(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    // Read-only: no CREATE/DROP, no INSERT/COPY, no SET. Analysts query; they do not write.
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let batches = df.collect().await?;
    output::write(&batches, format, out)
}

/// The SQL behind `\d` and `\d NAME`.
pub fn describe_sql(name: Option<&str>) -> String {
    match name {
        None => "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = 'public' ORDER BY table_name"
            .to_string(),
        Some(t) => format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{}' ORDER BY ordinal_position",
            t.replace('\'', "''")
        ),
    }
}

/// Runs the shell until `\q` or end of input.
pub async fn run(ctx: &SessionContext, mut format: OutputFormat) -> Result<()> {
    let mut editor = DefaultEditor::new().map_err(|e| std::io::Error::other(e.to_string()))?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".emrwatch_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("emrwatch SQL shell. \\h for help, \\q to quit.");
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "emrwatch> "
        } else {
            "      -> "
        };
        let line = match editor.readline(prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(std::io::Error::other(e.to_string()).into()),
        };
        let trimmed = line.trim();
        let mut stdout = std::io::stdout();
        if pending.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some("\\q"), _) => break,
                (Some("\\h" | "\\?"), _) => println!("{HELP}"),
                (Some("\\d"), name) => {
                    if let Err(e) =
                        run_statement(ctx, &describe_sql(name), format, &mut stdout).await
                    {
                        eprintln!("error: {e}");
                    }
                }
                (Some("\\o"), Some(f)) => {
                    match <OutputFormat as clap::ValueEnum>::from_str(f, true) {
                        Ok(f) => format = f,
                        Err(_) => eprintln!("unknown format {f:?}: use table, csv, json or ndjson"),
                    }
                }
                _ => eprintln!("unknown command {trimmed:?}; \\h for help"),
            }
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut pending);
        let _ = editor.add_history_entry(sql.trim());
        if let Err(e) = run_statement(ctx, &sql, format, &mut stdout).await {
            eprintln!("error: {e}");
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
