//! Fixtures for berth's real-host tests. Every fixture cleans up in `Drop`, so a failing test
//! leaves no mount, loop device, namespace or process behind. Tests that need root call
//! [`require_root`], which fails loudly instead of skipping.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod bench;
pub mod cluster;
pub mod daemon;
pub mod pipe;
pub mod registry;
pub mod sshd;

/// Panic with a clear message unless running as root: real-host tests never skip silently.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this real-host test needs root (run it as root, as .ci/run does)"
    );
}

/// Run `cmd` with `input` on its stdin, its stdout and stderr captured.
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(input)
        .unwrap_or_else(|e| panic!("write the stdin of {cmd:?}: {e}"));
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"))
}

/// Run a command, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e} (is it installed? .ci/run installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command, returning its output whatever the exit code.
pub fn run_any(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Copy the executable `src` to `dst` so that it can be run at once, whatever else the test
/// process does meanwhile.
///
/// A copy written by this process (`std::fs::copy`) holds a write descriptor on `dst` for a
/// moment; a fork by any other thread of the test binary in that moment gives the child a copy
/// of it, kept until the child's exec closes it. Running `dst` then fails with `ETXTBSY` ("Text
/// file busy") at random. `cp` writes the copy in its own process, which has exited (and so
/// closed it) before this returns: no descriptor on `dst` ever exists in this process.
pub fn copy_executable(src: &Path, dst: &Path) {
    let out = Command::new("cp")
        .arg("--")
        .arg(src)
        .arg(dst)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp {} {} failed: {}",
        src.display(),
        dst.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary berth setup: config, var and run dirs under one temp dir (kept short, for
/// docker socket paths), and a `services/` dir to write service files into.
#[derive(Debug)]
pub struct TempBerth {
    /// The temp dir holding everything.
    pub root: tempfile::TempDir,
}

impl Default for TempBerth {
    fn default() -> Self {
        Self::new()
    }
}

impl TempBerth {
    /// A new empty setup under /tmp.
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("b")
            .tempdir_in("/tmp")
            .expect("temp dir");
        for d in ["etc/services", "var", "run"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        TempBerth { root }
    }
    /// `<root>/etc`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.path().join("etc")
    }
    /// `<root>/var`.
    pub fn var_dir(&self) -> PathBuf {
        self.root.path().join("var")
    }
    /// `<root>/run`.
    pub fn run_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }
    /// A path under the root (for images and mount points).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    /// Write `services/<file>` with `text`.
    pub fn write_service(&self, file: &str, text: &str) -> PathBuf {
        let p = self.config_dir().join("services").join(file);
        std::fs::write(&p, text).expect("write service file");
        p
    }
    /// A `svc` command (the binary at `svc_bin`) with the three dirs set.
    pub fn svc(&self, svc_bin: &str) -> Command {
        let mut c = Command::new(svc_bin);
        c.env("BERTH_CONFIG_DIR", self.config_dir())
            .env("BERTH_VAR_DIR", self.var_dir())
            .env("BERTH_RUN_DIR", self.run_dir())
            .env("BERTH_NODENAME", "node1")
            .env("NO_COLOR", "1");
        c
    }
}

impl Drop for TempBerth {
    /// Kill the dockerds (and their containerds, shims, containers) started under the root,
    /// unmount anything still mounted under it (deepest first) and detach loop devices backed by
    /// files under it, so a failed test leaves nothing behind.
    fn drop(&mut self) {
        let root = self.root.path().to_path_buf();
        kill_dockers_under(&root);
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(m.replace("\\040", " ")))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).output();
        }
        detach_loops_under(&root);
    }
}

/// Detach every loop device whose backing file lies under `dir`.
pub fn detach_loops_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("loop") {
            continue;
        }
        let backing =
            std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if Path::new(backing.trim()).starts_with(dir) {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(format!("/dev/{name}"))
                .output();
        }
    }
}

