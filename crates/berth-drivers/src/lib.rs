//! berth's resource drivers: the only crate that touches the host.
//!
//! Each kind implements [`KindDriver`] ([`Ip`], [`Vg`], [`Fs`], [`Docker`]); [`HOST`] is the
//! engine's [`Driver`] for the host, whose one match on the resource's spec picks the kind's
//! driver. The engine owns the `Driver` seam and knows no kind, so its ordering, rollback and
//! locking are tested with a fake in place of the host, and compile none of this crate. The modules' free functions are what the impls call; the real-host
//! tests call them directly.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

mod cmd;
pub mod docker;
pub mod fs;
pub mod ip;
mod kind;
pub mod reads;
pub mod sync;
pub mod vg;

pub use reads::StatusReads;

use berth_engine::Driver;
use berth_model::config::{
    ContainerSpec, FlagSpec, FsSpec, IpSpec, Resource, Spec, SyncSpec, VgSpec,
};
use berth_model::{ResourceState, Rid};

pub use berth_engine::{Ctx, DriverError, Outcome};
pub use kind::KindDriver;

/// The host's drivers: what the binaries give the engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDrivers;

/// The host's drivers.
pub const HOST: HostDrivers = HostDrivers;

/// The one match on a resource's spec: its kind's driver, called with the spec typed for it.
/// Adding a kind adds one arm here.
macro_rules! dispatch {
    ($method:ident, $ctx:ident, $res:ident) => {
        match &$res.spec {
            Spec::Ip(spec) => Ip.$method($ctx, $res.rid, spec),
            Spec::Vg(spec) => Vg.$method($ctx, $res.rid, spec),
            Spec::Fs(spec) => Fs.$method($ctx, $res.rid, spec),
            Spec::Flag(spec) => Flag.$method($ctx, $res.rid, spec),
            Spec::Container(spec) => Docker.$method($ctx, $res.rid, spec),
            Spec::Sync(spec) => Rsync.$method($ctx, $res.rid, spec),
        }
    };
}

impl Driver for HostDrivers {
    fn precheck(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<(), DriverError> {
        dispatch!(precheck, ctx, res)
    }

    fn status(&self, ctx: &Ctx<'_>, res: &Resource) -> ResourceState {
        dispatch!(status, ctx, res)
    }

    fn start(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        dispatch!(start, ctx, res)
    }

    fn stop(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        dispatch!(stop, ctx, res)
    }
}

/// `[ip#N]`: netlink and ARP ([`ip`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ip;

impl KindDriver for Ip {
    type Spec = IpSpec;
    fn precheck(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &IpSpec) -> Result<(), DriverError> {
        ip::precheck(ctx, spec)
    }
    fn status(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &IpSpec) -> ResourceState {
        ip::status(ctx, spec)
    }
    fn start(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &IpSpec) -> Result<Outcome, DriverError> {
        ip::start(ctx, spec)
    }
    fn stop(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &IpSpec) -> Result<Outcome, DriverError> {
        ip::stop(ctx, spec)
    }
}

/// `[vg#N]`: LVM ([`vg`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Vg;

impl KindDriver for Vg {
    type Spec = VgSpec;
    fn precheck(&self, ctx: &Ctx<'_>, rid: Rid, spec: &VgSpec) -> Result<(), DriverError> {
        vg::precheck(ctx, rid, spec)
    }
    fn status(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &VgSpec) -> ResourceState {
        vg::status(ctx, spec)
    }
    fn start(&self, ctx: &Ctx<'_>, rid: Rid, spec: &VgSpec) -> Result<Outcome, DriverError> {
        vg::start(ctx, rid, spec)
    }
    fn stop(&self, ctx: &Ctx<'_>, _rid: Rid, spec: &VgSpec) -> Result<Outcome, DriverError> {
        vg::stop(ctx, spec)
    }
}

/// `[fs#N]`: loop images, fsck, mount ([`fs`]). No precheck.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fs;

impl KindDriver for Fs {
    type Spec = FsSpec;
    fn status(&self, _ctx: &Ctx<'_>, _rid: Rid, spec: &FsSpec) -> ResourceState {
        fs::status(spec)
    }
    fn start(&self, _ctx: &Ctx<'_>, _rid: Rid, spec: &FsSpec) -> Result<Outcome, DriverError> {
        fs::start(spec)
    }
    fn stop(&self, _ctx: &Ctx<'_>, _rid: Rid, spec: &FsSpec) -> Result<Outcome, DriverError> {
        fs::stop(spec)
    }
}

/// `[fs#N] type = flag`: a marker file in the run dir ([`fs::flag`]). No precheck.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flag;

impl KindDriver for Flag {
    type Spec = FlagSpec;
    fn status(&self, ctx: &Ctx<'_>, rid: Rid, _spec: &FlagSpec) -> ResourceState {
        fs::flag::status(ctx, rid)
    }
    fn start(&self, ctx: &Ctx<'_>, rid: Rid, _spec: &FlagSpec) -> Result<Outcome, DriverError> {
        fs::flag::start(ctx, rid)
    }
    fn stop(&self, ctx: &Ctx<'_>, rid: Rid, _spec: &FlagSpec) -> Result<Outcome, DriverError> {
        fs::flag::stop(ctx, rid)
    }
}

/// `[container#N]`: the service's private dockerd ([`docker`]). No precheck. The service-wide
/// usage figures are [`docker::chargeback`], asked for by JSON consumers only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Docker;

impl KindDriver for Docker {
    type Spec = ContainerSpec;
    fn status(&self, ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> ResourceState {
        docker::status(ctx, rid, spec)
    }
    fn start(&self, ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> Result<Outcome, DriverError> {
        docker::start(ctx, rid, spec)
    }
    fn stop(&self, ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> Result<Outcome, DriverError> {
        docker::stop(ctx, rid, spec)
    }
}

/// `[sync#N]` of type rsync ([`sync`]): its status row; never started nor stopped with the
/// service (the sync actions run it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Rsync;

impl KindDriver for Rsync {
    type Spec = SyncSpec;
    fn status(&self, ctx: &Ctx<'_>, rid: Rid, spec: &SyncSpec) -> ResourceState {
        sync::status(ctx, rid, spec)
    }
    fn start(&self, _ctx: &Ctx<'_>, _rid: Rid, _spec: &SyncSpec) -> Result<Outcome, DriverError> {
        sync::start()
    }
    fn stop(&self, _ctx: &Ctx<'_>, _rid: Rid, _spec: &SyncSpec) -> Result<Outcome, DriverError> {
        sync::stop()
    }
}
