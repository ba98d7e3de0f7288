//! Sync resources' decisions and records, pure: who may send, what a receiver refuses, the
//! records kept after each attempt, and the `sync#N` row they make. The drivers and the
//! binaries read the host and etcd, call these, then act.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ServiceConfig, ServiceSettings, Spec, SyncSpec, SyncTarget};
use crate::drp::DrpMark;
use crate::rid::Rid;
use crate::status::{LogEntry, ServiceStatus, Status};

/// How one attempt to one target ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "result", content = "reason")]
pub enum SyncResult {
    /// The copy on the target is the source's as of `time`.
    Ok,
    /// The receiver refused it before any byte was written (the reason is its).
    Refused(String),
    /// The transfer failed (ssh, rsync, killed, timed out: the reason).
    Failed(String),
}

/// One attempt to one target: what the sender records on disk and in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// When it ended, in seconds since the epoch.
    pub time: u64,
    /// Bytes sent (rsync's "Total bytes sent").
    pub bytes: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The sender's fencing token (none outside a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// How it ended.
    #[serde(flatten)]
    pub result: SyncResult,
}

/// A target's records: its last attempt and its last good one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecords {
    /// The last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<SyncRecord>,
    /// The last attempt that ended well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ok: Option<SyncRecord>,
}

impl TargetRecords {
    /// Add an attempt.
    pub fn push(&mut self, rec: SyncRecord) {
        if rec.result == SyncResult::Ok {
            self.last_ok = Some(rec.clone());
        }
        self.last = Some(rec);
    }
}

/// A sync resource's records on the sender, by target node (`<var>/<svc>/sync/<rid>.json`).
pub type SyncRecords = BTreeMap<String, TargetRecords>;

/// What a receiver keeps of the last sync it accepted (`<var>/<svc>/sync/<rid>.received`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The sender.
    pub from: String,
    /// Its fencing token (none outside a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<i64>,
    /// When it was accepted, in seconds since the epoch.
    pub time: u64,
}

/// The target nodes of `spec` seen from `me`: the classes of `only` (or all of the spec's),
/// each node once, never `me`.
pub fn targets(
    settings: &ServiceSettings,
    spec: &SyncSpec,
    me: &str,
    only: Option<SyncTarget>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for class in &spec.target {
        if only.is_some_and(|o| o != *class) {
            continue;
        }
        let nodes = match class {
            SyncTarget::Nodes => &settings.nodes,
            SyncTarget::Drpnodes => &settings.drpnodes,
        };
        for n in nodes {
            if n != me && !out.contains(n) {
                out.push(n.clone());
            }
        }
    }
    out
}

/// Why the receiver refuses a sync: sent back to the sender, for its log and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "refusal")]
pub enum Refusal {
    /// The service runs (or is starting) on the receiver: its copy is live.
    #[error("service {svc} is {status} on {node}: its data is live there")]
    ServiceUp {
        /// The service.
        svc: String,
        /// The receiver.
        node: String,
        /// Its avail there (`up`, `warn`, or `starting`).
        status: String,
    },
    /// `dstfs` is not a mount point on the receiver.
    #[error("dstfs {dstfs} is not a mount point on {node}")]
    NotMounted {
        /// The path.
        dstfs: String,
        /// The receiver.
        node: String,
    },
    /// The sender's token is older than one the receiver accepted (a deposed owner).
    #[error(
        "token {token} of {from} is older than token {accepted} the receiver {node} accepted \
         from {accepted_from}"
    )]
    OlderToken {
        /// The sender.
        from: String,
        /// Its token.
        token: i64,
        /// The receiver.
        node: String,
        /// The newest token accepted.
        accepted: i64,
        /// Who sent it.
        accepted_from: String,
    },
    /// The sender writes elsewhere than the receiver's own `dst` for the resource.
    #[error("the sender writes to {dst}, but {rid} on {node} receives into {expected}")]
    OtherDst {
        /// The resource.
        rid: String,
        /// The path the sender asked for.
        dst: String,
        /// The receiver's `dst`.
        expected: String,
        /// The receiver.
        node: String,
    },
    /// A DR node started the service: no sync may overwrite what it runs on.
    #[error("drp_active: the DR node {} started {svc} (token {}); fail back first", .mark.node, .mark.token)]
    DrpActive {
        /// The service.
        svc: String,
        /// The mark.
        mark: DrpMark,
    },
}

