//! Sources: turning what the user typed (paths, `file://` URLs, folders,
//! globs) into a list of objects in an [`ObjectStore`], and reading one object
//! as a stream of decompressed bytes.
//!
//! Everything goes through `object_store`, so the same code reads a bucket
//! once a remote store is configured; nothing here assumes a local filesystem
//! beyond turning a local path into a `file://` URL.

use std::sync::Arc;

use futures::StreamExt;
use globset::{GlobBuilder, GlobMatcher};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};
use crate::ingest::framing::Position;

/// One object to ingest.
#[derive(Debug, Clone)]
pub struct SourceObject {
    /// The store holding it.
    pub store: Arc<dyn ObjectStore>,
    /// Its path in the store.
    pub path: Path,
    /// Its URL, recorded as the `source` of every row read from it.
    pub url: Arc<str>,
    /// Its (compressed) size in bytes.
    pub size: u64,
    /// When it was last written (UTC µs): the year of syslog timestamps
    /// that have none.
    pub modified_us: i64,
    /// Its entity tag (for a local file: inode, time and size), which
    /// changes whenever the object does.
    pub etag: Option<String>,
    /// Part of the object to read, for incremental runs; `None` reads it whole.
    pub read: Option<Arc<ReadSpec>>,
}

/// The part of an object an incremental run reads, and where the read ended.
#[derive(Debug, Default)]
pub struct ReadSpec {
    /// Where to start. A resumed read (offset > 0) is only for uncompressed
    /// objects; the object's first line is read too, to tell its format
    /// (and a CSV header), but not stored again.
    pub start: Position,
    /// Read up to this byte (exclusive), `None` to the end: an object listed
    /// at one size is read at that size even if it grows meanwhile.
    pub end: Option<u64>,
    /// The object may still be being written: a last record without its
    /// line feed is left for the next read.
    pub whole_lines: bool,
    /// Set when the object has been read: where the next read starts.
    pub reached: std::sync::Mutex<Option<Reached>>,
}

/// Where a read of an object stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// The next record (uncompressed objects); for a compressed object or a
    /// whole-file document, the end of the object.
    pub at: Position,
    /// The object is gzip or zstd: it can only be read whole.
    pub compressed: bool,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Resolves one input into a URL (a directory or object, before any glob) and an optional glob.
fn to_url(input: &str) -> Result<Url> {
    if input.contains("://") {
        return Url::parse(input).map_err(|e| Error::Input {
            input: input.to_string(),
            reason: format!("not a valid URL: {e}"),
        });
    }
    let abs = absolute_path(std::path::Path::new(input)).map_err(|e| Error::Input {
        input: input.to_string(),
        reason: e.to_string(),
    })?;
    Url::from_file_path(&abs).map_err(|()| Error::Input {
        input: input.to_string(),
        reason: "cannot be turned into a file URL".to_string(),
    })
}

