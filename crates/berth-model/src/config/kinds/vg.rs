//! `[vg#N]` (OpenSVC's `[disk#N] type = vg`): its spec, its keywords and their reader.

use serde::Serialize;

use crate::config::reader::{Reader, Sink};

/// The keywords of `[vg#N]`, mandatory ones first.
pub const KEYWORDS: &[&str] = &["vgname", "type"];

/// `[vg#N]`: an LVM volume group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VgSpec {
    /// The volume group name.
    pub vgname: String,
}

pub(crate) fn read(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<VgSpec> {
    let _ = r.string("type");
    e.ok(r.required("vgname")).map(|vgname| VgSpec { vgname })
}
