//! Mount options: split `mnt_opt` into the flags `mount(2)` takes and the filesystem's own
//! data string, as mount(8) does.

use nix::mount::MsFlags;

/// `mnt_opt` split for `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Generic flags (`ro`, `nosuid`, `noatime`...).
    pub flags: MsFlags,
    /// The rest, comma-joined, for the filesystem (`errors=remount-ro,commit=30`).
    pub data: String,
    /// Options only fstab and mount(8) know (`defaults`, `nofail`, `_netdev`, `x-*`...):
    /// dropped, as mount(8) drops them.
    pub dropped: Vec<String>,
}

impl MountOptions {
    /// Whether the mount is read-only (a loop device is then attached read-only too).
    pub fn read_only(&self) -> bool {
        self.flags.contains(MsFlags::MS_RDONLY)
    }
}

/// What one generic option does to the flags.
enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
}

fn generic(opt: &str) -> Option<Effect> {
    use Effect::{Clear, Set};
    let f = match opt {
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "nolazytime" => Clear(MsFlags::MS_LAZYTIME),
        "iversion" => Set(MsFlags::MS_I_VERSION),
        "noiversion" => Clear(MsFlags::MS_I_VERSION),
        "silent" => Set(MsFlags::MS_SILENT),
        "loud" => Clear(MsFlags::MS_SILENT),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND.union(MsFlags::MS_REC)),
        _ => return None,
    };
    Some(f)
}

/// Options mount(8) handles itself and never passes to the kernel.
fn userspace_only(opt: &str) -> bool {
    matches!(
        opt,
        "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "nofail"
            | "_netdev"
            | "loop"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
        || opt.starts_with("loop=")
}

/// Split a comma-separated option string. Later options win (`ro,rw` is read-write).
pub fn split(opts: Option<&str>) -> MountOptions {
    let mut flags = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    let mut dropped = Vec::new();
    for opt in opts
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        match generic(opt) {
            Some(Effect::Set(f)) => flags.insert(f),
            Some(Effect::Clear(f)) => flags.remove(f),
            None if userspace_only(opt) => dropped.push(opt.to_string()),
            None => data.push(opt),
        }
    }
    MountOptions {
        flags,
        data: data.join(","),
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_empty() {
        for o in [None, Some(""), Some(" , ,")] {
            let m = split(o);
            assert_eq!(m.flags, MsFlags::empty());
            assert_eq!(m.data, "");
            assert!(m.dropped.is_empty());
        }
    }

    #[test]
    fn flags_and_data() {
        let m = split(Some(
            "ro,noatime,nosuid,nodev,noexec,sync,errors=remount-ro,commit=30",
        ));
        assert_eq!(
            m.flags,
            MsFlags::MS_RDONLY
                | MsFlags::MS_NOATIME
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_SYNCHRONOUS
        );
        assert_eq!(m.data, "errors=remount-ro,commit=30");
        assert!(m.read_only());
    }

    #[test]
    fn later_options_win() {
        assert!(!split(Some("ro,rw")).read_only());
        assert!(split(Some("rw,ro")).read_only());
        assert_eq!(split(Some("noatime,atime")).flags, MsFlags::empty());
        assert_eq!(
            split(Some("relatime,norelatime,strictatime")).flags,
            MsFlags::MS_STRICTATIME
        );
    }

    #[test]
    fn rw_alone_is_no_flag() {
        let m = split(Some("rw"));
        assert_eq!(m.flags, MsFlags::empty());
        assert_eq!(m.data, "");
        assert!(!m.read_only());
    }

    #[test]
    fn userspace_options_are_dropped() {
        let m = split(Some(
            "defaults,nofail,_netdev,x-systemd.automount,user_xattr,noauto",
        ));
        assert_eq!(m.flags, MsFlags::empty());
        assert_eq!(m.data, "user_xattr");
        assert_eq!(
            m.dropped,
            [
                "defaults",
                "nofail",
                "_netdev",
                "x-systemd.automount",
                "noauto"
            ]
        );
    }

    #[test]
    fn bind_and_spaces() {
        let m = split(Some(" rbind , ro "));
        assert_eq!(
            m.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(
            split(Some("relatime,lazytime,dirsync")).flags,
            MsFlags::MS_RELATIME | MsFlags::MS_LAZYTIME | MsFlags::MS_DIRSYNC
        );
    }
}
