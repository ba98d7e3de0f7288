//! What a resource holds on its node that no two services may hold at once: a mount point, an
//! address, a volume group. Pure: the engine records claims in each service's var dir and asks
//! them before a start, a status and a stop; `svc validate config` names two services of one
//! node that claim the same thing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Resource, ServiceConfig, Spec};
use crate::rid::Rid;

/// One thing on the node a resource brings up and takes down.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    /// `[fs#N] mnt`, lexically cleaned (`/srv/web/` and `/srv/./web` are `/srv/web`).
    Mount(PathBuf),
    /// `[ip#N] ipname` on the node's interfaces (a literal address in its canonical form, a
    /// name lowercased). An address in a container's namespace (`type = netns`) claims nothing
    /// on the node.
    Address(String),
    /// `[vg#N] vgname`.
    Vg(String),
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Mount(p) => write!(f, "mount point {}", p.display()),
            Claim::Address(a) => write!(f, "address {a}"),
            Claim::Vg(v) => write!(f, "volume group {v}"),
        }
    }
}

/// `p` without `.`, repeated and trailing separators (no `..` resolution: that needs the host).
fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

impl Claim {
    /// What `res` claims, if anything. A disabled resource is never started: it claims nothing.
    pub fn of(res: &Resource) -> Option<Claim> {
        if res.common.disable {
            return None;
        }
        match &res.spec {
            Spec::Fs(fs) => Some(Claim::Mount(clean(&fs.mnt))),
            Spec::Ip(ip) if ip.netns.is_none() => {
                Some(Claim::Address(match ip.ipname.trim().parse::<IpAddr>() {
                    Ok(a) => a.to_string(),
                    Err(_) => ip.ipname.trim().to_ascii_lowercase(),
                }))
            }
            Spec::Vg(vg) => Some(Claim::Vg(vg.vgname.clone())),
            Spec::Ip(_) | Spec::Container(_) | Spec::Sync(_) | Spec::Flag(_) => None,
        }
    }
}

/// Two or more resources of different services of one node that claim the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// What they claim.
    pub claim: Claim,
    /// The services and their resources, sorted.
    pub holders: Vec<(String, Rid)>,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who: Vec<String> = self
            .holders
            .iter()
            .map(|(svc, rid)| format!("{svc} ({rid})"))
            .collect();
        write!(
            f,
            "{} is claimed by several services: {} (stopping one would take it from the other)",
            self.claim,
            who.join(", ")
        )
    }
}

/// The claims that more than one service makes, in claim order. Two resources of one service
/// on one claim are not a conflict here (the service's own start order decides).
pub fn conflicts<'a>(services: impl IntoIterator<Item = &'a ServiceConfig>) -> Vec<Conflict> {
    let mut by_claim: BTreeMap<Claim, Vec<(String, Rid)>> = BTreeMap::new();
    for svc in services {
        for res in &svc.resources {
            if let Some(c) = Claim::of(res) {
                by_claim
                    .entry(c)
                    .or_default()
                    .push((svc.name.clone(), res.rid));
            }
        }
    }
    by_claim
        .into_iter()
        .filter_map(|(claim, mut holders)| {
            holders.sort();
            let first = holders.first()?.0.clone();
            holders
                .iter()
                .any(|(s, _)| *s != first)
                .then_some(Conflict { claim, holders })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceConfig;

    fn svc(name: &str, body: &str) -> ServiceConfig {
        ServiceConfig::parse(Path::new(&format!("{name}.toml")), body).expect("parses")
    }

    #[test]
    fn what_each_kind_claims() {
        let s = svc(
            "a",
            "[fs.1]\ndev = \"/a.img\"\nmnt = \"/srv/./a/\"\ntype = \"ext4\"\n\
             [ip.1]\nipname = \"fd00::0005\"\nipdev = \"eth0\"\nnetmask = 64\n\
             [ip.2]\nipname = \"Web.Example\"\nipdev = \"eth0\"\nnetmask = 24\n\
             [vg.1]\nvgname = \"data\"\n\
             [fs.2]\ndev = \"/b.img\"\nmnt = \"/srv/b\"\ntype = \"ext4\"\ndisable = true\n",
        );
        let claims: Vec<Option<Claim>> = s.resources.iter().map(Claim::of).collect();
        assert_eq!(
            claims,
            [
                Some(Claim::Mount("/srv/a".into())),
                Some(Claim::Address("fd00::5".into())),
                Some(Claim::Address("web.example".into())),
                Some(Claim::Vg("data".into())),
                None,
            ]
        );
        assert_eq!(
            Claim::Mount("/srv/a".into()).to_string(),
            "mount point /srv/a"
        );
    }

    #[test]
    fn two_services_on_one_mount_point_address_or_vg_conflict() {
        let a = svc(
            "a",
            "[fs.1]\ndev = \"/a.img\"\nmnt = \"/srv/data\"\ntype = \"ext4\"\n\
             [ip.1]\nipname = \"10.0.0.5\"\nipdev = \"eth0\"\nnetmask = 24\n\
             [vg.1]\nvgname = \"vgdata\"\n",
        );
        let b = svc(
            "b",
            "[fs.2]\ndev = \"/b.img\"\nmnt = \"/srv/data/\"\ntype = \"ext4\"\n\
             [ip.1]\nipname = \"10.0.0.5\"\nipdev = \"eth1\"\nnetmask = 24\n\
             [vg.1]\nvgname = \"vgdata\"\n",
        );
        let c = svc(
            "c",
            "[fs.1]\ndev = \"/c.img\"\nmnt = \"/srv/data/c\"\ntype = \"ext4\"\n",
        );
        let found = conflicts([&a, &b, &c]);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "mount point /srv/data is claimed by several services: a (fs#1), b (fs#2) \
                 (stopping one would take it from the other)",
                "address 10.0.0.5 is claimed by several services: a (ip#1), b (ip#1) \
                 (stopping one would take it from the other)",
                "volume group vgdata is claimed by several services: a (vg#1), b (vg#1) \
                 (stopping one would take it from the other)",
            ]
        );
        assert!(conflicts([&a, &c]).is_empty());
    }
}
