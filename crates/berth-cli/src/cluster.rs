//! `svc` in a cluster: the start guard, the ownership after an action, the `hb` and `sync` rows,
//! cluster-wide freeze, `switch` / `takeover` / `giveback` (through an intent in etcd that the
//! nodes' svcd act on) and `svc mon`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use berth_cluster::files::{FileError, FileFormat, StoredFile};
use berth_cluster::{ClusterView, Done, EtcdGuard, Intent, IntentAction, OwnerWhy, Store, Target};
use berth_engine::load::node_config;
use berth_manual::{out, outln};
use berth_model::Status;
use berth_model::config::{ClusterConfig, Flex};
use berth_model::order::Action;
use berth_model::paths::Paths;
use berth_model::status::ServiceStatus;

/// How long a read of the cluster may take before `print status` gives up on it.
const READ_TIMEOUT: Duration = Duration::from_millis(1500);

/// The CLI's handle on the cluster.
pub struct ClusterCli {
    rt: tokio::runtime::Runtime,
    store: Store,
    cfg: ClusterConfig,
    paths: Paths,
}

impl std::fmt::Debug for ClusterCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCli")
            .field("store", &self.store)
            .finish()
    }
}

/// The action recipe's view of the cluster (the same recipe as svcd's).
impl berth_engine::recipe::ClusterSide for ClusterCli {
    fn guard(&self, why: &str) -> Result<Box<dyn berth_engine::StartGuard + '_>, String> {
        Ok(Box::new(ClusterCli::guard(self, why)))
    }

    fn after_action(&self, svc: &str, action: Action, whole: bool, ok: bool) {
        ClusterCli::after_action(self, svc, action, whole, ok);
    }

    fn set_frozen(&self, svc: &str, frozen: bool) -> Result<(), String> {
        self.rt
            .block_on(self.store.set_frozen(svc, frozen))
            .map_err(|e| e.to_string())
    }
}

impl ClusterCli {
    /// The cluster of this node, `None` without `[cluster]` in node.toml.
    pub fn open(paths: &Paths, nodename: &str) -> anyhow::Result<Option<ClusterCli>> {
        let node = node_config(paths)?;
        let Some(cfg) = node.cluster else {
            return Ok(None);
        };
        // One worker thread: the engine's start guard runs `Handle::block_on` from this thread,
        // which cannot drive a current-thread runtime's I/O itself.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        let store = rt.block_on(Store::connect(&cfg, nodename, READ_TIMEOUT))?;
        Ok(Some(ClusterCli {
            rt,
            store,
            cfg,
            paths: paths.clone(),
        }))
    }

    /// The start guard: the owner key is taken under this node's lease (held by its svcd).
    pub fn guard(&self, why: &str) -> EtcdGuard {
        EtcdGuard::new(
            self.store.clone(),
            self.rt.handle().clone(),
            OwnerWhy::Action(why.to_string()),
            None,
        )
        .with_paths(self.paths.clone())
    }

    /// After an action: a whole start keeps the service started, a whole stop leaves it stopped
    /// and gives the ownership up, a failed whole start gives it up.
    pub fn after_action(&self, svc: &str, action: Action, whole: bool, ok: bool) {
        self.rt
            .block_on(self.store.after_action(svc, action, whole, ok));
    }

    /// The cluster's copy of a service file.
    pub fn get_file(&self, svc: &str) -> anyhow::Result<Option<StoredFile>> {
        Ok(self.rt.block_on(self.store.get_file(svc))?)
    }

    /// Write a service file through etcd, comparing on the revision `read` (0: a create).
    pub fn put_file(
        &self,
        svc: &str,
        format: FileFormat,
        bytes: &[u8],
        read: i64,
    ) -> Result<i64, FileError> {
        self.rt
            .block_on(self.store.put_file(svc, format, bytes, read))
    }

    /// Delete a service file from etcd, comparing on the revision `read`.
    pub fn delete_file(&self, svc: &str, read: i64) -> Result<i64, FileError> {
        self.rt.block_on(self.store.delete_file(svc, read))
    }

    /// The service's owner and fencing token, if any node owns it.
    pub fn owner(&self, svc: &str) -> anyhow::Result<Option<(String, i64)>> {
        Ok(self
            .rt
            .block_on(self.store.owner(svc))?
            .map(|o| (o.record.node, o.token)))
    }

