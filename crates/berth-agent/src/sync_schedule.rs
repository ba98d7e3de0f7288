//! svcd runs the sync resources' `schedule`: every 10 s, for each service up here (its
//! avail in svcd's tree), each sync resource whose schedule is due (its window, and its last
//! attempt a period ago: [`berth_model::config::Schedule::due`]) is run as `svc SVC sync
//! update --rid RID`, the operator's own command (owner check, receiver checks, records), in a
//! thread of its own: a long transfer never holds svcd's checks, its HTTP server or the
//! monitor, and a resource whose sync still runs is not started again (the sync's own lock
//! refuses a second one as well).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_model::config::Spec;
use berth_model::sync::SyncRecords;
use berth_model::{Rid, Status};
use tokio::sync::watch;
use tracing::Level;

use crate::metrics::SyncFigure;
use crate::state::Shared;

/// How often the schedules are looked at.
const PERIOD: Duration = Duration::from_secs(10);

/// The `svc` svcd runs: beside its own binary, else on `PATH`.
fn svc_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("svc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("svc"))
}

/// The time of the last attempt to any target, from the records on disk.
fn last_attempt(shared: &Shared, svc: &str, rid: Rid) -> Option<u64> {
    let path = shared.paths.sync_records(svc, &rid.to_string());
    let bytes = std::fs::read(path).ok()?;
    let recs: SyncRecords = serde_json::from_slice(&bytes).ok()?;
    recs.values()
        .filter_map(|t| t.last.as_ref().map(|r| r.time))
        .max()
}

/// The last good syncs sent from here, for the metrics.
fn figures(shared: &Shared) -> Vec<SyncFigure> {
    let mut out = Vec::new();
    for (name, loaded) in shared.configs() {
        let Ok(cfg) = loaded else { continue };
        for res in cfg
            .resources
            .iter()
            .filter(|r| matches!(r.spec, Spec::Sync(_)))
        {
            let rid = res.rid.to_string();
            let Ok(bytes) = std::fs::read(shared.paths.sync_records(&name, &rid)) else {
                continue;
            };
            let Ok(recs) = serde_json::from_slice::<SyncRecords>(&bytes) else {
                continue;
            };
            for (target, t) in recs {
                if let Some(ok) = t.last_ok {
                    out.push(SyncFigure {
                        svc: name.clone(),
                        rid: rid.clone(),
                        target,
                        time: ok.time,
                        bytes: ok.bytes,
                    });
                }
            }
        }
    }
    out
}

/// Run the schedules until `stop`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let running: Arc<Mutex<HashSet<(String, Rid)>>> = Arc::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = stop.changed() => return,
        }
        let now = berth_drivers::sync::now();
        shared.metrics.set_syncs(figures(&shared));
        for (name, loaded) in shared.configs() {
            let Ok(cfg) = loaded else { continue };
            let up = shared
                .tree
                .get(&name)
                .is_some_and(|st| matches!(st.avail, Status::Up));
            if !up {
                continue;
            }
            for res in &cfg.resources {
                let Spec::Sync(spec) = &res.spec else {
                    continue;
                };
                if res.common.disable
                    || !spec
                        .schedule
                        .due(now, last_attempt(&shared, &name, res.rid))
                {
                    continue;
                }
                let key = (name.clone(), res.rid);
                if !running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.clone())
                {
                    continue;
                }
                spawn(&shared, key, running.clone());
            }
        }
    }
}

fn spawn(shared: &Arc<Shared>, key: (String, Rid), running: Arc<Mutex<HashSet<(String, Rid)>>>) {
    let (svc, rid) = key.clone();
    let paths = shared.paths.clone();
    let nodename = shared.settings().nodename.clone();
    let still = running.clone();
    crate::worker::note(
        &paths,
        &svc,
        Some(rid),
        Level::INFO,
        "svcd schedule",
        "scheduled sync update",
    );
    let started = std::thread::Builder::new()
        .name("berth-sync".into())
        .spawn(move || {
            let out = std::process::Command::new(svc_bin())
                .args([&svc, "sync", "update", "--rid", &rid.to_string()])
                .env("BERTH_CONFIG_DIR", &paths.config_dir)
                .env("BERTH_VAR_DIR", &paths.var_dir)
                .env("BERTH_RUN_DIR", &paths.run_dir)
                .env("BERTH_NODENAME", &nodename)
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output();
            let (level, what) = match out {
                Ok(o) if o.status.success() => (Level::INFO, "scheduled sync done".to_string()),
                Ok(o) => (
                    Level::ERROR,
                    format!(
                        "scheduled sync failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                ),
                Err(e) => (Level::ERROR, format!("cannot run svc: {e}")),
            };
            crate::worker::note(&paths, &svc, Some(rid), level, "svcd schedule", &what);
            still
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(svc, rid));
        });
    if let Err(e) = started {
        tracing::error!("cannot start a sync thread: {e}");
        running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }
}
