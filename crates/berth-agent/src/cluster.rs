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
//!
//! This module is the handle the rest of svcd holds (`Shared::cluster`); the tasks that join
//! the cluster and run it are in [`crate::orchestrator`], the steps a worker runs in
//! `worker::steps`, the decisions in [`berth_cluster::plan`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError, RwLock};

use berth_cluster::lease::LeaseState;
use berth_cluster::plan::{self, Event};
use berth_cluster::{
    ClusterError, ClusterView, Done, EtcdGuard, Intent, LeaseHealth, LogLine, NodeRecord, OwnerWhy,
    Store,
};
use berth_model::Status;
use berth_model::config::ClusterConfig;
use berth_model::status::{ServiceCluster, ServiceStatus};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::warn;

/// Counts the cluster's events (svcd's metrics).
pub struct EventCounter(pub Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for EventCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventCounter")
    }
}

/// What the cluster layer asks a service's worker (run by `worker::steps`).
#[derive(Debug)]
pub enum ClusterOp {
    /// Start the service here, through the ownership guard, if the decision still holds
    /// when the worker gets to it ([`plan::recheck`]).
    Start {
        /// The planner's decision.
        start: plan::Start,
        /// Tells the orchestrator the start ended, when dropped.
        ticket: Ticket,
    },
    /// Stop the service here and hand it to the intent's target.
    SwitchOut(Intent),
    /// Self-fencing stopped it, the lease survived, the orchestrator does not keep it: give
    /// the ownership up.
    GiveUp,
    /// The lease is about to be lost: stop the service now if it runs here (why, for the
    /// service's log file).
    FenceStop(String),
    /// Stop this node's instance of a flex service and give its slot up (the flex planner's
    /// [`berth_cluster::flex::FlexStep::Stop`]).
    FlexStop {
        /// The slot held here.
        slot: u32,
        /// Its token.
        token: i64,
        /// Why, for the service's log file.
        reason: String,
        /// Tells the orchestrator the stop ended, when dropped.
        ticket: Ticket,
    },
}

/// svcd's cluster state.
#[derive(Debug)]
pub struct Cluster {
    /// The etcd store.
    pub store: Store,
    /// `[cluster]` of node.toml.
    pub cfg: ClusterConfig,
    /// The lease's health.
    pub health: watch::Receiver<LeaseHealth>,
    pub(crate) view: RwLock<ClusterView>,
    /// The node's paths (the start guard reads its own `drp_active` marks there).
    pub(crate) paths: berth_model::paths::Paths,
    pub(crate) record: watch::Sender<NodeRecord>,
    pub(crate) started: Instant,
    /// Events for `GET /cluster`, newest last.
    pub(crate) events: Mutex<Vec<ClusterEvent>>,
    /// Counts the events.
    pub(crate) counter: EventCounter,
    /// Told when the view changed (the orchestrator acts at once, not at its next tick).
    pub(crate) changed: tokio::sync::Notify,
    /// What workers tell the orchestrator (whose memory is its own: see [`plan::Memory`]).
    pub(crate) tell: mpsc::UnboundedSender<Event>,
    /// Takes the owner keys of this node's starts in batches.
    pub(crate) taker: berth_cluster::Taker,
    /// The service files whose copy here is in conflict with the cluster's ([`crate::files`]).
    pub(crate) conflicts: Conflicts,
}

/// A start the orchestrator sent to a worker: when it is dropped (the start ran, failed, was
/// dropped as stale, or never reached the worker), the orchestrator hears that it ended.
#[derive(Debug)]
pub struct Ticket {
    svc: String,
    tell: Option<mpsc::UnboundedSender<Event>>,
}

impl Ticket {
    /// A ticket for a start of `svc` sent by the orchestrator of `cluster`.
    pub fn new(cluster: &Cluster, svc: &str) -> Ticket {
        Ticket {
            svc: svc.to_string(),
            tell: Some(cluster.tell.clone()),
        }
    }

