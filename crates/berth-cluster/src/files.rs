//! One copy of each service file for the whole cluster: the file's truth is in etcd.
//!
//! Two keys per service, always written together in one transaction (so they share one
//! `mod_revision`, the file's revision):
//!
//! - `services/<svc>/file`: the file's bytes, as they are (no encoding: a 1 MiB file is a
//!   1 MiB request, under etcd's 1.5 MiB request limit);
//! - `services/<svc>/file_meta`: a small [`FileMeta`] (format, checksum, size, who wrote it,
//!   when), what the cluster view keeps (the view never holds the bytes).
//!
//! Every write compares on the revision the writer read: a concurrent change is refused,
//! naming who made it and at which revision. Writes happen only on change (the caller compares
//! checksums first). What a node does with its own copy is [`decide`], a pure function.

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use crate::records::decode;
use crate::{ClusterError, Store, file_checksum, now_ms};

/// The largest service file the cluster takes (etcd refuses a request over 1.5 MiB).
pub const MAX_CLUSTER_FILE_BYTES: usize = 1024 * 1024;

/// A service file's syntax, from its name (`.toml`; `.conf`/`.env`: INI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// `<svc>.toml`.
    Toml,
    /// `<svc>.conf` (OpenSVC's INI; `.env` reads the same).
    Ini,
}

impl FileFormat {
    /// The format of a file, by its extension.
    pub fn of_path(path: &std::path::Path) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => FileFormat::Toml,
            _ => FileFormat::Ini,
        }
    }

    /// The extension a node writes a copy under.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Toml => "toml",
            FileFormat::Ini => "conf",
        }
    }

    /// Whether a file name's extension is of this format.
    pub fn matches(self, path: &std::path::Path) -> bool {
        FileFormat::of_path(path) == self
    }
}

/// `services/<svc>/file_meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// The file's syntax.
    pub format: FileFormat,
    /// [`file_checksum`] of the bytes.
    pub checksum: String,
    /// The size in bytes.
    pub size: usize,
    /// The node that wrote it.
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The revision (the keys' `mod_revision`: filled from etcd, not stored).
    #[serde(skip)]
    pub revision: i64,
}

/// A service file as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its metadata (with the revision).
    pub meta: FileMeta,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why a write of a service file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Over [`MAX_CLUSTER_FILE_BYTES`].
    #[error(
        "{svc}: the service file is {size} bytes, over the cluster's limit of {limit} bytes (etcd refuses requests over 1.5 MiB): nothing written"
    )]
    TooLarge {
        /// The service.
        svc: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Someone changed (or created, or deleted) the file after the writer read it.
    #[error(
        "{svc}: refused, nothing written: the service file changed since revision {read} (read here): {now}"
    )]
    Changed {
        /// The service.
        svc: String,
        /// The revision the writer read (0: absent).
        read: i64,
        /// What it is now (`revision 42 written by n2 at 2026-...`, or `deleted`).
        now: String,
    },
    /// etcd could not be read or written.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl Store {
    /// `services/<svc>/file` and `file_meta`, as etcd holds them now.
    pub async fn get_file(&self, svc: &str) -> Result<Option<StoredFile>, ClusterError> {
        let prefix = self.keys().file(svc);
        let resp = self
            .call(format!("get {prefix}*"), |mut c| {
                let k = prefix.clone();
                async move { c.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let (mut meta, mut bytes) = (None, None);
        for kv in resp.kvs() {
            let key = kv.key_str().unwrap_or_default();
            if key == self.keys().file(svc) {
                bytes = Some(kv.value().to_vec());
            } else if key == self.keys().file_meta(svc) {
                let mut m: FileMeta = decode(key, kv.value())?;
                m.revision = kv.mod_revision();
                meta = Some(m);
            }
        }
        Ok(meta
            .zip(bytes)
            .map(|(meta, bytes)| StoredFile { meta, bytes }))
    }

    /// Write `bytes` as the service file of `svc` if its revision is still `read` (0: absent:
    /// a create). Returns the new revision. Refused over the size limit, or when the file
    /// changed since `read`, naming the change.
    pub async fn put_file(
        &self,
        svc: &str,
        format: FileFormat,
        bytes: &[u8],
        read: i64,
    ) -> Result<i64, FileError> {
        if bytes.len() > MAX_CLUSTER_FILE_BYTES {
            return Err(FileError::TooLarge {
                svc: svc.to_string(),
                size: bytes.len(),
                limit: MAX_CLUSTER_FILE_BYTES,
            });
        }
        let meta = FileMeta {
            format,
            checksum: file_checksum(bytes),
            size: bytes.len(),
            by: self.node().to_string(),
            at_ms: now_ms(),
            revision: 0,
        };
        let (fkey, mkey) = (self.keys().file(svc), self.keys().file_meta(svc));
        // Serialising this plain record cannot fail.
        let value = serde_json::to_vec(&meta).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::mod_revision(mkey.clone(), CompareOp::Equal, read)])
            .and_then([
                TxnOp::put(fkey.clone(), bytes.to_vec(), None),
                TxnOp::put(mkey.clone(), value, None),
            ])
            .or_else([TxnOp::get(mkey.clone(), None)]);
        self.file_txn(svc, read, txn, format!("put {fkey}")).await
    }

    /// Delete the service file of `svc` if its revision is still `read`.
    pub async fn delete_file(&self, svc: &str, read: i64) -> Result<i64, FileError> {
        let (fkey, mkey) = (self.keys().file(svc), self.keys().file_meta(svc));
        let txn = Txn::new()
            .when([
                Compare::mod_revision(mkey.clone(), CompareOp::Equal, read),
                Compare::create_revision(mkey.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::delete(fkey, None), TxnOp::delete(mkey.clone(), None)])
            .or_else([TxnOp::get(mkey.clone(), None)]);
        self.file_txn(svc, read, txn, format!("delete {mkey}"))
            .await
    }

    async fn file_txn(
        &self,
        svc: &str,
        read: i64,
        txn: Txn,
        what: String,
    ) -> Result<i64, FileError> {
        let resp = self
            .call(what, |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let mut now = "deleted (or never written)".to_string();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op
                && let Some(kv) = g.kvs().first()
            {
                let key = kv.key_str().unwrap_or_default().to_string();
                let m: FileMeta = decode(&key, kv.value())?;
                now = format!(
                    "revision {} written by {} at {} (checksum {})",
                    kv.mod_revision(),
                    m.by,
                    crate::format_ms(m.at_ms),
                    m.checksum
                );
            }
        }
        Err(FileError::Changed {
            svc: svc.to_string(),
            read,
            now,
        })
    }
}

/// What a node's copy was based on: the checksum and revision of the etcd copy it last wrote
/// or found identical (svcd keeps these in `<var>/cluster.files.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The etcd copy's checksum.
    pub checksum: String,
    /// Its revision.
    pub revision: i64,
}

