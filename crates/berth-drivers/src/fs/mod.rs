//! The fs driver: mount a block device or an image file (through a loop device) on a mount
//! point, and unmount it, killing the processes that keep it busy within the stop bound.
//!
//! - status: `up` when the mount point is mounted (from `/proc/self/mountinfo`) from `dev`;
//!   `down` otherwise, with a warning when another filesystem sits there.
//! - start: attach a loop device for an image file (or reuse the one already backed by it),
//!   `e2fsck -p` for ext2/3/4, `mkdir -p` the mount point, `mount(2)`. A failure after the
//!   loop device was attached detaches it again.
//! - stop: another filesystem on the mount point is left alone; else `umount2(2)`; when busy, TERM then KILL the holders, retrying until the umount
//!   succeeds or `stop_timeout` runs out; then detach the image's loop device.

pub mod flag;
mod holders;
pub mod loopdev;
pub mod mountinfo;
mod namespaces;
pub mod options;

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_model::ResourceState;
use berth_model::config::FsSpec;
use berth_model::status::{LogEntry, Status};
use nix::errno::Errno;
use nix::mount::MntFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{DriverError, Outcome};
use holders::{Holder, Target};
use mountinfo::MountEntry;

/// How often a busy umount is retried.
const POLL: Duration = Duration::from_millis(25);

/// Label `dev@mnt`, as the seed prints it.
pub fn label(spec: &FsSpec) -> String {
    format!("{}@{}", spec.dev.display(), spec.mnt.display())
}

/// The mount point as mountinfo names it: symlinks and `..` resolved when it exists.
fn resolve(mnt: &Path) -> PathBuf {
    std::fs::canonicalize(mnt).unwrap_or_else(|_| mnt.to_path_buf())
}

/// The mount on `mnt` (the topmost, when stacked).
fn find_mount<'a>(entries: &'a [MountEntry], mnt: &Path) -> Option<&'a MountEntry> {
    let mnt = resolve(mnt);
    entries.iter().rev().find(|e| e.mount_point == mnt)
}

/// Whether something is mounted on `mnt`.
pub fn is_mounted(mnt: &Path) -> Result<bool, DriverError> {
    Ok(find_mount(&mountinfo::read()?, mnt).is_some())
}

/// What `dev` names.
#[derive(Debug)]
enum Device {
    /// A block device, with its `major:minor`.
    Block(PathBuf, (u32, u32)),
    /// A regular file: an image for a loop device.
    Image(PathBuf),
    /// Anything else (a directory to bind, `tmpfs`, a remote export): passed to mount as is.
    Other(PathBuf),
}

fn major_minor(rdev: u64) -> (u32, u32) {
    (libc::major(rdev), libc::minor(rdev))
}

