//! The values berth keeps in etcd, as JSON.

use std::collections::BTreeMap;

use berth_model::Status;
use serde::{Deserialize, Serialize};

/// `nodes/<node>`: a live node (the key lives as long as the node's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node name.
    pub name: String,
    /// berth's version on it.
    pub version: String,
    /// Its svcd endpoint.
    pub listen: String,
    /// When its svcd took this lease (ms since the epoch).
    pub since_ms: u64,
    /// When it last published this record.
    pub updated_ms: u64,
    /// Its services as it sees them.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceSummary>,
}

/// One service on one node, as published in the node's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// avail on that node.
    pub avail: Status,
    /// overall on that node.
    pub overall: Status,
    /// The service file's checksum there (`sync`).
    #[serde(default)]
    pub checksum: String,
    /// Whether the service file loads there.
    #[serde(default = "yes")]
    pub valid: bool,
    /// The nodes the file lets the service run on, in placement order.
    #[serde(default)]
    pub nodes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `services/<svc>/owner`: the node that runs the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The owner.
    pub node: String,
    /// When it took the service (ms since the epoch).
    pub since_ms: u64,
    /// Why: `start`, `switch from n1`, `orchestrate`...
    #[serde(default)]
    pub why: String,
}

/// `services/<svc>/target`: what the orchestrator keeps the service at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Keep it running (somewhere).
    Started,
    /// Leave it stopped (an operator's `svc stop`).
    Stopped,
}

impl Target {
    /// The key's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Started => "started",
            Target::Stopped => "stopped",
        }
    }

    /// The value read back.
    pub fn parse(s: &str) -> Option<Target> {
        match s {
            "started" => Some(Target::Started),
            "stopped" => Some(Target::Stopped),
            _ => None,
        }
    }
}

/// What an intent asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntentAction {
    /// Move the service to `to`.
    Switch,
}

/// `services/<svc>/intent`: an operator's relocation under way, under the requester's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Unique id: the log lines of this intent live under `logs/<id>/`.
    pub id: String,
    /// What to do.
    pub action: IntentAction,
    /// The node the service goes to.
    pub to: String,
    /// The node the service is taken from (its owner when the intent was written).
    pub from: String,
    /// The fencing token of the ownership being moved.
    pub token: i64,
    /// Who asked (node name).
    pub by: String,
    /// The requester's lease: log lines are written under it.
    pub lease: i64,
}

/// `logs/<intent>/<node>/<seq>`: one line of an action run for an intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The node that logged it.
    pub node: String,
    /// The formatted line (`HH:MM:SS LEVEL   SVC.RID   message`).
    pub line: String,
    /// The intent's outcome, on the node's last line: `stopped`, `failed`, `up`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
}
