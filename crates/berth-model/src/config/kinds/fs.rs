//! `[fs#N]`: its spec, its keywords and their reader.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::alias::{Alias, alias};
use crate::config::error::ConfigErrorKind;
use crate::config::raw::RawValue;
use crate::config::reader::{Reader, Sink};
use crate::config::value::Dur;
use crate::rid::Kind;

/// The keywords of `[fs#N]`, mandatory ones first.
pub const KEYWORDS: &[&str] = &["dev", "mnt", "type", "mnt_opt", "stop_timeout"];

/// The `type` values of `[fs#N]` berth runs: none, its `type` is the filesystem type, any but
/// [`FS_DRIVER_TYPES`].
pub(crate) const DRIVER_TYPES: &[&str] = &[];

/// OpenSVC fs drivers that are not a filesystem berth can mount from `dev` (`flag` is one
/// berth runs: [`FLAG_TYPE`]).
pub const FS_DRIVER_TYPES: &[&str] = &["zfs", "directory", "dir"];

/// `type = flag` (OpenSVC v3): no filesystem, a marker file in the run dir ([`FlagSpec`]).
pub const FLAG_TYPE: &str = "flag";

/// The OpenSVC aliases of `[fs#N]`'s keywords.
pub(crate) const ALIASES: &[Alias] = &[alias(
    Some(Kind::Fs),
    "mnt_opts",
    "mnt_opt",
    "the seed's spelling",
)];

/// `[fs#N]`: a filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsSpec {
    /// A block device, or a regular file (an image, attached to a loop device).
    pub dev: PathBuf,
    /// The absolute mount point.
    pub mnt: PathBuf,
    /// The filesystem type (`ext4`, `xfs`...).
    pub fs_type: String,
    /// Mount options, comma separated (`mnt_opt`, or OpenSVC's `mnt_opts`).
    pub mnt_opt: Option<String>,
    /// The bound on a stop, holders killed included.
    pub stop_timeout: Duration,
}

impl FsSpec {
    /// Self-fencing's stop: a 1 s bound (holders get TERM, then KILL after 0.2 s).
    pub fn fast_stop(&mut self) {
        self.stop_timeout = self.stop_timeout.min(Duration::from_secs(1));
    }

    /// The depth of the mount point (`/` is 0, `/srv` 1, `/srv/web` 2).
    pub fn depth(&self) -> usize {
        self.mnt
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count()
    }
}

/// `[fs#N] type = flag` (OpenSVC v3): a marker file `<run>/<svc>/flags/<rid>`, up while it
/// exists. The run dir is a tmpfs (`/run`), so a flag is down after a reboot, and a service
/// with no other resource (a container-only one) still has a started or stopped state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlagSpec {}

/// What an `[fs#N]` section reads as (the service's `Spec` has one variant for each).
#[derive(Debug)]
pub(crate) enum FsRead {
    /// A filesystem mounted from `dev`.
    Mounted(FsSpec),
    /// `type = flag`.
    Flag(FlagSpec),
}

/// `[fs#N]`: a mounted filesystem, or a flag.
pub(crate) fn read(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<FsRead> {
    if r.peek_str("type")
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(FLAG_TYPE))
    {
        let _ = r.string("type");
        return Some(FsRead::Flag(FlagSpec {}));
    }
    read_mounted(r, e).map(FsRead::Mounted)
}

fn read_mounted(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<FsSpec> {
    let dev = e.ok(r.required("dev"));
    let mnt = e.ok(r.abs_path("mnt").and_then(|m| match m {
        None => Err(r.error("mnt", ConfigErrorKind::MissingKey)),
        Some(m) if m == Path::new("/") => Err(r.bad(
            "mnt",
            &RawValue::Str("/".into()),
            "berth will not mount over /",
        )),
        Some(m) => Ok(m),
    }));
    let fs_type = e.ok(r.required("type"));
    // `mnt_opts` (the seed's other spelling) is folded into `mnt_opt` by the compat layer.
    let mnt_opt = e.ok(r.string("mnt_opt"));
    let stop_timeout = e.ok(r.duration("stop_timeout", Duration::from_secs(5)));
    Some(FsSpec {
        dev: PathBuf::from(dev?),
        mnt: mnt?,
        fs_type: fs_type?,
        mnt_opt: mnt_opt?,
        stop_timeout: stop_timeout?,
    })
}

/// `[fs#N] type = flag` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct FlagView {
    #[serde(rename = "type")]
    fs_type: &'static str,
}

/// The `print config` view of a flag.
pub(crate) fn flag_view(_: &FlagSpec) -> FlagView {
    FlagView { fs_type: FLAG_TYPE }
}

/// `[fs#N]` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct FsView<'a> {
    dev: String,
    mnt: String,
    #[serde(rename = "type")]
    fs_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mnt_opt: Option<&'a str>,
    stop_timeout: Dur,
}

/// The `print config` view of a spec.
pub(crate) fn view(fs: &FsSpec) -> FsView<'_> {
    FsView {
        dev: fs.dev.to_string_lossy().into_owned(),
        mnt: fs.mnt.to_string_lossy().into_owned(),
        fs_type: &fs.fs_type,
        mnt_opt: fs.mnt_opt.as_deref(),
        stop_timeout: Dur(fs.stop_timeout),
    }
}