/// Classify `dev`. An absolute path that does not exist is an error naming it.
fn classify(dev: &Path) -> Result<Device, DriverError> {
    if !dev.is_absolute() {
        return Ok(Device::Other(dev.to_path_buf()));
    }
    match std::fs::metadata(dev) {
        Ok(m) if m.file_type().is_block_device() => {
            Ok(Device::Block(dev.to_path_buf(), major_minor(m.rdev())))
        }
        Ok(m) if m.is_file() => Ok(Device::Image(dev.to_path_buf())),
        Ok(_) => Ok(Device::Other(dev.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DriverError::Missing {
            what: "device",
            path: dev.to_path_buf(),
        }),
        Err(e) => Err(DriverError::io(format!("stat device {}", dev.display()), e)),
    }
}

/// Whether `entry` is mounted from `dev` (itself, a loop device backed by it, or, for a
/// directory bind-mounted, a directory of the filesystem it is on).
fn same_source(entry: &MountEntry, dev: &Path) -> bool {
    match classify(dev) {
        Ok(Device::Block(_, id)) => (entry.major, entry.minor) == id,
        Ok(Device::Image(p)) => loopdev::backed_by(&p)
            .iter()
            .any(|a| a.dev == (entry.major, entry.minor)),
        Ok(Device::Other(p)) => {
            entry.source_path() == p
                || entry.source_path() == resolve(&p)
                || std::fs::metadata(&p)
                    .is_ok_and(|m| m.is_dir() && major_minor(m.dev()) == (entry.major, entry.minor))
        }
        Err(_) => entry.source_path() == dev,
    }
}

/// What sits on the mount point when it is another filesystem than `spec.dev`'s.
fn foreign(entry: &MountEntry, spec: &FsSpec) -> String {
    format!(
        "{} is mounted from {}, not {}: another filesystem",
        spec.mnt.display(),
        entry.source_path().display(),
        spec.dev.display()
    )
}

/// Status: up when `mnt` is mounted.
pub fn status(spec: &FsSpec) -> ResourceState {
    let mut log = Vec::new();
    let status = match mountinfo::read_for_status() {
        Err(e) => {
            log.push(LogEntry::error(e.to_string()));
            Status::Undef
        }
        Ok(entries) => match find_mount(&entries, &spec.mnt) {
            // Another filesystem on the mount point is not this resource up: its stop leaves
            // it alone.
            Some(e) if !same_source(e, &spec.dev) => {
                log.push(LogEntry::warn(foreign(e, spec)));
                Status::Down
            }
            Some(_) => Status::Up,
            None => {
                if spec.dev.is_absolute() && !spec.dev.exists() {
                    log.push(LogEntry::info(format!(
                        "device {} does not exist",
                        spec.dev.display()
                    )));
                }
                Status::Down
            }
        },
    };
    ResourceState::new(status, label(spec), log)
}

/// The mount command line, for the log (`mount -t ext4 -o rw /dev/x /mnt`).
fn mount_line(spec: &FsSpec, source: &Path) -> String {
    let opts = match spec.mnt_opt.as_deref().map(str::trim) {
        Some(o) if !o.is_empty() => format!(" -o {o}"),
        _ => String::new(),
    };
    format!(
        "mount -t {}{opts} {} {}",
        spec.fs_type,
        source.display(),
        spec.mnt.display()
    )
}

/// Start: mount `dev` on `mnt`.
pub fn start(spec: &FsSpec) -> Result<Outcome, DriverError> {
    let entries = mountinfo::read()?;
    if let Some(e) = find_mount(&entries, &spec.mnt) {
        if !same_source(e, &spec.dev) {
            // Something else sits on the mount point: the service's data is not there, and
            // mounting over it would hide it. A start that reported success here would run
            // the service on the wrong filesystem.
            return Err(DriverError::Refused(format!(
                "{}: refusing to start on it",
                foreign(e, spec)
            )));
        }
        tracing::info!(
            "fs({} {}) is already mounted",
            spec.dev.display(),
            spec.mnt.display()
        );
        return Ok(Outcome::AlreadyDone);
    }
    let opts = options::split(spec.mnt_opt.as_deref());
    match classify(&spec.dev)? {
        Device::Image(image) => {
            let lo = loopdev::find_or_attach(&image, opts.read_only())?;
            let source = lo.path.clone();
            match fsck_and_mount(spec, &source, &opts) {
                // The mount now holds the device; closing ours leaves it attached.
                Ok(()) => Ok(Outcome::Changed),
                Err(e) => {
                    let path = lo.path.clone();
                    match lo.undo() {
                        Ok(loopdev::Detach::Done) => {}
                        Ok(loopdev::Detach::Deferred) => deferred(&path),
                        Err(undo) => tracing::error!("{undo}"),
                    }
                    Err(e)
                }
            }
        }
        Device::Block(dev, _) | Device::Other(dev) => {
            fsck_and_mount(spec, &dev, &opts).map(|()| Outcome::Changed)
        }
    }
}

fn fsck_and_mount(
    spec: &FsSpec,
    source: &Path,
    opts: &options::MountOptions,
) -> Result<(), DriverError> {
    refuse_if_mounted_elsewhere(source)?;
    if matches!(spec.fs_type.as_str(), "ext2" | "ext3" | "ext4") {
        if opts.read_only() {
            // e2fsck -p needs write access, and a read-only mount must not change the disk.
            tracing::info!("skip e2fsck: {} is mounted read-only", source.display());
        } else {
            fsck(source)?;
        }
    }
    if !spec.mnt.exists() {
        tracing::info!("mkdir -p {}", spec.mnt.display());
        std::fs::create_dir_all(&spec.mnt).map_err(|e| {
            DriverError::io(format!("create mount point {}", spec.mnt.display()), e)
        })?;
    }
    let line = mount_line(spec, source);
    tracing::info!("{line}");
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    nix::mount::mount(
        Some(source),
        &spec.mnt,
        Some(spec.fs_type.as_str()),
        opts.flags,
        data,
    )
    .map_err(|e| DriverError::io(line, std::io::Error::from(e)))
}

/// `e2fsck -p` the device, unless it is mounted somewhere already (e2fsck would refuse).
fn fsck(dev: &Path) -> Result<(), DriverError> {
    if let Ok(m) = std::fs::metadata(dev)
        && m.file_type().is_block_device()
    {
        let id = major_minor(m.rdev());
        if let Some(e) = mountinfo::read()?.iter().find(|e| (e.major, e.minor) == id) {
            tracing::info!(
                "skip e2fsck: {} is mounted on {}",
                dev.display(),
                e.mount_point.display()
            );
            return Ok(());
        }
    }
    wait_released(dev)?;
    let line = format!("e2fsck -p {}", dev.display());
    tracing::info!("{line}");
    let out = Command::new("e2fsck")
        .arg("-p")
        .arg(dev)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DriverError::io(format!("run {line}"), e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !text.trim().is_empty() {
        tracing::info!("output:\n{}", text.trim_end());
    }
    match out.status.code() {
        // 0: clean; 1: errors corrected.
        Some(0 | 1) => Ok(()),
        code => Err(DriverError::Command {
            command: line,
            code: code.unwrap_or(-1),
            output: text.trim().to_string(),
        }),
    }
}

/// How long a start waits for the kernel to let go of a device nothing mounts any more.
const RELEASE_BOUND: Duration = Duration::from_secs(3);

/// Wait until `dev` can be claimed exclusively, as e2fsck will claim it. A mount namespace
/// whose last process just died releases its mounts a moment later (the kernel tears the
/// namespace down after the process is reaped), so a start right after such a death would see
/// e2fsck's bare "in use". Past the bound the start fails naming the device.
fn wait_released(dev: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + RELEASE_BOUND;
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_EXCL.bits())
            .open(dev)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => {
                if Instant::now() >= deadline {
                    return Err(DriverError::Refused(format!(
                        "{} is in use: not mounted in any mount namespace, yet still claimed \
                         after {} s (another fsck, a device-mapper or md holder, or a swap?)",
                        dev.display(),
                        RELEASE_BOUND.as_secs()
                    )));
                }
                std::thread::sleep(POLL);
            }
            // Not a block device we may open this way: e2fsck reports what is wrong.
            Err(_) => return Ok(()),
        }
    }
}

