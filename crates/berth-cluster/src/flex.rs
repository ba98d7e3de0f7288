//! Flex services (`topology = "flex"`): one instance on each of several nodes, at most
//! `flex_max` at any moment, even across a partition.
//!
//! An instance runs only while its node holds one of the service's `flex_max` slot keys,
//! `services/<svc>/slots/<n>` (`n < flex_max`), under the node's lease. A slot is taken in one
//! transaction that also creates `services/<svc>/instances/<node>` (under the same lease) and
//! fails when either exists: a node never holds two slots of a service, and two nodes never hold
//! one slot. The slot key's `mod_revision` is the instance's fencing token. A node that loses
//! its lease stops its instances before the lease can expire (self-fencing, as for failover
//! services); the keys go with the lease, so a slot frees itself when its node dies.
//!
//! The decisions ([`decide`]) are pure: which slot this node takes, which instance it stops.
//! The transactions are [`Store::take_slot`] and [`Store::release_slot`].

use std::collections::BTreeMap;

use berth_model::Status;
use berth_model::config::{Flex, Orchestrate};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::records::Target;
pub use crate::records::{SlotHold, SlotRecord};
use crate::view::ClusterView;
pub use crate::view::{count, why_idle};
use crate::{ClusterError, Store, now_ms};

/// How long a slot held here may go with its instance down before it is given up (a start
/// in progress, an operator's start between the take and the first status).
pub const DOWN_GRACE_MS: u64 = 10_000;

/// A flex service whose file loads on this node, as the flex planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct FlexConfig<'a> {
    /// The service.
    pub name: &'a str,
    /// Its `orchestrate`.
    pub orchestrate: Orchestrate,
    /// Its `nodes`, in placement order (members resolved).
    pub nodes: &'a [String],
    /// Its counts.
    pub flex: Flex,
}

/// What this node does next with its instance of a flex service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlexStep {
    /// Take slot `slot` and start the instance here.
    Start {
        /// The slot to take.
        slot: u32,
        /// Why, for the service's log file.
        reason: String,
    },
    /// Stop the instance here and give slot `slot` (held under `token`) up.
    Stop {
        /// The slot held.
        slot: u32,
        /// Its token.
        token: i64,
        /// Why, for the service's log file.
        reason: String,
    },
}

/// What the flex planner knows of this node beside the view.
#[derive(Debug, Clone, Copy)]
pub struct Here<'a> {
    /// This node.
    pub me: &'a str,
    /// This node's lease (held, not past the fencing point).
    pub lease: Option<i64>,
    /// `ready_period` has passed since svcd joined.
    pub ready: bool,
    /// A start of this service failed here within the backoff.
    pub failed_here: bool,
    /// A start or a stop of this service is in flight here, or ended within the retry delay.
    pub busy: bool,
    /// The instance here is down (its avail).
    pub down_here: bool,
    /// The wall clock, ms since the epoch.
    pub now_ms: u64,
}

/// The slots of `svc`, by number.
pub fn slots<'v>(view: &'v ClusterView, svc: &str) -> BTreeMap<u32, &'v SlotHold> {
    view.slots
        .get(svc)
        .map(|s| s.iter().map(|(n, h)| (*n, h)).collect())
        .unwrap_or_default()
}

/// Whether the orchestrator brings instances up: `ha` while the target is not `stopped`,
/// `start` once (until a target is set).
fn wanted(orchestrate: Orchestrate, target: Option<Target>) -> bool {
    match (orchestrate, target) {
        (_, Some(Target::Stopped)) | (Orchestrate::No, _) => false,
        (Orchestrate::Start, None) | (Orchestrate::Ha, None | Some(Target::Started)) => true,
        (Orchestrate::Start, Some(Target::Started)) => false,
    }
}

