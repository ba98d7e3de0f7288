//! The fleet at a glance: services x nodes, the grid `svc mon` and `berth-collector print status`
//! draw, and the JSON both serve (`svc mon --format json`, design.md's "Cluster" section):
//! `{"nodes": {"n1": {"hb": "up", ...}}, "services": {"web": {"owner": "n1", "frozen": false,
//! "nodes": {"n1": {"avail": "up", "overall": "up"}}}}}`. No I/O.
//!
//! The text layout follows OpenSVC's `svcmon`:
//! ```text
//! Nodes                   n1    n2    n3
//!  hb                   | up    up    down
//! Services                n1    n2    n3
//!  db        warn       | !*    o^*   /
//!  web       up         | O^    X     /
//! ```
//! Marks: `O` up, `X` down, `!` warn, `o`/`x` standby up/down, `/` n/a (or not reported);
//! then `^` on the service's preferred node and `*` when frozen there.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::status::Status;

/// The fleet: every node and every service, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// Every node known (a dead one with `hb: down`).
    #[serde(default)]
    pub nodes: BTreeMap<String, FleetNode>,
    /// Every service known, with what each node reports of it.
    #[serde(default)]
    pub services: BTreeMap<String, FleetService>,
}

impl Fleet {
    /// The fleet of one node in no cluster (`svc mon` there): the node, its heartbeat `n/a`
    /// (it has none), and each of its services as its status shows it.
    pub fn of_node(node: &crate::status::NodeStatus) -> Fleet {
        let mut fleet = Fleet::default();
        fleet
            .nodes
            .insert(node.nodename.clone(), FleetNode::new(Status::NotApplicable));
        for st in &node.services {
            let mut cell = FleetCell::new(st.avail, st.overall);
            cell.frozen = st.frozen;
            fleet.services.insert(
                st.name.clone(),
                FleetService {
                    frozen: st.frozen,
                    app: st.app.clone(),
                    env: st.env.clone(),
                    nodes: [(node.nodename.clone(), cell)].into(),
                    ..FleetService::default()
                },
            );
        }
        fleet
    }
}

/// One node of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetNode {
    /// Its heartbeat: `up` alive, `warn` late, `down` dead or unreachable, `n/a` not known.
    pub hb: Status,
    /// The agent's version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How old the last heartbeat (or poll) is, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// Why the node is stale or failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FleetNode {
    /// A node with this heartbeat and nothing else known.
    pub fn new(hb: Status) -> Self {
        FleetNode {
            hb,
            version: None,
            age_ms: None,
            reason: None,
        }
    }
}

/// One service of the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetService {
    /// The node that owns (runs) it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Frozen cluster-wide.
    #[serde(default)]
    pub frozen: bool,
    /// The owner key's fencing token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// The application code (OpenSVC `app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The environment (PRD, DEV...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The preferred node (the first of the service's `nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred: Option<String>,
    /// What each node reports of it.
    #[serde(default)]
    pub nodes: BTreeMap<String, FleetCell>,
    /// For each node that does not run it, why (see [`crate::status::ServiceCluster::why`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub why: BTreeMap<String, String>,
    /// A flex service's counts (absent: a failover service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flex: Option<FleetFlex>,
}

/// A flex service's counts and `orchestrate`, as its nodes publish them: `svc mon` prints
/// `ha 2/2` (instances up / `flex_target`, as OpenSVC does) and its overall follows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetFlex {
    /// `flex_min`.
    pub min: u32,
    /// `flex_max`.
    pub max: u32,
    /// `flex_target`.
    pub target: u32,
    /// `orchestrate`.
    pub orchestrate: crate::config::Orchestrate,
}

impl FleetFlex {
    /// The counts of a flex service's settings (`None`: not flex).
    pub fn of(settings: &crate::config::ServiceSettings) -> Option<FleetFlex> {
        settings.flex().map(|f| FleetFlex {
            min: f.min,
            max: f.max,
            target: f.target,
            orchestrate: settings.orchestrate,
        })
    }
}

