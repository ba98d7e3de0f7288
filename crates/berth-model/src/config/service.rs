//! The typed service: what a service file means once read (the load is `load.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::ConfigWarning;
use super::kinds::container::{ContainerSpec, Registry};
use super::kinds::fs::{FlagSpec, FsSpec};
use super::kinds::ip::IpSpec;
use super::kinds::sync::SyncSpec;
use super::kinds::vg::VgSpec;
use super::raw::{Format, Written};
use crate::rid::{Kind, Rid};

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
    /// One instance at a time (`failover`), or one on each of several nodes (`flex`).
    pub topology: Topology,
}

impl ServiceSettings {
    /// The flex counts, when the service is flex.
    pub fn flex(&self) -> Option<Flex> {
        match self.topology {
            Topology::Failover => None,
            Topology::Flex(f) => Some(f),
        }
    }
}

/// `topology` (OpenSVC's `cluster_type`): how many instances of the service run at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One instance, on one node at a time (the default).
    #[default]
    Failover,
    /// One instance on each of several nodes, at most one per node.
    Flex(Flex),
}

impl Topology {
    /// Whether it is `flex`.
    pub fn is_flex(&self) -> bool {
        matches!(self, Topology::Flex(_))
    }

    /// The keyword's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Topology::Failover => "failover",
            Topology::Flex(_) => "flex",
        }
    }
}

/// The instance counts of a flex service, checked at load: `min <= target <= max <= nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Flex {
    /// `flex_min` (OpenSVC `flex_min_nodes`): fewer instances up is a `warn` (default 1).
    pub min: u32,
    /// `flex_max` (OpenSVC `flex_max_nodes`): never more instances than this (default: the
    /// number of `nodes`).
    pub max: u32,
    /// `flex_target`: how many instances the orchestrator keeps up (default `flex_min`).
    pub target: u32,
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
    /// `always_on`: the nodes where it is a standby resource, as written (`nodes`, `drpnodes`
    /// or node names; OpenSVC's keyword).
    pub always_on: Vec<String>,
    /// Whether `always_on` names the node this file was loaded on (set by the load; false
    /// where no node is known).
    #[serde(skip)]
    pub always_on_here: bool,
}

impl Common {
    /// Whether it is a standby resource on the node the file was loaded on: `standby = true`,
    /// or `always_on` names this node. Kept up there (`stdby up` / `stdby down`); a stop leaves
    /// it up unless forced.
    pub fn is_standby(&self) -> bool {
        self.standby || self.always_on_here
    }
}

/// Whether an `always_on` list (`nodes`, `drpnodes`, node names) names `node`, for a service
/// whose `nodes` and `drpnodes` are these.
pub fn always_on_names(always_on: &[String], node: &str, nodes: &[String], drp: &[String]) -> bool {
    always_on.iter().any(|w| match w.as_str() {
        "nodes" => nodes.iter().any(|n| n == node),
        "drpnodes" => drp.iter().any(|n| n == node),
        name => name == node,
    })
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
    /// `[fs#N] type = flag`: a marker file in the run dir.
    #[serde(rename = "fs")]
    Flag(FlagSpec),
    /// `[container#N]`.
    Container(Box<ContainerSpec>),
    /// `[sync#N]`.
    Sync(SyncSpec),
}

impl Spec {
    /// Drop the graceful waits, the way self-fencing stops: a container gets docker's shortest
    /// stop (1 s, then SIGKILL), a filesystem a 1 s bound (holders get TERM, then KILL after
    /// 0.2 s); the other kinds have no wait.
    pub fn fast_stop(&mut self) {
        match self {
            Spec::Container(c) => c.fast_stop(),
            Spec::Fs(f) => f.fast_stop(),
            Spec::Ip(_) | Spec::Vg(_) | Spec::Sync(_) | Spec::Flag(_) => {}
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
