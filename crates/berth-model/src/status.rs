//! The status tree: one type, serialised by the CLI, the HTTP endpoint and the collector alike.
//! Merge rules are OpenSVC's (see `Status::merge`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ServiceConfig;
use crate::rid::Rid;

/// The status of a resource, or of a merge of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Running as configured.
    #[serde(rename = "up")]
    Up,
    /// Not running.
    #[serde(rename = "down")]
    Down,
    /// Partly up, or up with a problem.
    #[serde(rename = "warn")]
    Warn,
    /// Does not apply (neutral in merges).
    #[serde(rename = "n/a")]
    NotApplicable,
    /// Not known (neutral in merges).
    #[serde(rename = "undef")]
    Undef,
    /// A standby resource that is up.
    #[serde(rename = "stdby up")]
    StdbyUp,
    /// A standby resource that is down.
    #[serde(rename = "stdby down")]
    StdbyDown,
}

impl Status {
    /// Every status, for tables and tests.
    pub const ALL: [Status; 7] = [
        Status::Up,
        Status::Down,
        Status::Warn,
        Status::NotApplicable,
        Status::Undef,
        Status::StdbyUp,
        Status::StdbyDown,
    ];

    /// The word `print status` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::Warn => "warn",
            Status::NotApplicable => "n/a",
            Status::Undef => "undef",
            Status::StdbyUp => "stdby up",
            Status::StdbyDown => "stdby down",
        }
    }

    /// Merge two statuses with OpenSVC's rules:
    /// `n/a` and `undef` are neutral (`n/a` the more so); up+up=up, down+down=down, up+down=warn,
    /// warn+x=warn; down+stdby down=stdby down, up+stdby down=warn, up+stdby up=up,
    /// down+stdby up=stdby up, stdby up+stdby down=warn. Commutative, but not associative:
    /// callers fold in one fixed order.
    pub fn merge(self, other: Status) -> Status {
        use Status::*;
        match (self, other) {
            (NotApplicable, x) | (x, NotApplicable) => x,
            (Undef, x) | (x, Undef) => x,
            (Warn, _) | (_, Warn) => Warn,
            (a, b) if a == b => a,
            (Up, Down) | (Down, Up) => Warn,
            (Down, StdbyDown) | (StdbyDown, Down) => StdbyDown,
            (Up, StdbyDown) | (StdbyDown, Up) => Warn,
            (Up, StdbyUp) | (StdbyUp, Up) => Up,
            (Down, StdbyUp) | (StdbyUp, Down) => StdbyUp,
            (StdbyUp, StdbyDown) | (StdbyDown, StdbyUp) => Warn,
            // Every pair is listed above; equal pairs are caught by the guard.
            _ => Warn,
        }
    }

    /// Merge many; an empty set is `n/a`.
    pub fn merge_all(it: impl IntoIterator<Item = Status>) -> Status {
        it.into_iter().fold(Status::NotApplicable, Status::merge)
    }

    /// The status a standby resource reports for a plain up / down.
    pub fn as_standby(self) -> Status {
        match self {
            Status::Up => Status::StdbyUp,
            Status::Down => Status::StdbyDown,
            s => s,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level of a log line attached to a resource status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Information (`# docker daemon is not running`).
    Info,
    /// Something an operator should look at; turns `overall` to warn.
    Warn,
    /// Something is broken; turns `overall` to warn.
    Error,
}

/// A line under a resource in `print status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its level.
    pub level: Level,
    /// The message.
    pub message: String,
}

impl LogEntry {
    /// An info line.
    pub fn info(message: impl Into<String>) -> Self {
        LogEntry {
            level: Level::Info,
            message: message.into(),
        }
    }
    /// A warning line.
    pub fn warn(message: impl Into<String>) -> Self {
        LogEntry {
            level: Level::Warn,
            message: message.into(),
        }
    }
    /// An error line.
    pub fn error(message: impl Into<String>) -> Self {
        LogEntry {
            level: Level::Error,
            message: message.into(),
        }
    }
}

/// What a driver reports for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The status.
    pub status: Status,
    /// The label (`dev@mnt`, `ipname@ipdev`, `<id>@<image>`...).
    pub label: String,
    /// Lines to show under the resource.
    pub log: Vec<LogEntry>,
    /// A running container's network and published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ContainerNetwork>,
}