/// What one node has of a service's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local<'a> {
    /// The checksum of the file on disk.
    pub checksum: &'a str,
    /// Whether it loads on this node.
    pub loads: bool,
}

/// What svcd does about one service file ([`decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStep {
    /// Nothing to do.
    Nothing,
    /// The disk copy is the etcd copy: remember that as the base.
    Adopt,
    /// Write the etcd copy to disk (then remember it as the base).
    Write,
    /// Publish the disk copy to etcd, comparing on this revision (0: a create).
    Publish(i64),
    /// Remove the disk copy (deleted in etcd, or this node may not run the service).
    Remove,
    /// The disk copy was edited by hand on a stale base (or differs from etcd with no base):
    /// nothing written either way.
    Conflict {
        /// The disk copy's checksum.
        local: String,
        /// The etcd copy's checksum (empty: deleted in etcd).
        etcd: String,
    },
}

/// What to do with one service's file on one node. `local`: the file on disk; `base`: what
/// it was based on; `etcd`: the cluster's copy; `here`: whether this node may run the service
/// (in its `nodes` or `drpnodes`, as the etcd copy says; `None` when that cannot be told);
/// `runs_here`: the service is up (or partly) on this node.
pub fn decide(
    local: Option<Local<'_>>,
    base: Option<&Base>,
    etcd: Option<&FileMeta>,
    here: Option<bool>,
    runs_here: bool,
) -> FileStep {
    match (local, etcd) {
        (None, None) => FileStep::Nothing,
        (None, Some(_)) => {
            if here == Some(false) {
                FileStep::Nothing
            } else {
                FileStep::Write
            }
        }
        (Some(l), None) => match base {
            // The first node with it: publish it (only a file that loads).
            None if l.loads => FileStep::Publish(0),
            None => FileStep::Nothing,
            // Deleted in etcd: remove the copy, unless it runs here or was edited by hand since.
            Some(b) if b.checksum == l.checksum => {
                if runs_here {
                    FileStep::Nothing
                } else {
                    FileStep::Remove
                }
            }
            Some(_) => FileStep::Conflict {
                local: l.checksum.to_string(),
                etcd: String::new(),
            },
        },
        (Some(l), Some(e)) => {
            if l.checksum == e.checksum {
                if here == Some(false) && !runs_here {
                    return FileStep::Remove;
                }
                return match base {
                    Some(b) if b.checksum == e.checksum && b.revision == e.revision => {
                        FileStep::Nothing
                    }
                    _ => FileStep::Adopt,
                };
            }
            match base {
                // Never based on the cluster's copy (a node joining with its own): conflict.
                None => FileStep::Conflict {
                    local: l.checksum.to_string(),
                    etcd: e.checksum.clone(),
                },
                // Not edited here: behind the cluster.
                Some(b) if b.checksum == l.checksum => {
                    if here == Some(false) && !runs_here {
                        FileStep::Remove
                    } else {
                        FileStep::Write
                    }
                }
                // Edited by hand on the current copy: publish it, if it loads.
                Some(b) if b.revision == e.revision => {
                    if l.loads {
                        FileStep::Publish(e.revision)
                    } else {
                        FileStep::Nothing
                    }
                }
                Some(_) => FileStep::Conflict {
                    local: l.checksum.to_string(),
                    etcd: e.checksum.clone(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(sum: &str, rev: i64) -> FileMeta {
        FileMeta {
            format: FileFormat::Toml,
            checksum: sum.into(),
            size: 1,
            by: "n1".into(),
            at_ms: 0,
            revision: rev,
        }
    }

    fn base(sum: &str, rev: i64) -> Base {
        Base {
            checksum: sum.into(),
            revision: rev,
        }
    }

    fn ok(sum: &str) -> Option<Local<'_>> {
        Some(Local {
            checksum: sum,
            loads: true,
        })
    }

    #[test]
    fn a_node_follows_the_cluster_copy() {
        // Nothing anywhere.
        assert_eq!(decide(None, None, None, None, false), FileStep::Nothing);
        // A file only in etcd appears, but not on a node outside its nodes.
        let e = meta("a", 5);
        assert_eq!(
            decide(None, None, Some(&e), Some(true), false),
            FileStep::Write
        );
        assert_eq!(decide(None, None, Some(&e), None, false), FileStep::Write);
        assert_eq!(
            decide(None, None, Some(&e), Some(false), false),
            FileStep::Nothing
        );
        // The same bytes: adopted as the base, then nothing.
        assert_eq!(
            decide(ok("a"), None, Some(&e), Some(true), false),
            FileStep::Adopt
        );
        assert_eq!(
            decide(ok("a"), Some(&base("a", 5)), Some(&e), Some(true), false),
            FileStep::Nothing
        );
        // Behind: written.
        let e6 = meta("b", 6);
        assert_eq!(
            decide(ok("a"), Some(&base("a", 5)), Some(&e6), Some(true), false),
            FileStep::Write
        );
        // Behind, outside nodes: removed (unless it runs here).
        assert_eq!(
            decide(ok("a"), Some(&base("a", 5)), Some(&e6), Some(false), false),
            FileStep::Remove
        );
        assert_eq!(
            decide(ok("b"), Some(&base("b", 6)), Some(&e6), Some(false), false),
            FileStep::Remove
        );
        assert_eq!(
            decide(ok("b"), Some(&base("b", 6)), Some(&e6), Some(false), true),
            FileStep::Nothing
        );
    }

    #[test]
    fn a_hand_edit_is_published_on_the_current_copy_else_a_conflict() {
        let e = meta("a", 5);
        assert_eq!(
            decide(ok("x"), Some(&base("a", 5)), Some(&e), Some(true), false),
            FileStep::Publish(5)
        );
        // One that does not load is not published.
        let broken = Some(Local {
            checksum: "x",
            loads: false,
        });
        assert_eq!(
            decide(broken, Some(&base("a", 5)), Some(&e), Some(true), false),
            FileStep::Nothing
        );
        // Edited on revision 4 while the cluster moved to 5: conflict, both sums.
        assert_eq!(
            decide(ok("x"), Some(&base("z", 4)), Some(&e), Some(true), false),
            FileStep::Conflict {
                local: "x".into(),
                etcd: "a".into()
            }
        );
        // A node joining with its own, different copy: conflict too.
        assert_eq!(
            decide(ok("x"), None, Some(&e), Some(true), false),
            FileStep::Conflict {
                local: "x".into(),
                etcd: "a".into()
            }
        );
    }

    #[test]
    fn first_publish_and_deletes() {
        // etcd lacks it: the node publishes it as a create (a broken file: not).
        assert_eq!(
            decide(ok("a"), None, None, None, false),
            FileStep::Publish(0)
        );
        let broken = Some(Local {
            checksum: "a",
            loads: false,
        });
        assert_eq!(decide(broken, None, None, None, false), FileStep::Nothing);
        // Deleted in etcd: removed here, unless it runs here, or was edited since.
        assert_eq!(
            decide(ok("a"), Some(&base("a", 5)), None, None, false),
            FileStep::Remove
        );
        assert_eq!(
            decide(ok("a"), Some(&base("a", 5)), None, None, true),
            FileStep::Nothing
        );
        assert_eq!(
            decide(ok("x"), Some(&base("a", 5)), None, None, false),
            FileStep::Conflict {
                local: "x".into(),
                etcd: String::new()
            }
        );
    }

    #[test]
    fn formats() {
        use std::path::Path;
        assert_eq!(
            FileFormat::of_path(Path::new("a/web.toml")),
            FileFormat::Toml
        );
        assert_eq!(
            FileFormat::of_path(Path::new("a/web.conf")),
            FileFormat::Ini
        );
        assert_eq!(FileFormat::of_path(Path::new("a/web.env")), FileFormat::Ini);
        assert_eq!(FileFormat::Ini.extension(), "conf");
        let m = meta("a", 3);
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("revision"), "{json}");
        assert!(json.contains("\"format\":\"toml\""), "{json}");
    }
}
