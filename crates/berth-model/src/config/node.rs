//! `node.toml`: the node's own settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, ConfigErrorKind};
use super::kinds::container::Registry;

/// `<config>/node.toml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node name (default: `BERTH_NODENAME`, else the hostname).
    pub nodename: Option<String>,
    /// The HTTP endpoint of `svcd`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The bearer token file for HTTP actions; must not be world-readable.
    /// Default: `<config>/token` (`/etc/berth/token`); see [`NodeConfig::token_path`].
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How often `svcd` checks every service (`10s`, `500ms`).
    #[serde(default = "default_interval", with = "duration_str")]
    pub monitor_interval: Duration,
    /// TLS on the HTTP endpoint (`[tls]`: `cert` and `key` PEM files, re-read on SIGHUP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// The bearer token file for reads (`/status`, `/metrics`). Reads need it (or the action
    /// token) when the file exists, and svcd refuses to listen beyond loopback without it.
    /// Default: `<config>/read-token`; see [`NodeConfig::read_token_path`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token_file: Option<PathBuf>,
    /// Serve reads without a token even beyond loopback (a network only trusted hosts reach).
    #[serde(default)]
    pub open_reads: bool,
    /// The cluster this node belongs to; absent: the node runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// `[docker]`: what every private dockerd of the node is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerNode>,
    /// The address other nodes reach this one at (syncs' ssh): published in the node's record
    /// in etcd. Default: the host of `listen` (see [`NodeConfig::address`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `[sync]`: the ssh key and known hosts the sync resources' rsync uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncNode>,
}

/// `[sync]` of `node.toml`: how this node's syncs reach the others over ssh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncNode {
    /// The private key ssh presents (default: root's, as ssh finds it).
    #[serde(default)]
    pub ssh_key: Option<PathBuf>,
    /// The known hosts file the targets' host keys are checked against (default: the
    /// system's). Host keys are always checked: a mismatch fails with ssh's reason.
    #[serde(default)]
    pub ssh_known_hosts: Option<PathBuf>,
}

/// `[docker]` of `node.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerNode {
    /// Registries every private dockerd trusts (`host:port` plain HTTP, `https://host:port`
    /// TLS); a service's `docker_registries` add to them.
    #[serde(default)]
    pub docker_registries: Vec<String>,
    /// The CA (PEM) of the node's `https://` registries, when a service names none.
    #[serde(default)]
    pub registry_ca: Option<PathBuf>,
}

/// `[tls]` of `node.toml`: the endpoint's certificate chain and private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[cluster]` of `node.toml`: the etcd cluster the nodes share their state in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster name: berth's keys live under `/berth/<name>/`.
    pub name: String,
    /// etcd client URLs (`http://10.0.0.5:2379`, or `https://` with `etcd_ca`).
    pub etcd: Vec<String>,
    /// CA file that signs the etcd members' certificates (TLS to etcd).
    #[serde(default)]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd (with `etcd_key`).
    #[serde(default)]
    pub etcd_cert: Option<PathBuf>,
    /// Client key for etcd (with `etcd_cert`).
    #[serde(default)]
    pub etcd_key: Option<PathBuf>,
    /// The node's lease in etcd: whole seconds, renewed every ttl/5.
    #[serde(default = "default_lease_ttl", with = "duration_str")]
    pub lease_ttl: Duration,
    /// What a node does when it lost its lease and cannot stop its services in time.
    #[serde(default)]
    pub split_action: SplitAction,
    /// After svcd starts, how long it lets better-placed nodes join before it starts a service.
    #[serde(default = "default_ready_period", with = "duration_str")]
    pub ready_period: Duration,
}

/// `split_action`: the last resort of a node that cannot stop its services before its lease
/// can expire elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitAction {
    /// Keep trying to stop, and log an error (the default).
    #[default]
    Stop,
    /// Crash the kernel (sysrq `c`).
    Crash,
    /// Reboot at once (sysrq `b`).
    Reboot,
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(5)
}

fn default_ready_period() -> Duration {
    Duration::from_secs(5)
}

impl ClusterConfig {
    /// Check what serde cannot: a usable name, endpoints, a whole-second TTL of at least 2 s,
    /// client certificate and key given together.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "[cluster] name {:?}: use letters, digits, '-' and '_'",
                self.name
            ));
        }
        if self.etcd.is_empty() {
            return Err("[cluster] etcd: give at least one endpoint".to_string());
        }
        for e in &self.etcd {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "[cluster] etcd: endpoint {e:?} must start with http:// or https://"
                ));
            }
        }
        if self.lease_ttl.subsec_nanos() != 0 || self.lease_ttl.as_secs() < 2 {
            return Err(format!(
                "[cluster] lease_ttl {}ms: must be whole seconds, at least 2s (etcd's unit)",
                self.lease_ttl.as_millis()
            ));
        }
        if self.etcd_cert.is_some() != self.etcd_key.is_some() {
            return Err("[cluster] etcd_cert and etcd_key go together".to_string());
        }
        Ok(())
    }

    /// The lease TTL in whole seconds.
    pub fn ttl_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs()).unwrap_or(i64::MAX)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1215))
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            nodename: None,
            listen: default_listen(),
            token_file: None,
            monitor_interval: default_interval(),
            tls: None,
            read_token_file: None,
            open_reads: false,
            cluster: None,
            docker: None,
            address: None,
            sync: None,
        }
    }
}

