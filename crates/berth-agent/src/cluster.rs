//! svcd in a cluster: it holds the node's lease and node key, keeps a view of the cluster from
//! one etcd watch, and acts on it:
//!
//! - **self-fencing**: half a TTL after the last renewal etcd acknowledged, if the lease was not
//!   renewed since, it stops every service it owns, before the lease can expire anywhere;
//! - **relocation**: an intent (`svc SVC switch --to N`) makes the owner stop the service and hand
//!   the owner key to the target in one transaction; the target then starts it;
//! - **orchestration**: `orchestrate = start` services nobody owns are started once on the first
//!   fit node of `nodes`; `orchestrate = ha` ones again whenever their owner is gone.
//!
//! Every start in a cluster goes through the engine's start guard ([`EtcdGuard`]): it takes the
//! owner key first, or is refused.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use berth_cluster::lease::LeaseState;
use berth_cluster::{
    ClusterError, ClusterView, EtcdGuard, Intent, LeaseHealth, LeaseKeeper, LogLine, NodeRecord,
    ServiceSummary, Store, Target,
};
use berth_model::Status;
use berth_model::config::{ClusterConfig, Orchestrate};
use berth_model::status::{NodeCell, ServiceCluster, ServiceStatus};
use etcd_client::{EventType, WatchOptions};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::state::Shared;
use crate::worker::{ClusterOp, Msg};

/// How long a node that failed to start a service stays out of its candidates.
pub const FAILOVER_BACKOFF: Duration = Duration::from_secs(60);
/// How long the orchestrator waits before it tries a start again when nothing changed.
const RETRY_START: Duration = Duration::from_secs(2);
/// How often the orchestrator looks at the view even when nothing changed.
const ORCHESTRATE_EVERY: Duration = Duration::from_millis(500);

/// svcd's cluster state.
#[derive(Debug)]
pub struct Cluster {
    /// The etcd store.
    pub store: Store,
    /// `[cluster]` of node.toml.
    pub cfg: ClusterConfig,
    /// The lease's health.
    pub health: watch::Receiver<LeaseHealth>,
    view: RwLock<ClusterView>,
    record: watch::Sender<NodeRecord>,
    started: Instant,
    /// Intents already acted on (by id).
    handled: Mutex<HashSet<String>>,
    /// Ownership tokens this node already started the service for (relocations, orchestration).
    started_tokens: Mutex<HashSet<(String, i64)>>,
    /// Services whose start failed here, and when (kept out of the candidates for a while).
    failed: Mutex<BTreeMap<String, u64>>,
    /// Events for `GET /cluster`, newest last.
    events: Mutex<Vec<ClusterEvent>>,
    /// svcd's shared state, for the event counters.
    shared: std::sync::Weak<Shared>,
    /// Told when the view changed (the orchestrator acts at once, not at its next tick).
    changed: tokio::sync::Notify,
    /// Services self-fencing stopped here, to put back (or give up) if the lease survives.
    fenced: Mutex<BTreeSet<String>>,
    /// The orchestrator's last start attempt per service: the view's revision, and when.
    attempts: Mutex<BTreeMap<String, (i64, Instant)>>,
    /// The last owner the orchestrator saw of each service: a failover names it.
    last_owners: Mutex<BTreeMap<String, String>>,
}

/// Why the orchestrator starts `svc` here (`why`: `failover` or `orchestrate`), for the
/// service's log file: a failover names the node that had it, and whether its lease expired
/// (the node is gone from the cluster) or it gave the service up.
pub fn start_reason(why: &str, last_owner: Option<&str>, view: &ClusterView, me: &str) -> String {
    let from = match last_owner {
        Some(n) if n != me && !view.nodes.contains_key(n) => {
            format!(" from {n}: its lease expired (the node left the cluster)")
        }
        Some(n) if n != me => format!(" from {n}: it gave the service up"),
        Some(_) => ": this node gave it up".to_string(),
        None if why == "failover" => ": no node owns it".to_string(),
        None => ": no node owns it yet".to_string(),
    };
    format!("{why}{from}; {me} is the first fit node")
}

