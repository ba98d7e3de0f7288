//! The orchestrator's decisions, without I/O: what this node does next for each service, from
//! the cluster's view, this node's lease, its service files and what the orchestrator remembers.
//!
//! svcd's orchestrator runs one cycle at a time (Patroni's `ha.py` shape): it reads, calls
//! [`plan`], hands each [`Step`] to the service's worker, and tells its [`Memory`] what it sent
//! ([`Memory::sent`]) and what came of it ([`Memory::apply`]). The memory is one value owned
//! by that one task.
//!
//! Two rules keep a decision from outliving its reason:
//! - **one start per service per decision**: while a start is in flight no other start of that
//!   service is decided, whatever the number of etcd changes meanwhile; after it ended, the
//!   next try waits [`RETRY_START_MS`];
//! - **a queued start is checked again before it acts** ([`recheck`]), against the newest view
//!   and the service's last action: an operator's stop (or freeze, or start) made after the
//!   decision wins. The owner key's transaction checks the target and frozen keys once more
//!   (see [`crate::Store::acquire_if`]), so no window is left between the check and the take.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use berth_model::config::Orchestrate;

use crate::records::{Intent, IntentAction, OwnerWhy, Target};
use crate::view::ClusterView;

/// How long a node that failed to start a service stays out of its candidates, in ms.
pub const FAILOVER_BACKOFF_MS: u64 = 60_000;
/// How long after a start ended the orchestrator waits before it tries that service again
/// (a start refused by a slow etcd must not leave the service down until the next change).
pub const RETRY_START_MS: u64 = 2_000;

/// This node's lease, as the planner needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Held, and not past the fencing point.
    pub held: bool,
    /// The lease's id.
    pub lease: i64,
}

/// A service whose file loads on this node.
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    /// The service.
    pub name: &'a str,
    /// Its `orchestrate`.
    pub orchestrate: Orchestrate,
    /// Its `nodes`, in placement order.
    pub nodes: &'a [String],
}

/// The cycle's clock.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Wall clock, ms since the epoch.
    pub ms: u64,
    /// `ready_period` has passed since svcd joined.
    pub ready: bool,
}

/// Which instance of a service a step is about. One today; flex services will have one slot
/// per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Slot {
    /// The service's one instance.
    #[default]
    Single,
}

/// A start the planner decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// What the owner key will say (orchestrate, failover, fence recovery, switch from n1).
    pub why: OwnerWhy,
    /// Why, for the service's log file.
    pub reason: String,
    /// The relocation this start completes (its `svc switch` waits for the lines).
    pub intent: Option<Intent>,
    /// The ownership this start runs under, when this node already owns it (a switch, a
    /// fence recovery).
    pub token: Option<i64>,
    /// The view revision the decision read.
    pub decided_at: i64,
    /// When it was decided (ms since the epoch).
    pub decided_ms: u64,
    /// Which instance.
    pub slot: Slot,
}

/// What this node does next for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start it here.
    Start(Start),
    /// Stop it here and hand it to the intent's target (a switch away from here).
    SwitchOut(Intent),
    /// Self-fencing stopped it, the lease survived, and nothing keeps it: give the ownership up.
    GiveUp,
}

/// What came of a step, or what a worker saw, told to the orchestrator's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A start the orchestrator sent ended (done, failed, refused or dropped).
    StartEnded(String),
    /// A start of the service failed here (or its monitor gave up on it here): this node
    /// leaves its candidates for [`FAILOVER_BACKOFF_MS`].
    StartFailed(String),
    /// Self-fencing stopped the service here.
    FenceStopped(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    InFlight,
    Ended(u64),
}

/// What the orchestrator remembers between cycles.
#[derive(Debug, Default)]
pub struct Memory {
    /// Intents already acted on (by id).
    handled: HashSet<String>,
    /// Ownerships (service, token) this node already started the service for.
    started_tokens: HashSet<(String, i64)>,
    /// Services whose start failed here, and when.
    failed: BTreeMap<String, u64>,
    /// Services self-fencing stopped here, to put back (or give up) if the lease survives.
    fenced: BTreeSet<String>,
    /// The last start of each service.
    attempts: BTreeMap<String, Attempt>,
    /// The last owner seen of each service: a failover names it.
    last_owners: BTreeMap<String, String>,
}