/// What a receiver reads of itself before accepting a sync.
#[derive(Debug, Clone, Default)]
pub struct ReceiverFacts {
    /// The service's avail here (`None`: starting, the service's lock is held by a start).
    pub avail: Option<Status>,
    /// Whether the service's lock is held by a start now.
    pub starting: bool,
    /// `dstfs` and whether it is a mount point here.
    pub dstfs: Option<(String, bool)>,
    /// The last sync accepted.
    pub received: Option<Received>,
    /// The `drp_active` mark, if present.
    pub drp_mark: Option<DrpMark>,
}

/// What a receiver counts as the service running there: its avail when any resource other than
/// its storage (an `ip`, a `container`, a flag: what serves or marks it started) is up or warns,
/// else `down`. The storage alone (an `fs` mounted, a `vg` active) is how a node receives: a DR
/// node keeps its copy mounted (`always_on`), and a primary being failed back to mounts the
/// service's fs by hand for the DR node's `sync update --target nodes`, without starting it.
pub fn receiver_avail(svc: &ServiceConfig, st: &ServiceStatus) -> Status {
    let serving = st.resources.iter().any(|r| {
        matches!(r.status, Status::Up | Status::Warn)
            && svc
                .resource(r.rid)
                .is_some_and(|res| !matches!(res.spec, Spec::Fs(_) | Spec::Vg(_) | Spec::Sync(_)))
    });
    if serving { st.avail } else { Status::Down }
}

/// The receiver's decision: accept a sync from `from` with `token`, or say why not. Checked in
/// this order: drp_active, the service live here, dstfs, the token.
pub fn receive(
    svc: &str,
    node: &str,
    from: &str,
    token: Option<i64>,
    facts: &ReceiverFacts,
) -> Result<(), Refusal> {
    if let Some(mark) = &facts.drp_mark {
        return Err(Refusal::DrpActive {
            svc: svc.to_string(),
            mark: mark.clone(),
        });
    }
    let live = match facts.avail {
        _ if facts.starting => Some("starting".to_string()),
        Some(s @ (Status::Up | Status::Warn)) => Some(s.as_str().to_string()),
        _ => None,
    };
    if let Some(status) = live {
        return Err(Refusal::ServiceUp {
            svc: svc.to_string(),
            node: node.to_string(),
            status,
        });
    }
    if let Some((dstfs, false)) = &facts.dstfs {
        return Err(Refusal::NotMounted {
            dstfs: dstfs.clone(),
            node: node.to_string(),
        });
    }
    if let Some(prev) = &facts.received
        && let Some(accepted) = prev.token
    {
        let older = token.is_none_or(|t| t < accepted);
        if older {
            return Err(Refusal::OlderToken {
                from: from.to_string(),
                token: token.unwrap_or(0),
                node: node.to_string(),
                accepted,
                accepted_from: prev.from.clone(),
            });
        }
    }
    Ok(())
}

/// Why this node does not send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefusal {
    /// Another node owns (runs) the service.
    #[error("{svc} is owned by {owner}, not by {me}: only the node running the service sends")]
    NotOwner {
        /// The service.
        svc: String,
        /// Its owner.
        owner: String,
        /// This node.
        me: String,
    },
    /// Nobody owns it in the cluster.
    #[error("{svc} has no owner in the cluster: only the node running the service sends")]
    NoOwner {
        /// The service.
        svc: String,
    },
    /// Some of its resources are not up here.
    #[error("{svc} is not up on {me}: {} not up", .down.iter().map(|(r, s)| format!("{r} {s}")).collect::<Vec<_>>().join(", "))]
    NotUp {
        /// The service.
        svc: String,
        /// This node.
        me: String,
        /// The resources not up, with their status.
        down: Vec<(Rid, Status)>,
    },
    /// A DR node started the service.
    #[error("drp_active: the DR node {} started {svc}; fail back first", .mark.node)]
    DrpActive {
        /// The service.
        svc: String,
        /// The mark.
        mark: DrpMark,
    },
    /// No target to send to.
    #[error("{rid} has no target node{}", .only.map(|o| format!(" in {}", o.as_str())).unwrap_or_default())]
    NoTarget {
        /// The resource.
        rid: Rid,
        /// The class asked for.
        only: Option<SyncTarget>,
    },
}

