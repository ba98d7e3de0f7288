//! The ip driver (issue 3): not built yet. Status is `undef` with a line saying so; start refuses.

use berth_model::ResourceState;
use berth_model::config::IpSpec;
use berth_model::status::{LogEntry, Status};

use crate::{Ctx, DriverError, Outcome};

const NOT_BUILT: DriverError = DriverError::NotBuilt("ip");

/// Label `ipname@ipdev`, as the seed prints it.
pub fn label(spec: &IpSpec) -> String {
    format!("{}@{}", spec.ipname, spec.ipdev)
}

/// Nothing to check until the driver exists.
pub fn precheck(_ctx: &Ctx<'_>, _spec: &IpSpec) -> Result<(), DriverError> {
    Err(NOT_BUILT)
}

/// `undef`, saying the driver is not built.
pub fn status(_ctx: &Ctx<'_>, spec: &IpSpec) -> ResourceState {
    ResourceState {
        status: Status::Undef,
        label: label(spec),
        log: vec![LogEntry::warn(NOT_BUILT.to_string())],
    }
}

/// Refused: the driver is not built.
pub fn start(_ctx: &Ctx<'_>, _spec: &IpSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}

/// Refused: the driver is not built.
pub fn stop(_ctx: &Ctx<'_>, _spec: &IpSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}
