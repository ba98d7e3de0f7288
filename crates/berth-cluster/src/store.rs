//! The etcd client: every read and transaction berth makes, each bounded in time.

use std::future::Future;
use std::time::Duration;

use berth_model::config::ClusterConfig;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    KeyValue, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::{Intent, NodeRecord, OwnerRecord, Target};
use crate::view::ClusterView;
use crate::{ClusterError, Keys, format_ms, now_ms};

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
    fn from_kv(key: &str, kv: &KeyValue) -> Result<Ownership, ClusterError> {
        Ok(Ownership {
            record: decode(key, kv.value())?,
            token: kv.mod_revision(),
            lease: kv.lease(),
        })
    }
}

/// One cluster's etcd, for one node.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    cluster: String,
    node: String,
    endpoints: String,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("cluster", &self.cluster)
            .field("node", &self.node)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|e| ClusterError::Decode {
        key: key.to_string(),
        why: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain records cannot fail (no maps with non-string keys).
    serde_json::to_vec(value).unwrap_or_default()
}

impl Store {
    /// Connect to the cluster's etcd as `node`. `timeout` bounds every request.
    pub async fn connect(
        cfg: &ClusterConfig,
        node: &str,
        timeout: Duration,
    ) -> Result<Store, ClusterError> {
        let endpoints = cfg.etcd.join(",");
        // No HTTP/2 keepalive pings: more often than etcd's --grpc-keepalive-min-time they break
        // every watch. Each request is bounded by `timeout` instead.
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout);
        if let Some(tls) = tls_options(cfg)? {
            opts = opts.with_tls(tls);
        }
        let what = "connect".to_string();
        let client = tokio::time::timeout(timeout, Client::connect(&cfg.etcd, Some(opts)))
            .await
            .map_err(|_| ClusterError::Timeout {
                endpoints: endpoints.clone(),
                what: what.clone(),
                timeout_ms: timeout.as_millis(),
            })?
            .map_err(|source| ClusterError::Etcd {
                endpoints: endpoints.clone(),
                what,
                source,
            })?;
        Ok(Store {
            client,
            keys: Keys::new(&cfg.name),
            cluster: cfg.name.clone(),
            node: node.to_string(),
            endpoints,
            timeout,
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The etcd client (for watches and leases).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The per-request bound.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run one etcd request, bounded by the timeout; errors name what was being done.
    pub async fn bounded<T>(
        &self,
        what: impl Into<String>,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(ClusterError::Etcd {
                endpoints: self.endpoints.clone(),
                what: what.into(),
                source,
            }),
            Err(_) => Err(ClusterError::Timeout {
                endpoints: self.endpoints.clone(),
                what: what.into(),
                timeout_ms: self.timeout.as_millis(),
            }),
        }
    }

    /// A node's record and the lease it hangs on.
    pub async fn node_record(&self, node: &str) -> Result<Option<(NodeRecord, i64)>, ClusterError> {
        let key = self.keys.node(node);
        let mut c = self.client.clone();
        let resp = self
            .bounded(format!("get {key}"), c.get(key.clone(), None))
            .await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => Ok(Some((decode(&key, kv.value())?, kv.lease()))),
        }
    }

    /// This node's lease, from its node key (svcd keeps both): what a CLI start hangs the
    /// owner key on.
    pub async fn my_lease(&self) -> Result<i64, ClusterError> {
        match self.node_record(&self.node).await? {
            Some((_, lease)) if lease != 0 => Ok(lease),
            _ => Err(ClusterError::NoLease {
                node: self.node.clone(),
                cluster: self.cluster.clone(),
            }),
        }
    }

    /// A service's ownership, if any node owns it.
    pub async fn owner(&self, svc: &str) -> Result<Option<Ownership>, ClusterError> {
        let key = self.keys.owner(svc);
        let mut c = self.client.clone();
        let resp = self
            .bounded(format!("get {key}"), c.get(key.clone(), None))
            .await?;
        resp.kvs()
            .first()
            .map(|kv| Ownership::from_kv(&key, kv))
            .transpose()
    }

