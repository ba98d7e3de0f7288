//! Counters svcd keeps, and the Prometheus text of `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::{Result, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use berth_model::Rid;
use berth_model::status::{Chargeback, ServiceStatus, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Count and total duration of one kind of action.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ActionFigures {
    /// How many ran.
    pub count: u64,
    /// Their total duration, in seconds.
    pub seconds: f64,
}

/// The node's own figures, refreshed at each monitor tick.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct NodeFigures {
    /// CPU use of the whole node, 0..1.
    pub cpu_ratio: f64,
    /// Memory, bytes.
    pub mem_total: u64,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Memory available, bytes.
    pub mem_available: u64,
    /// 1-minute load average.
    pub load1: f64,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    /// (service, action, ok) -> figures.
    actions: BTreeMap<(String, String, bool), ActionFigures>,
    /// (service, rid) -> monitor restarts.
    restarts: BTreeMap<(String, Rid), u64>,
    checks: u64,
    check_seconds: f64,
    node: NodeFigures,
    /// Cluster events by kind (`fence_stop`, `failover`, `start_failed`...).
    cluster_events: BTreeMap<String, u64>,
    /// The last good sync of each (service, sync rid, target) sent from here.
    syncs: Vec<SyncFigure>,
}

/// The last good sync of one sync resource to one target, sent from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFigure {
    /// The service.
    pub svc: String,
    /// The sync resource.
    pub rid: String,
    /// The target node.
    pub target: String,
    /// When it ended, in seconds since the epoch.
    pub time: u64,
    /// Bytes it sent.
    pub bytes: u64,
}

