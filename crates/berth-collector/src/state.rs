//! The fleet in memory: each node's last good status, whether it is failing or stale, and the
//! diff of two statuses into events. The recorder thread owns it; the API reads [`View`]s built
//! from it.

use std::collections::{BTreeMap, HashMap};

use berth_model::fleet::{Fleet, FleetCell, FleetNode};
use berth_model::status::{Chargeback, NodeStatus, ServiceStatus, Status};

use serde::Serialize;

use crate::client::Outcome;
use crate::store::{Batch, Event, NodeRow, Sample, StatusDelta};

/// A node row is written again at least this often even when nothing changed (its last-seen time).
const ROW_REFRESH_MS: i64 = 60_000;

/// Timing settings the state needs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A node with no good answer for this long is stale.
    pub stale_after_ms: i64,
    /// A chargeback sample is written at least this often.
    pub chargeback_period_ms: i64,
}

/// One node as the collector knows it.
#[derive(Debug, Clone)]
pub struct NodeState {
    /// The persisted part.
    pub row: NodeRow,
    /// Failed polls in a row.
    pub failures: u32,
    /// When the row was last written.
    written_ms: i64,
    /// Whether the row must be written.
    dirty: bool,
    /// Whether a poll answered since the collector started (a restored node is not yet).
    pub polled: bool,
}

/// The fleet in memory.
#[derive(Debug)]
pub struct State {
    /// Nodes by name (configured ones only).
    pub nodes: BTreeMap<String, NodeState>,
    /// The open chargeback row of each (node, service): its start, last confirmation, figures,
    /// whether the service is up there.
    samples: HashMap<(String, String), (i64, i64, Chargeback, bool)>,
    timing: Timing,
    started_ms: i64,
    /// Polls by result, for /metrics: ok, not modified, failed.
    pub polls: [u64; 3],
}

impl State {
    /// Start from the stored rows; configured nodes not stored yet start empty, stored nodes no
    /// longer configured are left out.
    pub fn new(
        configured: &[(String, String)],
        stored: Vec<NodeRow>,
        timing: Timing,
        now_ms: i64,
    ) -> State {
        let mut by_name: HashMap<String, NodeRow> =
            stored.into_iter().map(|r| (r.name.clone(), r)).collect();
        let nodes = configured
            .iter()
            .map(|(name, url)| {
                let mut row = by_name.remove(name).unwrap_or_else(|| NodeRow {
                    name: name.clone(),
                    ..NodeRow::default()
                });
                let moved = row.url != *url;
                row.url = url.clone();
                if moved {
                    row.etag = None;
                }
                let st = NodeState {
                    row,
                    failures: 0,
                    written_ms: 0,
                    dirty: true,
                    polled: false,
                };
                (name.clone(), st)
            })
            .collect();
        State {
            nodes,
            samples: HashMap::new(),
            timing,
            started_ms: now_ms,
            polls: [0; 3],
        }
    }

    /// The ETag to send to `node`.
    pub fn etag(&self, node: &str) -> Option<String> {
        self.nodes.get(node).and_then(|n| n.row.etag.clone())
    }