impl NodeConfig {
    /// The token file: `token_file`, else `token` in the config dir (`/etc/berth/token` by
    /// default; several agents on one host each read their own).
    pub fn token_path(&self, config_dir: &Path) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| config_dir.join("token"))
    }

    /// The read token file: `read_token_file`, else `read-token` in the config dir.
    pub fn read_token_path(&self, config_dir: &Path) -> PathBuf {
        self.read_token_file
            .clone()
            .unwrap_or_else(|| config_dir.join("read-token"))
    }

    /// The address other nodes reach this one at: `address`, else the host of `listen`.
    pub fn address(&self) -> String {
        self.address
            .clone()
            .unwrap_or_else(|| self.listen.ip().to_string())
    }

    /// Parse `node.toml` text read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        let node: NodeConfig =
            toml::from_str(text).map_err(|e| super::tomlfile::syntax_error(file, text, &e))?;
        if let Some(c) = &node.cluster {
            c.validate()
                .map_err(|why| ConfigError::file(file, ConfigErrorKind::Syntax(why)))?;
        }
        for r in node.docker.iter().flat_map(|d| &d.docker_registries) {
            Registry::parse(r).map_err(|why| {
                ConfigError::file(
                    file,
                    ConfigErrorKind::Syntax(format!("[docker] docker_registries: {why}")),
                )
            })?;
        }
        Ok(node)
    }
}

pub(crate) mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        crate::config::value::parse_duration(&s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                serde::de::Error::custom(format!("bad duration {s:?} (expected e.g. 10s, 500ms)"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let p = Path::new("/etc/berth/node.toml");
        assert_eq!(NodeConfig::parse(p, "").unwrap(), NodeConfig::default());
        let n = NodeConfig::parse(
            p,
            "nodename = \"n1\"\nlisten = \"127.0.0.1:9999\"\nmonitor_interval = \"500ms\"\n",
        )
        .unwrap();
        assert_eq!(n.nodename.as_deref(), Some("n1"));
        assert_eq!(n.listen.port(), 9999);
        assert_eq!(n.monitor_interval, Duration::from_millis(500));
        assert_eq!(
            n.token_path(Path::new("/etc/berth")),
            Path::new("/etc/berth/token")
        );
        assert_eq!(
            n.read_token_path(Path::new("/etc/berth")),
            Path::new("/etc/berth/read-token")
        );
        let tls = NodeConfig::parse(p, "[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n").unwrap();
        assert_eq!(tls.tls.unwrap().key, Path::new("/k.pem"));
        let t = NodeConfig::parse(p, "token_file = \"/srv/t\"\n").unwrap();
        assert_eq!(t.token_path(Path::new("/etc/berth")), Path::new("/srv/t"));
    }

    #[test]
    fn cluster_section() {
        let p = Path::new("/etc/berth/node.toml");
        let n = NodeConfig::parse(
            p,
            "[cluster]\nname = \"prod\"\netcd = [\"http://10.0.0.5:2379\"]\nlease_ttl = \"3s\"\n",
        )
        .unwrap();
        let c = n.cluster.unwrap();
        assert_eq!(c.ttl_secs(), 3);
        assert_eq!(c.split_action, SplitAction::Stop);
        assert_eq!(c.ready_period, Duration::from_secs(5));
        let bad = |text: &str| NodeConfig::parse(p, text).unwrap_err().to_string();
        let e =
            bad("[cluster]\nname = \"prod\"\netcd = [\"http://a:2379\"]\nlease_ttl = \"1500ms\"\n");
        assert!(e.contains("lease_ttl 1500ms"), "{e}");
        let e = bad("[cluster]\nname = \"a b\"\netcd = [\"http://a:2379\"]\n");
        assert!(e.contains("\"a b\""), "{e}");
        let e = bad("[cluster]\nname = \"p\"\netcd = [\"a:2379\"]\n");
        assert!(e.contains("a:2379"), "{e}");
        let e = bad("[cluster]\nname = \"p\"\netcd = []\n");
        assert!(e.contains("at least one"), "{e}");
        let e = bad("[cluster]\nname = \"p\"\netcd = [\"http://a\"]\nsplit_action = \"panic\"\n");
        assert!(e.contains("panic"), "{e}");
        let e = bad("[cluster]\nname = \"p\"\netcd = [\"http://a\"]\nleas_ttl = \"5s\"\n");
        assert!(e.contains("leas_ttl"), "{e}");
    }

    #[test]
    fn typos_name_the_line() {
        let p = Path::new("/etc/berth/node.toml");
        let err = NodeConfig::parse(p, "nodename = \"n1\"\nlisten_addr = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/berth/node.toml:2:"), "{msg}");
        assert!(msg.contains("listen_addr"), "{msg}");
        let err =
            NodeConfig::parse(p, "[tls]\ncert = \"/c\"\nkey = \"/k\"\nca = \"/x\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with("/etc/berth/node.toml:4:"),
            "{err}"
        );
        let err = NodeConfig::parse(p, "monitor_interval = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }
}