/// This node's next step for flex service `c`, at most one. Nothing while the lease is not
/// held or a step is already under way.
///
/// - target `stopped` (`svc web stop --all`): every instance stops, whatever `orchestrate`.
/// - a slot numbered `flex_max` or more (a lowered `flex_max`): its instance stops.
/// - `ha`: more than `flex_target` instances: the lowest-ranked (`nodes` order) extras stop.
/// - `ha`, or `start` before any target was set: fewer than `flex_target` instances: the
///   first-ranked fit nodes that hold no slot each take one, the k-th of them the k-th free
///   slot (so two nodes rarely race for one slot; the transaction decides when they do).
pub fn decide(view: &ClusterView, here: Here<'_>, c: &FlexConfig<'_>) -> Option<FlexStep> {
    let lease = here.lease.filter(|l| *l != 0)?;
    if here.busy {
        return None;
    }
    let me = here.me;
    let held = slots(view, c.name);
    let mine = held
        .iter()
        .find(|(_, h)| h.node == me && h.lease == lease)
        .map(|(n, h)| (*n, h.token));
    let target = view.targets.get(c.name).copied();
    let frozen = view.frozen.contains(c.name);
    let rank = |node: &str| c.nodes.iter().position(|n| n == node).unwrap_or(usize::MAX);
    if let Some((slot, token)) = mine {
        let stop = |reason: String| {
            Some(FlexStep::Stop {
                slot,
                token,
                reason,
            })
        };
        if target == Some(Target::Stopped) {
            return stop("stopped cluster-wide (target stopped)".to_string());
        }
        let since = held.get(&slot).map_or(0, |h| h.since_ms);
        if here.down_here && here.now_ms.saturating_sub(since) > DOWN_GRACE_MS {
            return stop(format!(
                "the instance is down here (self-fencing, a failure): slot {slot} given up"
            ));
        }
        if slot >= c.flex.max {
            return stop(format!("slot {slot} is beyond flex_max {}", c.flex.max));
        }
        if c.orchestrate == Orchestrate::Ha && !frozen {
            let live = held.len();
            let extra = live.saturating_sub(c.flex.target as usize);
            if extra > 0 {
                let mut holders: Vec<&str> = held.values().map(|h| h.node.as_str()).collect();
                holders.sort_by_key(|n| std::cmp::Reverse(rank(n)));
                if holders.iter().take(extra).any(|n| *n == me) {
                    return stop(format!(
                        "{live} instances up, flex_target is {}: {me} is among the lowest-ranked",
                        c.flex.target
                    ));
                }
            }
        }
        return None;
    }
    if frozen || !here.ready || here.failed_here || !wanted(c.orchestrate, target) {
        return None;
    }
    let missing = (c.flex.target as usize).saturating_sub(held.len());
    if missing == 0 {
        return None;
    }
    let holding: Vec<&str> = held.values().map(|h| h.node.as_str()).collect();
    let fit: Vec<String> = view
        .candidates(c.name, c.nodes)
        .into_iter()
        .filter(|n| !holding.contains(&n.as_str()))
        .collect();
    let k = fit.iter().position(|n| n == me)?;
    if k >= missing {
        return None;
    }
    let slot = (0..c.flex.max).filter(|n| !held.contains_key(n)).nth(k)?;
    Some(FlexStep::Start {
        slot,
        reason: format!(
            "{} of flex_target {} instances up; {me} is a first fit node",
            held.len(),
            c.flex.target
        ),
    })
}

/// The service's overall on the cluster, from each live node's instance: `down` with none up,
/// `warn` when the number up is outside `[flex_min, flex_max]` or an instance warns, else `up`.
pub fn overall(instances: &[Status], flex: Flex) -> Status {
    berth_model::fleet::flex_overall(instances.iter().copied(), flex.min, flex.max)
}

/// Where `svc SVC start --all` / `stop --all` stands, read from the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllProgress {
    /// The nodes whose instance is up, by name.
    pub up: Vec<String>,
    /// Whether the goal is reached: `stopped`: no instance up; `started`: `flex_target` up.
    pub done: bool,
}

/// Whether an instance's avail counts as up (what the orchestrator counts as not down).
fn instance_up(avail: Status) -> bool {
    !matches!(
        avail,
        Status::Down | Status::NotApplicable | Status::Undef | Status::StdbyDown
    )
}

