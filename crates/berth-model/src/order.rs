//! The start order and resource selection (`--rid`, `--tags`, partial actions).

use std::collections::BTreeSet;

use crate::config::{Resource, ServiceConfig, Spec};
use crate::rid::{Kind, Rid, RidError, RidId};

/// The start order: ip, vg, fs by mount point depth (a parent before its children), then the
/// containers by index (then named ones by name), each after what it depends on (`start_requires`, `netns`, `links`), a
/// netns ip right after its container. Stop walks it reversed.
pub fn start_order(svc: &ServiceConfig) -> Vec<Rid> {
    let in_stack = |r: &Resource| match &r.spec {
        Spec::Container(_) => true,
        Spec::Ip(ip) => ip.netns.is_some(),
        _ => false,
    };
    // A sync resource is run by the sync actions, never by a start or a stop.
    let resources = || {
        svc.resources
            .iter()
            .filter(|r| r.rid.kind.runs_with_service())
    };
    let stack: Vec<Rid> = resources().filter(|r| in_stack(r)).map(|r| r.rid).collect();
    let mut keyed: Vec<(u8, usize, RidId, Rid)> = resources()
        .filter(|r| !in_stack(r))
        .map(|r| {
            let depth = match &r.spec {
                Spec::Fs(fs) => fs.depth(),
                _ => 0,
            };
            (r.rid.kind.start_rank(), depth, r.rid.id, r.rid)
        })
        .collect();
    keyed.sort();
    let mut order: Vec<Rid> = keyed.into_iter().map(|k| k.3).collect();
    order.extend(crate::config::order_stack(svc, &stack));
    order
}

/// The stop order: the start order reversed.
pub fn stop_order(svc: &ServiceConfig) -> Vec<Rid> {
    let mut order = start_order(svc);
    order.reverse();
    order
}

/// The actions berth runs on a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Bring resources up, in order.
    Start,
    /// Bring resources down, in reverse order.
    Stop,
    /// Stop, then start.
    Restart,
}

impl Action {
    /// Its name (`start`, `stop`, `restart`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// Which resources an action touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `--rid`: only these.
    pub rids: Option<BTreeSet<Rid>>,
    /// `--tags`: any group matches; within a group (`a+b`), every tag must be present.
    pub tags: Option<Vec<BTreeSet<String>>>,
    /// A partial action (`startfs`): only these kinds.
    pub kinds: Option<BTreeSet<Kind>>,
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A bad rid in `--rid`.
    #[error("--rid: {0}")]
    Rid(#[from] RidError),
    /// `--rid` names a resource the service does not have.
    #[error("--rid: service {svc} has no resource {rid}")]
    NoSuchRid {
        /// The service.
        svc: String,
        /// The rid.
        rid: Rid,
    },
    /// An empty `--tags`.
    #[error("--tags: expected tags separated by ',' (any) or '+' (all), got {0:?}")]
    Tags(String),
    /// `--tags` selects no resource of the service: the action would do nothing.
    #[error("--tags {tags}: no resource of service {svc} matches{}", if *.narrowed { " (with the other options of the action)" } else { "" })]
    NoTagMatch {
        /// The service.
        svc: String,
        /// The tags as given (groups joined by `,`, tags of a group by `+`).
        tags: String,
        /// Some resource has the tags, but `--rid` or the partial action leaves none of them.
        narrowed: bool,
    },
}

impl Selector {
    /// Parse `--rid ip#1,fs#1`.
    pub fn with_rids(mut self, list: &str) -> Result<Self, SelectorError> {
        let rids = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<BTreeSet<Rid>, _>>()?;
        if rids.is_empty() {
            // `--rid ""` would select nothing and report success having done nothing.
            return Err(RidError::Shape(list.to_string()).into());
        }
        self.rids = Some(rids);
        Ok(self)
    }

