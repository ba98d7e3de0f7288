//! svcd's cluster tasks: join the cluster, keep the lease's acknowledgements for the watchdog,
//! follow the view, fence before the deadline, and the orchestrator (one task, one memory:
//! decide with [`berth_cluster::plan`], then act).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_cluster::lease::LeaseState;
use berth_cluster::plan::{self, Event, Memory, Step};
use berth_cluster::{
    ClusterError, ClusterView, LeaseKeeper, NodeRecord, OwnerWhy, ServiceSummary, Store,
};
use berth_model::Status;
use berth_model::config::ClusterConfig;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::cluster::{Cluster, ClusterOp, EventCounter, Ticket, owned_here, release_if_mine};
use crate::mailbox::Msg;
use crate::state::Shared;

/// How often the orchestrator looks at the view even when nothing changed.
const ORCHESTRATE_EVERY: Duration = Duration::from_millis(500);

/// The checksums of the service files, read again only when a service's config changed
/// (a new `Arc`): the orchestrator's cycle does not read every file twice a second.
#[derive(Debug, Default)]
struct Checksums(BTreeMap<String, (usize, String)>);

impl Checksums {
    fn of(&mut self, name: &str, cfg: &Arc<berth_model::ServiceConfig>) -> String {
        let id = Arc::as_ptr(cfg) as usize;
        if let Some((at, sum)) = self.0.get(name)
            && *at == id
        {
            return sum.clone();
        }
        let sum = std::fs::read(&cfg.source)
            .map(|b| berth_cluster::file_checksum(&b))
            .unwrap_or_default();
        self.0.insert(name.to_string(), (id, sum.clone()));
        sum
    }
}