/// Something the cluster layer did or saw.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterEvent {
    /// When, in ms since the epoch.
    pub at_ms: u64,
    /// `lease_lost`, `fence_stop`, `takeover`, `switch`, `start_failed`...
    pub kind: String,
    /// The service, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What happened.
    pub message: String,
}

/// `GET /cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    /// The cluster's name.
    pub cluster: String,
    /// This node.
    pub node: String,
    /// This node's lease.
    pub lease: String,
    /// This node's heartbeat (`up`, `warn`, `down`).
    pub hb: Status,
    /// Milliseconds since the last renewal etcd acknowledged.
    pub last_renewal_age_ms: u128,
    /// The nodes with their version and the age of their record.
    pub nodes: BTreeMap<String, NodeReport>,
    /// The services with owner, fencing token and each node's view.
    pub services: BTreeMap<String, ServiceCluster>,
    /// The latest events.
    pub events: Vec<ClusterEvent>,
}

/// A node in `GET /cluster`.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    /// berth's version there.
    pub version: String,
    /// Its endpoint.
    pub listen: String,
    /// Milliseconds since its record was last written.
    pub age_ms: u64,
}

impl Cluster {
    /// The current view.
    pub fn view(&self) -> ClusterView {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn node(&self) -> &str {
        self.store.node()
    }

    /// Log and keep an event.
    pub fn event(&self, kind: &str, service: Option<&str>, message: String) {
        if let Some(shared) = self.shared.upgrade() {
            shared.metrics.cluster_event(kind);
        }
        let mut ev = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        ev.push(ClusterEvent {
            at_ms: berth_cluster::now_ms(),
            kind: kind.to_string(),
            service: service.map(str::to_string),
            message,
        });
        let excess = ev.len().saturating_sub(200);
        ev.drain(..excess);
    }

    /// A start guard for this node's current lease, or why starts are refused now.
    pub fn guard(&self, why: &str) -> Result<EtcdGuard, String> {
        let h = *self.health.borrow();
        if h.state != LeaseState::Held || h.lease == 0 {
            return Err(format!(
                "node {} has lost its lease in cluster {}: no cluster start until it rejoins",
                self.node(),
                self.cfg.name
            ));
        }
        Ok(EtcdGuard::new(
            self.store.clone(),
            tokio::runtime::Handle::current(),
            why,
            Some(h.lease),
        ))
    }

    /// Whether the orchestrator may try to start `svc` now: once per view revision, and again
    /// after [`RETRY_START`] when nothing changed (a start refused by a slow etcd must not
    /// leave the service down until the next change).
    fn may_try(&self, svc: &str, revision: i64) -> bool {
        let mut a = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match a.get(svc) {
            Some((rev, at)) if *rev == revision && now.duration_since(*at) < RETRY_START => false,
            _ => {
                a.insert(svc.to_string(), (revision, now));
                true
            }
        }
    }

    /// Note that self-fencing stopped `svc` here.
    pub fn fence_stopped(&self, svc: &str) {
        self.fenced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(svc.to_string());
    }

    /// Note that `node` owns `svc` (the orchestrator's look at the view).
    fn saw_owner(&self, svc: &str, node: &str) {
        let mut owners = self
            .last_owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if owners.get(svc).is_none_or(|n| n != node) {
            owners.insert(svc.to_string(), node.to_string());
        }
    }

    /// The last owner of `svc` the orchestrator saw.
    fn last_owner(&self, svc: &str) -> Option<String> {
        self.last_owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(svc)
            .cloned()
    }

    /// Note a failed start here (this node leaves the candidates for [`FAILOVER_BACKOFF`]).
    pub fn start_failed(&self, svc: &str, why: &str) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(svc.to_string(), berth_cluster::now_ms());
        self.event(
            "start_failed",
            Some(svc),
            format!("start of {svc} failed on {}: {why}", self.node()),
        );
    }

    fn failed_recently(&self, svc: &str) -> Option<u64> {
        let map = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let at = *map.get(svc)?;
        let backoff = u64::try_from(FAILOVER_BACKOFF.as_millis()).unwrap_or(u64::MAX);
        (berth_cluster::now_ms().saturating_sub(at) < backoff).then_some(at)
    }

