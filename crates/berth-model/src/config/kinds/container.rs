//! `[container#N]`: its spec, its keywords and their reader (the docker flags are the
//! `run_options!` table of `run_args`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::config::alias::{Alias, alias};
use crate::config::error::{ConfigError, ConfigWarning};
use crate::config::raw::{Format, RawValue};
use crate::config::reader::{Reader, Sink};
use crate::config::value::{Dur, is_hostname};
use crate::rid::{Kind, Rid};
use crate::run_args::RunOptions;

/// The keywords of `[container#N]`.
pub const KEYWORDS: &[&str] = crate::run_args::CONTAINER_KEYWORDS;

/// The `type` values of `[container#N]` berth runs; the first is the default.
pub(crate) const DRIVER_TYPES: &[&str] = &["docker"];

/// The OpenSVC aliases of `[container#N]`'s keywords.
pub(crate) const ALIASES: &[Alias] = &[
    alias(
        Some(Kind::Container),
        "image",
        "run_image",
        "v2 and v3 name",
    ),
    alias(
        Some(Kind::Container),
        "command",
        "run_command",
        "v2 and v3 name",
    ),
    alias(
        Some(Kind::Container),
        "environment",
        "env",
        "v2 and v3 name",
    ),
    alias(
        Some(Kind::Container),
        "volume_mounts",
        "volumes",
        "v2 and v3 name",
    ),
    alias(Some(Kind::Container), "sysctl", "sysctls", "v3 name"),
    alias(Some(Kind::Container), "pidns", "pid", "v2 and v3 name"),
    alias(Some(Kind::Container), "ipcns", "ipc", "v2 and v3 name"),
];

/// `[container#N]` of type docker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    /// An image id or name.
    pub run_image: String,
    /// The command, split as a shell would (never run through one).
    pub run_command: Option<Vec<String>>,
    /// `run_args` and the TOML keywords, as one set of run options.
    pub run: RunOptions,
    /// How long to wait for the container to run (and be healthy).
    pub start_timeout: Duration,
    /// How long a graceful stop may take before the container is killed.
    pub stop_timeout: Duration,
    /// `netns = container#N`: run in the network namespace of that container of the service
    /// (`--net container:<svc>.container.<N>`), as OpenSVC v2's pods do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<Rid>,
    /// `start_requires`: resources that must be up (a container: running and, with a
    /// healthcheck, healthy) before this one starts; it stops before them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_requires: Vec<Rid>,
    /// `image_pull_policy`: when a start pulls `run_image`.
    pub image_pull_policy: PullPolicy,
    /// `pull_timeout`: the bound on one pull (default 2m).
    pub pull_timeout: Duration,
    /// `registry_creds` of this container (wins over the service's): a docker config.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_creds: Option<PathBuf>,
}

/// `image_pull_policy`: when a start pulls the container's image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull when the docker daemon lacks the image (the default).
    #[default]
    Once,
    /// Pull before every start; a container made from another image is made again.
    Always,
}

impl PullPolicy {
    /// The keyword's values.
    pub const CHOICES: &'static [(&'static str, PullPolicy)] =
        &[("once", PullPolicy::Once), ("always", PullPolicy::Always)];
}

/// A `docker_registries` entry: `host:port` (plain HTTP) or `https://host:port` (TLS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Registry {
    /// `host:port` (or `host`), as docker names the registry.
    pub host: String,
    /// Whether it is reached over TLS.
    pub tls: bool,
}

impl Registry {
    /// Parse `host[:port]` or `https://host[:port]`; `http://` is the plain form spelled out.
    pub fn parse(text: &str) -> Result<Registry, String> {
        let t = text.trim();
        let (tls, rest) = if let Some(r) = t.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = t.strip_prefix("http://") {
            (false, r)
        } else {
            (false, t)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let host_ok = is_hostname(host) || host.parse::<std::net::Ipv4Addr>().is_ok();
        if !host_ok {
            return Err(format!(
                "{host:?} is not a host name or an IPv4 address: give host:port or https://host:port"
            ));
        }
        if let Some(p) = port
            && !p.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!("{p:?} is not a port number"));
        }
        Ok(Registry {
            host: rest.to_string(),
            tls,
        })
    }
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tls {
            write!(f, "https://{}", self.host)
        } else {
            f.write_str(&self.host)
        }
    }
}

/// The registry an image reference names (`10.0.0.5:5000/app:1` -> `10.0.0.5:5000`), `None` for
/// docker's default one (`busybox`, `library/busybox`): docker reads the first component as a
/// registry when it holds a `.` or a `:`, or is `localhost`.
pub fn image_registry(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then_some(first)
}

impl ContainerSpec {
    /// Self-fencing's stop: docker's shortest (1 s, then SIGKILL).
    pub fn fast_stop(&mut self) {
        self.stop_timeout = Duration::ZERO;
    }

    /// The container's name: `<svc>.container.<N>` (`<svc>.container.<name>` for a named rid).
    pub fn container_name(svc: &str, id: crate::rid::RidId) -> String {
        format!("{svc}.container.{id}")
    }
}

/// A container's `netns`: another container's namespace, or OpenSVC's `host` (the node's).
enum Netns {
    Container(Rid),
    Host,
}

