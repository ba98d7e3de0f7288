//! One task per service: it checks the service, runs its actions and its monitor restarts, one
//! at a time, and publishes its status to the tree.
//!
//! Checks and actions call the synchronous engine on the blocking pool. Checks take a permit of
//! [`Shared::checks`], so many services are checked at once, but boundedly; actions take a permit
//! of [`Shared::actions`], so shutdown can wait for them.
//!
//! Monitoring: a monitored resource seen up since the last action (it is "armed") and then found
//! down is restarted (an engine start with `--rid` of it), up to its `restart` count, at most one
//! try per monitor interval. The count is spent across incidents; a successful operator start
//! (CLI or HTTP: start, restart or a partial start) resets it. After an action (seen in
//! `last_action.json` or run here) the next check re-arms from what it finds, so a resource the
//! operator stopped is left alone. A frozen service is never restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_drivers::{HOST, StatusReads, docker};
use berth_engine::load::load_all;
use berth_engine::recipe::RunError;
use berth_engine::record::{self, ActionRecord};
use berth_engine::{ActionError, ActionOptions, ActionReport, Engine, LockError, is_up};
use berth_model::Rid;
use berth_model::action::ServiceAction;
use berth_model::config::ServiceConfig;
use berth_model::order::{Action, Selector};
use berth_model::status::{LogEntry, ServiceStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Level, error, info, info_span, warn};

use crate::state::Shared;

mod drp;
mod standby;
mod steps;

pub use crate::cluster::ClusterOp;
pub use crate::mailbox::{ActionBody, ActionReply, ActionRequest, Handle, Loaded, Msg};

/// Who acted, heading svcd's lines in a service's log file (`svc SVC logs`).
pub mod origin {
    /// A monitor restart, or the `monitor_action` after the restarts are spent.
    pub const MONITOR: &str = "svcd monitor";
    /// An action asked over HTTP.
    pub const HTTP: &str = "svcd http";
    /// The start of an `autostart_node` service when svcd starts.
    pub const AUTOSTART: &str = "svcd autostart";
    /// A cluster start: orchestrated, a failover, a switch or takeover to this node.
    pub const ORCHESTRATOR: &str = "svcd orchestrator";
    /// The stop of a switch away from this node.
    pub const SWITCH: &str = "svcd switch";
    /// Self-fencing: the lease is about to be lost.
    pub const FENCING: &str = "svcd fencing";
    /// The fencing watchdog (svcd is gone).
    pub const WATCHDOG: &str = "svcd watchdog";
    /// A DR node's `drp_active` mark: published, the owner key taken, cleared by a fail-back.
    pub const DRP: &str = "svcd drp";
}

/// Write `message`, headed by `origin`, to the service's log file (`svc SVC logs`), tagged
/// `SVC` or `SVC.RID`: why svcd acts, and how it went.
pub fn note(
    paths: &berth_model::paths::Paths,
    svc: &str,
    rid: Option<Rid>,
    level: Level,
    origin: &str,
    message: &str,
) {
    let rid = rid.map(|r| r.to_string());
    berth_manual::log::note_at(
        &paths.var_dir,
        svc,
        rid.as_deref(),
        &level,
        &format!("{origin}: {message}"),
    );
}

/// Whether two loads are the same config (or the same error): nothing to do on a reload.
fn same(a: &Loaded, b: &Loaded) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            Arc::ptr_eq(a, b)
                || matches!((serde_json::to_vec(&**a), serde_json::to_vec(&**b)), (Ok(x), Ok(y)) if x == y)
        }
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Whether a successful action recorded as `action` (`start`, `restart`, `stop`: the engine's
/// names in last_action.json) resets the monitor's restart counts.
fn is_start(action: &str) -> bool {
    ServiceAction::from_name(action).is_some_and(ServiceAction::is_start)
}

#[derive(Debug, Default)]
struct RidState {
    /// Seen up since the last action: a down is then the monitor's business.
    armed: bool,
    /// Restarts tried since the last operator start.
    restarts: u32,
    /// When the last one was tried.
    last_try: Option<Instant>,
    /// The count is spent and that was logged.
    gave_up: bool,
    /// A standby resource an action left down: not started again until seen up.
    standby_held: bool,
    /// When a standby resource was last started again.
    standby_try: Option<Instant>,
}

/// Identity of a `last_action.json` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RecordId {
    started_ms: u64,
    pid: u32,
}

impl RecordId {
    fn of(r: &ActionRecord) -> RecordId {
        RecordId {
            started_ms: r.started_ms,
            pid: r.pid,
        }
    }
}

