//! `emrwatch sql`.

use std::io::Write;

use crate::cli::SqlArgs;
use crate::error::Result;
use crate::sql::{session, shell};
use crate::store::Store;

/// Runs `-e`, `-f` or the interactive shell.
pub async fn run(args: SqlArgs) -> Result<()> {
    let store = Store::new(&args.store.store)?;
    let ctx = session::open(&store).await?;
    if let Some(dir) = &args.reference {
        crate::reference::Reference::load(dir)?.register(&ctx)?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(sql) = &args.execute {
        shell::run_statement(&ctx, sql, args.output, &mut out).await?;
    } else if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)?;
        for stmt in split_statements(&text) {
            shell::run_statement(&ctx, &stmt, args.output, &mut out).await?;
        }
    } else {
        drop(out);
        return shell::run(&ctx, args.output).await;
    }
    out.flush()?;
    Ok(())
}

/// Splits a script on `;` outside quotes and `--` comments.
fn split_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '-') if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                if !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = split_statements("SELECT ';' AS x; -- a; comment\nSELECT 2;\n\n");
        assert_eq!(s.len(), 2);
        assert!(s[0].contains("';'"));
        assert_eq!(s[1].trim(), "SELECT 2");
    }
}
