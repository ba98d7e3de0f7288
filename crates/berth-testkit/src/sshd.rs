//! An sshd of the test's own on a rig node (its own host key, config and authorized key,
//! listening on the node's address in the node's network and mount namespaces), for the sync
//! tests, and the client side: a key pair and a known hosts file naming each node's host key.
//! The sshd is killed by pid on drop (and with the node's cgroup).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::cluster::{Node, wait_until};

/// A client key pair and known hosts file (what node.toml's `[sync]` names).
#[derive(Debug)]
pub struct SshClient {
    dir: tempfile::TempDir,
}

impl SshClient {
    /// A fresh ed25519 key pair and an empty known hosts file.
    pub fn new() -> SshClient {
        crate::require_root();
        let dir = tempfile::Builder::new()
            .prefix("rgssh")
            .tempdir_in("/tmp")
            .expect("ssh client temp dir");
        let key = dir.path().join("id_ed25519");
        crate::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "berth-test",
                "-f",
                key.to_str().expect("utf-8"),
            ],
        );
        std::fs::write(dir.path().join("known_hosts"), "").expect("known_hosts");
        SshClient { dir }
    }

    /// The private key.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// The public key's line.
    pub fn public(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("id_ed25519.pub")).expect("public key")
    }

    /// The known hosts file.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Trust `sshd`'s host key for its address (appends a line).
    pub fn trust(&self, sshd: &Sshd) {
        let line = format!("{} {}", sshd.addr, sshd.host_public());
        let mut text = std::fs::read_to_string(self.known_hosts()).unwrap_or_default();
        text.push_str(&line);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(self.known_hosts(), text).expect("known_hosts");
    }

    /// node.toml's `[sync]` section naming this key and known hosts file.
    pub fn node_toml(&self) -> String {
        format!(
            "[sync]\nssh_key = \"{}\"\nssh_known_hosts = \"{}\"\n",
            self.key().display(),
            self.known_hosts().display()
        )
    }
}

impl Default for SshClient {
    fn default() -> Self {
        SshClient::new()
    }
}

/// An sshd inside a rig node.
#[derive(Debug)]
pub struct Sshd {
    dir: PathBuf,
    addr: std::net::Ipv4Addr,
    child: Option<Child>,
}

impl Sshd {
    /// Start sshd on `node`'s address, port 22, root login by `client`'s key only; its
    /// sessions get `path_dirs` first in `PATH` and the node's `BERTH_*` environment, so the
    /// receiver check runs the node's own `svc` with the node's own config.
    pub fn start(node: &Node, client: &SshClient, path_dirs: &[&Path]) -> Sshd {
        // sshd's privilege separation directory (a plain, empty, root-owned directory).
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = node.path("sshd");
        std::fs::create_dir_all(&dir).expect("sshd dir");
        let key = dir.join("host_ed25519");
        crate::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                key.to_str().expect("utf-8"),
            ],
        );
        let auth = dir.join("authorized_keys");
        std::fs::write(&auth, client.public()).expect("authorized_keys");
        let mut path: Vec<String> = path_dirs.iter().map(|p| p.display().to_string()).collect();
        path.push("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        let config = format!(
            "Port 22\nListenAddress {addr}\nHostKey {key}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPrintMotd no\nLogLevel VERBOSE\n\
             SetEnv PATH={path} BERTH_NODENAME={name} BERTH_CONFIG_DIR={etc} \
             BERTH_VAR_DIR={var} BERTH_RUN_DIR={run} NO_COLOR=1\n",
            addr = node.addr(),
            key = key.display(),
            pid = dir.join("sshd.pid").display(),
            auth = auth.display(),
            path = path.join(":"),
            name = node.name(),
            etc = node.config_dir().display(),
            var = node.var_dir().display(),
            run = node.run_dir().display(),
        );
        let conf = dir.join("sshd_config");
        std::fs::write(&conf, config).expect("sshd_config");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd log");
        let child = node
            .command("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sshd on {}: {e}", node.name()));
        let sshd = Sshd {
            dir,
            addr: node.addr(),
            child: Some(child),
        };
        let target = std::net::SocketAddr::from((node.addr(), 22));
        wait_until(Duration::from_secs(10), "sshd listening", || {
            node.tcp_connect(target, Duration::from_millis(200)).is_ok()
        });
        sshd
    }

    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub fn host_public(&self) -> String {
        std::fs::read_to_string(self.dir.join("host_ed25519.pub"))
            .expect("host key")
            .trim()
            .to_string()
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: kill(2) on the pid of a child this value started and has not reaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            let _ = c.wait();
        }
    }
}