    /// The cluster rows of a service's status: `sync`, `hb`, and what the cluster says.
    pub fn decorate(&self, status: &mut ServiceStatus) {
        let view = self.view();
        let hb = self.health.borrow().hb(Instant::now());
        let svc = &status.name;
        let mine = view
            .nodes
            .get(self.node())
            .and_then(|n| n.record.services.get(svc))
            .map(|s| s.checksum.clone());
        let others: Vec<&String> = view
            .nodes
            .iter()
            .filter(|(n, _)| n.as_str() != self.node())
            .filter_map(|(_, n)| n.record.services.get(svc).map(|s| &s.checksum))
            .collect();
        let sync = match mine {
            Some(m) if others.iter().all(|o| **o == m) => Status::Up,
            Some(_) => Status::Warn,
            None => Status::NotApplicable,
        };
        let cluster = service_cluster(&view, svc);
        status.set_cluster(sync, hb, cluster);
    }

    /// `GET /cluster`.
    pub fn report(&self) -> ClusterReport {
        let view = self.view();
        let h = *self.health.borrow();
        let now = berth_cluster::now_ms();
        let services = view
            .services()
            .into_iter()
            .map(|s| {
                let c = service_cluster(&view, &s);
                (s, c)
            })
            .collect();
        ClusterReport {
            cluster: self.cfg.name.clone(),
            node: self.node().to_string(),
            lease: format!("{:x}", h.lease),
            hb: h.hb(Instant::now()),
            last_renewal_age_ms: h.last_ack.elapsed().as_millis(),
            nodes: view
                .nodes
                .iter()
                .map(|(n, live)| {
                    (
                        n.clone(),
                        NodeReport {
                            version: live.record.version.clone(),
                            listen: live.record.listen.clone(),
                            age_ms: now.saturating_sub(live.record.updated_ms),
                        },
                    )
                })
                .collect(),
            services,
            events: self
                .events
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// What the cluster says of `svc`.
pub fn service_cluster(view: &ClusterView, svc: &str) -> ServiceCluster {
    let owner = view.owners.get(svc);
    ServiceCluster {
        owner: owner.map(|o| o.record.node.clone()),
        token: owner.map(|o| o.token),
        since_ms: owner.map(|o| o.record.since_ms),
        frozen: view.frozen.contains(svc),
        nodes: view
            .nodes
            .iter()
            .filter_map(|(n, live)| {
                live.record.services.get(svc).map(|s| {
                    (
                        n.clone(),
                        NodeCell {
                            avail: s.avail,
                            overall: s.overall,
                        },
                    )
                })
            })
            .collect(),
    }
}

/// The node record from svcd's current tree and configs.
fn node_record(shared: &Shared, since_ms: u64, cluster: Option<&Cluster>) -> NodeRecord {
    let settings = shared.settings();
    let mut services = BTreeMap::new();
    for (name, loaded) in shared.configs() {
        let st = shared.tree.get(&name);
        let (avail, overall) = st.map_or((Status::Undef, Status::Undef), |s| (s.avail, s.overall));
        let (valid, nodes, sum) = match &loaded {
            Ok(cfg) => (
                true,
                cfg.settings.nodes.clone(),
                std::fs::read(&cfg.source)
                    .map(|b| berth_cluster::file_checksum(&b))
                    .unwrap_or_default(),
            ),
            Err(_) => (false, Vec::new(), String::new()),
        };
        let failed = cluster.and_then(|c| c.failed_recently(&name));
        services.insert(
            name,
            ServiceSummary {
                avail,
                overall,
                checksum: sum,
                // A node whose start failed lately is no candidate: it says so as "not valid".
                valid: valid && failed.is_none(),
                nodes,
            },
        );
    }
    NodeRecord {
        name: settings.nodename.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen: settings.listen.to_string(),
        since_ms,
        updated_ms: berth_cluster::now_ms(),
        services,
    }
}

/// Join the cluster (retrying until etcd answers) and run the cluster tasks. Returns once the
/// cluster handle is in `shared`.
pub async fn start(shared: Arc<Shared>, cfg: ClusterConfig) {
    let nodename = shared.settings().nodename.clone();
    let ttl = cfg.lease_ttl;
    // Every request is bounded well inside the lease (renewals have their own ttl/5 bound:
    // see berth_cluster::lease).
    let timeout = (ttl / 3).max(Duration::from_millis(500));
    let since_ms = berth_cluster::now_ms();
    let lease_file = shared.paths.var_dir.join("cluster.lease");
    let mut warned = false;
    let (store, keeper, health, record_tx) = loop {
        let attempt = async {
            let store = Store::connect(&cfg, &nodename, timeout).await?;
            let (record_tx, record_rx) = watch::channel(node_record(&shared, since_ms, None));
            let (keeper, health) =
                LeaseKeeper::start(store.clone(), ttl, lease_file.clone(), record_rx).await?;
            Ok::<_, ClusterError>((store, keeper, health, record_tx))
        };
        match attempt.await {
            Ok(x) => break x,
            Err(e) => {
                if !warned {
                    warn!("cannot join cluster {} yet: {e}; retrying", cfg.name);
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let view = match store.snapshot().await {
        Ok(v) => v,
        Err(e) => {
            warn!("first read of the cluster failed: {e}; the watch will fill it");
            ClusterView::default()
        }
    };
    info!(
        "joined cluster {} as {nodename} (lease {:x}, ttl {}s): {} node(s) alive",
        cfg.name,
        health.borrow().lease,
        ttl.as_secs(),
        view.nodes.len()
    );
    let cluster = Arc::new(Cluster {
        store,
        cfg,
        health,
        view: RwLock::new(view),
        record: record_tx,
        started: Instant::now(),
        handled: Mutex::new(HashSet::new()),
        started_tokens: Mutex::new(HashSet::new()),
        failed: Mutex::new(BTreeMap::new()),
        events: Mutex::new(Vec::new()),
        shared: Arc::downgrade(&shared),
        changed: tokio::sync::Notify::new(),
        fenced: Mutex::new(BTreeSet::new()),
        attempts: Mutex::new(BTreeMap::new()),
        last_owners: Mutex::new(BTreeMap::new()),
    });
    if shared.cluster.set(cluster.clone()).is_err() {
        return;
    }
    // A resumed lease (svcd restarted, or the node rebooted within the TTL) may still carry
    // ownerships of services that do not run here any more: give those up, so the orchestrator
    // places them again rather than leaving them down under a live owner.
    let me = nodename.clone();
    for (svc, _) in owned_here(&cluster.view(), &me)
        .into_iter()
        .map(|s| (s, ()))
    {
        let down = shared
            .tree
            .get(&svc)
            .is_some_and(|st| matches!(st.avail, Status::Down | Status::NotApplicable));
        if down {
            warn!("{svc}: owned by {me} but not running here (svcd restarted): giving it up");
            cluster.event(
                "released",
                Some(&svc),
                format!("{svc} owned by {me} but down here after a restart of svcd: released"),
            );
            release_if_mine(&cluster, &svc).await;
        }
    }
    tokio::spawn(keeper.run());
    tokio::spawn(ack_loop(shared.clone(), cluster.clone()));
    tokio::spawn(watch_loop(cluster.clone()));
    tokio::spawn(fence_loop(shared.clone(), cluster.clone()));
    tokio::spawn(orchestrate_loop(shared, cluster));
}

/// Write every acknowledged renewal to `<var>/cluster.ack` for the fencing watchdog, and start
/// the watchdog once the first one is there.
async fn ack_loop(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let path = crate::watchdog::ack_path(&shared.paths);
    let mut health = cluster.health.clone();
    let mut spawned = false;
    let mut last = *health.borrow();
    loop {
        let h = *health.borrow_and_update();
        if h.state != last.state || h.lease != last.lease {
            match h.state {
                LeaseState::Lost => cluster.event(
                    "lease_lost",
                    None,
                    format!("lease {:x} lost: not renewed within the TTL", h.lease),
                ),
                LeaseState::Held => cluster.event(
                    "rejoined",
                    None,
                    format!("rejoined the cluster with lease {:x}", h.lease),
                ),
            }
        }
        last = h;
        if h.state == LeaseState::Held {
            let age = u64::try_from(h.last_ack.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let ack = crate::watchdog::Ack {
                lease: h.lease,
                mono_ns: crate::watchdog::mono_ns().saturating_sub(age),
                ttl: h.ttl,
                pid: std::process::id(),
            };
            if let Err(e) = ack.write(&path) {
                warn!("cannot write {}: {e}", path.display());
            } else if !spawned {
                crate::watchdog::spawn(&shared.paths);
                spawned = true;
            }
        }
        if health.changed().await.is_err() {
            return;
        }
    }
}

/// Keep the view current from one watch of the cluster's prefix; on any error, read it whole
/// again and watch from there.
async fn watch_loop(cluster: Arc<Cluster>) {
    let keys = cluster.store.keys().clone();
    loop {
        let from = cluster
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revision
            + 1;
        let mut client = cluster.store.client();
        let opts = WatchOptions::new().with_prefix().with_start_revision(from);
        let watched = cluster
            .store
            .bounded("watch the cluster", client.watch(keys.root(), Some(opts)))
            .await;
        let mut stream = match watched {
            Ok(w) => w,
            Err(e) => {
                warn!("{e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                resync(&cluster).await;
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    if resp.canceled() || resp.compact_revision() > 0 {
                        break;
                    }
                    let rev = resp.header().map_or(0, |h| h.revision());
                    let mut view = cluster.view.write().unwrap_or_else(PoisonError::into_inner);
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        match ev.event_type() {
                            EventType::Put => view.apply_put(&keys, kv),
                            EventType::Delete => {
                                if let Ok(k) = kv.key_str() {
                                    view.apply_delete(&keys, k, rev);
                                }
                            }
                        }
                    }
                    view.revision = view.revision.max(rev);
                    drop(view);
                    cluster.changed.notify_one();
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("cluster watch ended: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        resync(&cluster).await;
    }
}

async fn resync(cluster: &Cluster) {
    if let Ok(v) = cluster.store.snapshot().await {
        *cluster.view.write().unwrap_or_else(PoisonError::into_inner) = v;
    }
}

/// Stop every owned service before the lease can expire, when it is not renewed in time.
async fn fence_loop(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let mut health = cluster.health.clone();
    let mut fenced_for: Option<i64> = None;
    loop {
        let h = *health.borrow_and_update();
        if h.state == LeaseState::Held
            && fenced_for == Some(h.lease)
            && Instant::now() < h.fence_at()
        {
            // Renewed again in time: nothing was stopped for nothing (the stop already ran).
            fenced_for = None;
        }
        let wait = tokio::time::sleep_until(h.fence_at());
        tokio::select! {
            changed = health.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = wait => {}
        }
        let h = *health.borrow();
        if Instant::now() < h.fence_at() || fenced_for == Some(h.lease) {
            continue;
        }
        fenced_for = Some(h.lease);
        let left = h.deadline().saturating_duration_since(Instant::now());
        let deadline_ms = berth_cluster::now_ms() + u64::try_from(left.as_millis()).unwrap_or(0);
        let msg = format!(
            "lease {:x} not renewed for {}ms: stopping this node's cluster services before the \
             deadline {} (in {}ms)",
            h.lease,
            h.last_ack.elapsed().as_millis(),
            berth_cluster::format_ms_precise(deadline_ms),
            left.as_millis()
        );
        error!("{msg}");
        cluster.event("fence_stop", None, msg.clone());
        for (name, tx) in shared.workers() {
            if tx
                .send(Msg::Cluster(ClusterOp::FenceStop(msg.clone())))
                .await
                .is_err()
            {
                warn!("{name}: its worker is gone: cannot stop it");
            }
        }
        // At the deadline, what still runs decides `split_action`.
        tokio::time::sleep_until(h.deadline()).await;
        loop {
            let now = *health.borrow();
            if now.lease == h.lease
                && now.state == LeaseState::Held
                && Instant::now() < now.fence_at()
            {
                break; // renewed after all
            }
            let running: Vec<String> = shared
                .tree
                .all()
                .iter()
                .filter(|s| {
                    !matches!(
                        s.avail,
                        Status::Down | Status::NotApplicable | Status::Undef
                    )
                })
                .map(|s| s.name.clone())
                .collect();
            match split_step(cluster.cfg.split_action, &running) {
                SplitStep::Done => break,
                SplitStep::KeepStopping => {
                    let msg = format!(
                        "past the lease deadline and still running here: {} (split_action = stop: still stopping)",
                        running.join(", ")
                    );
                    error!("{msg}");
                    cluster.event("split_stop", None, msg.clone());
                    for name in &running {
                        if let Some(tx) = shared.worker(name) {
                            let _ = tx
                                .send(Msg::Cluster(ClusterOp::FenceStop(msg.clone())))
                                .await;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                SplitStep::Sysrq(c) => {
                    error!(
                        "past the lease deadline and still running here: {}: split_action = {:?}: sysrq {}",
                        running.join(", "),
                        cluster.cfg.split_action,
                        c as char
                    );
                    if let Err(e) = sysrq(c) {
                        error!("sysrq {} failed: {e}", c as char);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // Wait for a change (renewal or loss) before looking again.
        if health.changed().await.is_err() {
            return;
        }
    }
}

/// What a node does at its lease deadline with services still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitStep {
    /// Nothing runs: done.
    Done,
    /// `split_action = stop`: keep stopping, logging an error each time.
    KeepStopping,
    /// `crash` / `reboot`: the kernel's sysrq (`c` crash, `b` reboot at once).
    Sysrq(u8),
}

/// The `split_action` decision: the seam the tests check (a sysrq is never sent by a test).
pub fn split_step(action: berth_model::config::SplitAction, running: &[String]) -> SplitStep {
    use berth_model::config::SplitAction;
    if running.is_empty() {
        return SplitStep::Done;
    }
    match action {
        SplitAction::Stop => SplitStep::KeepStopping,
        SplitAction::Crash => SplitStep::Sysrq(b'c'),
        SplitAction::Reboot => SplitStep::Sysrq(b'b'),
    }
}

/// The documented last resort: `/proc/sysrq-trigger`.
fn sysrq(c: u8) -> std::io::Result<()> {
    std::fs::write("/proc/sysrq-trigger", [c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::config::SplitAction;

    /// A failover's line in the service's log names the node it comes from, and whether that
    /// node's lease expired (gone from the view) or it gave the service up (still there).
    #[test]
    fn start_reasons_name_the_last_owner() {
        let mut view = ClusterView::default();
        view.nodes.insert(
            "n2".into(),
            berth_cluster::view::LiveNode {
                record: berth_cluster::NodeRecord {
                    name: "n2".into(),
                    version: String::new(),
                    listen: String::new(),
                    since_ms: 0,
                    updated_ms: 0,
                    services: BTreeMap::new(),
                },
                lease: 7,
            },
        );
        assert_eq!(
            start_reason("failover", Some("n1"), &view, "n3"),
            "failover from n1: its lease expired (the node left the cluster); n3 is the first fit node"
        );
        assert_eq!(
            start_reason("failover", Some("n2"), &view, "n3"),
            "failover from n2: it gave the service up; n3 is the first fit node"
        );
        assert_eq!(
            start_reason("orchestrate", None, &view, "n3"),
            "orchestrate: no node owns it yet; n3 is the first fit node"
        );
    }

    #[test]
    fn split_action_decision() {
        let none: Vec<String> = Vec::new();
        let some = vec!["web".to_string()];
        assert_eq!(split_step(SplitAction::Reboot, &none), SplitStep::Done);
        assert_eq!(
            split_step(SplitAction::Stop, &some),
            SplitStep::KeepStopping
        );
        assert_eq!(
            split_step(SplitAction::Crash, &some),
            SplitStep::Sysrq(b'c')
        );
        assert_eq!(
            split_step(SplitAction::Reboot, &some),
            SplitStep::Sysrq(b'b')
        );
    }

    #[test]
    fn fast_stop_drops_the_graceful_waits() {
        let cfg = berth_model::ServiceConfig::parse(
            std::path::Path::new("/etc/berth/services/web.toml"),
            "[fs.1]\ndev = \"/dev/sdb\"\nmnt = \"/srv\"\ntype = \"ext4\"\nstop_timeout = \"30s\"\n\n\
             [container.1]\nrun_image = \"busybox\"\nstop_timeout = \"60s\"\n",
        )
        .unwrap();
        let fast = fast_stop_config(&cfg);
        for r in &fast.resources {
            match &r.spec {
                berth_model::config::Spec::Fs(f) => {
                    assert_eq!(f.stop_timeout, Duration::from_secs(1))
                }
                berth_model::config::Spec::Container(c) => {
                    assert_eq!(c.stop_timeout, Duration::ZERO)
                }
                _ => {}
            }
        }
    }
}

/// Act on the view: publish this node's record, run intents, start what is ours to start.
async fn orchestrate_loop(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let since_ms = cluster.record.borrow().since_ms;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ORCHESTRATE_EVERY) => {}
            _ = cluster.changed.notified() => {}
        }
        let rec = node_record(&shared, since_ms, Some(&cluster));
        cluster.record.send_if_modified(|old| {
            if old.services == rec.services && old.listen == rec.listen {
                return false;
            }
            *old = rec;
            true
        });
        let h = *cluster.health.borrow();
        if h.state != LeaseState::Held || Instant::now() >= h.fence_at() {
            continue;
        }
        let view = cluster.view();
        let me = cluster.node().to_string();
        let ready = cluster.started.elapsed() >= cluster.cfg.ready_period;
        for (name, loaded) in shared.configs() {
            let Ok(cfg) = loaded else { continue };
            let Some(tx) = shared.worker(&name) else {
                continue;
            };
            let owner = view.owners.get(&name);
            if let Some(o) = owner {
                cluster.saw_owner(&name, &o.record.node);
            }
            // 0. Self-fencing stopped it, and the lease survived after all (an etcd election
            // outlasted the fencing point): nobody else can have taken it. The orchestrator's
            // services are put back here; the others are given up, stopped.
            let was_fenced = cluster
                .fenced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            if was_fenced {
                match owner {
                    Some(o) if o.record.node == me && o.lease == h.lease => {
                        let keep = cfg.settings.orchestrate != Orchestrate::No
                            && !view.frozen.contains(&name)
                            && view.targets.get(&name) != Some(&Target::Stopped);
                        if keep {
                            info!("{name}: the lease survived the fencing: starting it again here");
                            cluster.event(
                                "fence_recovery",
                                Some(&name),
                                format!("{name} back on {me}: the lease survived"),
                            );
                            let _ = tx
                                .send(Msg::Cluster(ClusterOp::Start {
                                    why: "fence recovery".to_string(),
                                    reason: "fence recovery: the lease survived the fencing"
                                        .to_string(),
                                    intent: None,
                                }))
                                .await;
                        } else {
                            info!(
                                "{name}: stopped by the fencing, the lease survived: giving it up"
                            );
                            release_if_mine(&cluster, &name).await;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            // 1. A relocation away from here.
            if let Some(intent) = view.intents.get(&name)
                && intent.from == me
                && owner.is_some_and(|o| o.record.node == me && o.token == intent.token)
                && first_time(&cluster.handled, intent.id.clone())
            {
                info!("{name}: switch to {} asked by {}", intent.to, intent.by);
                let _ = tx
                    .send(Msg::Cluster(ClusterOp::SwitchOut(intent.clone())))
                    .await;
                continue;
            }
            // 2. Handed to this node (a switch): start it, once per ownership.
            if let Some(o) = owner
                && o.record.node == me
                && o.lease == h.lease
                && o.record.why.starts_with("switch")
                && first_time(&cluster.started_tokens, (name.clone(), o.token))
            {
                let intent = view.intents.get(&name).filter(|i| i.to == me).cloned();
                let reason = match &intent {
                    Some(i) => format!("{}: handed to {me}, asked by {}", o.record.why, i.by),
                    None => format!("{}: handed to {me}", o.record.why),
                };
                let _ = tx
                    .send(Msg::Cluster(ClusterOp::Start {
                        why: o.record.why.clone(),
                        reason,
                        intent,
                    }))
                    .await;
                continue;
            }
            // 3. The orchestrator: nobody owns it, and it is ours to start.
            if owner.is_some()
                || cfg.settings.orchestrate == Orchestrate::No
                || view.frozen.contains(&name)
                || view.intents.contains_key(&name)
                || !ready
            {
                continue;
            }
            let target = view.targets.get(&name).copied();
            let wanted = match (cfg.settings.orchestrate, target) {
                (_, Some(Target::Stopped)) => false,
                (Orchestrate::Start, None) => true,
                (Orchestrate::Ha, None | Some(Target::Started)) => true,
                _ => false,
            };
            if !wanted {
                continue;
            }
            // This node's own recent failure counts at once, before its record says so.
            let candidates: Vec<String> = view
                .candidates(&name, &cfg.settings.nodes)
                .into_iter()
                .filter(|n| *n != me || cluster.failed_recently(&name).is_none())
                .collect();
            if candidates.first().map(String::as_str) != Some(me.as_str()) {
                continue;
            }
            let why = if target == Some(Target::Started) {
                "failover"
            } else {
                "orchestrate"
            };
            if cluster.may_try(&name, view.revision) {
                info!("{name}: {why}: {me} is the first fit node, starting");
                cluster.event(why, Some(&name), format!("{me} takes {name} ({why})"));
                let reason = start_reason(why, cluster.last_owner(&name).as_deref(), &view, &me);
                let _ = tx
                    .send(Msg::Cluster(ClusterOp::Start {
                        why: why.to_string(),
                        reason,
                        intent: None,
                    }))
                    .await;
            }
        }
    }
}

fn first_time<T: std::hash::Hash + Eq>(set: &Mutex<HashSet<T>>, key: T) -> bool {
    set.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key)
}

/// Publishes the progress lines of an intent for the `svc switch` that waits on it.
#[derive(Debug)]
pub struct IntentLog {
    store: Store,
    intent: Intent,
    seq: std::sync::atomic::AtomicU64,
    runtime: tokio::runtime::Handle,
}

impl IntentLog {
    /// Lines of `intent`, written from this node.
    pub fn new(store: Store, intent: Intent) -> IntentLog {
        IntentLog {
            store,
            intent,
            seq: std::sync::atomic::AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Publish one line (and log it here).
    pub async fn line(&self, line: String, done: Option<&str>) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rec = LogLine {
            node: self.store.node().to_string(),
            line,
            done: done.map(str::to_string),
        };
        if let Err(e) = self
            .store
            .put_log(&self.intent.id, seq, &rec, self.intent.lease)
            .await
        {
            warn!("cannot publish a line of intent {}: {e}", self.intent.id);
        }
    }

    /// The runtime handle (for lines written from blocking threads).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }
}

/// Every service name with a worker, for the fence stop.
pub fn owned_here(view: &ClusterView, node: &str) -> BTreeSet<String> {
    view.owners
        .iter()
        .filter(|(_, o)| o.record.node == node)
        .map(|(s, _)| s.clone())
        .collect()
}

/// Give up this node's ownership of `svc`, if it has it (retried).
pub async fn release_if_mine(cluster: &Cluster, svc: &str) {
    cluster.store.release_if_mine(svc).await;
}

/// The service as self-fencing stops it: no graceful waits. Containers get docker's shortest
/// stop (1 s, then SIGKILL), filesystems a 1 s bound (holders get TERM, then KILL after 0.2 s).
pub fn fast_stop_config(cfg: &berth_model::ServiceConfig) -> berth_model::ServiceConfig {
    use berth_model::config::Spec;
    let mut fast = cfg.clone();
    for r in &mut fast.resources {
        match &mut r.spec {
            Spec::Container(c) => c.stop_timeout = Duration::ZERO,
            Spec::Fs(f) => f.stop_timeout = f.stop_timeout.min(Duration::from_secs(1)),
            Spec::Ip(_) | Spec::Vg(_) => {}
        }
    }
    fast
}
