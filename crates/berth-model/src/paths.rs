//! Where berth keeps its config, state and runtime files. Pure path arithmetic.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The three directories of design.md, each movable for tests and for several agents on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paths {
    /// `node.toml`, `services/` (default `/etc/berth`).
    pub config_dir: PathBuf,
    /// Locks, pidfiles, private docker sockets, last results (default `/var/lib/berth`).
    pub var_dir: PathBuf,
    /// dockerd exec roots, kept short (default `/run/berth`).
    pub run_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            config_dir: PathBuf::from("/etc/berth"),
            var_dir: PathBuf::from("/var/lib/berth"),
            run_dir: PathBuf::from("/run/berth"),
        }
    }
}

impl Paths {
    /// The three under one root: `<root>/etc`, `<root>/var`, `<root>/run` (a test's temp dir).
    pub fn under(root: &Path) -> Paths {
        Paths {
            config_dir: root.join("etc"),
            var_dir: root.join("var"),
            run_dir: root.join("run"),
        }
    }

    /// `<config>/services`.
    pub fn services_dir(&self) -> PathBuf {
        self.config_dir.join("services")
    }
    /// `<config>/node.toml`.
    pub fn node_config(&self) -> PathBuf {
        self.config_dir.join("node.toml")
    }
    /// `<var>/<svc>`: the service's state directory.
    pub fn service_var(&self, svc: &str) -> PathBuf {
        self.var_dir.join(svc)
    }
    /// `<var>/<svc>/lock`.
    pub fn lock_file(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("lock")
    }
    /// `<var>/<svc>/docker.sock`.
    pub fn docker_socket(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("docker.sock")
    }
    /// `<var>/<svc>/docker.pid`.
    pub fn docker_pidfile(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("docker.pid")
    }
    /// `<run>/<svc>/docker`: the private dockerd's exec root.
    pub fn docker_exec_root(&self, svc: &str) -> PathBuf {
        self.run_dir.join(svc).join("docker")
    }
    /// `<run>/svcd.sock`: svcd's local socket, where `svc print status` reads svcd's tree.
    pub fn agent_socket(&self) -> PathBuf {
        self.run_dir.join("svcd.sock")
    }
    /// `<var>/<svc>/drp_active`: present while a DR node runs the service after a forced start
    /// (see [`crate::drp::DrpMark`]).
    pub fn drp_mark(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("drp_active")
    }
    /// `<var>/<svc>/sync`: the sync resources' records, locks and receive states.
    pub fn sync_dir(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("sync")
    }
    /// `<var>/<svc>/sync/<rid>.json`: the sender's records of a sync resource, per target
    /// (see [`crate::sync::SyncRecords`]).
    pub fn sync_records(&self, svc: &str, rid: &str) -> PathBuf {
        self.sync_dir(svc).join(format!("{rid}.json"))
    }
    /// `<var>/<svc>/sync/<rid>.received`: the last sync this node accepted as a receiver
    /// (see [`crate::sync::Received`]).
    pub fn sync_received(&self, svc: &str, rid: &str) -> PathBuf {
        self.sync_dir(svc).join(format!("{rid}.received"))
    }
    /// `<var>/<svc>/sync/<rid>.lock`: held by the one sync of a resource that runs.
    pub fn sync_lock(&self, svc: &str, rid: &str) -> PathBuf {
        self.sync_dir(svc).join(format!("{rid}.lock"))
    }
    /// `<run>/<svc>/flags/<rid>`: an `[fs#N] type = flag` resource, up while it exists. The
    /// run dir must be a tmpfs (`/run` is), so that a flag is down after a reboot.
    pub fn flag_file(&self, svc: &str, rid: &str) -> PathBuf {
        self.run_dir.join(svc).join("flags").join(rid)
    }
    /// `<var>/<svc>/frozen`: present while the service is frozen.
    pub fn frozen_flag(&self, svc: &str) -> PathBuf {
        self.service_var(svc).join("frozen")
    }
}

/// The longest path a unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Whether `p` fits in a unix socket address.
pub fn fits_socket(p: &Path) -> bool {
    p.as_os_str().len() <= MAX_SOCKET_PATH
}