/// The most a status check may take before the service is shown as hanging.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// A service's task.
#[derive(Debug)]
pub struct Worker {
    id: u64,
    name: String,
    shared: Arc<Shared>,
    config: Loaded,
    rids: BTreeMap<Rid, RidState>,
    /// The last action record seen (`None`: none yet). Outer `None`: not read yet.
    known: Option<Option<RecordId>>,
    /// An action happened: the next check re-arms instead of restarting.
    settle: bool,
    /// A monitored resource spent its restarts: `monitor_action` is due.
    monitor_due: Option<Rid>,
    /// A check that overran [`CHECK_TIMEOUT`], still running on the blocking pool.
    stuck: Option<(Instant, JoinHandle<Probe>)>,
    /// The last size of the docker data root and when it was taken (sizing it walks the tree:
    /// see [`DATA_ROOT_EVERY`]); the container and image counts are taken at every check.
    data_bytes: Option<(Instant, u64)>,
    /// When the last status check began (wall clock): the tree says the status is as of then.
    probe_began: Option<std::time::SystemTime>,
    /// A DR start here met another node's ownership: that owner, since when, and whether it
    /// was said (once it outlived a lease TTL: two forced starts, one on each side).
    drp_conflict: Option<(String, Instant, bool)>,
}

/// How often a service's docker data root is sized again (walking it is costly); the counts of
/// containers (running or not) and images follow every check, so a stop or start shows in the
/// chargeback within one check interval.
const DATA_ROOT_EVERY: Duration = Duration::from_secs(60);

type Probe = (ServiceStatus, Option<ActionRecord>);

enum Restart {
    /// An action ran since the check: the operator is at work, leave it.
    Superseded,
    /// The lock is held by a running action.
    Busy,
    /// It ran.
    Done(Result<ActionReport, String>, Option<ActionRecord>),
}

/// Spawn the task of service `name`.
pub fn spawn(shared: Arc<Shared>, name: String, config: Loaded) -> Handle {
    static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(8);
    let (config_tx, config_rx) = watch::channel(config.clone());
    if let Err(e) = &config {
        error!("{e}");
    }
    let worker = Worker {
        id,
        name,
        shared,
        config,
        rids: BTreeMap::new(),
        known: None,
        settle: false,
        monitor_due: None,
        stuck: None,
        data_bytes: None,
        probe_began: None,
        drp_conflict: None,
    };
    tokio::spawn(worker.run(rx, config_rx));
    Handle {
        tx,
        config: config_tx,
        id,
    }
}

/// Whether the action of `rec` ended before `reads` were made (with a margin for the
/// record's millisecond clock): the shared reads then see what it did.
fn ended_before(rec: &ActionRecord, reads: &StatusReads) -> bool {
    let end = std::time::UNIX_EPOCH
        + Duration::from_millis(rec.started_ms)
        + Duration::from_secs_f64(rec.duration.max(0.0))
        + Duration::from_millis(2);
    end < reads.created()
}

fn rid_strings(rids: &[Rid]) -> Vec<String> {
    rids.iter().map(|r| r.to_string()).collect()
}

impl Worker {
    /// A line in this service's log file (see [`note`]).
    fn note(&self, rid: Option<Rid>, level: Level, origin: &str, message: &str) {
        note(&self.shared.paths, &self.name, rid, level, origin, message);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>, mut config: watch::Receiver<Loaded>) {
        config.mark_unchanged();
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                r = config.changed() => {
                    if r.is_err() {
                        break;
                    }
                    let loaded = config.borrow_and_update().clone();
                    if same(&loaded, &self.config) {
                        continue;
                    }
                    self.set_config(loaded);
                    self.check().await;
                    continue;
                }
            };
            match msg {
                Msg::Check(done) => {
                    self.check().await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Msg::SharedCheck(reads, done) => {
                    self.check_with(Some(reads)).await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Msg::Action(req, reply) => {
                    let answer = self.action(&req).await;
                    let _ = reply.send(answer);
                }
                Msg::Autostart => self.autostart().await,
                Msg::Cluster(op) => self.cluster_op(op).await,
            }
        }
    }

    fn set_config(&mut self, loaded: Loaded) {
        match (&loaded, &self.config) {
            (Err(e), Err(old)) if e == old => {}
            (Err(e), _) => error!("{e}"),
            (Ok(_), Err(_)) => info!("{}: service file fixed", self.name),
            (Ok(_), Ok(_)) => {}
        }
        if let Ok(cfg) = &loaded {
            for w in &cfg.warnings {
                warn!("{w}");
            }
            let present: BTreeSet<Rid> = cfg.resources.iter().map(|r| r.rid).collect();
            self.rids.retain(|rid, _| present.contains(rid));
        }
        self.config = loaded;
    }

