//! One function per subcommand, called by `main` with parsed arguments.

pub mod detect;
pub mod eval;
pub mod generate;
pub mod ingest;
pub mod sql;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(args) => ingest::run(args).await.map(|_| ()),
        Command::Sql(args) => sql::run(args).await,
        Command::Gen(args) => generate::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Detect(args) => detect::run_detect(args).await,
        Command::Scan(args) => detect::run_scan(args).await,
        Command::Rules(args) => detect::run_rules(args),
    }
}
