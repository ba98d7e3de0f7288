//! The fs driver through the `svc` CLI, on real loop images (root). Every case has its own temp
//! dirs and image; `TempBerth` unmounts and detaches whatever is left when a case fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{TempBerth, describe as text, ext4_image, mounted, require_root};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

struct Case {
    t: TempBerth,
}

impl Case {
    /// A service `web` of one fs per (image name, mount point); images are made here, except
    /// those named `missing*`.
    fn new(fs: &[(&str, &str)]) -> Case {
        require_root();
        let t = TempBerth::new();
        let mut text = String::from("[service]\nnodes = [\"node1\"]\n");
        for (i, (img, mnt)) in fs.iter().enumerate() {
            let dev = t.path(img);
            if !img.starts_with("missing") {
                ext4_image(&dev, 16);
            }
            text.push_str(&format!(
                "\n[fs.{}]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\nstop_timeout = \"5s\"\n",
                i + 1,
                dev.display(),
                t.path(mnt).display()
            ));
        }
        t.write_service("web.toml", &text);
        Case { t }
    }

    fn svc(&self, args: &[&str]) -> Output {
        self.t.svc(SVC).args(args).output().expect("run svc")
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.t
            .svc(SVC)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn svc")
    }

    fn mnt(&self, rel: &str) -> PathBuf {
        self.t.path(rel)
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A process whose cwd is `dir`, optionally ignoring TERM.
fn holder(dir: &Path, ignore_term: bool) -> Child {
    let script = if ignore_term {
        "trap '' TERM; while :; do sleep 1; done"
    } else {
        "exec sleep 1000"
    };
    let child = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Let the shell set its trap before the stop begins.
    std::thread::sleep(Duration::from_millis(200));
    child
}

#[test]
fn start_stop_contract() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let mnt = c.mnt("srv/web");

    let o = c.svc(&["web", "status"]);
    assert_eq!(code(&o), 1, "down before start: {}", text(&o));

    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(mounted(&mnt));
    let log = stderr(&o);
    assert!(
        log.contains(" INFO    WEB.FS#1 "),
        "seed-style log lines: {log}"
    );
    assert!(log.contains("e2fsck -p"), "{log}");

    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 0, "start again: {}", text(&o));
    assert!(stderr(&o).contains("is already mounted"), "{}", text(&o));