impl Memory {
    /// Look at the view before a plan: note the owners, forget intents and ownerships that
    /// are gone, and fencing marks of services this node no longer owns.
    pub fn observe(&mut self, view: &ClusterView, me: &str, health: Health) {
        for (svc, o) in &view.owners {
            if self.last_owners.get(svc) != Some(&o.record.node) {
                self.last_owners.insert(svc.clone(), o.record.node.clone());
            }
        }
        self.handled
            .retain(|id| view.intents.values().any(|i| &i.id == id));
        self.started_tokens
            .retain(|(svc, token)| view.owners.get(svc).is_some_and(|o| o.token == *token));
        self.fenced.retain(|svc| {
            view.owners
                .get(svc)
                .is_some_and(|o| o.record.node == me && o.lease == health.lease)
        });
    }

    /// `step` was handed to the service's worker.
    pub fn sent(&mut self, svc: &str, step: &Step) {
        match step {
            Step::Start(s) => {
                self.attempts.insert(svc.to_string(), Attempt::InFlight);
                if let Some(t) = s.token {
                    self.started_tokens.insert((svc.to_string(), t));
                }
                self.fenced.remove(svc);
            }
            Step::SwitchOut(intent) => {
                self.handled.insert(intent.id.clone());
            }
            Step::GiveUp => {
                self.fenced.remove(svc);
            }
        }
    }

    /// Take in what came of a step.
    pub fn apply(&mut self, event: Event, now_ms: u64) {
        match event {
            Event::StartEnded(svc) => {
                self.attempts.insert(svc, Attempt::Ended(now_ms));
            }
            Event::StartFailed(svc) => {
                self.failed.insert(svc, now_ms);
            }
            Event::FenceStopped(svc) => {
                self.fenced.insert(svc);
            }
        }
    }

    /// When a start of `svc` failed here, if within [`FAILOVER_BACKOFF_MS`].
    pub fn failed_recently(&self, svc: &str, now_ms: u64) -> Option<u64> {
        let at = *self.failed.get(svc)?;
        (now_ms.saturating_sub(at) < FAILOVER_BACKOFF_MS).then_some(at)
    }

    /// Whether a step of `svc` is in flight, or ended within [`RETRY_START_MS`] (a flex
    /// service's next step waits for it).
    pub fn busy(&self, svc: &str, now_ms: u64) -> bool {
        match self.attempts.get(svc) {
            Some(Attempt::InFlight) => true,
            Some(Attempt::Ended(at)) => now_ms.saturating_sub(*at) < RETRY_START_MS,
            None => false,
        }
    }

    /// A step of `svc` other than a [`Step`] (a flex stop) was handed to its worker: it is
    /// in flight until its ticket tells [`Event::StartEnded`].
    pub fn sent_other(&mut self, svc: &str) {
        self.attempts.insert(svc.to_string(), Attempt::InFlight);
    }

    /// Whether a start of `svc` is in flight.
    pub fn in_flight(&self, svc: &str) -> bool {
        self.attempts.get(svc) == Some(&Attempt::InFlight)
    }
}

