//! berth's resource drivers: the only crate that touches the host.
//!
//! Each kind implements the engine's [`KindDriver`] seam ([`Ip`], [`Vg`], [`Fs`], [`Docker`]);
//! [`HOST`] holds them all as the engine's [`Driver`](berth_engine::Driver). The engine owns the
//! seam, so its ordering, rollback and locking are tested with a fake in place of the host, and
//! compile none of this crate. The modules' free functions are what the impls call; the real-host
//! tests call them directly.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

mod cmd;
pub mod docker;
pub mod fs;
pub mod ip;
pub mod reads;
pub mod vg;

pub use reads::StatusReads;

use berth_engine::Kinds;
use berth_model::config::{ContainerSpec, FsSpec, IpSpec, VgSpec};
use berth_model::{ResourceState, Rid};

pub use berth_engine::{Ctx, DriverError, KindDriver, Outcome};

/// The real drivers, one per kind: what the binaries give the engine.
pub type HostDrivers = Kinds<Ip, Vg, Fs, Docker>;

/// The real drivers, one per kind.
pub const HOST: HostDrivers = Kinds {
    ip: Ip,
    vg: Vg,
    fs: Fs,
    container: Docker,
};

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
