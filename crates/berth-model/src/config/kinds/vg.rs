//! `[vg#N]` (OpenSVC's `[disk#N] type = vg`): its spec, its keywords and their reader.

use serde::Serialize;

use crate::config::alias::{Alias, alias};
use crate::config::reader::{Reader, Sink};
use crate::rid::Kind;

/// The keywords of `[vg#N]`, mandatory ones first.
pub const KEYWORDS: &[&str] = &["vgname", "type"];

/// The `type` values of `[vg#N]` berth runs; the first is the default.
pub(crate) const DRIVER_TYPES: &[&str] = &["vg", "lvm"];

/// The OpenSVC aliases of `[vg#N]`'s keywords.
pub(crate) const ALIASES: &[Alias] = &[alias(
    Some(Kind::Vg),
    "name",
    "vgname",
    "v2 and v3 [disk#N] type = vg",
)];

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

/// `[vg#N]` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct VgView<'a> {
    vgname: &'a str,
}

/// The `print config` view of a spec.
pub(crate) fn view(vg: &VgSpec) -> VgView<'_> {
    VgView { vgname: &vg.vgname }
}