    /// Record a poll of `node` at `now`; events and rows to write go to `batch`.
    /// Returns whether the fleet view changed.
    pub fn apply(&mut self, node: &str, outcome: Outcome, now: i64, batch: &mut Batch) -> bool {
        let Some(n) = self.nodes.get_mut(node) else {
            return false;
        };
        n.row.last_poll_ms = Some(now);
        n.polled = true;
        let mut changed = false;
        let mut new_status = false;
        let mut delta = None;
        match outcome {
            Outcome::Failed(why) => {
                self.polls[2] += 1;
                n.failures = n.failures.saturating_add(1);
                if n.row.reason.as_deref() != Some(why.as_str()) {
                    n.row.reason = Some(why);
                    n.dirty = true;
                    changed = true;
                }
            }
            ok => {
                n.failures = 0;
                n.row.last_ok_ms = Some(now);
                if n.row.reason.take().is_some() {
                    n.dirty = true;
                    changed = true;
                }
                if n.row.stale {
                    n.row.stale = false;
                    n.dirty = true;
                    changed = true;
                    batch.gaps_close.push((node.to_string(), now));
                    batch
                        .events
                        .push(node_event(node, now, Some("stale"), Some("up")));
                }
                if let Outcome::Status { etag, status, .. } = ok {
                    self.polls[0] += 1;
                    let events = diff(node, n.row.status.as_ref(), &status, now);
                    if !events.is_empty() || n.row.status.as_ref() != Some(&*status) {
                        changed = true;
                        new_status = true;
                        delta = Some(StatusDelta::between(n.row.status.as_ref(), &status));
                    }
                    batch.events.extend(events);
                    n.row.etag = etag;
                    n.row.status = Some(*status);
                    n.dirty = true;
                } else {
                    self.polls[1] += 1;
                }
            }
        }
        if let Some(status) = n.row.status.as_ref().filter(|_| n.row.reason.is_none()) {
            let period = self.timing.chargeback_period_ms;
            let mut seen = std::collections::HashSet::new();
            for s in &status.services {
                let Some(cb) = &s.chargeback else { continue };
                let key = (node.to_string(), s.name.clone());
                seen.insert(s.name.as_str());
                let up = billed_here(s);
                match self.samples.get_mut(&key) {
                    Some((at, until, last, was_up)) if *was_up == up && same_figures(last, cb) => {
                        if now - *until >= period {
                            *until = now;
                            batch.extend.push((key.0, key.1, *at, now, true));
                        }
                    }
                    other => {
                        if let Some((at, _, _, _)) = other {
                            // The old figures held until now.
                            batch
                                .extend
                                .push((key.0.clone(), key.1.clone(), *at, now, false));
                        }
                        self.samples.insert(key, (now, now, cb.clone(), up));
                        batch.samples.push(Sample {
                            node: node.to_string(),
                            service: s.name.clone(),
                            at_ms: now,
                            until_ms: now,
                            open: true,
                            app: s.app.clone(),
                            env: s.env.clone(),
                            up,
                            figures: cb.clone(),
                        });
                    }
                }
            }
            // Services of this node that no longer report chargeback: their rows close now.
            let gone: Vec<(String, String)> = self
                .samples
                .keys()
                .filter(|(n, svc)| n == node && !seen.contains(svc.as_str()))
                .cloned()
                .collect();
            for key in gone {
                if let Some((at, _, _, _)) = self.samples.remove(&key) {
                    batch.extend.push((key.0, key.1, at, now, false));
                }
            }
        }
        if n.dirty && (changed || new_status || now - n.written_ms >= ROW_REFRESH_MS) {
            n.dirty = false;
            n.written_ms = now;
            batch.nodes.push((n.row.clone(), delta));
        }
        changed
    }

    /// Close every open chargeback row at `now` (the collector stops).
    pub fn close_all(&mut self, now: i64, batch: &mut Batch) {
        for ((node, service), (at, _, _, _)) in self.samples.drain() {
            batch.extend.push((node, service, at, now, false));
        }
        batch.alive_ms = Some(now);
    }

    /// Turn nodes stale that have not answered well for `stale_after`. Returns whether any did.
    pub fn tick(&mut self, now: i64, batch: &mut Batch) -> bool {
        let mut changed = false;
        for (name, n) in &mut self.nodes {
            if n.row.stale {
                continue;
            }
            // A node restored from the database gets `stale_after` from the collector's start.
            let since = n.row.last_ok_ms.unwrap_or(0).max(self.started_ms);
            if now - since > self.timing.stale_after_ms {
                // Not billed from the last good answer on (a restored node: from the start).
                let from = n.row.last_ok_ms.unwrap_or(self.started_ms);
                let why = match &n.row.reason {
                    Some(r) => format!("node stale: {r}"),
                    None => "node stale: no answer".to_string(),
                };
                batch.gaps_open.push((name.clone(), from, why));
                n.row.stale = true;
                n.dirty = false;
                n.written_ms = now;
                batch.nodes.push((n.row.clone(), None));
                batch
                    .events
                    .push(node_event(name, now, Some("up"), Some("stale")));
                changed = true;
            }
        }
        changed
    }

