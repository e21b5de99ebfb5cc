//! One function per subcommand, called by `main` with parsed arguments.

pub mod detect;
pub mod eval;
pub mod generate;
pub mod ingest;
pub mod run;
pub mod sql;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Runs a parsed command line; returns the exit status of a command that
/// finished (0, or 1 for `run` with a new alert at or above `fail_on`).
pub async fn run(cli: Cli) -> Result<u8> {
    // Any command may name s3:// inputs or stores (the AWS environment
    // variables configure them); `run` reconfigures with its `[s3]` section.
    crate::store::s3::configure(&Default::default());
    match cli.command {
        Command::Ingest(args) => ingest::run(args).await.map(|_| 0),
        Command::Sql(args) => sql::run(args).await.map(|()| 0),
        Command::Gen(args) => generate::run(args).map(|()| 0),
        Command::Eval(args) => eval::run(args).map(|()| 0),
        Command::Detect(args) => detect::run_detect(args).await.map(|()| 0),
        Command::Scan(args) => detect::run_scan(args).await.map(|()| 0),
        Command::Rules(args) => detect::run_rules(args).map(|()| 0),
        Command::Run(args) => run::run(args).await,
    }
}