    /// Run the status check on the blocking pool, bounded by the check semaphore. With `reads`
    /// (a round of checks of every service), the host reads are shared with the other services'
    /// checks of the round, unless this service's last action ended after the round began:
    /// then the shared reads may predate it, and the check reads afresh.
    async fn probe(
        &mut self,
        cfg: &Arc<ServiceConfig>,
        reads: Option<Arc<StatusReads>>,
    ) -> Option<Probe> {
        if let Some((since, handle)) = self.stuck.take()
            && !handle.is_finished()
        {
            let waited = since.elapsed().as_secs();
            self.stuck = Some((since, handle));
            let mut st = ServiceStatus::broken(
                self.name.clone(),
                format!("the status check has been running for {waited}s (a hung resource?)"),
            );
            if let Some(prev) = self.shared.tree.get(&self.name) {
                st.resources = prev.resources.clone();
            }
            self.store(st);
            return None;
        }
        let permit = self.shared.checks.clone().acquire_owned().await.ok()?;
        let shared = self.shared.clone();
        let cfg = cfg.clone();
        let nodename = self.shared.settings().nodename.clone();
        let started = Instant::now();
        self.probe_began = Some(std::time::SystemTime::now());
        let cached = self
            .data_bytes
            .filter(|(at, _)| at.elapsed() < DATA_ROOT_EVERY)
            .map(|(_, b)| b);
        let fresh = cached.is_none();
        let mut handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let rec = record::read(&shared.paths.service_var(&cfg.name));
            let engine = Engine::new(&HOST, &shared.paths, &nodename);
            let reads = reads.filter(|r| rec.as_ref().is_none_or(|rec| ended_before(rec, r)));
            let mut st = match &reads {
                Some(r) => berth_drivers::reads::with(r, || engine.status(&cfg)),
                None => engine.status(&cfg),
            };
            st.chargeback = docker::chargeback(&engine.context(&cfg), cached);
            st.target = rec.as_ref().and_then(|r| r.target());
            shared.metrics.check(started.elapsed().as_secs_f64());
            (st, rec)
        });
        match tokio::time::timeout(CHECK_TIMEOUT, &mut handle).await {
            Ok(Ok(p)) => {
                if fresh && let Some(cb) = &p.0.chargeback {
                    self.data_bytes = Some((Instant::now(), cb.data_bytes));
                }
                Some(p)
            }
            Ok(Err(e)) => {
                error!("the status check of {} failed: {e}", self.name);
                self.store(ServiceStatus::broken(
                    self.name.clone(),
                    format!("the status check failed: {e}"),
                ));
                None
            }
            Err(_) => {
                warn!(
                    "the status check of {} takes more than {}s",
                    self.name,
                    CHECK_TIMEOUT.as_secs()
                );
                self.stuck = Some((started, handle));
                None
            }
        }
    }

    /// Take note of the last action record: a new one means an action ran.
    fn note_record(&mut self, rec: Option<ActionRecord>) {
        let id = rec.as_ref().map(RecordId::of);
        let Some(known) = self.known else {
            // First look since svcd started: what is there is history, not news.
            self.known = Some(id);
            return;
        };
        if known == id {
            return;
        }
        self.known = Some(id);
        let Some(rec) = rec else {
            return;
        };
        self.settle = true;
        if rec.pid != self.shared.pid {
            let how = if rec.ok { "done" } else { "failed" };
            info!(
                "{}: {} by pid {} {how} in {:.2}s",
                self.name, rec.action, rec.pid, rec.duration
            );
            self.shared
                .metrics
                .action(&self.name, &rec.action, rec.ok, rec.duration);
            if rec.ok && is_start(&rec.action) {
                self.reset_counts();
            }
        }
    }

    /// Put `status` in the tree, unless this worker was replaced or removed meanwhile.
    fn store(&self, status: ServiceStatus) {
        if self.shared.is_current(&self.name, self.id) {
            // A status not from a check (a broken file) is as of now.
            let at = self.probe_began.unwrap_or_else(std::time::SystemTime::now);
            self.shared.tree.update_at(status, at);
        }
    }

    fn reset_counts(&mut self) {
        for st in self.rids.values_mut() {
            st.restarts = 0;
            st.last_try = None;
            st.gave_up = false;
        }
    }

    /// Check the service, let the monitor act, publish the result.
    async fn check(&mut self) {
        self.check_with(None).await;
    }

    /// [`Worker::check`], the first status with the round's shared `reads` (see
    /// [`Worker::probe`]); a status after a restart reads afresh.
    async fn check_with(&mut self, reads: Option<Arc<StatusReads>>) {
        let cfg = match &self.config {
            Ok(c) => c.clone(),
            Err(e) => {
                self.store(ServiceStatus::broken(self.name.clone(), e.clone()));
                return;
            }
        };
        let Some((mut status, rec)) = self.probe(&cfg, reads).await else {
            return;
        };
        // Frozen cluster-wide (from any node): the monitor leaves it alone here too.
        if let Some(c) = self.shared.cluster.get()
            && c.is_frozen(&self.name)
        {
            status.frozen = true;
        }
        self.note_record(rec);
        let standby = self.standby_due(&cfg, &status, self.settle);
        let due = self.monitor(&cfg, &status);
        if let Some(rid) = self.monitor_due.take()
            && cfg.settings.monitor_action != berth_model::config::MonitorAction::None
        {
            self.publish(&cfg, status);
            self.monitor_action(&cfg, rid).await;
            return;
        }
        if !standby.is_empty() {
            self.standby_start(&cfg, &standby).await;
        }
        if !due.is_empty() {
            self.restart(&cfg, &due).await;
        }
        if (!due.is_empty() || !standby.is_empty())
            && let Some((st, rec)) = self.probe(&cfg, None).await
        {
            self.note_record(rec);
            status = st;
        }
        self.drp_reconcile(&cfg, &status).await;
        self.publish(&cfg, status);
    }

    /// Decide which monitored resources to restart now.
    fn monitor(&mut self, cfg: &ServiceConfig, status: &ServiceStatus) -> Vec<Rid> {
        let settle = std::mem::take(&mut self.settle);
        let interval = self.shared.settings().monitor_interval;
        let mut due = Vec::new();
        for r in &status.resources {
            if !r.flags.monitored || r.flags.disabled {
                continue;
            }
            let st = self.rids.entry(r.rid).or_default();
            if is_up(r.status) {
                st.armed = true;
                st.gave_up = false;
                continue;
            }
            if settle {
                // The operator's action left it down: not ours to bring back.
                st.armed = false;
                continue;
            }
            if status.frozen || !st.armed {
                continue;
            }
            let limit = cfg.resource(r.rid).map_or(0, |res| res.common.restart);
            if st.restarts >= limit {
                if !st.gave_up {
                    st.gave_up = true;
                    self.monitor_due = Some(r.rid);
                    warn!(
                        "{}.{}: down, restarted {} of {limit} times: left down until an operator start",
                        self.name, r.rid, st.restarts
                    );
                    let restarts = st.restarts;
                    self.note(
                        Some(r.rid),
                        Level::WARN,
                        origin::MONITOR,
                        &format!(
                            "down, restarted {restarts} of {limit} times: left down until an operator start"
                        ),
                    );
                }
                continue;
            }
            if st.last_try.is_some_and(|t| t.elapsed() < interval) {
                continue;
            }
            due.push(r.rid);
        }
        due
    }

    /// Restart `rids` (an engine start with `--rid`), unless an action ran since the check.
    async fn restart(&mut self, cfg: &Arc<ServiceConfig>, rids: &[Rid]) {
        let Ok(permit) = self.shared.actions.clone().acquire_owned().await else {
            return;
        };
        let listed = rid_strings(rids).join(", ");
        // Which try of how many, said once the restart is sure to run (under the lock, no
        // action since the check): a resource an operator's action is taking down is no failure.
        let tries: Vec<(Rid, u32, u32)> = rids
            .iter()
            .map(|rid| {
                let limit = cfg.resource(*rid).map_or(0, |r| r.common.restart);
                let n = self.rids.get(rid).map_or(0, |st| st.restarts) + 1;
                (*rid, n, limit)
            })
            .collect();
        let tries2 = tries.clone();
        let shared = self.shared.clone();
        let cfg2 = cfg.clone();
        let nodename = self.shared.settings().nodename.clone();
        let known = self.known.flatten();
        let set: BTreeSet<Rid> = rids.iter().copied().collect();
        let name = self.name.clone();
        let started = Instant::now();
        let guard = match self
            .shared
            .cluster
            .get()
            .map(|c| c.guard(berth_cluster::OwnerWhy::Action("monitor restart".into())))
        {
            Some(Err(e)) => {
                warn!("{}: no restart: {e}", self.name);
                self.note(
                    None,
                    Level::WARN,
                    origin::MONITOR,
                    &format!("no restart of {listed}: {e}"),
                );
                return;
            }
            Some(Ok(g)) => Some(g),
            None => None,
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let dir = shared.paths.service_var(&cfg2.name);
            let opts = ActionOptions {
                selector: Selector {
                    rids: Some(set),
                    ..Selector::default()
                },
                waitlock: Duration::ZERO,
                ..ActionOptions::default()
            };
            let engine = Engine::new(&HOST, &shared.paths, &nodename);
            let engine = match &guard {
                Some(g) => engine.with_guard(g),
                None => engine,
            };
            // The record is read under the lock: an operator's action that ended after the
            // check (a stop) is seen, and the restart does not undo it.
            let span = info_span!("service", svc = %name, origin = origin::MONITOR);
            let result = span.in_scope(|| {
                engine.start_if(&cfg2, &opts, || {
                    let wanted = record::read(&dir).as_ref().map(RecordId::of) == known;
                    if wanted {
                        for (rid, n, limit) in &tries2 {
                            note(
                                &shared.paths,
                                &name,
                                Some(*rid),
                                Level::WARN,
                                origin::MONITOR,
                                &format!(
                                    "went down (it was up since the last action): restart {n} of {limit}"
                                ),
                            );
                        }
                    }
                    wanted
                })
            });
            match result {
                Ok(None) => Restart::Superseded,
                Err(ActionError::Lock(LockError::Busy { .. })) => Restart::Busy,
                r => Restart::Done(
                    r.map(Option::unwrap_or_default).map_err(|e| e.to_string()),
                    record::read(&dir),
                ),
            }
        })
        .await;
        match outcome {
            // An operator's action ran, or runs: what it takes down is not a failure, and the
            // service's log says nothing of it (svcd's own log does).
            Ok(Restart::Superseded) => {
                info!(
                    "{}: an action ran meanwhile: no restart of {listed}",
                    self.name
                );
            }
            Ok(Restart::Busy) => {
                info!(
                    "{}: an action is running: no restart of {listed} now",
                    self.name
                );
            }
            Ok(Restart::Done(result, rec)) => {
                for (rid, n, limit) in &tries {
                    warn!("{}.{rid} was down: restart {n} of {limit}", self.name);
                }
                self.known = Some(rec.as_ref().map(RecordId::of));
                let ok = result.is_ok();
                self.shared.metrics.action(
                    &self.name,
                    "monitor restart",
                    ok,
                    started.elapsed().as_secs_f64(),
                );
                for rid in rids {
                    self.shared.metrics.restart(&self.name, *rid);
                    let st = self.rids.entry(*rid).or_default();
                    st.restarts += 1;
                    st.last_try = Some(Instant::now());
                }
                match result {
                    Ok(_) => {
                        info!("{}: restarted {listed}", self.name);
                        self.note(
                            None,
                            Level::INFO,
                            origin::MONITOR,
                            &format!("restart of {listed} done"),
                        );
                    }
                    Err(e) => {
                        error!("{}: restart failed: {e}", self.name);
                        self.note(
                            None,
                            Level::ERROR,
                            origin::MONITOR,
                            &format!("restart of {listed} failed: {e}"),
                        );
                    }
                }
            }
            Err(e) => {
                error!("{}: the restart task failed: {e}", self.name);
                self.note(
                    None,
                    Level::ERROR,
                    origin::MONITOR,
                    &format!("restart of {listed} failed: {e}"),
                );
            }
        }
    }

    /// Add the monitor's lines to the status and store it in the tree.
    fn publish(&self, cfg: &ServiceConfig, mut status: ServiceStatus) {
        if let Some(c) = self.shared.cluster.get() {
            c.decorate(&mut status);
        }
        let mut annotated = false;
        for r in &mut status.resources {
            if !r.flags.monitored || r.flags.disabled {
                continue;
            }
            let Some(st) = self.rids.get(&r.rid) else {
                continue;
            };
            let limit = cfg.resource(r.rid).map_or(0, |res| res.common.restart);
            if !is_up(r.status) && st.armed && st.restarts >= limit && !status.frozen {
                r.log.push(LogEntry::warn(format!(
                    "monitor: down, restarted {} of {limit} times: left down until an operator start",
                    st.restarts
                )));
                annotated = true;
            } else if st.restarts > 0 {
                r.log.push(LogEntry::info(format!(
                    "monitor: restarted {} of {limit} times since the last start",
                    st.restarts
                )));
                annotated = true;
            }
        }
        if annotated {
            let chargeback = status.chargeback.take();
            let error = status.error.take();
            let cluster = status.cluster.take();
            let (sync, hb, target) = (status.sync, status.hb, status.target);
            let mut s = ServiceStatus::from_resources(status.name, status.resources, status.frozen);
            s.chargeback = chargeback;
            s.target = target;
            s.error = error;
            if let Some(c) = cluster {
                s.set_cluster(sync, hb, c);
            }
            status = s;
        }
        self.store(status);
    }

    async fn autostart(&mut self) {
        let Ok(cfg) = &self.config else {
            return;
        };
        let nodename = self.shared.settings().nodename.clone();
        if cfg.settings.autostart_node.as_deref() != Some(nodename.as_str()) {
            return;
        }
        if self.shared.paths.frozen_flag(&self.name).exists() {
            info!("{}: frozen: no autostart", self.name);
            return;
        }
        info!("{}: autostart on {nodename}", self.name);
        let reply = self
            .action(&ActionRequest {
                action: ServiceAction::Start,
                body: ActionBody::default(),
                origin: origin::AUTOSTART,
                why: format!("as svcd starts (autostart_node = {nodename})"),
            })
            .await;
        if let Some(e) = reply.error {
            error!("{}: autostart failed: {e}", self.name);
        }
    }

    fn reply(&self, req: &ActionRequest, code: u16, error: Option<String>) -> ActionReply {
        ActionReply {
            service: self.name.clone(),
            action: req.action.words(),
            ok: error.is_none(),
            error,
            changed: Vec::new(),
            unchanged: Vec::new(),
            status: self.shared.tree.get(&self.name).map(|s| (*s).clone()),
            code,
        }
    }

    /// Run an operator action (HTTP, autostart) with svc's recipe
    /// ([`berth_engine::recipe::run_action`]) and check the service after it.
    async fn action(&mut self, req: &ActionRequest) -> ActionReply {
        let cfg = match &self.config {
            Ok(c) => c.clone(),
            Err(e) => {
                return self.reply(req, 409, Some(format!("service file is broken: {e}")));
            }
        };
        let opts = match options(&req.body) {
            Ok(o) => o,
            Err(e) => return self.reply(req, 400, Some(e)),
        };
        let Ok(permit) = self.shared.actions.clone().acquire_owned().await else {
            return self.reply(req, 503, Some("svcd is shutting down".into()));
        };
        let shared = self.shared.clone();
        let nodename = self.shared.settings().nodename.clone();
        let dry = opts.dry_run;
        let started = Instant::now();
        let cluster = self.shared.cluster.get().cloned();
        let command = req.command();
        let why = format!(" {}", req.why);
        let origin = req.origin;
        let action = req.action;
        let span = if dry {
            info_span!("service", svc = %self.name)
        } else {
            info_span!("service", svc = %self.name, origin = origin)
        };
        let handle = tokio::runtime::Handle::current();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let flex = cfg.settings.topology.is_flex();
            let side = cluster.map(|c| AgentCluster { c, handle, flex });
            let runner = berth_engine::recipe::Runner {
                driver: &HOST,
                paths: &shared.paths,
                nodename: &nodename,
                cluster: side
                    .as_ref()
                    .map(|s| s as &dyn berth_engine::recipe::ClusterSide),
            };
            let write = |level: Level, line: &str| {
                note(&shared.paths, &cfg.name, None, level, origin, line);
            };
            let notes = berth_engine::recipe::Notes {
                command: &command,
                why: &why,
                note: &write,
            };
            let result = span.in_scope(|| runner.run(&cfg, action, &opts, &notes));
            (result, record::read(&shared.paths.service_var(&cfg.name)))
        })
        .await;
        let (result, rec) = match joined {
            Ok(r) => r,
            Err(e) => {
                let e = format!("the action task failed: {e}");
                if !dry {
                    self.note(
                        None,
                        Level::ERROR,
                        req.origin,
                        &format!("{}: failed: {e}", req.command()),
                    );
                }
                return self.reply(req, 500, Some(e));
            }
        };
        if !dry {
            self.known = Some(rec.as_ref().map(RecordId::of));
            self.settle = true;
            if req.action.engine().is_some() {
                self.shared.metrics.action(
                    &self.name,
                    &req.action.words(),
                    result.is_ok(),
                    started.elapsed().as_secs_f64(),
                );
            }
            if result.is_ok() && req.action.is_start() {
                self.reset_counts();
            }
        }
        self.check().await;
        match result {
            Ok(report) => {
                info!("{}: {} done", self.name, req.action.words());
                let mut r = self.reply(req, 200, None);
                if let Some(report) = report {
                    r.changed = rid_strings(&report.changed);
                    r.unchanged = rid_strings(&report.unchanged);
                }
                r
            }
            Err(e) => {
                let code = match &e {
                    RunError::Action(ActionError::Selector(_)) => 400,
                    RunError::Action(ActionError::Lock(LockError::Busy { .. }))
                    | RunError::NoGuard(_) => 409,
                    _ => 500,
                };
                error!("{}: {} failed: {e}", self.name, req.action.words());
                self.reply(req, code, Some(e.to_string()))
            }
        }
    }
}