impl ResourceState {
    /// A resource's state without a container network (every kind's but a running container's).
    pub fn new(status: Status, label: String, log: Vec<LogEntry>) -> Self {
        ResourceState {
            status,
            label,
            log,
            network: None,
        }
    }
}

/// Where a running container is networked, for `print status` (its `#` line) and the JSON tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// The network (the service's network is `berth-<svc>`), `none`, `host`, or
    /// `container:NAME` for a container in another's namespace.
    pub name: String,
    /// Its addresses on its networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Published ports, `HOST_IP:HOST_PORT->PORT/PROTO`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

impl ContainerNetwork {
    /// The `#` line: `network berth-web 10.199.7.2, ports 10.88.0.10:8080->80/tcp`.
    pub fn line(&self) -> String {
        let mut s = format!("network {}", self.name);
        for a in &self.addresses {
            s.push(' ');
            s.push_str(a);
        }
        if !self.ports.is_empty() {
            s.push_str(", ports ");
            s.push_str(&self.ports.join(" "));
        }
        s
    }
}

/// The M, D, O, E flags of `print status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// M: monitored.
    pub monitored: bool,
    /// D: disabled.
    pub disabled: bool,
    /// O: optional.
    pub optional: bool,
    /// E: encapsulated.
    pub encap: bool,
}

impl Flags {
    /// The four characters, `.` for each flag not set (`M.O.`).
    pub fn chars(&self) -> String {
        [
            (self.monitored, 'M'),
            (self.disabled, 'D'),
            (self.optional, 'O'),
            (self.encap, 'E'),
        ]
        .iter()
        .map(|&(on, c)| if on { c } else { '.' })
        .collect()
    }
}

/// One resource in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceStatus {
    /// Its id.
    pub rid: Rid,
    /// Its status.
    pub status: Status,
    /// Its label.
    pub label: String,
    /// Its flags.
    pub flags: Flags,
    /// Lines shown under it.
    pub log: Vec<LogEntry>,
    /// A running container's network and published ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<ContainerNetwork>,
}

/// Usage figures of a service's private docker daemon (the seed's chargeback).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chargeback {
    /// Containers the private daemon knows (running, stopped or dead: the inventory).
    pub containers: u64,
    /// Of those, the containers running now: what the collector bills.
    #[serde(default)]
    pub running: u64,
    /// Images the private daemon knows.
    pub images: u64,
    /// Bytes used under the data root.
    pub data_bytes: u64,
    /// Resident memory of the daemon, in bytes (0 when it is not running).
    pub daemon_rss_bytes: u64,
}

/// The target an operator's action sets (see [`ServiceStatus::target`]): `up` for `start` and
/// `restart`, `down` for `stop` and `shutdown`, none for partial actions (`startfs`...).
pub fn target_of_action(action: &str) -> Option<Status> {
    match action {
        "start" | "restart" => Some(Status::Up),
        "stop" | "shutdown" => Some(Status::Down),
        _ => None,
    }
}

/// One service in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service name.
    pub name: String,
    /// avail merged with optional resources, sync and hb; warn on any warning.
    pub overall: Status,
    /// The merge of the non-optional, enabled resources.
    pub avail: Status,
    /// Data replication: the `sync#N` rows merged, and the cluster's config-file row.
    pub sync: Status,
    /// Heartbeats (not handled by berth yet: n/a).
    pub hb: Status,
    /// Whether the agent's monitor leaves this service alone.
    #[serde(default)]
    pub frozen: bool,
    /// The resources, in `print status` order (container, vg, fs, ip).
    pub resources: Vec<ResourceStatus>,
    /// Docker usage, for services with containers whose status was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chargeback: Option<Chargeback>,
    /// Why the service could not be read or checked (a broken service file...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The application code (OpenSVC `app`), for the collector's chargeback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The environment (PRD, DEV...: OpenSVC `service_type`), for the collector's chargeback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// What the cluster says of the service: its owner, fencing token, each node's view.
    /// Absent on a node without a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ServiceCluster>,
    /// What an operator last asked of the service on this node: `up` after a start or restart,
    /// `down` after a stop or shutdown; absent when no whole-service action is recorded. A
    /// service `down` with target `down` was stopped, with target `up` it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Status>,
    /// The config row `sync#i0` (in the `sync` subtree): whether every node that may run the
    /// service has the cluster's copy of its file. Absent outside a cluster, or while etcd
    /// holds no copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_sync: Option<ConfigSync>,
}

