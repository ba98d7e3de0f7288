//! One resource kind's driver: the engine's four calls, on the kind's own spec.

use berth_engine::{Ctx, DriverError, Outcome};
use berth_model::{ResourceState, Rid};

/// The driver of one resource kind, given the resource's spec already typed for it.
pub trait KindDriver {
    /// The kind's keywords (`IpSpec`, `FsSpec`...).
    type Spec;
    /// Checks run before any resource of a start is touched; none by default.
    fn precheck(&self, _ctx: &Ctx<'_>, _rid: Rid, _spec: &Self::Spec) -> Result<(), DriverError> {
        Ok(())
    }
    /// The resource's current status. Never changes the host.
    fn status(&self, ctx: &Ctx<'_>, rid: Rid, spec: &Self::Spec) -> ResourceState;
    /// Bring it up; an already-up resource is left alone (`Outcome::AlreadyDone`).
    fn start(&self, ctx: &Ctx<'_>, rid: Rid, spec: &Self::Spec) -> Result<Outcome, DriverError>;
    /// Bring it down; an already-down resource is left alone.
    fn stop(&self, ctx: &Ctx<'_>, rid: Rid, spec: &Self::Spec) -> Result<Outcome, DriverError>;
}
