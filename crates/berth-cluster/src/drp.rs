//! DR nodes (`drpnodes`) and the `drp_active` mark: what a start on a node of a service with DR
//! nodes may do, decided by pure functions ([`start_check`], [`ClusterView::drp_hold`]), and
//! the mark kept in the service's var dir (`<var>/<svc>/drp_active`) and in etcd
//! (`services/<svc>/drp_active`, not leased).
//!
//! - A DR node is never a candidate of the orchestrator (it is not in `nodes`); an operator's
//!   start there is refused while the service has an owner, and with no owner it takes the
//!   owner key as any start does.
//! - With etcd unreachable from the DR node, only `svc SVC start --force` starts it there; it
//!   writes the mark (token 0), which svcd publishes once etcd answers again, then takes the owner
//!   key if it is free.
//! - While the mark stands (in etcd, or in a primary node's own var dir), the nodes of `nodes`
//!   refuse to start the service (and to sync it), naming the DR node, until the fail-back: a
//!   `switch` from the DR node clears the mark.
//! - While the service has no owner and one of its DR nodes is unreachable (no node key), the
//!   orchestrator starts it nowhere: the DR node may have taken it over without etcd. An
//!   operator's start on a primary node then needs `--force`.

use std::path::Path;

use berth_model::ServiceConfig;
use berth_model::drp::{DrpMark, DrpMarkError};
use berth_model::paths::Paths;

use crate::view::ClusterView;
use crate::{ClusterError, Store};

/// A mark file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// The file cannot be read, written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no mark.
    #[error("{path}: {source}")]
    Bad {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: DrpMarkError,
    },
}

/// This node's own mark for `svc`, if any.
pub fn read_local(paths: &Paths, svc: &str) -> Result<Option<DrpMark>, MarkError> {
    let path = paths.drp_mark(svc);
    match std::fs::read_to_string(&path) {
        Ok(text) => DrpMark::parse(&text)
            .map(Some)
            .map_err(|source| MarkError::Bad { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MarkError::Io { path, source }),
    }
}

/// Write the mark (a temp file, fsync, rename).
pub fn write_local(paths: &Paths, svc: &str, mark: &DrpMark) -> Result<(), MarkError> {
    let path = paths.drp_mark(svc);
    let io = |source, path: &Path| MarkError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = paths.service_var(svc);
    std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
    let tmp = dir.join(".drp_active.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(mark.to_json().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| io(e, &path))
}

/// Remove this node's mark; `Ok(true)` when there was one.
pub fn clear_local(paths: &Paths, svc: &str) -> Result<bool, MarkError> {
    let path = paths.drp_mark(svc);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(MarkError::Io { path, source }),
    }
}

/// What a node is to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// In its `nodes`.
    Primary,
    /// In its `drpnodes` (and not in `nodes`).
    Drp,
    /// Neither.
    Outside,
}

/// What `me` is to `svc`.
pub fn role(svc: &ServiceConfig, me: &str) -> Role {
    if svc.settings.nodes.iter().any(|n| n == me) {
        Role::Primary
    } else if svc.settings.drpnodes.iter().any(|n| n == me) {
        Role::Drp
    } else {
        Role::Outside
    }
}

/// What a start on a node needs to know of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartFacts {
    /// The service's owner.
    pub owner: Option<String>,
    /// The `drp_active` mark (etcd's, else this node's file).
    pub mark: Option<DrpMark>,
    /// The service's DR nodes that have no node key (dead or cut off).
    pub unreachable_drp: Vec<String>,
}

