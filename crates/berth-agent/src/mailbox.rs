//! What svcd's tasks send a service's worker, and what the worker answers: the worker's
//! mailbox, apart from the worker itself (the daemon, the HTTP server and the cluster tasks
//! hold these without depending on how a worker runs).

use std::sync::Arc;

use berth_drivers::StatusReads;
use berth_model::action::ServiceAction;
use berth_model::config::ServiceConfig;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::ClusterOp;

/// A service as loaded: its config, or why it could not be read.
pub type Loaded = Result<Arc<ServiceConfig>, String>;

/// What a worker is asked to do.
#[derive(Debug)]
pub enum Msg {
    /// Check the service now; say when done.
    Check(Option<oneshot::Sender<()>>),
    /// Check the service now with the host reads every service of this round shares (svcd's
    /// periodic and first checks); say when done.
    SharedCheck(Arc<StatusReads>, Option<oneshot::Sender<()>>),
    /// Run an action for an HTTP client.
    Action(ActionRequest, oneshot::Sender<ActionReply>),
    /// svcd just started: start the service if this node is its autostart node.
    Autostart,
    /// The cluster layer asks (a relocation, the orchestrator, self-fencing).
    Cluster(ClusterOp),
}

/// The options and the answer of an HTTP action: the API's types, beside the status tree.
pub use berth_model::api::{ActionBody, ActionReply};

/// An action to run.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    /// `start`, `stop`, `restart`, `freeze`, `thaw`, `startfs`... (svcd serves those whose
    /// [`ServiceAction::http`] is true).
    pub action: ServiceAction,
    /// Its options.
    pub body: ActionBody,
    /// Who acts, heading its lines in the service's log file (`svcd http`).
    pub origin: &'static str,
    /// Why, for that file: `requested by 127.0.0.1:50312`.
    pub why: String,
}

impl ActionRequest {
    /// The action with its options, as a command line would say it (`stopfs --rid fs#1`).
    pub(crate) fn command(&self) -> String {
        format!("{}{}", self.action.words(), self.body.command_tail())
    }
}

/// The daemon's handle on a worker. The worker ends when it is dropped.
#[derive(Debug)]
pub struct Handle {
    /// Checks and actions.
    pub tx: mpsc::Sender<Msg>,
    /// The service's config: the latest one wins, sending never waits.
    pub config: watch::Sender<Loaded>,
    /// Tells this worker from a later one of a service of the same name.
    pub id: u64,
}
