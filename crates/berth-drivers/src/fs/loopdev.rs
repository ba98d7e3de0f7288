//! Loop devices: find the ones backed by an image file, attach a new one, detach.
//!
//! Attaching uses `LOOP_CTL_GET_FREE` on `/dev/loop-control` then `LOOP_CONFIGURE` (one ioctl,
//! Linux >= 5.8), falling back to `LOOP_SET_FD` + `LOOP_SET_STATUS64` on older kernels. Devices
//! are attached with `LO_FLAGS_AUTOCLEAR`: the kernel detaches them at the last close, that is at
//! umount once mounted.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::DriverError;

const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;

const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

const SYS_BLOCK: &str = "/sys/block";

/// `struct loop_info64` from `<linux/loop.h>`.
#[repr(C)]
#[derive(Debug)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
#[derive(Debug)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

impl LoopInfo64 {
    fn new(image: &Path, flags: u32) -> Self {
        let mut name = [0u8; LO_NAME_SIZE];
        let bytes = image.as_os_str().as_bytes();
        let n = bytes.len().min(LO_NAME_SIZE - 1);
        name[..n].copy_from_slice(&bytes[..n]);
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: name,
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

/// A loop device backing an image for the length of a start.
#[derive(Debug)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub path: PathBuf,
    /// Whether this start attached it (and so detaches it again on failure).
    pub attached_here: bool,
    /// The open device, held until the mount holds it (else autoclear would detach it).
    file: Option<File>,
}

impl LoopDevice {
    /// Detach it when this start attached it (a start that failed); a reused device is left as
    /// it was found.
    pub fn undo(mut self) -> Result<Detach, DriverError> {
        if !self.attached_here {
            return Ok(Detach::Done);
        }
        tracing::info!("losetup -d {}", self.path.display());
        if let Some(f) = self.file.take() {
            clear_fd(&f, &self.path)?;
        }
        Ok(wait_detached(&self.path))
    }
}

/// A loop device attached to a file, as `/sys/block/loopN` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// `/dev/loopN`.
    pub path: PathBuf,
    /// Major and minor numbers.
    pub dev: (u32, u32),
    /// The backing file as the kernel names it.
    pub backing: PathBuf,
    /// Read-only.
    pub read_only: bool,
    /// The whole file (no offset, no size limit).
    pub whole: bool,
}

fn read_sys(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// Every bound loop device.
pub fn attached() -> Vec<Attached> {
    let Ok(entries) = std::fs::read_dir(SYS_BLOCK) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.as_bytes().starts_with(b"loop") {
            continue;
        }
        let dir = e.path();
        let Some(backing) = read_sys(&dir, "loop/backing_file") else {
            continue;
        };
        let Some(dev) = read_sys(&dir, "dev").and_then(|d| {
            let (a, b) = d.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        }) else {
            continue;
        };
        let zero = |f| read_sys(&dir, f).is_none_or(|v| v == "0");
        out.push(Attached {
            path: Path::new("/dev").join(&name),
            dev,
            backing: PathBuf::from(backing.trim_end_matches(" (deleted)")),
            read_only: read_sys(&dir, "ro").is_some_and(|v| v == "1"),
            whole: zero("loop/offset") && zero("loop/sizelimit"),
        });
    }
    out.sort_by_key(|a| a.dev);
    out
}

/// The loop devices backed by `image` (same path once resolved, or same file).
pub fn backed_by(image: &Path) -> Vec<Attached> {
    let canon = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let id = std::fs::metadata(&canon).ok().map(|m| (m.dev(), m.ino()));
    attached()
        .into_iter()
        .filter(|a| {
            a.backing == canon
                || (id.is_some()
                    && std::fs::metadata(&a.backing)
                        .ok()
                        .map(|m| (m.dev(), m.ino()))
                        == id)
        })
        .collect()
}

/// The loop devices whose backing file lies under `dir`.
pub fn backed_under(dir: &Path) -> Vec<Attached> {
    attached()
        .into_iter()
        .filter(|a| a.backing.starts_with(dir))
        .collect()
}

// SAFETY (for the three helpers below): each passes an open file descriptor and, when it takes
// one, a pointer to a live, properly laid out `#[repr(C)]` struct that outlives the call; the
// kernel reads it and does not keep the pointer.
fn ioctl_none(f: &File, req: libc::Ioctl) -> Result<i32, Errno> {
    // SAFETY: see above; this request takes no argument.
    Errno::result(unsafe { libc::ioctl(f.as_raw_fd(), req) })
}

fn ioctl_int(f: &File, req: libc::Ioctl, arg: libc::c_ulong) -> Result<i32, Errno> {
    // SAFETY: see above; this request takes an integer argument.
    Errno::result(unsafe { libc::ioctl(f.as_raw_fd(), req, arg) })
}

fn ioctl_ptr<T>(f: &File, req: libc::Ioctl, arg: &T) -> Result<i32, Errno> {
    // SAFETY: see above; `arg` is a valid reference for the whole call.
    Errno::result(unsafe { libc::ioctl(f.as_raw_fd(), req, std::ptr::from_ref(arg)) })
}

fn errno_io(what: String, e: Errno) -> DriverError {
    DriverError::io(what, std::io::Error::from(e))
}