/// The config row `sync#i0`: `up` when every live node that may run the service has the
/// cluster's copy of its file, `warn` naming the nodes behind or in conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSync {
    /// up / warn.
    pub status: Status,
    /// The cluster copy's revision (etcd's `mod_revision` of the file).
    pub revision: i64,
    /// The cluster copy's checksum.
    pub checksum: String,
    /// One line per node behind or in conflict (both checksums named).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behind: Vec<String>,
}

/// A service as the cluster sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCluster {
    /// The node that owns (runs) the service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The fencing token of the current ownership (the owner key's revision in etcd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// When the owner took the service, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Frozen cluster-wide.
    #[serde(default)]
    pub frozen: bool,
    /// Each node's last published view of the service.
    #[serde(default)]
    pub nodes: std::collections::BTreeMap<String, NodeCell>,
    /// For each node that does not run it, why (`hb down`, `not in nodes`, `frozen`,
    /// `file invalid: ...`, `start failed 12 s ago`, `target met: runs on n1`...).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub why: std::collections::BTreeMap<String, String>,
}

/// One node's view of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCell {
    /// The node's avail.
    pub avail: Status,
    /// The node's overall.
    pub overall: Status,
}

impl ServiceStatus {
    /// Build a service status from its resources' states, merging avail and overall.
    /// `resources` may come in any order; they are sorted for display.
    pub fn build(
        svc: &ServiceConfig,
        mut resources: Vec<(Rid, ResourceState)>,
        frozen: bool,
    ) -> ServiceStatus {
        resources.sort_by_key(|(rid, _)| (rid.kind.display_rank(), rid.id));
        let mut out = Vec::with_capacity(resources.len());
        for (rid, state) in resources {
            let common = svc
                .resource(rid)
                .map(|r| r.common.clone())
                .unwrap_or_default();
            let status = if common.standby {
                state.status.as_standby()
            } else {
                state.status
            };
            out.push(ResourceStatus {
                network: state.network,
                rid,
                status,
                label: state.label,
                flags: Flags {
                    monitored: common.monitor,
                    disabled: common.disable,
                    optional: common.optional,
                    encap: false,
                },
                log: state.log,
            });
        }
        let mut st = ServiceStatus::from_resources(svc.name.clone(), out, frozen);
        if !matches!(st.avail, Status::Up | Status::Warn) {
            // The service does not run here: this node sends nothing (it receives, when a
            // line says so); the sender's lines are not its business.
            for r in st
                .resources
                .iter_mut()
                .filter(|r| !r.rid.kind.runs_with_service())
            {
                r.status = Status::NotApplicable;
                r.log.retain(|l| l.level == Level::Info);
            }
            st = ServiceStatus::from_resources(st.name, st.resources, frozen);
        }
        st.app = svc.settings.app.clone();
        st.env = svc.settings.env.clone();
        st
    }

    /// Merge `avail` and `overall` from resource statuses whose flags are already set.
    pub fn from_resources(
        name: String,
        resources: Vec<ResourceStatus>,
        frozen: bool,
    ) -> ServiceStatus {
        let enabled = || resources.iter().filter(|r| !r.flags.disabled);
        // The sync rows merge into `sync`, never into `avail`.
        let service = || enabled().filter(|r| r.rid.kind.runs_with_service());
        let avail = Status::merge_all(service().filter(|r| !r.flags.optional).map(|r| r.status));
        let sync = Status::merge_all(
            enabled()
                .filter(|r| !r.rid.kind.runs_with_service())
                .map(|r| r.status),
        );
        let hb = Status::NotApplicable;
        let mut overall = Status::merge_all(
            std::iter::once(avail)
                .chain(service().filter(|r| r.flags.optional).map(|r| r.status))
                .chain([sync, hb]),
        );
        let complains = enabled().any(|r| r.log.iter().any(|l| l.level >= Level::Warn));
        if complains && overall != Status::NotApplicable {
            overall = Status::Warn;
        }
        ServiceStatus {
            name,
            overall,
            avail,
            sync,
            hb,
            frozen,
            resources,
            chargeback: None,
            error: None,
            app: None,
            env: None,
            cluster: None,
            target: None,
            config_sync: None,
        }
    }