    /// Take the service for this node, under `lease` (this node's), in one transaction that
    /// fails when another node owns it or when `lease` is not this node's current lease.
    /// Already owned by this node: that ownership, unchanged.
    pub async fn acquire(
        &self,
        svc: &str,
        lease: i64,
        why: &str,
    ) -> Result<Ownership, ClusterError> {
        let key = self.keys.owner(svc);
        let node_key = self.keys.node(&self.node);
        let record = OwnerRecord {
            node: self.node.clone(),
            since_ms: now_ms(),
            why: why.to_string(),
        };
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Compare::lease(node_key.clone(), CompareOp::Equal, lease),
            ])
            .and_then([TxnOp::put(
                key.clone(),
                encode(&record),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None), TxnOp::get(node_key, None)]);
        let mut c = self.client.clone();
        let resp = self.bounded(format!("take {key}"), c.txn(txn)).await?;
        if resp.succeeded() {
            let token = resp.header().map_or(0, |h| h.revision());
            return Ok(Ownership {
                record,
                token,
                lease,
            });
        }
        let mut owner = None;
        let mut node_lease = 0;
        for (i, op) in resp.op_responses().into_iter().enumerate() {
            if let TxnOpResponse::Get(g) = op
                && let Some(kv) = g.kvs().first()
            {
                if i == 0 {
                    owner = Some(Ownership::from_kv(&key, kv)?);
                } else {
                    node_lease = kv.lease();
                }
            }
        }
        match owner {
            Some(o) if o.record.node == self.node && o.lease == node_lease && node_lease != 0 => {
                Ok(o)
            }
            Some(o) => Err(ClusterError::OwnedBy {
                svc: svc.to_string(),
                owner: o.record.node,
                since: format_ms(o.record.since_ms),
                me: self.node.clone(),
            }),
            None => Err(ClusterError::NoLease {
                node: self.node.clone(),
                cluster: self.cluster.clone(),
            }),
        }
    }

    /// Give the service up, if `token` is still the current ownership. `Ok(false)`: it was
    /// not (someone else owns it now, or nobody): nothing was changed.
    pub async fn release(&self, svc: &str, token: i64) -> Result<bool, ClusterError> {
        let key = self.keys.owner(svc);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, token)])
            .and_then([TxnOp::delete(key.clone(), None)]);
        let mut c = self.client.clone();
        let resp = self.bounded(format!("release {key}"), c.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Hand the service from the ownership `token` to node `to`, under `to`'s lease, in one
    /// transaction: fails (nothing changed) when `token` is stale or `to_lease` is not `to`'s
    /// current lease. Returns the new ownership (a higher token).
    pub async fn transfer(
        &self,
        svc: &str,
        token: i64,
        to: &str,
        to_lease: i64,
        why: &str,
    ) -> Result<Ownership, ClusterError> {
        let key = self.keys.owner(svc);
        let record = OwnerRecord {
            node: to.to_string(),
            since_ms: now_ms(),
            why: why.to_string(),
        };
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key.clone(), CompareOp::Equal, token),
                Compare::lease(self.keys.node(to), CompareOp::Equal, to_lease),
            ])
            .and_then([TxnOp::put(
                key.clone(),
                encode(&record),
                Some(PutOptions::new().with_lease(to_lease)),
            )]);
        let mut c = self.client.clone();
        let resp = self
            .bounded(format!("hand {key} to {to}"), c.txn(txn))
            .await?;
        if !resp.succeeded() {
            return Err(ClusterError::Fenced {
                svc: svc.to_string(),
                token,
            });
        }
        Ok(Ownership {
            record,
            token: resp.header().map_or(0, |h| h.revision()),
            lease: to_lease,
        })
    }

    /// Freeze (or thaw) the service cluster-wide.
    pub async fn set_frozen(&self, svc: &str, frozen: bool) -> Result<(), ClusterError> {
        let key = self.keys.frozen(svc);
        let mut c = self.client.clone();
        if frozen {
            self.bounded(format!("put {key}"), c.put(key.clone(), "1", None))
                .await?;
        } else {
            self.bounded(format!("delete {key}"), c.delete(key.clone(), None))
                .await?;
        }
        Ok(())
    }

    /// Set what the orchestrator keeps the service at.
    pub async fn set_target(&self, svc: &str, target: Target) -> Result<(), ClusterError> {
        let key = self.keys.target(svc);
        let mut c = self.client.clone();
        self.bounded(
            format!("put {key}"),
            c.put(key.clone(), target.as_str(), None),
        )
        .await?;
        Ok(())
    }

    /// Write a node's record under its lease.
    pub async fn put_node(&self, record: &NodeRecord, lease: i64) -> Result<(), ClusterError> {
        let key = self.keys.node(&record.name);
        let mut c = self.client.clone();
        self.bounded(
            format!("put {key}"),
            c.put(
                key.clone(),
                encode(record),
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await?;
        Ok(())
    }

    /// Write an intent, unless one is already pending: `Ok(false)` then.
    pub async fn put_intent(&self, svc: &str, intent: &Intent) -> Result<bool, ClusterError> {
        let key = self.keys.intent(svc);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                encode(intent),
                Some(PutOptions::new().with_lease(intent.lease)),
            )]);
        let mut c = self.client.clone();
        let resp = self.bounded(format!("put {key}"), c.txn(txn)).await?;
        Ok(resp.succeeded())
    }

    /// Remove the intent `id` of `svc` (only that one).
    pub async fn delete_intent(&self, svc: &str, intent: &Intent) -> Result<(), ClusterError> {
        let key = self.keys.intent(svc);
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                encode(intent),
            )])
            .and_then([TxnOp::delete(key.clone(), None)]);
        let mut c = self.client.clone();
        self.bounded(format!("delete {key}"), c.txn(txn)).await?;
        Ok(())
    }

    /// Append a log line of intent `id` under `lease`.
    pub async fn put_log(
        &self,
        id: &str,
        seq: u64,
        line: &crate::LogLine,
        lease: i64,
    ) -> Result<(), ClusterError> {
        let key = self.keys.log(id, &self.node, seq);
        let mut c = self.client.clone();
        self.bounded(
            format!("put {key}"),
            c.put(
                key.clone(),
                encode(line),
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await?;
        Ok(())
    }

    /// Delete every log line of intent `id`.
    pub async fn delete_logs(&self, id: &str) -> Result<(), ClusterError> {
        let key = self.keys.logs(id);
        let mut c = self.client.clone();
        self.bounded(
            format!("delete {key}"),
            c.delete(key.clone(), Some(DeleteOptions::new().with_prefix())),
        )
        .await?;
        Ok(())
    }

    /// Grant a lease of `ttl` seconds.
    pub async fn grant(&self, ttl: i64) -> Result<i64, ClusterError> {
        let mut c = self.client.clone();
        let resp = self
            .bounded(format!("grant a {ttl}s lease"), c.lease_grant(ttl, None))
            .await?;
        Ok(resp.id())
    }

    /// Revoke a lease (and every key under it).
    pub async fn revoke(&self, lease: i64) -> Result<(), ClusterError> {
        let mut c = self.client.clone();
        self.bounded(format!("revoke lease {lease:x}"), c.lease_revoke(lease))
            .await?;
        Ok(())
    }

    /// The remaining TTL of a lease, `None` when it expired or never existed.
    pub async fn lease_ttl(&self, lease: i64) -> Result<Option<i64>, ClusterError> {
        let mut c = self.client.clone();
        let resp = self
            .bounded(
                format!("time to live of lease {lease:x}"),
                c.lease_time_to_live(lease, None),
            )
            .await?;
        Ok((resp.ttl() > 0).then_some(resp.ttl()))
    }

    /// Everything of the cluster in one read.
    pub async fn snapshot(&self) -> Result<ClusterView, ClusterError> {
        let root = self.keys.root().to_string();
        let mut c = self.client.clone();
        let resp = self
            .bounded(
                format!("get {root}*"),
                c.get(root.clone(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let mut view = ClusterView {
            revision: resp.header().map_or(0, |h| h.revision()),
            ..ClusterView::default()
        };
        for kv in resp.kvs() {
            view.apply_put(&self.keys, kv);
        }
        Ok(view)
    }
}

fn tls_options(cfg: &ClusterConfig) -> Result<Option<TlsOptions>, ClusterError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| ClusterError::TlsFile {
            path: p.to_path_buf(),
            source,
        })
    };
    if cfg.etcd_ca.is_none() && cfg.etcd_cert.is_none() {
        return Ok(None);
    }
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.etcd_ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&cfg.etcd_cert, &cfg.etcd_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Some(tls))
}
