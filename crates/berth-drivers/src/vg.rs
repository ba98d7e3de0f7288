//! The vg driver (issue 3): not built yet. Status is `undef` with a line saying so; start refuses.

use berth_model::ResourceState;
use berth_model::config::VgSpec;
use berth_model::status::{LogEntry, Status};

use crate::{Ctx, DriverError, Outcome};

const NOT_BUILT: DriverError = DriverError::NotBuilt("vg");

/// Label the VG name, as the seed prints it.
pub fn label(spec: &VgSpec) -> String {
    spec.vgname.clone()
}

/// Nothing to check until the driver exists.
pub fn precheck(_ctx: &Ctx<'_>, _spec: &VgSpec) -> Result<(), DriverError> {
    Err(NOT_BUILT)
}

/// `undef`, saying the driver is not built.
pub fn status(_ctx: &Ctx<'_>, spec: &VgSpec) -> ResourceState {
    ResourceState {
        status: Status::Undef,
        label: label(spec),
        log: vec![LogEntry::warn(NOT_BUILT.to_string())],
    }
}

/// Refused: the driver is not built.
pub fn start(_ctx: &Ctx<'_>, _spec: &VgSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}

/// Refused: the driver is not built.
pub fn stop(_ctx: &Ctx<'_>, _spec: &VgSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}
