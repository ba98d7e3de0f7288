//! `collector.toml`: what `berth-collector` polls and where it keeps the fleet's history.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrorKind};
use super::node::{TlsFiles, duration_str};
use super::raw::line_of;

/// `collector.toml`, as the collector uses it (validated).
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// The API and web page address.
    pub listen: SocketAddr,
    /// The SQLite database file.
    pub database: PathBuf,
    /// How often each node is polled.
    pub interval: Duration,
    /// Time allowed for one poll (connect, TLS, answer, body).
    pub timeout: Duration,
    /// A node with no good answer for this long is stale.
    pub stale_after: Duration,
    /// Polls in flight at once.
    pub concurrency: usize,
    /// Largest status body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Events and chargeback samples older than this are deleted.
    pub retention: Duration,
    /// A chargeback sample is written at least this often per service (and at each change).
    pub chargeback_period: Duration,
    /// The longest wait between two polls of an unreachable node (backoff doubles up to it).
    pub max_backoff: Duration,
    /// The nodes, in file order.
    pub nodes: Vec<CollectorNode>,
    /// The read token the collector's own API and page require, read from this file (none: the
    /// API is open, allowed on loopback only).
    pub read_token_file: Option<PathBuf>,
    /// TLS for the collector's own API and page.
    pub tls: Option<TlsFiles>,
    /// Prices of the chargeback (none: figures only).
    pub rates: Option<Rates>,
    /// Where problems and recoveries are sent.
    pub alerts: Vec<AlertConfig>,
}

/// One `[[alerts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertConfig {
    /// Its name (`alert1`, `alert2`... by position when not given).
    pub name: String,
    /// Where it goes.
    pub sink: AlertSink,
    /// Only services of this app.
    pub app: Option<String>,
    /// Only services of this env.
    pub env: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Only this node (its services, and it going stale).
    pub node: Option<String>,
    /// `true`: `down` (and `stale`) only; `false` (`min = "warn"`, the default): `warn` too.
    pub down_only: bool,
    /// A problem must hold this long before it is sent (`for`).
    pub hold: Duration,
    /// Attempts after the first failed one (backoff 1 s doubling up to 1 min).
    pub retries: u32,
}

/// Where an alert goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertSink {
    /// An HTTP(S) POST of the JSON (with a Slack-compatible `text`).
    Webhook {
        /// The URL.
        url: String,
        /// A PEM CA file for an https URL (default: the system's bundle).
        ca: Option<PathBuf>,
    },
    /// A command run with the JSON on its stdin.
    Command(Vec<String>),
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    min: Option<String>,
    #[serde(default, rename = "for", with = "opt_duration")]
    hold: Option<Duration>,
    #[serde(default)]
    retries: Option<u32>,
}

/// `[rates]`: prices per unit of billed usage, OpenCost-style (amount x hours x price).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// The currency word shown with costs (`EUR`, `USD`...).
    #[serde(default)]
    pub currency: Option<String>,
    /// Price of one running container for one hour.
    #[serde(default)]
    pub container_hour: f64,
    /// Price of one GiB of docker data root for one hour.
    #[serde(default)]
    pub gib_hour: f64,
    /// Price of one image kept for one hour.
    #[serde(default)]
    pub image_hour: f64,
}

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorNode {
    /// The node name (the key of its rows and the column of the grid).
    pub name: String,
    /// svcd's endpoint: `http://host:port` or `https://host:port`.
    pub url: String,
    /// The read token to present (`Authorization: Bearer`), read from this file.
    pub token_file: Option<PathBuf>,
    /// The CA file (PEM) the node's certificate must chain to (https only).
    pub ca: Option<PathBuf>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_database")]
    database: PathBuf,
    #[serde(default = "default_interval", with = "duration_str")]
    interval: Duration,
    #[serde(default = "default_timeout", with = "duration_str")]
    timeout: Duration,
    #[serde(default, with = "opt_duration")]
    stale_after: Option<Duration>,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default = "default_retention", with = "duration_str")]
    retention: Duration,
    #[serde(default = "default_chargeback_period", with = "duration_str")]
    chargeback_period: Duration,
    #[serde(default = "default_max_backoff", with = "duration_str")]
    max_backoff: Duration,
    /// Defaults for every node.
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    read_token_file: Option<PathBuf>,
    #[serde(default)]
    tls: Option<TlsFiles>,
    #[serde(default)]
    rates: Option<Rates>,
    #[serde(default)]
    alerts: Vec<RawAlert>,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    ca: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1216))
}
fn default_database() -> PathBuf {
    PathBuf::from("/var/lib/berth-collector/collector.db")
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_concurrency() -> usize {
    64
}
fn default_max_body() -> usize {
    8 << 20
}
fn default_retention() -> Duration {
    Duration::from_secs(30 * 86400)
}
fn default_chargeback_period() -> Duration {
    Duration::from_secs(300)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => crate::config::node::duration_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        crate::config::node::duration_str::deserialize(d).map(Some)
    }
}

