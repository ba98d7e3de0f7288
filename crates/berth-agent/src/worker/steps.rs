//! The cluster's steps as a service's worker runs them, in one place: a start here (placed by
//! the orchestrator, a failover, handed here by a switch, back after a fencing the lease
//! survived), the stop and hand-over of a switch away from here, the self-fencing stop, and
//! giving an ownership up. *When* each runs is the planner's ([`berth_cluster::plan`]); the
//! transactions are berth-cluster's ([`berth_cluster::Store`]).

use std::sync::Arc;
use std::time::Instant;

use berth_cluster::plan::{self, Stale};
use berth_cluster::{ClusterError, Done, EtcdGuard, Intent, OwnerWhy, Target};
use berth_drivers::HOST;
use berth_engine::record;
use berth_engine::{ActionError, ActionOptions, ActionReport, Engine};
use berth_model::order::Action;
use tracing::{Level, error, info, info_span, warn};

use super::{RecordId, Worker, origin};
use crate::cluster::{Cluster, ClusterOp, IntentLog};

/// Why a cluster step's engine run did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The service file does not load.
    #[error("service file is broken: {0}")]
    Broken(String),
    /// svcd is stopping.
    #[error("svcd is shutting down")]
    ShuttingDown,
    /// The blocking task died.
    #[error("the action task failed: {0}")]
    Task(String),
    /// The engine's error.
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// An engine run for the cluster layer.
#[derive(Debug)]
pub enum Ran {
    /// It ran.
    Done(ActionReport),
    /// The start's decision no longer held once the lock was held: nothing was done.
    Dropped(Stale),
}

type Recheck = Box<dyn FnOnce() -> Result<(), Stale> + Send>;

impl Worker {
    /// A whole-service stop for the cluster layer (a switch, the monitor, self-fencing).
    pub(super) async fn cluster_stop(
        &mut self,
        force: bool,
        origin: &'static str,
    ) -> Result<ActionReport, StepError> {
        match self
            .cluster_engine(Action::Stop, None, force, origin, None)
            .await?
        {
            Ran::Done(r) => Ok(r),
            // A stop has no recheck.
            Ran::Dropped(s) => Err(StepError::Task(s.to_string())),
        }
    }