/// The recipe's view of svcd's cluster: starts under this node's lease, etcd reached through
/// svcd's runtime from the action's blocking thread.
struct AgentCluster {
    c: Arc<crate::cluster::Cluster>,
    handle: tokio::runtime::Handle,
    /// The service is flex: an action acts on this node's instance (its slot), not on the
    /// service's one ownership.
    flex: bool,
}

impl berth_engine::recipe::ClusterSide for AgentCluster {
    fn guard(&self, why: &str) -> Result<Box<dyn berth_engine::StartGuard + '_>, String> {
        let _rt = self.handle.enter();
        self.c
            .guard(berth_cluster::OwnerWhy::Action(why.to_string()))
            .map(|g| Box::new(g) as Box<dyn berth_engine::StartGuard>)
            .map_err(|e| e.to_string())
    }

    fn after_action(&self, svc: &str, action: Action, whole: bool, ok: bool) {
        if self.flex {
            self.handle
                .block_on(self.c.store.after_flex_action(svc, action, whole, ok));
            return;
        }
        self.handle
            .block_on(self.c.store.after_action(svc, action, whole, ok));
    }

    fn set_frozen(&self, svc: &str, frozen: bool) -> Result<(), String> {
        self.handle
            .block_on(self.c.store.set_frozen(svc, frozen))
            .map_err(|e| e.to_string())
    }
}

