//! A decoder for `/proc/self/mountinfo`.
//!
//! The kernel escapes space, tab, newline and backslash in paths as `\040`, `\011`, `\012` and
//! `\134`; paths may hold any other byte, so they are decoded as bytes, not UTF-8.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::DriverError;

/// The file read by [`read`].
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of mountinfo: one mount, as this process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mount id.
    pub id: u32,
    /// The parent mount's id.
    pub parent: u32,
    /// The major number of the filesystem's device (`st_dev`).
    pub major: u32,
    /// The minor number of the filesystem's device.
    pub minor: u32,
    /// The directory of the filesystem mounted here (`/` unless a bind mount of a subdir).
    pub root: PathBuf,
    /// The mount point.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,relatime`).
    pub options: String,
    /// The filesystem type (`ext4`).
    pub fs_type: String,
    /// The mount source (`/dev/loop3`, `tmpfs`).
    pub source: OsString,
    /// Per-superblock options.
    pub super_options: String,
}

impl MountEntry {
    /// The source as a path, for display and comparison.
    pub fn source_path(&self) -> &Path {
        Path::new(&self.source)
    }
}

/// Decode the octal escapes (`\NNN`) of one mountinfo field. A backslash not followed by
/// three octal digits is kept as it is.
pub fn decode(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
        {
            let v = field[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

fn decode_path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(decode(field)))
}

/// Parse one mountinfo line; `None` when malformed.
pub fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    // id parent major:minor root mount_point options [optional...] - fs_type source super_options
    let sep = fields.iter().skip(6).position(|f| *f == b"-")? + 6;
    if fields.len() < sep + 4 {
        return None;
    }
    let num = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u32>().ok();
    let (major, minor) = {
        let dev = std::str::from_utf8(fields[2]).ok()?;
        let (a, b) = dev.split_once(':')?;
        (a.parse().ok()?, b.parse().ok()?)
    };
    let text = |f: &[u8]| String::from_utf8_lossy(&decode(f)).into_owned();
    Some(MountEntry {
        id: num(fields[0])?,
        parent: num(fields[1])?,
        major,
        minor,
        root: decode_path(fields[3]),
        mount_point: decode_path(fields[4]),
        options: text(fields[5]),
        fs_type: text(fields[sep + 1]),
        source: OsString::from_vec(decode(fields[sep + 2])),
        super_options: text(fields[sep + 3]),
    })
}

/// Parse a whole mountinfo text, skipping malformed lines.
pub fn parse(text: &[u8]) -> Vec<MountEntry> {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse_line)
        .collect()
}

/// Read and parse `/proc/self/mountinfo`.
pub fn read() -> Result<Vec<MountEntry>, DriverError> {
    let text =
        std::fs::read(MOUNTINFO).map_err(|e| DriverError::io(format!("read {MOUNTINFO}"), e))?;
    Ok(parse(&text))
}

/// The mount table for a status: the walk's shared table inside [`crate::reads::with`], else
/// [`read`]. Starts and stops always [`read`] afresh.
pub fn read_for_status() -> Result<std::sync::Arc<Vec<MountEntry>>, DriverError> {
    if let Some(t) = crate::reads::current().and_then(|r| r.shared(|| read().ok())) {
        return Ok(t);
    }
    Ok(std::sync::Arc::new(read()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 27 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
95 27 7:3 / /tmp/b1/a\\040mount\\011point\\012x rw,noatime shared:50 master:3 - ext4 /dev/loop3 rw
96 27 7:4 /sub /srv/back\\134slash rw - ext4 /dev/my\\040disk rw,stripe=4
97 27 0:50 / /run/tmp rw - tmpfs tmpfs rw,size=1024k
";

    #[test]
    fn shared_reads_once_and_only_inside() {
        use crate::reads::{StatusReads, with};
        use std::sync::Arc;
        let a = read_for_status().unwrap();
        let b = read_for_status().unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "outside: a read each time");
        let reads = Arc::new(StatusReads::new());
        with(&reads, || {
            let c = read_for_status().unwrap();
            let other = Arc::new(StatusReads::new());
            let d = with(&other, read_for_status).unwrap();
            assert!(Arc::ptr_eq(&c, &d), "inside: one read, the outer walk's");
            assert_eq!(*c, *a, "the same table");
        });
        assert_eq!(reads.reads_made(), 1);
        let e = read_for_status().unwrap();
        let f = read_for_status().unwrap();
        assert!(!Arc::ptr_eq(&e, &f), "after: a read each time again");
        // Past its bound, a walk reads afresh.
        let old = Arc::new(StatusReads::within(std::time::Duration::ZERO));
        with(&old, || {
            let g = read_for_status().unwrap();
            let h = read_for_status().unwrap();
            assert!(!Arc::ptr_eq(&g, &h), "past the bound: a read each time");
        });
        assert_eq!(old.reads_made(), 0);
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(decode(b"a\\040b"), b"a b");
        assert_eq!(decode(b"\\011\\012\\134"), b"\t\n\\");
        assert_eq!(decode(b"trailing\\04"), b"trailing\\04");
        assert_eq!(decode(b"not\\089octal"), b"not\\089octal");
        assert_eq!(decode(b"\\"), b"\\");
        assert_eq!(decode(b"plain"), b"plain");
        assert_eq!(decode(b"\\303\\251"), "é".as_bytes());
    }

    #[test]
    fn parses_lines() {
        let all = parse(SAMPLE.as_bytes());
        assert_eq!(all.len(), 5);
        let root = &all[1];
        assert_eq!(root.mount_point, Path::new("/"));
        assert_eq!((root.major, root.minor), (254, 1));
        assert_eq!(root.source_path(), Path::new("/dev/vda1"));
        assert_eq!(root.super_options, "rw,errors=remount-ro");

        let sp = &all[2];
        assert_eq!(sp.mount_point, Path::new("/tmp/b1/a mount\tpoint\nx"));
        assert_eq!(sp.options, "rw,noatime");
        assert_eq!(sp.fs_type, "ext4");
        assert_eq!((sp.id, sp.parent, sp.major, sp.minor), (95, 27, 7, 3));

        let bs = &all[3];
        assert_eq!(bs.root, Path::new("/sub"));
        assert_eq!(bs.mount_point, Path::new("/srv/back\\slash"));
        assert_eq!(bs.source_path(), Path::new("/dev/my disk"));
        assert_eq!(all[4].fs_type, "tmpfs");
    }

    #[test]
    fn skips_malformed_lines() {
        assert!(parse_line(b"garbage").is_none());
        assert!(parse_line(b"1 2 3:4 / /x rw shared:1 ext4 /dev/x rw").is_none());
        assert!(parse_line(b"1 2 x:4 / /x rw - ext4 /dev/x rw").is_none());
        let all = parse(b"bad line\n27 1 254:1 / / rw - ext4 /dev/vda1 rw\n\n");
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn reads_this_process_mounts() {
        let all = read().expect("mountinfo");
        assert!(all.iter().any(|e| e.mount_point == Path::new("/")));
    }
}