    /// Run a whole-service start or stop for the cluster layer, under the guard for starts
    /// and, for a start, only if `recheck` (asked once the lock is held) says it still holds;
    /// its lines and its outcome go to the service's log file, headed by `origin`.
    async fn cluster_engine(
        &mut self,
        action: Action,
        guard: Option<EtcdGuard>,
        force: bool,
        origin: &'static str,
        recheck: Option<Recheck>,
    ) -> Result<Ran, StepError> {
        let cfg = self.config.clone().map_err(StepError::Broken)?;
        let Ok(permit) = self.shared.actions.clone().acquire_owned().await else {
            return Err(StepError::ShuttingDown);
        };
        let shared = self.shared.clone();
        let nodename = self.shared.settings().nodename.clone();
        let name = self.name.clone();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let opts = ActionOptions {
                force,
                ..ActionOptions::default()
            };
            let engine = Engine::new(&HOST, &shared.paths, &nodename);
            let engine = match &guard {
                Some(g) => engine.with_guard(g),
                None => engine,
            };
            let span = info_span!("service", svc = %name, origin = origin);
            let result = span.in_scope(|| match (action, recheck) {
                (Action::Start, Some(recheck)) => {
                    let mut stale = None;
                    let ran = engine.start_if(&cfg, &opts, || match recheck() {
                        Ok(()) => true,
                        Err(s) => {
                            stale = Some(s);
                            false
                        }
                    });
                    match (ran, stale) {
                        (Ok(Some(r)), _) => Ok(Ran::Done(r)),
                        (Ok(None), Some(s)) => Ok(Ran::Dropped(s)),
                        (Ok(None), None) => Ok(Ran::Dropped(Stale::OperatorAction)),
                        (Err(e), _) => Err(e),
                    }
                }
                _ => engine.run(&cfg, action, &opts).map(Ran::Done),
            });
            (result, record::read(&shared.paths.service_var(&cfg.name)))
        })
        .await;
        let label = if action == Action::Start {
            "start"
        } else {
            "stop"
        };
        let (result, rec) = match joined {
            Ok(r) => r,
            Err(e) => {
                let e = StepError::Task(e.to_string());
                self.note(None, Level::ERROR, origin, &format!("{label} failed: {e}"));
                return Err(e);
            }
        };
        match &result {
            Ok(Ran::Done(_)) => self.note(None, Level::INFO, origin, &format!("{label} done")),
            Ok(Ran::Dropped(why)) => {
                self.note(
                    None,
                    Level::INFO,
                    origin,
                    &format!("{label} not done: {why}"),
                );
                return Ok(Ran::Dropped(why.clone()));
            }
            Err(e) => self.note(None, Level::ERROR, origin, &format!("{label} failed: {e}")),
        }
        self.known = Some(rec.as_ref().map(RecordId::of));
        self.settle = true;
        self.shared.metrics.action(
            &self.name,
            label,
            result.is_ok(),
            started.elapsed().as_secs_f64(),
        );
        if result.is_ok() && action == Action::Start {
            self.reset_counts();
        }
        Ok(result?)
    }

    /// Run a step the cluster layer asks.
    pub(super) async fn cluster_op(&mut self, op: ClusterOp) {
        let Some(cluster) = self.shared.cluster.get().cloned() else {
            return;
        };
        if self.config.is_err() {
            return;
        }
        match op {
            ClusterOp::Start { start, ticket } => {
                self.start_here(&cluster, start).await;
                drop(ticket);
            }
            ClusterOp::SwitchOut(intent) => self.switch_out(&cluster, intent).await,
            ClusterOp::GiveUp => cluster.store.release_if_mine(&self.name).await,
            ClusterOp::FenceStop(why) => self.fence_stop(&cluster, &why).await,
            ClusterOp::FlexStop {
                slot,
                token,
                reason,
                ticket,
            } => {
                self.flex_stop(&cluster, slot, token, &reason).await;
                drop(ticket);
            }
        }
    }

    /// The flex planner stops this node's instance: stop, then give the slot up (only once
    /// the instance is down: the slot is what keeps the instance count within flex_max).
    async fn flex_stop(&mut self, cluster: &Arc<Cluster>, slot: u32, token: i64, reason: &str) {
        let me = cluster.store.node().to_string();
        self.note(
            None,
            Level::INFO,
            origin::ORCHESTRATOR,
            &format!("stop on {me}: {reason}"),
        );
        let stopped = self.cluster_stop(false, origin::ORCHESTRATOR).await;
        self.check().await;
        match stopped {
            Ok(_) => {
                info!("{}: instance stopped on {me} ({reason})", self.name);
                cluster.event(
                    "flex_stopped",
                    Some(&self.name),
                    format!("{} instance stopped on {me}: {reason}", self.name),
                );
                if let Err(e) = cluster.store.release_slot(&self.name, slot, token).await {
                    warn!("{}: cannot release slot {slot}: {e}", self.name);
                }
            }
            Err(e) => {
                error!("{}: stop on {me} failed: {e}; slot {slot} kept", self.name);
                cluster.event("flex_stop_failed", Some(&self.name), e.to_string());
            }
        }
    }

    /// Start the service here for the orchestrator, a failover, a switch to here or a fence
    /// recovery.
    async fn start_here(&mut self, cluster: &Arc<Cluster>, start: plan::Start) {
        let me = cluster.store.node().to_string();
        let why = start.why.clone();
        let log = (start.intent.clone()).map(|i| IntentLog::new(cluster.store.clone(), i));
        if let Some(l) = &log {
            l.line(format!("{me}: starting {}", self.name), None).await;
        }
        self.note(
            None,
            Level::INFO,
            origin::ORCHESTRATOR,
            &format!("start on {me}: {}", start.reason),
        );
        let guard = match cluster.guard(why.clone()) {
            Ok(g) => g.decided_at(start.decided_at),
            Err(e) => {
                self.note(
                    None,
                    Level::ERROR,
                    origin::ORCHESTRATOR,
                    &format!("start failed: {e}"),
                );
                if let Some(l) = &log {
                    l.line(
                        format!("{me}: {} not started: {e}", self.name),
                        Some(Done::Failed),
                    )
                    .await;
                }
                return;
            }
        };
        let unanswered = guard.unanswered();
        let fresh = start.token.is_none();
        // Checked again once the lock is held: an operator's action since the decision, the
        // newest view (target, freeze, owner), the lease.
        let recheck: Recheck = {
            let cluster = cluster.clone();
            let dir = self.shared.paths.service_var(&self.name);
            let name = self.name.clone();
            let me = me.clone();
            let start = start.clone();
            Box::new(move || {
                let last = record::read(&dir).map(|r| r.started_ms);
                let health = cluster.plan_health();
                cluster.with_view(|v| plan::recheck(&name, &start, v, &me, health, last))
            })
        };
        let result = self
            .cluster_engine(
                Action::Start,
                Some(guard),
                false,
                origin::ORCHESTRATOR,
                Some(recheck),
            )
            .await;
        self.check().await;
        match result {
            Ok(Ran::Done(_)) => {
                info!("{}: started on {me} ({why})", self.name);
                cluster.event(
                    "started",
                    Some(&self.name),
                    format!("{} started on {me} ({why})", self.name),
                );
                if let Err(e) = cluster.store.set_target(&self.name, Target::Started).await {
                    warn!("{}: {e}", self.name);
                }
                if let Some(l) = &log {
                    l.line(format!("{me}: {} is up", self.name), Some(Done::Up))
                        .await;
                }
            }
            Ok(Ran::Dropped(stale)) => {
                info!("{}: not started on {me}: {stale}", self.name);
                cluster.event(
                    "start_dropped",
                    Some(&self.name),
                    format!("{} not started on {me} ({why}): {stale}", self.name),
                );
                if let Some(l) = &log {
                    l.line(
                        format!("{me}: {} not started: {stale}", self.name),
                        Some(Done::Failed),
                    )
                    .await;
                }
            }
            // Another node owns it (it won the race), or an operator's stop or freeze came
            // after the decision: not this node's failure.
            Err(StepError::Action(ActionError::Guard(refusal))) => {
                info!("{}: not started on {me}: {refusal}", self.name);
                // etcd did not answer the take: it may have been applied, and an owner key
                // of this node's on a service that is not started would keep it down (the
                // orchestrator starts only what nobody owns). Given up, the orchestrator
                // tries the start again (after plan::RETRY_START_MS). Only a take of a
                // service nobody owned: an ownership handed here stays.
                if fresh && unanswered.load(std::sync::atomic::Ordering::SeqCst) {
                    cluster.store.release_if_mine(&self.name).await;
                }
                if let Some(l) = &log {
                    l.line(
                        format!("{me}: {} not started: {refusal}", self.name),
                        Some(Done::Failed),
                    )
                    .await;
                }
            }
            Err(e) => {
                error!("{}: start on {me} failed: {e}", self.name);
                cluster.start_failed(&self.name, &e.to_string());
                if self
                    .config
                    .as_ref()
                    .is_ok_and(|c| c.settings.topology.is_flex())
                {
                    cluster.store.release_my_slot(&self.name).await;
                } else {
                    cluster.store.release_if_mine(&self.name).await;
                }
                if let Some(l) = &log {
                    l.line(
                        format!("{me}: start of {} failed: {e}", self.name),
                        Some(Done::Failed),
                    )
                    .await;
                }
            }
        }
    }

    /// A switch away from here: stop, then hand the owner key to the target in one
    /// transaction (only if the intent's token is still the ownership, and the target's lease
    /// its current one).
    async fn switch_out(&mut self, cluster: &Arc<Cluster>, intent: Intent) {
        let me = cluster.store.node().to_string();
        let log = IntentLog::new(cluster.store.clone(), intent.clone());
        log.line(
            format!(
                "{me}: stopping {} for the switch to {}",
                self.name, intent.to
            ),
            None,
        )
        .await;
        self.note(
            None,
            Level::INFO,
            origin::SWITCH,
            &format!(
                "stop on {me}: switch to {} asked by {}",
                intent.to, intent.by
            ),
        );
        let stopped = self.cluster_stop(false, origin::SWITCH).await;
        self.check().await;
        if let Err(e) = stopped {
            error!("{}: switch to {}: stop failed: {e}", self.name, intent.to);
            cluster.event(
                "switch_failed",
                Some(&self.name),
                format!("stop on {me} failed: {e}"),
            );
            log.line(
                format!(
                    "{me}: stop failed: {e}; {} stays on {me} (owner unchanged, nothing started on {})",
                    self.name, intent.to
                ),
                Some(Done::Failed),
            )
            .await;
            return;
        }
        if let Err(e) = self.drp_clear(cluster).await {
            error!("{}: switch to {}: {e}", self.name, intent.to);
            log.line(
                format!(
                    "{me}: cannot clear the drp_active mark: {e}; {} is stopped on {me}, still owned by {me}",
                    self.name
                ),
                Some(Done::Failed),
            )
            .await;
            return;
        }
        let handed = async {
            let (_, lease) = cluster
                .store
                .node_record(&intent.to)
                .await?
                .ok_or_else(|| ClusterError::NodeNotAlive {
                    node: intent.to.clone(),
                    cluster: cluster.cfg.name.clone(),
                })?;
            cluster
                .store
                .transfer(
                    &self.name,
                    intent.token,
                    &intent.to,
                    lease,
                    &OwnerWhy::Switch { from: me.clone() },
                )
                .await
        }
        .await;
        match handed {
            Ok(o) => {
                info!(
                    "{}: stopped, handed to {} (fencing token {})",
                    self.name, intent.to, o.token
                );
                self.note(
                    None,
                    Level::INFO,
                    origin::SWITCH,
                    &format!("handed to {} (fencing token {})", intent.to, o.token),
                );
                cluster.event(
                    "switch",
                    Some(&self.name),
                    format!("{} handed from {me} to {}", self.name, intent.to),
                );
                log.line(
                    format!(
                        "{me}: {} stopped, handed to {} (token {})",
                        self.name, intent.to, o.token
                    ),
                    Some(Done::Handed),
                )
                .await;
            }
            Err(e) => {
                error!("{}: cannot hand it to {}: {e}", self.name, intent.to);
                let released = cluster
                    .store
                    .release(&self.name, intent.token)
                    .await
                    .unwrap_or(false);
                let state = if released {
                    "released: it is stopped everywhere"
                } else {
                    "left as it was"
                };
                self.note(
                    None,
                    Level::ERROR,
                    origin::SWITCH,
                    &format!("not handed to {}: {e}; ownership {state}", intent.to),
                );
                log.line(
                    format!(
                        "{me}: {} stopped but not handed to {}: {e}; ownership {state}",
                        self.name, intent.to
                    ),
                    Some(Done::Failed),
                )
                .await;
            }
        }
    }

    /// Self-fencing: stop now, fast, if it runs or is owned here.
    async fn fence_stop(&mut self, cluster: &Arc<Cluster>, why: &str) {
        let me = cluster.store.node();
        // Standby resources alone (a DR node's always_on fs) are no run of the service.
        let up = self.shared.tree.get(&self.name).is_some_and(|s| {
            !matches!(
                s.avail,
                berth_model::Status::Down
                    | berth_model::Status::NotApplicable
                    | berth_model::Status::StdbyUp
                    | berth_model::Status::StdbyDown
            )
        });
        let owned = cluster.with_view(|v| {
            v.owners
                .get(&self.name)
                .is_some_and(|o| o.record.node == me)
        });
        if !up && !owned {
            return;
        }
        warn!("{}: self-fencing: stopping it now", self.name);
        self.note(
            None,
            Level::WARN,
            origin::FENCING,
            &format!("stop on {me} (self-fencing): {why}"),
        );
        let normal = self.config.clone();
        if let Ok(cfg) = &normal {
            self.config = Ok(Arc::new(cfg.fast_stop()));
        }
        let stopped = self.cluster_stop(true, origin::FENCING).await;
        self.config = normal;
        match stopped {
            Ok(_) => {
                info!("{}: stopped (self-fencing)", self.name);
                cluster.fence_stopped(&self.name);
                cluster.event(
                    "fence_stopped",
                    Some(&self.name),
                    format!("{} stopped on {me} before the lease deadline", self.name),
                );
            }
            Err(e) => {
                error!("{}: self-fencing stop failed: {e}", self.name);
                cluster.event("fence_failed", Some(&self.name), e.to_string());
            }
        }
        self.check().await;
    }
}