/// Attach `image` to a free loop device, with autoclear (and read-only when asked).
pub fn attach(image: &Path, read_only: bool) -> Result<LoopDevice, DriverError> {
    let backing = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(image)
        .map_err(|e| DriverError::io(format!("open image {}", image.display()), e))?;
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| DriverError::io("open /dev/loop-control", e))?;
    let flags = LO_FLAGS_AUTOCLEAR | if read_only { LO_FLAGS_READ_ONLY } else { 0 };
    let name = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    let mut last = Errno::EBUSY;
    // Another process may take the free device between GET_FREE and CONFIGURE: try again.
    for _ in 0..16 {
        let n = ioctl_none(&ctl, LOOP_CTL_GET_FREE)
            .map_err(|e| errno_io("find a free loop device (LOOP_CTL_GET_FREE)".into(), e))?;
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(5));
                last = Errno::ENOENT;
                continue;
            }
            Err(e) => return Err(DriverError::io(format!("open {}", path.display()), e)),
        };
        let fd = u32::try_from(backing.as_raw_fd())
            .map_err(|_| errno_io(format!("attach {}", image.display()), Errno::EBADF))?;
        let config = LoopConfig {
            fd,
            block_size: 0,
            info: LoopInfo64::new(&name, flags),
            reserved: [0; 8],
        };
        let res = match ioctl_ptr(&dev, LOOP_CONFIGURE, &config) {
            // Kernels before 5.8 have no LOOP_CONFIGURE.
            Err(Errno::EINVAL | Errno::ENOTTY) => set_fd_then_status(&dev, &backing, &name, flags),
            r => r.map(drop),
        };
        match res {
            Ok(()) => {
                tracing::info!("losetup {} {}", path.display(), image.display());
                return Ok(LoopDevice {
                    path,
                    attached_here: true,
                    file: Some(dev),
                });
            }
            Err(Errno::EBUSY) => last = Errno::EBUSY,
            Err(e) => {
                return Err(errno_io(
                    format!("attach {} to {}", image.display(), path.display()),
                    e,
                ));
            }
        }
    }
    Err(errno_io(
        format!("attach {} to a loop device", image.display()),
        last,
    ))
}

fn set_fd_then_status(dev: &File, backing: &File, name: &Path, flags: u32) -> Result<(), Errno> {
    let fd = libc::c_ulong::try_from(backing.as_raw_fd()).map_err(|_| Errno::EBADF)?;
    ioctl_int(dev, LOOP_SET_FD, fd)?;
    let info = LoopInfo64::new(name, flags);
    if let Err(e) = ioctl_ptr(dev, LOOP_SET_STATUS64, &info) {
        let _ = ioctl_none(dev, LOOP_CLR_FD);
        return Err(e);
    }
    Ok(())
}

/// A loop device already backed by the whole of `image` (and writable unless `read_only`), or a
/// new one attached to it.
pub fn find_or_attach(image: &Path, read_only: bool) -> Result<LoopDevice, DriverError> {
    if let Some(a) = backed_by(image)
        .into_iter()
        .find(|a| a.whole && (read_only || !a.read_only))
    {
        tracing::info!(
            "{} is already attached to {}",
            image.display(),
            a.path.display()
        );
        return Ok(LoopDevice {
            path: a.path,
            attached_here: false,
            file: None,
        });
    }
    attach(image, read_only)
}

fn clear_fd(f: &File, path: &Path) -> Result<(), DriverError> {
    match ioctl_none(f, LOOP_CLR_FD) {
        // ENXIO: not bound (any more).
        Ok(_) | Err(Errno::ENXIO) => Ok(()),
        Err(e) => Err(errno_io(format!("detach {}", path.display()), e)),
    }
}

/// What a detach came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// The device is unbound.
    Done,
    /// Someone still has it open (a copy of the mount in another namespace, a process): the
    /// kernel unbinds it at the last close (`LOOP_CLR_FD` set autoclear).
    Deferred,
}

/// How long a detach waits for the kernel to unbind the device.
const DETACH_WAIT: Duration = Duration::from_millis(500);

/// Detach a loop device (`losetup -d`), and wait (briefly) for the kernel to finish.
pub fn detach(path: &Path) -> Result<Detach, DriverError> {
    match OpenOptions::new().read(true).open(path) {
        Ok(f) => clear_fd(&f, path)?,
        // ENXIO: already being torn down; ENOENT: gone.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENOENT)) => {}
        Err(e) => return Err(DriverError::io(format!("open {}", path.display()), e)),
    }
    Ok(wait_detached(path))
}

/// The kernel unbinds at the last close: wait until sysfs says so.
fn wait_detached(path: &Path) -> Detach {
    let Some(name) = path.file_name() else {
        return Detach::Done;
    };
    let backing = Path::new(SYS_BLOCK).join(name).join("loop/backing_file");
    let deadline = Instant::now() + DETACH_WAIT;
    while backing.exists() {
        if Instant::now() >= deadline {
            return Detach::Deferred;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Detach::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn name_is_truncated_and_terminated() {
        let long = "/x".repeat(100);
        let info = LoopInfo64::new(Path::new(&long), LO_FLAGS_AUTOCLEAR);
        assert_eq!(info.lo_file_name[LO_NAME_SIZE - 1], 0);
        assert_eq!(&info.lo_file_name[..2], b"/x");
        assert_eq!(info.lo_flags, LO_FLAGS_AUTOCLEAR);
    }
}