    /// The heartbeat word of a node: `down` stale, `warn` failing, `up` answering, `n/a` not
    /// polled yet.
    fn hb(n: &NodeState) -> Status {
        if n.row.stale {
            Status::Down
        } else if n.row.reason.is_some() {
            Status::Warn
        } else if n.polled || n.row.last_ok_ms.is_some() {
            Status::Up
        } else {
            Status::NotApplicable
        }
    }

    /// The grid.
    pub fn fleet(&self, now: i64) -> Fleet {
        let mut f = Fleet::default();
        for (name, n) in &self.nodes {
            let mut node = FleetNode::new(Self::hb(n));
            node.age_ms = n
                .row
                .last_ok_ms
                .map(|t| u64::try_from(now - t).unwrap_or(0));
            node.reason = match (&n.row.reason, n.row.stale) {
                (Some(r), _) => Some(r.clone()),
                (None, true) => Some("stale: no answer".into()),
                (None, false) => None,
            };
            f.nodes.insert(name.clone(), node);
            let Some(status) = &n.row.status else {
                continue;
            };
            for s in &status.services {
                let fs = f.services.entry(s.name.clone()).or_default();
                fs.app = fs.app.take().or_else(|| s.app.clone());
                fs.env = fs.env.take().or_else(|| s.env.clone());
                fs.nodes.insert(
                    name.clone(),
                    FleetCell {
                        avail: s.avail,
                        overall: s.overall,
                        frozen: s.frozen,
                        stale: n.row.stale,
                        target: s.target,
                    },
                );
                if fs.owner.is_none() && s.avail == Status::Up && !n.row.stale {
                    fs.owner = Some(name.clone());
                }
            }
        }
        for s in f.services.values_mut() {
            s.frozen = !s.nodes.is_empty() && s.nodes.values().all(|c| c.frozen);
        }
        f
    }

    /// What `/api/nodes` serves.
    pub fn api_nodes(&self, now: i64) -> ApiNodes<'_> {
        ApiNodes {
            nodes: self
                .nodes
                .values()
                .map(|n| ApiNode {
                    name: &n.row.name,
                    url: &n.row.url,
                    hb: Self::hb(n),
                    reachable: n.polled && n.row.reason.is_none(),
                    stale: n.row.stale,
                    last_seen_ms: n.row.last_ok_ms,
                    last_poll_ms: n.row.last_poll_ms,
                    age_ms: n.row.last_ok_ms.map(|t| (now - t).max(0)),
                    failures: n.failures,
                    reason: n.row.reason.as_deref(),
                    services: n.row.status.as_ref().map_or(0, |s| s.services.len()),
                })
                .collect(),
        }
    }

    /// What `/api/services` serves.
    pub fn api_services(&self, fleet: &Fleet) -> ApiServices {
        let services = fleet
            .services
            .iter()
            .map(|(name, s)| ApiService {
                name: name.clone(),
                app: s.app.clone(),
                env: s.env.clone(),
                overall: s.status_word(),
                running_on: s
                    .nodes
                    .iter()
                    .filter(|(_, c)| c.avail == Status::Up && !c.stale)
                    .map(|(n, _)| n.clone())
                    .collect(),
                nodes: s
                    .nodes
                    .iter()
                    .map(|(n, c)| {
                        let stale = self.nodes.get(n).is_some_and(|x| x.row.stale);
                        (
                            n.clone(),
                            ApiCell {
                                avail: c.avail,
                                overall: c.overall,
                                frozen: c.frozen,
                                stale,
                            },
                        )
                    })
                    .collect(),
            })
            .collect();
        ApiServices { services }
    }

    /// What `/api/services/<svc>` serves: the tree each node reports of it.
    pub fn api_service<'a>(&'a self, svc: &'a str) -> Option<ApiServiceDetail<'a>> {
        let mut nodes = BTreeMap::new();
        for (name, n) in &self.nodes {
            if let Some(s) = n
                .row
                .status
                .as_ref()
                .and_then(|st| st.services.iter().find(|s| s.name == svc))
            {
                nodes.insert(
                    name.as_str(),
                    ApiServiceOnNode {
                        stale: n.row.stale,
                        status: s,
                    },
                );
            }
        }
        (!nodes.is_empty()).then_some(ApiServiceDetail { name: svc, nodes })
    }
}