    /// The address a node's record publishes (its `address`, else the host of its `listen`);
    /// `None` when the node has no record (its svcd does not run).
    pub fn address(&self, node: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .rt
            .block_on(self.store.node_record(node))?
            .map(|(r, _)| {
                if r.address.is_empty() {
                    r.listen
                        .parse::<std::net::SocketAddr>()
                        .map(|a| a.ip().to_string())
                        .unwrap_or(r.listen)
                } else {
                    r.address
                }
            }))
    }

    /// Record a sync attempt in etcd.
    pub fn put_sync_record(
        &self,
        svc: &str,
        rid: &str,
        target: &str,
        rec: &berth_model::sync::SyncRecord,
    ) -> anyhow::Result<()> {
        Ok(self
            .rt
            .block_on(self.store.put_sync_record(svc, rid, target, rec))?)
    }

    /// The whole cluster, read now.
    pub fn snapshot(&self) -> anyhow::Result<ClusterView> {
        Ok(self.rt.block_on(self.store.snapshot())?)
    }

    /// Set `hb`, `sync` and the cluster's view on these statuses (one read of etcd). When etcd
    /// cannot be read, `hb` says so (warn) and nothing else changes.
    pub fn decorate(&self, statuses: &mut [ServiceStatus], files: &[(String, Vec<u8>)]) {
        let read = self.rt.block_on(async {
            let view = self.store.snapshot().await?;
            let hb = match view.nodes.get(self.store.node()) {
                None => Status::Down,
                Some(live) => match self.store.lease_ttl(live.lease).await? {
                    Some(left) if left * 2 >= self.cfg.ttl_secs() => Status::Up,
                    Some(_) => Status::Warn,
                    None => Status::Down,
                },
            };
            Ok::<_, berth_cluster::ClusterError>((view, hb))
        });
        let (view, hb) = match read {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("{e}");
                for st in statuses.iter_mut() {
                    st.hb = Status::Warn;
                    if st.error.is_none() {
                        st.overall = st.overall.merge(Status::Warn);
                    }
                }
                return;
            }
        };
        for st in statuses.iter_mut() {
            let mine = files
                .iter()
                .find(|(n, _)| *n == st.name)
                .map(|(_, b)| berth_cluster::file_checksum(b));
            let sync = view.sync(self.store.node(), &st.name, mine.as_deref());
            // svcd alone knows a conflict here: this shows the nodes behind.
            st.config_sync = view.config_row(&st.name, self.store.node(), None);
            st.set_cluster(sync, hb, view.service_cluster(&st.name));
        }
    }

    /// The `drp_active` mark this node honours for `svc` (its own file's, else etcd's): what the
    /// sync sender checks (a mark written by another node refuses the send).
    pub fn drp_active(&self, svc: &str) -> anyhow::Result<Option<berth_model::drp::DrpMark>> {
        Ok(self.rt.block_on(self.store.drp_active(&self.paths, svc))?)
    }

    /// Whether etcd answers now.
    pub fn reachable(&self) -> anyhow::Result<()> {
        Ok(self.rt.block_on(self.store.reachable())?)
    }

    /// `svc node forget NODE`: remove a dead node from the members.
    pub fn forget(&self, node: &str) -> anyhow::Result<()> {
        self.rt.block_on(self.store.forget(node))?;
        outln!(
            "{node}: no longer a member of cluster {}",
            self.store.cluster()
        );
        Ok(())
    }

    /// `svc mon`: the fleet grid (or its JSON), once or every second.
    pub fn mon(&self, json: bool, color: bool, watch: bool) -> anyhow::Result<()> {
        loop {
            let fleet = self.snapshot()?.fleet();
            if json {
                outln!("{}", serde_json::to_string_pretty(&fleet)?);
            } else {
                if watch {
                    out!("\x1b[H\x1b[2J");
                }
                out!("{}", berth_model::fleet::render_fleet(&fleet, color));
            }
            // `svc mon --watch | head`: nobody reads any more.
            if !watch || berth_manual::out::stdout_closed() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The first fit node of `svc`'s `nodes` (for giveback).
    pub fn first_fit(&self, svc: &str, nodes: &[String]) -> anyhow::Result<String> {
        let view = self.snapshot()?;
        view.candidates(svc, nodes)
            .into_iter()
            .next()
            .ok_or_else(|| {
                anyhow!(
                    "no node of {} is alive with a valid copy of {svc}",
                    nodes.join(", ")
                )
            })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        self.store.node()
    }

    /// Move `svc` to `to`: write an intent the owner's svcd acts on (stop, hand the owner key
    /// over in one transaction), print both nodes' lines as they come, wait for the target's
    /// svcd to report the service up, at most `timeout`.
    pub fn switch(&self, svc: &str, to: &str, timeout: Duration) -> anyhow::Result<()> {
        let view = self.snapshot()?;
        let Some(owner) = view.owners.get(svc).cloned() else {
            bail!("{svc} runs nowhere (nobody owns it): start it with `svc {svc} start` on {to}");
        };
        if owner.record.node == to {
            tracing::info!("{svc} already runs on {to} (fencing token {})", owner.token);
            return Ok(());
        }
        let Some(target) = view.nodes.get(to) else {
            bail!(
                "node {to} is not alive in cluster {} (no node key: its svcd is down or cut off); \
                 {svc} stays on {}",
                self.cfg.name,
                owner.record.node
            );
        };
        match target.record.services.get(svc) {
            Some(s) if s.valid => {}
            Some(_) => bail!(
                "{to} cannot run {svc}: its copy of the service file does not load there, or a start failed there lately; {svc} stays on {}",
                owner.record.node
            ),
            None => bail!(
                "{to} has no service file for {svc}; {svc} stays on {}",
                owner.record.node
            ),
        }
        if view.frozen.contains(svc) {
            bail!("{svc} is frozen: thaw it first (svc {svc} thaw)");
        }
        let secs = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2) + 5;
        let lease = self.rt.block_on(self.store.grant(secs))?;
        let intent = Intent {
            id: format!(
                "{:x}{:04x}",
                berth_cluster::now_ms(),
                std::process::id() & 0xffff
            ),
            action: IntentAction::Switch,
            to: to.to_string(),
            from: owner.record.node.clone(),
            token: owner.token,
            by: self.store.node().to_string(),
            lease,
        };
        let result = self.run_intent(svc, &intent, timeout);
        // The intent and its lines go with the lease.
        let _ = self.rt.block_on(self.store.revoke(lease));
        result
    }

    /// `svc SVC start --all` / `stop --all` of flex service `svc`: set its cluster-wide target to
    /// `goal` (every node's orchestrator acts on it), then print the instances up as they
    /// change until `goal` is reached (`stopped`: none up; `started`: `flex_target` up), at
    /// most `timeout`; an error names the nodes still up / how many are missing.
    pub fn flex_all(
        &self,
        svc: &str,
        goal: Target,
        flex: Flex,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let verb = match goal {
            Target::Started => "start",
            Target::Stopped => "stop",
        };
        if goal == Target::Started && self.snapshot()?.frozen.contains(svc) {
            bail!(
                "{svc} is frozen: the orchestrator starts no instance of it; thaw it first \
                 (svc {svc} thaw)"
            );
        }
        self.rt.block_on(self.store.set_target(svc, goal))?;
        tracing::info!(
            "{svc}: target {} cluster-wide (flex_target {})",
            goal.as_str(),
            flex.target
        );
        let started = Instant::now();
        let mut last: Option<Vec<String>> = None;
        loop {
            match self.snapshot() {
                Ok(view) => {
                    let p = berth_cluster::flex::all_progress(&view, svc, goal, flex);
                    if last.as_ref() != Some(&p.up) {
                        tracing::info!(
                            "{svc}: {} instance{} up{}{}",
                            p.up.len(),
                            if p.up.len() == 1 { "" } else { "s" },
                            if p.up.is_empty() { "" } else { ": " },
                            p.up.join(", ")
                        );
                        last = Some(p.up.clone());
                    }
                    if p.done {
                        return Ok(());
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
            if started.elapsed() > timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let up = last.unwrap_or_default();
        let secs = timeout.as_secs();
        match goal {
            Target::Stopped => bail!(
                "{verb} --all not done within {secs}s: an instance of {svc} is still up on {} \
                 (the target stays stopped: their orchestrator stops them)",
                up.join(", ")
            ),
            Target::Started => bail!(
                "{verb} --all not done within {secs}s: {} of flex_target {} instances of {svc} up \
                 ({}); see why the others are not with `svc mon`",
                up.len(),
                flex.target,
                if up.is_empty() {
                    "none".to_string()
                } else {
                    up.join(", ")
                }
            ),
        }
    }

    fn run_intent(&self, svc: &str, intent: &Intent, timeout: Duration) -> anyhow::Result<()> {
        if !self.rt.block_on(self.store.put_intent(svc, intent))? {
            bail!("a switch of {svc} is already under way: wait for it to end");
        }
        tracing::info!(
            "switch {svc} from {} to {} (fencing token {})",
            intent.from,
            intent.to,
            intent.token
        );
        let started = Instant::now();
        let mut seen = BTreeSet::new();
        let mut outcome: Option<Result<(), String>> = None;
        while outcome.is_none() {
            if started.elapsed() > timeout {
                break;
            }
            match self.rt.block_on(self.store.intent_lines(&intent.id)) {
                Ok(lines) => {
                    for (key, line) in lines {
                        if !seen.insert(key) {
                            continue;
                        }
                        tracing::info!("{}", line.line);
                        match line.done {
                            Some(Done::Up) if line.node == intent.to => outcome = Some(Ok(())),
                            Some(Done::Failed) => outcome = Some(Err(line.line.clone())),
                            Some(Done::Up | Done::Handed) | None => {}
                        }
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
            if outcome.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let now = self.snapshot().ok();
        let where_now = match now.as_ref().and_then(|v| v.owners.get(svc)) {
            Some(o) => format!(
                "{svc} is owned by {} (fencing token {})",
                o.record.node, o.token
            ),
            None => format!("{svc} is owned by nobody (stopped)"),
        };
        match outcome {
            Some(Ok(())) => {
                tracing::info!("{where_now}, up");
                Ok(())
            }
            Some(Err(why)) => Err(anyhow!("switch failed: {why}; {where_now}")),
            None => Err(anyhow!(
                "switch not done within {}s; {where_now}",
                timeout.as_secs()
            )),
        }
    }
}