/// svcd's counters. Cheap to update; rendered on `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// HTTP requests answered 304.
    pub http_not_modified: AtomicU64,
    /// HTTP requests refused 401.
    pub http_unauthorized: AtomicU64,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count an action (run by svcd or seen in a `last_action.json` the CLI wrote).
    pub fn action(&self, svc: &str, action: &str, ok: bool, seconds: f64) {
        let mut c = self.lock();
        let f = c
            .actions
            .entry((svc.to_string(), action.to_string(), ok))
            .or_default();
        f.count += 1;
        f.seconds += seconds.max(0.0);
    }

    /// Count a monitor restart.
    pub fn restart(&self, svc: &str, rid: Rid) {
        *self
            .lock()
            .restarts
            .entry((svc.to_string(), rid))
            .or_default() += 1;
    }

    /// Count a status check of one service.
    pub fn check(&self, seconds: f64) {
        let mut c = self.lock();
        c.checks += 1;
        c.check_seconds += seconds;
    }

    /// Count a cluster event.
    pub fn cluster_event(&self, kind: &str) {
        *self
            .lock()
            .cluster_events
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Store the last good syncs sent from this node (svcd's sync schedule reads them).
    pub fn set_syncs(&self, syncs: Vec<SyncFigure>) {
        self.lock().syncs = syncs;
    }

    /// Store the node's figures.
    pub fn set_node(&self, node: NodeFigures) {
        self.lock().node = node;
    }

    /// Forget a removed service's counters.
    pub fn forget(&self, svc: &str) {
        let mut c = self.lock();
        c.actions.retain(|k, _| k.0 != svc);
        c.restarts.retain(|k, _| k.0 != svc);
    }

    /// The OpenMetrics text exposition of everything (prometheus-client's encoder).
    pub fn render(&self, nodename: &str, services: &[Arc<ServiceStatus>]) -> String {
        let scrape = Scrape {
            node: nodename.to_string(),
            counters: self.lock().clone(),
            http: [
                &self.http_requests,
                &self.http_not_modified,
                &self.http_unauthorized,
            ]
            .map(|c| c.load(Ordering::Relaxed)),
            services: services.to_vec(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(256 + services.len() * 600);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }
}

/// What one `GET /metrics` shows, taken under the lock and encoded after it.
#[derive(Debug)]
struct Scrape {
    node: String,
    counters: Counters,
    /// Requests, 304s, 401s.
    http: [u64; 3],
    services: Vec<Arc<ServiceStatus>>,
}

/// A label value, escaped as the text format wants it (the encoder writes values as given).
#[derive(Debug)]
struct Esc<'a>(&'a str);

impl EncodeLabelValue for Esc<'_> {
    fn encode(&self, e: &mut LabelValueEncoder) -> std::fmt::Result {
        e.write_str(&escape(self.0))
    }
}

type Labels<'a, const N: usize> = [(&'static str, Esc<'a>); N];

/// One metric without labels.
fn single(e: &mut DescriptorEncoder, name: &str, help: &str, m: &dyn EncodeMetric) -> Result {
    m.encode(e.encode_descriptor(name, help, None, m.metric_type())?)
}

/// One metric family: its samples by label set (the help and type are written even when
/// there is none).
fn family<'a, const N: usize, M: EncodeMetric + 'a>(
    e: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    typ: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a, N>, M)>,
) -> Result {
    let mut me = e.encode_descriptor(name, help, None, typ)?;
    for (labels, m) in samples {
        m.encode(me.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A metric of one family: its name, its help, its value for each item.
type Row<T, V> = (&'static str, &'static str, fn(&T) -> V);

fn svc_labels(s: &ServiceStatus) -> Labels<'_, 1> {
    [("service", Esc(&s.name))]
}

fn action_labels((svc, action, ok): &(String, String, bool)) -> Labels<'_, 3> {
    let result = if *ok { "ok" } else { "error" };
    [
        ("service", Esc(svc)),
        ("action", Esc(action)),
        ("result", Esc(result)),
    ]
}

fn flag(b: bool) -> ConstGauge {
    ConstGauge::new(i64::from(b))
}

fn up(st: Status) -> bool {
    matches!(st, Status::Up | Status::StdbyUp)
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result {
        self.agent_and_node(&mut e)?;
        self.services(&mut e)?;
        self.syncs(&mut e)?;
        self.counters(&mut e)?;
        self.docker(&mut e)
    }
}

impl Scrape {
    /// The last good sync's age and bytes per sync resource and target.
    fn syncs(&self, e: &mut DescriptorEncoder) -> Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let syncs = &self.counters.syncs;
        fn labels(s: &SyncFigure) -> Labels<'_, 3> {
            [
                ("service", Esc(&s.svc)),
                ("rid", Esc(&s.rid)),
                ("target", Esc(&s.target)),
            ]
        }
        let ages = syncs.iter().map(|s| {
            let age = i64::try_from(now.saturating_sub(s.time)).unwrap_or(i64::MAX);
            (labels(s), ConstGauge::new(age))
        });
        let help = "Seconds since the last good sync of a sync resource to a target.";
        family(e, ("berth_sync_last_ok_age_seconds", help), GAUGE, ages)?;
        let bytes = syncs.iter().map(|s| {
            let b = i64::try_from(s.bytes).unwrap_or(i64::MAX);
            (labels(s), ConstGauge::new(b))
        });
        let help = "Bytes sent by the last good sync of a sync resource to a target.";
        family(e, ("berth_sync_last_ok_bytes", help), GAUGE, bytes)
    }

    /// svcd's own figures and the node's.
    fn agent_and_node(&self, e: &mut DescriptorEncoder) -> Result {
        let version = env!("CARGO_PKG_VERSION");
        let info = [("node", Esc(&self.node)), ("version", Esc(version))];
        let help = "svcd is running on this node.";
        family(e, ("berth_agent_info", help), GAUGE, [(info, flag(true))])?;
        let (c, n) = (&self.counters, &self.counters.node);
        let [requests, not_modified, unauthorized] = self.http;
        let singles: [(&str, &str, &dyn EncodeMetric); 11] = [
            (
                "berth_agent_resident_bytes",
                "svcd's resident memory.",
                &ConstGauge::new(own_rss()),
            ),
            (
                "berth_agent_checks",
                "Service status checks run.",
                &ConstCounter::new(c.checks),
            ),
            (
                "berth_agent_check_seconds",
                "Time spent in status checks.",
                &ConstCounter::new(c.check_seconds),
            ),
            (
                "berth_http_requests",
                "HTTP requests served.",
                &ConstCounter::new(requests),
            ),
            (
                "berth_http_not_modified",
                "HTTP requests answered 304.",
                &ConstCounter::new(not_modified),
            ),
            (
                "berth_http_unauthorized",
                "HTTP actions refused for a missing or wrong token.",
                &ConstCounter::new(unauthorized),
            ),
            (
                "berth_node_cpu_usage_ratio",
                "CPU use of the node (0..1).",
                &ConstGauge::new(n.cpu_ratio),
            ),
            (
                "berth_node_memory_total_bytes",
                "Memory of the node.",
                &ConstGauge::new(n.mem_total),
            ),
            (
                "berth_node_memory_used_bytes",
                "Memory in use on the node.",
                &ConstGauge::new(n.mem_used),
            ),
            (
                "berth_node_memory_available_bytes",
                "Memory available on the node.",
                &ConstGauge::new(n.mem_available),
            ),
            (
                "berth_node_load1",
                "1-minute load average.",
                &ConstGauge::new(n.load1),
            ),
        ];
        for (name, help, m) in singles {
            single(e, name, help, m)?;
        }
        Ok(())
    }

    /// The status of each service and resource, from the cached tree.
    fn services(&self, e: &mut DescriptorEncoder) -> Result {
        let svcs = &self.services;
        let parts = svcs.iter().flat_map(|s| {
            [("avail", s.avail), ("overall", s.overall)].map(|(part, st)| {
                let status = Esc(st.as_str());
                let labels = [
                    ("service", Esc(&s.name)),
                    ("part", Esc(part)),
                    ("status", status),
                ];
                (labels, flag(true))
            })
        });
        let help = "1 for the current status of each service part (avail, overall).";
        family(e, ("berth_service_status", help), GAUGE, parts)?;
        let by_service: [Row<ServiceStatus, bool>; 3] = [
            (
                "berth_service_up",
                "1 when the service's avail is up.",
                |s| up(s.avail),
            ),
            (
                "berth_service_frozen",
                "1 when the monitor leaves the service alone.",
                |s| s.frozen,
            ),
            (
                "berth_service_broken",
                "1 when the service file could not be read.",
                |s| s.error.is_some(),
            ),
        ];
        for (name, help, value) in by_service {
            let samples = svcs.iter().map(|s| (svc_labels(s), flag(value(s))));
            family(e, (name, help), GAUGE, samples)?;
        }
        let rids: Vec<_> = (svcs.iter())
            .flat_map(|s| {
                s.resources
                    .iter()
                    .map(move |r| (s, r.rid.to_string(), r.status))
            })
            .collect();
        let status = rids.iter().map(|(s, rid, st)| {
            let labels = [
                ("service", Esc(&s.name)),
                ("rid", Esc(rid)),
                ("status", Esc(st.as_str())),
            ];
            (labels, flag(true))
        });
        let help = "1 for the current status of each resource.";
        family(e, ("berth_resource_status", help), GAUGE, status)?;
        let res_up = (rids.iter()).map(|(s, rid, st)| {
            (
                [("service", Esc(&s.name)), ("rid", Esc(rid))],
                flag(up(*st)),
            )
        });
        family(
            e,
            ("berth_resource_up", "1 when the resource is up."),
            GAUGE,
            res_up,
        )
    }

    /// Actions and monitor restarts.
    fn counters(&self, e: &mut DescriptorEncoder) -> Result {
        let c = &self.counters;
        let help = "Actions run on each service, by svcd or the CLI.";
        let counts =
            (c.actions.iter()).map(|(k, f)| (action_labels(k), ConstCounter::new(f.count)));
        family(e, ("berth_actions", help), COUNTER, counts)?;
        let help = "Total duration of the actions.";
        let secs =
            (c.actions.iter()).map(|(k, f)| (action_labels(k), ConstCounter::new(f.seconds)));
        family(e, ("berth_action_seconds", help), COUNTER, secs)?;
        let restarts: Vec<_> = (c.restarts.iter())
            .map(|((svc, rid), n)| (svc, rid.to_string(), *n))
            .collect();
        let samples = (restarts.iter()).map(|(svc, rid, n)| {
            (
                [("service", Esc(svc)), ("rid", Esc(rid))],
                ConstCounter::new(*n),
            )
        });
        let help = "Restarts of monitored resources by svcd.";
        family(e, ("berth_monitor_restarts", help), COUNTER, samples)?;
        if c.cluster_events.is_empty() {
            return Ok(());
        }
        let samples = (c.cluster_events.iter())
            .map(|(kind, n)| ([("kind", Esc(kind))], ConstCounter::new(*n)));
        let help =
            "Cluster events on this node: lease lost, fencing stops, failovers, failed starts...";
        family(e, ("berth_cluster_events", help), COUNTER, samples)
    }

    /// The private dockerds' chargeback, for the services that have one.
    fn docker(&self, e: &mut DescriptorEncoder) -> Result {
        let charged: Vec<_> = (self.services.iter())
            .filter_map(|s| Some((s, s.chargeback.as_ref()?)))
            .collect();
        if charged.is_empty() {
            return Ok(());
        }
        let docker: [Row<Chargeback, u64>; 4] = [
            (
                "berth_docker_containers",
                "Containers the service's private dockerd knows.",
                |c| c.containers,
            ),
            (
                "berth_docker_images",
                "Images the service's private dockerd knows.",
                |c| c.images,
            ),
            (
                "berth_docker_data_bytes",
                "Bytes under the service's docker data root.",
                |c| c.data_bytes,
            ),
            (
                "berth_docker_daemon_resident_bytes",
                "Resident memory of the service's private dockerd.",
                |c| c.daemon_rss_bytes,
            ),
        ];
        for (name, help, value) in docker {
            let samples = charged
                .iter()
                .map(|(s, cb)| (svc_labels(s), ConstGauge::new(value(cb))));
            family(e, (name, help), GAUGE, samples)?;
        }
        Ok(())
    }
}

