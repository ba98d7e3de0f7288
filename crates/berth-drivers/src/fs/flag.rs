//! `[fs#N] type = flag` (OpenSVC v3): a marker file `<run>/<svc>/flags/<rid>`
//! ([`berth_model::Paths::flag_file`]).
//!
//! - status: `up` while the file exists, `down` otherwise. The run dir is a tmpfs (`/run`), so
//!   every flag is down after a reboot: a service made of containers only has a real
//!   started/stopped state, and nothing restarts it by mistake after a boot.
//! - start: write the file (its content: the start's fencing token, when in a cluster), through
//!   a temporary file and a rename, so a flag is never half there.
//! - stop: remove it (already absent: nothing to do).
//!
//! In a cluster, a failover service starts only on the node that owns it, so its flag is up on
//! one node only.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use berth_model::status::{LogEntry, Status};
use berth_model::{ResourceState, Rid};

use crate::{Ctx, DriverError, Outcome};

/// The flag's file.
pub fn path(ctx: &Ctx<'_>, rid: Rid) -> PathBuf {
    ctx.paths.flag_file(&ctx.svc.name, &rid.to_string())
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |source| DriverError::Io { what, source }
}

/// Whether the flag file exists; an error other than "not found" names the file.
fn exists(file: &Path) -> Result<bool, DriverError> {
    match std::fs::symlink_metadata(file) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("read flag {}", file.display()))(e)),
    }
}

/// `up` while the file exists.
pub fn status(ctx: &Ctx<'_>, rid: Rid) -> ResourceState {
    let file = path(ctx, rid);
    let label = format!("flag {}", file.display());
    match exists(&file) {
        Ok(true) => ResourceState::new(Status::Up, label, Vec::new()),
        Ok(false) => ResourceState::new(Status::Down, label, Vec::new()),
        Err(e) => ResourceState::new(Status::Warn, label, vec![LogEntry::warn(e.to_string())]),
    }
}

/// Create the flag file.
pub fn start(ctx: &Ctx<'_>, rid: Rid) -> Result<Outcome, DriverError> {
    let file = path(ctx, rid);
    if exists(&file)? {
        return Ok(Outcome::AlreadyDone);
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    let body = ctx.fence.map_or_else(String::new, |t| format!("{t}\n"));
    let tmp = dir.join(format!(".{rid}.tmp"));
    std::fs::write(&tmp, body).map_err(io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, &file).map_err(io(format!("create flag {}", file.display())))?;
    Ok(Outcome::Changed)
}

/// Remove the flag file.
pub fn stop(ctx: &Ctx<'_>, rid: Rid) -> Result<Outcome, DriverError> {
    let file = path(ctx, rid);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(Outcome::Changed),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Outcome::AlreadyDone),
        Err(e) => Err(io(format!("remove flag {}", file.display()))(e)),
    }
}
