//! The etcd client: every read and transaction berth makes, each bounded in time.

use std::future::Future;
use std::time::Duration;

use berth_model::config::ClusterConfig;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde::Serialize;

use crate::records::{
    Intent, LogLine, NodeRecord, OwnerRecord, OwnerWhy, Ownership, Target, decode,
};
use crate::view::ClusterView;
use crate::{ClusterError, Keys, format_ms, now_ms};

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

/// The pause between two attempts of a request that could not connect.
const RETRY: Duration = Duration::from_millis(20);

/// Whether `e` is a failure to connect (the request never left this process): tonic wraps
/// hyper's `ConnectError` in the status it returns.
fn never_sent(e: &etcd_client::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if format!("{err:?}").contains("ConnectError") {
            return true;
        }
        cur = err.source();
    }
    false
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

    /// The etcd client (for watches and leases): etcd is berth-cluster's alone.
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// The endpoints, as errors name them.
    pub(crate) fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// The per-request bound.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run one etcd request, bounded by the timeout; errors name what was being done.
    pub(crate) async fn bounded<T>(
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

    /// Run one etcd request as [`Store::bounded`] does, on a clone of the client, again while
    /// it fails before it was sent (no connection to the member it was routed to: a dead etcd
    /// member). The balanced channel routes some requests to a member it cannot connect to and
    /// fails them at once; another attempt goes to another member. Safe for every request,
    /// transactions included: a request that could not connect never reached etcd.
    pub(crate) async fn call<T, Fut>(
        &self,
        what: impl Into<String>,
        op: impl Fn(Client) -> Fut,
    ) -> Result<T, ClusterError>
    where
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let what = what.into();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, op(self.client.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(source)) => {
                    if never_sent(&source) && tokio::time::Instant::now() + RETRY < deadline {
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                    return Err(ClusterError::Etcd {
                        endpoints: self.endpoints.clone(),
                        what,
                        source,
                    });
                }
                Err(_) => {
                    return Err(ClusterError::Timeout {
                        endpoints: self.endpoints.clone(),
                        what,
                        timeout_ms: self.timeout.as_millis(),
                    });
                }
            }
        }
    }

    /// A node's record and the lease it hangs on.
    pub async fn node_record(&self, node: &str) -> Result<Option<(NodeRecord, i64)>, ClusterError> {
        let key = self.keys.node(node);
        let resp = self
            .call(format!("get {key}"), |mut c| {
                let k = key.clone();
                async move { c.get(k, None).await }
            })
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
        let resp = self
            .call(format!("get {key}"), |mut c| {
                let k = key.clone();
                async move { c.get(k, None).await }
            })
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
        why: &OwnerWhy,
    ) -> Result<Ownership, ClusterError> {
        self.acquire_if(svc, lease, why, None).await
    }

    /// [`Store::acquire`], and with `decided_at` (the revision of the view a decision read)
    /// only if neither the service's target nor its frozen key changed since: an operator's
    /// `stop` or `freeze` written after the orchestrator decided a start wins over that start
    /// ([`ClusterError::ChangedSince`]), in the same transaction that would take the key.
    pub async fn acquire_if(
        &self,
        svc: &str,
        lease: i64,
        why: &OwnerWhy,
        decided_at: Option<i64>,
    ) -> Result<Ownership, ClusterError> {
        let key = self.keys.owner(svc);
        let node_key = self.keys.node(&self.node);
        let record = OwnerRecord {
            node: self.node.clone(),
            since_ms: now_ms(),
            why: why.clone(),
        };
        let mut when = vec![
            Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Compare::lease(node_key.clone(), CompareOp::Equal, lease),
        ];
        if let Some(rev) = decided_at {
            // An absent key has mod_revision 0: unchanged.
            for k in [self.keys.target(svc), self.keys.frozen(svc)] {
                when.push(Compare::mod_revision(k, CompareOp::Less, rev + 1));
            }
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::put(
                key.clone(),
                encode(&record),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None), TxnOp::get(node_key, None)]);
        let resp = self
            .call(format!("take {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
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
            None if node_lease == lease && lease != 0 && decided_at.is_some() => {
                Err(ClusterError::ChangedSince {
                    svc: svc.to_string(),
                    revision: decided_at.unwrap_or_default(),
                })
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
        let resp = self
            .call(format!("release {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
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
        why: &OwnerWhy,
    ) -> Result<Ownership, ClusterError> {
        let key = self.keys.owner(svc);
        let record = OwnerRecord {
            node: to.to_string(),
            since_ms: now_ms(),
            why: why.clone(),
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
        let resp = self
            .call(format!("hand {key} to {to}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
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

    /// Give up this node's ownership of `svc`, if it has it. Retried (etcd may be slow or
    /// between leaders): a stopped service left owned here would stay down until the lease goes.
    pub async fn release_if_mine(&self, svc: &str) {
        for attempt in 1..=5 {
            let done = match self.owner(svc).await {
                Ok(Some(o)) if o.record.node == self.node => match self.release(svc, o.token).await
                {
                    Ok(released) => {
                        if released {
                            tracing::info!("{svc}: released (token {})", o.token);
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!("{svc}: cannot release the ownership ({attempt}/5): {e}");
                        false
                    }
                },
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!("{svc}: cannot read the ownership ({attempt}/5): {e}");
                    false
                }
            };
            if done {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tracing::error!(
            "{svc}: could not release the ownership: it stays owned here until the lease goes"
        );
    }

    /// After an operator's action (CLI or svcd): a whole start keeps the service started, a
    /// whole stop leaves it stopped and gives the ownership up, a failed whole start gives it
    /// up too. Partial actions change nothing here.
    pub async fn after_action(
        &self,
        svc: &str,
        action: berth_model::order::Action,
        whole: bool,
        ok: bool,
    ) {
        use berth_model::order::Action;
        if !whole {
            return;
        }
        let target = match (action, ok) {
            (Action::Start | Action::Restart, true) => Some(Target::Started),
            (Action::Stop, true) => Some(Target::Stopped),
            _ => None,
        };
        if let Some(t) = target
            && let Err(e) = self.set_target(svc, t).await
        {
            tracing::warn!("{svc}: {e}");
        }
        if matches!((action, ok), (Action::Stop, true) | (Action::Start, false)) {
            self.release_if_mine(svc).await;
        }
    }

    /// After an operator's action on this node's instance of a flex service: a whole stop
    /// (or a failed whole start) gives its slot up; the cluster-wide target is left alone
    /// (`--all` sets it), but a whole start keeps a `stopped` target from stopping it again.
    pub async fn after_flex_action(
        &self,
        svc: &str,
        action: berth_model::order::Action,
        whole: bool,
        ok: bool,
    ) {
        use berth_model::order::Action;
        if !whole {
            return;
        }
        if matches!((action, ok), (Action::Start | Action::Restart, true))
            && let Err(e) = self.set_target(svc, Target::Started).await
        {
            tracing::warn!("{svc}: {e}");
        }
        if matches!((action, ok), (Action::Stop, true) | (Action::Start, false)) {
            self.release_my_slot(svc).await;
        }
    }

    /// Freeze (or thaw) the service cluster-wide.
    pub async fn set_frozen(&self, svc: &str, frozen: bool) -> Result<(), ClusterError> {
        let key = self.keys.frozen(svc);
        if frozen {
            self.call(format!("put {key}"), |mut c| {
                let k = key.clone();
                async move { c.put(k, "1", None).await }
            })
            .await?;
        } else {
            self.call(format!("delete {key}"), |mut c| {
                let k = key.clone();
                async move { c.delete(k, None).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Set what the orchestrator keeps the service at.
    pub async fn set_target(&self, svc: &str, target: Target) -> Result<(), ClusterError> {
        let key = self.keys.target(svc);
        self.call(format!("put {key}"), |mut c| {
            let k = key.clone();
            async move { c.put(k, target.as_str(), None).await }
        })
        .await?;
        Ok(())
    }

    /// Record a sync attempt of `rid` to `target` (not leased: it outlives the sender's
    /// lease, so every node's status shows it).
    pub async fn put_sync_record(
        &self,
        svc: &str,
        rid: &str,
        target: &str,
        record: &berth_model::sync::SyncRecord,
    ) -> Result<(), ClusterError> {
        let key = self.keys.sync(svc, rid, target);
        self.call(format!("put {key}"), |mut c| {
            let (k, v) = (key.clone(), encode(record));
            async move { c.put(k, v, None).await }
        })
        .await?;
        Ok(())
    }

    /// The sync records of a service: `(rid, target, record)`.
    pub async fn sync_records(
        &self,
        svc: &str,
    ) -> Result<Vec<(String, String, berth_model::sync::SyncRecord)>, ClusterError> {
        let prefix = self.keys.syncs(svc);
        let resp = self
            .call(format!("get {prefix}*"), |mut c| {
                let k = prefix.clone();
                async move { c.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if let Some((rid, target)) = self.keys.parse_sync_key(svc, &key) {
                out.push((
                    rid.to_string(),
                    target.to_string(),
                    decode(&key, kv.value())?,
                ));
            }
        }
        Ok(out)
    }

    /// Write a node's record under its lease.
    pub async fn put_node(&self, record: &NodeRecord, lease: i64) -> Result<(), ClusterError> {
        let key = self.keys.node(&record.name);
        self.call(format!("put {key}"), |mut c| {
            let (k, v) = (key.clone(), encode(record));
            async move { c.put(k, v, Some(PutOptions::new().with_lease(lease))).await }
        })
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
        let resp = self
            .call(format!("put {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
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
        self.call(format!("delete {key}"), |mut c| {
            let t = txn.clone();
            async move { c.txn(t).await }
        })
        .await?;
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
        self.call(format!("put {key}"), |mut c| {
            let (k, v) = (key.clone(), encode(line));
            async move { c.put(k, v, Some(PutOptions::new().with_lease(lease))).await }
        })
        .await?;
        Ok(())
    }

    /// Delete every log line of intent `id`.
    pub async fn delete_logs(&self, id: &str) -> Result<(), ClusterError> {
        let key = self.keys.logs(id);
        self.call(format!("delete {key}"), |mut c| {
            let k = key.clone();
            async move { c.delete(k, Some(DeleteOptions::new().with_prefix())).await }
        })
        .await?;
        Ok(())
    }

    /// Grant a lease of `ttl` seconds.
    pub async fn grant(&self, ttl: i64) -> Result<i64, ClusterError> {
        let resp = self
            .call(format!("grant a {ttl}s lease"), |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        Ok(resp.id())
    }

    /// Revoke a lease (and every key under it).
    pub async fn revoke(&self, lease: i64) -> Result<(), ClusterError> {
        self.call(format!("revoke lease {lease:x}"), |mut c| async move {
            c.lease_revoke(lease).await
        })
        .await?;
        Ok(())
    }

    /// The remaining TTL of a lease, `None` when it expired or never existed.
    pub async fn lease_ttl(&self, lease: i64) -> Result<Option<i64>, ClusterError> {
        let resp = self
            .call(
                format!("time to live of lease {lease:x}"),
                |mut c| async move { c.lease_time_to_live(lease, None).await },
            )
            .await?;
        Ok((resp.ttl() > 0).then_some(resp.ttl()))
    }

    /// The log lines of intent `id` so far, with their keys, in key order.
    pub async fn intent_lines(&self, id: &str) -> Result<Vec<(String, LogLine)>, ClusterError> {
        let prefix = self.keys.logs(id);
        let resp = self
            .call(format!("get {prefix}*"), |mut c| {
                let k = prefix.clone();
                async move { c.get(k, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut lines = Vec::new();
        for kv in resp.kvs() {
            let key = kv.key_str().unwrap_or_default().to_string();
            match decode::<LogLine>(&key, kv.value()) {
                Ok(l) => lines.push((key, l)),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(lines)
    }

    /// Keep `view` current: one watch of the cluster's prefix from the view's revision, each
    /// batch of events applied under the write lock, `changed` told after each; on any error
    /// (or a compaction) the view is read whole again and watched from there. Never returns.
    pub async fn follow(
        &self,
        view: &std::sync::RwLock<ClusterView>,
        changed: &tokio::sync::Notify,
    ) -> std::convert::Infallible {
        use std::sync::PoisonError;
        loop {
            let from = view.read().unwrap_or_else(PoisonError::into_inner).revision + 1;
            let mut client = self.client();
            let opts = WatchOptions::new().with_prefix().with_start_revision(from);
            let watched = self
                .bounded(
                    "watch the cluster",
                    client.watch(self.keys.root(), Some(opts)),
                )
                .await;
            match watched {
                Ok(mut stream) => loop {
                    match stream.message().await {
                        Ok(Some(resp)) => {
                            if resp.canceled() || resp.compact_revision() > 0 {
                                break;
                            }
                            let rev = resp.header().map_or(0, |h| h.revision());
                            let mut v = view.write().unwrap_or_else(PoisonError::into_inner);
                            for ev in resp.events() {
                                let Some(kv) = ev.kv() else { continue };
                                match ev.event_type() {
                                    EventType::Put => v.apply_put(&self.keys, kv),
                                    EventType::Delete => {
                                        if let Ok(k) = kv.key_str() {
                                            v.apply_delete(&self.keys, k, rev);
                                        }
                                    }
                                }
                            }
                            v.revision = v.revision.max(rev);
                            drop(v);
                            changed.notify_one();
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!("cluster watch ended: {e}");
                            break;
                        }
                    }
                },
                Err(e) => tracing::warn!("{e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Ok(fresh) = self.snapshot().await {
                *view.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                changed.notify_one();
            }
        }
    }

    /// Everything of the cluster in one read.
    pub async fn snapshot(&self) -> Result<ClusterView, ClusterError> {
        let root = self.keys.root().to_string();
        let end = prefix_end(&root);
        let mut view = ClusterView::default();
        // In pages of SNAPSHOT_PAGE keys, every page at the first one's revision (one
        // consistent view): a cluster of 32 nodes x 1000 services is about 8 MB of keys, and
        // one answer that size is over the client's default bound on a message (4 MiB).
        let mut from = root.clone().into_bytes();
        let mut revision = 0;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(SNAPSHOT_PAGE);
            if revision != 0 {
                opts = opts.with_revision(revision);
            }
            let key = from.clone();
            let resp = self
                .call(format!("get {root}*"), |c| {
                    let (k, o) = (key.clone(), opts.clone());
                    async move {
                        let mut kv = c.kv_client().max_decoding_message_size(MAX_ANSWER);
                        kv.get(k, Some(o)).await
                    }
                })
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
                view.revision = revision;
            }
            for kv in resp.kvs() {
                view.apply_put(&self.keys, kv);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(view),
            }
        }
    }
}

/// Keys per page of a snapshot.
const SNAPSHOT_PAGE: i64 = 2000;
/// The largest answer svcd takes from etcd (a page of the snapshot: node records are about
/// 110 bytes per service, and all of them may fall in one page).
const MAX_ANSWER: usize = 64 << 20;

/// The end of the range of keys that start with `prefix` (as etcd's `--prefix`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
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

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_prefix_range_ends_after_every_key_of_the_prefix() {
        assert_eq!(prefix_end("/berth/c/"), b"/berth/c0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }
}