/// The steps of this cycle: at most one per service, for the services of `configs` (those whose
/// file loads here). Nothing while the lease is not held.
pub fn plan(
    view: &ClusterView,
    me: &str,
    health: Health,
    configs: &[Config<'_>],
    memory: &Memory,
    now: Now,
) -> Vec<(String, Step)> {
    if !health.held || health.lease == 0 {
        return Vec::new();
    }
    configs
        .iter()
        .filter_map(|c| decide(view, me, health, c, memory, now).map(|s| (c.name.to_string(), s)))
        .collect()
}

fn decide(
    view: &ClusterView,
    me: &str,
    health: Health,
    c: &Config<'_>,
    memory: &Memory,
    now: Now,
) -> Option<Step> {
    let name = c.name;
    let owner = view.owners.get(name);
    let mine = owner.filter(|o| o.record.node == me && o.lease == health.lease);
    let frozen = view.frozen.contains(name);
    let target = view.targets.get(name).copied();
    let start = |why: OwnerWhy, reason: String, intent: Option<Intent>, token: Option<i64>| {
        Step::Start(Start {
            why,
            reason,
            intent,
            token,
            decided_at: view.revision,
            decided_ms: now.ms,
            slot: Slot::Single,
        })
    };
    // 0. Self-fencing stopped it and the lease survived after all (an etcd election outlasted
    // the fencing point): nobody else can have taken it. The orchestrator's services are put
    // back here; the others are given up.
    if memory.fenced.contains(name)
        && let Some(o) = mine
    {
        let keep = c.orchestrate != Orchestrate::No && !frozen && target != Some(Target::Stopped);
        if !keep {
            return Some(Step::GiveUp);
        }
        if memory.in_flight(name) {
            return None;
        }
        return Some(start(
            OwnerWhy::FenceRecovery,
            "fence recovery: the lease survived the fencing".to_string(),
            None,
            Some(o.token),
        ));
    }
    // 1. A relocation away from here, once per intent.
    if let Some(intent) = view.intents.get(name)
        && intent.from == me
        && owner.is_some_and(|o| o.record.node == me && o.token == intent.token)
        && !memory.handled.contains(&intent.id)
    {
        return match intent.action {
            IntentAction::Switch => Some(Step::SwitchOut(intent.clone())),
        };
    }
    // 2. Handed to this node by a switch: start it, once per ownership.
    if let Some(o) = mine
        && let OwnerWhy::Switch { .. } = &o.record.why
        && !memory.started_tokens.contains(&(name.to_string(), o.token))
    {
        if memory.in_flight(name) {
            return None;
        }
        let intent = view.intents.get(name).filter(|i| i.to == me).cloned();
        let reason = match &intent {
            Some(i) => format!("{}: handed to {me}, asked by {}", o.record.why, i.by),
            None => format!("{}: handed to {me}", o.record.why),
        };
        return Some(start(o.record.why.clone(), reason, intent, Some(o.token)));
    }
    // 3. Nobody owns it, and it is the orchestrator's to start.
    if owner.is_some()
        || c.orchestrate == Orchestrate::No
        || frozen
        || view.intents.contains_key(name)
        || !now.ready
    {
        return None;
    }
    let wanted = match (c.orchestrate, target) {
        (_, Some(Target::Stopped)) | (Orchestrate::No, _) => false,
        (Orchestrate::Start, None) | (Orchestrate::Ha, None | Some(Target::Started)) => true,
        (Orchestrate::Start, Some(Target::Started)) => false,
    };
    if !wanted {
        return None;
    }
    // A DR node may run it without etcd, or did (its drp_active mark): see `crate::drp`.
    if view.drp_hold(name).is_some() {
        return None;
    }
    // This node's own recent failure counts at once, before its record says so.
    let failed_here = memory.failed_recently(name, now.ms).is_some();
    let first = view
        .candidates(name, c.nodes)
        .into_iter()
        .find(|n| n != me || !failed_here);
    if first.as_deref() != Some(me) {
        return None;
    }
    match memory.attempts.get(name) {
        Some(Attempt::InFlight) => return None,
        Some(Attempt::Ended(at)) if now.ms.saturating_sub(*at) < RETRY_START_MS => return None,
        _ => {}
    }
    let why = if target == Some(Target::Started) {
        OwnerWhy::Failover
    } else {
        OwnerWhy::Orchestrate
    };
    let last = memory.last_owners.get(name).map(String::as_str);
    let reason = start_reason(&why, last, view, me);
    Some(start(why, reason, None, None))
}

/// Why the orchestrator starts a service here, for the service's log file: a failover names
/// the node that had it, and whether its lease expired (the node is gone from the cluster) or
/// it gave the service up.
pub fn start_reason(
    why: &OwnerWhy,
    last_owner: Option<&str>,
    view: &ClusterView,
    me: &str,
) -> String {
    let from = match last_owner {
        Some(n) if n != me && !view.nodes.contains_key(n) => {
            format!(" from {n}: its lease expired (the node left the cluster)")
        }
        Some(n) if n != me => format!(" from {n}: it gave the service up"),
        Some(_) => ": this node gave it up".to_string(),
        None if *why == OwnerWhy::Failover => ": no node owns it".to_string(),
        None => ": no node owns it yet".to_string(),
    };
    format!("{why}{from}; {me} is the first fit node")
}

/// Why a queued start is dropped when its worker gets to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    /// An operator's action on the service began after the decision.
    #[error("an operator's action on it began after the orchestrator decided")]
    OperatorAction,
    /// Its target is `stopped` now.
    #[error("its target is stopped now")]
    TargetStopped,
    /// It is frozen now.
    #[error("it is frozen now")]
    Frozen,
    /// A switch of it is under way.
    #[error("a switch of it is under way")]
    Intent,
    /// A node owns it now.
    #[error("{node} owns it now")]
    Owned {
        /// The owner.
        node: String,
    },
    /// The ownership the start was to run under is gone.
    #[error("the ownership it was to start under (token {token}) is no longer this node's")]
    NotOurs {
        /// The token.
        token: i64,
    },
    /// This node's lease is not held.
    #[error("this node's lease is not held")]
    LeaseLost,
}

