//! svcd follows the cluster's one copy of each service file (`services/<svc>/file` in etcd,
//! seen through the cluster view that the one watch keeps): it writes a newer copy into
//! `services/` (temp file, fsync, rename; the config dir watcher then reloads it), publishes a
//! file edited here by hand when it loads and was based on the current copy, publishes the files
//! etcd lacks, removes a copy deleted in etcd (not while the service runs here) or of a service
//! this node may not run, and shows anything else as a conflict (nothing written either way).
//! The decisions are [`berth_cluster::files::decide`]; this is the I/O around them.
//!
//! What each copy was based on (checksum and revision of the etcd copy) is kept in
//! `<var>/cluster.files.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_cluster::files::{Base, FileError, FileFormat, FileMeta, FileStep, Local, decide};
use berth_model::Status;
use berth_model::config::ServiceConfig;
use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::state::Shared;

/// How often svcd compares the copies on disk (a pass only reads what changed): a hand edit
/// is published within this. Each pass stats every service file, so at 1000 services a shorter
/// period costs idle CPU for nothing (a change in etcd is followed at once, see [`LOOK`]).
const EVERY: Duration = Duration::from_secs(1);

/// How often svcd looks whether the cluster's copies changed (in the view, in memory): a new
/// copy is then followed at once, not at the next disk pass.
const LOOK: Duration = Duration::from_millis(20);

/// `<var>/cluster.files.json`.
fn bases_file(shared: &Shared) -> PathBuf {
    shared.paths.var_dir.join("cluster.files.json")
}

fn read_bases(shared: &Shared) -> BTreeMap<String, Base> {
    std::fs::read(bases_file(shared))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Write `bytes` to `path` atomically: a hidden temp file in the same directory (no loader
/// reads it), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What one service looked like at the last pass: when nothing of it changed, it is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    etcd: Option<i64>,
    disk: Option<(SystemTime, u64, PathBuf)>,
    base: Option<Base>,
    loads: Option<bool>,
    runs: bool,
    members: usize,
}

/// Follow the cluster's copies, every [`EVERY`], for as long as svcd runs.
pub async fn follow(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut bases = read_bases(&shared);
    let mut last: BTreeMap<String, Seen> = BTreeMap::new();
    let mut seen_etcd = (0, 0);
    let mut passed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(LOOK).await;
        // The cluster's copies: how many, and the newest revision among them.
        let now_etcd = cluster.with_view(|v| {
            (
                v.files.len(),
                v.files.values().map(|m| m.revision).max().unwrap_or(0),
            )
        });
        if now_etcd == seen_etcd && passed.elapsed() < EVERY {
            continue;
        }
        seen_etcd = now_etcd;
        passed = tokio::time::Instant::now();
        if pass(&shared, &cluster, &mut bases, &mut last).await {
            let text = serde_json::to_vec_pretty(&bases).unwrap_or_default();
            if let Err(e) = write_atomic(&bases_file(&shared), &text) {
                warn!("cannot write {}: {e}", bases_file(&shared).display());
            }
        }
    }
}

/// One pass over every service known here or in etcd. True when the bases changed.
async fn pass(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    bases: &mut BTreeMap<String, Base>,
    last: &mut BTreeMap<String, Seen>,
) -> bool {
    let (metas, members) = cluster.with_view(|v| (v.files.clone(), v.members.len()));
    let configs: BTreeMap<String, crate::mailbox::Loaded> = shared.configs().into_iter().collect();
    let mut names: BTreeSet<String> = metas.keys().cloned().collect();
    names.extend(configs.keys().cloned());
    names.extend(bases.keys().cloned());
    let mut dirty = false;
    last.retain(|n, _| names.contains(n));
    for name in names {
        let path = match berth_engine::load::service_file(&shared.paths, &name) {
            Ok(p) => Some(std::fs::canonicalize(&p).unwrap_or(p)),
            Err(berth_engine::load::LoadError::NotFound { .. }) => None,
            // Several files, a bad name: the loader reports it; nothing to follow.
            Err(_) => continue,
        };
        let disk = path.as_ref().and_then(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len(), p.clone()))
        });
        let runs = shared.tree.get(&name).is_some_and(|st| {
            !matches!(
                st.avail,
                Status::Down | Status::NotApplicable | Status::Undef
            )
        });
        let seen = Seen {
            etcd: metas.get(&name).map(|m| m.revision),
            disk,
            base: bases.get(&name).cloned(),
            loads: configs.get(&name).map(Result::is_ok),
            runs,
            members,
        };
        if last.get(&name) == Some(&seen) {
            continue;
        }
        match one(
            shared,
            cluster,
            &name,
            path.as_deref(),
            configs.get(&name),
            metas.get(&name),
            runs,
            bases,
        )
        .await
        {
            Ok(changed) => {
                dirty |= changed;
                last.insert(name, seen);
            }
            Err(e) => {
                warn!("{name}: service file: {e}");
                last.remove(&name);
            }
        }
    }
    dirty
}

/// Whether this node may run the service `cfg` describes: `None` when its file names no nodes.
fn may_run_here(cfg: &ServiceConfig, me: &str) -> Option<bool> {
    let s = &cfg.settings;
    if s.nodes.is_empty() && s.drpnodes.is_empty() {
        return None;
    }
    Some(s.nodes.iter().chain(&s.drpnodes).any(|n| n == me))
}