/// A flex service's overall on the cluster, from each instance's status: `down` with none
/// up, `warn` when the number up is outside `[min, max]` or an instance warns, else `up`.
pub fn flex_overall(instances: impl IntoIterator<Item = Status>, min: u32, max: u32) -> Status {
    let mut up = 0u32;
    let mut warn = false;
    for s in instances {
        up += u32::from(s == Status::Up);
        warn |= s == Status::Warn;
    }
    if up == 0 {
        Status::Down
    } else if warn || up < min || up > max {
        Status::Warn
    } else {
        Status::Up
    }
}

impl FleetService {
    /// The service's status over the fleet, as a failover service's: `up` when it is up on
    /// exactly one node (the others being down is its normal state), `warn` when up on several
    /// or warn anywhere, else the merge of every node's `overall` (`n/a` when none reports it).
    /// Cells on stale nodes are left out while any other node reports the service (see
    /// [`FleetService::is_stale`]).
    pub fn overall(&self) -> Status {
        let live = self.nodes.values().any(|c| !c.stale);
        let cells = || {
            self.nodes
                .values()
                .filter(move |c| !live || !c.stale)
                .map(|c| c.overall)
        };
        if let Some(f) = self.flex {
            return flex_overall(cells(), f.min, f.max);
        }
        if cells().any(|s| s == Status::Warn) {
            return Status::Warn;
        }
        match cells().filter(|s| *s == Status::Up).count() {
            0 => Status::merge_all(cells()),
            1 => Status::Up,
            _ => Status::Warn,
        }
    }
}

impl FleetService {
    /// A flex service's `ha 2/2` (orchestrate, instances up / `flex_target`); `None` for a
    /// failover service.
    pub fn flex_count(&self) -> Option<String> {
        let f = self.flex?;
        let up = self
            .nodes
            .values()
            .filter(|c| !c.stale && c.avail == Status::Up)
            .count();
        use crate::config::Orchestrate;
        let orch = Orchestrate::CHOICES
            .iter()
            .find(|(_, o)| *o == f.orchestrate && *o != Orchestrate::No)
            .map_or(String::new(), |(name, _)| format!("{name} "));
        Some(format!("{orch}{up}/{}", f.target))
    }

    /// Whether what is known of the service comes from stale nodes: it is up on no node that
    /// answers, and a stale node reports it (its last word, maybe up, is not news). Such a
    /// service is `stale`, never `up`.
    pub fn is_stale(&self) -> bool {
        self.nodes.values().any(|c| c.stale)
            && !self
                .nodes
                .values()
                .any(|c| !c.stale && c.avail == Status::Up)
    }

    /// The word of the service's fleet-wide status: `stale` (see [`FleetService::is_stale`]),
    /// else its [`FleetService::overall`].
    pub fn status_word(&self) -> &'static str {
        if self.is_stale() {
            "stale"
        } else {
            self.overall().as_str()
        }
    }
}

/// What one node reports of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetCell {
    /// The service's `avail` on that node.
    pub avail: Status,
    /// The service's `overall` on that node.
    pub overall: Status,
    /// Frozen on that node.
    #[serde(default)]
    pub frozen: bool,
    /// The node is stale: this is its last word, not news.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// What an operator last asked there (`up` start, `down` stop): a `down` with target
    /// `down` is a stop, not a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Status>,
}

impl FleetCell {
    /// A cell with both statuses equal, not frozen.
    pub fn new(avail: Status, overall: Status) -> Self {
        FleetCell {
            avail,
            overall,
            frozen: false,
            stale: false,
            target: None,
        }
    }
}

/// The mark of a status in the grid: `O` up, `X` down, `!` warn, `o`/`x` standby up/down,
/// `/` n/a or undef.
pub fn status_mark(s: Status) -> char {
    match s {
        Status::Up => 'O',
        Status::Down => 'X',
        Status::Warn => '!',
        Status::StdbyUp => 'o',
        Status::StdbyDown => 'x',
        Status::NotApplicable | Status::Undef => '/',
    }
}

