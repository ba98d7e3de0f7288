//! A snapshot of the whole cluster (one prefix read, then kept current by a watch), and the
//! placement rules that read it.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::KeyValue;
use tracing::warn;

use berth_model::Status;
use berth_model::config::Flex;
use berth_model::fleet::{Fleet, FleetCell, FleetNode, FleetService};
use berth_model::status::{ConfigSync, NodeCell, ServiceCluster};

use crate::files::FileMeta;
use crate::records::{Intent, NodeRecord, Ownership, SlotHold, SlotRecord, Target, decode};
use crate::{Keys, OwnerRecord};

/// A live node: its record and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    /// What it published.
    pub record: NodeRecord,
    /// Its lease.
    pub lease: i64,
}

/// The cluster as etcd holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// The etcd revision this view is at.
    pub revision: i64,
    /// Live nodes (their node key exists).
    pub nodes: BTreeMap<String, LiveNode>,
    /// The members (durable: a dead node stays one) and their member key's create revision.
    pub members: BTreeMap<String, i64>,
    /// Owned services.
    pub owners: BTreeMap<String, Ownership>,
    /// Services frozen cluster-wide.
    pub frozen: BTreeSet<String>,
    /// What the orchestrator keeps each service at (absent: never said).
    pub targets: BTreeMap<String, Target>,
    /// Pending intents.
    pub intents: BTreeMap<String, Intent>,
    /// `drp_active` marks: a DR node started the service (see [`crate::drp`]).
    pub drp_active: BTreeMap<String, berth_model::drp::DrpMark>,
    /// The service files etcd holds (metadata only: the bytes are read when needed).
    pub files: BTreeMap<String, FileMeta>,
    /// The held slots of flex services, by service and slot number.
    pub slots: BTreeMap<String, BTreeMap<u32, SlotHold>>,
}

impl ClusterView {
    /// Take a put (or a key read in a snapshot) into the view.
    pub fn apply_put(&mut self, keys: &Keys, kv: &KeyValue) {
        let Ok(key) = kv.key_str() else {
            return;
        };
        self.revision = self.revision.max(kv.mod_revision());
        if let Some(node) = keys.parse_node_key(key) {
            match decode::<NodeRecord>(key, kv.value()) {
                Ok(record) => {
                    self.nodes.insert(
                        node.to_string(),
                        LiveNode {
                            record,
                            lease: kv.lease(),
                        },
                    );
                }
                Err(e) => warn!("{e}"),
            }
            return;
        }
        if let Some(node) = keys.parse_member_key(key) {
            self.members.insert(node.to_string(), kv.create_revision());
            return;
        }
        let Some((svc, leaf)) = keys.parse_service_key(key) else {
            return;
        };
        let svc = svc.to_string();
        if let Some(n) = Keys::parse_slot_leaf(leaf) {
            match decode::<SlotRecord>(key, kv.value()) {
                Ok(record) => {
                    self.slots.entry(svc).or_default().insert(
                        n,
                        SlotHold {
                            node: record.node,
                            token: kv.mod_revision(),
                            lease: kv.lease(),
                            since_ms: record.since_ms,
                        },
                    );
                }
                Err(e) => warn!("{e}"),
            }
            return;
        }
        match leaf {
            "owner" => match decode::<OwnerRecord>(key, kv.value()) {
                Ok(record) => {
                    self.owners.insert(
                        svc,
                        Ownership {
                            record,
                            token: kv.mod_revision(),
                            lease: kv.lease(),
                        },
                    );
                }
                Err(e) => warn!("{e}"),
            },
            "frozen" => {
                self.frozen.insert(svc);
            }
            "target" => match kv.value_str().ok().and_then(Target::parse) {
                Some(t) => {
                    self.targets.insert(svc, t);
                }
                None => warn!("etcd key {key}: not started/stopped"),
            },
            "intent" => match decode::<Intent>(key, kv.value()) {
                Ok(i) => {
                    self.intents.insert(svc, i);
                }
                Err(e) => warn!("{e}"),
            },
            "drp_active" => {
                match berth_model::drp::DrpMark::parse(&String::from_utf8_lossy(kv.value())) {
                    Ok(m) => {
                        self.drp_active.insert(svc, m);
                    }
                    Err(e) => warn!("etcd key {key}: {e}"),
                }
            }
            "file_meta" => match decode::<FileMeta>(key, kv.value()) {
                Ok(mut m) => {
                    m.revision = kv.mod_revision();
                    self.files.insert(svc, m);
                }
                Err(e) => warn!("{e}"),
            },
            _ => {}
        }
    }

