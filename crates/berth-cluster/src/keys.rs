//! The key layout, all under `/berth/<cluster>/`:
//!
//! | key | value | lease |
//! | --- | --- | --- |
//! | `nodes/<node>` | [`NodeRecord`](crate::NodeRecord) | the node's |
//! | `members/<node>` | [`MemberRecord`](crate::MemberRecord) (durable: from the first join to `svc node forget`) | none |
//! | `services/<svc>/owner` | [`OwnerRecord`](crate::OwnerRecord) | the owner node's |
//! | `services/<svc>/frozen` | `1` (cluster-wide freeze) | none |
//! | `services/<svc>/target` | `started` / `stopped` (what the orchestrator keeps) | none |
//! | `services/<svc>/drp_active` | [`DrpMark`](berth_model::drp::DrpMark) (a DR node started it; cleared by the fail-back switch) | none |
//! | `services/<svc>/file` | the service file's bytes (the cluster's one copy) | none |
//! | `services/<svc>/file_meta` | [`FileMeta`](crate::files::FileMeta) (format, checksum, size, writer; written with `file`) | none |
//! | `services/<svc>/slots/<n>` | [`SlotRecord`](crate::records::SlotRecord) (slot `n` of a flex service) | the holder's |
//! | `services/<svc>/instances/<node>` | the slot number `node` holds (one per node) | the holder's |
//! | `services/<svc>/intent` | [`Intent`](crate::Intent) (a switch under way) | the requester's |
//! | `logs/<intent>/<node>/<seq>` | [`LogLine`](crate::LogLine) | the requester's |

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of cluster `name`.
    pub fn new(name: &str) -> Keys {
        Keys {
            prefix: format!("/berth/{name}/"),
        }
    }

    /// Everything of the cluster.
    pub fn root(&self) -> &str {
        &self.prefix
    }

    /// Every node key.
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    /// One node's key.
    pub fn node(&self, node: &str) -> String {
        format!("{}nodes/{node}", self.prefix)
    }

    /// Every member key.
    pub fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    /// One member's key.
    pub fn member(&self, node: &str) -> String {
        format!("{}members/{node}", self.prefix)
    }

    /// The node a key under `members/` names.
    pub fn parse_member_key<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)?.strip_prefix("members/")
    }

    /// Every service key.
    pub fn services(&self) -> String {
        format!("{}services/", self.prefix)
    }

    /// A service's owner key.
    pub fn owner(&self, svc: &str) -> String {
        format!("{}services/{svc}/owner", self.prefix)
    }

    /// A service's cluster-wide frozen flag.
    pub fn frozen(&self, svc: &str) -> String {
        format!("{}services/{svc}/frozen", self.prefix)
    }

    /// A service's expected state.
    pub fn target(&self, svc: &str) -> String {
        format!("{}services/{svc}/target", self.prefix)
    }

    /// A service's `drp_active` mark: a DR node started it (not leased).
    pub fn drp_active(&self, svc: &str) -> String {
        format!("{}services/{svc}/drp_active", self.prefix)
    }

    /// A service file's bytes (and, as a prefix, its metadata key too).
    pub fn file(&self, svc: &str) -> String {
        format!("{}services/{svc}/file", self.prefix)
    }

    /// A service file's metadata.
    pub fn file_meta(&self, svc: &str) -> String {
        format!("{}services/{svc}/file_meta", self.prefix)
    }

    /// A service's pending intent (a switch).
    pub fn intent(&self, svc: &str) -> String {
        format!("{}services/{svc}/intent", self.prefix)
    }

    /// Slot `n` of a flex service.
    pub fn slot(&self, svc: &str, n: u32) -> String {
        format!("{}services/{svc}/slots/{n}", self.prefix)
    }

    /// The mark of the one slot `node` holds of a flex service.
    pub fn instance(&self, svc: &str, node: &str) -> String {
        format!("{}services/{svc}/instances/{node}", self.prefix)
    }

    /// The slot number a service key's leaf names (`slots/2`).
    pub fn parse_slot_leaf(leaf: &str) -> Option<u32> {
        leaf.strip_prefix("slots/")?.parse().ok()
    }

    /// The log lines of one intent.
    pub fn logs(&self, id: &str) -> String {
        format!("{}logs/{id}/", self.prefix)
    }

    /// One log line of an intent.
    pub fn log(&self, id: &str, node: &str, seq: u64) -> String {
        format!("{}logs/{id}/{node}/{seq:08}", self.prefix)
    }

    /// The records of a service's sync resources: `sync/<svc>/`.
    pub fn syncs(&self, svc: &str) -> String {
        format!("{}sync/{svc}/", self.prefix)
    }

    /// The last sync attempt of one sync resource to one target (not leased).
    pub fn sync(&self, svc: &str, rid: &str, target: &str) -> String {
        format!("{}sync/{svc}/{rid}/{target}", self.prefix)
    }

    /// What a key under `sync/<svc>/` is: `(rid, target)`.
    pub fn parse_sync_key<'k>(&self, svc: &str, key: &'k str) -> Option<(&'k str, &'k str)> {
        key.strip_prefix(&self.syncs(svc))?.split_once('/')
    }

    /// What a key under `services/` is: `(svc, leaf)`, e.g. `("web", "owner")`.
    pub fn parse_service_key<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix("services/")?;
        rest.split_once('/')
    }

    /// The node a key under `nodes/` names.
    pub fn parse_node_key<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)?.strip_prefix("nodes/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("prod");
        assert_eq!(k.owner("web"), "/berth/prod/services/web/owner");
        assert_eq!(k.node("n1"), "/berth/prod/nodes/n1");
        assert_eq!(k.log("abc", "n1", 3), "/berth/prod/logs/abc/n1/00000003");
        assert_eq!(
            k.parse_service_key("/berth/prod/services/web/owner"),
            Some(("web", "owner"))
        );
        assert_eq!(k.parse_service_key("/berth/other/services/web/owner"), None);
        assert_eq!(k.parse_node_key("/berth/prod/nodes/n2"), Some("n2"));
        assert_eq!(k.member("n1"), "/berth/prod/members/n1");
        assert_eq!(k.parse_member_key("/berth/prod/members/n2"), Some("n2"));
        assert_eq!(k.parse_node_key("/berth/prod/members/n2"), None);
        assert_eq!(
            k.sync("web", "sync#1", "n3"),
            "/berth/prod/sync/web/sync#1/n3"
        );
        assert_eq!(
            k.parse_sync_key("web", "/berth/prod/sync/web/sync#1/n3"),
            Some(("sync#1", "n3"))
        );
        assert_eq!(k.slot("web", 2), "/berth/prod/services/web/slots/2");
        let slot = k.slot("web", 2);
        let (svc, leaf) = k.parse_service_key(&slot).unwrap();
        assert_eq!((svc, Keys::parse_slot_leaf(leaf)), ("web", Some(2)));
        assert_eq!(Keys::parse_slot_leaf("owner"), None);
        assert_eq!(
            k.instance("web", "n1"),
            "/berth/prod/services/web/instances/n1"
        );
    }
}