/// Make an ext4 image file of `mib` MiB at `path`.
pub fn ext4_image(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(mib * 1024 * 1024).expect("size image");
    run(
        "mkfs.ext4",
        &["-q", "-F", path.to_str().expect("utf-8 path")],
    );
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns exec NAME ...`).
    pub name: String,
}

impl Netns {
    /// Create a namespace with a unique name built from `prefix`, with `lo` up.
    pub fn new(prefix: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns
    }
    /// Run a command inside the namespace, panicking on failure.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }
    /// A command that runs inside the namespace (`ip netns exec NAME cmd`).
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, cmd]);
        c
    }
    /// A command that runs in this network namespace only: unlike `ip netns exec`, which also
    /// gives the command a private mount namespace (so a mount it makes would vanish with it),
    /// the child just `setns`es into the network namespace before exec.
    pub fn netns_command(&self, cmd: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let ns = std::fs::File::open(self.path()).expect("open the netns file");
        let mut c = Command::new(cmd);
        // SAFETY: the closure only calls setns(2), which is async-signal-safe, on an fd opened
        // before the fork; `ns` is moved in and stays open until the exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        c
    }

    /// Put the current thread in this network namespace until the guard drops.
    pub fn enter(&self) -> InNs {
        use nix::sched::{CloneFlags, setns};
        let back = std::fs::File::open("/proc/thread-self/ns/net").expect("open this netns");
        let target = std::fs::File::open(self.path()).expect("open the netns file");
        setns(&target, CloneFlags::CLONE_NEWNET).expect("setns into the test's netns");
        InNs { back }
    }

    /// The namespace's path, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A veth pair between two namespaces: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    );
    a.exec("ip", &["link", "set", a_if, "up"]);
    b.exec("ip", &["link", "set", b_if, "up"]);
}

/// A rootfs at `dir` with `/bin/busybox` (from busybox-static) and a symlink per applet, and
/// `/tmp`: what `docker import` turns into an image when no registry is reachable.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir rootfs/bin");
    std::fs::create_dir_all(dir.join("tmp")).expect("mkdir rootfs/tmp");
    // busybox-static provides /bin/busybox; the copy may be run from the rootfs at once.
    copy_executable(Path::new("/bin/busybox"), &bin.join("busybox"));
    let list = run("/bin/busybox", &["--list"]);
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink applet");
        }
    }
}

/// The rootfs of [`busybox_rootfs`], made at `dir`, as a tar stream for `docker import -`.
pub fn busybox_tar(dir: &Path) -> Vec<u8> {
    busybox_rootfs(dir);
    run("tar", &["-C", dir.to_str().expect("utf-8 path"), "-c", "."]).stdout
}

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// The process-wide subscriber behind [`LogCapture`]: installed once as the global default, so
/// every callsite stays enabled whatever thread hits it first (per-thread `set_default`
/// subscribers make tracing cache "never" for callsites first seen with none active, and a
/// test's lines then vanish at random). Events go to the capturing thread's buffer, if any.
struct GlobalCapture;

struct MessageOf<'a>(&'a mut String);

impl tracing::field::Visit for MessageOf<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl tracing::Subscriber for GlobalCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        CAPTURED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                let mut m = String::new();
                event.record(&mut MessageOf(&mut m));
                lines.push(format!("{} {m}", event.metadata().level()));
            }
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Captures the log lines (`LEVEL message`) the current thread emits while it lives.
#[derive(Debug)]
pub struct LogCapture(());

impl LogCapture {
    /// Start capturing on this thread.
    pub fn start() -> LogCapture {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(GlobalCapture)
                .expect("LogCapture must be the only global subscriber of the test binary");
        });
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
        LogCapture(())
    }
    /// The lines captured so far.
    pub fn lines(&self) -> Vec<String> {
        CAPTURED.with(|c| c.borrow().clone().unwrap_or_default())
    }
    /// The lines captured so far, one per line.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURED.with(|c| *c.borrow_mut() = None);
    }
}

/// A live process: pid, `comm`, command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Its pid.
    pub pid: i32,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// `/proc/PID/cmdline`, split.
    pub words: Vec<String>,
}

fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
    Some((rest.next()?.chars().next()?, rest.next()?.parse().ok()?))
}

/// Whether `pid` lives (a zombie does not: on these machines PID 1 may never reap orphans).
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The parent of `pid` (0 when gone).
pub fn ppid(pid: i32) -> i32 {
    stat(pid).map(|(_, p)| p).unwrap_or(0)
}

/// Send `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory effects; a stale pid at worst gets ESRCH.
    unsafe { libc::kill(pid, sig) };
}

/// Every live process.
pub fn procs() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| alive(pid))
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let words = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()?
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            Some(Proc {
                pid,
                comm: comm.trim().to_string(),
                words,
            })
        })
        .collect()
}