    /// Parse `--tags a,b+c`.
    pub fn with_tags(mut self, spec: &str) -> Result<Self, SelectorError> {
        let groups: Vec<BTreeSet<String>> = spec
            .split(',')
            .map(|g| {
                g.split('+')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .filter(|g: &BTreeSet<String>| !g.is_empty())
            .collect();
        if groups.is_empty() {
            return Err(SelectorError::Tags(spec.to_string()));
        }
        self.tags = Some(groups);
        Ok(self)
    }

    /// A selector from the options of an action: `--rid`, `--tags`, and a partial action's kinds.
    pub fn from_options(
        rids: Option<&str>,
        tags: Option<&str>,
        kinds: Option<Vec<Kind>>,
    ) -> Result<Self, SelectorError> {
        let mut sel = Selector::default();
        if let Some(rids) = rids {
            sel = sel.with_rids(rids)?;
        }
        if let Some(tags) = tags {
            sel = sel.with_tags(tags)?;
        }
        if let Some(kinds) = kinds {
            sel = sel.with_kinds(kinds);
        }
        Ok(sel)
    }

    /// Restrict to the kinds of a partial action.
    pub fn with_kinds(mut self, kinds: impl IntoIterator<Item = Kind>) -> Self {
        self.kinds = Some(kinds.into_iter().collect());
        self
    }

    /// Check every `--rid` exists in the service.
    pub fn check(&self, svc: &ServiceConfig) -> Result<(), SelectorError> {
        for rid in self.rids.iter().flatten() {
            if svc.resource(*rid).is_none() {
                return Err(SelectorError::NoSuchRid {
                    svc: svc.name.clone(),
                    rid: *rid,
                });
            }
        }
        if let Some(groups) = &self.tags
            && !svc.resources.iter().any(|r| self.matches(r))
        {
            let tagged = Selector {
                tags: self.tags.clone(),
                ..Selector::default()
            };
            let tags: Vec<String> = groups
                .iter()
                .map(|g| g.iter().cloned().collect::<Vec<_>>().join("+"))
                .collect();
            return Err(SelectorError::NoTagMatch {
                svc: svc.name.clone(),
                tags: tags.join(","),
                narrowed: svc.resources.iter().any(|r| tagged.matches(r)),
            });
        }
        Ok(())
    }

    /// Whether no criterion is set (the whole service).
    pub fn is_all(&self) -> bool {
        self.rids.is_none() && self.tags.is_none() && self.kinds.is_none()
    }

    /// Whether `res` is selected.
    pub fn matches(&self, res: &Resource) -> bool {
        self.rids.as_ref().is_none_or(|r| r.contains(&res.rid))
            && self
                .kinds
                .as_ref()
                .is_none_or(|k| k.contains(&res.rid.kind))
            && self
                .tags
                .as_ref()
                .is_none_or(|groups| groups.iter().any(|g| g.is_subset(&res.common.tags)))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn svc(text: &str) -> ServiceConfig {
        ServiceConfig::parse(Path::new("/etc/berth/services/web.toml"), text).unwrap()
    }

    const SEED_LIKE: &str = r#"
[container.1]
run_image = "busybox"
[fs.2]
dev = "/dev/vg/data"
mnt = "/srv/web/appdata"
type = "ext4"
tags = ["data"]
[fs.1]
dev = "/dev/vg/root"
mnt = "/srv/web"
type = "ext4"
tags = ["root", "data"]
[ip.1]
ipdev = "eth0"
ipname = "192.0.2.10"
[vg.1]
vgname = "vgweb"
[fs.3]
dev = "/dev/vg/logs"
mnt = "/srv"
type = "ext4"
"#;

    /// A partial action's engine action and kinds, from the action table.
    fn partial(name: &str) -> (Action, Vec<Kind>) {
        let (action, kinds) = crate::action::ServiceAction::from_name(name)
            .and_then(crate::action::ServiceAction::engine)
            .unwrap();
        (action, kinds.unwrap())
    }

    fn names(rids: &[Rid]) -> Vec<String> {
        rids.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn start_order_is_ip_vg_fs_by_depth_containers() {
        let s = svc(SEED_LIKE);
        assert_eq!(
            names(&start_order(&s)),
            ["ip#1", "vg#1", "fs#3", "fs#1", "fs#2", "container#1"]
        );
        assert_eq!(
            names(&stop_order(&s)),
            ["container#1", "fs#2", "fs#1", "fs#3", "vg#1", "ip#1"]
        );
    }

    fn selected(s: &ServiceConfig, sel: &Selector) -> Vec<String> {
        let order = start_order(s);
        names(
            &order
                .into_iter()
                .filter(|rid| sel.matches(s.resource(*rid).unwrap()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn named_rids_are_selected_and_ordered_with_their_kind() {
        let s = svc(
            "[container.db]\nrun_image = \"postgres\"\n[container.1]\nrun_image = \"a\"\n\
             [fs.app]\ndev = \"/dev/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\n",
        );
        assert_eq!(
            names(&start_order(&s)),
            ["fs#app", "container#1", "container#db"]
        );
        let by_rid = Selector::default().with_rids("container#db").unwrap();
        assert_eq!(selected(&s, &by_rid), ["container#db"]);
        Selector::default().with_rids("container#nope").unwrap();
    }

    #[test]
    fn selectors() {
        let s = svc(SEED_LIKE);
        let by_rid = Selector::default().with_rids("fs#1, ip#1").unwrap();
        assert_eq!(selected(&s, &by_rid), ["ip#1", "fs#1"]);
        let any = Selector::default().with_tags("root").unwrap();
        assert_eq!(selected(&s, &any), ["fs#1"]);
        let any2 = Selector::default().with_tags("data").unwrap();
        assert_eq!(selected(&s, &any2), ["fs#1", "fs#2"]);
        let all = Selector::default().with_tags("data+root").unwrap();
        assert_eq!(selected(&s, &all), ["fs#1"]);
        let (action, kinds) = partial("startfs");
        assert_eq!(action, Action::Start);
        let fs = Selector::default().with_kinds(kinds);
        assert_eq!(selected(&s, &fs), ["vg#1", "fs#3", "fs#1", "fs#2"]);
        let (_, kinds) = partial("stopfs");
        assert_eq!(
            selected(&s, &Selector::default().with_kinds(kinds)),
            ["fs#3", "fs#1", "fs#2"]
        );
        let both = Selector::default()
            .with_kinds([Kind::Fs])
            .with_tags("data")
            .unwrap();
        assert_eq!(selected(&s, &both), ["fs#1", "fs#2"]);
    }

    #[test]
    fn selector_errors() {
        let s = svc(SEED_LIKE);
        let shape = |list: &str| {
            matches!(
                Selector::default().with_rids(list),
                Err(SelectorError::Rid(RidError::Shape(s))) if s == list
            )
        };
        assert!(shape("fs1") && shape("") && shape(" , "));
        let missing = Selector::default().with_rids("fs#9").unwrap();
        assert_eq!(
            missing.check(&s).unwrap_err().to_string(),
            "--rid: service web has no resource fs#9"
        );
        assert!(matches!(
            Selector::default().with_tags(","),
            Err(SelectorError::Tags(t)) if t == ","
        ));
        // Tags that select nothing are an error, not a silent success that did nothing.
        let none = Selector::default().with_tags("nosuch,root+nosuch").unwrap();
        assert_eq!(
            none.check(&s).unwrap_err().to_string(),
            "--tags nosuch,nosuch+root: no resource of service web matches"
        );
        let narrowed = Selector::default()
            .with_kinds([Kind::Ip])
            .with_tags("root")
            .unwrap();
        assert_eq!(
            narrowed.check(&s).unwrap_err().to_string(),
            "--tags root: no resource of service web matches (with the other options of the action)"
        );
        Selector::default()
            .with_tags("data")
            .unwrap()
            .check(&s)
            .unwrap();
        let sel = Selector::from_options(Some("fs#1"), Some("a+b"), Some(vec![Kind::Fs])).unwrap();
        assert_eq!(sel.rids.map(|r| r.len()), Some(1));
        assert_eq!(sel.tags.map(|t| t.len()), Some(1));
        assert!(matches!(
            Selector::from_options(Some("nope"), None, None),
            Err(SelectorError::Rid(RidError::Shape(_)))
        ));
    }
}
