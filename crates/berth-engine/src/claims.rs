//! What each service brought up and holds now: `<var>/<svc>/claims.json`, one entry per
//! resource holding a [`Claim`] (a mount point, an address, a volume group), written by the
//! engine after the resource's start and removed after its stop, under the service lock.
//!
//! It tells "mine" from "someone else's": a start is refused when another service holds one of
//! its claims (naming it), and a status or stop of a resource whose claim another service holds
//! (and this one does not) leaves it alone: it is down for this service. Entries of an earlier
//! boot are void (nothing of them survived the reboot), and so are those of a service whose file
//! is gone. What no service claims (brought up by hand, or by a berth before claims) is the
//! drivers' to judge, as before.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth_model::Rid;
use berth_model::claims::Claim;
use berth_model::paths::Paths;
use serde::{Deserialize, Serialize};

/// The file name under `<var>/<svc>/`.
pub const FILE: &str = "claims.json";

/// One resource's claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The resource.
    pub rid: Rid,
    /// What it holds.
    pub claim: Claim,
    /// The kernel's boot id when it was brought up.
    pub boot: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    claims: Vec<Held>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`; empty when unreadable).
fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

fn file(paths: &Paths, svc: &str) -> PathBuf {
    paths.service_var(svc).join(FILE)
}

fn read_record(path: &Path) -> Record {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The claims service `svc` holds in this boot.
pub fn held(paths: &Paths, svc: &str) -> Vec<Held> {
    let mut r = read_record(&file(paths, svc));
    r.claims.retain(|h| h.boot == boot_id());
    r.claims
}

/// Why a claim could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("cannot record the claims of {svc} in {path}: {source}")]
pub struct ClaimError {
    /// The service.
    pub svc: String,
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Change `svc`'s record: `f` gets this boot's entries. Written atomically (temp file, rename).
fn update(paths: &Paths, svc: &str, f: impl FnOnce(&mut Vec<Held>)) -> Result<(), ClaimError> {
    let path = file(paths, svc);
    let fail = |source| ClaimError {
        svc: svc.to_string(),
        path: path.clone(),
        source,
    };
    let mut claims = held(paths, svc);
    let before = claims.clone();
    f(&mut claims);
    if claims == before && path.exists() {
        return Ok(());
    }
    if claims.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
            _ => Ok(()),
        };
    }
    let dir = paths.service_var(svc);
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(&Record { claims }).map_err(std::io::Error::other);
    body.and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(fail)
}

/// Record that `svc`'s `rid` holds `claim` (it was just brought up).
pub fn add(paths: &Paths, svc: &str, rid: Rid, claim: Claim) -> Result<(), ClaimError> {
    update(paths, svc, |claims| {
        claims.retain(|h| h.rid != rid);
        claims.push(Held {
            rid,
            claim,
            boot: boot_id().to_string(),
        });
    })
}

/// Forget `svc`'s claim of `rid` (it was just taken down).
pub fn remove(paths: &Paths, svc: &str, rid: Rid) -> Result<(), ClaimError> {
    update(paths, svc, |claims| claims.retain(|h| h.rid != rid))
}

/// Whether service `name` still has a service file (a deleted service holds nothing).
fn exists(paths: &Paths, name: &str) -> bool {
    !matches!(
        crate::load::service_file(paths, name),
        Err(crate::load::LoadError::NotFound { .. } | crate::load::LoadError::BadName { .. })
    )
}

/// The other service, and its resource, that holds `claim` in this boot, if any.
pub fn holder(paths: &Paths, me: &str, claim: &Claim) -> Option<(String, Rid)> {
    let entries = std::fs::read_dir(&paths.var_dir).ok()?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n != me)
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let rid = held(paths, &name)
            .into_iter()
            .find(|h| h.claim == *claim)?
            .rid;
        exists(paths, &name).then_some((name, rid))
    })
}

/// The claims of one service, read once for an action or a status: whether a resource's claim
/// is its own, another service's, or nobody's.
#[derive(Debug)]
pub struct Ledger<'a> {
    paths: &'a Paths,
    svc: &'a str,
    own: Vec<Held>,
}

impl<'a> Ledger<'a> {
    /// Read `svc`'s own claims.
    pub fn read(paths: &'a Paths, svc: &'a str) -> Ledger<'a> {
        Ledger {
            paths,
            svc,
            own: held(paths, svc),
        }
    }

    /// The other service (and its resource) that holds `claim` while this one's `rid` does
    /// not: the resource is not this service's to report up or take down.
    pub fn foreign(&self, rid: Rid, claim: &Claim) -> Option<(String, Rid)> {
        if self.own.iter().any(|h| h.rid == rid && h.claim == *claim) {
            return None;
        }
        holder(self.paths, self.svc, claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::create_dir_all(paths.services_dir()).unwrap();
        (dir, paths)
    }

    fn service(paths: &Paths, name: &str) {
        std::fs::write(paths.services_dir().join(format!("{name}.toml")), "").unwrap();
    }

    #[test]
    fn claims_are_recorded_found_and_released() {
        let (_d, p) = paths();
        service(&p, "a");
        service(&p, "b");
        let mnt = Claim::Mount("/srv/data".into());
        let fs1 = "fs#1".parse::<Rid>().unwrap();
        assert_eq!(holder(&p, "b", &mnt), None);
        add(&p, "a", fs1, mnt.clone()).unwrap();
        assert_eq!(holder(&p, "b", &mnt), Some(("a".to_string(), fs1)));
        assert_eq!(holder(&p, "a", &mnt), None, "not another's");
        // b's own resource on the same mount point is a's, not b's.
        assert_eq!(
            Ledger::read(&p, "b").foreign(fs1, &mnt),
            Some(("a".to_string(), fs1))
        );
        assert_eq!(Ledger::read(&p, "a").foreign(fs1, &mnt), None);
        remove(&p, "a", fs1).unwrap();
        assert_eq!(holder(&p, "b", &mnt), None);
        assert!(
            !p.service_var("a").join(FILE).exists(),
            "an empty record is removed"
        );
    }

    #[test]
    fn claims_of_another_boot_or_a_deleted_service_are_void() {
        let (_d, p) = paths();
        service(&p, "a");
        let ip = Claim::Address("10.0.0.5".into());
        let rid = "ip#1".parse::<Rid>().unwrap();
        std::fs::create_dir_all(p.service_var("a")).unwrap();
        let old = Record {
            claims: vec![Held {
                rid,
                claim: ip.clone(),
                boot: "an-earlier-boot".into(),
            }],
        };
        std::fs::write(
            p.service_var("a").join(FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        assert_eq!(holder(&p, "b", &ip), None, "an earlier boot's");
        add(&p, "a", rid, ip.clone()).unwrap();
        assert_eq!(held(&p, "a").len(), 1);
        assert!(holder(&p, "b", &ip).is_some());
        std::fs::remove_file(p.services_dir().join("a.toml")).unwrap();
        assert_eq!(holder(&p, "b", &ip), None, "a deleted service's");
    }
}