impl CollectorConfig {
    /// Parse `collector.toml` text read from `file`: unknown keys, bad values, duplicate node
    /// names and bad URLs are errors naming the file and line.
    pub fn parse(file: &Path, text: &str) -> Result<CollectorConfig, ConfigError> {
        let raw: Raw =
            toml::from_str(text).map_err(|e| super::tomlfile::syntax_error(file, text, &e))?;
        let bad = |span: std::ops::Range<usize>, key: &str, value: &str, expected: &str| {
            ConfigError::at(
                file,
                Some(line_of(text, span.start)),
                Some("nodes"),
                Some(key),
                ConfigErrorKind::BadValue {
                    value: value.to_string(),
                    expected: expected.to_string(),
                },
            )
        };
        if raw.concurrency == 0 {
            return Err(ConfigError::at(
                file,
                None,
                None,
                Some("concurrency"),
                ConfigErrorKind::BadValue {
                    value: "0".into(),
                    expected: "at least 1".into(),
                },
            ));
        }
        if let Some(r) = &raw.rates {
            for (key, v) in [
                ("container_hour", r.container_hour),
                ("gib_hour", r.gib_hour),
                ("image_hour", r.image_hour),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(ConfigError::at(
                        file,
                        None,
                        Some("rates"),
                        Some(key),
                        ConfigErrorKind::BadValue {
                            value: v.to_string(),
                            expected: "a price of 0 or more".into(),
                        },
                    ));
                }
            }
        }
        let alerts = parse_alerts(file, raw.alerts)?;
        let mut seen: BTreeMap<String, ()> = BTreeMap::new();
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for n in raw.nodes {
            let name = n.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(bad(
                    n.name.span(),
                    "name",
                    &name,
                    "a node name (letters, digits, '-', '_', '.')",
                ));
            }
            if seen.insert(name.clone(), ()).is_some() {
                return Err(bad(n.name.span(), "name", &name, "a name not used before"));
            }
            let url = n.url.get_ref().trim_end_matches('/').to_string();
            if split_url(&url).is_none() {
                return Err(bad(
                    n.url.span(),
                    "url",
                    &url,
                    "http://host:port or https://host:port",
                ));
            }
            nodes.push(CollectorNode {
                name,
                url,
                token_file: n.token_file.or_else(|| raw.token_file.clone()),
                ca: n.ca.or_else(|| raw.ca.clone()),
            });
        }
        Ok(CollectorConfig {
            listen: raw.listen,
            database: raw.database,
            interval: raw.interval,
            timeout: raw.timeout,
            stale_after: raw.stale_after.unwrap_or(raw.interval * 3),
            concurrency: raw.concurrency,
            max_body_bytes: raw.max_body_bytes,
            retention: raw.retention,
            chargeback_period: raw.chargeback_period,
            max_backoff: raw.max_backoff.max(raw.interval),
            nodes,
            read_token_file: raw.read_token_file,
            tls: raw.tls,
            rates: raw.rates,
            alerts,
        })
    }
}

