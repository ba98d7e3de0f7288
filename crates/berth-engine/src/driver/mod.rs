//! The seam between the engine and the host.
//!
//! The engine walks a service through [`Driver`]: one call per resource, whatever its kind. The
//! engine knows no kind: the drivers crate implements [`Driver`] for the host (its one match on
//! the resource's spec picks the kind's driver), the binaries wire it into an
//! [`Engine`](crate::Engine); the engine's own tests use a fake [`Driver`] and compile no host
//! code.

mod error;

use std::any::Any;
use std::cell::RefCell;

use berth_model::config::{Resource, ServiceConfig};
use berth_model::paths::Paths;
use berth_model::{ResourceState, Rid};

pub use error::DriverError;

/// What a driver needs to know about the action it runs within.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The service the resource belongs to.
    pub svc: &'a ServiceConfig,
    /// This node's name (VG host tags, autostart).
    pub nodename: &'a str,
    /// The config, var and run directories.
    pub paths: &'a Paths,
    /// `--force`: skip the ip conflict check, take over a VG tagged by another node.
    pub force: bool,
    /// The cluster's fencing token of this start, when the service runs in a cluster: a VG
    /// records it in a tag and refuses a start whose token is older than the VG's.
    pub fence: Option<i64>,
    /// Within a start: what the prechecks read of the host, for the starts to use instead of
    /// reading it again ([`Prechecked`]). `None` outside a start.
    pub prechecked: Option<&'a Prechecked>,
}

impl<'a> Ctx<'a> {
    /// A context outside any engine action (a status, the docker passthrough, a test): no
    /// fencing token, no `--force`, nothing prechecked.
    pub fn new(svc: &'a ServiceConfig, nodename: &'a str, paths: &'a Paths) -> Ctx<'a> {
        Ctx {
            svc,
            nodename,
            paths,
            force: false,
            fence: None,
            prechecked: None,
        }
    }

    /// Keep `value`, what the precheck of `rid` read, for the start of `rid` in this action.
    /// Nothing is kept outside a start.
    pub fn keep_prechecked<T: Any>(&self, rid: Rid, value: T) {
        if let Some(p) = self.prechecked {
            p.put(rid, value);
        }
    }

    /// What the precheck of `rid` kept, taken (a second call gets `None`), while the action has
    /// changed nothing on the host since: then it is what a read now would see, but for changes
    /// made meanwhile by someone else, which a read now could miss a moment later as well.
    pub fn take_prechecked<T: Any>(&self, rid: Rid) -> Option<T> {
        self.prechecked.and_then(|p| p.take(rid))
    }
}

/// What the prechecks of a start read of the host, by resource, for the starts to reuse (a vg's
/// LVM report: the start then runs no more LVM commands than an operator would). The engine
/// empties it as soon as a start changed the host, so a start never acts on a read taken before
/// an earlier resource of the same action changed something.
#[derive(Default)]
pub struct Prechecked {
    slots: RefCell<Vec<(Rid, Box<dyn Any>)>>,
}

impl std::fmt::Debug for Prechecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rids: Vec<Rid> = self.slots.borrow().iter().map(|(r, _)| *r).collect();
        f.debug_struct("Prechecked").field("rids", &rids).finish()
    }
}

impl Prechecked {
    fn put<T: Any>(&self, rid: Rid, value: T) {
        let mut slots = self.slots.borrow_mut();
        slots.retain(|(r, _)| *r != rid);
        slots.push((rid, Box::new(value)));
    }

    fn take<T: Any>(&self, rid: Rid) -> Option<T> {
        let mut slots = self.slots.borrow_mut();
        let at = slots.iter().position(|(r, _)| *r == rid)?;
        let (_, value) = slots.remove(at);
        value.downcast().ok().map(|b| *b)
    }

    /// Forget everything: the host changed.
    pub fn clear(&self) {
        self.slots.borrow_mut().clear();
    }

    /// How many resources have something kept.
    pub fn len(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a start or stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The resource changed state.
    Changed,
    /// It already was in the wanted state; nothing was done.
    AlreadyDone,
}

/// What the engine sees: one call per resource, whatever its kind.
pub trait Driver {
    /// Checks run before any resource of a start is touched (the ip conflict probe): a failure
    /// refuses the whole start. None by default.
    fn precheck(&self, _ctx: &Ctx<'_>, _res: &Resource) -> Result<(), DriverError> {
        Ok(())
    }
    /// The resource's current status.
    fn status(&self, ctx: &Ctx<'_>, res: &Resource) -> ResourceState;
    /// Bring it up; an already-up resource is left alone (`Outcome::AlreadyDone`).
    fn start(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError>;
    /// Bring it down; an already-down resource is left alone.
    fn stop(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError>;
}