impl Worker {
    /// `monitor_action`: `rid` failed beyond its restarts. `switch` stops the service here and
    /// gives it up, this node out of the candidates for a while, so the orchestrator starts it
    /// on the next one; `freezestop` freezes it (cluster-wide in a cluster) and stops it here.
    async fn monitor_action(&mut self, cfg: &Arc<ServiceConfig>, rid: Rid) {
        use berth_model::config::MonitorAction;
        let cluster = self.shared.cluster.get().cloned();
        match cfg.settings.monitor_action {
            MonitorAction::None => {}
            MonitorAction::Switch => {
                let Some(c) = cluster else {
                    warn!(
                        "{}.{rid}: monitor_action = switch, but this node is in no cluster: left down",
                        self.name
                    );
                    self.note(
                        Some(rid),
                        Level::WARN,
                        origin::MONITOR,
                        "monitor_action = switch, but this node is in no cluster: left down",
                    );
                    return;
                };
                let why = format!("{rid} failed beyond its restarts");
                warn!(
                    "{}: {why}: monitor_action = switch, failing it over",
                    self.name
                );
                self.note(
                    None,
                    Level::WARN,
                    origin::MONITOR,
                    &format!(
                        "stop: {why}: monitor_action = switch, failing it over to another node"
                    ),
                );
                c.event(
                    "monitor_switch",
                    Some(&self.name),
                    format!("{}: {why}", self.name),
                );
                c.start_failed(&self.name, &why);
                if let Err(e) = self.cluster_stop(false, origin::MONITOR).await {
                    error!(
                        "{}: stop before the failover failed: {e}; keeping it here",
                        self.name
                    );
                    self.check_only().await;
                    return;
                }
                crate::cluster::release_if_mine(&c, &self.name).await;
            }
            MonitorAction::Freezestop => {
                warn!(
                    "{}: {rid} failed beyond its restarts: monitor_action = freezestop",
                    self.name
                );
                self.note(
                    None,
                    Level::WARN,
                    origin::MONITOR,
                    &format!(
                        "freeze and stop: {rid} failed beyond its restarts: monitor_action = freezestop"
                    ),
                );
                if let Err(e) = berth_engine::set_frozen(&self.shared.paths, &self.name, true) {
                    error!("{}: {e}", self.name);
                }
                if let Some(c) = &cluster {
                    if let Err(e) = c.store.set_frozen(&self.name, true).await {
                        warn!("{}: {e}", self.name);
                    }
                    c.event(
                        "monitor_freezestop",
                        Some(&self.name),
                        format!("{}: {rid} failed beyond its restarts", self.name),
                    );
                }
                if let Err(e) = self.cluster_stop(false, origin::MONITOR).await {
                    error!("{}: freezestop: stop failed: {e}", self.name);
                }
            }
        }
        self.check_only().await;
    }