/// `/api/nodes`.
#[derive(Debug, Serialize)]
pub struct ApiNodes<'a> {
    /// Every configured node.
    pub nodes: Vec<ApiNode<'a>>,
}

/// One node of `/api/nodes`.
#[derive(Debug, Serialize)]
pub struct ApiNode<'a> {
    name: &'a str,
    url: &'a str,
    hb: Status,
    reachable: bool,
    stale: bool,
    last_seen_ms: Option<i64>,
    last_poll_ms: Option<i64>,
    age_ms: Option<i64>,
    failures: u32,
    reason: Option<&'a str>,
    services: usize,
}

/// `/api/services`.
#[derive(Debug, Serialize)]
pub struct ApiServices {
    /// Every service any node reports, by name.
    pub services: Vec<ApiService>,
}

/// One service of `/api/services`.
#[derive(Debug, Serialize)]
pub struct ApiService {
    name: String,
    app: Option<String>,
    env: Option<String>,
    overall: &'static str,
    running_on: Vec<String>,
    nodes: BTreeMap<String, ApiCell>,
}

/// A service on a node, in `/api/services`.
#[derive(Debug, Serialize)]
pub struct ApiCell {
    avail: Status,
    overall: Status,
    frozen: bool,
    stale: bool,
}

/// `/api/services/<svc>`.
#[derive(Debug, Serialize)]
pub struct ApiServiceDetail<'a> {
    name: &'a str,
    nodes: BTreeMap<&'a str, ApiServiceOnNode<'a>>,
}

/// The tree of a service on one node.
#[derive(Debug, Serialize)]
pub struct ApiServiceOnNode<'a> {
    stale: bool,
    status: &'a ServiceStatus,
}

/// Whether a service's figures on a node are billed: it is up there (or warn: partly up). A
/// stopped service, a failover service's passive instance or leftover is inventory only.
pub fn billed_here(s: &ServiceStatus) -> bool {
    matches!(s.avail, Status::Up | Status::Warn)
}

/// Whether two chargeback figures are the same for billing: the same container, running and image counts,
/// data bytes within 1 % (or 1 MiB) and daemon RSS within 10 % (or 8 MiB) of the row's first
/// figures. A data root and a daemon's memory move a little all the time; a new row for each
/// move would grow the table with time instead of with changes.
pub fn same_figures(row: &Chargeback, now: &Chargeback) -> bool {
    let near = |a: u64, b: u64, pct: u64, floor: u64| a.abs_diff(b) <= (a / 100 * pct).max(floor);
    row.containers == now.containers
        && row.running == now.running
        && row.images == now.images
        && near(row.data_bytes, now.data_bytes, 1, 1 << 20)
        && near(row.daemon_rss_bytes, now.daemon_rss_bytes, 10, 8 << 20)
}

fn node_event(node: &str, at: i64, old: Option<&str>, new: Option<&str>) -> Event {
    Event {
        id: 0,
        at_ms: at,
        node: node.to_string(),
        service: None,
        resource: None,
        old: old.map(str::to_string),
        new: new.map(str::to_string),
    }
}