/// The node record from svcd's current tree and configs.
fn node_record(
    shared: &Shared,
    since_ms: u64,
    memory: Option<&Memory>,
    sums: &mut Checksums,
) -> NodeRecord {
    let settings = shared.settings();
    let mut services = BTreeMap::new();
    let now = berth_cluster::now_ms();
    let configs = shared.configs();
    sums.0.retain(|n, _| configs.iter().any(|(c, _)| c == n));
    for (name, loaded) in configs {
        let st = shared.tree.get(&name);
        let (avail, overall) = st.map_or((Status::Undef, Status::Undef), |s| (s.avail, s.overall));
        let (valid, nodes, sum, invalid) = match &loaded {
            Ok(cfg) => (true, cfg.settings.nodes.clone(), sums.of(&name, cfg), None),
            Err(e) => (
                false,
                Vec::new(),
                String::new(),
                Some(e.lines().next().unwrap_or_default().to_string()),
            ),
        };
        let flex = loaded
            .as_ref()
            .ok()
            .and_then(|cfg| berth_model::fleet::FleetFlex::of(&cfg.settings));
        let failed = memory.and_then(|m| m.failed_recently(&name, now));
        services.insert(
            name,
            ServiceSummary {
                avail,
                overall,
                checksum: sum,
                // A node whose start failed lately is no candidate: it says so as "not valid".
                valid: valid && failed.is_none(),
                nodes,
                drpnodes: loaded
                    .as_ref()
                    .map(|c| c.settings.drpnodes.clone())
                    .unwrap_or_default(),
                invalid,
                failed_ms: failed,
                flex,
            },
        );
    }
    NodeRecord {
        name: settings.nodename.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen: settings.listen.to_string(),
        address: settings.address.clone(),
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
            let first = node_record(&shared, since_ms, None, &mut Checksums::default());
            let (record_tx, record_rx) = watch::channel(first);
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
    let (tell, told) = mpsc::unbounded_channel();
    let taker = berth_cluster::Taker::spawn(store.clone(), &tokio::runtime::Handle::current());
    let cluster = Arc::new(Cluster {
        store,
        cfg,
        health,
        view: RwLock::new(view),
        paths: shared.paths.clone(),
        record: record_tx,
        started: Instant::now(),
        events: Mutex::new(Vec::new()),
        counter: {
            let weak = Arc::downgrade(&shared);
            EventCounter(Box::new(move |kind| {
                if let Some(shared) = weak.upgrade() {
                    shared.metrics.cluster_event(kind);
                }
            }))
        },
        changed: tokio::sync::Notify::new(),
        tell,
        taker,
        conflicts: crate::cluster::Conflicts::default(),
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
    spawn_keeper(keeper, cluster.cfg.clone(), nodename.clone(), timeout);
    tokio::spawn(ack_loop(shared.clone(), cluster.clone()));
    tokio::spawn(watch_loop(cluster.clone()));
    tokio::spawn(crate::files::follow(shared.clone(), cluster.clone()));
    tokio::spawn(fence_loop(shared.clone(), cluster.clone()));
    tokio::spawn(orchestrate_loop(shared, cluster, told));
}

/// Run the lease keeper on a thread of its own, with a one-thread runtime and its own
/// connection to etcd: renewals are then not late when the main runtime is busy (a thousand
/// services starting, big records to read). Where that cannot be set up, it runs on the main
/// runtime, on the first connection.
fn spawn_keeper(keeper: LeaseKeeper, cfg: ClusterConfig, nodename: String, timeout: Duration) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!("cannot make the lease keeper's runtime: {e}; it runs with the others");
            tokio::spawn(keeper.run());
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("svcd-lease".into())
        .spawn(move || {
            rt.block_on(async move {
                let keeper = match Store::connect(&cfg, &nodename, timeout).await {
                    Ok(store) => keeper.on(store),
                    Err(e) => {
                        warn!("the lease keeper's own etcd connection failed: {e}; it uses the first one");
                        keeper
                    }
                };
                keeper.run().await;
            });
        });
    if let Err(e) = spawned {
        error!("cannot start the lease keeper's thread: {e}");
    }
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

/// Keep the view current (berth-cluster's watch of the cluster's prefix).
async fn watch_loop(cluster: Arc<Cluster>) {
    let c = &*cluster;
    match c.store.follow(&c.view, &c.changed).await {}
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
                        Status::Down
                            | Status::NotApplicable
                            | Status::Undef
                            | Status::StdbyUp
                            | Status::StdbyDown
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

/// The orchestrator: one task, one memory. Each cycle publishes this node's record, then
/// decides ([`plan::plan`], no I/O), then acts: each step goes to its service's worker without
/// waiting (a full queue skips the step; the next cycle decides again on a fresher view).
async fn orchestrate_loop(
    shared: Arc<Shared>,
    cluster: Arc<Cluster>,
    mut told: mpsc::UnboundedReceiver<Event>,
) {
    let since_ms = cluster.record.borrow().since_ms;
    let me = cluster.node().to_string();
    let mut memory = Memory::default();
    let mut sums = Checksums::default();
    let mut rows = (Status::Undef, -1);
    let mut members: Option<Vec<String>> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ORCHESTRATE_EVERY) => {}
            _ = cluster.changed.notified() => {}
            ev = told.recv() => {
                if let Some(ev) = ev {
                    memory.apply(ev, berth_cluster::now_ms());
                }
            }
        }
        while let Ok(ev) = told.try_recv() {
            memory.apply(ev, berth_cluster::now_ms());
        }
        let rec = node_record(&shared, since_ms, Some(&memory), &mut sums);
        cluster.record.send_if_modified(|old| {
            if old.services == rec.services && old.listen == rec.listen {
                return false;
            }
            *old = rec;
            true
        });
        refresh_rows(&shared, &cluster, &mut rows);
        let now_members = cluster.with_view(ClusterView::member_list);
        if !now_members.is_empty() && members.as_ref() != Some(&now_members) {
            // `nodes = "*"` resolves from the members: keep the file loads read, then reload.
            match write_members(&shared.paths, &now_members) {
                Ok(()) => {
                    info!("cluster members: {}", now_members.join(", "));
                    crate::worker::reload_services(&shared);
                    members = Some(now_members);
                }
                Err(e) => warn!("{e}"),
            }
        }
        let health = cluster.plan_health();
        if !health.held {
            continue;
        }
        let configs = shared.configs();
        let loaded: Vec<(&str, &berth_model::ServiceConfig)> = configs
            .iter()
            .filter_map(|(n, l)| l.as_ref().ok().map(|c| (n.as_str(), &**c)))
            .collect();
        let inputs: Vec<plan::Config<'_>> = loaded
            .iter()
            .filter(|(_, cfg)| !cfg.settings.topology.is_flex())
            .map(|(name, cfg)| plan::Config {
                name,
                orchestrate: cfg.settings.orchestrate,
                nodes: &cfg.settings.nodes,
            })
            .collect();
        let now = plan::Now {
            ms: berth_cluster::now_ms(),
            ready: cluster.started.elapsed() >= cluster.cfg.ready_period,
        };
        let steps = cluster.with_view(|view| {
            memory.observe(view, &me, health);
            plan::plan(view, &me, health, &inputs, &memory, now)
        });
        for (name, step) in steps {
            if act(&shared, &cluster, &name, &step) {
                memory.sent(&name, &step);
            }
        }
        crate::flex::cycle(&shared, &cluster, &loaded, &mut memory, health, now);
    }
}

/// Write the members to [`berth_engine::load::members_file`] (temp file, fsync, rename).
fn write_members(paths: &berth_model::paths::Paths, members: &[String]) -> Result<(), String> {
    use std::io::Write as _;
    let path = berth_engine::load::members_file(paths);
    let tmp = path.with_extension("members.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        for m in members {
            writeln!(f, "{m}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Hand `step` to the worker of `name`, without waiting. False when it could not be handed
/// (no worker, or its queue is full).
fn act(shared: &Shared, cluster: &Cluster, name: &str, step: &Step) -> bool {
    let Some(tx) = shared.worker(name) else {
        return false;
    };
    let me = cluster.node();
    let op = match step {
        Step::Start(start) => {
            let ticket = Ticket::new(cluster, name);
            ClusterOp::Start {
                start: start.clone(),
                ticket,
            }
        }
        Step::SwitchOut(intent) => ClusterOp::SwitchOut(intent.clone()),
        Step::GiveUp => ClusterOp::GiveUp,
    };
    match tx.try_send(Msg::Cluster(op)) {
        Ok(()) => {}
        Err(e) => {
            if let Msg::Cluster(ClusterOp::Start { ticket, .. }) = e.into_inner() {
                ticket.disarm();
            }
            return false;
        }
    }
    match step {
        Step::Start(start) => match &start.why {
            OwnerWhy::Orchestrate | OwnerWhy::Failover => {
                info!(
                    "{name}: {}: {me} is the first fit node, starting",
                    start.why
                );
                cluster.event(
                    &start.why.to_string(),
                    Some(name),
                    format!("{me} takes {name} ({})", start.why),
                );
            }
            OwnerWhy::FenceRecovery => {
                info!("{name}: the lease survived the fencing: starting it again here");
                cluster.event(
                    "fence_recovery",
                    Some(name),
                    format!("{name} back on {me}: the lease survived"),
                );
            }
            OwnerWhy::Switch { .. } | OwnerWhy::Action(_) => {}
        },
        Step::SwitchOut(intent) => {
            info!("{name}: switch to {} asked by {}", intent.to, intent.by);
        }
        Step::GiveUp => {
            info!("{name}: stopped by the fencing, the lease survived: giving it up");
        }
    }
    true
}

/// Keep the cluster rows (`hb`, `sync`, the cluster's view) of the cached tree current when
/// the heartbeat or the view changed, without a check: `print status` from svcd's cache shows
/// what `--refresh` shows. Nothing to do while neither changed (an idle node).
fn refresh_rows(shared: &Shared, cluster: &Cluster, last: &mut (Status, i64)) {
    let now = (
        cluster.health.borrow().hb(Instant::now()),
        cluster.with_view(|v| v.revision),
    );
    if now == *last {
        return;
    }
    *last = now;
    for st in shared.tree.all() {
        let mut s = (*st).clone();
        cluster.decorate(&mut s);
        if s.hb != st.hb || s.sync != st.sync || s.cluster != st.cluster {
            if let Some(at) = shared.tree.checked(Some(&s.name)) {
                shared.tree.update_at(s, at);
            } else {
                shared.tree.update(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::config::SplitAction;

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
}
