//! The last action's result, kept in `<var>/<svc>/last_action.json` so the agent (and operators)
//! learn what the CLI did, and when, without asking it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One finished action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// `start`, `stop`, `restart`, `startfs`...
    pub action: String,
    /// When it began, in milliseconds since the epoch (an integer: it identifies the record).
    pub started_ms: u64,
    /// Seconds it took.
    pub duration: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The pid that ran it.
    pub pid: u32,
    /// The cluster's fencing token the action ran under (a start in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence: Option<i64>,
    /// It ran on part of the service (`--rid`, `--tags`, a partial action such as
    /// `stopcontainer`): it says nothing of the operator's target for the whole service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl ActionRecord {
    /// The operator's target for the whole service this action set, if any: a partial action
    /// sets none.
    pub fn target(&self) -> Option<berth_model::status::Status> {
        if self.partial {
            None
        } else {
            berth_model::status::target_of_action(&self.action)
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The file name under `<var>/<svc>/`.
pub const FILE: &str = "last_action.json";

/// Write `record` atomically to `<dir>/last_action.json`.
pub fn write(dir: &Path, record: &ActionRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

/// Read `<dir>/last_action.json`, if any.
pub fn read(dir: &Path) -> Option<ActionRecord> {
    let text = std::fs::read(dir.join(FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_none());
        let r = ActionRecord {
            action: "start".into(),
            started_ms: now_ms(),
            duration: 0.5,
            ok: false,
            error: Some("fs#1: boom".into()),
            pid: 1,
            fence: Some(7),
            partial: false,
        };
        write(&dir.path().join("web"), &r).unwrap();
        assert_eq!(read(&dir.path().join("web")), Some(r));
    }

    #[test]
    fn a_partial_action_sets_no_target() {
        use berth_model::status::Status;
        let r = |action: &str, partial: bool| ActionRecord {
            action: action.into(),
            started_ms: 1,
            duration: 0.0,
            ok: true,
            error: None,
            pid: 1,
            fence: None,
            partial,
        };
        assert_eq!(r("stop", false).target(), Some(Status::Down));
        assert_eq!(r("start", false).target(), Some(Status::Up));
        // `svc web stop --rid container#1`, `stopcontainer`: the service's target is unchanged.
        assert_eq!(r("stop", true).target(), None);
        assert_eq!(r("start", true).target(), None);
        // A record written before the field existed reads as a whole-service action.
        let old: ActionRecord = serde_json::from_str(
            r#"{"action":"stop","started_ms":1,"duration":0.0,"ok":true,"error":null,"pid":1}"#,
        )
        .unwrap();
        assert_eq!(old.target(), Some(Status::Down));
    }
}