/// Where `--all` towards `goal` stands for flex service `svc`. An instance is up on a node that
/// holds a slot of it and publishes it up; for `stopped`, a slot still held or a live node
/// publishing it up (an instance started outside the orchestrator) counts too, so `done` means
/// no instance is left anywhere.
pub fn all_progress(view: &ClusterView, svc: &str, goal: Target, flex: Flex) -> AllProgress {
    let published_up = |node: &str| {
        view.nodes
            .get(node)
            .and_then(|l| l.record.services.get(svc))
            .is_some_and(|s| instance_up(s.avail))
    };
    let holders: Vec<&str> = slots(view, svc).values().map(|h| h.node.as_str()).collect();
    let mut up: Vec<String> = match goal {
        Target::Started => holders
            .iter()
            .filter(|n| published_up(n))
            .map(|n| n.to_string())
            .collect(),
        Target::Stopped => holders
            .iter()
            .map(|n| n.to_string())
            .chain(
                view.nodes
                    .keys()
                    .filter(|n| published_up(n))
                    .map(String::clone),
            )
            .collect(),
    };
    up.sort();
    up.dedup();
    let done = match goal {
        Target::Started => up.len() >= flex.target as usize,
        Target::Stopped => up.is_empty(),
    };
    AllProgress { up, done }
}

