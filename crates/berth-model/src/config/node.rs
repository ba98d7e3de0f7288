//! `node.toml`: the node's own settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

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

    /// Parse `node.toml` text read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<NodeConfig, ConfigError> {
        toml::from_str(text).map_err(|e| super::tomlfile::syntax_error(file, text, &e))
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
        crate::config::keywords::parse_duration(&s)
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
