//! The `drp_active` mark: a DR node started a service without etcd (`svc SVC start --force` with
//! the primary site and its etcd lost). It lives in the service's var dir on the DR node
//! (`<var>/<svc>/drp_active`, see [`crate::paths::Paths::drp_mark`]) and in etcd once reachable;
//! while it stands, the primary nodes refuse to start the service and to sync it, naming the DR
//! node, and every receiver refuses syncs. Pure: callers read and write the file.

use serde::{Deserialize, Serialize};

/// What the mark records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrpMark {
    /// The DR node that started the service.
    pub node: String,
    /// When, in seconds since the Unix epoch.
    pub time: u64,
    /// The fencing token the DR start ran under (0 when it took none: etcd was unreachable).
    pub token: i64,
}

/// A mark that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("drp_active mark: {0}")]
pub struct DrpMarkError(#[from] serde_json::Error);

impl DrpMark {
    /// The mark's file text.
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parse the file's text.
    pub fn parse(text: &str) -> Result<DrpMark, DrpMarkError> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_garbage_is_an_error() {
        let m = DrpMark {
            node: "n3".into(),
            time: 1_800_000_000,
            token: 0,
        };
        assert_eq!(DrpMark::parse(&m.to_json()).unwrap(), m);
        DrpMark::parse("{\"node\": 3}").unwrap_err();
    }
}
