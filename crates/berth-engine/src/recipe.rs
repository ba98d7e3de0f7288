//! One recipe for an operator's action on a service, the same from svc and from svcd's HTTP
//! API: the cluster's start guard, the engine, the cluster's bookkeeping after the action
//! (target, ownership), freeze and thaw on this node and cluster-wide, and the lines that head
//! and close the action in the service's log file.
//!
//! The cluster is seen through [`ClusterSide`] (svc and svcd each reach etcd their own way:
//! svc through its own runtime, svcd under its lease); the log lines through a callback (svc
//! and svcd head them differently).

use tracing::Level;

use berth_model::action::ServiceAction;
use berth_model::config::ServiceConfig;
use berth_model::order::{Action, Selector};
use berth_model::paths::Paths;

use crate::driver::Driver;
use crate::{ActionError, ActionOptions, ActionReport, Engine, FreezeError, StartGuard};

/// What the recipe asks of the node's cluster.
pub trait ClusterSide {
    /// A start guard (the owner key is taken under this node's lease), or why no cluster start
    /// may run now (the lease is lost).
    fn guard(&self, why: &str) -> Result<Box<dyn StartGuard + '_>, String>;
    /// After an action that ran: a whole start keeps the service started, a whole stop leaves
    /// it stopped and gives the ownership up.
    fn after_action(&self, svc: &str, action: Action, whole: bool, ok: bool);
    /// Freeze or thaw the service cluster-wide.
    fn set_frozen(&self, svc: &str, frozen: bool) -> Result<(), String>;
}

/// How an action is told in the service's log file: `command` heads it (`svc web start`,
/// `start --rid fs#1`), `why` follows on the first line (`requested by 127.0.0.1:5000`,
/// empty for svc), `note` writes a line.
pub struct Notes<'a> {
    /// The action as the operator said it.
    pub command: &'a str,
    /// Why, after the command on the first line (with its leading space), or empty.
    pub why: &'a str,
    /// Writes one line to the service's log file.
    pub note: &'a dyn Fn(Level, &str),
}

/// Why an action did not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster refuses starts on this node now (its lease is lost, or the node is not in
    /// the service's `nodes` nor `drpnodes`): nothing was touched.
    #[error("{0}")]
    NoGuard(String),
    /// The engine's action failed.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// The frozen flag could not be written.
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    /// The cluster-wide frozen key could not be written (this node's flag is set).
    #[error("cannot {} {svc} cluster-wide: {why}", if *.frozen { "freeze" } else { "thaw" })]
    ClusterFreeze {
        /// The service.
        svc: String,
        /// Freeze (true) or thaw.
        frozen: bool,
        /// etcd's error.
        why: String,
    },
    /// An action the recipe does not run (print, switch...).
    #[error("{} is not an action on the service's resources", .0.words())]
    NotRunnable(ServiceAction),
}

impl std::fmt::Debug for Notes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notes")
            .field("command", &self.command)
            .field("why", &self.why)
            .finish_non_exhaustive()
    }
}

/// Where an action runs: the host's driver, the node's paths and name, its cluster.
pub struct Runner<'a, D> {
    /// The drivers.
    pub driver: &'a D,
    /// The node's directories.
    pub paths: &'a Paths,
    /// This node's name.
    pub nodename: &'a str,
    /// The node's cluster, when it is in one.
    pub cluster: Option<&'a dyn ClusterSide>,
}

impl<D> std::fmt::Debug for Runner<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("paths", &self.paths)
            .field("nodename", &self.nodename)
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Driver> Runner<'_, D> {
    /// Run `action` on `svc` as svc and svcd both do: see [`run_action`].
    pub fn run(
        &self,
        svc: &ServiceConfig,
        action: ServiceAction,
        opts: &ActionOptions,
        notes: &Notes<'_>,
    ) -> Result<Option<ActionReport>, RunError> {
        run_action(self, svc, action, opts, notes)
    }
}