/// Decide and act for one service. True when its base changed.
#[allow(clippy::too_many_arguments)]
async fn one(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    name: &str,
    path: Option<&Path>,
    loaded: Option<&crate::mailbox::Loaded>,
    meta: Option<&FileMeta>,
    runs: bool,
    bases: &mut BTreeMap<String, Base>,
) -> Result<bool, String> {
    let me = cluster.node().to_string();
    let bytes = match path {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?),
        None => None,
    };
    let sum = bytes.as_deref().map(berth_cluster::file_checksum);
    // Whether the copy on disk loads: svcd's loaded config when it is the cluster's copy, else
    // these very bytes parsed (a hand edit is published only when it loads, and svcd may not
    // have reloaded it yet).
    let loads = match (&bytes, path) {
        (Some(b), Some(p)) if meta.is_none_or(|m| Some(m.checksum.as_str()) != sum.as_deref()) => {
            let load = berth_engine::load::load_context(&shared.paths);
            ServiceConfig::check_bytes(p, b, &load)
                .into_result()
                .is_ok()
        }
        _ => loaded.is_some_and(Result::is_ok),
    };
    // Whether this node may run it, as the cluster's copy says: the loaded file when it is that
    // copy, else the cluster's bytes read and parsed here.
    let mut stored = None;
    let here = match meta {
        None => None,
        Some(m) => match loaded {
            Some(Ok(cfg)) if sum.as_deref() == Some(m.checksum.as_str()) => may_run_here(cfg, &me),
            _ => {
                let s = cluster
                    .store
                    .get_file(name)
                    .await
                    .map_err(|e| e.to_string())?;
                let here = s.as_ref().and_then(|s| {
                    let p = shared
                        .paths
                        .services_dir()
                        .join(format!("{name}.{}", s.meta.format.extension()));
                    let load = berth_engine::load::load_context(&shared.paths);
                    let cfg = ServiceConfig::check_bytes(&p, &s.bytes, &load)
                        .into_result()
                        .ok()?;
                    may_run_here(&cfg, &me)
                });
                stored = s;
                here
            }
        },
    };
    let local = sum.as_deref().map(|checksum| Local { checksum, loads });
    let step = decide(local, bases.get(name), meta, here, runs);
    let mut conflict = None;
    let changed = match step {
        FileStep::Nothing => false,
        FileStep::Adopt => {
            let m = meta.ok_or("no cluster copy to adopt")?;
            bases.insert(
                name.to_string(),
                Base {
                    checksum: m.checksum.clone(),
                    revision: m.revision,
                },
            );
            true
        }
        FileStep::Write => {
            let s = match stored {
                Some(s) => s,
                None => cluster
                    .store
                    .get_file(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("deleted from etcd meanwhile")?,
            };
            let dir = shared.paths.services_dir();
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
            let target = match path {
                Some(p) if s.meta.format.matches(p) => p.to_path_buf(),
                _ => dir.join(format!("{name}.{}", s.meta.format.extension())),
            };
            write_atomic(&target, &s.bytes)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            // A copy under the other format's name goes (one file per service).
            if let Some(p) = path
                && p != target
            {
                let _ = std::fs::remove_file(p);
            }
            info!(
                "{name}: wrote the cluster's copy (revision {}, checksum {}, by {}) to {}",
                s.meta.revision,
                s.meta.checksum,
                s.meta.by,
                target.display()
            );
            cluster.event(
                "config_written",
                Some(name),
                format!(
                    "{name}: the cluster's copy of revision {} written on {me}",
                    s.meta.revision
                ),
            );
            bases.insert(
                name.to_string(),
                Base {
                    checksum: s.meta.checksum,
                    revision: s.meta.revision,
                },
            );
            true
        }
        FileStep::Publish(read) => {
            let (Some(p), Some(b), Some(sum)) = (path, bytes.as_ref(), sum.clone()) else {
                return Ok(false);
            };
            match cluster
                .store
                .put_file(name, FileFormat::of_path(p), b, read)
                .await
            {
                Ok(rev) => {
                    info!("{name}: published {} (revision {rev})", p.display());
                    cluster.event(
                        "config_published",
                        Some(name),
                        format!("{name}: {me}'s copy published as revision {rev}"),
                    );
                    bases.insert(
                        name.to_string(),
                        Base {
                            checksum: sum,
                            revision: rev,
                        },
                    );
                    true
                }
                // Someone else wrote it first: the next pass sees the new revision.
                Err(FileError::Changed { .. }) => false,
                Err(e @ FileError::TooLarge { .. }) => {
                    conflict = Some((sum, "too large to publish".to_string()));
                    warn!("{e}");
                    false
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        FileStep::Remove => {
            if let Some(p) = path {
                std::fs::remove_file(p)
                    .map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
                info!(
                    "{name}: removed {} ({})",
                    p.display(),
                    if meta.is_some() {
                        "this node is not in its nodes nor drpnodes"
                    } else {
                        "deleted from the cluster"
                    }
                );
            }
            bases.remove(name).is_some()
        }
        FileStep::Conflict { local, etcd } => {
            conflict = Some((local, etcd));
            false
        }
    };
    if cluster.conflicts.set(name, conflict.clone())
        && let Some((local, etcd)) = conflict
    {
        warn!(
            "{name}: the copy here ({local}) differs from the cluster's ({}) and was not based on it: nothing written either way (svc {name} edit config, or remove the file here to take the cluster's)",
            if etcd.is_empty() { "deleted" } else { &etcd }
        );
        cluster.event(
            "config_conflict",
            Some(name),
            format!("{name}: copy on {me} {local} in conflict with the cluster's {etcd}"),
        );
    }
    Ok(changed)
}