/// The marks of one cell: the status mark of `avail` (OpenSVC marks availability; `!` when
/// `overall` is warn while avail is up), then `^` on the preferred node, `*` when frozen.
/// A node that does not report the service shows `/` (with `^` if it is the preferred one).
pub fn cell_marks(svc: &FleetService, node: &str) -> String {
    let mut out = String::new();
    match svc.nodes.get(node) {
        Some(c) => {
            let s = if c.overall == Status::Warn && c.avail == Status::Up {
                Status::Warn
            } else {
                c.avail
            };
            out.push(status_mark(s));
            if svc.preferred.as_deref() == Some(node) {
                out.push('^');
            }
            if c.frozen || svc.frozen {
                out.push('*');
            }
        }
        None => {
            out.push('/');
            if svc.preferred.as_deref() == Some(node) {
                out.push('^');
            }
        }
    }
    out
}

fn color_of(s: Status) -> Option<&'static str> {
    match s {
        Status::Up | Status::StdbyUp => Some("32"),
        Status::Down | Status::StdbyDown => Some("31"),
        Status::Warn => Some("33"),
        Status::NotApplicable | Status::Undef => None,
    }
}

/// Pad `text` to `width` columns, painted when `color` and the status has a colour.
fn cell(out: &mut String, text: &str, width: usize, status: Status, color: bool) {
    let len = text.chars().count();
    match color_of(status) {
        Some(code) if color => {
            let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
        }
        _ => out.push_str(text),
    }
    for _ in len..width {
        out.push(' ');
    }
}

/// Every node name of the grid's columns: the fleet's nodes, then any node a service names that
/// the fleet does not list (sorted).
fn columns(f: &Fleet) -> Vec<String> {
    let mut cols: Vec<String> = f.nodes.keys().cloned().collect();
    let mut extra: Vec<String> = f
        .services
        .values()
        .flat_map(|s| s.nodes.keys())
        .filter(|n| !f.nodes.contains_key(*n))
        .cloned()
        .collect();
    extra.sort();
    extra.dedup();
    cols.extend(extra);
    cols
}

/// Draw the grid: a heartbeat line per node, then one row per service, one column per node.
/// Lines never end in blanks. `color` paints the marks with the status colours.
pub fn render_fleet(f: &Fleet, color: bool) -> String {
    let cols = columns(f);
    let name_w = f
        .services
        .keys()
        .map(|s| s.chars().count())
        .chain(["Services".len()])
        .max()
        .unwrap_or(8)
        + 2;
    // " <name>  <overall>  | " then the node columns; a flex service's overall is followed by
    // its count (`up ha 2/2`).
    let word_of = |s: &FleetService| match s.flex_count() {
        Some(count) => format!("{} {count}", s.status_word()),
        None => s.status_word().to_string(),
    };
    let status_w = f
        .services
        .values()
        .map(|s| word_of(s).chars().count() + 1)
        .chain(["stdby down".len() + 1])
        .max()
        .unwrap_or(11);
    let col_w = cols
        .iter()
        .map(|c| c.chars().count())
        .chain(["down".len()])
        .max()
        .unwrap_or(4)
        + 2;
    let head_w = 1 + name_w + status_w + 2;
    let mut out = String::new();
    let header = |out: &mut String, title: &str| {
        out.push_str(title);
        for _ in title.chars().count()..head_w {
            out.push(' ');
        }
        for c in &cols {
            let _ = write!(out, "{c:<col_w$}");
        }
        trim_line(out);
    };

    header(&mut out, "Nodes");
    let mut line = String::from(" hb");
    for _ in line.len()..head_w - 2 {
        line.push(' ');
    }
    line.push_str("| ");
    for c in &cols {
        let hb = f.nodes.get(c).map_or(Status::NotApplicable, |n| n.hb);
        cell(&mut line, hb.as_str(), col_w, hb, color);
    }
    out.push_str(&line);
    trim_line(&mut out);
    for (name, n) in &f.nodes {
        if let Some(reason) = &n.reason {
            let _ = write!(out, "  # {name}: {reason}");
            trim_line(&mut out);
        }
    }

    header(&mut out, "Services");
    for (name, s) in &f.services {
        let mut line = format!(" {name:<name_w$}");
        let overall = s.overall();
        let word = word_of(s);
        let paint = if s.is_stale() {
            Status::NotApplicable
        } else {
            overall
        };
        cell(&mut line, &word, status_w, paint, color);
        line.push_str("| ");
        for c in &cols {
            let marks = cell_marks(s, c);
            let st = s.nodes.get(c).map_or(Status::NotApplicable, |x| {
                if x.overall == Status::Warn {
                    Status::Warn
                } else {
                    x.avail
                }
            });
            cell(&mut line, &marks, col_w, st, color);
        }
        out.push_str(&line);
        trim_line(&mut out);
    }
    out
}

