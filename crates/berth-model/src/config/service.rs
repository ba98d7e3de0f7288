//! The typed service: what a service file means once read (the load is `load.rs`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::error::ConfigWarning;
use super::raw::{Format, Written};
use super::value::is_hostname;
use crate::rid::{Kind, Rid};
use crate::run_args::RunOptions;

/// A parsed, validated service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceConfig {
    /// The service name (the file name without its extension).
    pub name: String,
    /// The file it was read from.
    pub source: PathBuf,
    /// The syntax of that file.
    pub format: Format,
    /// Service-wide settings (`[service]` in TOML, `[DEFAULT]` in INI).
    pub settings: ServiceSettings,
    /// The resources, in file order.
    pub resources: Vec<Resource>,
    /// Keywords berth read but does not act on, and other warnings of the load.
    pub warnings: Vec<ConfigWarning>,
    /// The file as written, with canonical keyword names (`print config`).
    #[serde(skip)]
    pub written: Written,
}

impl ServiceConfig {
    /// The resource with this rid.
    pub fn resource(&self, rid: Rid) -> Option<&Resource> {
        self.resources.iter().find(|r| r.rid == rid)
    }

    /// The private docker data root: `docker_data_dir`, else `<var>/<svc>/docker`.
    pub fn docker_data_dir(&self, var_dir: &Path) -> PathBuf {
        self.settings
            .docker_data_dir
            .clone()
            .unwrap_or_else(|| var_dir.join(&self.name).join("docker"))
    }

    /// The docker network of the service's containers (those with no `network` nor `netns`).
    pub fn docker_network(&self) -> String {
        docker_network_of(&self.name)
    }

    /// Whether any resource is a container.
    pub fn has_containers(&self) -> bool {
        self.resources.iter().any(|r| r.rid.kind == Kind::Container)
    }
}

/// The docker network of service `svc`: `berth-<svc>`. The prefix keeps it apart from docker's
/// own networks (`bridge`, `host`, `none`), and, not being hex, from a network id prefix, which
/// docker would take for a name it does not know (`b` names the network whose id starts so).
pub fn docker_network_of(svc: &str) -> String {
    format!("berth-{svc}")
}

/// Service-wide settings.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceSettings {
    /// The nodes this service may run on.
    pub nodes: Vec<String>,
    /// OpenSVC's disaster-recovery nodes: `key@drpnodes` applies on them; berth does not start
    /// the service there.
    pub drpnodes: Vec<String>,
    /// OpenSVC's service id (`id`), kept as written.
    pub id: Option<String>,
    /// A free comment (`comment`).
    pub comment: Option<String>,
    /// The node that starts it at boot.
    pub autostart_node: Option<String>,
    /// The application code (OpenSVC `app`).
    pub app: Option<String>,
    /// The environment: PRD, DEV... (OpenSVC `service_type`).
    pub env: Option<String>,
    /// The private dockerd's data root (the old `docker -g`).
    pub docker_data_dir: Option<PathBuf>,
    /// Extra flags for the private dockerd.
    pub docker_daemon_args: Vec<String>,
    /// `docker_registries`: the registries the private dockerd trusts (added to node.toml's).
    pub docker_registries: Vec<Registry>,
    /// `registry_ca`: the CA (PEM) that signs the `https://` registries' certificates.
    pub registry_ca: Option<PathBuf>,
    /// `registry_creds`: a docker config.json with the registries' auth, for every container.
    pub registry_creds: Option<PathBuf>,
    /// `docker_subnet`: the subnet of the service's container network; default one of
    /// 10.199.0.0/16's /24s, chosen at start among those no route of the node overlaps.
    pub docker_subnet: Option<ipnet::Ipv4Net>,
    /// What the cluster's orchestrator does with the service (`orchestrate`).
    pub orchestrate: Orchestrate,
    /// What a failed monitored resource does once its restarts are spent (`monitor_action`).
    pub monitor_action: MonitorAction,
    /// How the nodes are ranked for a start or a failover (`placement`).
    pub placement: Placement,
}

/// `orchestrate`: who starts the service in a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orchestrate {
    /// Only operators start it (the default).
    #[default]
    No,
    /// svcd starts it on the first fit node of `nodes`, once.
    Start,
    /// As `start`, and svcd fails it over when its node dies or its resources fail.
    Ha,
}

impl Orchestrate {
    /// The keyword values.
    pub const CHOICES: &'static [(&'static str, Orchestrate)] = &[
        ("no", Orchestrate::No),
        ("start", Orchestrate::Start),
        ("ha", Orchestrate::Ha),
    ];
}

/// `monitor_action`: what a monitored resource that failed beyond its restarts triggers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorAction {
    /// Nothing more than the status (the default).
    #[default]
    None,
    /// The service fails over to the next candidate node.
    Switch,
    /// The service is frozen and stopped on this node.
    Freezestop,
}

impl MonitorAction {
    /// The keyword values.
    pub const CHOICES: &'static [(&'static str, MonitorAction)] = &[
        ("none", MonitorAction::None),
        ("switch", MonitorAction::Switch),
        ("freezestop", MonitorAction::Freezestop),
    ];
}

/// `placement`: how candidate nodes are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Placement {
    /// The order of `nodes` (the default).
    #[default]
    #[serde(rename = "nodes order")]
    NodesOrder,
}