fn parse_alerts(file: &Path, raw: Vec<RawAlert>) -> Result<Vec<AlertConfig>, ConfigError> {
    let bad = |key: &str, value: &str, expected: &str| {
        ConfigError::at(
            file,
            None,
            Some("alerts"),
            Some(key),
            ConfigErrorKind::BadValue {
                value: value.to_string(),
                expected: expected.to_string(),
            },
        )
    };
    let mut out: Vec<AlertConfig> = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let name = a.name.unwrap_or_else(|| format!("alert{}", i + 1));
        if out.iter().any(|o| o.name == name) {
            return Err(bad("name", &name, "a name not used before"));
        }
        let sink = match (a.webhook, a.command) {
            (Some(url), None) => {
                let ok = ["http://", "https://"]
                    .iter()
                    .any(|p| url.strip_prefix(p).is_some_and(|r| !r.is_empty()));
                if !ok {
                    return Err(bad("webhook", &url, "an http:// or https:// URL"));
                }
                AlertSink::Webhook { url, ca: a.ca }
            }
            (None, Some(cmd)) if !cmd.is_empty() => AlertSink::Command(cmd),
            (None, Some(_)) => return Err(bad("command", "[]", "a program and its arguments")),
            _ => {
                return Err(bad(
                    "webhook",
                    &name,
                    "exactly one of webhook = \"URL\" or command = [...]",
                ));
            }
        };
        let down_only = match a.min.as_deref() {
            None | Some("warn") => false,
            Some("down") => true,
            Some(other) => return Err(bad("min", other, "warn or down")),
        };
        out.push(AlertConfig {
            name,
            sink,
            app: a.app,
            env: a.env,
            service: a.service,
            node: a.node,
            down_only,
            hold: a.hold.unwrap_or(Duration::ZERO),
            retries: a.retries.unwrap_or(5),
        });
    }
    Ok(out)
}

