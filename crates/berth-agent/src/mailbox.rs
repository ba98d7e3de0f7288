//! What svcd's tasks send a service's worker, and what the worker answers: the worker's
//! mailbox, apart from the worker itself (the daemon, the HTTP server and the cluster tasks
//! hold these without depending on how a worker runs).

use std::sync::Arc;

use berth_drivers::StatusReads;
use berth_model::config::ServiceConfig;
use berth_model::status::ServiceStatus;
use serde::{Deserialize, Serialize};
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

/// Options of an HTTP action (the JSON body, all optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `--rid`: comma separated rids.
    #[serde(default)]
    pub rid: Option<String>,
    /// `--tags`.
    #[serde(default)]
    pub tags: Option<String>,
    /// `--dry-run`.
    #[serde(default)]
    pub dry_run: bool,
    /// `--disable-rollback`.
    #[serde(default)]
    pub disable_rollback: bool,
    /// `--force`.
    #[serde(default)]
    pub force: bool,
    /// `--waitlock` in seconds (default 60).
    #[serde(default)]
    pub waitlock: Option<f64>,
}

/// An action to run.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    /// `start`, `stop`, `restart`, `freeze`, `thaw`, `startfs`...
    pub action: String,
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
        let b = &self.body;
        let mut words = vec![self.action.clone()];
        if let Some(r) = &b.rid {
            words.push(format!("--rid {r}"));
        }
        if let Some(t) = &b.tags {
            words.push(format!("--tags {t}"));
        }
        for (on, flag) in [
            (b.dry_run, "--dry-run"),
            (b.disable_rollback, "--disable-rollback"),
            (b.force, "--force"),
        ] {
            if on {
                words.push(flag.to_string());
            }
        }
        if let Some(w) = b.waitlock {
            words.push(format!("--waitlock {w}"));
        }
        words.join(" ")
    }
}

/// What an action did: the JSON answer of `POST /services/<svc>/actions/<action>`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReply {
    /// The service.
    pub service: String,
    /// The action.
    pub action: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Resources whose state changed.
    pub changed: Vec<String>,
    /// Resources already in the wanted state.
    pub unchanged: Vec<String>,
    /// The service's status after the action.
    pub status: Option<ServiceStatus>,
    /// The HTTP status code to answer with.
    #[serde(skip)]
    pub code: u16,
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
