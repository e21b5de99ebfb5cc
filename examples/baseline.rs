//! The yardsticks `make bench` measures emrwatch against, on one thread:
//!
//! - `floor FILE`: read the file in 1 MiB blocks and count its lines with
//!   memchr. Nothing that reads every byte can be faster.
//! - `ceiling FILE`: frame the records as `emrwatch ingest` does and parse each
//!   one with simd-json into a tape, building nothing: what emrwatch's
//!   decoders would cost with simd-json alone and no mapping into Arrow.
//! - `ceiling-x2 FILE`: `ceiling` on two threads at once, each over the whole
//!   file (twice the work, nothing shared): what this machine's second core
//!   adds to a job that never waits, the bound on any thread scaling here.
//! - `arrow-json FILE`: arrow-json's `ReaderBuilder` with the canonical
//!   access-event columns on a JSON-lines file (`emrwatch gen --format
//!   ndjson`): what a Rust developer would write instead of emrwatch.
//!
//! Prints one line: `records=N bytes=B seconds=S`.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use emrwatch::ingest::framing::LineFramer;
use emrwatch::ingest::json::TapeParser;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, file] = args.as_slice() else {
        anyhow::bail!("usage: baseline floor|ceiling|ceiling-x2|arrow-json FILE");
    };
    let bytes = std::fs::metadata(file)?.len();
    let t = Instant::now();
    let records = match mode.as_str() {
        "floor" => floor(file)?,
        "ceiling" => ceiling(file)?,
        "ceiling-x2" => std::thread::scope(|s| {
            let both = [s.spawn(|| ceiling(file)), s.spawn(|| ceiling(file))];
            both.into_iter()
                .map(|t| t.join().expect("ceiling thread panicked"))
                .sum::<anyhow::Result<u64>>()
        })?,
        "arrow-json" => arrow_json(file)?,
        other => anyhow::bail!("unknown mode {other}: floor, ceiling, ceiling-x2 or arrow-json"),
    };
    println!(
        "records={records} bytes={bytes} seconds={:.3}",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn floor(file: &str) -> anyhow::Result<u64> {
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

fn ceiling(file: &str) -> anyhow::Result<u64> {
    let mut f = std::fs::File::open(file)?;
    let mut block = vec![0u8; 1 << 20];
    let mut framer = LineFramer::new(Arc::from(file), 1 << 20, 4 << 20);
    // simd-json itself, not the plain reader emrwatch tries first.
    let mut parser = TapeParser::simd_json_only();
    let mut records = 0u64;
    let mut parse = |mut chunk: emrwatch::ingest::framing::Chunk| {
        for s in &chunk.spans {
            let len = s.end - s.start;
            // Touch the root so the parse cannot be optimised away.
            let ok = parser
                .parse(&mut chunk.buf[s.start..], len, |v| {
                    std::hint::black_box(v);
                })
                .is_ok();
            records += u64::from(ok);
        }
    };
    loop {
        let n = f.read(&mut block)?;
        if n == 0 {
            break;
        }
        framer.push(&block[..n], &mut parse);
    }
    parse(framer.finish());
    Ok(records)
}

fn arrow_json(file: &str) -> anyhow::Result<u64> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let schema = Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("user_id", DataType::Utf8, false),
        text("user_role"),
        text("department"),
        text("patient_id"),
        Field::new("action", DataType::Utf8, false),
        text("resource"),
        Field::new("outcome", DataType::Utf8, false),
        text("workstation"),
        text("src_ip"),
        text("session_id"),
        text("app"),
    ]);
    let reader = arrow::json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(8192)
        .build(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file)?,
        ))?;
    let mut rows = 0u64;
    for batch in reader {
        rows += batch?.num_rows() as u64;
    }
    Ok(rows)
}
