//! berth's cluster layer, on etcd: never heartbeats or consensus of berth's own.
//!
//! - [`keys`]: where everything lives under `/berth/<cluster>/`.
//! - [`records`]: the JSON values of those keys (node, owner, intent, log line).
//! - [`store`]: the etcd client: reads, the ownership transactions (acquire, release, transfer),
//!   freeze and target state, intents.
//! - [`lease`]: the node's lease, kept alive by svcd, and the deadline counted from the last
//!   renewal etcd acknowledged, on the monotonic clock.
//! - [`members`]: the durable membership: a node is a member from its first join until
//!   `svc node forget`; `nodes = "*"` resolves from it.
//! - [`files`]: the one copy of each service file in etcd, and what a node does with its own.
//! - [`view`]: a snapshot of the whole cluster, the placement rules, and the fleet grid of `svc mon`.
//! - [`plan`]: the orchestrator's decisions, a pure function of the view, this node's lease,
//!   its service files and the orchestrator's memory.
//! - [`flex`]: flex services: slot keys, the flex planner (pure), the aggregate status.
//! - [`batch`]: owner keys taken in batches of up to 128 operations (a failover's starts).
//! - [`guard`]: the engine's [`berth_engine::StartGuard`] backed by the owner key.
//!
//! Ownership: a service runs on at most one node. Its owner key
//! (`/berth/<cluster>/services/<svc>/owner`) is created in a transaction that fails when it
//! exists, under the owner node's lease, so it goes when that node stops renewing. The key is
//! never rewritten while a node owns it: its `mod_revision` is the fencing token, and a change of
//! owner (relocation) is one put that raises it.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod batch;
pub mod drp;
pub mod files;
pub mod flex;
pub mod guard;
pub mod keys;
pub mod lease;
pub mod members;
pub mod plan;
pub mod records;
pub mod store;
pub mod view;

pub use batch::Taker;
pub use guard::EtcdGuard;
pub use keys::Keys;
pub use lease::{LeaseHealth, LeaseKeeper, LeaseState};
pub use members::MemberRecord;
pub use records::Ownership;
pub use records::{
    Done, Intent, IntentAction, LogLine, NodeRecord, OwnerRecord, OwnerWhy, ServiceSummary, Target,
};
pub use store::Store;
pub use view::ClusterView;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd could not be reached or refused the request.
    #[error("etcd ({endpoints}): {what}: {source}")]
    Etcd {
        /// The endpoints tried.
        endpoints: String,
        /// What berth was doing.
        what: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer in time.
    #[error("etcd ({endpoints}): {what}: no answer within {timeout_ms}ms")]
    Timeout {
        /// The endpoints tried.
        endpoints: String,
        /// What berth was doing.
        what: String,
        /// The bound.
        timeout_ms: u128,
    },
    /// etcd gave no answer to a request sent again and again (the last failure in `cause`).
    #[error("etcd ({endpoints}): {what}: no answer: {cause}")]
    Unanswered {
        /// The endpoints tried.
        endpoints: String,
        /// What berth was doing.
        what: String,
        /// Why the last attempt failed.
        cause: String,
    },
    /// A TLS file named in `[cluster]` could not be read.
    #[error("cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key holds something berth did not write.
    #[error("etcd key {key}: cannot decode its value: {why}")]
    Decode {
        /// The key.
        key: String,
        /// The decoder's message.
        why: String,
    },
    /// Every slot of a flex service is held (or this node's lease, or the target, changed).
    #[error(
        "{svc}: no slot free: flex_max {max} instances run already (or the target, freeze or this node's lease changed)"
    )]
    NoSlot {
        /// The service.
        svc: String,
        /// Its `flex_max`.
        max: u32,
    },
    /// Another node owns the service.
    #[error("{svc} is running on {owner} (since {since}), use svc {svc} switch --to {me}")]
    OwnedBy {
        /// The service.
        svc: String,
        /// Its owner.
        owner: String,
        /// When the owner took it (local time, RFC 3339).
        since: String,
        /// This node.
        me: String,
    },
    /// This node has no lease in etcd: svcd is not running here, or lost the lease.
    #[error(
        "node {node} has no lease in cluster {cluster}: svcd must run on this node (it holds the \
         lease a service's ownership hangs on)"
    )]
    NoLease {
        /// This node.
        node: String,
        /// The cluster.
        cluster: String,
    },
    /// svcd on this node lost its lease (not renewed in time) and has not rejoined yet.
    #[error(
        "node {node} has lost its lease in cluster {cluster}: no cluster start until it rejoins"
    )]
    LeaseLost {
        /// This node.
        node: String,
        /// The cluster.
        cluster: String,
    },
    /// A named node is not (or no longer) alive in the cluster.
    #[error(
        "node {node} is not alive in cluster {cluster} (no node key: its svcd is down or cut off)"
    )]
    NodeNotAlive {
        /// The node.
        node: String,
        /// The cluster.
        cluster: String,
    },
    /// A start decided on the view at `revision` was not taken: the service's target or frozen
    /// key changed since (an operator's stop or freeze wins over a queued start).
    #[error(
        "{svc}: not taken: its target or freeze changed after revision {revision} (an operator's action since)"
    )]
    ChangedSince {
        /// The service.
        svc: String,
        /// The revision the decision read.
        revision: i64,
    },
    /// `svc node forget` of a node that still holds a lease.
    #[error(
        "node {node} holds lease {lease:x} in cluster {cluster}: stop its svcd (or wait until its lease expires) before forgetting it"
    )]
    MemberAlive {
        /// The node.
        node: String,
        /// Its lease.
        lease: i64,
        /// The cluster.
        cluster: String,
    },
    /// `svc node forget` of a node that is no member.
    #[error("node {node} is not a member of cluster {cluster} (members: {members})")]
    NotMember {
        /// The node.
        node: String,
        /// The cluster.
        cluster: String,
        /// The members, comma-separated.
        members: String,
    },
    /// The ownership changed under us: the fencing token is no longer ours.
    #[error("{svc}: the ownership changed meanwhile (token {token} is no longer current)")]
    Fenced {
        /// The service.
        svc: String,
        /// The stale token.
        token: i64,
    },
}

/// A service file's checksum as nodes publish it for `sync` (FNV-1a, 64 bits: the same bytes
/// give the same sum on every node; not a security measure).
pub fn file_checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Milliseconds since the epoch (wall clock: for display and records only, never for deadlines).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `ms` since the epoch as RFC 3339 UTC, second precision.
pub fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `ms` since the epoch as RFC 3339 UTC with milliseconds (`2026-12-01T10:30:15.123Z`): for
/// deadlines, where a second is too coarse. Fixed width: the text order is the time order.
pub fn format_ms_precise(ms: u64) -> String {
    let secs = format_ms(ms);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms % 1000)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_ms_precise(1_795_000_000_042),
            "2026-11-18T11:06:40.042Z"
        );
    }
}