/// Run `action` on `svc` as svc and svcd both do: freeze and thaw set this node's flag and,
/// in a cluster, the cluster-wide key; the engine's actions run under the cluster's start
/// guard, then the cluster is told how they went. `Ok(None)`: freeze or thaw done.
pub fn run_action<D: Driver>(
    at: &Runner<'_, D>,
    svc: &ServiceConfig,
    action: ServiceAction,
    opts: &ActionOptions,
    notes: &Notes<'_>,
) -> Result<Option<ActionReport>, RunError> {
    let Runner {
        driver,
        paths,
        nodename,
        cluster,
    } = *at;
    if let Some(frozen) = action.freezes() {
        let result = freeze(paths, cluster, &svc.name, frozen);
        let (level, outcome) = match &result {
            Ok(()) => (Level::INFO, "done".to_string()),
            Err(e) => (Level::ERROR, format!("failed: {e}")),
        };
        (notes.note)(level, &format!("{}{}: {outcome}", notes.command, notes.why));
        return result.map(|()| None);
    }
    let Some((kind, kinds)) = action.engine() else {
        return Err(RunError::NotRunnable(action));
    };
    // A partial action (`startfs`) selects its kinds, among the resources `opts` selects.
    let partial;
    let opts = match kinds {
        Some(kinds) => {
            partial = ActionOptions {
                selector: opts.selector.clone().with_kinds(kinds),
                ..opts.clone()
            };
            &partial
        }
        None => opts,
    };
    let dry = opts.dry_run;
    // In a cluster a start outside the service's nodes and drpnodes is refused (the file is
    // every node's, the node list the service's); on a single node the engine only warns (a
    // seed's file often names another host).
    if action.is_start()
        && cluster.is_some()
        && let Some(why) = outside_nodes(svc, nodename)
    {
        if !dry {
            (notes.note)(
                Level::WARN,
                &format!("{}{}: refused: {why}", notes.command, notes.why),
            );
        }
        return Err(RunError::NoGuard(format!("refused: {why}")));
    }
    let guard = match cluster.map(|c| c.guard(&action.words())) {
        Some(Err(e)) if action.is_start() => {
            if !dry {
                (notes.note)(
                    Level::WARN,
                    &format!("{}{}: refused: {e}", notes.command, notes.why),
                );
            }
            return Err(RunError::NoGuard(e));
        }
        Some(Ok(g)) => Some(g),
        _ => None,
    };
    let engine = Engine::new(driver, paths, nodename);
    let engine = match &guard {
        Some(g) => engine.with_guard(g.as_ref()),
        None => engine,
    };
    // A dry run is no part of the service's history: its lines stay out of the file.
    if !dry {
        (notes.note)(Level::INFO, &format!("{}{}", notes.command, notes.why));
    }
    let result = engine.run(svc, kind, opts);
    if !dry {
        let (level, outcome) = match &result {
            Ok(_) => (Level::INFO, "done".to_string()),
            Err(e) => (Level::ERROR, format!("failed: {e}")),
        };
        (notes.note)(level, &format!("{}: {outcome}", notes.command));
    }
    // A start refused by the guard or the lock, or bad selectors, changed nothing.
    if let Some(c) = cluster
        && !dry
        && !matches!(
            result,
            Err(ActionError::Guard(_) | ActionError::Lock(_) | ActionError::Selector(_))
        )
    {
        let whole = opts.selector == Selector::default();
        c.after_action(&svc.name, kind, whole, result.is_ok());
    }
    Ok(Some(result?))
}

/// Why `node` is not one the service may start on: `None` when it is in its `nodes` or
/// `drpnodes`, or when the file names no nodes (a single-node file).
pub fn outside_nodes(svc: &ServiceConfig, node: &str) -> Option<String> {
    let s = &svc.settings;
    if s.nodes.is_empty() || s.nodes.iter().chain(&s.drpnodes).any(|n| n == node) {
        return None;
    }
    let drp = if s.drpnodes.is_empty() {
        String::new()
    } else {
        format!(" nor its drpnodes ({})", s.drpnodes.join(", "))
    };
    Some(format!(
        "{} does not start on {node}: {node} is not in its nodes ({}){drp}",
        svc.name,
        s.nodes.join(", ")
    ))
}

/// Set this node's frozen flag, then the cluster-wide key.
fn freeze(
    paths: &Paths,
    cluster: Option<&dyn ClusterSide>,
    svc: &str,
    frozen: bool,
) -> Result<(), RunError> {
    crate::set_frozen(paths, svc, frozen)?;
    if let Some(c) = cluster {
        c.set_frozen(svc, frozen)
            .map_err(|why| RunError::ClusterFreeze {
                svc: svc.to_string(),
                frozen,
                why,
            })?;
    }
    Ok(())
}