    /// A check without the monitor (after a monitor action).
    async fn check_only(&mut self) {
        let Ok(cfg) = self.config.clone() else {
            return;
        };
        if let Some((status, rec)) = self.probe(&cfg, None).await {
            self.note_record(rec);
            self.publish(&cfg, status);
        }
    }
}

/// The engine options of an HTTP action (the recipe adds a partial action's kinds).
fn options(body: &ActionBody) -> Result<ActionOptions, String> {
    let selector = Selector::from_options(body.rid.as_deref(), body.tags.as_deref(), None)
        .map_err(|e| e.to_string())?;
    let waitlock = match body.waitlock {
        None => Duration::from_secs(60),
        Some(w) if w.is_finite() && (0.0..=3600.0).contains(&w) => Duration::from_secs_f64(w),
        Some(w) => return Err(format!("waitlock {w}: expected seconds between 0 and 3600")),
    };
    Ok(ActionOptions {
        selector,
        dry_run: body.dry_run,
        disable_rollback: body.disable_rollback,
        force: body.force,
        waitlock,
    })
}

/// Load every service file: new services get a worker, changed ones their new config, removed
/// ones lose theirs. A broken file is that service's problem only.
pub(crate) fn reload_services(shared: &Arc<Shared>) {
    let all = match load_all(&shared.paths) {
        Ok(all) => all,
        Err(e) => {
            error!("{e}: keeping the services as they were");
            return;
        }
    };
    let mut seen = BTreeSet::new();
    for (name, loaded) in all {
        let loaded = loaded.map(Arc::new).map_err(|e| e.to_string());
        if !shared.set_config(&name, loaded.clone()) {
            info!("service {name} loaded");
            let handle = spawn(shared.clone(), name.clone(), loaded);
            shared.add_worker(&name, handle);
            shared.poke(&name);
        }
        seen.insert(name);
    }
    for (name, _) in shared.workers() {
        if !seen.contains(&name) {
            info!("service {name} removed: no longer checked");
            shared.remove_worker(&name);
            shared.tree.remove(&name);
            shared.metrics.forget(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round's shared reads serve a service only when its last action ended before the
    /// round began (else they might show it before the action).
    #[test]
    fn shared_reads_only_after_the_last_action() {
        let reads = StatusReads::new();
        let created_ms = u64::try_from(
            reads
                .created()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let rec = |started_ms: u64, duration: f64| ActionRecord {
            action: "start".into(),
            started_ms,
            duration,
            ok: true,
            error: None,
            pid: 1,
            fence: None,
            partial: false,
        };
        assert!(ended_before(&rec(created_ms - 10_000, 1.0), &reads));
        // Ended just before (within the record's millisecond rounding) or after: not shared.
        assert!(!ended_before(&rec(created_ms - 1_000, 1.0), &reads));
        assert!(!ended_before(&rec(created_ms - 500, 1.0), &reads));
        assert!(!ended_before(&rec(created_ms + 5, 0.0), &reads));
    }

    /// The docker driver runs bollard on a runtime of its own, inside the engine call that
    /// svcd makes on the blocking pool: that must be allowed there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_driver_runtime_works_on_the_blocking_pool() {
        let n = tokio::task::spawn_blocking(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                7
            })
        })
        .await
        .unwrap();
        assert_eq!(n, 7);
    }

    #[test]
    fn restart_counts_reset_on_recorded_starts() {
        assert!(is_start("start") && is_start("restart") && !is_start("stop"));
    }

    #[test]
    fn options_from_the_body() {
        let o = options(&ActionBody::default()).unwrap();
        assert!(o.selector.is_all());
        let body: ActionBody =
            serde_json::from_str(r#"{"rid":"fs#1","force":true,"waitlock":2}"#).unwrap();
        let o = options(&body).unwrap();
        assert!(o.force);
        assert_eq!(o.waitlock, Duration::from_secs(2));
        let bad_rid = ActionBody {
            rid: Some("nope".into()),
            ..ActionBody::default()
        };
        let e = options(&bad_rid).unwrap_err();
        assert!(e.starts_with("--rid: \"nope\" is not a resource id"), "{e}");
        let bad_wait = ActionBody {
            waitlock: Some(-1.0),
            ..ActionBody::default()
        };
        let e = options(&bad_wait).unwrap_err();
        assert_eq!(e, "waitlock -1: expected seconds between 0 and 3600");
        let e = serde_json::from_str::<ActionBody>(r#"{"bogus":1}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `bogus`"), "{e}");
    }
}