/// An absolute path with `.` and `..` resolved lexically (symlinks are kept,
/// so a row's `source` names the file as the user named it).
pub fn absolute_path(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(p)?;
    let mut out = std::path::PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

fn store_for(url: &Url, input: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    if url.scheme() == "file" {
        let local = url.to_file_path().map_err(|()| Error::Input {
            input: input.to_string(),
            reason: "not a local file URL".to_string(),
        })?;
        let path = Path::from_absolute_path(&local).map_err(|e| Error::Input {
            input: input.to_string(),
            reason: e.to_string(),
        })?;
        return Ok((Arc::new(LocalFileSystem::new()), path));
    }
    if url.scheme() == "s3" {
        let store = crate::store::s3::build(url).map_err(|e| Error::Input {
            input: input.to_string(),
            reason: format!("cannot use this bucket: {e}"),
        })?;
        let path = Path::from_url_path(url.path()).map_err(|e| Error::Input {
            input: input.to_string(),
            reason: e.to_string(),
        })?;
        return Ok((Arc::new(store), path));
    }
    let (store, path) = object_store::parse_url(url).map_err(|e| Error::Input {
        input: input.to_string(),
        reason: format!("unsupported store: {e}"),
    })?;
    Ok((Arc::from(store), path))
}

fn object_url(store_url: &Url, path: &Path) -> Arc<str> {
    let mut base = store_url.clone();
    base.set_path("");
    if store_url.scheme() == "file" {
        format!("file:///{path}").into()
    } else {
        format!(
            "{}{}",
            base.as_str().trim_end_matches('/'),
            format_args!("/{path}")
        )
        .into()
    }
}

/// Expands inputs into objects, in a stable order (inputs in the order
/// given, objects within a folder or glob sorted by path). A folder is read
/// recursively, skipping hidden files; an input that matches nothing is an error.
pub async fn resolve(inputs: &[String]) -> Result<Vec<SourceObject>> {
    let mut out = Vec::new();
    for input in inputs {
        let (base, glob) = split_glob(input);
        let url = to_url(&base)?;
        let (store, prefix) = store_for(&url, input)?;
        let matcher: Option<GlobMatcher> = match &glob {
            Some(g) => Some(
                GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::Input {
                        input: input.clone(),
                        reason: format!("bad glob: {e}"),
                    })?
                    .compile_matcher(),
            ),
            None => None,
        };
        let mut found = Vec::new();
        // A plain object first: listing a file's path as a prefix finds nothing.
        if glob.is_none()
            && let Ok(meta) = store.head(&prefix).await
        {
            found.push((
                meta.location,
                meta.size,
                meta.last_modified.timestamp_micros(),
                meta.e_tag,
            ));
        }
        if found.is_empty() {
            let mut listing = store.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(|e| Error::ObjectStore {
                    url: url.to_string(),
                    source: e,
                })?;
                let rel: Vec<_> = meta
                    .location
                    .prefix_match(&prefix)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
                    .unwrap_or_default();
                if rel.iter().any(|p| p.starts_with('.')) {
                    continue;
                }
                if let Some(m) = &matcher
                    && !m.is_match(rel.join("/"))
                {
                    continue;
                }
                found.push((
                    meta.location,
                    meta.size,
                    meta.last_modified.timestamp_micros(),
                    meta.e_tag,
                ));
            }
        }
        if found.is_empty() {
            return Err(Error::Input {
                input: input.clone(),
                reason: "matches no file (check the path, or quote a glob so emrwatch expands it)"
                    .into(),
            });
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, size, modified_us, etag) in found {
            out.push(SourceObject {
                url: object_url(&url, &path),
                store: store.clone(),
                path,
                size,
                modified_us,
                etag,
                read: None,
            });
        }
    }
    Ok(out)
}

/// Splits `dir/sub/**/*.gz` into (`dir/sub`, `**/*.gz`).
fn split_glob(input: &str) -> (String, Option<String>) {
    if !has_glob(input) {
        return (input.to_string(), None);
    }
    let parts: Vec<&str> = input.split('/').collect();
    let first_glob = parts
        .iter()
        .position(|p| has_glob(p))
        .unwrap_or(parts.len());
    let base = parts[..first_glob].join("/");
    let base = if base.is_empty() {
        if input.starts_with('/') {
            "/".to_string()
        } else {
            ".".to_string()
        }
    } else {
        base
    };
    (base, Some(parts[first_glob..].join("/")))
}

/// Compression of an object, told by its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes.
    None,
    /// gzip (possibly several members back to back).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// Sniffs the magic bytes; needs at least 4 bytes unless the object is shorter.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_split_at_the_first_wildcard_component() {
        assert_eq!(split_glob("data/x.ndjson"), ("data/x.ndjson".into(), None));
        assert_eq!(
            split_glob("data/**/*.gz"),
            ("data".into(), Some("**/*.gz".into()))
        );
        assert_eq!(split_glob("*.gz"), (".".into(), Some("*.gz".into())));
        assert_eq!(split_glob("/a/b*/c"), ("/a".into(), Some("b*/c".into())));
    }

    #[test]
    fn paths_are_made_absolute_without_dot_segments() {
        let p = absolute_path(std::path::Path::new("/a/b/../c/./d")).unwrap();
        assert_eq!(p, std::path::PathBuf::from("/a/c/d"));
    }

    #[test]
    fn compression_is_told_by_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"{\"a\""), Compression::None);
    }
}