/// `(tls, host, port)` of an `http://host[:port]` or `https://host[:port]` URL without a path
/// (port defaults: 80, 443). The host may be a name, an IPv4 address or `[v6]`.
pub fn split_url(url: &str) -> Option<(bool, String, u16)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return None;
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None if tls => 443,
        None => 80,
    };
    Some((tls, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/berth/collector.toml";

    /// The example the package ships as /etc/berth/collector.toml.
    const PACKAGED: &str = include_str!("../../../../packaging/collector.toml");

    #[test]
    fn the_packaged_example_says_the_defaults_and_its_nodes_parse() {
        let c = CollectorConfig::parse(Path::new(FILE), PACKAGED).unwrap();
        let d = CollectorConfig::parse(Path::new(FILE), "").unwrap();
        assert!(c.nodes.is_empty());
        assert_eq!(c, d, "all comments: the defaults");
        // Each commented `key = value` line is a real key with its default (or an example).
        let uncommented: String = PACKAGED
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = ") || l.starts_with("[["))
            .map(|l| format!("{l}\n"))
            .collect();
        let u = CollectorConfig::parse(Path::new(FILE), &uncommented)
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(u.listen, d.listen);
        assert_eq!(u.database, d.database);
        assert_eq!(
            (u.interval, u.timeout, u.stale_after),
            (d.interval, d.timeout, d.stale_after)
        );
        assert_eq!(u.nodes.len(), 2);
        assert_eq!(
            u.nodes[1].token_file.as_deref(),
            Some(Path::new("/etc/berth/node2.token"))
        );
    }

    #[test]
    fn defaults_and_nodes() {
        let c = CollectorConfig::parse(
            Path::new(FILE),
            r#"
database = "/tmp/c.db"
interval = "2s"
ca = "/etc/berth/ca.pem"
[[nodes]]
name = "n1"
url = "https://n1:1215/"
[[nodes]]
name = "n2"
url = "http://127.0.0.1:1215"
ca = "/other.pem"
token_file = "/t"
"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 1216);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.stale_after, Duration::from_secs(6));
        assert_eq!(c.retention, Duration::from_secs(30 * 86400));
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[0].url, "https://n1:1215");
        assert_eq!(
            c.nodes[0].ca.as_deref(),
            Some(Path::new("/etc/berth/ca.pem"))
        );
        assert_eq!(c.nodes[1].ca.as_deref(), Some(Path::new("/other.pem")));
        assert_eq!(c.nodes[1].token_file.as_deref(), Some(Path::new("/t")));
    }

    #[test]
    fn typos_and_bad_values_name_the_line() {
        let p = Path::new(FILE);
        let err = CollectorConfig::parse(p, "interval = \"1s\"\nintervall = \"2s\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/etc/berth/collector.toml:2:"), "{msg}");
        assert!(msg.contains("intervall"), "{msg}");
        let err = CollectorConfig::parse(p, "[[nodes]]\nname = \"a\"\nurl = \"x\"\nport = 1\n")
            .unwrap_err();
        assert!(err.to_string().contains(":4:"), "{err}");
        let err =
            CollectorConfig::parse(p, "[[nodes]]\nname = \"a\"\nurl = \"ftp://a\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(":3:") && msg.contains("ftp://a"), "{msg}");
        let dup = "[[nodes]]\nname = \"a\"\nurl = \"http://a:1\"\n[[nodes]]\nname = \"a\"\nurl = \"http://b:1\"\n";
        let err = CollectorConfig::parse(p, dup).unwrap_err();
        assert!(err.to_string().contains(":5:"), "{err}");
        let err = CollectorConfig::parse(p, "retention = \"forever\"\n").unwrap_err();
        assert!(err.to_string().contains("forever"), "{err}");
        let err = CollectorConfig::parse(p, "[rates]\ncontainer_hour = -1.0\n").unwrap_err();
        assert!(err.to_string().contains("container_hour"), "{err}");
        let err = CollectorConfig::parse(p, "[rates]\ncpu_hour = 1.0\n").unwrap_err();
        assert!(err.to_string().contains("cpu_hour"), "{err}");
    }

    #[test]
    fn alerts() {
        let p = Path::new(FILE);
        let c = CollectorConfig::parse(
            p,
            "[[alerts]]\nwebhook = \"http://127.0.0.1:9/hook\"\nfor = \"30s\"\napp = \"shop\"\n\
             [[alerts]]\nname = \"mail\"\ncommand = [\"/usr/sbin/sendmail\", \"ops@x\"]\nmin = \"down\"\n",
        )
        .unwrap();
        assert_eq!(c.alerts.len(), 2);
        assert_eq!(c.alerts[0].name, "alert1");
        assert_eq!(c.alerts[0].hold, Duration::from_secs(30));
        assert_eq!(c.alerts[0].app.as_deref(), Some("shop"));
        assert!(!c.alerts[0].down_only && c.alerts[1].down_only);
        assert_eq!(c.alerts[1].retries, 5);
        assert!(matches!(&c.alerts[1].sink, AlertSink::Command(v) if v.len() == 2));
        for bad in [
            "[[alerts]]\nfor = \"1s\"\n",
            "[[alerts]]\nwebhook = \"ftp://x\"\n",
            "[[alerts]]\nwebhook = \"http://x/\"\ncommand = [\"x\"]\n",
            "[[alerts]]\ncommand = [\"x\"]\nmin = \"bad\"\n",
            "[[alerts]]\ncommand = [\"x\"]\nsnooze = 1\n",
        ] {
            CollectorConfig::parse(p, bad).unwrap_err();
        }
    }

    /// The example of docs/collector.md is a config this parser takes.
    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../../docs/collector.md");
        let section = doc.split("## collector.toml").nth(1).unwrap();
        let toml = section
            .split("```toml\n")
            .nth(1)
            .and_then(|r| r.split("```").next())
            .unwrap();
        let c = CollectorConfig::parse(Path::new(FILE), toml).unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.alerts.len(), 2);
        assert!(c.rates.is_some() && c.tls.is_some() && c.read_token_file.is_some());
    }

    #[test]
    fn rates_tls_and_token() {
        let c = CollectorConfig::parse(
            Path::new(FILE),
            "read_token_file = \"/t\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n\
             [rates]\ncurrency = \"EUR\"\ncontainer_hour = 0.02\n",
        )
        .unwrap();
        let r = c.rates.unwrap();
        assert_eq!((r.container_hour, r.gib_hour), (0.02, 0.0));
        assert_eq!(r.currency.as_deref(), Some("EUR"));
        assert_eq!(c.tls.unwrap().key, Path::new("/k"));
        assert_eq!(c.read_token_file.as_deref(), Some(Path::new("/t")));
    }

    #[test]
    fn urls() {
        assert_eq!(split_url("http://a:1"), Some((false, "a".into(), 1)));
        assert_eq!(split_url("https://a"), Some((true, "a".into(), 443)));
        assert_eq!(split_url("http://[::1]:9"), Some((false, "::1".into(), 9)));
        assert_eq!(split_url("http://a:1/status"), None);
        assert_eq!(split_url("http://a:x"), None);
        assert_eq!(split_url("http://"), None);
    }
}
