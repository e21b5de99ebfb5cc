//! What a run reads: each listed object compared with what the checkpoint
//! says was read of it.
//!
//! - A new object is read from its start.
//! - A local file that grew is read from where the last run stopped.
//! - A file renamed by log rotation is found by its inode and continues
//!   where it stopped under its old name.
//! - A file replaced (new inode, or an S3 object with a new entity tag) or
//!   truncated is read again from its start.
//! - A file changed in the last `settle` seconds may still be being written:
//!   a last line without its line feed waits, and a compressed file waits
//!   whole (it is read once, complete).

use std::collections::HashMap;
use std::sync::Arc;

use super::checkpoint::{Checkpoint, SourceState};
use crate::ingest::framing::Position;
use crate::ingest::source::{Compression, ReadSpec, SourceObject};

/// What to do with one listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing new.
    Skip,
    /// Not yet: it may still be being written (compressed, or too fresh).
    Wait,
    /// Read from `start`; `whole_lines`: leave a last line without line feed.
    Read {
        /// Where to start.
        start: Position,
        /// Leave a last line without its line feed for later.
        whole_lines: bool,
    },
}

/// What the listing says about an object now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed<'a> {
    /// Size now.
    pub size: u64,
    /// Entity tag now.
    pub etag: Option<&'a str>,
    /// Inode now (local files).
    pub inode: Option<u64>,
    /// Whether it is a local file (which may grow) rather than an S3 object.
    pub local: bool,
    /// Changed within the settle time.
    pub fresh: bool,
    /// Starts with gzip or zstd magic (local files only; S3 objects are
    /// never read before they are complete).
    pub compressed: bool,
}

/// Decides what to read of an object, given what was read of it (`prev`).
pub fn decide(prev: Option<&SourceState>, now: Listed<'_>) -> Decision {
    let from_start = || {
        if now.compressed && now.fresh {
            Decision::Wait
        } else {
            Decision::Read {
                start: Position { offset: 0, line: 1 },
                whole_lines: now.local && now.fresh,
            }
        }
    };
    let Some(prev) = prev else {
        return if now.size == 0 {
            Decision::Skip
        } else {
            from_start()
        };
    };
    let same = if now.local {
        prev.inode.is_some() && prev.inode == now.inode
    } else {
        prev.etag.is_some() && prev.etag.as_deref() == now.etag
    };
    if !same {
        return if now.size == 0 {
            Decision::Skip
        } else {
            from_start()
        };
    }
    if !now.local {
        return Decision::Skip;
    }
    if prev.compressed {
        // Read whole once; a compressed file rewritten in place is a new file.
        return if now.size == prev.size {
            Decision::Skip
        } else {
            from_start()
        };
    }
    match now.size.cmp(&prev.next.offset) {
        std::cmp::Ordering::Greater => Decision::Read {
            start: prev.next,
            whole_lines: now.fresh,
        },
        std::cmp::Ordering::Equal => Decision::Skip,
        // Truncated (copytruncate rotation): its content is new.
        std::cmp::Ordering::Less => from_start(),
    }
}

/// One object to read, with the configured source it belongs to.
#[derive(Debug)]
pub struct PlannedRead {
    /// Index of the configured source.
    pub source: usize,
    /// Its URL (the object's `url` is the label its rows are stored under).
    pub url: String,
    /// The object, with its [`ReadSpec`].
    pub object: SourceObject,
    /// Its inode (local files).
    pub inode: Option<u64>,
}

/// The reads of a run and the state of the objects it does not read.
#[derive(Debug, Default)]
pub struct Plan {
    /// Objects to read.
    pub reads: Vec<PlannedRead>,
    /// State carried over for listed objects not read this time.
    pub carried: Vec<(String, SourceState)>,
    /// Objects listed.
    pub listed: usize,
    /// Objects left for a later run (still being written).
    pub waiting: usize,
    /// Generations per URL, after this plan.
    pub generations: std::collections::BTreeMap<String, u32>,
}

/// The inode of a local file URL.
pub fn local_inode(url: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let path = url::Url::parse(url).ok()?.to_file_path().ok()?;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn local_magic(url: &str) -> bool {
    use std::io::Read;
    let Some(path) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.to_file_path().ok())
    else {
        return false;
    };
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    Compression::sniff(&head[..n]) != Compression::None
}

