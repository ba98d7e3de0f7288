//! The fs driver on the real host: loop images, real mounts, real processes holding them.
//! Each case has its own temp dir and image; TempBerth unmounts and detaches in Drop.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_drivers::{DriverError, Outcome, fs};
use berth_model::config::FsSpec;
use berth_model::status::{Level, Status};
use berth_testkit::{TempBerth, ext4_image, require_root, run, run_any};

struct Case {
    tb: TempBerth,
    spec: FsSpec,
}

/// A fresh 16 MiB ext4 image and a mount point `mnt_rel` under a new temp dir.
fn case(mnt_rel: &str) -> Case {
    require_root();
    let tb = TempBerth::new();
    let img = tb.path("disk.img");
    ext4_image(&img, 16);
    let spec = FsSpec {
        dev: img,
        mnt: tb.path(mnt_rel),
        fs_type: "ext4".into(),
        mnt_opt: Some("rw".into()),
        stop_timeout: Duration::from_secs(5),
    };
    Case { tb, spec }
}

/// Loop devices backed by files under `dir`, from sysfs.
fn loops_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file"))
            && Path::new(b.trim()).starts_with(dir)
        {
            out.push(name);
        }
    }
    out
}

/// Mount points under `dir`, from mountinfo (with the driver's own decoder).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    fs::mountinfo::read()
        .unwrap()
        .into_iter()
        .map(|e| e.mount_point)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// Nothing mounted nor attached under the case's temp dir. A loop device with autoclear (what
/// `mount -o loop` attaches) is detached by the kernel after its last close, asynchronously
/// (a workqueue since Linux 5.18?): it may be seen for a moment after the umount returned, so
/// the loop devices get a bounded wait; the mounts do not.
fn assert_clean(c: &Case) {
    let root = c.tb.root.path();
    assert_eq!(mounts_under(root), Vec::<PathBuf>::new(), "mounts left");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !loops_under(root).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(loops_under(root), Vec::<String>::new(), "loop devices left");
}

