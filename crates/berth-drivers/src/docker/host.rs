//! What the docker driver reads from the host besides the daemon's API: processes in `/proc`,
//! disk usage under the data root, and mounts a crashed dockerd leaves behind.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::mount::MntFlags;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`dockerd`, `containerd`).
    pub comm: String,
    /// Its state letter (`S`, `R`, `Z`...).
    pub state: char,
    /// Its parent's pid.
    pub ppid: i32,
    /// When it started, in clock ticks after boot (0 when not shown): with the pid, it names
    /// one process, where the pid alone may be reused once the process is gone.
    pub start: u64,
}

/// The process `pid`, if it exists.
pub(crate) fn proc_of(pid: i32) -> Option<Proc> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(Proc {
        pid: stat.pid,
        comm: stat.comm,
        state: stat.state,
        ppid: stat.ppid,
        start: stat.starttime,
    })
}

/// Whether `pid` runs (a zombie does not: it only waits to be reaped).
pub(crate) fn alive(pid: i32) -> bool {
    proc_of(pid).is_some_and(|p| !matches!(p.state, 'Z' | 'X' | 'x'))
}

/// A handle on one process (a pidfd): signals sent through it reach that process or nobody,
/// even once its pid is reused by another.
#[derive(Debug)]
pub(crate) struct ProcHandle {
    pid: i32,
    fd: OwnedFd,
}

impl ProcHandle {
    /// A handle on the live process `pid` when `is_it` holds for it. `Ok(None)` when there is
    /// no such process (any more). The process is read before and after the pidfd is opened,
    /// with the same start time: the handle names the process that was checked.
    pub(crate) fn open(pid: i32, is_it: impl Fn(&Proc) -> bool) -> std::io::Result<Option<Self>> {
        let live = |p: &Proc| !matches!(p.state, 'Z' | 'X' | 'x');
        let Some(before) = proc_of(pid).filter(|p| live(p) && is_it(p)) else {
            return Ok(None);
        };
        // SAFETY: pidfd_open(2) takes a pid and flags by value and touches no memory of ours;
        // the result is checked before use.
        let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ESRCH) {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let raw = i32::try_from(rc).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: raw is a fresh pidfd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let same = proc_of(pid).is_some_and(|p| live(&p) && p.start == before.start);
        Ok(same.then_some(ProcHandle { pid, fd }))
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether it has exited (a zombie has).
    pub(crate) fn exited(&self) -> bool {
        let mut pfd = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::ZERO) {
            Ok(n) => n > 0,
            Err(_) => false,
        }
    }

    /// Send `sig`; a process that already exited is not an error.
    pub(crate) fn signal(&self, sig: Signal) -> std::io::Result<()> {
        // SAFETY: pidfd_send_signal(2) with our open pidfd, a valid signal number, a null
        // siginfo (allowed: the kernel fills it as kill(2) would) and no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Every live process.
pub(crate) fn all_procs() -> Vec<Proc> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| proc_of(p.pid()))
        .filter(|p| !matches!(p.state, 'Z' | 'X' | 'x'))
        .collect()
}

/// The live children of `pid`.
pub(crate) fn children(pid: i32) -> Vec<Proc> {
    all_procs().into_iter().filter(|p| p.ppid == pid).collect()
}

/// The command line of `pid`, word by word (empty when it is gone or not UTF-8).
pub(crate) fn cmdline(pid: i32) -> Vec<String> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.cmdline())
        .unwrap_or_default()
}

/// Resident memory of `pid` in bytes (0 when gone).
pub(crate) fn rss(pid: i32) -> u64 {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmrss)
        .map_or(0, |kb| kb * 1024)
}

/// Bytes used under `root`, as `du -sx` counts them: allocated blocks, each inode once, not
/// crossing into other filesystems (a running container's overlay, for instance).
pub(crate) fn disk_usage(root: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(root) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut total = top.blocks() * 512;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Entries in a directory (0 when it cannot be read).
pub(crate) fn count_entries(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().count() as u64)
        .unwrap_or(0)
}

/// Detach the bind mount dockerd puts on its data root (to make it a shared mount) when that
/// dockerd died without removing it: a bind of the data root's own directory onto itself,
/// stacked on the mount that holds the directory (the service's fs, when the data root is its
/// mount point). A filesystem mounted there is another device or directory, and is left alone.
pub(crate) fn drop_self_bind(data_root: &Path) -> Result<bool, crate::DriverError> {
    let entries = crate::fs::mountinfo::read()?;
    let target = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let Some(top) = entries.iter().rev().find(|e| e.mount_point == target) else {
        return Ok(false);
    };
    let Some(parent) = entries.iter().find(|e| e.id == top.parent) else {
        return Ok(false);
    };
    let Ok(rel) = target.strip_prefix(&parent.mount_point) else {
        return Ok(false);
    };
    let self_bind =
        (top.major, top.minor) == (parent.major, parent.minor) && top.root == parent.root.join(rel);
    if !self_bind {
        return Ok(false);
    }
    nix::mount::umount2(&target, MntFlags::MNT_DETACH).map_err(|e| {
        crate::DriverError::io(
            format!("umount {}", target.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_it_is() {
        let me = proc_of(i32::try_from(std::process::id()).unwrap()).unwrap();
        assert_eq!(me.ppid, nix::unistd::getppid().as_raw());
        assert!(me.start > 0);
        assert!(
            cmdline(me.pid)[0].contains("berth_drivers"),
            "{:?}",
            cmdline(me.pid)
        );
        assert!(all_procs().iter().any(|p| p.pid == me.pid));
        assert!(children(me.ppid).iter().any(|p| p.pid == me.pid));
    }

    #[test]
    fn this_process_is_alive_and_counted() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(alive(me));
        assert!(rss(me) > 0);
        assert!(!alive(i32::MAX));
    }

    #[test]
    fn a_handle_outlives_its_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(
            ProcHandle::open(pid, |p| p.comm == "not-sleep")
                .unwrap()
                .is_none()
        );
        let h = ProcHandle::open(pid, |p| p.comm == "sleep")
            .unwrap()
            .unwrap();
        assert_eq!(h.pid(), pid);
        assert!(!h.exited());
        h.signal(Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        // Reaped: the pid is free for another process, and the handle reaches nobody.
        assert!(h.exited());
        h.signal(Signal::SIGKILL).unwrap();
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, vec![1u8; 64 * 1024]).unwrap();
        let one = disk_usage(dir.path());
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        assert_eq!(disk_usage(dir.path()), one);
        assert!(one >= 64 * 1024);
        assert_eq!(count_entries(dir.path()), 2);
    }
}
