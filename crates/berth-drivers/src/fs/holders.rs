//! The processes that keep a mount busy, found by scanning `/proc`.
//!
//! A process holds a mount when its cwd, root or executable, one of its open files, or one of
//! its memory mappings lies on it. Paths are compared as path prefixes of the mount point; when
//! the mount's device is mounted nowhere else, the device number (`st_dev`) is compared too,
//! which also catches deleted files and processes chrooted below the mount. Only processes in
//! our mount namespace are considered: in another namespace the same path names something else,
//! and a copy of the mount there does not keep ours busy.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use procfs::process::{FDTarget, Process};

/// A process holding a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
    /// What holds the mount (`cwd /mnt/x`, `fd 3 /mnt/log`, `map /mnt/lib.so`).
    pub what: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.comm)
    }
}

/// What identifies the mount.
#[derive(Debug, Clone)]
pub struct Target {
    /// The mount point, as mountinfo shows it.
    pub mnt: PathBuf,
    /// The mount's device as `makedev(major, minor)`, when mounted nowhere else.
    pub dev: Option<u64>,
}

impl Target {
    fn path_matches(&self, p: &Path) -> bool {
        p.starts_with(&self.mnt)
    }
    fn dev_matches(&self, link: &Path) -> bool {
        self.dev
            .is_some_and(|d| std::fs::metadata(link).is_ok_and(|m| m.dev() == d))
    }
    /// A `/proc/PID/{cwd,root,exe,fd/N}` link that reads as `path`: whether the path, or the
    /// file the link opens, lies on the mount.
    fn link_matches(&self, link: &Path, path: &Path) -> bool {
        // Sockets, pipes and anonymous inodes read as `socket:[123]`: not files.
        path.is_absolute() && (self.path_matches(path) || self.dev_matches(link))
    }
}

/// The mount namespace of a process (`mnt:[4026531841]`).
fn mnt_ns(proc_dir: &Path) -> Option<PathBuf> {
    std::fs::read_link(proc_dir.join("ns/mnt")).ok()
}

/// Why process `p` (whose directory is `proc_dir`) holds the mount, if it does.
fn holds(p: &Process, proc_dir: &Path, target: &Target) -> Option<String> {
    for (link, path) in [("cwd", p.cwd()), ("root", p.root()), ("exe", p.exe())] {
        if let Ok(path) = path
            && target.link_matches(&proc_dir.join(link), &path)
        {
            return Some(format!("{link} {}", path.display()));
        }
    }
    for fd in p.fd().into_iter().flatten().flatten() {
        if let FDTarget::Path(path) = &fd.target
            && target.link_matches(&proc_dir.join(format!("fd/{}", fd.fd)), path)
        {
            return Some(format!("fd {} {}", fd.fd, path.display()));
        }
    }
    let maps = std::fs::read(proc_dir.join("maps")).ok()?;
    maps.split(|b| *b == b'\n')
        .find_map(|line| map_matches(line, target))
        .map(|p| format!("map {}", p.display()))
}

/// A `/proc/PID/maps` line: `addr perms offset MAJ:MIN inode   path`, the device in hex.
fn map_matches(line: &[u8], target: &Target) -> Option<PathBuf> {
    let mut rest = line;
    let mut fields = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = rest.iter().position(|b| *b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let path = rest.trim_ascii_start();
    if !path.starts_with(b"/") {
        return None;
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(path)).to_path_buf();
    let dev = std::str::from_utf8(fields[3]).ok().and_then(|d| {
        let (a, b) = d.split_once(':')?;
        let major = u32::from_str_radix(a, 16).ok()?;
        let minor = u32::from_str_radix(b, 16).ok()?;
        Some(libc::makedev(major, minor))
    });
    let dev_hit = target.dev.is_some() && dev == target.dev && fields[4] != b"0";
    (target.path_matches(&path) || dev_hit).then_some(path)
}

/// Every process in our mount namespace holding `target`, by pid (our own pid included: the
/// caller decides whom it may kill).
pub fn find(target: &Target) -> Vec<Holder> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let own_ns = mnt_ns(Path::new("/proc/self"));
    let mut out = Vec::new();
    for p in all.flatten() {
        let pid = p.pid();
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if own_ns.is_some() && mnt_ns(&dir) != own_ns {
            continue;
        }
        if let Some(what) = holds(&p, &dir, target) {
            let comm = p.stat().map_or_else(|_| "?".into(), |s| s.comm);
            out.push(Holder { pid, comm, what });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(mnt: &str, dev: Option<u64>) -> Target {
        Target {
            mnt: PathBuf::from(mnt),
            dev,
        }
    }

    #[test]
    fn maps_lines() {
        let t = target("/srv/web", None);
        let line = b"7f1c2e000000-7f1c2e022000 r--p 00000000 07:03 12         /srv/web/lib/a b.so";
        assert_eq!(
            map_matches(line, &t),
            Some(PathBuf::from("/srv/web/lib/a b.so"))
        );
        let other = b"7f1c2e000000-7f1c2e022000 r--p 00000000 fe:01 12   /srv/webx/lib.so";
        assert_eq!(map_matches(other, &t), None);
        let anon =
            b"7ffd5f1d1000-7ffd5f1f2000 rw-p 00000000 00:00 0                          [stack]";
        assert_eq!(map_matches(anon, &t), None);
        assert_eq!(map_matches(b"short line", &t), None);
    }

    #[test]
    fn maps_by_device() {
        let t = target("/srv/web", Some(libc::makedev(7, 3)));
        let deleted = b"7f1c2e000000-7f1c2e022000 r--p 00000000 07:03 12  /old/path (deleted)";
        assert!(map_matches(deleted, &t).is_some());
        let t2 = target("/srv/web", Some(libc::makedev(254, 1)));
        let hex = b"7f1c2e000000-7f1c2e022000 r--p 00000000 fe:01 12  /usr/lib/x.so";
        assert!(map_matches(hex, &t2).is_some());
    }

    #[test]
    fn prefix_is_by_component() {
        let t = target("/mnt/a", None);
        assert!(t.path_matches(Path::new("/mnt/a")));
        assert!(t.path_matches(Path::new("/mnt/a/b")));
        assert!(!t.path_matches(Path::new("/mnt/ab")));
    }

    #[test]
    fn finds_our_own_cwd_holder() {
        // Our cwd lies under "/" (everything does): we find ourselves, and the caller skips us.
        let me = i32::try_from(std::process::id()).unwrap();
        let cwd = std::env::current_dir().expect("cwd");
        let all = find(&target(cwd.to_str().expect("utf-8"), None));
        assert!(all.iter().any(|h| h.pid == me), "{all:?}");
    }
}
