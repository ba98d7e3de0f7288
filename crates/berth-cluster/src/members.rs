//! The durable membership. A node is a member from its first join until an operator removes it
//! (`svc node forget NODE`, refused while the node holds a lease). Members do not come from
//! leases: a dead node stays a member (its `hb` is down), so a service's `nodes = "*"` never
//! shrinks when a node dies. The order of the members is the order they joined (the member
//! key's create revision).

use etcd_client::{
    Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};

use crate::{ClusterError, Store, now_ms};

/// `members/<node>`: a member of the cluster (no lease: it outlives the node's svcd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The node name.
    pub name: String,
    /// When it first joined (ms since the epoch).
    pub joined_ms: u64,
}

/// Nodes ordered by the revision their member key was created at: the order they joined.
pub fn join_order(mut members: Vec<(String, i64)>) -> Vec<String> {
    members.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    members.into_iter().map(|(n, _)| n).collect()
}

impl Store {
    /// Make this node a member (a no-op when it is one already: its place in the join order
    /// stays). True when this call added it.
    pub async fn join(&self) -> Result<bool, ClusterError> {
        let key = self.keys().member(self.node());
        let record = MemberRecord {
            name: self.node().to_string(),
            joined_ms: now_ms(),
        };
        // Serialising this plain record cannot fail.
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, None)]);
        let resp = self
            .call(format!("join {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// The members, in the order they joined.
    pub async fn members(&self) -> Result<Vec<String>, ClusterError> {
        let prefix = self.keys().members();
        let resp = self
            .call(format!("get {prefix}*"), |mut c| {
                let k = prefix.clone();
                async move {
                    c.get(
                        k,
                        Some(
                            GetOptions::new()
                                .with_prefix()
                                .with_keys_only()
                                .with_sort(SortTarget::Create, SortOrder::Ascend),
                        ),
                    )
                    .await
                }
            })
            .await?;
        let keys = self.keys();
        Ok(join_order(
            resp.kvs()
                .iter()
                .filter_map(|kv| {
                    let k = kv.key_str().ok()?;
                    Some((keys.parse_member_key(k)?.to_string(), kv.create_revision()))
                })
                .collect(),
        ))
    }

    /// `svc node forget NODE`: remove `node` from the members, in one transaction that
    /// fails while the node's key (under its lease) exists.
    pub async fn forget(&self, node: &str) -> Result<(), ClusterError> {
        let member = self.keys().member(node);
        let node_key = self.keys().node(node);
        let txn = Txn::new()
            .when([
                Compare::create_revision(node_key.clone(), CompareOp::Equal, 0),
                Compare::create_revision(member.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::delete(member.clone(), None)])
            .or_else([TxnOp::get(node_key, None), TxnOp::get(member.clone(), None)]);
        let resp = self
            .call(format!("forget {member}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        if resp.succeeded() {
            return Ok(());
        }
        let mut lease = None;
        for (i, op) in resp.op_responses().into_iter().enumerate() {
            if let TxnOpResponse::Get(g) = op
                && let Some(kv) = g.kvs().first()
                && i == 0
            {
                lease = Some(kv.lease());
            }
        }
        match lease {
            Some(lease) => Err(ClusterError::MemberAlive {
                node: node.to_string(),
                lease,
                cluster: self.cluster().to_string(),
            }),
            None => Err(ClusterError::NotMember {
                node: node.to_string(),
                cluster: self.cluster().to_string(),
                members: self.members().await?.join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_in_join_order() {
        let m = vec![
            ("n3".to_string(), 9),
            ("n1".to_string(), 4),
            ("n2".to_string(), 7),
        ];
        assert_eq!(join_order(m), ["n1", "n2", "n3"]);
        assert!(join_order(Vec::new()).is_empty());
    }
}