    /// The message never reached the worker: nothing to report.
    pub fn disarm(mut self) {
        self.tell = None;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(Event::StartEnded(std::mem::take(&mut self.svc)));
        }
    }
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
    /// A copy of the current view (for whole-cluster answers: `GET /cluster`).
    pub fn view(&self) -> ClusterView {
        self.with_view(ClusterView::clone)
    }

    /// Read the current view without copying it.
    pub fn with_view<R>(&self, f: impl FnOnce(&ClusterView) -> R) -> R {
        f(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether `svc` is frozen cluster-wide.
    pub fn is_frozen(&self, svc: &str) -> bool {
        self.with_view(|v| v.frozen.contains(svc))
    }

    /// This node's lease as the planner sees it: held, and not past the fencing point.
    pub fn plan_health(&self) -> plan::Health {
        let h = *self.health.borrow();
        plan::Health {
            held: h.state == LeaseState::Held && Instant::now() < h.fence_at(),
            lease: h.lease,
        }
    }

    pub(crate) fn node(&self) -> &str {
        self.store.node()
    }

    /// Log and keep an event.
    pub fn event(&self, kind: &str, service: Option<&str>, message: String) {
        (self.counter.0)(kind);
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
    pub fn guard(&self, why: OwnerWhy) -> Result<EtcdGuard, ClusterError> {
        let h = *self.health.borrow();
        if h.state != LeaseState::Held || h.lease == 0 {
            return Err(ClusterError::LeaseLost {
                node: self.node().to_string(),
                cluster: self.cfg.name.clone(),
            });
        }
        Ok(EtcdGuard::new(
            self.store.clone(),
            tokio::runtime::Handle::current(),
            why,
            Some(h.lease),
        )
        .with_paths(self.paths.clone())
        .batched(self.taker.clone()))
    }

    /// Note that self-fencing stopped `svc` here.
    pub fn fence_stopped(&self, svc: &str) {
        let _ = self.tell.send(Event::FenceStopped(svc.to_string()));
    }

    /// Note a failed start here (this node leaves the candidates for a while).
    pub fn start_failed(&self, svc: &str, why: &str) {
        let _ = self.tell.send(Event::StartFailed(svc.to_string()));
        self.event(
            "start_failed",
            Some(svc),
            format!("start of {svc} failed on {}: {why}", self.node()),
        );
    }

    /// The cluster rows of a service's status: `sync`, `hb`, and what the cluster says. Reads
    /// the view in place: the cost is the number of nodes, not of services.
    pub fn decorate(&self, status: &mut ServiceStatus) {
        let hb = self.health.borrow().hb(Instant::now());
        let me = self.node();
        let (sync, cluster, config) = self.with_view(|view| {
            let mine = view.published_checksum(me, &status.name);
            (
                view.sync(me, &status.name, mine),
                view.service_cluster(&status.name),
                view.config_row(&status.name, me, self.conflicts.get(&status.name)),
            )
        });
        status.config_sync = config;
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
                let c = view.service_cluster(&s);
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
    pub async fn line(&self, line: String, done: Option<Done>) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rec = LogLine {
            node: self.store.node().to_string(),
            line,
            done,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A start's ticket tells the orchestrator once that the start ended, whether the worker
    /// ran it or dropped it; a message that never reached the worker tells nothing.
    #[test]
    fn a_ticket_reports_the_end_of_its_start_unless_disarmed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        drop(Ticket {
            svc: "web".into(),
            tell: Some(tx.clone()),
        });
        assert_eq!(rx.try_recv().unwrap(), Event::StartEnded("web".into()));
        assert_eq!(rx.try_recv(), Err(mpsc::error::TryRecvError::Empty));
        Ticket {
            svc: "db".into(),
            tell: Some(tx),
        }
        .disarm();
        // Nothing was sent: the channel is only closed (the last sender went with the ticket).
        assert_eq!(rx.try_recv(), Err(mpsc::error::TryRecvError::Disconnected));
    }
}

/// The services whose copy here is in conflict with the cluster's: (local, etcd) checksums
/// (`files.rs` finds them, the status shows them).
#[derive(Debug, Default)]
pub struct Conflicts(Mutex<BTreeMap<String, (String, String)>>);

impl Conflicts {
    /// The conflict of `svc` here, if any.
    pub fn get(&self, svc: &str) -> Option<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(svc)
            .cloned()
    }

    /// Record (or clear) the conflict of `svc`; true when that changed it.
    pub(crate) fn set(&self, svc: &str, conflict: Option<(String, String)>) -> bool {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match conflict {
            Some(c) => all.insert(svc.to_string(), c.clone()) != Some(c),
            None => all.remove(svc).is_some(),
        }
    }
}