/// Stop: unmount `mnt`, killing what holds it, within `stop_timeout`.
pub fn stop(spec: &FsSpec) -> Result<Outcome, DriverError> {
    let entries = mountinfo::read()?;
    let Some(entry) = find_mount(&entries, &spec.mnt) else {
        // Not mounted here; maybe still in another mount namespace (a stop that failed there).
        let devices: Vec<(u32, u32)> = match classify(&spec.dev) {
            Ok(Device::Block(_, id)) => vec![id],
            Ok(Device::Image(image)) => loopdev::backed_by(&image).iter().map(|a| a.dev).collect(),
            _ => Vec::new(),
        };
        let elsewhere: Vec<(u32, u32)> = devices
            .into_iter()
            .filter(|id| !namespaces::holding(*id).is_empty())
            .collect();
        if elsewhere.is_empty() {
            tracing::info!(
                "fs({} {}) is already umounted",
                spec.dev.display(),
                spec.mnt.display()
            );
            return Ok(Outcome::AlreadyDone);
        }
        for id in elsewhere {
            umount_elsewhere(&spec.mnt, id)?;
        }
        if let Ok(Device::Image(image)) = classify(&spec.dev) {
            detach_unused(&image)?;
        }
        return Ok(Outcome::Changed);
    };
    if !same_source(entry, &spec.dev) {
        // Not this resource's filesystem (another service's, or mounted by hand): unmounting it
        // would take it from its owner.
        tracing::info!("{}: left alone", foreign(entry, spec));
        return Ok(Outcome::AlreadyDone);
    }
    let id = (entry.major, entry.minor);
    let unique = entries.iter().filter(|e| (e.major, e.minor) == id).count() == 1;
    let target = Target {
        mnt: entry.mount_point.clone(),
        dev: unique.then(|| libc::makedev(id.0, id.1)),
    };
    tracing::info!("umount {}", spec.mnt.display());
    umount_bounded(&target, spec.stop_timeout)?;
    umount_elsewhere(&spec.mnt, id)?;
    if let Ok(Device::Image(image)) = classify(&spec.dev) {
        detach_unused(&image)?;
    }
    Ok(Outcome::Changed)
}

