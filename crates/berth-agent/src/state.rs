//! What every part of svcd shares: paths, settings, the status tree, counters, the workers.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use berth_model::paths::Paths;
use tokio::sync::{Semaphore, mpsc};

use crate::mailbox::{Handle, Loaded, Msg};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::tree::Tree;

/// The most actions svcd runs at once (a permit each); shutdown waits for all of them.
pub const MAX_ACTIONS: u32 = 1024;

/// State shared by the main loop, the workers and the HTTP server.
#[derive(Debug)]
pub struct Shared {
    /// Config, var and run directories.
    pub paths: Paths,
    settings: RwLock<Arc<Settings>>,
    /// The cached status tree.
    pub tree: Tree,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Bounds the status checks running at once.
    pub checks: Arc<Semaphore>,
    /// One permit per running action; shutdown takes them all to wait for running actions.
    pub actions: Arc<Semaphore>,
    workers: RwLock<HashMap<String, Handle>>,
    /// This process's pid: `last_action.json` files it wrote carry it.
    pub pid: u32,
    /// The TLS acceptor of the endpoint (`[tls]` of node.toml), replaced at each reload.
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
    /// The cluster layer, once svcd joined its cluster (`[cluster]` in node.toml).
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// Shared state for `paths` and `settings`, with at most `checks` status checks at once.
    pub fn new(paths: Paths, settings: Settings, checks: usize) -> Shared {
        Shared {
            tree: Tree::new(&settings.nodename),
            paths,
            settings: RwLock::new(Arc::new(settings)),
            metrics: Metrics::default(),
            checks: Arc::new(Semaphore::new(checks.max(1))),
            actions: Arc::new(Semaphore::new(MAX_ACTIONS as usize)),
            workers: RwLock::new(HashMap::new()),
            pid: std::process::id(),
            tls: RwLock::new(None),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// The TLS acceptor new connections use (None: plain HTTP).
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replace the TLS acceptor (connections already open keep theirs).
    pub fn set_tls(&self, acceptor: Option<Arc<rustls::ServerConfig>>) {
        *self.tls.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replace the settings.
    pub fn set_settings(&self, s: Settings) {
        self.tree.set_nodename(&s.nodename);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(s);
    }

    /// The worker of service `name`.
    pub fn worker(&self, name: &str) -> Option<mpsc::Sender<Msg>> {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|h| h.tx.clone())
    }

    /// Whether worker `id` is the current worker of `name`.
    pub fn is_current(&self, name: &str, id: u64) -> bool {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .is_some_and(|h| h.id == id)
    }

    /// Hand a (re)loaded config to `name`'s worker; false when there is none.
    pub fn set_config(&self, name: &str, loaded: Loaded) -> bool {
        match self
            .workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            Some(h) => {
                let _ = h.config.send_replace(loaded);
                true
            }
            None => false,
        }
    }

    /// Every worker, by service name.
    pub fn workers(&self) -> Vec<(String, mpsc::Sender<Msg>)> {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.tx.clone()))
            .collect()
    }

    /// Every service's loaded config, by name.
    pub fn configs(&self) -> Vec<(String, Loaded)> {
        self.workers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.config.borrow().clone()))
            .collect()
    }

    /// Register a worker.
    pub fn add_worker(&self, name: &str, handle: Handle) {
        self.workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), handle);
    }

    /// Drop a worker (it ends when its channel closes).
    pub fn remove_worker(&self, name: &str) {
        self.workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Drop every worker.
    pub fn clear_workers(&self) {
        self.workers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Ask `name`'s worker for a check; a full queue already holds work that ends in one.
    pub fn poke(&self, name: &str) {
        if let Some(tx) = self.worker(name) {
            let _ = tx.try_send(Msg::Check(None));
        }
    }
}
