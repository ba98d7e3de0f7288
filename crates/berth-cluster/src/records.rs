//! The values berth keeps in etcd, as JSON.

use std::collections::BTreeMap;

use berth_model::Status;
use etcd_client::KeyValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ClusterError;

/// `nodes/<node>`: a live node (the key lives as long as the node's lease).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node name.
    pub name: String,
    /// berth's version on it.
    pub version: String,
    /// Its svcd endpoint.
    pub listen: String,
    /// The address other nodes reach it at (syncs' ssh): node.toml `address`, else the host
    /// of `listen`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
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
    /// Its DR nodes (`drpnodes`): never the orchestrator's candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drpnodes: Vec<String>,
    /// Why the file does not load there (its first error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// When a start failed there lately (ms since the epoch): no candidate until the backoff ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_ms: Option<u64>,
    /// A flex service's counts, as that node's file says (absent: failover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<berth_model::fleet::FleetFlex>,
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
    /// Why it took it.
    #[serde(default)]
    pub why: OwnerWhy,
}

/// Why a node owns a service, as the owner key says it (a string in the JSON: `start`,
/// `orchestrate`, `failover`, `fence recovery`, `switch from n1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OwnerWhy {
    /// An operator's action on this node (`start`, `restart`, `startfs`...).
    Action(String),
    /// The orchestrator placed it: nobody owned it yet.
    Orchestrate,
    /// The orchestrator took it after its owner went or gave it up.
    Failover,
    /// Self-fencing stopped it and the lease survived: started again where it was.
    FenceRecovery,
    /// Handed over by a switch from node `from`.
    Switch {
        /// The node it came from.
        from: String,
    },
}

impl Default for OwnerWhy {
    fn default() -> Self {
        OwnerWhy::Action(String::new())
    }
}

impl std::fmt::Display for OwnerWhy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnerWhy::Action(a) => f.write_str(a),
            OwnerWhy::Orchestrate => f.write_str("orchestrate"),
            OwnerWhy::Failover => f.write_str("failover"),
            OwnerWhy::FenceRecovery => f.write_str("fence recovery"),
            OwnerWhy::Switch { from } => write!(f, "switch from {from}"),
        }
    }
}

impl From<String> for OwnerWhy {
    fn from(s: String) -> Self {
        match s.as_str() {
            "orchestrate" => OwnerWhy::Orchestrate,
            "failover" => OwnerWhy::Failover,
            "fence recovery" => OwnerWhy::FenceRecovery,
            _ => match s.strip_prefix("switch from ") {
                Some(from) => OwnerWhy::Switch {
                    from: from.to_string(),
                },
                None => OwnerWhy::Action(s),
            },
        }
    }
}

impl From<OwnerWhy> for String {
    fn from(w: OwnerWhy) -> Self {
        w.to_string()
    }
}

/// A service's current ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The owner key's value.
    pub record: OwnerRecord,
    /// The fencing token: the owner key's `mod_revision`.
    pub token: i64,
    /// The lease the key hangs on (the owner node's).
    pub lease: i64,
}

impl Ownership {
    pub(crate) fn from_kv(key: &str, kv: &KeyValue) -> Result<Ownership, ClusterError> {
        Ok(Ownership {
            record: decode(key, kv.value())?,
            token: kv.mod_revision(),
            lease: kv.lease(),
        })
    }
}

/// Decode the JSON value of `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Decode {
        key: key.to_string(),
        why: e.to_string(),
    })
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
    /// The intent's outcome, on the node's last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Done>,
}

/// How a node's part of an intent ended (`done` of its last line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Done {
    /// The service is up on the target.
    Up,
    /// This node's step failed (the line says why).
    Failed,
    /// The owner stopped the service and handed the owner key to the target.
    Handed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_why_reads_back_what_it_writes() {
        for w in [
            OwnerWhy::Action("start".into()),
            OwnerWhy::Orchestrate,
            OwnerWhy::Failover,
            OwnerWhy::FenceRecovery,
            OwnerWhy::Switch { from: "n1".into() },
        ] {
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(
                serde_json::from_str::<OwnerWhy>(&json).unwrap(),
                w,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::to_string(&OwnerWhy::Switch { from: "n1".into() }).unwrap(),
            "\"switch from n1\""
        );
        let line: LogLine =
            serde_json::from_str(r#"{"node":"n2","line":"x","done":"handed"}"#).unwrap();
        assert_eq!(line.done, Some(Done::Handed));
    }
}

/// `services/<svc>/slots/<n>`: the node that holds slot `n` of a flex service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The holder.
    pub node: String,
    /// When it took the slot (ms since the epoch).
    pub since_ms: u64,
}

/// A held slot, as the view sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHold {
    /// The holder.
    pub node: String,
    /// The instance's fencing token: the slot key's `mod_revision`.
    pub token: i64,
    /// The holder's lease the key hangs on.
    pub lease: i64,
    /// When the holder took it (ms since the epoch, the holder's clock).
    pub since_ms: u64,
}