    /// Take a delete into the view.
    pub fn apply_delete(&mut self, keys: &Keys, key: &str, revision: i64) {
        self.revision = self.revision.max(revision);
        if let Some(node) = keys.parse_node_key(key) {
            self.nodes.remove(node);
            return;
        }
        if let Some(node) = keys.parse_member_key(key) {
            self.members.remove(node);
            return;
        }
        let Some((svc, leaf)) = keys.parse_service_key(key) else {
            return;
        };
        if let Some(n) = Keys::parse_slot_leaf(leaf) {
            if let Some(held) = self.slots.get_mut(svc) {
                held.remove(&n);
                if held.is_empty() {
                    self.slots.remove(svc);
                }
            }
            return;
        }
        match leaf {
            "owner" => {
                self.owners.remove(svc);
            }
            "frozen" => {
                self.frozen.remove(svc);
            }
            "target" => {
                self.targets.remove(svc);
            }
            "intent" => {
                self.intents.remove(svc);
            }
            "drp_active" => {
                self.drp_active.remove(svc);
            }
            "file_meta" => {
                self.files.remove(svc);
            }
            _ => {}
        }
    }

    /// Every service a node published or someone owns.
    pub fn services(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.owners.keys().cloned().collect();
        for n in self.nodes.values() {
            all.extend(n.record.services.keys().cloned());
        }
        all.extend(self.files.keys().cloned());
        all
    }

    /// The config row (`sync#i0`) of `svc`: `None` when etcd holds no copy of its file; else
    /// `up` when every live node of `may_run` (its `nodes` and `drpnodes`) publishes the
    /// checksum of the etcd copy, `warn` and one line per node behind (or in conflict: its own
    /// copy differs), naming both checksums.
    pub fn config_sync(&self, svc: &str, may_run: &[String]) -> Option<(Status, Vec<String>)> {
        let meta = self.files.get(svc)?;
        let behind: Vec<String> = may_run
            .iter()
            .filter_map(|n| {
                let live = self.nodes.get(n)?;
                match live.record.services.get(svc) {
                    None => Some(format!("{n}: no copy (cluster: {})", meta.checksum)),
                    Some(s) if s.checksum != meta.checksum => Some(format!(
                        "{n}: behind or in conflict: {} (cluster: {} rev {})",
                        if s.checksum.is_empty() {
                            "?"
                        } else {
                            &s.checksum
                        },
                        meta.checksum,
                        meta.revision
                    )),
                    Some(_) => None,
                }
            })
            .collect();
        let status = if behind.is_empty() {
            Status::Up
        } else {
            Status::Warn
        };
        Some((status, behind))
    }

    /// The members in the order they joined: what `nodes = "*"` and `{clusternodes}` mean.
    pub fn member_list(&self) -> Vec<String> {
        crate::members::join_order(
            self.members
                .iter()
                .map(|(n, rev)| (n.clone(), *rev))
                .collect(),
        )
    }