/// Whether `start` of `svc`, decided earlier, still holds against the newest `view` and the
/// service's last action (`last_action_ms`: when it began). Asked by the worker once the
/// service lock is held, before anything is touched.
pub fn recheck(
    svc: &str,
    start: &Start,
    view: &ClusterView,
    me: &str,
    health: Health,
    last_action_ms: Option<u64>,
) -> Result<(), Stale> {
    if !health.held || health.lease == 0 {
        return Err(Stale::LeaseLost);
    }
    if last_action_ms.is_some_and(|at| at > start.decided_ms) {
        return Err(Stale::OperatorAction);
    }
    let owner = view.owners.get(svc);
    match start.token {
        // Under an ownership this node holds (a switch, a fence recovery): it must still be it.
        Some(token) => {
            if !owner
                .is_some_and(|o| o.record.node == me && o.token == token && o.lease == health.lease)
            {
                return Err(Stale::NotOurs { token });
            }
        }
        None => {
            if let Some(o) = owner {
                return Err(Stale::Owned {
                    node: o.record.node.clone(),
                });
            }
            if view.intents.contains_key(svc) {
                return Err(Stale::Intent);
            }
        }
    }
    // An operator's stop or freeze holds over the orchestrator's own starts; a switch asked
    // by an operator goes on.
    if !matches!(start.why, OwnerWhy::Switch { .. }) {
        if view.targets.get(svc) == Some(&Target::Stopped) {
            return Err(Stale::TargetStopped);
        }
        if view.frozen.contains(svc) {
            return Err(Stale::Frozen);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Ownership;
    use crate::records::{NodeRecord, OwnerRecord, ServiceSummary};
    use crate::view::LiveNode;
    use berth_model::Status;

    const ME: &str = "n1";
    const LEASE: i64 = 11;
    const HELD: Health = Health {
        held: true,
        lease: LEASE,
    };
    const NOW: Now = Now {
        ms: 1_000_000,
        ready: true,
    };

    fn order() -> Vec<String> {
        ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect()
    }

    /// A view where `alive` nodes are alive and each has a valid copy of every service of
    /// `svcs`.
    fn view(alive: &[&str], svcs: &[&str]) -> ClusterView {
        let mut v = ClusterView {
            revision: 100,
            ..ClusterView::default()
        };
        for (i, n) in alive.iter().enumerate() {
            let services = svcs
                .iter()
                .map(|s| {
                    (
                        s.to_string(),
                        ServiceSummary {
                            avail: Status::Down,
                            overall: Status::Down,
                            checksum: String::new(),
                            valid: true,
                            nodes: order(),
                            drpnodes: Vec::new(),
                            invalid: None,
                            failed_ms: None,
                            flex: None,
                        },
                    )
                })
                .collect();
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
                        services,
                    },
                    lease: if *n == ME {
                        LEASE
                    } else {
                        20 + i64::try_from(i).unwrap()
                    },
                },
            );
        }
        v
    }

    fn own(v: &mut ClusterView, svc: &str, node: &str, token: i64, why: OwnerWhy) {
        let lease = v.nodes.get(node).map_or(99, |l| l.lease);
        v.owners.insert(
            svc.into(),
            Ownership {
                record: OwnerRecord {
                    node: node.into(),
                    since_ms: 0,
                    why,
                },
                token,
                lease,
            },
        );
    }

    fn intent(id: &str, from: &str, to: &str, token: i64) -> Intent {
        Intent {
            id: id.into(),
            action: IntentAction::Switch,
            to: to.into(),
            from: from.into(),
            token,
            by: "n3".into(),
            lease: 77,
        }
    }

    fn run(v: &ClusterView, orch: Orchestrate, memory: &Memory, now: Now) -> Vec<(String, Step)> {
        let nodes = order();
        let cfgs = [Config {
            name: "web",
            orchestrate: orch,
            nodes: &nodes,
        }];
        plan(v, ME, HELD, &cfgs, memory, now)
    }

    fn the_start(steps: &[(String, Step)]) -> &Start {
        match steps {
            [(svc, Step::Start(s))] if svc == "web" => s,
            other => panic!("not one start of web: {other:?}"),
        }
    }

    #[test]
    fn placement_starts_on_the_first_fit_node_only() {
        let v = view(&["n1", "n2", "n3"], &["web"]);
        let m = Memory::default();
        let s = the_start(&run(&v, Orchestrate::Start, &m, NOW)).clone();
        assert_eq!(s.why, OwnerWhy::Orchestrate);
        assert_eq!(s.token, None);
        assert_eq!(s.decided_at, 100);
        assert_eq!(
            s.reason,
            "orchestrate: no node owns it yet; n1 is the first fit node"
        );
        // n1 is not the first fit node when n1's copy does not load (not valid) ... n2 is.
        let mut v2 = v.clone();
        v2.nodes
            .get_mut("n1")
            .unwrap()
            .record
            .services
            .get_mut("web")
            .unwrap()
            .valid = false;
        assert!(run(&v2, Orchestrate::Start, &m, NOW).is_empty());
        // ... and nothing when n1 is not first in `nodes`.
        let nodes: Vec<String> = vec!["n2".into(), "n1".into()];
        let cfgs = [Config {
            name: "web",
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
        }];
        assert!(plan(&v, ME, HELD, &cfgs, &m, NOW).is_empty());
        // Orchestrate = no: never.
        assert!(run(&v, Orchestrate::No, &m, NOW).is_empty());
    }

    #[test]
    fn owned_services_are_left_alone() {
        let mut v = view(&["n1", "n2"], &["web"]);
        own(&mut v, "web", "n2", 50, OwnerWhy::Orchestrate);
        assert!(run(&v, Orchestrate::Ha, &Memory::default(), NOW).is_empty());
        own(&mut v, "web", ME, 50, OwnerWhy::Action("start".into()));
        assert!(run(&v, Orchestrate::Ha, &Memory::default(), NOW).is_empty());
    }

    #[test]
    fn failover_takes_a_service_whose_owner_is_gone_and_names_it() {
        let mut v = view(&["n1", "n3"], &["web"]);
        v.targets.insert("web".into(), Target::Started);
        let mut m = Memory::default();
        // The last look saw n2 own it; n2 has left since (its lease expired).
        let mut before = v.clone();
        before.nodes.insert("n2".into(), v.nodes["n3"].clone());
        own(&mut before, "web", "n2", 40, OwnerWhy::Orchestrate);
        m.observe(&before, ME, HELD);
        m.observe(&v, ME, HELD);
        let s = the_start(&run(&v, Orchestrate::Ha, &m, NOW)).clone();
        assert_eq!(s.why, OwnerWhy::Failover);
        assert_eq!(
            s.reason,
            "failover from n2: its lease expired (the node left the cluster); n1 is the first fit node"
        );
        // `start` services are started once: not again after their owner went.
        assert!(run(&v, Orchestrate::Start, &m, NOW).is_empty());
    }

    #[test]
    fn an_operators_stop_target_holds() {
        let mut v = view(&["n1"], &["web"]);
        v.targets.insert("web".into(), Target::Stopped);
        for o in [Orchestrate::Start, Orchestrate::Ha] {
            assert!(run(&v, o, &Memory::default(), NOW).is_empty());
        }
    }

    #[test]
    fn frozen_services_and_pending_intents_are_left_alone() {
        let mut v = view(&["n1", "n2"], &["web"]);
        v.frozen.insert("web".into());
        assert!(run(&v, Orchestrate::Ha, &Memory::default(), NOW).is_empty());
        v.frozen.clear();
        v.intents.insert("web".into(), intent("i1", "n2", "n1", 5));
        assert!(run(&v, Orchestrate::Ha, &Memory::default(), NOW).is_empty());
    }

    #[test]
    fn nothing_before_the_ready_period() {
        let v = view(&["n1"], &["web"]);
        let early = Now {
            ready: false,
            ..NOW
        };
        assert!(run(&v, Orchestrate::Ha, &Memory::default(), early).is_empty());
    }

    #[test]
    fn nothing_without_the_lease() {
        let v = view(&["n1"], &["web"]);
        let nodes = order();
        let cfgs = [Config {
            name: "web",
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
        }];
        let lost = Health {
            held: false,
            lease: LEASE,
        };
        assert!(plan(&v, ME, lost, &cfgs, &Memory::default(), NOW).is_empty());
        // Fenced services are neither put back nor given up while the lease is not held.
        let mut v = v;
        own(&mut v, "web", ME, 30, OwnerWhy::Orchestrate);
        let mut m = Memory::default();
        m.apply(Event::FenceStopped("web".into()), NOW.ms);
        assert!(plan(&v, ME, lost, &cfgs, &m, NOW).is_empty());
    }

    #[test]
    fn a_node_that_failed_recently_is_no_candidate() {
        let v = view(&["n1", "n2"], &["web"]);
        let mut m = Memory::default();
        m.apply(Event::StartFailed("web".into()), NOW.ms);
        assert!(run(&v, Orchestrate::Ha, &m, NOW).is_empty());
        assert_eq!(m.failed_recently("web", NOW.ms + 1), Some(NOW.ms));
        let later = Now {
            ms: NOW.ms + FAILOVER_BACKOFF_MS,
            ..NOW
        };
        assert_eq!(m.failed_recently("web", later.ms), None);
        assert_eq!(
            the_start(&run(&v, Orchestrate::Ha, &m, later)).why,
            OwnerWhy::Orchestrate
        );
        // Alone and failed: nobody starts it.
        let alone = view(&["n1"], &["web"]);
        assert!(run(&alone, Orchestrate::Ha, &m, NOW).is_empty());
    }

    /// One start per service per decision, whatever the number of etcd changes: while the
    /// start is in flight, new revisions decide nothing; after it ended, the next try waits.
    #[test]
    fn one_start_per_service_whatever_the_etcd_changes() {
        let mut v = view(&["n1", "n2"], &["web"]);
        let mut m = Memory::default();
        let steps = run(&v, Orchestrate::Start, &m, NOW);
        m.sent("web", &steps[0].1);
        let mut starts = 1;
        for i in 1..=500 {
            v.revision += 1; // another node's record, a freeze of another service...
            let now = Now {
                ms: NOW.ms + i * 10,
                ..NOW
            };
            m.observe(&v, ME, HELD);
            for (svc, step) in run(&v, Orchestrate::Start, &m, now) {
                m.sent(&svc, &step);
                starts += 1;
            }
        }
        assert_eq!(starts, 1);
        // It ended (refused: etcd was slow): tried again only after RETRY_START_MS.
        let end = NOW.ms + 6_000;
        m.apply(Event::StartEnded("web".into()), end);
        let soon = Now {
            ms: end + RETRY_START_MS - 1,
            ..NOW
        };
        assert!(run(&v, Orchestrate::Start, &m, soon).is_empty());
        let later = Now {
            ms: end + RETRY_START_MS,
            ..NOW
        };
        assert_eq!(run(&v, Orchestrate::Start, &m, later).len(), 1);
    }

    /// Many services: each gets exactly one start across many cycles.
    #[test]
    fn placement_of_n_services_is_n_starts() {
        let names: Vec<String> = (0..300).map(|i| format!("s{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut v = view(&["n1", "n2", "n3"], &refs);
        let nodes = order();
        let cfgs: Vec<Config<'_>> = names
            .iter()
            .map(|n| Config {
                name: n,
                orchestrate: Orchestrate::Ha,
                nodes: &nodes,
            })
            .collect();
        let mut m = Memory::default();
        let mut starts = BTreeMap::<String, usize>::new();
        for cycle in 0..50 {
            v.revision += 7;
            let now = Now {
                ms: NOW.ms + cycle * 100,
                ..NOW
            };
            m.observe(&v, ME, HELD);
            for (svc, step) in plan(&v, ME, HELD, &cfgs, &m, now) {
                m.sent(&svc, &step);
                *starts.entry(svc).or_default() += 1;
            }
            // The first starts take the owner key as cycles go by.
            for (i, n) in names
                .iter()
                .enumerate()
                .take(usize::try_from(cycle * 10).unwrap())
            {
                own(
                    &mut v,
                    n,
                    ME,
                    1000 + i64::try_from(i).unwrap(),
                    OwnerWhy::Orchestrate,
                );
            }
        }
        assert_eq!(starts.len(), 300);
        assert!(starts.values().all(|c| *c == 1), "{starts:?}");
    }

    /// A stop after a queued start wins: the start, checked again when its worker gets to
    /// it, finds the operator's action (or the target, or the freeze) and is dropped.
    #[test]
    fn a_stop_after_a_queued_start_wins() {
        let mut v = view(&["n1", "n2"], &["web"]);
        let m = Memory::default();
        let s = the_start(&run(&v, Orchestrate::Ha, &m, NOW)).clone();
        assert_eq!(recheck("web", &s, &v, ME, HELD, None), Ok(()));
        assert_eq!(recheck("web", &s, &v, ME, HELD, Some(NOW.ms - 5)), Ok(()));
        // `svc web stop` ran after the decision (before its target reached the view).
        assert_eq!(
            recheck("web", &s, &v, ME, HELD, Some(NOW.ms + 1)),
            Err(Stale::OperatorAction)
        );
        // Its target reached the view.
        v.targets.insert("web".into(), Target::Stopped);
        assert_eq!(
            recheck("web", &s, &v, ME, HELD, None),
            Err(Stale::TargetStopped)
        );
        v.targets.clear();
        v.frozen.insert("web".into());
        assert_eq!(recheck("web", &s, &v, ME, HELD, None), Err(Stale::Frozen));
        v.frozen.clear();
        own(&mut v, "web", "n2", 60, OwnerWhy::Action("start".into()));
        assert_eq!(
            recheck("web", &s, &v, ME, HELD, None),
            Err(Stale::Owned { node: "n2".into() })
        );
        v.owners.clear();
        let lost = Health {
            held: false,
            lease: LEASE,
        };
        assert_eq!(
            recheck("web", &s, &v, ME, lost, None),
            Err(Stale::LeaseLost)
        );
    }

    #[test]
    fn switch_steps_out_then_in() {
        // n1 owns web; an operator asks it to n2: n1 stops and hands it, once per intent.
        let mut v = view(&["n1", "n2"], &["web"]);
        own(&mut v, "web", ME, 70, OwnerWhy::Orchestrate);
        let i = intent("i1", ME, "n2", 70);
        v.intents.insert("web".into(), i.clone());
        let mut m = Memory::default();
        let steps = run(&v, Orchestrate::No, &m, NOW);
        assert_eq!(steps, vec![("web".to_string(), Step::SwitchOut(i.clone()))]);
        m.sent("web", &steps[0].1);
        assert!(run(&v, Orchestrate::No, &m, NOW).is_empty());
        // An intent of a stale token (the ownership moved since) is not acted on.
        let mut stale = view(&["n1", "n2"], &["web"]);
        own(&mut stale, "web", ME, 71, OwnerWhy::Orchestrate);
        stale.intents.insert("web".into(), i.clone());
        assert!(run(&stale, Orchestrate::No, &Memory::default(), NOW).is_empty());

        // n2 took it from n1 (as seen from n2, here played by "n1" receiving from "n2").
        let mut v = view(&["n1", "n2"], &["web"]);
        own(
            &mut v,
            "web",
            ME,
            80,
            OwnerWhy::Switch { from: "n2".into() },
        );
        let to_me = intent("i2", "n2", ME, 79);
        v.intents.insert("web".into(), to_me.clone());
        let mut m = Memory::default();
        let steps = run(&v, Orchestrate::No, &m, NOW);
        let s = the_start(&steps).clone();
        assert_eq!(s.why, OwnerWhy::Switch { from: "n2".into() });
        assert_eq!(s.token, Some(80));
        assert_eq!(s.intent, Some(to_me));
        assert_eq!(s.reason, "switch from n2: handed to n1, asked by n3");
        assert_eq!(recheck("web", &s, &v, ME, HELD, None), Ok(()));
        m.sent("web", &steps[0].1);
        m.apply(Event::StartEnded("web".into()), NOW.ms);
        // Once per ownership.
        assert!(run(&v, Orchestrate::No, &m, NOW).is_empty());
        // A switch start goes on even with a stopped target (the operator asked for it), but
        // not once the ownership is gone.
        v.targets.insert("web".into(), Target::Stopped);
        assert_eq!(recheck("web", &s, &v, ME, HELD, None), Ok(()));
        v.owners.clear();
        assert_eq!(
            recheck("web", &s, &v, ME, HELD, None),
            Err(Stale::NotOurs { token: 80 })
        );
    }

    #[test]
    fn a_fenced_service_is_put_back_or_given_up_when_the_lease_survived() {
        let mut v = view(&["n1", "n2"], &["web"]);
        own(&mut v, "web", ME, 90, OwnerWhy::Orchestrate);
        let mut m = Memory::default();
        m.apply(Event::FenceStopped("web".into()), NOW.ms);
        m.observe(&v, ME, HELD);
        let steps = run(&v, Orchestrate::Ha, &m, NOW);
        let s = the_start(&steps).clone();
        assert_eq!(s.why, OwnerWhy::FenceRecovery);
        assert_eq!(s.token, Some(90));
        m.sent("web", &steps[0].1);
        assert!(run(&v, Orchestrate::Ha, &m, NOW).is_empty());
        // Not orchestrated (or frozen, or stopped): given up.
        let mut m = Memory::default();
        m.apply(Event::FenceStopped("web".into()), NOW.ms);
        assert_eq!(
            run(&v, Orchestrate::No, &m, NOW),
            vec![("web".to_string(), Step::GiveUp)]
        );
        v.frozen.insert("web".into());
        assert_eq!(
            run(&v, Orchestrate::Ha, &m, NOW),
            vec![("web".to_string(), Step::GiveUp)]
        );
        // Another node owns it now: the mark is dropped, nothing done.
        let mut v = view(&["n1", "n2"], &["web"]);
        own(&mut v, "web", "n2", 95, OwnerWhy::Failover);
        let mut m = Memory::default();
        m.apply(Event::FenceStopped("web".into()), NOW.ms);
        m.observe(&v, ME, HELD);
        assert!(run(&v, Orchestrate::Ha, &m, NOW).is_empty());
        v.owners.clear();
        assert_eq!(
            the_start(&run(&v, Orchestrate::Ha, &m, NOW)).why,
            OwnerWhy::Orchestrate
        );
    }

    #[test]
    fn start_reasons_name_the_last_owner() {
        let v = view(&["n2"], &[]);
        assert_eq!(
            start_reason(&OwnerWhy::Failover, Some("n1"), &v, "n3"),
            "failover from n1: its lease expired (the node left the cluster); n3 is the first fit node"
        );
        assert_eq!(
            start_reason(&OwnerWhy::Failover, Some("n2"), &v, "n3"),
            "failover from n2: it gave the service up; n3 is the first fit node"
        );
        assert_eq!(
            start_reason(&OwnerWhy::Orchestrate, None, &v, "n3"),
            "orchestrate: no node owns it yet; n3 is the first fit node"
        );
    }
}