fn container_links(r: &mut Reader<'_>) -> Result<(Option<Netns>, Vec<Rid>), ConfigError> {
    let netns = match r.string("netns")? {
        None => None,
        Some(t) if t.trim() == "host" => Some(Netns::Host),
        Some(t) => match t.trim().parse::<Rid>() {
            Ok(rid) if rid.kind == Kind::Container => Some(Netns::Container(rid)),
            _ => {
                return Err(r.bad(
                    "netns",
                    &RawValue::Str(t),
                    "expected host or the rid of another container of the service (container#0)",
                ));
            }
        },
    };
    let mut start_requires = Vec::new();
    for item in r.list("start_requires")? {
        // OpenSVC writes `rid(state,...)`; berth requires the resource up.
        let (rid_text, states) = match item.split_once('(') {
            Some((rid, rest)) => (rid, Some(rest.trim_end_matches(')'))),
            None => (item.as_str(), None),
        };
        if let Some(states) = states
            && states.split(',').any(|s| s.trim() != "up")
        {
            return Err(r.bad(
                "start_requires",
                &RawValue::Str(item.clone()),
                "berth takes the state up only: <rid> or <rid>(up)",
            ));
        }
        match rid_text.trim().parse::<Rid>() {
            Ok(rid) => start_requires.push(rid),
            Err(_) => {
                return Err(r.bad(
                    "start_requires",
                    &RawValue::Str(item.clone()),
                    "expected resource ids of the service (container#1 fs#1(up))",
                ));
            }
        }
    }
    Ok((netns, start_requires))
}

pub(crate) fn read(
    r: &mut Reader<'_>,
    e: &mut Sink<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<ContainerSpec> {
    // `type` is checked against `compat::driver_types` before: docker.
    let _ = r.string("type");
    // OpenSVC's `detach` and `rm`: berth always runs detached and keeps the container.
    if e.ok(r.boolean("detach", true)) == Some(false) {
        warnings.push(r.warning(
            "detach",
            "accepted and ignored: berth always runs containers detached",
        ));
    }
    if e.ok(r.boolean("rm", false)) == Some(true) {
        warnings.push(r.warning(
            "rm",
            "accepted and ignored: berth keeps the stopped container to report its status \
             (and creates it again when its configuration changes)",
        ));
    }
    let run_image = e.ok(r.required("run_image"));
    let run_command = e.ok(r.words("run_command"));
    let run = e.ok(crate::run_args::read(r));
    let start_timeout = e.ok(r.duration("start_timeout", Duration::from_secs(30)));
    let stop_timeout = e.ok(r.duration("stop_timeout", Duration::from_secs(10)));
    let links = e.ok(container_links(r));
    let image_pull_policy =
        e.ok(r.choice("image_pull_policy", PullPolicy::CHOICES, PullPolicy::Once));
    let pull_timeout = e.ok(r.duration("pull_timeout", Duration::from_secs(120)));
    let registry_creds = e.ok(registry_creds(r, warnings));
    let (netns, start_requires) = links?;
    let mut run = run?;
    let netns = match netns {
        // `netns = host` is OpenSVC's spelling of `--net host`.
        Some(Netns::Host) => match run.network.as_deref() {
            None | Some("host") => {
                run.network = Some("host".into());
                None
            }
            Some(other) => {
                e.0.push(r.bad(
                    "netns",
                    &RawValue::Str("host".into()),
                    &format!("the node's namespace, while network = {other}: give one of them"),
                ));
                return None;
            }
        },
        Some(Netns::Container(rid)) => Some(rid),
        None => None,
    };
    Some(ContainerSpec {
        run_image: run_image?,
        run_command: run_command?,
        run,
        start_timeout: start_timeout?,
        stop_timeout: stop_timeout?,
        netns,
        start_requires,
        image_pull_policy: image_pull_policy?,
        pull_timeout: pull_timeout?,
        registry_creds: registry_creds?,
    })
}

/// `registry_creds`: the path of a docker config.json. OpenSVC's names a secret object instead:
/// in an INI file a value that is not a path is a warning, and ignored.
pub(crate) fn registry_creds(
    r: &mut Reader<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<PathBuf>, ConfigError> {
    if r.format == Format::Ini
        && let Some(RawValue::Str(v)) = r.entries.get("registry_creds").map(|e| &e.value)
        && !v.trim_start().starts_with('/')
    {
        let _ = r.take("registry_creds");
        warnings.push(r.warning(
            "registry_creds",
            "accepted and ignored: OpenSVC's names a secret object; berth takes the path of a \
             docker config.json",
        ));
        return Ok(None);
    }
    r.abs_path("registry_creds")
}

/// `[container#N]` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct ContainerView<'a> {
    #[serde(rename = "type")]
    typ: &'static str,
    run_image: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_command: Option<&'a [String]>,
    #[serde(flatten)]
    run: RunKeywords<'a>,
    start_timeout: Dur,
    stop_timeout: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    start_requires: Vec<String>,
    image_pull_policy: PullPolicy,
    pull_timeout: Dur,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_creds: Option<String>,
}

/// The run options as their keywords, in table order.
struct RunKeywords<'a>(&'a RunOptions);

impl Serialize for RunKeywords<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kw = self.0.keywords();
        let mut map = s.serialize_map(Some(kw.len()))?;
        for (k, v) in &kw {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The `print config` view of a spec.
pub(crate) fn view(c: &ContainerSpec) -> ContainerView<'_> {
    ContainerView {
        typ: "docker",
        run_image: &c.run_image,
        run_command: c.run_command.as_deref(),
        run: RunKeywords(&c.run),
        start_timeout: Dur(c.start_timeout),
        stop_timeout: Dur(c.stop_timeout),
        netns: c.netns.map(|r| r.to_string()),
        start_requires: c.start_requires.iter().map(|r| r.to_string()).collect(),
        image_pull_policy: c.image_pull_policy,
        pull_timeout: Dur(c.pull_timeout),
        registry_creds: c.registry_creds.as_ref().map(|p| p.display().to_string()),
    }
}