/// End the current line: drop trailing blanks, add a newline.
fn trim_line(out: &mut String) {
    let keep = out.trim_end_matches(' ').len();
    out.truncate(keep);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    fn fleet() -> Fleet {
        let mut f = Fleet::default();
        f.nodes.insert("n1".into(), FleetNode::new(Up));
        f.nodes.insert("n2".into(), FleetNode::new(Up));
        let mut dead = FleetNode::new(Down);
        dead.reason = Some("no answer for 35s".into());
        f.nodes.insert("n3".into(), dead);
        let mut web = FleetService {
            owner: Some("n1".into()),
            preferred: Some("n1".into()),
            ..FleetService::default()
        };
        web.nodes.insert("n1".into(), FleetCell::new(Up, Up));
        web.nodes.insert("n2".into(), FleetCell::new(Down, Down));
        f.services.insert("web".into(), web);
        let mut db = FleetService {
            frozen: true,
            preferred: Some("n2".into()),
            ..FleetService::default()
        };
        db.nodes.insert("n1".into(), FleetCell::new(Up, Warn));
        db.nodes
            .insert("n2".into(), FleetCell::new(StdbyUp, StdbyUp));
        f.services.insert("db".into(), db);
        f
    }

    #[test]
    fn marks() {
        let f = fleet();
        let web = &f.services["web"];
        assert_eq!(cell_marks(web, "n1"), "O^");
        assert_eq!(cell_marks(web, "n2"), "X");
        assert_eq!(cell_marks(web, "n3"), "/");
        let db = &f.services["db"];
        assert_eq!(cell_marks(db, "n1"), "!*");
        assert_eq!(cell_marks(db, "n2"), "o^*");
        assert_eq!(status_mark(StdbyDown), 'x');
        assert_eq!(status_mark(Undef), '/');
    }

    #[test]
    fn a_failover_service_is_up_on_one_node_and_warn_on_two() {
        let mut f = fleet();
        let web = f.services.get_mut("web").unwrap();
        assert_eq!(web.overall(), Up);
        web.nodes.insert("n2".into(), FleetCell::new(Up, Up));
        assert_eq!(web.overall(), Warn);
        web.nodes.insert("n1".into(), FleetCell::new(Down, Down));
        web.nodes.insert("n2".into(), FleetCell::new(Down, Down));
        assert_eq!(web.overall(), Down);
    }

    /// Up only on a stale node: `stale`, never `up`; up on a live node too: up.
    #[test]
    fn stale_propagates() {
        let mut f = fleet();
        let web = f.services.get_mut("web").unwrap();
        web.nodes.get_mut("n1").unwrap().stale = true;
        assert!(web.is_stale());
        assert_eq!(web.status_word(), "stale");
        assert_eq!(web.overall(), Down, "the live node says down");
        web.nodes.insert("n2".into(), FleetCell::new(Up, Up));
        assert!(!web.is_stale());
        assert_eq!(web.status_word(), "up");
        let mut g = Fleet::default();
        let mut s = FleetService::default();
        let mut c = FleetCell::new(Up, Up);
        c.stale = true;
        s.nodes.insert("n1".into(), c);
        g.services.insert("web".into(), s);
        assert!(render_fleet(&g, false).contains(" web       stale      | O"));
    }

    #[test]
    fn text_grid() {
        let got = render_fleet(&fleet(), false);
        let want = "\
Nodes                   n1    n2    n3
 hb                   | up    up    down
  # n3: no answer for 35s
Services                n1    n2    n3
 db        warn       | !*    o^*   /
 web       up         | O^    X     /
";
        assert_eq!(got, want, "\n{got}");
        assert!(got.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn colour_only_when_asked() {
        let f = fleet();
        assert!(!render_fleet(&f, false).contains('\x1b'));
        let c = render_fleet(&f, true);
        assert!(c.contains("\x1b[32mO^"), "{c}");
        assert!(c.contains("\x1b[31mdown"), "{c}");
    }

    #[test]
    fn empty_fleet() {
        let got = render_fleet(&Fleet::default(), false);
        assert_eq!(got, "Nodes\n hb                   |\nServices\n");
    }

    /// The JSON shape of design.md; `None`s are left out, absent fields read back as defaults.
    #[test]
    fn json_shape() {
        let f = fleet();
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["nodes"]["n1"], serde_json::json!({"hb": "up"}));
        assert_eq!(v["services"]["web"]["owner"], "n1");
        assert_eq!(v["services"]["web"]["frozen"], false);
        assert_eq!(
            v["services"]["web"]["nodes"]["n1"],
            serde_json::json!({"avail": "up", "overall": "up", "frozen": false})
        );
        assert!(v["services"]["web"].get("token").is_none());
        let back: Fleet = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
        let min: Fleet = serde_json::from_str(
            r#"{"nodes": {"n1": {"hb": "up"}}, "services": {"web": {"owner": "n1", "frozen": false,
               "nodes": {"n1": {"avail": "up", "overall": "up"}}}}}"#,
        )
        .unwrap();
        assert_eq!(min.services["web"].nodes["n1"], FleetCell::new(Up, Up));
        assert_eq!(min.services["web"].overall(), Up);
    }

    /// A node a service names but the fleet does not list still gets a column.
    #[test]
    fn unknown_node_gets_a_column() {
        let mut f = Fleet::default();
        let mut s = FleetService::default();
        s.nodes.insert("zz".into(), FleetCell::new(Up, Up));
        f.services.insert("web".into(), s);
        let got = render_fleet(&f, false);
        assert!(got.contains(" web       up         | O"), "{got}");
        assert!(got.starts_with("Nodes                   zz"), "{got}");
    }

    #[test]
    fn a_flex_service_shows_its_count_and_its_own_overall() {
        use crate::config::Orchestrate;
        let cell = |s| FleetCell::new(s, s);
        let mut f = Fleet::default();
        for n in ["n1", "n2", "n3"] {
            f.nodes.insert(n.into(), FleetNode::new(Status::Up));
        }
        let mut svc = FleetService {
            nodes: [
                ("n1".to_string(), cell(Status::Up)),
                ("n2".to_string(), cell(Status::Up)),
                ("n3".to_string(), cell(Status::Down)),
            ]
            .into(),
            flex: Some(FleetFlex {
                min: 2,
                max: 3,
                target: 2,
                orchestrate: Orchestrate::Ha,
            }),
            ..FleetService::default()
        };
        assert_eq!(svc.overall(), Status::Up);
        assert_eq!(svc.flex_count().as_deref(), Some("ha 2/2"));
        f.services.insert("web".into(), svc.clone());
        let text = render_fleet(&f, false);
        let line = text.lines().find(|l| l.starts_with(" web")).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            ["web", "up", "ha", "2/2", "|", "O", "O", "X"],
            "{text}"
        );
        svc.nodes.insert("n2".into(), cell(Status::Down));
        assert_eq!(svc.overall(), Status::Warn);
        svc.nodes.insert("n1".into(), cell(Status::Down));
        assert_eq!(svc.overall(), Status::Down);
    }
}