impl Placement {
    /// The keyword values.
    pub const CHOICES: &'static [(&'static str, Placement)] =
        &[("nodes order", Placement::NodesOrder)];
}

/// One resource of a service.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// Its id.
    pub rid: Rid,
    /// Keywords every resource takes.
    pub common: Common,
    /// The kind-specific keywords.
    pub spec: Spec,
}

/// Keywords every resource takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Common {
    /// A failure of this resource does not fail the service; it is left out of `avail`.
    pub optional: bool,
    /// Never started nor stopped; left out of the status merge.
    pub disable: bool,
    /// The agent restarts it when it fails while the service is up.
    pub monitor: bool,
    /// How many times the agent tries to restart it.
    pub restart: u32,
    /// Tags for `--tags` selection.
    pub tags: BTreeSet<String>,
    /// A subset name (resources of one subset are grouped).
    pub subset: Option<String>,
    /// Kept up on every node, even where the service is stopped.
    pub standby: bool,
}

/// The kind-specific part of a resource.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Spec {
    /// `[ip#N]`.
    Ip(IpSpec),
    /// `[vg#N]`.
    Vg(VgSpec),
    /// `[fs#N]`.
    Fs(FsSpec),
    /// `[container#N]`.
    Container(Box<ContainerSpec>),
}

/// A netmask: a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefix(pub u8);

/// `[ip#N]`: an address on an interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpSpec {
    /// An address, or a name resolved through the system resolver.
    pub ipname: String,
    /// The interface.
    pub ipdev: String,
    /// The prefix length; when absent, taken from an address the device has on that subnet.
    pub netmask: Option<Prefix>,
    /// A default gateway to add with the address.
    pub gateway: Option<IpAddr>,
    /// How long the ARP conflict probe listens for an answer.
    pub probe_timeout: Duration,
    /// How many gratuitous ARP packets announce the address.
    pub garp_count: u32,
    /// The interval between gratuitous ARP packets.
    pub garp_interval: Duration,
    /// `type = netns`: the address goes in the network namespace of a container of the service,
    /// not on the node's interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<NetnsIp>,
}

/// `[ip#N] type = netns` (OpenSVC v2): an interface in a container's network namespace, from
/// `ipdev` on the node, carrying the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetnsIp {
    /// `netns`: the container whose namespace gets the address (`container#0`).
    pub container: Rid,
    /// `mode`: how the interface is made from `ipdev`; `None`: bridge when `ipdev` is a
    /// bridge, else macvlan (OpenSVC's default).
    pub mode: Option<NetnsMode>,
    /// `nsdev`: the interface's name in the namespace; default the first free `eth<N>`.
    pub nsdev: Option<String>,
}

/// `mode` of a netns ip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetnsMode {
    /// A veth pair: one end a port of the bridge `ipdev`, the other in the namespace.
    Bridge,
    /// A macvlan (bridge mode) on `ipdev`, moved into the namespace.
    Macvlan,
}

impl NetnsMode {
    /// The keyword values.
    pub const CHOICES: &'static [(&'static str, NetnsMode)] = &[
        ("bridge", NetnsMode::Bridge),
        ("macvlan", NetnsMode::Macvlan),
    ];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetnsMode::Bridge => "bridge",
            NetnsMode::Macvlan => "macvlan",
        }
    }
}

/// `[vg#N]`: an LVM volume group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VgSpec {
    /// The volume group name.
    pub vgname: String,
}

/// `[fs#N]`: a filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsSpec {
    /// A block device, or a regular file (an image, attached to a loop device).
    pub dev: PathBuf,
    /// The absolute mount point.
    pub mnt: PathBuf,
    /// The filesystem type (`ext4`, `xfs`...).
    pub fs_type: String,
    /// Mount options, comma separated (`mnt_opt`, or OpenSVC's `mnt_opts`).
    pub mnt_opt: Option<String>,
    /// The bound on a stop, holders killed included.
    pub stop_timeout: Duration,
}

impl FsSpec {
    /// The depth of the mount point (`/` is 0, `/srv` 1, `/srv/web` 2).
    pub fn depth(&self) -> usize {
        self.mnt
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count()
    }
}

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
    /// The container's name: `<svc>.container.<N>` (`<svc>.container.<name>` for a named rid).
    pub fn container_name(svc: &str, id: crate::rid::RidId) -> String {
        format!("{svc}.container.{id}")
    }
}

impl Spec {
    /// Drop the graceful waits, the way self-fencing stops: a container gets docker's shortest
    /// stop (1 s, then SIGKILL), a filesystem a 1 s bound (holders get TERM, then KILL after
    /// 0.2 s); the other kinds have no wait.
    pub fn fast_stop(&mut self) {
        match self {
            Spec::Container(c) => c.stop_timeout = Duration::ZERO,
            Spec::Fs(f) => f.stop_timeout = f.stop_timeout.min(Duration::from_secs(1)),
            Spec::Ip(_) | Spec::Vg(_) => {}
        }
    }
}

impl ServiceConfig {
    /// The service as self-fencing stops it: every resource's [`Spec::fast_stop`].
    pub fn fast_stop(&self) -> ServiceConfig {
        let mut fast = self.clone();
        for r in &mut fast.resources {
            r.spec.fast_stop();
        }
        fast
    }
}