    let o = c.svc(&["web", "status"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = c.svc(&["web", "print", "status"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let label = format!("{}@{}", c.t.path("root.img").display(), mnt.display());
    let want = format!(
        "web\noverall                   up\n|- avail                  up\n\
         |  '- fs#1           .... up       {label}\n|- sync                   n/a\n\
         '- hb                     n/a\n"
    );
    assert_eq!(out, want);

    let o = c.svc(&["web", "stop"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!mounted(&mnt));
    let o = c.svc(&["web", "stop"]);
    assert_eq!(code(&o), 0, "stop again: {}", text(&o));
    let o = c.svc(&["web", "status"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let o = c.svc(&["--format", "json", "web", "print", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["avail"], "down");
    assert_eq!(v["resources"][0]["rid"], "fs#1");
    assert_eq!(v["resources"][0]["status"], "down");
}

#[test]
fn a_process_holding_the_mount_is_killed() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let mnt = c.mnt("srv/web");
    assert_eq!(code(&c.svc(&["web", "start"])), 0);
    let mut child = holder(&mnt, false);
    let pid = child.id();
    let o = c.svc(&["web", "stop"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let _ = child.wait();
    assert!(!berth_testkit::alive(i32::try_from(pid).unwrap()));
    assert!(!mounted(&mnt));
    assert!(
        stderr(&o).contains(&pid.to_string()),
        "the kill is logged: {}",
        text(&o)
    );
}

#[test]
fn a_process_ignoring_term_is_killed_within_the_bound() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let mnt = c.mnt("srv/web");
    assert_eq!(code(&c.svc(&["web", "start"])), 0);
    let mut child = holder(&mnt, true);
    let t = Instant::now();
    let o = c.svc(&["web", "stop"]);
    let took = t.elapsed();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let _ = child.wait();
    assert!(!mounted(&mnt));
    // The bound is stop_timeout = 5s; allow for process start-up on a loaded machine.
    assert!(took < Duration::from_secs(7), "stop took {took:?}");
}

#[test]
fn a_missing_device_fails_start_clearly() {
    let c = Case::new(&[("missing.img", "srv/web")]);
    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&c.t.path("missing.img").display().to_string()),
        "names the device: {err}"
    );
    assert!(!mounted(&c.mnt("srv/web")));
}

#[test]
fn a_corrupt_filesystem_fails_fsck_and_start() {
    use std::os::unix::fs::FileExt;
    let c = Case::new(&[("root.img", "srv/web")]);
    // Wipe the primary superblock (bytes 1024..2048): e2fsck -p will not repair that on its own.
    let img = c.t.path("root.img");
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0u8; 1024], 1024).unwrap();
    drop(f);
    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).contains("e2fsck"), "{}", text(&o));
    assert!(!mounted(&c.mnt("srv/web")));
}

#[test]
fn a_failed_second_fs_rolls_back_the_first() {
    let c = Case::new(&[("root.img", "srv/web"), ("missing.img", "srv/web/data")]);
    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).contains("rolled back: fs#1"), "{}", text(&o));
    assert!(!mounted(&c.mnt("srv/web")));
    // With --disable-rollback the first stays mounted.
    let o = c.svc(&["web", "start", "--disable-rollback"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(mounted(&c.mnt("srv/web")));
    assert_eq!(code(&c.svc(&["web", "stop"])), 0);
}

#[test]
fn concurrent_actions_serialise() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let a = c.spawn(&["web", "start"]);
    let b = c.spawn(&["web", "start"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!((code(&a), code(&b)), (0, 0), "{}\n{}", text(&a), text(&b));
    let logs = format!("{}{}", stderr(&a), stderr(&b));
    assert_eq!(
        logs.matches("is already mounted").count(),
        1,
        "one mounts, the other then finds it mounted: {logs}"
    );

    // A slow stop (a holder that ignores TERM) holds the lock; a start that will not wait fails
    // naming the holder's pid.
    let mut child = holder(&c.mnt("srv/web"), true);
    let stop = c.spawn(&["web", "stop"]);
    std::thread::sleep(Duration::from_millis(500));
    let o = c.svc(&["web", "start", "--waitlock", "0"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!("locked by pid {}", stop.id())),
        "{}",
        text(&o)
    );
    let stop = stop.wait_with_output().unwrap();
    assert_eq!(code(&stop), 0, "{}", text(&stop));
    let _ = child.wait();
}

#[test]
fn bad_config_and_usage_exit_2() {
    let c = Case::new(&[("root.img", "srv/web")]);
    c.t.write_service(
        "bad.toml",
        "[fs.1]\ndev = \"/x\"\nmnt = \"relative\"\ntype = \"ext4\"\n",
    );
    let o = c.svc(&["bad", "start"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains("bad.toml:3: [fs#1] mnt: bad value \"relative\""),
        "{}",
        text(&o)
    );
    assert_eq!(code(&c.svc(&["nosuch", "start"])), 2);
    assert_eq!(code(&c.svc(&["web", "bogus"])), 2);
    assert_eq!(code(&c.svc(&["web", "start", "--rid", "fs#9"])), 2);
    assert_eq!(code(&c.svc(&["web", "start", "--nope"])), 2);
    // The node's print status still shows the good service, and flags the broken one.
    let o = c.svc(&["print", "status"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("web\noverall                   down"), "{out}");
    assert!(
        out.contains("bad\noverall                   undef"),
        "{out}"
    );
}

#[test]
fn dry_run_and_partial_actions() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let o = c.svc(&["web", "startfs", "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains("WEB.FS#1                   would start"),
        "{}",
        text(&o)
    );
    assert!(!mounted(&c.mnt("srv/web")));
    assert_eq!(code(&c.svc(&["web", "startfs"])), 0);
    assert!(mounted(&c.mnt("srv/web")));
    assert_eq!(
        code(&c.svc(&["web", "stopip"])),
        0,
        "no ip resource: nothing to do"
    );
    assert!(mounted(&c.mnt("srv/web")));
    assert_eq!(code(&c.svc(&["web", "stopfs"])), 0);
    assert!(!mounted(&c.mnt("srv/web")));
}

/// A service file that is not UTF-8 exits 2 and says why once, with the line and byte offset.
#[test]
fn a_non_utf8_service_file_exits_2_naming_the_line() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let bad = c.t.path("etc/services/latin1.env");
    std::fs::write(&bad, b"[DEFAULT]\napp = caf\xe9\n").unwrap();
    let o = c.svc(&["latin1", "print", "status"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let err = stderr(&o);
    let want = format!(
        "{}:2: not valid UTF-8: byte 0xe9 at byte offset 19",
        bad.display()
    );
    assert_eq!(err.matches(&want).count(), 1, "{}", text(&o));
    assert_eq!(err.matches("UTF-8").count(), 1, "said once: {}", text(&o));
}

/// `--tags` that selects nothing is bad usage (exit 2) saying so, not a silent success.
#[test]
fn tags_matching_nothing_exit_2() {
    let c = Case::new(&[("root.img", "srv/web")]);
    let o = c.svc(&["web", "start", "--tags", "nosuch"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains("--tags nosuch: no resource of service web matches"),
        "{}",
        text(&o)
    );
    assert!(!mounted(&c.mnt("srv/web")));
}

/// An action run by a user who is not root says, once, that it needs root (before: the lock
/// file's "Permission denied (os error 13)" twice, with no hint).
#[test]
fn an_action_by_a_user_says_it_needs_root() {
    let c = Case::new(&[("disk.img", "mnt")]);
    // The user may read the config (as on a node: /etc/berth is world-readable), not write the
    // var dir.
    let root = c.t.root.path();
    for d in [root.to_path_buf(), c.t.config_dir(), c.t.var_dir()] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    // svc as user nobody, with the case's dirs.
    let as_nobody = |action: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            SVC,
            "web",
            action,
        ]);
        for (k, v) in c.t.svc(SVC).get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let o = cmd.output().unwrap();
        assert_eq!(code(&o), 1, "{}", text(&o));
        stderr(&o)
    };
    for action in ["start", "stop"] {
        assert_eq!(
            as_nobody(action),
            format!(
                "svc: this action needs root (cannot open the lock file {}: permission denied)\n",
                c.t.var_dir().join("web/lock").display()
            ),
            "{action}"
        );
    }
    assert!(!mounted(&c.mnt("mnt")));
    assert_eq!(
        as_nobody("freeze"),
        format!(
            "svc: this action needs root: cannot change the frozen flag {}: Permission denied \
             (os error 13)\n",
            c.t.var_dir().join("web/frozen").display()
        ),
    );
}

/// A start on a node that is not in the service's `nodes` (no cluster) goes on, with a
/// warning naming `nodes`.
#[test]
fn a_start_outside_the_services_nodes_warns() {
    let c = Case::new(&[("disk.img", "mnt")]);
    let text_of = std::fs::read_to_string(c.t.config_dir().join("services/web.toml")).unwrap();
    c.t.write_service(
        "web.toml",
        &text_of.replace("nodes = [\"node1\"]", "nodes = [\"n2\", \"n3\"]"),
    );
    let o = c.svc(&["web", "start"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "this node (node1) is not in the service's nodes (n2, n3): starting it here anyway"
        ),
        "{}",
        text(&o)
    );
    assert!(mounted(&c.mnt("mnt")));
    let o = c.svc(&["web", "stop"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
}
