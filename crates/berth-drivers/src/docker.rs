//! The docker driver (issue 4): not built yet. Status is `undef` with a line saying so; start refuses.

use berth_model::ResourceState;
use berth_model::Rid;
use berth_model::config::ContainerSpec;
use berth_model::status::{LogEntry, Status};

use crate::{Ctx, DriverError, Outcome};

const NOT_BUILT: DriverError = DriverError::NotBuilt("docker");

/// `undef`, saying the driver is not built.
pub fn status(_ctx: &Ctx<'_>, _rid: Rid, spec: &ContainerSpec) -> ResourceState {
    ResourceState {
        status: Status::Undef,
        label: spec.run_image.clone(),
        log: vec![LogEntry::warn(NOT_BUILT.to_string())],
    }
}

/// Refused: the driver is not built.
pub fn start(_ctx: &Ctx<'_>, _rid: Rid, _spec: &ContainerSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}

/// Refused: the driver is not built.
pub fn stop(_ctx: &Ctx<'_>, _rid: Rid, _spec: &ContainerSpec) -> Result<Outcome, DriverError> {
    Err(NOT_BUILT)
}
