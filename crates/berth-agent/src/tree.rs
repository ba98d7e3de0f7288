//! The cached status tree: the latest status of every service, and the JSON bodies `GET /status`
//! and `GET /status/<svc>` serve, serialised once per change with their ETags.
//!
//! The node body is a [`NodeStatus`] of the cached service bodies (raw JSON), so a change
//! re-serialises only the service that changed. Readers clone an `Arc` of the current [`Snapshot`] and never wait for a
//! writer for longer than that.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher as _;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use berth_model::status::{NodeStatus, SCHEMA_VERSION, ServiceStatus};
use bytes::Bytes;
use serde_json::value::RawValue;

/// A serialised body and its ETag.
#[derive(Debug, Clone)]
pub struct Body {
    /// The JSON text.
    pub bytes: Bytes,
    /// The ETag header value, quoted (`"0123abcd..."`).
    pub etag: String,
}

impl Body {
    fn new(bytes: Vec<u8>) -> Body {
        let etag = etag_of(&bytes);
        Body {
            bytes: Bytes::from(bytes),
            etag,
        }
    }
}

/// A strong ETag for `bytes`: a 64-bit hash, quoted.
pub fn etag_of(bytes: &[u8]) -> String {
    // DefaultHasher::new() uses fixed keys: the same body always has the same tag, across
    // restarts too, so a client's cached tag stays valid while the tree does not change.
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    format!("\"{:016x}\"", h.finish())
}

/// What readers see.
#[derive(Debug)]
pub struct Snapshot {
    /// `GET /status`.
    pub node: Body,
    /// `GET /status/<svc>`.
    pub services: HashMap<String, Body>,
    /// Bumped on every change.
    pub generation: u64,
}

#[derive(Debug)]
struct Entry {
    status: Arc<ServiceStatus>,
    /// Its JSON, for the node body.
    raw: Box<RawValue>,
    body: Body,
}

#[derive(Debug)]
struct Inner {
    nodename: String,
    entries: BTreeMap<String, Entry>,
    generation: u64,
}

/// The status tree of the node.
#[derive(Debug)]
pub struct Tree {
    inner: Mutex<Inner>,
    snapshot: RwLock<Arc<Snapshot>>,
}

fn node_body(nodename: &str, entries: &BTreeMap<String, Entry>) -> Body {
    let node = NodeStatus::<&RawValue> {
        schema: SCHEMA_VERSION,
        nodename: nodename.to_string(),
        services: entries.values().map(|e| &*e.raw).collect(),
    };
    Body::new(serde_json::to_vec(&node).unwrap_or_else(|e| {
        tracing::error!("cannot serialise the node's status: {e}");
        Vec::new()
    }))
}

impl Tree {
    /// An empty tree for node `nodename`.
    pub fn new(nodename: &str) -> Tree {
        let entries = BTreeMap::new();
        let snapshot = Snapshot {
            node: node_body(nodename, &entries),
            services: HashMap::new(),
            generation: 0,
        };
        Tree {
            inner: Mutex::new(Inner {
                nodename: nodename.to_string(),
                entries,
                generation: 0,
            }),
            snapshot: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// The current bodies.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, inner: &mut Inner) {
        inner.generation += 1;
        let snapshot = Snapshot {
            node: node_body(&inner.nodename, &inner.entries),
            services: inner
                .entries
                .iter()
                .map(|(k, e)| (k.clone(), e.body.clone()))
                .collect(),
            generation: inner.generation,
        };
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Store a service's status; re-serialise only when it changed. Returns whether it did.
    pub fn update(&self, status: ServiceStatus) -> bool {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get(&status.name)
            && *e.status == status
        {
            return false;
        }
        let raw = match serde_json::value::to_raw_value(&status) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!("cannot serialise the status of {}: {e}", status.name);
                return false;
            }
        };
        let body = Body::new(raw.get().as_bytes().to_vec());
        inner.entries.insert(
            status.name.clone(),
            Entry {
                status: Arc::new(status),
                raw,
                body,
            },
        );
        self.publish(&mut inner);
        true
    }

    /// Forget a service (its file was removed).
    pub fn remove(&self, name: &str) {
        let mut inner = self.lock();
        if inner.entries.remove(name).is_some() {
            self.publish(&mut inner);
        }
    }

    /// Change the node name.
    pub fn set_nodename(&self, nodename: &str) {
        let mut inner = self.lock();
        if inner.nodename != nodename {
            inner.nodename = nodename.to_string();
            self.publish(&mut inner);
        }
    }

    /// One service's latest status.
    pub fn get(&self, name: &str) -> Option<Arc<ServiceStatus>> {
        self.lock().entries.get(name).map(|e| e.status.clone())
    }

    /// Every service's latest status, sorted by name.
    pub fn all(&self) -> Vec<Arc<ServiceStatus>> {
        self.lock()
            .entries
            .values()
            .map(|e| e.status.clone())
            .collect()
    }

    /// The whole tree as a value (tests, tools).
    pub fn node_status(&self) -> NodeStatus {
        let inner = self.lock();
        NodeStatus {
            schema: SCHEMA_VERSION,
            nodename: inner.nodename.clone(),
            services: inner
                .entries
                .values()
                .map(|e| (*e.status).clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(name: &str) -> ServiceStatus {
        ServiceStatus::broken(name.to_string(), "boom".to_string())
    }

    #[test]
    fn node_body_is_serde_of_the_tree() {
        let t = Tree::new("n\"1");
        assert_eq!(
            serde_json::from_slice::<NodeStatus>(&t.snapshot().node.bytes).unwrap(),
            t.node_status()
        );
        assert!(t.update(st("b")));
        assert!(t.update(st("a")));
        let snap = t.snapshot();
        assert_eq!(
            snap.node.bytes,
            serde_json::to_vec(&t.node_status()).unwrap()
        );
        assert_eq!(snap.generation, 2);
        assert!(snap.services.contains_key("a"));
    }

    #[test]
    fn unchanged_status_keeps_the_etag() {
        let t = Tree::new("n1");
        t.update(st("a"));
        let before = t.snapshot();
        assert!(!t.update(st("a")));
        let same = t.snapshot();
        assert_eq!(before.generation, same.generation);
        assert_eq!(before.node.etag, same.node.etag);
        let mut changed = st("a");
        changed.frozen = true;
        assert!(t.update(changed));
        assert_ne!(t.snapshot().node.etag, before.node.etag);
        assert_eq!(
            t.snapshot().services["a"].etag,
            etag_of(&t.snapshot().services["a"].bytes)
        );
        t.remove("a");
        assert!(t.snapshot().services.is_empty());
    }
}
