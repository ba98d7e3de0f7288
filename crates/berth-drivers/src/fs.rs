//! The fs driver: being written (issue 2).

use berth_model::ResourceState;
use berth_model::config::FsSpec;
use berth_model::status::{LogEntry, Status};

use crate::{DriverError, Outcome};

/// Label `dev@mnt`, as the seed prints it.
pub fn label(spec: &FsSpec) -> String {
    format!("{}@{}", spec.dev.display(), spec.mnt.display())
}

/// Status.
pub fn status(spec: &FsSpec) -> ResourceState {
    ResourceState {
        status: Status::Undef,
        label: label(spec),
        log: vec![LogEntry::warn("the fs driver is not built yet")],
    }
}

/// Start.
pub fn start(_spec: &FsSpec) -> Result<Outcome, DriverError> {
    Err(DriverError::NotBuilt("fs"))
}

/// Stop.
pub fn stop(_spec: &FsSpec) -> Result<Outcome, DriverError> {
    Err(DriverError::NotBuilt("fs"))
}