/// What a sender reads of itself before sending.
#[derive(Debug, Clone, Default)]
pub struct SenderFacts {
    /// In a cluster: the service's owner and fencing token (`None`: no owner). Outside a
    /// cluster: not asked (`None` here and `clustered` false).
    pub owner: Option<(String, i64)>,
    /// Whether the node is in a cluster.
    pub clustered: bool,
    /// Each ip, vg, fs and container of the service with its status here.
    pub resources: Vec<(Rid, Status)>,
    /// The `drp_active` mark, if present (here or in etcd).
    pub drp_mark: Option<DrpMark>,
}

/// The sender's decision: send (with the token to present, none outside a cluster) or not.
/// A drp_active mark written by this very node (a DR node failing back) does not stop it.
pub fn send(svc: &str, me: &str, facts: &SenderFacts) -> Result<Option<i64>, SendRefusal> {
    if let Some(mark) = &facts.drp_mark
        && mark.node != me
    {
        return Err(SendRefusal::DrpActive {
            svc: svc.to_string(),
            mark: mark.clone(),
        });
    }
    let token = if facts.clustered {
        match &facts.owner {
            None => {
                return Err(SendRefusal::NoOwner {
                    svc: svc.to_string(),
                });
            }
            Some((owner, _)) if owner != me => {
                return Err(SendRefusal::NotOwner {
                    svc: svc.to_string(),
                    owner: owner.clone(),
                    me: me.to_string(),
                });
            }
            Some((_, token)) => Some(*token),
        }
    } else {
        None
    };
    let down: Vec<(Rid, Status)> = facts
        .resources
        .iter()
        .filter(|(_, s)| !matches!(s, Status::Up | Status::StdbyUp))
        .cloned()
        .collect();
    if !down.is_empty() || facts.resources.is_empty() {
        return Err(SendRefusal::NotUp {
            svc: svc.to_string(),
            me: me.to_string(),
            down,
        });
    }
    Ok(token)
}

