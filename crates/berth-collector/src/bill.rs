//! The chargeback bill: integrating the rows of equal figures over a window, billing what ran
//! (running containers, where the service is up) and not the time without a good poll (gaps).
//! Pure: the store reads the rows and gaps, this adds them up.
//!
//! For each row, over the part of `[from, to]` it covers, less the gaps of its node and the
//! collector's own: `billed_hours = up ? hours : 0`, then
//! `container_hours = running x billed_hours`, `image_hours = images x billed_hours`,
//! `byte_hours = data_bytes x billed_hours`; and with `[rates]`,
//! `cost = container_hours x container_hour + byte_hours / 2^30 x gib_hour + image_hours x image_hour`.

use std::collections::{BTreeMap, HashMap};

use berth_model::config::Rates;
use berth_model::status::Chargeback;
use serde::Serialize;

const HOUR_MS: f64 = 3_600_000.0;
const GIB: f64 = 1_073_741_824.0;

/// The node name of a gap that holds for every node (the collector was down).
pub const ALL_NODES: &str = "*";

/// Time without a good poll: not billed, listed with the bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The node, or `null` when the collector itself was down (every node).
    #[serde(serialize_with = "all_nodes_as_null")]
    pub node: String,
    /// Its start (ms since the epoch): the node's last good answer, or the collector's last
    /// sign of life.
    #[serde(rename = "from")]
    pub from_ms: i64,
    /// Its end, `null` while it lasts.
    #[serde(rename = "to")]
    pub to_ms: Option<i64>,
    /// Why: `node stale: <reason>`, `collector down`.
    pub why: String,
}

fn all_nodes_as_null<S: serde::Serializer>(node: &str, s: S) -> Result<S::Ok, S::Error> {
    if node == ALL_NODES {
        s.serialize_none()
    } else {
        s.serialize_str(node)
    }
}

/// How `/api/chargeback` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By `app`.
    App,
    /// By service name.
    Service,
    /// By `env`.
    Env,
    /// By node.
    Node,
}

impl GroupBy {
    /// From the `by=` word.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "app" => Some(GroupBy::App),
            "service" => Some(GroupBy::Service),
            "env" => Some(GroupBy::Env),
            "node" => Some(GroupBy::Node),
            _ => None,
        }
    }
    /// The `by=` word.
    pub fn word(self) -> &'static str {
        match self {
            GroupBy::App => "app",
            GroupBy::Service => "service",
            GroupBy::Env => "env",
            GroupBy::Node => "node",
        }
    }
}

/// One chargeback row as read, its end already known: the row's last confirmation (closed), now
/// (still open), never past the next row of the same node and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// The node.
    pub node: String,
    /// The service.
    pub service: String,
    /// `app` of the service.
    pub app: Option<String>,
    /// `env` of the service.
    pub env: Option<String>,
    /// When the figures were first seen.
    pub at_ms: i64,
    /// When they stopped holding (or now).
    pub end_ms: i64,
    /// Whether the service was up there (only then is it billed).
    pub up: bool,
    /// The figures.
    pub figures: Chargeback,
}

/// One line of the chargeback answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChargebackRow {
    /// The app, service, env or node (`null` when the service sets none).
    pub key: Option<String>,
    /// Hours the group's services were up and polled (summed over services and nodes).
    pub billed_hours: f64,
    /// Running containers times the hours they were billed.
    pub container_hours: f64,
    /// Images times the hours they were billed.
    pub image_hours: f64,
    /// Data root bytes times the hours they were billed.
    pub byte_hours: f64,
    /// Hours of the group's rows in the window that were not billed: the service was not up
    /// there (a leftover, a stopped service), or no good poll covered them (gaps).
    pub unbilled_hours: f64,
    /// The most containers (running or not: the inventory) one row counted.
    pub max_containers: i64,
    /// The most running containers one row counted.
    pub max_running: i64,
    /// The most images one row counted.
    pub max_images: i64,
    /// The largest data root one row counted.
    pub max_data_bytes: i64,
    /// Rows counted.
    pub samples: i64,
    /// The cost, with `[rates]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