/// Unmount device `id` in the other mount namespaces that still hold a copy of its mount (a
/// process unshared its namespace while it was mounted). What cannot be unmounted there fails
/// the stop, naming the processes of that namespace: stop never reports success while the
/// device is still mounted somewhere.
fn umount_elsewhere(mnt: &Path, id: (u32, u32)) -> Result<(), DriverError> {
    let foreign = namespaces::holding(id);
    if foreign.is_empty() {
        return Ok(());
    }
    let mut failures = Vec::new();
    for fm in &foreign {
        let points: Vec<String> = fm
            .mount_points
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        tracing::info!(
            "umount {} in the mount namespace {} of {}",
            points.join(", "),
            fm.ns.display(),
            fm.holders()
        );
        if let Err(e) = namespaces::unmount_in(fm) {
            tracing::warn!("{e}");
        }
    }
    for fm in namespaces::holding(id) {
        failures.push(format!(
            "in the mount namespace {} of {}",
            fm.ns.display(),
            fm.holders()
        ));
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(DriverError::Refused(format!(
        "umount {}: not mounted here, but its device {}:{} is still mounted {} (they keep it \
         busy: stop them, or unmount it there)",
        mnt.display(),
        id.0,
        id.1,
        failures.join("; ")
    )))
}

/// Refuse to fsck or mount `source` (a block or loop device) while it is mounted in another
/// mount namespace, naming the processes there (e2fsck would only say "in use").
fn refuse_if_mounted_elsewhere(source: &Path) -> Result<(), DriverError> {
    let Ok(m) = std::fs::metadata(source) else {
        return Ok(());
    };
    if !m.file_type().is_block_device() {
        return Ok(());
    }
    let id = major_minor(m.rdev());
    let foreign = namespaces::holding(id);
    if foreign.is_empty() {
        return Ok(());
    }
    let places: Vec<String> = foreign
        .iter()
        .map(|fm| {
            let points: Vec<String> = fm
                .mount_points
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            format!(
                "on {} in the mount namespace {} of {}",
                points.join(", "),
                fm.ns.display(),
                fm.holders()
            )
        })
        .collect();
    Err(DriverError::Refused(format!(
        "{} is still mounted in another mount namespace: {} (stop those processes, or unmount \
         it there: nsenter -t PID -m umount MOUNTPOINT)",
        source.display(),
        places.join("; ")
    )))
}

/// Detach the loop devices backed by `image` that are mounted nowhere (autoclear usually did).
fn detach_unused(image: &Path) -> Result<(), DriverError> {
    let loops = loopdev::backed_by(image);
    if loops.is_empty() {
        return Ok(());
    }
    let entries = mountinfo::read()?;
    for a in loops {
        if entries.iter().any(|e| (e.major, e.minor) == a.dev) {
            continue;
        }
        tracing::info!("losetup -d {}", a.path.display());
        if loopdev::detach(&a.path)? == loopdev::Detach::Deferred {
            deferred(&a.path);
        }
    }
    Ok(())
}

fn deferred(lo: &Path) {
    tracing::warn!(
        "{} is still open elsewhere: the kernel detaches it at its last close",
        lo.display()
    );
}

fn holders_list(h: &[Holder]) -> String {
    h.iter()
        .map(|h| format!("{h} {}", h.what))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a busy mount has no holder we could find.
fn busy_reason(mnt: &Path) -> String {
    let loops = loopdev::backed_under(mnt);
    if loops.is_empty() {
        "busy, and no process of this mount namespace holds it".into()
    } else {
        let l: Vec<String> = loops
            .iter()
            .map(|a| format!("{} ({})", a.path.display(), a.backing.display()))
            .collect();
        format!("busy, held by loop devices {}", l.join(", "))
    }
}

/// `umount2`; when busy, TERM the holders, KILL those still there after a grace period, and
/// retry, all within `bound`.
fn umount_bounded(target: &Target, bound: Duration) -> Result<(), DriverError> {
    let mnt = &target.mnt;
    let start = Instant::now();
    // A bound too large for an `Instant` (a `stop_timeout` of centuries) is as good as none.
    let deadline = start
        .checked_add(bound)
        .or_else(|| start.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(start);
    // The TERM grace: a fifth of the bound, between 0.2 and 2 s (1 s for the default 5 s).
    let grace = (bound / 5).clamp(Duration::from_millis(200), Duration::from_secs(2));
    let own = Pid::this().as_raw();
    let mut termed: HashMap<i32, Instant> = HashMap::new();
    let mut killed: Vec<i32> = Vec::new();
    let mut reported_busy = false;
    loop {
        match nix::mount::umount2(mnt, MntFlags::empty()) {
            Ok(()) => return Ok(()),
            // Not mounted any more: someone else unmounted it meanwhile.
            Err(Errno::EINVAL) if !is_mounted(mnt)? => return Ok(()),
            Err(Errno::EBUSY) => {}
            Err(e) => {
                return Err(DriverError::io(
                    format!("umount {}", mnt.display()),
                    std::io::Error::from(e),
                ));
            }
        }
        if !reported_busy {
            reported_busy = true;
            let below: Vec<String> = mountinfo::read()?
                .iter()
                .filter(|e| e.mount_point != *mnt && e.mount_point.starts_with(mnt))
                .map(|e| e.mount_point.display().to_string())
                .collect();
            if !below.is_empty() {
                return Err(DriverError::Refused(format!(
                    "umount {}: busy, {} mounted below it",
                    mnt.display(),
                    below.join(", ")
                )));
            }
        }
        let holders = holders::find(target);
        let now = Instant::now();
        if now >= deadline {
            let who = if holders.is_empty() {
                busy_reason(mnt)
            } else {
                format!("still held by {}", holders_list(&holders))
            };
            return Err(DriverError::Timeout {
                what: format!("umount {} ({who})", mnt.display()),
                secs: bound.as_secs_f64(),
            });
        }
        let (spared, killable): (Vec<&Holder>, Vec<&Holder>) =
            holders.iter().partition(|h| h.pid == own || h.pid == 1);
        if !spared.is_empty() && killable.is_empty() {
            let list: Vec<Holder> = spared.into_iter().cloned().collect();
            return Err(DriverError::Refused(format!(
                "umount {}: held by {}, which berth does not kill",
                mnt.display(),
                holders_list(&list)
            )));
        }
        for h in killable {
            let signal = match termed.get(&h.pid) {
                None => Signal::SIGTERM,
                Some(t) if now.duration_since(*t) >= grace && !killed.contains(&h.pid) => {
                    Signal::SIGKILL
                }
                Some(_) => continue,
            };
            let name = if signal == Signal::SIGTERM {
                "TERM"
            } else {
                "KILL"
            };
            tracing::info!(
                "kill -{name} {} ({}) holding {}: {}",
                h.pid,
                h.comm,
                mnt.display(),
                h.what
            );
            match kill(Pid::from_raw(h.pid), signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => tracing::warn!("kill -{name} {}: {e}", h.pid),
            }
            if signal == Signal::SIGTERM {
                termed.insert(h.pid, now);
            } else {
                killed.push(h.pid);
            }
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dev: &str, mnt: &str, opts: Option<&str>) -> FsSpec {
        FsSpec {
            dev: dev.into(),
            mnt: mnt.into(),
            fs_type: "ext4".into(),
            mnt_opt: opts.map(Into::into),
            stop_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn label_is_dev_at_mnt() {
        assert_eq!(
            label(&spec("/dev/vg/lv", "/srv/web", None)),
            "/dev/vg/lv@/srv/web"
        );
    }

    #[test]
    fn mount_lines() {
        let s = spec("/dev/x", "/srv/a b", Some("rw"));
        assert_eq!(
            mount_line(&s, Path::new("/dev/x")),
            "mount -t ext4 -o rw /dev/x /srv/a b"
        );
        let s = spec("/dev/x", "/srv", None);
        assert_eq!(
            mount_line(&s, Path::new("/dev/loop3")),
            "mount -t ext4 /dev/loop3 /srv"
        );
    }

    #[test]
    fn missing_device_is_named() {
        let e = classify(Path::new("/nonexistent/berth-dev")).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "device /nonexistent/berth-dev does not exist"
        );
        assert!(matches!(classify(Path::new("tmpfs")), Ok(Device::Other(_))));
    }

    #[test]
    fn a_huge_stop_timeout_does_not_panic() {
        // `stop_timeout = 9223372036854775807` parses; `Instant + bound` overflowed and panicked.
        let target = Target {
            mnt: "/nonexistent/berth-mnt".into(),
            dev: None,
        };
        let e = umount_bounded(&target, Duration::from_secs(i64::MAX as u64)).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/berth-mnt"), "{e}");
    }

    #[test]
    fn unmounted_path_is_down() {
        let s = spec("/nonexistent/berth-dev", "/nonexistent/berth-mnt", None);
        let st = status(&s);
        assert_eq!(st.status, Status::Down);
        assert_eq!(st.label, "/nonexistent/berth-dev@/nonexistent/berth-mnt");
        assert_eq!(
            st.log,
            [LogEntry::info(
                "device /nonexistent/berth-dev does not exist"
            )]
        );
        assert!(!is_mounted(Path::new("/nonexistent/berth-mnt")).expect("mountinfo"));
        assert!(is_mounted(Path::new("/")).expect("mountinfo"));
    }
}