/// Wait (bounded) until the process's cwd lies under `dir`: it then really holds the mount.
fn wait_cwd_under(child: &Child, dir: &Path) {
    let link = format!("/proc/{}/cwd", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if std::fs::read_link(&link).is_ok_and(|p| p.starts_with(dir)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {} never entered {}",
            child.id(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A shell that ignores TERM, with its cwd on `dir`, once it is there: it holds the mount.
fn term_ignoring_holder(dir: &Path) -> Reaped {
    let child = Reaped(
        Command::new("sh")
            .args([
                "-c",
                "trap '' TERM; cd \"$1\" || exit 1; while :; do sleep 1; done",
                "sh",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_cwd_under(&child.0, dir);
    child
}

/// The mountinfo entry of `mnt` (the top one).
fn mount_entry(mnt: &Path) -> fs::mountinfo::MountEntry {
    fs::mountinfo::read()
        .unwrap()
        .into_iter()
        .rfind(|e| e.mount_point == mnt)
        .unwrap_or_else(|| panic!("{} is not mounted", mnt.display()))
}

/// Run `f` with the driver's log lines captured (`LEVEL message`).
fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let cap = berth_testkit::LogCapture::start();
    let out = f();
    let lines = cap.lines();
    (out, lines)
}

fn has_line(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

/// A child is reaped in Drop, so a failed test leaves no process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn start_stop_cycle_is_idempotent() {
    let c = case("srv/web");
    let s = &c.spec;
    assert_eq!(fs::status(s).status, Status::Down);
    assert!(!fs::is_mounted(&s.mnt).unwrap());

    let (r, log) = logged(|| fs::start(s));
    assert_eq!(r.unwrap(), Outcome::Changed);
    let loops = loops_under(c.tb.root.path());
    assert_eq!(loops.len(), 1);
    let lo = format!("/dev/{}", loops[0]);
    let (img, mnt) = (s.dev.display(), s.mnt.display());
    assert_eq!(log[0], format!("INFO losetup {lo} {img}"), "{log:#?}");
    assert_eq!(log[1], format!("INFO e2fsck -p {lo}"), "{log:#?}");
    assert!(
        log[2].starts_with("INFO output:\n") && log[2].contains("clean"),
        "{log:#?}"
    );
    assert_eq!(log[3], format!("INFO mkdir -p {mnt}"), "{log:#?}");
    assert_eq!(
        log[4],
        format!("INFO mount -t ext4 -o rw {lo} {mnt}"),
        "{log:#?}"
    );
    let (r, log) = logged(|| fs::start(s));
    assert_eq!(r.unwrap(), Outcome::AlreadyDone);
    assert_eq!(log, [format!("INFO fs({img} {mnt}) is already mounted")]);
    assert_eq!(
        loops_under(c.tb.root.path()).len(),
        1,
        "second start attached again"
    );
    let st = fs::status(s);
    assert_eq!(st.status, Status::Up);
    assert_eq!(st.label, format!("{}@{}", s.dev.display(), s.mnt.display()));
    assert!(st.log.is_empty(), "{:?}", st.log);
    assert!(fs::is_mounted(&s.mnt).unwrap());
    std::fs::write(s.mnt.join("data"), "kept").unwrap();

    let (r, log) = logged(|| fs::stop(s));
    assert_eq!(r.unwrap(), Outcome::Changed);
    assert_eq!(log, [format!("INFO umount {mnt}")]);
    let (r, log) = logged(|| fs::stop(s));
    assert_eq!(r.unwrap(), Outcome::AlreadyDone);
    assert_eq!(log, [format!("INFO fs({img} {mnt}) is already umounted")]);
    assert_eq!(fs::status(s).status, Status::Down);
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    assert!(!s.mnt.join("data").exists());
    assert_clean(&c);

    // The data lives on the image.
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    assert_eq!(std::fs::read_to_string(s.mnt.join("data")).unwrap(), "kept");
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

#[test]
fn mount_point_with_space_and_tab() {
    let c = case("my mnt/a b\tc");
    let s = &c.spec;
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    // The raw mountinfo line holds the escapes; the driver decodes them.
    let raw = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(raw.contains("my\\040mnt/a\\040b\\011c"), "{raw}");
    assert_eq!(fs::status(s).status, Status::Up);
    assert_eq!(fs::start(s).unwrap(), Outcome::AlreadyDone);
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_eq!(fs::status(s).status, Status::Down);
    assert_eq!(fs::stop(s).unwrap(), Outcome::AlreadyDone);
    assert_clean(&c);
}

#[test]
fn mount_options_are_applied() {
    let mut c = case("mnt");
    c.spec.mnt_opt = Some("ro,noatime,nodev,nosuid,errors=remount-ro,nofail".into());
    let s = &c.spec;
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    let e = mount_entry(&s.mnt);
    for o in ["ro", "noatime", "nodev", "nosuid"] {
        assert!(
            e.options.split(',').any(|x| x == o),
            "{o} missing: {}",
            e.options
        );
    }
    assert!(
        e.super_options.contains("errors=remount-ro"),
        "{}",
        e.super_options
    );
    let ro = loops_under(c.tb.root.path());
    assert_eq!(ro.len(), 1);
    assert_eq!(
        std::fs::read_to_string(format!("/sys/block/{}/ro", ro[0]))
            .unwrap()
            .trim(),
        "1",
        "the loop device of a ro mount is read-only"
    );
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

#[test]
fn holder_is_killed_and_umount_succeeds() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let mut child = Reaped(
        Command::new("sleep")
            .arg("1000")
            .current_dir(&s.mnt)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_cwd_under(&child.0, &s.mnt);

    let (r, log) = logged(|| fs::stop(s));
    assert_eq!(r.unwrap(), Outcome::Changed);
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let kill = format!(
        "INFO kill -TERM {} (sleep) holding {}: cwd {}",
        child.0.id(),
        s.mnt.display(),
        s.mnt.display()
    );
    assert!(has_line(&log, &kill), "{log:#?}");
    assert_eq!(fs::status(s).status, Status::Down);
    assert_clean(&c);
}

#[test]
fn holder_by_open_file_is_killed() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    // An open file descriptor only (cwd elsewhere): `exec 3<file` keeps it open.
    std::fs::write(s.mnt.join("f"), "x").unwrap();
    let mut child = Reaped(
        Command::new("sh")
            .args(["-c", "exec 3<\"$1\"; cd /; exec sleep 1000", "sh"])
            .arg(s.mnt.join("f"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until the fd is open in the exec'd sleep.
    let fd = format!("/proc/{}/fd/3", child.0.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(std::fs::read_link(&fd).is_ok_and(|p| p.starts_with(&s.mnt))
        && std::fs::read_to_string(format!("/proc/{}/comm", child.0.id()))
            .is_ok_and(|c| c.trim() == "sleep"))
    {
        assert!(Instant::now() < deadline, "fd never opened");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert_clean(&c);
}

#[test]
fn term_ignoring_holder_is_killed_within_the_bound() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let mut child = term_ignoring_holder(&s.mnt);
    // It really holds the mount: a plain umount is refused as busy.
    let busy = run_any("umount", &[s.mnt.to_str().unwrap()]);
    assert!(
        !busy.status.success(),
        "umount succeeded: the holder did not hold"
    );
    assert!(fs::is_mounted(&s.mnt).unwrap());

    let t0 = Instant::now();
    let (r, log) = logged(|| fs::stop(s));
    assert_eq!(r.unwrap(), Outcome::Changed);
    let took = t0.elapsed();
    let pid = child.0.id();
    assert!(
        has_line(
            &log,
            &format!(
                "INFO kill -TERM {pid} (sh) holding {}: cwd {}",
                s.mnt.display(),
                s.mnt.display()
            )
        ),
        "{log:#?}"
    );
    assert!(
        has_line(
            &log,
            &format!(
                "INFO kill -KILL {pid} (sh) holding {}: cwd {}",
                s.mnt.display(),
                s.mnt.display()
            )
        ),
        "{log:#?}"
    );
    assert!(
        took < s.stop_timeout + Duration::from_secs(1),
        "stop took {took:?}"
    );
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_clean(&c);
}

#[test]
fn own_process_is_never_killed() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let f = std::fs::File::create(s.mnt.join("held")).unwrap();
    let err = fs::stop(s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DriverError::Refused(_)), "{err:?}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains(s.mnt.to_str().unwrap()), "{msg}");
    assert!(fs::is_mounted(&s.mnt).unwrap());
    drop(f);
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

#[test]
fn missing_device_fails_clearly_and_leaves_nothing() {
    let mut c = case("mnt");
    c.spec.dev = c.tb.path("no-such-disk.img");
    let s = &c.spec;
    let st = fs::status(s);
    assert_eq!(st.status, Status::Down);
    assert!(
        st.log.iter().any(|l| l.level == Level::Info
            && l.message == format!("device {} does not exist", s.dev.display())),
        "{:?}",
        st.log
    );
    let err = fs::start(s).unwrap_err();
    assert!(matches!(err, DriverError::Missing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("device {} does not exist", s.dev.display())
    );
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    assert_clean(&c);
}

#[test]
fn corrupt_filesystem_fails_fsck_and_leaves_nothing() {
    let c = case("mnt");
    let s = &c.spec;
    // Zero the superblock region of the freshly made filesystem.
    run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", s.dev.display()),
            "bs=1k",
            "count=2048",
            "conv=notrunc",
            "status=none",
        ],
    );
    let err = fs::start(s).unwrap_err();
    let msg = err.to_string();
    match &err {
        DriverError::Command {
            command,
            code,
            output,
        } => {
            assert!(command.starts_with("e2fsck -p /dev/loop"), "{command}");
            assert_eq!(*code, 8, "{msg}");
            assert!(output.contains("superblock"), "{output}");
        }
        other => panic!("not an e2fsck failure: {other:?}"),
    }
    assert!(msg.contains("exit code 8"), "{msg}");
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    assert_clean(&c);
}

#[test]
fn not_a_filesystem_fails_and_leaves_nothing() {
    require_root();
    let tb = TempBerth::new();
    let img = tb.path("zeros.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let c = Case {
        spec: FsSpec {
            dev: img,
            mnt: tb.path("mnt"),
            fs_type: "ext4".into(),
            mnt_opt: None,
            stop_timeout: Duration::from_secs(5),
        },
        tb,
    };
    let err = fs::start(&c.spec).unwrap_err();
    assert!(err.to_string().contains("e2fsck -p"), "{err}");
    assert_clean(&c);
}

#[test]
fn mount_failure_detaches_the_loop_device() {
    let mut c = case("mnt");
    c.spec.mnt_opt = Some("rw,no_such_ext4_option".into());
    let err = fs::start(&c.spec).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("mount -t ext4 -o rw,no_such_ext4_option /dev/loop"),
        "{msg}"
    );
    assert!(msg.contains(c.spec.mnt.to_str().unwrap()), "{msg}");
    assert_clean(&c);
}

#[test]
fn existing_loop_device_is_reused_and_detached_at_stop() {
    let c = case("mnt");
    let s = &c.spec;
    let out = run("losetup", &["--find", "--show", s.dev.to_str().unwrap()]);
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(loops_under(c.tb.root.path()).len(), 1);

    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    assert_eq!(
        loops_under(c.tb.root.path()).len(),
        1,
        "a second loop device"
    );
    let e = mount_entry(&s.mnt);
    assert_eq!(e.source_path(), Path::new(&dev));
    assert!(fs::status(s).log.is_empty());

    // losetup attached it without autoclear: stop detaches it explicitly.
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

/// Two loop images on one mount point: the one mounted there is not this resource's. Its status
/// is down (with a warning naming both), a start is refused, and a stop leaves it mounted and
/// its loop device attached (it unmounted the other's filesystem before).
#[test]
fn other_source_on_the_mount_point_is_down_refused_and_left_alone() {
    let c = case("mnt");
    let other = c.tb.path("other.img");
    ext4_image(&other, 16);
    std::fs::create_dir_all(&c.spec.mnt).unwrap();
    run(
        "mount",
        &[
            "-o",
            "loop",
            other.to_str().unwrap(),
            c.spec.mnt.to_str().unwrap(),
        ],
    );
    let st = fs::status(&c.spec);
    assert_eq!(st.status, Status::Down, "{:?}", st.log);
    assert!(
        st.log.iter().any(|l| l.level == Level::Warn
            && l.message.contains("is mounted from /dev/loop")
            && l.message.contains(c.spec.dev.to_str().unwrap())),
        "{:?}",
        st.log
    );
    // A start does not report success on another filesystem (a failover candidate would then
    // run the service without its data).
    let err = fs::start(&c.spec).unwrap_err().to_string();
    assert!(
        err.contains("is mounted from /dev/loop") && err.contains(c.spec.dev.to_str().unwrap()),
        "{err}"
    );
    let (r, log) = logged(|| fs::stop(&c.spec));
    assert_eq!(r.unwrap(), Outcome::AlreadyDone);
    assert!(
        log.iter()
            .any(|l| l.contains("another filesystem: left alone")),
        "{log:#?}"
    );
    assert_eq!(
        mounts_under(c.tb.root.path()),
        std::slice::from_ref(&c.spec.mnt)
    );
    assert_eq!(loops_under(c.tb.root.path()).len(), 1, "its loop device");
    run("umount", &[c.spec.mnt.to_str().unwrap()]);
    assert_clean(&c);
}

#[test]
fn holder_by_executable_is_killed() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let bin = s.mnt.join("mysleep");
    // Not std::fs::copy: a fork by another test thread while it writes makes the exec below
    // fail with ETXTBSY (see copy_executable).
    berth_testkit::copy_executable(Path::new("/bin/sleep"), &bin);
    let mut child = Reaped(
        Command::new(&bin)
            .arg("1000")
            .current_dir("/")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let exe = format!("/proc/{}/exe", child.0.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_link(&exe).is_ok_and(|p| p == bin) {
        assert!(Instant::now() < deadline, "never ran {}", bin.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    let (r, log) = logged(|| fs::stop(s));
    assert_eq!(r.unwrap(), Outcome::Changed);
    assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGTERM));
    let want = format!(
        "INFO kill -TERM {} (mysleep) holding {}: exe {}",
        child.0.id(),
        s.mnt.display(),
        bin.display()
    );
    assert!(has_line(&log, &want), "{log:#?}");
    assert_clean(&c);
}

#[test]
fn holder_outliving_the_bound_times_out_naming_it() {
    // The TERM grace is 0.2 s at least: with a 0.1 s bound, a TERM-ignoring holder is never
    // sent KILL, outlives the bound, and the stop fails naming the mount point and the pid.
    let mut c = case("mnt");
    c.spec.stop_timeout = Duration::from_millis(100);
    let s = &c.spec;
    fs::start(s).unwrap();
    let mut child = term_ignoring_holder(&s.mnt);
    let err = fs::stop(s).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    assert!(
        msg.contains(&format!("umount {}", s.mnt.display())),
        "{msg}"
    );
    assert!(msg.contains(&format!("pid {} (sh)", child.0.id())), "{msg}");
    assert!(msg.ends_with("did not finish within 0.1s"), "{msg}");
    assert!(fs::is_mounted(&s.mnt).unwrap());
    // A later stop with the real bound finishes the job.
    c.spec.stop_timeout = Duration::from_secs(5);
    assert_eq!(fs::stop(&c.spec).unwrap(), Outcome::Changed);
    let _ = child.0.wait();
    assert_clean(&c);
}

/// The mount points `pid`'s mount namespace shows under `dir`.
fn mounts_of(pid: u32, dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    fs::mountinfo::parse(&text)
        .into_iter()
        .map(|e| e.mount_point)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// `unshare -m --propagation private sh -c SCRIPT`, once its own namespace holds `mnt` and
/// its shell runs `comm`.
fn unshared(mnt: &Path, script: &str, comm: &str) -> Reaped {
    let child = Reaped(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .current_dir("/")
            .stdin(Stdio::null())
            .spawn()
            .expect("run unshare (util-linux)"),
    );
    let pid = child.0.id();
    let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
        let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if ns.is_some_and(|n| n != ours) && now.trim() == comm && mounts_of(pid, mnt) == [mnt] {
            return child;
        }
        assert!(Instant::now() < deadline, "unshare never settled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process unshared its mount namespace while the fs was mounted: the stop unmounts the
/// copy there too (it used to report success with only a warning, the device still mounted
/// in that namespace, and the next start failed in e2fsck without saying why).
#[test]
fn a_copy_in_another_mount_namespace_is_unmounted_there() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let other = unshared(&s.mnt, "exec sleep 600", "sleep");
    let pid = other.0.id();
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_eq!(
        mounts_of(pid, &s.mnt),
        Vec::<PathBuf>::new(),
        "still mounted there"
    );
    assert!(
        berth_testkit::alive(i32::try_from(pid).unwrap()),
        "the process itself is left alone"
    );
    assert_clean(&c);
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

/// The copy in the other namespace is busy there (a process of that namespace has its cwd on
/// it): the stop fails naming that process, and so does the next start, instead of e2fsck's
/// "in use". Once that process is gone, start and stop work.
#[test]
fn a_busy_copy_in_another_mount_namespace_fails_stop_and_start_naming_it() {
    let c = case("mnt");
    let s = &c.spec;
    fs::start(s).unwrap();
    let script = format!("cd '{}' && exec sleep 600", s.mnt.display());
    let mut other = unshared(&s.mnt, &script, "sleep");
    let pid = other.0.id();
    let holder = format!("pid {pid} (sleep)");
    let e = fs::stop(s).unwrap_err().to_string();
    assert!(
        e.contains(&format!("umount {}: not mounted here", s.mnt.display()))
            && e.contains("still mounted in the mount namespace mnt:[")
            && e.contains(&holder),
        "{e}"
    );
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    let e = fs::start(s).unwrap_err().to_string();
    assert!(
        e.contains("is still mounted in another mount namespace")
            && e.contains(&format!("on {}", s.mnt.display()))
            && e.contains(&holder),
        "{e}"
    );
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    // Stop again once the holder is gone: no success while a copy is mounted anywhere (a
    // namespace unshared by another test meanwhile may hold one too: it is unmounted there).
    other.0.kill().unwrap();
    other.0.wait().unwrap();
    fs::stop(s).unwrap();
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

/// A directory bind-mounted (`mnt_opt = bind`) is this resource's: mountinfo names the device of
/// the directory's filesystem, not the directory, and the status is still up and the stop still
/// unmounts it.
#[test]
fn a_bind_mounted_directory_is_its_own() {
    let c = case("mnt");
    let dir = c.tb.path("shared");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = FsSpec {
        dev: dir,
        mnt: c.spec.mnt.clone(),
        fs_type: "none".into(),
        mnt_opt: Some("bind".into()),
        stop_timeout: Duration::from_secs(5),
    };
    assert_eq!(fs::start(&spec).unwrap(), Outcome::Changed);
    let st = fs::status(&spec);
    assert_eq!(st.status, Status::Up, "{:?}", st.log);
    assert!(st.log.is_empty(), "{:?}", st.log);
    assert_eq!(fs::stop(&spec).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

/// Open `dev` exclusively, as e2fsck and a mount claim it (a mount namespace being torn down
/// holds such a claim a moment after its last process died).
fn claim_exclusively(dev: &str) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_EXCL.bits())
        .open(dev)
        .unwrap()
}

/// The device is still claimed when the start comes (the kernel releasing a dead namespace's
/// mount): the start waits for the claim to go instead of failing in e2fsck's "in use".
#[test]
fn a_claim_released_shortly_after_the_start_is_waited_for() {
    let c = case("mnt");
    let s = &c.spec;
    let out = run("losetup", &["--find", "--show", s.dev.to_str().unwrap()]);
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let claim = claim_exclusively(&dev);
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        drop(claim);
    });
    assert_eq!(fs::start(s).unwrap(), Outcome::Changed);
    release.join().unwrap();
    assert_eq!(fs::stop(s).unwrap(), Outcome::Changed);
    assert_clean(&c);
}

/// A claim that outlives the bound fails the start naming the device, and leaves nothing.
#[test]
fn a_claim_that_stays_fails_the_start_naming_the_device() {
    let c = case("mnt");
    let s = &c.spec;
    let out = run("losetup", &["--find", "--show", s.dev.to_str().unwrap()]);
    let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let claim = claim_exclusively(&dev);
    let e = fs::start(s).unwrap_err();
    assert!(matches!(e, DriverError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains(&format!("{dev} is in use")), "{e}");
    assert!(!fs::is_mounted(&s.mnt).unwrap());
    drop(claim);
    run("losetup", &["-d", &dev]);
    assert_clean(&c);
}