    /// Set the cluster rows (`sync`, `hb`) and what the cluster says. They fold into
    /// `overall` last, and only when they are not `up`: a healthy heartbeat says nothing of
    /// the service (a passive node stays `down`, not `warn`), a late or lost one degrades it.
    pub fn set_cluster(&mut self, sync: Status, hb: Status, cluster: ServiceCluster) {
        // The config file's row (when there is one, what `sync` says of the service file)
        // beside the sync resources' rows.
        let sync = self.config_sync.as_ref().map_or(sync, |c| c.status);
        self.sync = self.sync.merge(sync);
        self.hb = hb;
        if self.error.is_none() {
            for row in [sync, hb] {
                if row != Status::Up {
                    self.overall = self.overall.merge(row);
                }
            }
        }
        self.cluster = Some(cluster);
    }

    /// The status of a service whose file could not be read: undef, with the reason.
    pub fn broken(name: String, error: String) -> ServiceStatus {
        let mut s = ServiceStatus::from_resources(name, Vec::new(), false);
        s.overall = Status::Undef;
        s.avail = Status::Undef;
        s.error = Some(error);
        s
    }
}

/// Schema version of the JSON tree; bumped on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A node and its services: what `svc print status --format json` and `GET /status` return.
/// `S` is the service's form: svcd serialises its cached JSON of each service through the same
/// type (`NodeStatus<&RawValue>`), so both bodies have one shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus<S = ServiceStatus> {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The node name.
    pub nodename: String,
    /// The services, sorted by name.
    pub services: Vec<S>,
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn operator_targets() {
        assert_eq!(target_of_action("start"), Some(Up));
        assert_eq!(target_of_action("restart"), Some(Up));
        assert_eq!(target_of_action("stop"), Some(Down));
        assert_eq!(target_of_action("shutdown"), Some(Down));
        assert_eq!(target_of_action("startfs"), None);
    }

    /// Older nodes send no `running` nor `target`: they read back as 0 and none.
    #[test]
    fn chargeback_and_target_default() {
        let cb: Chargeback = serde_json::from_str(
            r#"{"containers": 2, "images": 1, "data_bytes": 5, "daemon_rss_bytes": 0}"#,
        )
        .unwrap();
        assert_eq!((cb.containers, cb.running), (2, 0));
        let s = ServiceStatus::from_resources("web".into(), vec![], false);
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("target").is_none());
    }

    /// The whole merge table, row by row, as design.md states it.
    #[test]
    fn merge_table() {
        let table: [(Status, Status, Status); 28] = [
            (Up, Up, Up),
            (Up, Down, Warn),
            (Up, Warn, Warn),
            (Up, NotApplicable, Up),
            (Up, Undef, Up),
            (Up, StdbyUp, Up),
            (Up, StdbyDown, Warn),
            (Down, Down, Down),
            (Down, Warn, Warn),
            (Down, NotApplicable, Down),
            (Down, Undef, Down),
            (Down, StdbyUp, StdbyUp),
            (Down, StdbyDown, StdbyDown),
            (Warn, Warn, Warn),
            (Warn, NotApplicable, Warn),
            (Warn, Undef, Warn),
            (Warn, StdbyUp, Warn),
            (Warn, StdbyDown, Warn),
            (NotApplicable, NotApplicable, NotApplicable),
            (NotApplicable, Undef, Undef),
            (NotApplicable, StdbyUp, StdbyUp),
            (NotApplicable, StdbyDown, StdbyDown),
            (Undef, Undef, Undef),
            (Undef, StdbyUp, StdbyUp),
            (Undef, StdbyDown, StdbyDown),
            (StdbyUp, StdbyUp, StdbyUp),
            (StdbyUp, StdbyDown, Warn),
            (StdbyDown, StdbyDown, StdbyDown),
        ];
        for (a, b, want) in table {
            assert_eq!(a.merge(b), want, "{a} + {b}");
            assert_eq!(b.merge(a), want, "{b} + {a} (commutative)");
        }
    }

    /// The rules are not associative (up + (down + stdby up) = up, (up + down) + stdby up = warn),
    /// so a service merges its resources in one fixed order: the display order.
    #[test]
    fn merge_is_not_associative_so_order_is_fixed() {
        assert_eq!(Up.merge(Down.merge(StdbyUp)), Up);
        assert_eq!(Up.merge(Down).merge(StdbyUp), Warn);
    }

    #[test]
    fn empty_merge_is_na() {
        assert_eq!(Status::merge_all([]), NotApplicable);
    }

    fn res(rid: &str, status: Status, optional: bool, log: Vec<LogEntry>) -> ResourceStatus {
        ResourceStatus {
            network: None,
            rid: rid.parse().unwrap(),
            status,
            label: String::new(),
            flags: Flags {
                optional,
                ..Flags::default()
            },
            log,
        }
    }

    #[test]
    fn avail_ignores_optional_and_overall_counts_it() {
        let s = ServiceStatus::from_resources(
            "web".into(),
            vec![
                res("fs#1", Up, false, vec![]),
                res("fs#2", Down, true, vec![]),
            ],
            false,
        );
        assert_eq!(s.avail, Up);
        assert_eq!(s.overall, Warn);
    }

    #[test]
    fn info_log_keeps_overall_but_warning_turns_it() {
        let info = vec![LogEntry::info("docker daemon is not running")];
        let s = ServiceStatus::from_resources(
            "web".into(),
            vec![res("container#1", Down, false, info)],
            false,
        );
        assert_eq!(s.overall, Down);
        let warn = vec![LogEntry::warn("image differs")];
        let s = ServiceStatus::from_resources(
            "web".into(),
            vec![res("container#1", Up, false, warn)],
            false,
        );
        assert_eq!((s.avail, s.overall), (Up, Warn));
    }

    #[test]
    fn sync_rows_merge_into_sync_never_into_avail() {
        let rows = vec![
            res("ip#1", Up, false, vec![]),
            res(
                "sync#1",
                Down,
                false,
                vec![LogEntry::error("never synced to n3")],
            ),
        ];
        let s = ServiceStatus::from_resources("web".into(), rows, false);
        assert_eq!((s.avail, s.sync), (Up, Down));
        assert_eq!(s.overall, Warn);
        let text = crate::render::render_service(&s, false);
        let sync_at = text.find("|- sync").unwrap();
        assert!(text.find("sync#1").unwrap() > sync_at, "{text}");
        assert!(text.find("ip#1").unwrap() < sync_at, "{text}");
    }

    #[test]
    fn disabled_resources_are_left_out() {
        let mut r = res("fs#2", Down, false, vec![]);
        r.flags.disabled = true;
        let s = ServiceStatus::from_resources(
            "web".into(),
            vec![res("fs#1", Up, false, vec![]), r],
            false,
        );
        assert_eq!((s.avail, s.overall), (Up, Up));
    }

    #[test]
    fn flags_chars() {
        assert_eq!(Flags::default().chars(), "....");
        let f = Flags {
            monitored: true,
            optional: true,
            ..Flags::default()
        };
        assert_eq!(f.chars(), "M.O.");
    }

    #[test]
    fn status_json_words() {
        assert_eq!(serde_json::to_string(&StdbyDown).unwrap(), "\"stdby down\"");
        assert_eq!(
            serde_json::from_str::<Status>("\"n/a\"").unwrap(),
            NotApplicable
        );
    }

    #[test]
    fn cluster_rows_degrade_overall_only_when_not_up() {
        let passive = || ServiceStatus::from_resources("web".into(), Vec::new(), false);
        let mut st = passive();
        st.avail = Down;
        st.overall = Down;
        st.set_cluster(Up, Up, ServiceCluster::default());
        assert_eq!(st.overall, Down, "a passive node is down, not warn");
        let mut st = passive();
        st.avail = Up;
        st.overall = Up;
        st.set_cluster(Up, Warn, ServiceCluster::default());
        assert_eq!(st.overall, Warn);
        let mut st = passive();
        st.avail = Up;
        st.overall = Up;
        st.set_cluster(Warn, Up, ServiceCluster::default());
        assert_eq!((st.sync, st.overall), (Warn, Warn));
    }
}
