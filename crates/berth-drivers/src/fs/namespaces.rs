//! Copies of a mount in other mount namespaces.
//!
//! A process that unshares its mount namespace (`unshare -m`, systemd's `PrivateTmp=`, container
//! runtimes) while a filesystem is mounted gets its own copy of that mount. With private
//! propagation, our umount does not reach the copy: the device stays mounted there, busy (a
//! loop device cannot be detached, e2fsck refuses it "in use"). These are found by reading the
//! mountinfo of one process per mount namespace other than ours, matching the device
//! (`major:minor`), and unmounted there by a child that enters that namespace (`setns`) and
//! runs `umount`.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use super::mountinfo;

/// The mounts of one device in one foreign mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForeignMount {
    /// The namespace, as `/proc/PID/ns/mnt` reads (`mnt:[4026532310]`).
    pub ns: PathBuf,
    /// The processes in it (sorted), with their command names.
    pub pids: Vec<(i32, String)>,
    /// Where the device is mounted there, as that namespace sees it, in mountinfo order.
    pub mount_points: Vec<PathBuf>,
}

impl ForeignMount {
    /// `pid 123 (sleep), pid 124 (sh)`, at most 5 named.
    pub(crate) fn holders(&self) -> String {
        let mut list: Vec<String> = self
            .pids
            .iter()
            .take(5)
            .map(|(pid, comm)| format!("pid {pid} ({comm})"))
            .collect();
        if self.pids.len() > 5 {
            list.push(format!("and {} more", self.pids.len() - 5));
        }
        list.join(", ")
    }
}

fn ns_of(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// Every mount namespace other than ours in which device `dev` (major, minor) is mounted.
pub(crate) fn holding(dev: (u32, u32)) -> Vec<ForeignMount> {
    let Some(ours) = ns_of("self") else {
        return Vec::new();
    };
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut by_ns: BTreeMap<PathBuf, Vec<i32>> = BTreeMap::new();
    for pid in all.flatten().map(|p| p.pid()) {
        match ns_of(&pid.to_string()) {
            Some(ns) if ns != ours => by_ns.entry(ns).or_default().push(pid),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (ns, mut pids) in by_ns {
        pids.sort_unstable();
        // Any live member reads the namespace's mounts; the first may exit meanwhile.
        let Some(text) = pids
            .iter()
            .find_map(|pid| std::fs::read(format!("/proc/{pid}/mountinfo")).ok())
        else {
            continue;
        };
        let mount_points: Vec<PathBuf> = mountinfo::parse(&text)
            .into_iter()
            .filter(|m| (m.major, m.minor) == dev)
            .map(|m| m.mount_point)
            .collect();
        if mount_points.is_empty() {
            continue;
        }
        let pids = pids
            .into_iter()
            .map(|pid| {
                let comm = procfs::process::Process::new(pid)
                    .and_then(|p| p.stat())
                    .map(|s| s.comm)
                    .unwrap_or_default();
                (pid, comm)
            })
            .collect();
        out.push(ForeignMount {
            ns,
            pids,
            mount_points,
        });
    }
    out
}

/// Unmount the device's mounts in `fm`'s namespace, the last mounted first: `umount` run by a
/// child that entered the namespace. The error says what umount said.
pub(crate) fn unmount_in(fm: &ForeignMount) -> Result<(), String> {
    // The namespace is held open by its file, whichever member exits meanwhile.
    let file = fm
        .pids
        .iter()
        .find_map(|(pid, _)| std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok())
        .ok_or_else(|| "its processes are gone".to_string())?;
    let raw = file.as_raw_fd();
    for mnt in fm.mount_points.iter().rev() {
        let out =
            umount_in_ns(raw, mnt).map_err(|e| format!("run umount {}: {e}", mnt.display()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(format!("umount {}: {text}", mnt.display()));
        }
    }
    Ok(())
}

fn umount_in_ns(ns_fd: i32, mnt: &Path) -> std::io::Result<std::process::Output> {
    let mut cmd = Command::new("umount");
    cmd.arg("--")
        .arg(mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: runs in the forked child before exec: setns(2) is a single system call, async-
    // signal-safe, and touches no memory of the parent. `ns_fd` stays open in the parent until
    // `output` returns, so the child's inherited copy (closed at exec) names the namespace,
    // which makes borrowing it there sound.
    unsafe {
        cmd.pre_exec(move || {
            let fd = BorrowedFd::borrow_raw(ns_fd);
            nix::sched::setns(fd, CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)
        });
    }
    cmd.output()
}
