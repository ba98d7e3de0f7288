//! The orchestrator's flex services: decide with [`berth_cluster::flex::decide`] (pure), then
//! hand each step to the service's worker. A start goes through the same path as a failover
//! service's (its guard takes a slot instead of the owner key); a stop gives the slot up once
//! the instance is down.

use std::sync::Arc;

use berth_cluster::OwnerWhy;
use berth_cluster::flex::{self, FlexConfig, FlexStep, Here};
use berth_cluster::plan::{self, Health, Memory, Now, Slot, Step};
use berth_model::ServiceConfig;
use tracing::info;

use crate::cluster::{Cluster, ClusterOp, Ticket};
use crate::mailbox::Msg;
use crate::state::Shared;

/// One cycle for the flex services among `loaded` (the services whose file loads here).
pub fn cycle(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    loaded: &[(&str, &ServiceConfig)],
    memory: &mut Memory,
    health: Health,
    now: Now,
) {
    if !health.held || health.lease == 0 {
        return;
    }
    let me = cluster.node().to_string();
    for (name, cfg) in loaded {
        let Some(counts) = cfg.settings.flex() else {
            continue;
        };
        let c = FlexConfig {
            name,
            orchestrate: cfg.settings.orchestrate,
            nodes: &cfg.settings.nodes,
            flex: counts,
        };
        let here = Here {
            me: &me,
            lease: Some(health.lease),
            ready: now.ready,
            failed_here: memory.failed_recently(name, now.ms).is_some(),
            busy: memory.busy(name, now.ms),
            down_here: shared.tree.get(name).is_none_or(|st| {
                matches!(
                    st.avail,
                    berth_model::Status::Down | berth_model::Status::NotApplicable
                )
            }),
            now_ms: now.ms,
        };
        let decided = cluster.with_view(|v| flex::decide(v, here, &c).map(|s| (s, v.revision)));
        let Some((step, revision)) = decided else {
            continue;
        };
        let Some(tx) = shared.worker(name) else {
            continue;
        };
        match step {
            FlexStep::Start { slot, reason } => {
                let start = plan::Start {
                    why: OwnerWhy::Orchestrate,
                    reason: format!("flex instance (slot {slot}): {reason}"),
                    intent: None,
                    token: None,
                    decided_at: revision,
                    decided_ms: now.ms,
                    slot: Slot::Single,
                };
                let op = ClusterOp::Start {
                    start: start.clone(),
                    ticket: Ticket::new(cluster, name),
                };
                match tx.try_send(Msg::Cluster(op)) {
                    Ok(()) => {
                        info!("{name}: flex: starting an instance on {me}: {reason}");
                        cluster.event(
                            "flex_start",
                            Some(name),
                            format!("{me} starts an instance of {name}: {reason}"),
                        );
                        memory.sent(name, &Step::Start(start));
                    }
                    Err(e) => {
                        if let Msg::Cluster(ClusterOp::Start { ticket, .. }) = e.into_inner() {
                            ticket.disarm();
                        }
                    }
                }
            }
            FlexStep::Stop {
                slot,
                token,
                reason,
            } => {
                let op = ClusterOp::FlexStop {
                    slot,
                    token,
                    reason: reason.clone(),
                    ticket: Ticket::new(cluster, name),
                };
                match tx.try_send(Msg::Cluster(op)) {
                    Ok(()) => {
                        info!("{name}: flex: stopping the instance on {me}: {reason}");
                        memory.sent_other(name);
                    }
                    Err(e) => {
                        if let Msg::Cluster(ClusterOp::FlexStop { ticket, .. }) = e.into_inner() {
                            ticket.disarm();
                        }
                    }
                }
            }
        }
    }
}