/// The dockerds serving `unix://<socket>`.
pub fn dockerds_on(socket: &Path) -> Vec<i32> {
    let host = format!("unix://{}", socket.display());
    procs()
        .into_iter()
        .filter(|p| p.comm == "dockerd" && p.words.contains(&host))
        .map(|p| p.pid)
        .collect()
}

/// Kill everything docker started under `root`: dockerd first (TERM: it stops its containers),
/// then, after a bound, KILL whatever is left, the shims' containers included.
pub fn kill_dockers_under(root: &Path) {
    let root = root.display().to_string();
    let mine = |words: &[String]| words.iter().any(|w| w.contains(&root));
    let dockerds: Vec<i32> = procs()
        .into_iter()
        .filter(|p| p.comm == "dockerd" && mine(&p.words))
        .map(|p| p.pid)
        .collect();
    for &pid in &dockerds {
        signal(pid, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dockerds.iter().any(|&p| alive(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut killed = false;
    for p in procs() {
        if p.comm.starts_with("containerd-shim") && mine(&p.words) {
            for child in procs().into_iter().filter(|c| ppid(c.pid) == p.pid) {
                signal(child.pid, libc::SIGKILL);
            }
            signal(p.pid, libc::SIGKILL);
            killed = true;
        } else if (p.comm == "dockerd" || p.comm == "containerd") && mine(&p.words) {
            signal(p.pid, libc::SIGKILL);
            killed = true;
        }
    }
    if killed {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Whether `p` is a mount point, read from mountinfo by the test itself (not by a driver).
pub fn mounted(p: &Path) -> bool {
    let want = p.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Run an LVM command with `LVM_SUPPRESS_FD_WARNINGS=1`, panicking when it fails.
pub fn lvm_ok(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (package lvm2)", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// While alive, the current thread is in a test's network namespace ([`Netns::enter`]);
/// dropping it goes back.
#[derive(Debug)]
pub struct InNs {
    back: std::fs::File,
}

impl Drop for InNs {
    fn drop(&mut self) {
        let _ = nix::sched::setns(&self.back, nix::sched::CloneFlags::CLONE_NEWNET);
    }
}

/// An LVM volume group on a loop PV (a sparse 32 MiB file), with a unique name; removed with its
/// PV and loop device on drop. No LV: this kernel has no device-mapper to activate one.
#[derive(Debug)]
pub struct LoopVg {
    _dir: tempfile::TempDir,
    /// The loop device holding the PV.
    pub dev: String,
    /// The VG name.
    pub name: String,
}

impl LoopVg {
    /// Create the PV and the VG.
    pub fn new() -> LoopVg {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("bvg")
            .tempdir_in("/tmp")
            .unwrap();
        let img = dir.path().join("pv.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(32 * 1024 * 1024)
            .unwrap();
        let out = run("losetup", &["-f", "--show", img.to_str().unwrap()]);
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let name = format!(
            "bertht{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let vg = LoopVg {
            _dir: dir,
            dev,
            name,
        };
        lvm_ok(&["pvcreate", "-q", &vg.dev]);
        lvm_ok(&["vgcreate", "-q", &vg.name, &vg.dev]);
        vg
    }

    /// Create an 8 MiB LV `name`, not activated (this kernel has no device-mapper).
    pub fn add_inactive_lv(&self, name: &str) {
        lvm_ok(&[
            "lvcreate",
            "-q",
            "--driverloaded",
            "n",
            "-an",
            "-Zn",
            "-L",
            "8M",
            "-n",
            name,
            &self.name,
        ]);
    }

    /// The VG's tags, read with `vgs` (not with the driver).
    pub fn tags(&self) -> Vec<String> {
        let out = lvm_ok(&["vgs", "--noheadings", "-o", "vg_tags", &self.name]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Default for LoopVg {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LoopVg {
    fn drop(&mut self) {
        for args in [
            vec!["vgremove", "-f", "-y", &self.name],
            vec!["pvremove", "-ff", "-y", &self.dev],
        ] {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                .output();
        }
        let _ = Command::new("losetup").args(["-d", &self.dev]).output();
    }
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The cells of a fleet grid's row (`svc mon`, `berth-collector print status`): the words after
/// the `|` of the line whose first word is `name` (`hb`, a service's name). Panics with the grid
/// when there is no such row.
pub fn grid_cells<'a>(grid: &'a str, name: &str) -> Vec<&'a str> {
    grid.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split('|').nth(1))
        .unwrap_or_else(|| panic!("no row {name}:\n{grid}"))
        .split_whitespace()
        .collect()
}