/// The events between two statuses of one node: a service that appeared, disappeared or changed
/// `overall`; a resource whose status changed (or appeared, disappeared in a known service).
pub fn diff(node: &str, old: Option<&NodeStatus>, new: &NodeStatus, at: i64) -> Vec<Event> {
    let ev =
        |service: &str, resource: Option<String>, o: Option<Status>, n: Option<Status>| Event {
            id: 0,
            at_ms: at,
            node: node.to_string(),
            service: Some(service.to_string()),
            resource,
            old: o.map(|s| s.as_str().to_string()),
            new: n.map(|s| s.as_str().to_string()),
        };
    let mut out = Vec::new();
    let before: BTreeMap<&str, &ServiceStatus> = old
        .map(|o| o.services.iter().map(|s| (s.name.as_str(), s)).collect())
        .unwrap_or_default();
    let after: BTreeMap<&str, &ServiceStatus> =
        new.services.iter().map(|s| (s.name.as_str(), s)).collect();
    for (name, s) in &after {
        match before.get(name) {
            None => out.push(ev(name, None, None, Some(s.overall))),
            Some(b) => {
                if b.overall != s.overall {
                    out.push(ev(name, None, Some(b.overall), Some(s.overall)));
                }
                let rb: BTreeMap<String, Status> = b
                    .resources
                    .iter()
                    .map(|r| (r.rid.to_string(), r.status))
                    .collect();
                let ra: BTreeMap<String, Status> = s
                    .resources
                    .iter()
                    .map(|r| (r.rid.to_string(), r.status))
                    .collect();
                for (rid, st) in &ra {
                    match rb.get(rid) {
                        Some(o) if o == st => {}
                        o => out.push(ev(name, Some(rid.clone()), o.copied(), Some(*st))),
                    }
                }
                for (rid, o) in &rb {
                    if !ra.contains_key(rid) {
                        out.push(ev(name, Some(rid.clone()), Some(*o), None));
                    }
                }
            }
        }
    }
    for (name, b) in &before {
        if !after.contains_key(name) {
            out.push(ev(name, None, Some(b.overall), None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::status::{Flags, ResourceStatus};

    fn svc(name: &str, st: Status) -> ServiceStatus {
        let r = ResourceStatus {
            network: None,
            rid: "fs#1".parse().unwrap(),
            status: st,
            label: String::new(),
            flags: Flags::default(),
            log: vec![],
        };
        ServiceStatus::from_resources(name.into(), vec![r], false)
    }

    fn node(services: Vec<ServiceStatus>) -> NodeStatus {
        NodeStatus {
            schema: 1,
            nodename: "n1".into(),
            services,
        }
    }

    #[test]
    fn diff_events() {
        let a = node(vec![svc("web", Status::Up), svc("db", Status::Up)]);
        let b = node(vec![svc("web", Status::Down), svc("new", Status::Up)]);
        let ev = diff("n1", Some(&a), &b, 5);
        let words: Vec<String> = ev
            .iter()
            .map(|e| {
                format!(
                    "{} {} {:?}->{:?}",
                    e.service.as_deref().unwrap_or("-"),
                    e.resource.as_deref().unwrap_or("-"),
                    e.old,
                    e.new
                )
            })
            .collect();
        assert_eq!(
            words,
            [
                "new - None->Some(\"up\")",
                "web - Some(\"up\")->Some(\"down\")",
                "web fs#1 Some(\"up\")->Some(\"down\")",
                "db - Some(\"up\")->None",
            ]
        );
        assert!(diff("n1", Some(&b), &b, 6).is_empty());
    }

    #[test]
    fn stale_and_back() {
        let timing = Timing {
            stale_after_ms: 100,
            chargeback_period_ms: 1000,
        };
        let mut st = State::new(&[("n1".into(), "http://a:1".into())], vec![], timing, 0);
        let mut b = Batch::default();
        let out = Outcome::Status {
            etag: Some("\"1\"".into()),
            status: Box::new(node(vec![svc("web", Status::Up)])),
            bytes: 10,
        };
        assert!(st.apply("n1", out, 10, &mut b));
        assert_eq!(b.events.len(), 1);
        assert!(!st.tick(50, &mut b));
        st.apply("n1", Outcome::Failed("boom".into()), 60, &mut b);
        assert_eq!(st.fleet(60).nodes["n1"].hb, Status::Warn);
        assert!(st.tick(200, &mut b));
        assert_eq!(st.fleet(200).nodes["n1"].hb, Status::Down);
        assert_eq!(b.events.last().unwrap().new.as_deref(), Some("stale"));
        assert_eq!(st.fleet(200).services["web"].status_word(), "stale");
        assert_eq!(b.gaps_open, [("n1".into(), 10, "node stale: boom".into())]);
        st.apply("n1", Outcome::NotModified, 300, &mut b);
        assert_eq!(b.events.last().unwrap().new.as_deref(), Some("up"));
        assert_eq!(b.gaps_close, [("n1".into(), 300)]);
        assert_eq!(st.fleet(300).services["web"].status_word(), "up");
        assert_eq!(st.fleet(300).nodes["n1"].hb, Status::Up);
        assert_eq!(st.fleet(300).services["web"].owner.as_deref(), Some("n1"));
    }

    #[test]
    fn figures_within_tolerance_are_the_same() {
        let a = Chargeback {
            containers: 2,
            running: 2,
            images: 3,
            data_bytes: 1_000_000_000,
            daemon_rss_bytes: 100_000_000,
        };
        let mut b = a.clone();
        b.data_bytes += 9_000_000;
        b.daemon_rss_bytes -= 9_000_000;
        assert!(same_figures(&a, &b));
        b.data_bytes = a.data_bytes + 11_000_000;
        assert!(!same_figures(&a, &b));
        let mut c = a.clone();
        c.containers = 3;
        assert!(!same_figures(&a, &c));
        let small = Chargeback::default();
        let mut d = small.clone();
        d.data_bytes = 1 << 20;
        assert!(same_figures(&small, &d), "1 MiB floor");
    }

    /// One chargeback row per run of equal figures: extended every period, closed at a change
    /// (a new row starts) or when the figures disappear.
    #[test]
    fn chargeback_rows() {
        let timing = Timing {
            stale_after_ms: 10_000,
            chargeback_period_ms: 100,
        };
        let mut st = State::new(&[("n1".into(), "http://a:1".into())], vec![], timing, 0);
        let with = |containers: Option<u64>| {
            let mut s = svc("box", Status::Up);
            s.chargeback = containers.map(|c| Chargeback {
                containers: c,
                ..Chargeback::default()
            });
            Outcome::Status {
                etag: None,
                status: Box::new(node(vec![s])),
                bytes: 1,
            }
        };
        let mut b = Batch::default();
        st.apply("n1", with(Some(1)), 10, &mut b);
        assert_eq!((b.samples.len(), b.extend.len()), (1, 0));
        st.apply("n1", Outcome::NotModified, 50, &mut b);
        assert_eq!(
            (b.samples.len(), b.extend.len()),
            (1, 0),
            "within the period"
        );
        st.apply("n1", Outcome::NotModified, 120, &mut b);
        assert_eq!(b.extend, [("n1".into(), "box".into(), 10, 120, true)]);
        st.apply("n1", with(Some(2)), 150, &mut b);
        assert_eq!(b.samples.len(), 2);
        assert_eq!(b.samples[1].at_ms, 150);
        assert_eq!(b.extend[1], ("n1".into(), "box".into(), 10, 150, false));
        st.apply("n1", with(None), 170, &mut b);
        assert_eq!(b.extend[2], ("n1".into(), "box".into(), 150, 170, false));
        assert_eq!(b.samples.len(), 2);
    }
}
