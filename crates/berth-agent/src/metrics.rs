//! Counters svcd keeps, and the Prometheus text of `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use berth_model::Rid;
use berth_model::status::{ServiceStatus, Status};

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

#[derive(Debug, Default)]
struct Counters {
    /// (service, action, ok) -> figures.
    actions: BTreeMap<(String, String, bool), ActionFigures>,
    /// (service, rid) -> monitor restarts.
    restarts: BTreeMap<(String, Rid), u64>,
    checks: u64,
    check_seconds: f64,
    node: NodeFigures,
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

    /// The Prometheus text exposition of everything.
    pub fn render(&self, nodename: &str, services: &[std::sync::Arc<ServiceStatus>]) -> String {
        let c = self.lock();
        let mut out = String::with_capacity(256 + services.len() * 600);
        let node = escape(nodename);
        let w = &mut out;
        help(
            w,
            "berth_agent_info",
            "gauge",
            "svcd is running on this node.",
        );
        line(
            w,
            "berth_agent_info",
            &format!("node=\"{node}\",version=\"{}\"", env!("CARGO_PKG_VERSION")),
            1.0,
        );
        help(
            w,
            "berth_agent_resident_bytes",
            "gauge",
            "svcd's resident memory.",
        );
        line(w, "berth_agent_resident_bytes", "", own_rss() as f64);
        help(
            w,
            "berth_agent_checks_total",
            "counter",
            "Service status checks run.",
        );
        line(w, "berth_agent_checks_total", "", c.checks as f64);
        help(
            w,
            "berth_agent_check_seconds_total",
            "counter",
            "Time spent in status checks.",
        );
        line(w, "berth_agent_check_seconds_total", "", c.check_seconds);
        help(
            w,
            "berth_http_requests_total",
            "counter",
            "HTTP requests served.",
        );
        line(
            w,
            "berth_http_requests_total",
            "",
            self.http_requests.load(Ordering::Relaxed) as f64,
        );
        help(
            w,
            "berth_http_not_modified_total",
            "counter",
            "HTTP requests answered 304.",
        );
        line(
            w,
            "berth_http_not_modified_total",
            "",
            self.http_not_modified.load(Ordering::Relaxed) as f64,
        );
        help(
            w,
            "berth_http_unauthorized_total",
            "counter",
            "HTTP actions refused for a missing or wrong token.",
        );
        line(
            w,
            "berth_http_unauthorized_total",
            "",
            self.http_unauthorized.load(Ordering::Relaxed) as f64,
        );

        help(
            w,
            "berth_node_cpu_usage_ratio",
            "gauge",
            "CPU use of the node (0..1).",
        );
        line(w, "berth_node_cpu_usage_ratio", "", c.node.cpu_ratio);
        help(
            w,
            "berth_node_memory_total_bytes",
            "gauge",
            "Memory of the node.",
        );
        line(
            w,
            "berth_node_memory_total_bytes",
            "",
            c.node.mem_total as f64,
        );
        help(
            w,
            "berth_node_memory_used_bytes",
            "gauge",
            "Memory in use on the node.",
        );
        line(
            w,
            "berth_node_memory_used_bytes",
            "",
            c.node.mem_used as f64,
        );
        help(
            w,
            "berth_node_memory_available_bytes",
            "gauge",
            "Memory available on the node.",
        );
        line(
            w,
            "berth_node_memory_available_bytes",
            "",
            c.node.mem_available as f64,
        );
        help(w, "berth_node_load1", "gauge", "1-minute load average.");
        line(w, "berth_node_load1", "", c.node.load1);

        help(
            w,
            "berth_service_status",
            "gauge",
            "1 for the current status of each service part (avail, overall).",
        );
        for s in services {
            let svc = escape(&s.name);
            for (part, st) in [("avail", s.avail), ("overall", s.overall)] {
                line(
                    w,
                    "berth_service_status",
                    &format!("service=\"{svc}\",part=\"{part}\",status=\"{st}\""),
                    1.0,
                );
            }
        }
        help(
            w,
            "berth_service_up",
            "gauge",
            "1 when the service's avail is up.",
        );
        for s in services {
            let up = matches!(s.avail, Status::Up | Status::StdbyUp);
            line(
                w,
                "berth_service_up",
                &format!("service=\"{}\"", escape(&s.name)),
                f64::from(u8::from(up)),
            );
        }
        help(
            w,
            "berth_service_frozen",
            "gauge",
            "1 when the monitor leaves the service alone.",
        );
        for s in services {
            line(
                w,
                "berth_service_frozen",
                &format!("service=\"{}\"", escape(&s.name)),
                f64::from(u8::from(s.frozen)),
            );
        }
        help(
            w,
            "berth_service_broken",
            "gauge",
            "1 when the service file could not be read.",
        );
        for s in services {
            line(
                w,
                "berth_service_broken",
                &format!("service=\"{}\"", escape(&s.name)),
                f64::from(u8::from(s.error.is_some())),
            );
        }
        help(
            w,
            "berth_resource_status",
            "gauge",
            "1 for the current status of each resource.",
        );
        for s in services {
            let svc = escape(&s.name);
            for r in &s.resources {
                line(
                    w,
                    "berth_resource_status",
                    &format!(
                        "service=\"{svc}\",rid=\"{}\",status=\"{}\"",
                        r.rid, r.status
                    ),
                    1.0,
                );
            }
        }
        help(
            w,
            "berth_resource_up",
            "gauge",
            "1 when the resource is up.",
        );
        for s in services {
            let svc = escape(&s.name);
            for r in &s.resources {
                let up = matches!(r.status, Status::Up | Status::StdbyUp);
                line(
                    w,
                    "berth_resource_up",
                    &format!("service=\"{svc}\",rid=\"{}\"", r.rid),
                    f64::from(u8::from(up)),
                );
            }
        }

        help(
            w,
            "berth_actions_total",
            "counter",
            "Actions run on each service, by svcd or the CLI.",
        );
        for ((svc, action, ok), f) in &c.actions {
            let result = if *ok { "ok" } else { "error" };
            line(
                w,
                "berth_actions_total",
                &format!(
                    "service=\"{}\",action=\"{}\",result=\"{result}\"",
                    escape(svc),
                    escape(action)
                ),
                f.count as f64,
            );
        }
        help(
            w,
            "berth_action_seconds_total",
            "counter",
            "Total duration of the actions.",
        );
        for ((svc, action, ok), f) in &c.actions {
            let result = if *ok { "ok" } else { "error" };
            line(
                w,
                "berth_action_seconds_total",
                &format!(
                    "service=\"{}\",action=\"{}\",result=\"{result}\"",
                    escape(svc),
                    escape(action)
                ),
                f.seconds,
            );
        }
        help(
            w,
            "berth_monitor_restarts_total",
            "counter",
            "Restarts of monitored resources by svcd.",
        );
        for ((svc, rid), n) in &c.restarts {
            line(
                w,
                "berth_monitor_restarts_total",
                &format!("service=\"{}\",rid=\"{rid}\"", escape(svc)),
                *n as f64,
            );
        }

        let charged: Vec<_> = services
            .iter()
            .filter_map(|s| s.chargeback.as_ref().map(|c| (escape(&s.name), c)))
            .collect();
        if !charged.is_empty() {
            help(
                w,
                "berth_docker_containers",
                "gauge",
                "Containers the service's private dockerd knows.",
            );
            for (svc, cb) in &charged {
                line(
                    w,
                    "berth_docker_containers",
                    &format!("service=\"{svc}\""),
                    cb.containers as f64,
                );
            }
            help(
                w,
                "berth_docker_images",
                "gauge",
                "Images the service's private dockerd knows.",
            );
            for (svc, cb) in &charged {
                line(
                    w,
                    "berth_docker_images",
                    &format!("service=\"{svc}\""),
                    cb.images as f64,
                );
            }
            help(
                w,
                "berth_docker_data_bytes",
                "gauge",
                "Bytes under the service's docker data root.",
            );
            for (svc, cb) in &charged {
                line(
                    w,
                    "berth_docker_data_bytes",
                    &format!("service=\"{svc}\""),
                    cb.data_bytes as f64,
                );
            }
            help(
                w,
                "berth_docker_daemon_resident_bytes",
                "gauge",
                "Resident memory of the service's private dockerd.",
            );
            for (svc, cb) in &charged {
                line(
                    w,
                    "berth_docker_daemon_resident_bytes",
                    &format!("service=\"{svc}\""),
                    cb.daemon_rss_bytes as f64,
                );
            }
        }
        out
    }
}

fn help(out: &mut String, name: &str, kind: &str, text: &str) {
    let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
}

fn line(out: &mut String, name: &str, labels: &str, value: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

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
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
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