/// An age as the status says it: `42s`, `5m`, `3h`, `2d`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The `sync#N` row on the sender: `up` when every target synced within `sync_max_delay`,
/// `warn` when one is late (naming it and the age), `down` when one never synced or its last
/// attempt failed (the reason). `now` in seconds since the epoch.
pub fn row(
    spec: &SyncSpec,
    targets: &[String],
    records: &SyncRecords,
    now: u64,
) -> (Status, Vec<LogEntry>) {
    let mut status = Status::NotApplicable;
    let mut log = Vec::new();
    for t in targets {
        let rec = records.get(t);
        let last = rec.and_then(|r| r.last.as_ref());
        let (st, line) = match (last, rec.and_then(|r| r.last_ok.as_ref())) {
            (None, _) => (
                Status::Down,
                LogEntry::error(format!("never synced to {t}")),
            ),
            (
                Some(SyncRecord {
                    result: SyncResult::Refused(why) | SyncResult::Failed(why),
                    time,
                    ..
                }),
                _,
            ) => (
                Status::Down,
                LogEntry::error(format!(
                    "last sync to {t} failed {} ago: {why}",
                    age(Duration::from_secs(now.saturating_sub(*time)))
                )),
            ),
            (Some(_), Some(ok)) => {
                let late = Duration::from_secs(now.saturating_sub(ok.time));
                if late > spec.sync_max_delay {
                    (
                        Status::Warn,
                        LogEntry::warn(format!(
                            "last good sync to {t} was {} ago (sync_max_delay {})",
                            age(late),
                            age(spec.sync_max_delay)
                        )),
                    )
                } else {
                    (
                        Status::Up,
                        LogEntry::info(format!(
                            "{t}: synced {} ago, {} bytes sent",
                            age(late),
                            ok.bytes
                        )),
                    )
                }
            }
            // A last attempt that is Ok is also the last good one.
            (Some(_), None) => (
                Status::Down,
                LogEntry::error(format!("never synced to {t}")),
            ),
        };
        // The worst target decides: one never synced or failed is down, whatever the others.
        let rank = |s: Status| match s {
            Status::Down => 3,
            Status::Warn => 2,
            Status::Up => 1,
            _ => 0,
        };
        if rank(st) > rank(status) {
            status = st;
        }
        log.push(line);
    }
    if targets.is_empty() {
        log.push(LogEntry::info("no target node"));
    }
    (status, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Schedule;
    use crate::status::{Flags, ResourceStatus};

    #[test]
    fn a_receiver_with_only_its_storage_up_is_not_running_the_service() {
        let svc = ServiceConfig::parse(
            std::path::Path::new("web.toml"),
            "[ip.1]\nipname = \"10.0.0.9\"\nipdev = \"eth0\"\nnetmask = 24\n\n\
             [fs.1]\ndev = \"/dev/sdb\"\nmnt = \"/srv/web\"\ntype = \"ext4\"\n",
        )
        .unwrap();
        let st = |ip: Status, fs: Status| {
            let res = |rid: &str, status| ResourceStatus {
                network: None,
                rid: rid.parse().unwrap(),
                status,
                label: String::new(),
                flags: Flags::default(),
                log: vec![],
            };
            ServiceStatus::from_resources(
                "web".into(),
                vec![res("ip#1", ip), res("fs#1", fs)],
                false,
            )
        };
        // The fs mounted to receive (a primary being failed back to): not running.
        assert_eq!(
            receiver_avail(&svc, &st(Status::Down, Status::Up)),
            Status::Down
        );
        // Its address up: the service runs (partly) there.
        assert_eq!(
            receiver_avail(&svc, &st(Status::Up, Status::Down)),
            Status::Warn
        );
        assert_eq!(
            receiver_avail(&svc, &st(Status::Up, Status::Up)),
            Status::Up
        );
        assert_eq!(
            receiver_avail(&svc, &st(Status::Down, Status::Down)),
            Status::Down
        );
    }

    fn spec() -> SyncSpec {
        SyncSpec {
            src: "/srv/web/".into(),
            dst: "/srv/web/".into(),
            dstfs: Some("/srv/web".into()),
            target: vec![SyncTarget::Nodes, SyncTarget::Drpnodes],
            schedule: Schedule::Every(60),
            sync_max_delay: Duration::from_secs(3600),
            exclude: vec![],
            bwlimit: None,
            timeout: None,
            options: vec![],
        }
    }

    fn rec(time: u64, result: SyncResult) -> SyncRecord {
        SyncRecord {
            time,
            bytes: 10,
            duration_ms: 5,
            token: Some(7),
            result,
        }
    }

    #[test]
    fn targets_are_the_classes_without_the_sender() {
        let settings = ServiceSettings {
            nodes: vec!["n1".into(), "n2".into()],
            drpnodes: vec!["n3".into()],
            ..Default::default()
        };
        let s = spec();
        assert_eq!(targets(&settings, &s, "n1", None), ["n2", "n3"]);
        assert_eq!(
            targets(&settings, &s, "n3", Some(SyncTarget::Nodes)),
            ["n1", "n2"]
        );
        assert_eq!(
            targets(&settings, &s, "n1", Some(SyncTarget::Drpnodes)),
            ["n3"]
        );
    }

    #[test]
    fn the_row_is_up_late_or_down_per_target() {
        let s = spec();
        let t = vec!["n2".to_string(), "n3".to_string()];
        let mut recs = SyncRecords::new();
        let (st, log) = row(&s, &t, &recs, 10_000);
        assert_eq!(st, Status::Down);
        assert!(log[0].message.contains("never synced to n2"));
        recs.entry("n2".into())
            .or_default()
            .push(rec(9_000, SyncResult::Ok));
        recs.entry("n3".into())
            .or_default()
            .push(rec(9_500, SyncResult::Ok));
        assert_eq!(row(&s, &t, &recs, 10_000).0, Status::Up);
        // n2 late: warn, naming it.
        let (st, log) = row(&s, &t, &recs, 9_000 + 3_700);
        assert_eq!(st, Status::Warn);
        assert!(log[0].message.contains("n2") && log[0].message.contains("61m"));
        // n3's last attempt failed: down with the reason, even though an older one was good.
        recs.get_mut("n3").unwrap().push(rec(
            9_900,
            SyncResult::Failed("ssh: connection refused".into()),
        ));
        let (st, log) = row(&s, &t, &recs, 10_000);
        assert_eq!(st, Status::Down);
        assert!(log[1].message.contains("connection refused"));
    }

    #[test]
    fn a_receiver_refuses_each_case_and_accepts_a_newer_token() {
        let mark = DrpMark {
            node: "n3".into(),
            time: 1,
            token: 0,
        };
        let ok = ReceiverFacts {
            avail: Some(Status::Down),
            dstfs: Some(("/srv/web".into(), true)),
            received: Some(Received {
                from: "n1".into(),
                token: Some(10),
                time: 1,
            }),
            ..Default::default()
        };
        assert_eq!(receive("web", "n3", "n2", Some(10), &ok), Ok(()));
        assert_eq!(receive("web", "n3", "n2", Some(11), &ok), Ok(()));
        assert!(matches!(
            receive("web", "n3", "n1", Some(9), &ok),
            Err(Refusal::OlderToken { accepted: 10, .. })
        ));
        let up = ReceiverFacts {
            avail: Some(Status::Up),
            ..ok.clone()
        };
        assert!(matches!(
            receive("web", "n3", "n1", Some(11), &up),
            Err(Refusal::ServiceUp { .. })
        ));
        let starting = ReceiverFacts {
            starting: true,
            ..ok.clone()
        };
        assert!(matches!(
            receive("web", "n3", "n1", Some(11), &starting),
            Err(Refusal::ServiceUp { .. })
        ));
        let unmounted = ReceiverFacts {
            dstfs: Some(("/srv/web".into(), false)),
            ..ok.clone()
        };
        let e = receive("web", "n3", "n1", Some(11), &unmounted).unwrap_err();
        assert_eq!(e.to_string(), "dstfs /srv/web is not a mount point on n3");
        let marked = ReceiverFacts {
            drp_mark: Some(mark),
            ..ok
        };
        assert!(matches!(
            receive("web", "n3", "n1", Some(11), &marked),
            Err(Refusal::DrpActive { .. })
        ));
    }

    #[test]
    fn only_the_owner_with_everything_up_sends() {
        let rid = |s: &str| s.parse::<Rid>().unwrap();
        let up = vec![(rid("ip#1"), Status::Up), (rid("fs#1"), Status::Up)];
        let facts = SenderFacts {
            owner: Some(("n1".into(), 42)),
            clustered: true,
            resources: up.clone(),
            drp_mark: None,
        };
        assert_eq!(send("web", "n1", &facts), Ok(Some(42)));
        assert!(matches!(
            send("web", "n2", &facts),
            Err(SendRefusal::NotOwner { .. })
        ));
        let down = SenderFacts {
            resources: vec![(rid("ip#1"), Status::Up), (rid("fs#1"), Status::Down)],
            ..facts.clone()
        };
        let e = send("web", "n1", &down).unwrap_err();
        assert_eq!(e.to_string(), "web is not up on n1: fs#1 down not up");
        let alone = SenderFacts {
            owner: None,
            clustered: false,
            ..facts.clone()
        };
        assert_eq!(send("web", "n1", &alone), Ok(None));
        let marked = SenderFacts {
            drp_mark: Some(DrpMark {
                node: "n3".into(),
                time: 1,
                token: 0,
            }),
            ..facts.clone()
        };
        assert!(matches!(
            send("web", "n1", &marked),
            Err(SendRefusal::DrpActive { .. })
        ));
        // The DR node failing back sends despite its own mark.
        let failback = SenderFacts {
            owner: Some(("n3".into(), 50)),
            drp_mark: Some(DrpMark {
                node: "n3".into(),
                time: 1,
                token: 0,
            }),
            ..facts
        };
        assert_eq!(send("web", "n3", &failback), Ok(Some(50)));
    }
}