/// Plans the reads of `listed` objects (each with its source index) against
/// `prev`; objects changed after `settled_before_us` are fresh.
pub fn plan(listed: Vec<(usize, SourceObject)>, prev: &Checkpoint, settled_before_us: i64) -> Plan {
    let mut out = Plan {
        listed: listed.len(),
        generations: prev.generations.clone(),
        ..Plan::default()
    };
    let inodes: Vec<Option<u64>> = listed
        .iter()
        .map(|(_, o)| {
            if o.url.starts_with("file://") {
                local_inode(&o.url)
            } else {
                None
            }
        })
        .collect();
    // A state whose object is not listed under its URL with the same inode
    // any more may have been renamed: findable by inode.
    let listed_same: HashMap<&str, Option<u64>> = listed
        .iter()
        .zip(&inodes)
        .map(|((_, o), i)| (o.url.as_ref(), *i))
        .collect();
    let by_inode: HashMap<u64, &SourceState> = prev
        .sources
        .iter()
        .filter(|(url, st)| {
            st.inode.is_some() && listed_same.get(url.as_str()).copied().flatten() != st.inode
        })
        .filter_map(|(_, st)| st.inode.map(|i| (i, st)))
        .collect();
    for ((source, mut obj), inode) in listed.into_iter().zip(inodes) {
        let local = obj.url.starts_with("file://");
        let mut prev_state = prev.sources.get(obj.url.as_ref());
        if local
            && let Some(i) = inode
            && prev_state.is_none_or(|p| p.inode != Some(i))
            && let Some(renamed) = by_inode.get(&i)
        {
            prev_state = Some(renamed);
        }
        let fresh = local && obj.modified_us > settled_before_us;
        let compressed = local && fresh && local_magic(&obj.url);
        let now = Listed {
            size: obj.size,
            etag: obj.etag.as_deref(),
            inode,
            local,
            fresh,
            compressed,
        };
        match decide(prev_state, now) {
            Decision::Skip => {
                if let Some(p) = prev_state {
                    out.carried.push((obj.url.to_string(), p.clone()));
                }
            }
            Decision::Wait => {
                out.waiting += 1;
                if let Some(p) = prev_state {
                    out.carried.push((obj.url.to_string(), p.clone()));
                }
            }
            Decision::Read { start, whole_lines } => {
                let url = obj.url.to_string();
                let label = match prev_state {
                    Some(p) if start.offset > 0 && !p.label.is_empty() => p.label.clone(),
                    Some(_) if start.offset > 0 => url.clone(),
                    _ => {
                        let g = out.generations.entry(url.clone()).or_insert(0);
                        let label = if *g == 0 {
                            url.clone()
                        } else {
                            format!("{url}#{g}")
                        };
                        *g += 1;
                        label
                    }
                };
                obj.url = label.into();
                obj.read = Some(Arc::new(ReadSpec {
                    start,
                    end: Some(obj.size),
                    whole_lines,
                    reached: Default::default(),
                }));
                out.reads.push(PlannedRead {
                    source,
                    url,
                    object: obj,
                    inode,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(size: u64, offset: u64, line: u64, inode: u64) -> SourceState {
        SourceState {
            size,
            next: Position { offset, line },
            inode: Some(inode),
            ..SourceState::default()
        }
    }

    fn local(size: u64, inode: u64, fresh: bool) -> Listed<'static> {
        Listed {
            size,
            etag: None,
            inode: Some(inode),
            local: true,
            fresh,
            compressed: false,
        }
    }

    #[test]
    fn a_grown_file_resumes_and_a_fresh_one_keeps_its_last_line_back() {
        let prev = st(100, 100, 11, 7);
        assert_eq!(
            decide(Some(&prev), local(150, 7, true)),
            Decision::Read {
                start: Position {
                    offset: 100,
                    line: 11
                },
                whole_lines: true
            }
        );
        assert_eq!(decide(Some(&prev), local(100, 7, false)), Decision::Skip);
    }

    #[test]
    fn rotation_and_truncation_read_from_the_start() {
        let prev = st(100, 100, 11, 7);
        let start = Decision::Read {
            start: Position { offset: 0, line: 1 },
            whole_lines: false,
        };
        assert_eq!(decide(Some(&prev), local(150, 8, false)), start);
        assert_eq!(decide(Some(&prev), local(40, 7, false)), start);
    }

    #[test]
    fn fresh_compressed_files_wait_and_s3_objects_are_read_once() {
        let mut now = local(10, 9, true);
        now.compressed = true;
        assert_eq!(decide(None, now), Decision::Wait);
        let s3 = |etag| Listed {
            size: 10,
            etag: Some(etag),
            inode: None,
            local: false,
            fresh: false,
            compressed: false,
        };
        let prev = SourceState {
            size: 10,
            next: Position {
                offset: 10,
                line: 2,
            },
            etag: Some("a".into()),
            ..SourceState::default()
        };
        assert_eq!(decide(Some(&prev), s3("a")), Decision::Skip);
        assert!(matches!(
            decide(Some(&prev), s3("b")),
            Decision::Read { .. }
        ));
    }
}
