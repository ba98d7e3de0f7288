//! berth's resource drivers: the only crate that touches the host.
//!
//! Every kind implements [`ResourceDriver`]; [`HostDrivers`] dispatches on the resource's kind.
//! The engine sees only the [`Driver`] trait, so its ordering, rollback and locking are tested
//! with a fake in place of the host.

mod cmd;
pub mod docker;
mod error;
pub mod fs;
pub mod ip;
pub mod vg;

use berth_model::ResourceState;
use berth_model::config::{Resource, ServiceConfig, Spec};
use berth_model::paths::Paths;
use berth_model::status::Chargeback;

pub use error::DriverError;

/// Runs `f` (status walks over many services, on this thread) with the host reads a status
/// makes shared: the mount table is read once. Starts and stops inside `f` still read afresh.
pub fn shared_status_reads<T>(f: impl FnOnce() -> T) -> T {
    fs::mountinfo::shared(f)
}

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
}

/// What a start or stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The resource changed state.
    Changed,
    /// It already was in the wanted state; nothing was done.
    AlreadyDone,
}

/// The seam between the engine and the host.
pub trait Driver {
    /// Checks run before any resource of a start is touched (the ip conflict probe): a failure
    /// refuses the whole start.
    fn precheck(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<(), DriverError>;
    /// The resource's current status.
    fn status(&self, ctx: &Ctx<'_>, res: &Resource) -> ResourceState;
    /// Bring it up; an already-up resource is left alone (`Outcome::AlreadyDone`).
    fn start(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError>;
    /// Bring it down; an already-down resource is left alone.
    fn stop(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError>;
    /// Service-wide usage figures (the private dockerd's chargeback), when the service has any.
    /// Costs more than a status (it sizes the data root): asked for by JSON consumers only.
    fn chargeback(&self, _ctx: &Ctx<'_>) -> Option<Chargeback> {
        None
    }
}

/// The real drivers, dispatching on the resource kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDrivers;

impl Driver for HostDrivers {
    fn precheck(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<(), DriverError> {
        match &res.spec {
            Spec::Ip(spec) => ip::precheck(ctx, spec),
            Spec::Vg(spec) => vg::precheck(ctx, spec),
            Spec::Fs(_) | Spec::Container(_) => Ok(()),
        }
    }

    fn status(&self, ctx: &Ctx<'_>, res: &Resource) -> ResourceState {
        match &res.spec {
            Spec::Ip(spec) => ip::status(ctx, spec),
            Spec::Vg(spec) => vg::status(ctx, spec),
            Spec::Fs(spec) => fs::status(spec),
            Spec::Container(spec) => docker::status(ctx, res.rid, spec),
        }
    }

    fn start(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        match &res.spec {
            Spec::Ip(spec) => ip::start(ctx, spec),
            Spec::Vg(spec) => vg::start(ctx, spec),
            Spec::Fs(spec) => fs::start(spec),
            Spec::Container(spec) => docker::start(ctx, res.rid, spec),
        }
    }

    fn stop(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        match &res.spec {
            Spec::Ip(spec) => ip::stop(ctx, spec),
            Spec::Vg(spec) => vg::stop(ctx, spec),
            Spec::Fs(spec) => fs::stop(spec),
            Spec::Container(spec) => docker::stop(ctx, res.rid, spec),
        }
    }

    fn chargeback(&self, ctx: &Ctx<'_>) -> Option<Chargeback> {
        docker::chargeback(ctx)
    }
}