/// Whether a start of `svc` on `me` may go on (before the owner key is taken), with
/// `--force` or not. Pure.
pub fn start_check(
    svc: &ServiceConfig,
    me: &str,
    facts: &StartFacts,
    force: bool,
) -> Result<(), String> {
    let name = &svc.name;
    match role(svc, me) {
        Role::Outside => Ok(()),
        Role::Drp => {
            if let Some(o) = facts.owner.as_deref().filter(|o| *o != me) {
                return Err(format!(
                    "{name} is running on {o}: a start on DR node {me} is refused while the \
                     service has an owner (stop it on {o} first, or `svc {name} switch --to {me}`)"
                ));
            }
            if let Some(m) = facts.mark.as_ref().filter(|m| m.node != me) {
                return Err(format!(
                    "{name} was started on DR node {} (drp_active): fail back from there first",
                    m.node
                ));
            }
            Ok(())
        }
        Role::Primary => {
            if let Some(m) = facts.mark.as_ref() {
                return Err(format!(
                    "{name} was started on DR node {} (drp_active, {}): {me} refuses to start \
                     it until the fail-back: mount its data here to receive (its fs, by hand), \
                     on {} `svc {name} sync update --target nodes`, unmount, then \
                     `svc {name} switch --to {me}` (docs/drp.md)",
                    m.node,
                    crate::format_ms(m.time.saturating_mul(1000)),
                    m.node
                ));
            }
            if facts.owner.is_none() && !facts.unreachable_drp.is_empty() && !force {
                return Err(format!(
                    "DR node {} of {name} is unreachable (no node key in etcd): it may have \
                     started {name} without etcd; start it with --force once you know it did not",
                    facts.unreachable_drp.join(", ")
                ));
            }
            Ok(())
        }
    }
}

impl ClusterView {
    /// The DR nodes of `svc`, as the nodes that have it publish them.
    pub fn drp_nodes(&self, svc: &str) -> Vec<String> {
        self.nodes
            .values()
            .filter_map(|n| n.record.services.get(svc))
            .map(|s| s.drpnodes.clone())
            .find(|n| !n.is_empty())
            .unwrap_or_default()
    }

    /// Why the orchestrator starts `svc` nowhere because of its DR nodes: a `drp_active` mark,
    /// or (with no owner) a DR node without a node key, which may run it without etcd.
    pub fn drp_hold(&self, svc: &str) -> Option<String> {
        if let Some(m) = self.drp_active.get(svc) {
            return Some(format!("drp_active: started on DR node {}", m.node));
        }
        if self.owners.contains_key(svc) {
            return None;
        }
        let down: Vec<String> = self
            .drp_nodes(svc)
            .into_iter()
            .filter(|n| !self.alive(n))
            .collect();
        if down.is_empty() {
            return None;
        }
        Some(format!(
            "DR node {} unreachable: it may run {svc} without etcd (start by hand with --force)",
            down.join(", ")
        ))
    }
}

