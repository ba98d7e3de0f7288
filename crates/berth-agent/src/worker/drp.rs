//! The DR node's side of a forced DR start (see `berth_cluster::drp`): `svc SVC start --force`
//! with etcd unreachable wrote this node's `drp_active` mark; once etcd answers again svcd
//! publishes it (`services/<svc>/drp_active`), then takes the owner key if nobody holds it and
//! the service runs here, so the cluster sees where it runs. The fail-back `switch` away from
//! here clears the mark ([`Worker::drp_clear`]).

use std::sync::Arc;
use std::time::Instant;

use berth_cluster::{LeaseState, OwnerWhy};
use berth_engine::is_up;
use berth_model::config::ServiceConfig;
use berth_model::status::ServiceStatus;
use tracing::{Level, info, warn};

use super::{Worker, origin};
use crate::cluster::Cluster;

impl Worker {
    /// Publish this node's mark and take the owner key, once etcd answers.
    pub(super) async fn drp_reconcile(&mut self, cfg: &ServiceConfig, status: &ServiceStatus) {
        if cfg.settings.drpnodes.is_empty() {
            return;
        }
        let Some(cluster) = self.shared.cluster.get().cloned() else {
            return;
        };
        let mark = match berth_cluster::drp::read_local(&self.shared.paths, &self.name) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                warn!("{}: {e}", self.name);
                return;
            }
        };
        let me = cluster.store.node().to_string();
        if mark.node != me {
            return;
        }
        let h = *cluster.health.borrow();
        if h.state != LeaseState::Held || h.lease == 0 {
            return;
        }
        let (published, owner) = cluster.with_view(|v| {
            (
                v.drp_active.contains_key(&self.name),
                v.owners.get(&self.name).map(|o| o.record.node.clone()),
            )
        });
        if !published {
            match cluster.store.put_drp_mark(&self.name, &mark).await {
                Ok(()) => {
                    info!("{}: drp_active mark published to etcd", self.name);
                    cluster.event(
                        "drp_active",
                        Some(&self.name),
                        format!("{} runs on DR node {me} (drp_active)", self.name),
                    );
                    self.note(
                        None,
                        Level::WARN,
                        origin::DRP,
                        &format!("etcd answers again: drp_active mark published ({me})"),
                    );
                }
                Err(e) => {
                    warn!("{}: cannot publish the drp_active mark: {e}", self.name);
                    return;
                }
            }
        }
        let runs_here = is_up(status.avail) && status.avail != berth_model::Status::StdbyUp;
        match owner.as_deref() {
            Some(o) if o != me && runs_here => {
                // An owner key from before the site loss lives on for a TTL after etcd comes
                // back (etcd restores leases); one that outlives it is a second run (two forced
                // starts, one on each side): say so, once per owner.
                let since = match &self.drp_conflict {
                    Some((who, at, _)) if who == o => *at,
                    _ => Instant::now(),
                };
                let said = self
                    .drp_conflict
                    .as_ref()
                    .is_some_and(|(who, _, said)| who == o && *said);
                let due = since.elapsed() > cluster.cfg.lease_ttl * 2;
                if due && !said {
                    let line = format!(
                        "runs here after a DR start (drp_active) while {o} owns it: it may run \
                         on both sides; stop it on one of them"
                    );
                    tracing::error!("{}: {line}", self.name);
                    cluster.event("drp_conflict", Some(&self.name), line.clone());
                    self.note(None, Level::ERROR, origin::DRP, &line);
                }
                self.drp_conflict = Some((o.to_string(), since, said || due));
                return;
            }
            _ => self.drp_conflict = None,
        }
        if owner.is_none() && runs_here {
            match cluster
                .store
                .acquire(&self.name, h.lease, &OwnerWhy::Action("drp start".into()))
                .await
            {
                Ok(o) => {
                    info!(
                        "{}: owner key taken on DR node {me} (fencing token {})",
                        self.name, o.token
                    );
                    self.note(
                        None,
                        Level::INFO,
                        origin::DRP,
                        &format!("owner key taken on {me} (fencing token {})", o.token),
                    );
                }
                Err(e) => warn!("{}: cannot take the owner key: {e}", self.name),
            }
        }
    }

    /// The fail-back: a switch away from this DR node clears the mark (etcd's, then this
    /// node's file) before the owner key is handed over, so the target's start guard finds
    /// none. `Err`: the mark stands (the switch must not go on).
    pub(super) async fn drp_clear(&mut self, cluster: &Arc<Cluster>) -> Result<bool, String> {
        let local = berth_cluster::drp::read_local(&self.shared.paths, &self.name)
            .map_err(|e| e.to_string())?;
        let in_etcd = cluster.with_view(|v| v.drp_active.contains_key(&self.name));
        if local.is_none() && !in_etcd {
            return Ok(false);
        }
        cluster
            .store
            .clear_drp_mark(&self.name)
            .await
            .map_err(|e| e.to_string())?;
        berth_cluster::drp::clear_local(&self.shared.paths, &self.name)
            .map_err(|e| e.to_string())?;
        info!("{}: drp_active mark cleared (fail-back)", self.name);
        self.note(
            None,
            Level::INFO,
            origin::DRP,
            "drp_active mark cleared (fail-back)",
        );
        Ok(true)
    }
}