impl Store {
    /// Take slot `slot` of flex service `svc` for this node, under `lease`, in one transaction
    /// that fails when the slot is held, when this node holds another slot of it
    /// (`instances/<node>` exists), when `lease` is not this node's, or when the target or
    /// frozen key changed after `decided_at`. Returns the instance's fencing token.
    pub async fn take_slot(
        &self,
        svc: &str,
        slot: u32,
        lease: i64,
        decided_at: Option<i64>,
    ) -> Result<Option<i64>, ClusterError> {
        let keys = self.keys();
        let key = keys.slot(svc, slot);
        let mark = keys.instance(svc, self.node());
        let mut when = vec![
            Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Compare::create_revision(mark.clone(), CompareOp::Equal, 0),
            Compare::lease(keys.node(self.node()), CompareOp::Equal, lease),
        ];
        if let Some(rev) = decided_at {
            for k in [keys.target(svc), keys.frozen(svc)] {
                when.push(Compare::mod_revision(k, CompareOp::Less, rev + 1));
            }
        }
        let record = SlotRecord {
            node: self.node().to_string(),
            since_ms: now_ms(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let with_lease = || Some(PutOptions::new().with_lease(lease));
        let txn = Txn::new().when(when).and_then([
            TxnOp::put(key.clone(), value, with_lease()),
            TxnOp::put(mark, slot.to_string(), with_lease()),
        ]);
        let resp = self
            .call(format!("take {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// The slot this node holds of `svc`, with its token and lease, if any.
    pub async fn my_slot(&self, svc: &str) -> Result<Option<(u32, SlotHold)>, ClusterError> {
        let prefix = format!("{}services/{svc}/slots/", self.keys().root());
        let resp = self
            .call(format!("read {prefix}"), |mut c| {
                let p = prefix.clone();
                async move {
                    c.get(p, Some(etcd_client::GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        for kv in resp.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            let Some(n) = key
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let record: SlotRecord = crate::records::decode(key, kv.value())?;
            if record.node == self.node() {
                return Ok(Some((
                    n,
                    SlotHold {
                        node: record.node,
                        token: kv.mod_revision(),
                        lease: kv.lease(),
                        since_ms: record.since_ms,
                    },
                )));
            }
        }
        Ok(None)
    }

    /// Take a free slot of `svc` (the lowest, `n < max`) for this node under `lease`, or
    /// confirm the one it already holds under that lease. Returns the instance's fencing token.
    pub async fn take_any_slot(
        &self,
        svc: &str,
        max: u32,
        lease: i64,
        decided_at: Option<i64>,
    ) -> Result<i64, ClusterError> {
        if let Some((_, held)) = self.my_slot(svc).await?
            && held.lease == lease
        {
            return Ok(held.token);
        }
        for n in 0..max {
            if let Some(token) = self.take_slot(svc, n, lease, decided_at).await? {
                tracing::info!("{svc}: slot {n} taken (fencing token {token})");
                return Ok(token);
            }
        }
        Err(ClusterError::NoSlot {
            svc: svc.to_string(),
            max,
        })
    }

    /// Give up the slot this node holds of `svc`, if any. Retried a few times (a slot left
    /// held by a stopped instance keeps another node from starting one until the lease goes).
    pub async fn release_my_slot(&self, svc: &str) {
        for attempt in 1..=5 {
            let done = match self.my_slot(svc).await {
                Ok(Some((n, held))) => match self.release_slot(svc, n, held.token).await {
                    Ok(released) => {
                        if released {
                            tracing::info!("{svc}: slot {n} released (token {})", held.token);
                        }
                        true
                    }
                    Err(e) => {
                        tracing::warn!("{svc}: cannot release slot {n} ({attempt}/5): {e}");
                        false
                    }
                },
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!("{svc}: cannot read its slots ({attempt}/5): {e}");
                    false
                }
            };
            if done {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tracing::error!("{svc}: could not release this node's slot: it stays until the lease goes");
    }

    /// Give slot `slot` of `svc` up, if `token` is still this node's hold of it. `Ok(false)`:
    /// it was not; nothing was changed.
    pub async fn release_slot(
        &self,
        svc: &str,
        slot: u32,
        token: i64,
    ) -> Result<bool, ClusterError> {
        let keys = self.keys();
        let key = keys.slot(svc, slot);
        let mark = keys.instance(svc, self.node());
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, token)])
            .and_then([TxnOp::delete(key.clone(), None), TxnOp::delete(mark, None)]);
        let resp = self
            .call(format!("release {key}"), |mut c| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        Ok(resp.succeeded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{NodeRecord, ServiceSummary};
    use crate::view::LiveNode;

    const SVC: &str = "web";

    fn nodes() -> Vec<String> {
        ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect()
    }

    fn lease_of(node: &str) -> i64 {
        match node {
            "n1" => 11,
            "n2" => 12,
            "n3" => 13,
            _ => 99,
        }
    }

    /// `alive` nodes with a valid copy; `held`: (slot, node) pairs.
    fn view(alive: &[&str], held: &[(u32, &str)]) -> ClusterView {
        let mut v = ClusterView {
            revision: 100,
            ..ClusterView::default()
        };
        for n in alive {
            let summary = ServiceSummary {
                avail: Status::Down,
                overall: Status::Down,
                checksum: String::new(),
                valid: true,
                nodes: nodes(),
                drpnodes: Vec::new(),
                invalid: None,
                failed_ms: None,
                flex: None,
            };
            v.nodes.insert(
                n.to_string(),
                LiveNode {
                    record: NodeRecord {
                        name: n.to_string(),
                        version: "0".into(),
                        listen: String::new(),
                        address: String::new(),
                        since_ms: 0,
                        updated_ms: 0,
                        services: [(SVC.to_string(), summary)].into(),
                    },
                    lease: lease_of(n),
                },
            );
            v.members.insert(n.to_string(), 1);
        }
        for (slot, node) in held {
            v.slots.entry(SVC.to_string()).or_default().insert(
                *slot,
                SlotHold {
                    node: node.to_string(),
                    token: 50 + i64::from(*slot),
                    lease: lease_of(node),
                    since_ms: 0,
                },
            );
        }
        v
    }

    fn here(me: &str) -> Here<'_> {
        Here {
            me,
            lease: Some(lease_of(me)),
            ready: true,
            failed_here: false,
            busy: false,
            down_here: false,
            now_ms: 1_000,
        }
    }

    const FLEX: Flex = Flex {
        min: 1,
        max: 3,
        target: 2,
    };

    fn decide_on(
        v: &ClusterView,
        me: &str,
        orchestrate: Orchestrate,
        flex: Flex,
    ) -> Option<FlexStep> {
        let nodes = nodes();
        let c = FlexConfig {
            name: SVC,
            orchestrate,
            nodes: &nodes,
            flex,
        };
        decide(v, here(me), &c)
    }

    fn starts(v: &ClusterView, orchestrate: Orchestrate) -> Vec<(String, u32)> {
        ["n1", "n2", "n3"]
            .iter()
            .filter_map(|n| match decide_on(v, n, orchestrate, FLEX) {
                Some(FlexStep::Start { slot, .. }) => Some((n.to_string(), slot)),
                _ => None,
            })
            .collect()
    }

    fn stops(v: &ClusterView) -> Vec<String> {
        ["n1", "n2", "n3"]
            .iter()
            .filter(|n| {
                matches!(
                    decide_on(v, n, Orchestrate::Ha, FLEX),
                    Some(FlexStep::Stop { .. })
                )
            })
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn the_first_ranked_fit_nodes_take_distinct_slots_up_to_the_target() {
        let v = view(&["n1", "n2", "n3"], &[]);
        assert_eq!(
            starts(&v, Orchestrate::Ha),
            [("n1".to_string(), 0), ("n2".to_string(), 1)]
        );
        assert_eq!(starts(&v, Orchestrate::Start), starts(&v, Orchestrate::Ha));
        // One up already: only the next-ranked free node starts, on a free slot.
        let v = view(&["n1", "n2", "n3"], &[(0, "n1")]);
        assert_eq!(starts(&v, Orchestrate::Ha), [("n2".to_string(), 1)]);
        let v = view(&["n1", "n2", "n3"], &[(1, "n2")]);
        assert_eq!(starts(&v, Orchestrate::Ha), [("n1".to_string(), 0)]);
        // Target met: nobody starts, nobody stops.
        let v = view(&["n1", "n2", "n3"], &[(0, "n1"), (1, "n2")]);
        assert!(starts(&v, Orchestrate::Ha).is_empty());
        assert!(stops(&v).is_empty());
    }

    #[test]
    fn all_progress_counts_the_instances_up() {
        let set_up = |v: &mut ClusterView, n: &str| {
            if let Some(s) = v
                .nodes
                .get_mut(n)
                .and_then(|l| l.record.services.get_mut(SVC))
            {
                s.avail = Status::Up;
            }
        };
        // Two slots held, one instance published up so far: started is not reached.
        let mut v = view(&["n1", "n2", "n3"], &[(0, "n1"), (1, "n2")]);
        set_up(&mut v, "n1");
        let p = all_progress(&v, SVC, Target::Started, FLEX);
        assert_eq!((p.up, p.done), (vec!["n1".to_string()], false));
        set_up(&mut v, "n2");
        let p = all_progress(&v, SVC, Target::Started, FLEX);
        assert_eq!(p.up, ["n1", "n2"]);
        assert!(p.done);
        // Stopping: a slot still held counts, and so does an instance up without a slot.
        let mut v = view(&["n1", "n2", "n3"], &[(0, "n1")]);
        set_up(&mut v, "n3");
        let p = all_progress(&v, SVC, Target::Stopped, FLEX);
        assert_eq!(
            (p.up, p.done),
            (vec!["n1".to_string(), "n3".to_string()], false)
        );
        let v = view(&["n1", "n2", "n3"], &[]);
        let p = all_progress(&v, SVC, Target::Stopped, FLEX);
        assert!(p.up.is_empty() && p.done);
        // Up without a slot does not count towards started (it is no instance of the count).
        let mut v = view(&["n1", "n2", "n3"], &[]);
        set_up(&mut v, "n3");
        assert!(all_progress(&v, SVC, Target::Started, FLEX).up.is_empty());
    }

    #[test]
    fn a_dead_nodes_instance_is_replaced_by_the_next_fit_node() {
        // n1 died: its slot key went with its lease; n3 is the one free fit node.
        let v = view(&["n2", "n3"], &[(1, "n2")]);
        assert_eq!(starts(&v, Orchestrate::Ha), [("n3".to_string(), 0)]);
        // `start` places once: the target set after the first start keeps it from replacing.
        let mut v = view(&["n2", "n3"], &[(1, "n2")]);
        v.targets.insert(SVC.into(), Target::Started);
        assert!(starts(&v, Orchestrate::Start).is_empty());
        assert_eq!(starts(&v, Orchestrate::Ha), [("n3".to_string(), 0)]);
        // A node whose start failed here lately leaves it to the next one.
        let nodes = nodes();
        let c = FlexConfig {
            name: SVC,
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
            flex: FLEX,
        };
        let v = view(&["n1", "n2", "n3"], &[(1, "n2")]);
        let failed = Here {
            failed_here: true,
            ..here("n1")
        };
        assert_eq!(decide(&v, failed, &c), None);
    }

    #[test]
    fn the_lowest_ranked_extras_stop() {
        let v = view(&["n1", "n2", "n3"], &[(0, "n3"), (1, "n1"), (2, "n2")]);
        assert_eq!(stops(&v), ["n3"]);
        match decide_on(&v, "n3", Orchestrate::Ha, FLEX) {
            Some(FlexStep::Stop { slot, token, .. }) => assert_eq!((slot, token), (0, 50)),
            other => panic!("{other:?}"),
        }
        // `start` never stops extras; a frozen service neither.
        assert_eq!(decide_on(&v, "n3", Orchestrate::Start, FLEX), None);
        let mut frozen = v.clone();
        frozen.frozen.insert(SVC.into());
        assert!(stops(&frozen).is_empty());
        // A slot beyond a lowered flex_max stops, whatever the orchestrate.
        let low = Flex {
            min: 1,
            max: 2,
            target: 2,
        };
        assert!(matches!(
            decide_on(&v, "n2", Orchestrate::No, low),
            Some(FlexStep::Stop { slot: 2, .. })
        ));
    }

    #[test]
    fn stop_all_stops_every_instance_and_start_all_brings_the_target_back() {
        let mut v = view(&["n1", "n2", "n3"], &[(0, "n1"), (1, "n2")]);
        v.targets.insert(SVC.into(), Target::Stopped);
        for o in [Orchestrate::No, Orchestrate::Start, Orchestrate::Ha] {
            for n in ["n1", "n2"] {
                assert!(matches!(
                    decide_on(&v, n, o, FLEX),
                    Some(FlexStep::Stop { .. })
                ));
            }
            assert_eq!(decide_on(&v, "n3", o, FLEX), None);
        }
        let mut v = view(&["n1", "n2", "n3"], &[]);
        v.targets.insert(SVC.into(), Target::Stopped);
        assert!(starts(&v, Orchestrate::Ha).is_empty());
        v.targets.insert(SVC.into(), Target::Started);
        assert_eq!(starts(&v, Orchestrate::Ha).len(), 2);
    }

    #[test]
    fn nothing_without_the_lease_while_busy_frozen_or_not_ready() {
        let v = view(&["n1", "n2", "n3"], &[]);
        let nodes = nodes();
        let c = FlexConfig {
            name: SVC,
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
            flex: FLEX,
        };
        for h in [
            Here {
                lease: None,
                ..here("n1")
            },
            Here {
                busy: true,
                ..here("n1")
            },
            Here {
                ready: false,
                ..here("n1")
            },
        ] {
            assert_eq!(decide(&v, h, &c), None, "{h:?}");
        }
        let mut frozen = v.clone();
        frozen.frozen.insert(SVC.into());
        assert_eq!(decide(&frozen, here("n1"), &c), None);
        // A slot held under an old lease of this node is not this node's any more.
        let mut v = view(&["n1", "n2", "n3"], &[(0, "n1")]);
        if let Some(h) = v.slots.get_mut(SVC).and_then(|s| s.get_mut(&0)) {
            h.lease = 7;
        }
        assert!(!matches!(
            decide(&v, here("n1"), &c),
            Some(FlexStep::Stop { .. })
        ));
    }

    #[test]
    fn a_slot_whose_instance_stays_down_here_is_given_up() {
        let v = view(&["n1", "n2", "n3"], &[(0, "n1"), (1, "n2")]);
        let nodes = nodes();
        let c = FlexConfig {
            name: SVC,
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
            flex: FLEX,
        };
        let down = |now_ms| Here {
            down_here: true,
            now_ms,
            ..here("n1")
        };
        // Within the grace (a start under way): kept.
        assert_eq!(decide(&v, down(DOWN_GRACE_MS), &c), None);
        assert!(matches!(
            decide(&v, down(DOWN_GRACE_MS + 1), &c),
            Some(FlexStep::Stop { slot: 0, .. })
        ));
    }

    #[test]
    fn overall_and_count() {
        use Status::{Down, Up, Warn};
        let f = Flex {
            min: 2,
            max: 3,
            target: 2,
        };
        assert_eq!(overall(&[Down, Down, Down], f), Down);
        assert_eq!(overall(&[Up, Down, Down], f), Warn);
        assert_eq!(overall(&[Up, Up, Down], f), Up);
        assert_eq!(overall(&[Up, Up, Up], f), Up);
        assert_eq!(overall(&[Up, Up, Warn], f), Warn);
        assert_eq!(overall(&[Up, Up, Up, Up], f), Warn);
        assert_eq!(count(2, f), "2/2");
        let v = view(&["n1", "n2", "n3"], &[(0, "n1"), (1, "n2")]);
        assert_eq!(why_idle(&v, SVC, f), "target met: 2/2 instances up");
        let v = view(&["n1", "n2", "n3"], &[(0, "n1")]);
        assert_eq!(why_idle(&v, SVC, f), "not started: 1/2 instances up");
    }
}
