//! svcd's HTTP API beside its status tree: the action request's body and answer, the header
//! names of svcd's local socket, and what svcd's API and the collector's share: the error
//! answer, `{"error": "..."}` (docs/http-api.md, docs/collector.md).

use serde::{Deserialize, Serialize};

use crate::action::{ActionOpt, ServiceAction};
use crate::status::ServiceStatus;

/// The header of svcd's local socket answers naming when the status was checked (ms since
/// the epoch).
pub const CHECKED_AT: &str = "x-berth-checked-at";
/// The header of svcd's local socket answers naming the check period (ms).
pub const MONITOR_INTERVAL: &str = "x-berth-monitor-interval";

/// The options of `POST /services/SVC/actions/ACTION` (its JSON body, every field optional):
/// the action options of svc that svcd takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `--rid`: comma separated rids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// `--tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlock: Option<f64>,
}

impl ActionBody {
    /// The options set in the body, as the action table names them.
    pub fn given(&self) -> Vec<ActionOpt> {
        [
            (self.rid.is_some(), ActionOpt::Rid),
            (self.tags.is_some(), ActionOpt::Tags),
            (self.dry_run, ActionOpt::DryRun),
            (self.disable_rollback, ActionOpt::DisableRollback),
            (self.force, ActionOpt::Force),
            (self.waitlock.is_some(), ActionOpt::Waitlock),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, o)| o)
        .collect()
    }

    /// The body's keys `action` does not take (`freeze` with a `rid`), as the body spells
    /// them (`dry_run`).
    pub fn refused(&self, action: ServiceAction) -> Vec<String> {
        action
            .refused(&self.given())
            .into_iter()
            .map(|o| o.long().replace('-', "_"))
            .collect()
    }

    /// The options as a command line says them, after the action (` --rid fs#1 --force`).
    pub fn command_tail(&self) -> String {
        let mut words = String::new();
        if let Some(r) = &self.rid {
            words.push_str(&format!(" --rid {r}"));
        }
        if let Some(t) = &self.tags {
            words.push_str(&format!(" --tags {t}"));
        }
        for (on, flag) in [
            (self.dry_run, "--dry-run"),
            (self.disable_rollback, "--disable-rollback"),
            (self.force, "--force"),
        ] {
            if on {
                words.push(' ');
                words.push_str(flag);
            }
        }
        if let Some(w) = self.waitlock {
            words.push_str(&format!(" --waitlock {w}"));
        }
        words
    }
}

/// What an action did: the JSON answer of `POST /services/SVC/actions/ACTION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The HTTP status code svcd answers with (not in the body).
    #[serde(skip)]
    pub code: u16,
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

/// `{"error": msg}` as bytes, the body of an error answer.
pub fn error_body(msg: &str) -> Vec<u8> {
    let body = ApiError {
        error: msg.to_string(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_body_says_its_options_as_a_command_line() {
        let b: ActionBody =
            serde_json::from_str(r#"{"rid": "fs#1", "force": true, "waitlock": 5}"#).unwrap();
        assert_eq!(b.command_tail(), " --rid fs#1 --force --waitlock 5");
        serde_json::from_str::<ActionBody>(r#"{"to": "n2"}"#).unwrap_err();
        // The keys an action does not take, named as the body spells them.
        let b: ActionBody = serde_json::from_str(r#"{"rid": "fs#1", "dry_run": true}"#).unwrap();
        assert_eq!(b.refused(ServiceAction::Freeze), ["rid", "dry_run"]);
        assert!(b.refused(ServiceAction::Start).is_empty());
    }

    #[test]
    fn the_error_body_is_one_field() {
        let body = error_body("no service \"x\"");
        assert_eq!(body, br#"{"error":"no service \"x\""}"#);
        let back: ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(back.error, "no service \"x\"");
    }
}