const GAUGE: MetricType = MetricType::Gauge;
const COUNTER: MetricType = MetricType::Counter;

/// Escape a label value: backslash, double quote and newline.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// svcd's resident memory, from `/proc/self/statm` (0 when unreadable).
pub fn own_rss() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.statm())
        .map_or(0, |m| m.resident * procfs::page_size())
}

/// Reads the node's CPU and memory through sysinfo.
#[derive(Debug)]
pub struct NodeProbe {
    sys: Option<sysinfo::System>,
}

impl NodeProbe {
    /// A probe; when sysinfo cannot start, the node figures stay at zero.
    pub fn new() -> NodeProbe {
        match sysinfo::System::new() {
            Ok(mut sys) => {
                sys.refresh_cpu_usage();
                NodeProbe { sys: Some(sys) }
            }
            Err(e) => {
                tracing::warn!("node cpu/memory figures unavailable: {e:?}");
                NodeProbe { sys: None }
            }
        }
    }

    /// Refresh and return the figures (CPU use is over the time since the last call).
    pub fn sample(&mut self) -> NodeFigures {
        let Some(sys) = self.sys.as_mut() else {
            return NodeFigures::default();
        };
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        NodeFigures {
            cpu_ratio: f64::from(sys.global_cpu_usage()) / 100.0,
            mem_total: sys.total_memory(),
            mem_used: sys.used_memory(),
            mem_available: sys.available_memory(),
            load1: sysinfo::System::load_average()
                .map(|l| l.one)
                .unwrap_or(0.0),
        }
    }
}

impl Default for NodeProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.action("web", "start", true, 0.5);
        m.action("web", "start", true, 0.25);
        m.restart("web", "fs#1".parse().unwrap());
        let svc = std::sync::Arc::new(ServiceStatus::broken("we\"b".into(), "x".into()));
        let text = m.render("n1", &[svc]);
        assert!(
            text.contains(
                "berth_actions_total{service=\"web\",action=\"start\",result=\"ok\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "berth_action_seconds_total{service=\"web\",action=\"start\",result=\"ok\"} 0.75\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("berth_monitor_restarts_total{service=\"web\",rid=\"fs#1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_service_broken{service=\"we\\\"b\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "berth_service_status{service=\"we\\\"b\",part=\"avail\",status=\"undef\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("berth_docker_"),
            "no chargeback, no docker lines"
        );
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
        }
        assert!(own_rss() > 0);
    }
}