impl ChargebackRow {
    /// Add `o` to this one (sums and maxima).
    pub fn add(&mut self, o: &ChargebackRow) {
        self.billed_hours += o.billed_hours;
        self.container_hours += o.container_hours;
        self.image_hours += o.image_hours;
        self.byte_hours += o.byte_hours;
        self.unbilled_hours += o.unbilled_hours;
        self.max_containers = self.max_containers.max(o.max_containers);
        self.max_running = self.max_running.max(o.max_running);
        self.max_images = self.max_images.max(o.max_images);
        self.max_data_bytes = self.max_data_bytes.max(o.max_data_bytes);
        self.samples += o.samples;
        self.cost = match (self.cost, o.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// Merge intervals (sorted, overlapping ones joined).
fn merge(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.retain(|(a, b)| b > a);
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Milliseconds of `[t0, t1]` that the merged intervals `gaps` cover.
fn covered(gaps: &[(i64, i64)], t0: i64, t1: i64) -> i64 {
    gaps.iter()
        .map(|&(a, b)| (b.min(t1) - a.max(t0)).max(0))
        .sum()
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The bill of `rows` over `[from, to]`, grouped `by`, less `gaps` (an open gap lasts until
/// `now`). Rows sorted by key (`null` first).
pub fn integrate(
    rows: &[BillRow],
    gaps: &[Gap],
    by: GroupBy,
    from: i64,
    to: i64,
    now: i64,
    rates: Option<&Rates>,
) -> Vec<ChargebackRow> {
    let mut by_node: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    let mut all = Vec::new();
    for g in gaps {
        let iv = (g.from_ms, g.to_ms.unwrap_or(now));
        if g.node == ALL_NODES {
            all.push(iv);
        } else {
            by_node.entry(g.node.as_str()).or_default().push(iv);
        }
    }
    let all_merged = merge(all.clone());
    let merged: HashMap<&str, Vec<(i64, i64)>> = by_node
        .into_iter()
        .map(|(n, mut v)| {
            v.extend_from_slice(&all);
            (n, merge(v))
        })
        .collect();
    let mut groups: BTreeMap<Option<String>, ChargebackRow> = BTreeMap::new();
    for r in rows {
        let t0 = r.at_ms.max(from);
        let t1 = r.end_ms.min(to);
        let key = match by {
            GroupBy::App => r.app.clone(),
            GroupBy::Service => Some(r.service.clone()),
            GroupBy::Env => r.env.clone(),
            GroupBy::Node => Some(r.node.clone()),
        };
        let g = groups.entry(key.clone()).or_insert_with(|| ChargebackRow {
            key,
            ..ChargebackRow::default()
        });
        g.samples += 1;
        g.max_containers = g.max_containers.max(clamp(r.figures.containers));
        g.max_running = g.max_running.max(clamp(r.figures.running));
        g.max_images = g.max_images.max(clamp(r.figures.images));
        g.max_data_bytes = g.max_data_bytes.max(clamp(r.figures.data_bytes));
        if t1 <= t0 {
            continue;
        }
        let gaps = merged
            .get(r.node.as_str())
            .map_or(all_merged.as_slice(), Vec::as_slice);
        let span = t1 - t0;
        let polled = span - covered(gaps, t0, t1);
        let billed = if r.up { polled } else { 0 };
        let hours = billed as f64 / HOUR_MS;
        g.billed_hours += hours;
        g.unbilled_hours += (span - billed) as f64 / HOUR_MS;
        g.container_hours += r.figures.running as f64 * hours;
        g.image_hours += r.figures.images as f64 * hours;
        g.byte_hours += r.figures.data_bytes as f64 * hours;
    }
    let mut out: Vec<ChargebackRow> = groups.into_values().collect();
    if let Some(rates) = rates {
        for g in &mut out {
            g.cost = Some(cost(g, rates));
        }
    }
    out
}

/// The cost of a row at `rates`.
pub fn cost(g: &ChargebackRow, rates: &Rates) -> f64 {
    g.container_hours * rates.container_hour
        + g.byte_hours / GIB * rates.gib_hour
        + g.image_hours * rates.image_hour
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn row(node: &str, service: &str, at: i64, end: i64, up: bool, running: u64) -> BillRow {
        BillRow {
            node: node.into(),
            service: service.into(),
            app: Some("shop".into()),
            env: None,
            at_ms: at,
            end_ms: end,
            up,
            figures: Chargeback {
                containers: 2,
                running,
                images: 1,
                data_bytes: 1 << 30,
                daemon_rss_bytes: 0,
            },
        }
    }

    fn gap(node: &str, from: i64, to: Option<i64>) -> Gap {
        Gap {
            node: node.into(),
            from_ms: from,
            to_ms: to,
            why: "x".into(),
        }
    }

    /// The cases of the issue: a stopped service (2 containers, none running) bills nothing; a
    /// leftover on the previous node (down there) bills nothing; only the running one bills.
    #[test]
    fn bills_what_runs_where_it_is_up() {
        let rows = [
            row("n1", "web", 0, H, true, 2),
            row("n1", "web", H, 2 * H, false, 0),
            row("n2", "web", 0, 2 * H, false, 1),
        ];
        let b = integrate(&rows, &[], GroupBy::Service, 0, 2 * H, 2 * H, None);
        assert_eq!(b.len(), 1);
        assert!((b[0].container_hours - 2.0).abs() < 1e-9, "{b:?}");
        assert!((b[0].billed_hours - 1.0).abs() < 1e-9, "{b:?}");
        assert!((b[0].unbilled_hours - 3.0).abs() < 1e-9, "{b:?}");
        assert_eq!((b[0].max_containers, b[0].max_running), (2, 2));
        let by_node = integrate(&rows, &[], GroupBy::Node, 0, 2 * H, 2 * H, None);
        assert_eq!(by_node[0].key.as_deref(), Some("n1"));
        assert!((by_node[1].container_hours).abs() < 1e-9, "{by_node:?}");
    }

    /// A node's gap and the collector's own are not billed; overlapping gaps count once; an
    /// open gap lasts until now.
    #[test]
    fn gaps_are_not_billed() {
        let rows = [row("n1", "web", 0, 10 * H, true, 1)];
        let gaps = [
            gap("n1", H, Some(3 * H)),
            gap(ALL_NODES, 2 * H, Some(4 * H)),
            gap("n2", 0, None),
            gap("n1", 9 * H, None),
        ];
        let b = integrate(&rows, &gaps, GroupBy::App, 0, 10 * H, 10 * H, None);
        assert!((b[0].container_hours - 6.0).abs() < 1e-9, "{b:?}");
        assert!((b[0].unbilled_hours - 4.0).abs() < 1e-9, "{b:?}");
        // Clipped to a window.
        let b = integrate(&rows, &gaps, GroupBy::App, 3 * H, 5 * H, 10 * H, None);
        assert!((b[0].container_hours - 1.0).abs() < 1e-9, "{b:?}");
    }

    #[test]
    fn rates_give_costs() {
        let rows = [row("n1", "web", 0, 2 * H, true, 3)];
        let rates = Rates {
            currency: Some("EUR".into()),
            container_hour: 0.5,
            gib_hour: 0.25,
            image_hour: 1.0,
        };
        let b = integrate(&rows, &[], GroupBy::App, 0, 2 * H, 2 * H, Some(&rates));
        // 6 container-hours x 0.5 + 2 GiB-hours x 0.25 + 2 image-hours x 1.
        assert!((b[0].cost.unwrap() - 5.5).abs() < 1e-9, "{b:?}");
        let mut total = ChargebackRow::default();
        total.add(&b[0]);
        total.add(&b[0]);
        assert!((total.cost.unwrap() - 11.0).abs() < 1e-9);
    }

    #[test]
    fn merging() {
        assert_eq!(
            merge(vec![(5, 7), (1, 3), (2, 4), (9, 9)]),
            [(1, 4), (5, 7)]
        );
        assert_eq!(covered(&[(1, 4), (5, 7)], 2, 6), 3);
    }
}
