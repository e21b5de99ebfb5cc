//! What a scheduled run has ingested, kept in the store itself.
//!
//! Each run is numbered. Every table a run writes is committed with the Delta
//! application transaction (`txn` action) [`RUN_APP`] = run number, and with
//! the run's whole [`Checkpoint`] in the same commit's info. Data and
//! checkpoint are one atomic commit, so they can never disagree.
//!
//! A run writes up to three tables, one commit each. A run killed between two
//! of them leaves a table whose `txn` is behind the newest checkpoint: the
//! next run finds it ([`Loaded::lagging`]) and reads the same byte ranges
//! again for that table only ([`Checkpoint::reads`]).
//!
//! Detection and delivery are recorded the same way in the `alerts` table:
//! [`DETECT_APP`] = the last run whose events were searched (its alerts are in
//! the same commit), [`DELIVER_APP`] = the last run whose alerts reached
//! every sink.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ingest::framing::Position;
use crate::store::ingest::REJECTS;
use crate::store::{ACCESS_EVENTS, SYSTEM_EVENTS, Store};

/// Application id of ingest commits.
pub const RUN_APP: &str = "emrwatch-run";
/// Application id of detection commits (the `alerts` table).
pub const DETECT_APP: &str = "emrwatch-detect";
/// Application id of delivery commits (the `alerts` table).
pub const DELIVER_APP: &str = "emrwatch-deliver";
/// Commit-info key holding the checkpoint JSON.
pub const KEY: &str = "emrwatch.checkpoint";
/// The tables a run ingests into, in commit order.
pub const DATA_TABLES: [&str; 3] = [ACCESS_EVENTS, SYSTEM_EVENTS, REJECTS];

/// How far back to look for the newest checkpoint: further than any
/// sequence of commits other tools (`emrwatch ingest`, OPTIMIZE) make between runs.
const LOOK_BACK: u64 = 200;

/// The state after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Run number (1, 2, …).
    pub run: i64,
    /// Every source object listed, by URL: how far it has been read.
    pub sources: BTreeMap<String, SourceState>,
    /// The byte ranges this run read, to read again if a commit of it is missing.
    pub reads: Vec<ReadRecord>,
    /// Rows this run wrote, per table.
    pub tables: BTreeMap<String, u64>,
    /// How many times each URL has been read from its start: a file replaced
    /// under the same name (log rotation) is a new generation, whose rows get
    /// `URL#N` as their `source`, so `(source, source_line)` stays unique.
    #[serde(default)]
    pub generations: BTreeMap<String, u32>,
    /// Event times (UTC µs, inclusive) stored but not yet searched by the
    /// rules, this run's and any earlier run's whose detection did not finish.
    pub pending: Option<(i64, i64)>,
}

/// How far one source object has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// The `source` its rows are stored under: its URL, or `URL#N` for a
    /// later generation; a renamed file keeps the label it was read under.
    #[serde(default)]
    pub label: String,
    /// Its size when read.
    pub size: u64,
    /// Where the next read starts.
    pub next: Position,
    /// Its entity tag when read (S3: changes when replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Local files: the inode, which follows a file renamed by log rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// gzip or zstd: read whole, once.
    #[serde(default)]
    pub compressed: bool,
}

/// One range a run read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// Index of the configured source it came from.
    pub source: usize,
    /// Object URL.
    pub url: String,
    /// The `source` of its rows.
    pub label: String,
    /// Where the read started.
    pub start: Position,
    /// Where it ended (the object's end, if compressed).
    pub end: u64,
    /// Whether the object is compressed (read whole).
    pub compressed: bool,
    /// The object's modification time (dates RFC 3164 syslog lines).
    pub modified_us: i64,
}

/// What a run starts from.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The newest checkpoint (run 0 and empty on a new store).
    pub checkpoint: Checkpoint,
    /// Tables whose commit of the newest run is missing.
    pub lagging: Vec<String>,
    /// Last run whose events the rules searched.
    pub detected: i64,
    /// Last run whose alerts reached the sinks.
    pub delivered: i64,
}

/// Reads the newest checkpoint and the detection and delivery marks.
pub async fn load(store: &Store) -> Result<Loaded> {
    let mut versions = Vec::new();
    for t in DATA_TABLES {
        versions.push((t, store.txn_versions(t, &[RUN_APP]).await?[0]));
    }
    let run = versions.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let marks = store
        .txn_versions("alerts", &[DETECT_APP, DELIVER_APP])
        .await?;
    let (detected, delivered) = (marks[0], marks[1]);
    if run == 0 {
        return Ok(Loaded {
            detected,
            delivered,
            ..Loaded::default()
        });
    }
    let (newest, _) = versions
        .iter()
        .find(|(_, v)| *v == run)
        .expect("the maximum is one of them");
    let value = store
        .last_commit_value(newest, KEY, LOOK_BACK)
        .await?
        .ok_or_else(|| Error::Input {
            input: format!("{}{newest}", store.root()),
            reason: format!(
                "run {run} is recorded but its checkpoint is not in the last {LOOK_BACK} commits"
            ),
        })?;
    let checkpoint: Checkpoint = serde_json::from_value(value).map_err(|e| Error::Input {
        input: format!("{}{newest}", store.root()),
        reason: format!("unreadable run checkpoint: {e}"),
    })?;
    if checkpoint.run != run {
        return Err(Error::Input {
            input: format!("{}{newest}", store.root()),
            reason: format!(
                "the newest checkpoint is of run {}, the table records run {run}",
                checkpoint.run
            ),
        });
    }
    let lagging = versions
        .iter()
        .filter(|(t, v)| *v < run && checkpoint.tables.get(*t).is_some_and(|n| *n > 0))
        .map(|(t, _)| t.to_string())
        .collect();
    Ok(Loaded {
        checkpoint,
        lagging,
        detected,
        delivered,
    })
}

/// The smallest range holding both.
pub fn union(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
        (x, None) | (None, x) => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_as_json() {
        let mut cp = Checkpoint {
            run: 3,
            pending: Some((1, 2)),
            ..Checkpoint::default()
        };
        cp.sources.insert(
            "file:///var/log/a.log".into(),
            SourceState {
                size: 10,
                next: Position {
                    offset: 10,
                    line: 3,
                },
                inode: Some(7),
                ..SourceState::default()
            },
        );
        let back: Checkpoint = serde_json::from_value(serde_json::to_value(&cp).unwrap()).unwrap();
        assert_eq!(back, cp);
        assert_eq!(union(Some((5, 9)), Some((1, 6))), Some((1, 9)));
        assert_eq!(union(None, Some((1, 6))), Some((1, 6)));
    }
}
