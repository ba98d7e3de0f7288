//! The engine's start guard in a cluster: a start goes on only once this node owns the service
//! (taken in a transaction under the node's lease); the owner key's revision is the fencing token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_engine::StartGuard;
use berth_model::ServiceConfig;
use tokio::runtime::Handle;

use crate::batch::{self, Taker};
use crate::{ClusterError, OwnerWhy, Store};

/// How many times a flex slot take that got no answer (a timeout, a transport error) is sent
/// (owner keys go through the batch [`Taker`], which sends again itself).
const TAKE_TRIES: u32 = 3;

/// Owner-key transactions (with the lease read before them) in flight at once from this
/// process. A failover starts every service of a dead node at once: unbounded, hundreds of
/// transactions on one connection outlast their timeout (measured: 300 at once on a busy
/// 2-core machine, a third timed out; 32 at once, 3 %) and those starts fail; bounded, they
/// queue before their timeout starts, while the rest of each start (the ARP probe windows)
/// runs in parallel.
const TAKES_AT_ONCE: usize = 8;
static TAKES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(TAKES_AT_ONCE);

/// Takes (or confirms) the ownership of the service for this node before a start.
#[derive(Debug)]
pub struct EtcdGuard {
    store: Store,
    runtime: Handle,
    why: OwnerWhy,
    /// The lease to hang the owner key on; `None`: this node's, read from its node key.
    lease: Option<i64>,
    /// The view revision a planner's decision read (see [`Store::acquire_if`]).
    decided_at: Option<i64>,
    /// This node's paths, for its own `drp_active` marks (see [`crate::drp`]).
    paths: Option<berth_model::paths::Paths>,
    /// Takes in batches with the other starts' (svcd); `None`: alone (the CLI).
    taker: Option<Taker>,
    /// Set when the take ended without an answer from etcd (it may have been applied).
    unanswered: Arc<AtomicBool>,
}

impl EtcdGuard {
    /// A guard over `store`, running its requests on `runtime` (the engine calls it from a
    /// blocking thread). `why` is recorded in the owner key.
    pub fn new(store: Store, runtime: Handle, why: OwnerWhy, lease: Option<i64>) -> EtcdGuard {
        EtcdGuard {
            store,
            runtime,
            why,
            lease,
            decided_at: None,
            paths: None,
            taker: None,
            unanswered: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same guard, also honouring this node's own `drp_active` marks (in `paths`' var dir).
    pub fn with_paths(mut self, paths: berth_model::paths::Paths) -> EtcdGuard {
        self.paths = Some(paths);
        self
    }

    /// The same guard, taking the owner key in a batch with the other takes of `taker`.
    pub fn batched(mut self, taker: Taker) -> EtcdGuard {
        self.taker = Some(taker);
        self
    }

    /// A flag set when the take ended without etcd's answer (a timeout, a transport error,
    /// after the tries): the owner key may be this node's while the start did not run, and
    /// the caller gives it up so that the orchestrator can try the start again.
    pub fn unanswered(&self) -> Arc<AtomicBool> {
        self.unanswered.clone()
    }

    /// The same guard, refusing when the service's target or freeze changed after the view
    /// revision `rev` the start was decided on.
    pub fn decided_at(mut self, rev: i64) -> EtcdGuard {
        self.decided_at = Some(rev);
        self
    }
}

impl StartGuard for EtcdGuard {
    fn acquire(&self, svc: &ServiceConfig) -> Result<Option<i64>, String> {
        self.acquire_forced(svc, false)
    }

    fn acquire_forced(&self, svc: &ServiceConfig, force: bool) -> Result<Option<i64>, String> {
        let me = self.store.node();
        if !svc.settings.nodes.is_empty() && crate::drp::role(svc, me) == crate::drp::Role::Outside
        {
            return Err(format!(
                "{} may not run on {}: its nodes are {}{}",
                svc.name,
                me,
                svc.settings.nodes.join(", "),
                if svc.settings.drpnodes.is_empty() {
                    String::new()
                } else {
                    format!(" (DR nodes: {})", svc.settings.drpnodes.join(", "))
                }
            ));
        }
        self.runtime.block_on(async {
            if !svc.settings.drpnodes.is_empty() {
                let facts = self
                    .store
                    .start_facts(svc, self.paths.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
                crate::drp::start_check(svc, me, &facts, force)?;
            }
            // Lone takes queue for a place (a batch is one transaction: the taker bounds its
            // batches in flight itself).
            let _take = match &self.taker {
                Some(_) => None,
                None => Some(
                    TAKES
                        .acquire()
                        .await
                        .map_err(|e| format!("cannot take the owner key of {}: {e}", svc.name))?,
                ),
            };
            let lease = match self.lease {
                Some(l) => l,
                None => self.store.my_lease().await.map_err(|e| e.to_string())?,
            };
            // A flex service's instance runs under a slot, not the owner key.
            if let Some(flex) = svc.settings.flex() {
                let mut tries = 0;
                let token = loop {
                    tries += 1;
                    match self
                        .store
                        .take_any_slot(&svc.name, flex.max, lease, self.decided_at)
                        .await
                    {
                        Err(e @ (ClusterError::Timeout { .. } | ClusterError::Etcd { .. }))
                            if tries < TAKE_TRIES =>
                        {
                            tracing::warn!("{e}: trying again");
                        }
                        r => break r.map_err(|e| e.to_string())?,
                    }
                };
                return Ok(Some(token));
            }
            // A take that got no answer is sent again: it is idempotent for this node and
            // lease (an owner key already this node's under this lease is confirmed).
            let owned = match &self.taker {
                Some(t) => t.take(&svc.name, lease, &self.why, self.decided_at).await,
                None => {
                    batch::alone(&self.store, &svc.name, lease, &self.why, self.decided_at).await
                }
            };
            let owned = match owned {
                Ok(o) => o,
                Err(
                    e @ (ClusterError::Timeout { .. }
                    | ClusterError::Etcd { .. }
                    | ClusterError::Unanswered { .. }),
                ) => {
                    self.unanswered.store(true, Ordering::SeqCst);
                    return Err(e.to_string());
                }
                Err(e) => return Err(e.to_string()),
            };
            tracing::info!(
                "owner of {} on {} (fencing token {})",
                svc.name,
                owned.record.node,
                owned.token
            );
            Ok(Some(owned.token))
        })
    }
}
