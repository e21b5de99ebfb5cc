//! The `emrwatch` binary: parse arguments, run, map the outcome to an exit status.

use std::process::ExitCode;

use clap::Parser;

/// The system allocator, asking for huge pages on large blocks (`src/alloc.rs`).
#[global_allocator]
static ALLOCATOR: emrwatch::alloc::HugePages = emrwatch::alloc::HugePages;

fn main() -> ExitCode {
    // Everything emrwatch writes (store files, outputs) holds patient data:
    // readable by the owner only, whatever the caller's umask.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = emrwatch::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("emrwatch: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(emrwatch::commands::run(cli)) {
        Ok(status) => ExitCode::from(status),
        Err(emrwatch::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let err = anyhow::Error::new(e);
            eprintln!("emrwatch: {err:#}");
            ExitCode::from(2)
        }
    }
}