    /// Whether `node` is alive (its node key exists).
    pub fn alive(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// The nodes that could run `svc`, in placement order (`nodes order`: the order of the
    /// service's `nodes`): alive, with a valid copy of the service file that is the cluster's
    /// (when etcd holds one: a node behind or in conflict is no candidate, `config behind`).
    pub fn candidates(&self, svc: &str, nodes: &[String]) -> Vec<String> {
        let current = self.files.get(svc).map(|f| f.checksum.as_str());
        nodes
            .iter()
            .filter(|n| {
                self.nodes
                    .get(n.as_str())
                    .and_then(|live| live.record.services.get(svc))
                    .is_some_and(|s| s.valid && current.is_none_or(|c| c == s.checksum))
            })
            .cloned()
            .collect()
    }

    /// For each node that does not run `svc` (every member, live node and node of its
    /// `nodes`, but its owner), the one reason, first that applies: `hb down`, `not in nodes`,
    /// `frozen`, `no copy of the file`, `config behind` (its copy is not etcd's), `file invalid: <first error>`, `start failed N s ago`,
    /// `target met: runs on <owner>`, `stopped by an operator`, `no owner: not started`.
    pub fn why_not(&self, svc: &str, now_ms: u64) -> BTreeMap<String, String> {
        let placement = self.placement_nodes(svc);
        let owner = self.owners.get(svc).map(|o| o.record.node.as_str());
        let hold = self.drp_hold(svc);
        let drp = self.drp_nodes(svc);
        let flex = self.flex_of(svc);
        // A flex service runs where its slots are held.
        let holders: Vec<&str> = self
            .slots
            .get(svc)
            .map(|s| s.values().map(|h| h.node.as_str()).collect())
            .unwrap_or_default();
        let mut all: BTreeSet<&str> = self.members.keys().map(String::as_str).collect();
        all.extend(self.nodes.keys().map(String::as_str));
        all.extend(placement.iter().map(String::as_str));
        all.into_iter()
            .filter(|n| Some(*n) != owner && !holders.contains(n))
            .map(|n| {
                let summary = self.nodes.get(n).map(|l| l.record.services.get(svc));
                let why = match summary {
                    None => "hb down".to_string(),
                    Some(_) if drp.iter().any(|d| d == n) => {
                        "DR node: started by hand only".to_string()
                    }
                    Some(_) if !placement.is_empty() && !placement.iter().any(|p| p == n) => {
                        "not in nodes".to_string()
                    }
                    Some(_) if hold.is_some() => hold.clone().unwrap_or_default(),
                    Some(_) if self.frozen.contains(svc) => "frozen".to_string(),
                    Some(None) => "no copy of the file".to_string(),
                    Some(Some(s))
                        if self
                            .files
                            .get(svc)
                            .is_some_and(|f| f.checksum != s.checksum) =>
                    {
                        "config behind".to_string()
                    }
                    Some(Some(s)) => match (&s.invalid, s.failed_ms, owner) {
                        (Some(e), _, _) => format!("file invalid: {e}"),
                        (None, Some(at), _) => {
                            format!("start failed {} s ago", now_ms.saturating_sub(at) / 1000)
                        }
                        (None, None, _) if flex.is_some() => {
                            let f = flex.map_or(
                                berth_model::config::Flex {
                                    min: 1,
                                    max: 1,
                                    target: 1,
                                },
                                |f| berth_model::config::Flex {
                                    min: f.min,
                                    max: f.max,
                                    target: f.target,
                                },
                            );
                            why_idle(self, svc, f)
                        }
                        (None, None, Some(o)) => format!("target met: runs on {o}"),
                        (None, None, None) if self.targets.get(svc) == Some(&Target::Stopped) => {
                            "stopped by an operator".to_string()
                        }
                        (None, None, None) => "no owner: not started".to_string(),
                    },
                };
                (n.to_string(), why)
            })
            .collect()
    }

    /// What the cluster says of `svc` for its status: owner, fencing token, since, frozen, and
    /// each node's avail / overall. Its cost is the number of nodes, not of services.
    pub fn service_cluster(&self, svc: &str) -> ServiceCluster {
        let owner = self.owners.get(svc);
        ServiceCluster {
            owner: owner.map(|o| o.record.node.clone()),
            token: owner.map(|o| o.token),
            since_ms: owner.map(|o| o.record.since_ms),
            frozen: self.frozen.contains(svc),
            nodes: self
                .nodes
                .iter()
                .filter_map(|(n, live)| {
                    live.record.services.get(svc).map(|s| {
                        (
                            n.clone(),
                            NodeCell {
                                avail: s.avail,
                                overall: s.overall,
                            },
                        )
                    })
                })
                .collect(),
            why: self.why_not(svc, crate::now_ms()),
        }
    }

    /// `sync` of `svc` on node `me`, whose copy of the file has the checksum `mine`: `up` when
    /// every other node that has the service publishes the same, `warn` when one differs, `n/a`
    /// without a checksum of this node's copy.
    pub fn sync(&self, me: &str, svc: &str, mine: Option<&str>) -> Status {
        let Some(mine) = mine else {
            return Status::NotApplicable;
        };
        let same = self
            .nodes
            .iter()
            .filter(|(n, _)| n.as_str() != me)
            .filter_map(|(_, n)| n.record.services.get(svc))
            .all(|s| s.checksum == mine);
        if same { Status::Up } else { Status::Warn }
    }

    /// The config row `sync#i0` of `svc` as node `me` shows it, with `conflict` (this copy's
    /// and the cluster's checksums) when `me`'s svcd found its copy in conflict. `None` when
    /// etcd holds no copy.
    pub fn config_row(
        &self,
        svc: &str,
        me: &str,
        conflict: Option<(String, String)>,
    ) -> Option<ConfigSync> {
        let meta = self.files.get(svc)?;
        let (mut status, mut behind) = self.config_sync(svc, &self.placement_nodes(svc))?;
        if let Some((local, etcd)) = conflict {
            status = Status::Warn;
            let mine = format!("{me}: ");
            behind.retain(|l| !l.starts_with(&mine));
            behind.push(format!(
                "{me}: conflict: this copy {local}, the cluster's {}: edited on an older copy, nothing written either way",
                if etcd.is_empty() { "deleted" } else { &etcd }
            ));
        }
        Some(ConfigSync {
            status,
            revision: meta.revision,
            checksum: meta.checksum.clone(),
            behind,
        })
    }

    /// The checksum node `node` publishes for `svc`.
    pub fn published_checksum(&self, node: &str, svc: &str) -> Option<&str> {
        self.nodes
            .get(node)
            .and_then(|n| n.record.services.get(svc))
            .map(|s| s.checksum.as_str())
    }

    /// A flex service's counts, as the nodes that know it published them (the first).
    pub fn flex_of(&self, svc: &str) -> Option<berth_model::fleet::FleetFlex> {
        self.nodes
            .values()
            .filter_map(|n| n.record.services.get(svc))
            .find_map(|s| s.flex)
    }

    /// The service's `nodes`, as the nodes that know it published them (the first non-empty).
    pub fn placement_nodes(&self, svc: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter_map(|n| n.record.services.get(svc))
            .map(|s| s.nodes.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_default()
    }
}

impl ClusterView {
    /// The fleet grid of `svc mon`: every node that is alive, a member or named in a service's
    /// `nodes` (a dead one with `hb: down`), every service with its owner and each node's view.
    pub fn fleet(&self) -> Fleet {
        let now = crate::now_ms();
        let mut fleet = Fleet::default();
        for (name, live) in &self.nodes {
            let mut n = FleetNode::new(Status::Up);
            n.version = Some(live.record.version.clone());
            n.age_ms = Some(now.saturating_sub(live.record.updated_ms));
            fleet.nodes.insert(name.clone(), n);
        }
        for name in self.members.keys() {
            fleet.nodes.entry(name.clone()).or_insert_with(|| {
                let mut dead = FleetNode::new(Status::Down);
                dead.reason =
                    Some("member without a node key: svcd down or cut off from etcd".to_string());
                dead
            });
        }
        for svc in self.services() {
            let placement = self.placement_nodes(&svc);
            for n in &placement {
                fleet.nodes.entry(n.clone()).or_insert_with(|| {
                    let mut dead = FleetNode::new(Status::Down);
                    dead.reason = Some("no node key: svcd down or cut off from etcd".to_string());
                    dead
                });
            }
            let owner = self.owners.get(&svc);
            let frozen = self.frozen.contains(&svc);
            let cells = self
                .nodes
                .iter()
                .filter_map(|(n, live)| {
                    live.record.services.get(&svc).map(|s| {
                        let mut cell = FleetCell::new(s.avail, s.overall);
                        cell.frozen = frozen;
                        (n.clone(), cell)
                    })
                })
                .collect();
            fleet.services.insert(
                svc.clone(),
                FleetService {
                    owner: owner.map(|o| o.record.node.clone()),
                    frozen,
                    token: owner.map(|o| o.token),
                    app: None,
                    env: None,
                    preferred: placement.first().cloned(),
                    nodes: cells,
                    why: self.why_not(&svc, now),
                    flex: self.flex_of(&svc),
                },
            );
        }
        fleet
    }
}

/// `svc mon`'s count, as OpenSVC prints it: instances up / `flex_target` (`2/2`).
pub fn count(instances_up: usize, flex: Flex) -> String {
    format!("{instances_up}/{}", flex.target)
}

/// Why `node` runs no instance of `svc` when nothing more basic applies (it is alive, in
/// `nodes`, not frozen, its file loads): `target met: N/M instances up`, `stopped by an
/// operator`, or `not started`.
pub fn why_idle(view: &ClusterView, svc: &str, flex: Flex) -> String {
    let up = view.slots.get(svc).map_or(0, BTreeMap::len);
    match view.targets.get(svc) {
        Some(Target::Stopped) => "stopped by an operator".to_string(),
        _ if up >= flex.target as usize => {
            format!("target met: {} instances up", count(up, flex))
        }
        _ => format!("not started: {} instances up", count(up, flex)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceSummary;

    fn node(name: &str, svcs: &[(&str, bool)]) -> LiveNode {
        LiveNode {
            record: NodeRecord {
                name: name.into(),
                version: "0".into(),
                listen: String::new(),
                address: String::new(),
                since_ms: 0,
                updated_ms: 0,
                services: svcs
                    .iter()
                    .map(|(s, valid)| {
                        (
                            s.to_string(),
                            ServiceSummary {
                                avail: Status::Down,
                                overall: Status::Down,
                                checksum: String::new(),
                                valid: *valid,
                                nodes: vec!["n1".into(), "n2".into(), "n3".into()],
                                drpnodes: Vec::new(),
                                invalid: None,
                                failed_ms: None,
                                flex: None,
                            },
                        )
                    })
                    .collect(),
            },
            lease: 1,
        }
    }

    #[test]
    fn candidates_follow_nodes_order_and_skip_dead_or_invalid() {
        let mut v = ClusterView::default();
        v.nodes.insert("n3".into(), node("n3", &[("web", true)]));
        v.nodes.insert("n2".into(), node("n2", &[("web", false)]));
        let order: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(v.candidates("web", &order), vec!["n3".to_string()]);
        v.nodes.insert("n1".into(), node("n1", &[("web", true)]));
        assert_eq!(v.candidates("web", &order), vec!["n1", "n3"]);
        assert_eq!(v.placement_nodes("web"), order);
        assert!(v.candidates("db", &order).is_empty());
        let f = v.fleet();
        assert_eq!(f.nodes.len(), 3);
        assert_eq!(f.services["web"].preferred.as_deref(), Some("n1"));
        assert_eq!(f.services["web"].nodes.len(), 3);
        v.nodes.remove("n2");
        let f = v.fleet();
        assert_eq!(f.nodes["n2"].hb, Status::Down);
    }

    #[test]
    fn why_a_node_does_not_run_a_service() {
        let mut v = ClusterView::default();
        v.nodes.insert("n1".into(), node("n1", &[("web", true)]));
        v.nodes.insert("n2".into(), node("n2", &[("web", true)]));
        v.nodes.insert("n4".into(), node("n4", &[("web", true)]));
        v.members.insert("n5".into(), 9);
        let why = v.why_not("web", 0);
        assert_eq!(why["n1"], "no owner: not started");
        assert_eq!(why["n3"], "hb down");
        assert_eq!(why["n4"], "not in nodes");
        assert_eq!(why["n5"], "hb down");
        v.targets.insert("web".into(), Target::Stopped);
        assert_eq!(v.why_not("web", 0)["n1"], "stopped by an operator");
        v.owners.insert(
            "web".into(),
            Ownership {
                record: OwnerRecord {
                    node: "n1".into(),
                    since_ms: 0,
                    why: crate::OwnerWhy::Orchestrate,
                },
                token: 7,
                lease: 1,
            },
        );
        let web = &mut v.nodes.get_mut("n2").unwrap().record.services;
        web.get_mut("web").unwrap().failed_ms = Some(1_000);
        let why = v.why_not("web", 13_500);
        assert!(!why.contains_key("n1"));
        assert_eq!(why["n2"], "start failed 12 s ago");
        v.nodes
            .get_mut("n2")
            .unwrap()
            .record
            .services
            .get_mut("web")
            .unwrap()
            .invalid = Some("line 3: bad".into());
        assert_eq!(v.why_not("web", 0)["n2"], "file invalid: line 3: bad");
        v.nodes.get_mut("n2").unwrap().record.services.clear();
        assert_eq!(v.why_not("web", 0)["n2"], "no copy of the file");
        v.frozen.insert("web".into());
        assert_eq!(v.why_not("web", 0)["n2"], "frozen");
        assert_eq!(v.fleet().services["web"].why["n3"], "hb down");
        assert_eq!(v.service_cluster("web").why["n4"], "not in nodes");
    }

    #[test]
    fn a_dead_member_stays_in_the_fleet_with_hb_down() {
        let mut v = ClusterView::default();
        v.nodes.insert("n1".into(), node("n1", &[]));
        v.members.insert("n4".into(), 3);
        v.members.insert("n1".into(), 5);
        assert_eq!(v.member_list(), ["n4", "n1"]);
        let f = v.fleet();
        assert_eq!(f.nodes.len(), 2);
        assert_eq!(f.nodes["n1"].hb, Status::Up);
        assert_eq!(f.nodes["n4"].hb, Status::Down);
    }

    #[test]
    fn sync_and_the_cluster_rows_of_a_service() {
        let mut v = ClusterView::default();
        v.nodes.insert("n1".into(), node("n1", &[("web", true)]));
        v.nodes.insert("n2".into(), node("n2", &[("web", true)]));
        assert_eq!(v.published_checksum("n1", "web"), Some(""));
        assert_eq!(v.sync("n1", "web", Some("")), Status::Up);
        assert_eq!(v.sync("n1", "web", Some("abc")), Status::Warn);
        assert_eq!(v.sync("n1", "web", None), Status::NotApplicable);
        let c = v.service_cluster("web");
        assert_eq!((c.owner, c.frozen, c.nodes.len()), (None, false, 2));
    }

    #[test]
    fn the_config_row_names_the_nodes_behind_and_why_not_says_config_behind() {
        let mut v = ClusterView::default();
        v.nodes.insert("n1".into(), node("n1", &[("web", true)]));
        v.nodes.insert("n2".into(), node("n2", &[("web", true)]));
        let all: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(v.config_sync("web", &all), None);
        v.files.insert(
            "web".into(),
            FileMeta {
                format: crate::files::FileFormat::Toml,
                checksum: String::new(),
                size: 0,
                by: "n1".into(),
                at_ms: 0,
                revision: 9,
            },
        );
        // Both live nodes have it (n3 is dead: not counted).
        assert_eq!(v.config_sync("web", &all), Some((Status::Up, Vec::new())));
        assert!(v.services().contains("web"));
        v.files.get_mut("web").unwrap().checksum = "abc".into();
        let (st, behind) = v.config_sync("web", &all).unwrap();
        assert_eq!(st, Status::Warn);
        assert_eq!(behind.len(), 2);
        assert!(behind[0].starts_with("n1: behind"), "{behind:?}");
        assert!(behind[1].contains("cluster: abc rev 9"), "{behind:?}");
        assert_eq!(v.why_not("web", 0)["n2"], "config behind");
        // A node behind is no candidate.
        assert!(v.candidates("web", &all).is_empty());
        v.nodes
            .get_mut("n2")
            .unwrap()
            .record
            .services
            .get_mut("web")
            .unwrap()
            .checksum = "abc".into();
        assert_eq!(v.why_not("web", 0)["n2"], "no owner: not started");
        assert_eq!(v.candidates("web", &all), ["n2"]);
        let row = v
            .config_row("web", "n2", Some(("x".into(), "abc".into())))
            .unwrap();
        assert_eq!(row.status, Status::Warn);
        assert!(
            row.behind
                .iter()
                .any(|l| l.starts_with("n2: conflict: this copy x, the cluster's abc")),
            "{row:?}"
        );
        assert!(
            row.behind.iter().any(|l| l.starts_with("n1: behind")),
            "{row:?}"
        );
        // A file only in etcd shows in the fleet.
        v.files.insert("db".into(), v.files["web"].clone());
        assert!(v.fleet().services.contains_key("db"));
    }
}