impl Store {
    /// The `drp_active` mark of `svc` in etcd.
    pub async fn drp_mark(&self, svc: &str) -> Result<Option<DrpMark>, ClusterError> {
        let key = self.keys().drp_active(svc);
        let resp = self
            .call(format!("get {key}"), |mut c| {
                let k = key.clone();
                async move { c.get(k, None).await }
            })
            .await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => DrpMark::parse(&String::from_utf8_lossy(kv.value()))
                .map(Some)
                .map_err(|e| ClusterError::Decode {
                    key,
                    why: e.to_string(),
                }),
        }
    }

    /// Publish the mark (not leased: it outlives the DR node's lease).
    pub async fn put_drp_mark(&self, svc: &str, mark: &DrpMark) -> Result<(), ClusterError> {
        let key = self.keys().drp_active(svc);
        self.call(format!("put {key}"), |mut c| {
            let (k, v) = (key.clone(), mark.to_json());
            async move { c.put(k, v, None).await }
        })
        .await?;
        Ok(())
    }

    /// Remove the mark from etcd (the fail-back).
    pub async fn clear_drp_mark(&self, svc: &str) -> Result<(), ClusterError> {
        let key = self.keys().drp_active(svc);
        self.call(format!("delete {key}"), |mut c| {
            let k = key.clone();
            async move { c.delete(k, None).await }
        })
        .await?;
        Ok(())
    }

    /// The `drp_active` mark this node must honour for `svc`: its own file's, else etcd's.
    /// What a sync sender checks before it sends (a node of `nodes` never overwrites the DR
    /// copy after the DR side took over). An unreadable file is an error, not "no mark".
    pub async fn drp_active(
        &self,
        paths: &Paths,
        svc: &str,
    ) -> Result<Option<DrpMark>, ClusterError> {
        if let Some(m) = read_local(paths, svc).map_err(|e| ClusterError::Decode {
            key: paths.drp_mark(svc).display().to_string(),
            why: e.to_string(),
        })? {
            return Ok(Some(m));
        }
        self.drp_mark(svc).await
    }

    /// Whether etcd answers (one read of a key).
    pub async fn reachable(&self) -> Result<(), ClusterError> {
        let key = self.keys().node(self.node());
        self.call(format!("get {key}"), |mut c| {
            let k = key.clone();
            async move { c.get(k, None).await }
        })
        .await?;
        Ok(())
    }

    /// The facts a start of `svc` on this node checks ([`start_check`]): the owner, the mark
    /// (etcd's, else the local file's, when `paths` is given), and, for a primary node with no
    /// owner, the DR nodes without a node key.
    pub async fn start_facts(
        &self,
        svc: &ServiceConfig,
        paths: Option<&Paths>,
    ) -> Result<StartFacts, ClusterError> {
        let owner = self.owner(&svc.name).await?.map(|o| o.record.node);
        let mut mark = self.drp_mark(&svc.name).await?;
        if mark.is_none()
            && let Some(p) = paths
        {
            mark = read_local(p, &svc.name).map_err(|e| ClusterError::Decode {
                key: p.drp_mark(&svc.name).display().to_string(),
                why: e.to_string(),
            })?;
        }
        let mut unreachable_drp = Vec::new();
        if owner.is_none() && role(svc, self.node()) == Role::Primary {
            for n in &svc.settings.drpnodes {
                if self.node_record(n).await?.is_none() {
                    unreachable_drp.push(n.clone());
                }
            }
        }
        Ok(StartFacts {
            owner,
            mark,
            unreachable_drp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{NodeRecord, OwnerRecord, OwnerWhy, Ownership, ServiceSummary};
    use crate::view::LiveNode;
    use berth_model::Status;

    fn svc() -> ServiceConfig {
        ServiceConfig::parse(
            Path::new("web.toml"),
            "[service]\nnodes = [\"n1\", \"n2\"]\ndrpnodes = [\"n3\"]\n",
        )
        .unwrap()
    }

    fn mark() -> DrpMark {
        DrpMark {
            node: "n3".into(),
            time: 1_800_000_000,
            token: 0,
        }
    }

    #[test]
    fn a_dr_start_is_refused_while_an_owner_exists_and_goes_on_without_one() {
        let s = svc();
        let owned = StartFacts {
            owner: Some("n1".into()),
            ..StartFacts::default()
        };
        let e = start_check(&s, "n3", &owned, true).unwrap_err();
        assert!(
            e.contains("running on n1") && e.contains("DR node n3"),
            "{e}"
        );
        assert_eq!(start_check(&s, "n3", &StartFacts::default(), false), Ok(()));
        // Its own mark does not stop the DR node.
        let marked = StartFacts {
            mark: Some(mark()),
            ..StartFacts::default()
        };
        assert_eq!(start_check(&s, "n3", &marked, false), Ok(()));
    }

    #[test]
    fn a_primary_refuses_while_the_mark_stands_even_forced_naming_the_dr_node() {
        let s = svc();
        let marked = StartFacts {
            mark: Some(mark()),
            ..StartFacts::default()
        };
        for force in [false, true] {
            let e = start_check(&s, "n1", &marked, force).unwrap_err();
            assert!(
                e.contains("DR node n3")
                    && e.contains("svc web sync update --target nodes")
                    && e.contains("svc web switch --to n1"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_unreachable_dr_node_needs_force_on_a_primary_when_nobody_owns_it() {
        let s = svc();
        let facts = StartFacts {
            unreachable_drp: vec!["n3".into()],
            ..StartFacts::default()
        };
        let e = start_check(&s, "n1", &facts, false).unwrap_err();
        assert!(e.contains("DR node n3") && e.contains("--force"), "{e}");
        assert_eq!(start_check(&s, "n1", &facts, true), Ok(()));
        // An owner (the service runs, say on n2): the owner key decides, not this check.
        let owned = StartFacts {
            owner: Some("n2".into()),
            ..facts
        };
        assert_eq!(start_check(&s, "n1", &owned, false), Ok(()));
        assert_eq!(start_check(&s, "n9", &StartFacts::default(), false), Ok(()));
    }

    fn view(alive: &[&str]) -> ClusterView {
        let mut v = ClusterView::default();
        for n in alive {
            let mut record = NodeRecord {
                name: n.to_string(),
                version: "0".into(),
                listen: String::new(),
                address: String::new(),
                since_ms: 0,
                updated_ms: 0,
                services: Default::default(),
            };
            record.services.insert(
                "web".into(),
                ServiceSummary {
                    avail: Status::Down,
                    overall: Status::Down,
                    checksum: String::new(),
                    valid: true,
                    nodes: vec!["n1".into(), "n2".into()],
                    drpnodes: vec!["n3".into()],
                    invalid: None,
                    failed_ms: None,
                    flex: None,
                },
            );
            v.nodes.insert(n.to_string(), LiveNode { record, lease: 1 });
        }
        v
    }

    #[test]
    fn the_orchestrator_holds_while_a_dr_node_is_unreachable_or_the_mark_stands() {
        assert_eq!(view(&["n1", "n2", "n3"]).drp_hold("web"), None);
        let v = view(&["n1", "n2"]);
        let why = v.drp_hold("web").unwrap();
        assert!(why.contains("DR node n3 unreachable"), "{why}");
        // The planner says so too, and starts nothing.
        let mut owned = v.clone();
        owned.owners.insert(
            "web".into(),
            Ownership {
                record: OwnerRecord {
                    node: "n1".into(),
                    since_ms: 0,
                    why: OwnerWhy::Orchestrate,
                },
                token: 5,
                lease: 1,
            },
        );
        assert_eq!(owned.drp_hold("web"), None);
        let mut marked = view(&["n1", "n2", "n3"]);
        marked.drp_active.insert("web".into(), mark());
        assert!(marked.drp_hold("web").unwrap().contains("DR node n3"));
        assert!(
            v.why_not("web", 0)["n1"].contains("DR node n3 unreachable"),
            "{:?}",
            v.why_not("web", 0)
        );
    }

    #[test]
    fn the_planner_never_starts_on_a_dr_node_and_holds_while_one_is_unreachable() {
        use crate::plan::{Config, Health, Memory, Now, Step, plan};
        use berth_model::config::Orchestrate;
        let nodes = ["n1".to_string(), "n2".to_string()];
        let cfg = [Config {
            name: "web",
            orchestrate: Orchestrate::Ha,
            nodes: &nodes,
        }];
        let health = Health {
            held: true,
            lease: 1,
        };
        let now = Now {
            ms: 1_000_000,
            ready: true,
        };
        let memory = Memory::default();
        // Everyone alive: n1 starts it.
        let steps = plan(&view(&["n1", "n2", "n3"]), "n1", health, &cfg, &memory, now);
        assert!(
            matches!(steps.as_slice(), [(s, Step::Start(_))] if s == "web"),
            "{steps:?}"
        );
        // The primary site lost: the DR node never starts it by itself.
        assert!(plan(&view(&["n3"]), "n3", health, &cfg, &memory, now).is_empty());
        // The DR node unreachable: nobody starts it.
        assert!(plan(&view(&["n1", "n2"]), "n1", health, &cfg, &memory, now).is_empty());
        // The mark stands: nobody starts it either.
        let mut marked = view(&["n1", "n2", "n3"]);
        marked.drp_active.insert("web".into(), mark());
        assert!(plan(&marked, "n1", health, &cfg, &memory, now).is_empty());
        assert_eq!(
            view(&["n1", "n2", "n3"]).why_not("web", 0)["n3"],
            "DR node: started by hand only"
        );
    }

    #[test]
    fn the_mark_file_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        assert!(read_local(&paths, "web").unwrap().is_none());
        write_local(&paths, "web", &mark()).unwrap();
        assert_eq!(read_local(&paths, "web").unwrap(), Some(mark()));
        assert!(clear_local(&paths, "web").unwrap());
        assert!(!clear_local(&paths, "web").unwrap());
        std::fs::write(paths.drp_mark("web"), "garbage").unwrap();
        read_local(&paths, "web").unwrap_err();
    }
}
