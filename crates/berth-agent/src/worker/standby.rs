//! Standby resources (`standby = true`, or `always_on` naming this node): svcd keeps them up on
//! this node whether the service runs here or not (a DR node's fs stays mounted to receive its
//! syncs). One found down is started again (an engine start of it alone, with no owner key:
//! it is no start of the service), at most once per monitor interval, with a line in the
//! service's log. A standby resource an operator's action left down (`stop --force`) is left
//! down until it is seen up again; a frozen service is left alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_drivers::HOST;
use berth_engine::record;
use berth_engine::{ActionError, ActionOptions, Engine, LockError};
use berth_model::config::ServiceConfig;
use berth_model::order::Selector;
use berth_model::status::ServiceStatus;
use berth_model::{Rid, Status};
use tracing::{Level, info_span, warn};

use super::{Worker, origin};

impl Worker {
    /// The standby resources to start again now. `settle`: an action just ran (what it left
    /// down is the operator's choice).
    pub(super) fn standby_due(
        &mut self,
        cfg: &ServiceConfig,
        status: &ServiceStatus,
        settle: bool,
    ) -> Vec<Rid> {
        let interval = self.shared.settings().monitor_interval;
        let mut due = Vec::new();
        for r in &status.resources {
            let standby = cfg
                .resource(r.rid)
                .is_some_and(|res| res.common.is_standby() && !res.common.disable);
            if !standby {
                continue;
            }
            let st = self.rids.entry(r.rid).or_default();
            if r.status != Status::StdbyDown {
                st.standby_held = false;
                continue;
            }
            if settle {
                st.standby_held = true;
            }
            if st.standby_held || status.frozen {
                continue;
            }
            if st.standby_try.is_some_and(|t| t.elapsed() < interval) {
                continue;
            }
            st.standby_try = Some(Instant::now());
            due.push(r.rid);
        }
        due
    }

    /// Start the standby resources `rids` again (no owner key: the service is not started).
    pub(super) async fn standby_start(&mut self, cfg: &Arc<ServiceConfig>, rids: &[Rid]) {
        let Ok(permit) = self.shared.actions.clone().acquire_owned().await else {
            return;
        };
        let listed = super::rid_strings(rids).join(", ");
        warn!("{}: standby {listed} down: starting it again", self.name);
        let shared = self.shared.clone();
        let cfg2 = cfg.clone();
        let nodename = self.shared.settings().nodename.clone();
        let set: BTreeSet<Rid> = rids.iter().copied().collect();
        let name = self.name.clone();
        let known = self.known.flatten();
        let line = format!("standby {listed} down: starting it again");
        let note_paths = self.shared.paths.clone();
        let note_name = self.name.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let opts = ActionOptions {
                selector: Selector {
                    rids: Some(set),
                    ..Selector::default()
                },
                waitlock: Duration::ZERO,
                ..ActionOptions::default()
            };
            let engine = Engine::new(&HOST, &shared.paths, &nodename);
            let dir = shared.paths.service_var(&name);
            let span = info_span!("service", svc = %name, origin = origin::MONITOR);
            // Under the lock: an operator's action that ended after the check (a forced stop)
            // is seen in the record, and not undone.
            span.in_scope(|| {
                engine.start_if(&cfg2, &opts, || {
                    let wanted = record::read(&dir).as_ref().map(super::RecordId::of) == known;
                    if wanted {
                        super::note(
                            &note_paths,
                            &note_name,
                            None,
                            Level::WARN,
                            origin::MONITOR,
                            &line,
                        );
                    }
                    wanted
                })
            })
        })
        .await;
        let (level, line) = match outcome {
            Ok(Ok(Some(_))) => (Level::INFO, format!("standby {listed} started again")),
            Ok(Ok(None)) => {
                tracing::info!(
                    "{}: an action ran meanwhile: standby {listed} left",
                    self.name
                );
                return;
            }
            // An action holds the lock: what it does wins; the next check looks again.
            Ok(Err(ActionError::Lock(LockError::Busy { .. }))) => {
                tracing::info!(
                    "{}: an action is running: standby {listed} not started now",
                    self.name
                );
                return;
            }
            Ok(Err(e)) => (Level::ERROR, format!("standby {listed}: start failed: {e}")),
            Err(e) => (Level::ERROR, format!("standby {listed}: start failed: {e}")),
        };
        // Its own record is no operator's action.
        let dir = self.shared.paths.service_var(&self.name);
        self.known = Some(record::read(&dir).as_ref().map(super::RecordId::of));
        if level == Level::INFO {
            tracing::info!("{}: {line}", self.name);
        } else {
            tracing::error!("{}: {line}", self.name);
        }
        self.note(None, level, origin::MONITOR, &line);
    }
}
