//! `svc` writing into a pipe whose reader is gone (`svc print status | head -1`): every text
//! output ends quietly, exit status as documented in docs/cli.md (the command's own: 0 for a
//! print), and an action whose output goes nowhere still runs to its end. Real loop images
//! (root); `TempBerth` unmounts and detaches whatever a failed case leaves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::Command;

use berth_testkit::pipe::{assert_quiet, head_1, into_closed_pipe};
use berth_testkit::{TempBerth, describe, ext4_image, mounted, require_root};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

/// A service `web` of one fs on an image of its own (`root.img` on `srv/web`).
fn web() -> TempBerth {
    require_root();
    let t = TempBerth::new();
    ext4_image(&t.path("root.img"), 16);
    t.write_service(
        "web.toml",
        &format!(
            "[service]\nnodes = [\"node1\"]\n\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
            t.path("root.img").display(),
            t.path("srv/web").display()
        ),
    );
    t
}

fn svc(t: &TempBerth, args: &[&str]) -> Command {
    let mut c = t.svc(SVC);
    c.args(args);
    c
}

#[test]
fn every_text_output_into_a_closed_pipe_ends_quietly() {
    let t = web();
    // An action first, so that `logs` has something to print.
    let o = svc(&t, &["web", "stop"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let cases: &[(&[&str], i32)] = &[
        (&["print", "status"], 0),
        (&["--format", "json", "print", "status"], 0),
        (&["web", "print", "status"], 0),
        (&["web", "json_status"], 0),
        (&["web", "print", "config"], 0),
        (&["web", "print", "config", "--eval"], 0),
        (&["web", "print", "resinfo"], 0),
        (&["web", "print", "devs"], 0),
        (&["--format", "json", "web", "print", "devs"], 0),
        // `status` keeps its own code: 1, the service is down.
        (&["web", "status"], 1),
        (&["web", "get", "--kw", "fs#1.mnt"], 0),
        (&["validate", "config"], 0),
        (&["web", "validate", "config"], 0),
        (&["web", "logs"], 0),
        (&["--help"], 0),
        (&["web", "start", "--help"], 0),
        (&["--version"], 0),
        (&["--completions", "bash"], 0),
        (&["--complete-words", "--", "w"], 0),
    ];
    for (args, code) in cases {
        // Each says something when read, so a closed pipe does get a write.
        let read = svc(&t, args).output().unwrap();
        assert_eq!(
            read.status.code(),
            Some(*code),
            "{args:?}: {}",
            describe(&read)
        );
        assert!(
            !read.stdout.is_empty(),
            "{args:?} prints: {}",
            describe(&read)
        );
        let o = into_closed_pipe(&mut svc(&t, args), false);
        assert_quiet(&o, *code, &format!("svc {}", args.join(" ")));
    }
}

#[test]
fn a_full_stdout_is_an_error() {
    let t = web();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = svc(&t, &["web", "print", "config"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("svc: cannot write to stdout: No space left on device"),
        "{}",
        describe(&o)
    );
    assert!(!err.contains("panicked"), "{}", describe(&o));
}

#[test]
fn an_action_whose_reader_goes_away_runs_to_its_end() {
    let t = web();
    let mnt = t.path("srv/web");

    // `svc web start 2>&1 | head -1`: the first log line read, the rest into a closed pipe.
    let (first, status) = head_1(&mut svc(&t, &["web", "start"]));
    assert!(first.contains(" INFO    WEB"), "a log line: {first:?}");
    assert_eq!(status.code(), Some(0), "start: {status}");
    assert!(mounted(&mnt), "started to its end");
    let o = svc(&t, &["web", "status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "up: {}", describe(&o));

    // `svc web stop 2>&1 | true`: not one line read.
    let o = into_closed_pipe(&mut svc(&t, &["web", "stop"]), true);
    assert_eq!(o.status.code(), Some(0), "stop: {}", describe(&o));
    assert!(!mounted(&mnt), "stopped to its end");
    let o = svc(&t, &["web", "status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "down: {}", describe(&o));

    // Both ran to their end: their last lines are in the service's log.
    let o = svc(&t, &["web", "logs"]).output().unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("svc web start: done"), "{log}");
    assert!(log.contains("svc web stop: done"), "{log}");
}

#[test]
fn a_failed_action_into_a_closed_pipe_keeps_its_exit_code() {
    let t = web();
    std::fs::remove_file(t.path("root.img")).unwrap();
    // The failure said into a closed stderr: exit 1, as when it is read.
    let o = into_closed_pipe(&mut svc(&t, &["web", "start"]), true);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    // And the usage error of a bad action: 2.
    let o = into_closed_pipe(&mut svc(&t, &["web", "frobnicate"]), true);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

/// `svc web logs -f`, its stdout read line by line on a thread; killed (and reaped) on drop.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(t: &TempBerth) -> Follower {
        use std::io::BufRead as _;
        let mut child = svc(t, &["web", "logs", "--follow"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Read lines until one contains `what` (bounded: 30 s); every line read is kept.
    fn wait_for(&mut self, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(what);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!(
                    "logs --follow: no line with {what:?} ({e}); it printed {} lines, the last: {:?}",
                    self.seen.len(),
                    self.seen.iter().rev().take(5).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// How many lines read so far contain `what`.
    fn count(&self, what: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(what)).count()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `svc web logs --follow` prints the log, then the lines of a `svc web stop` run meanwhile,
/// then, across a rotation (the file renamed to `actions.log.1` by the write that would take it
/// past 1 MiB, a new one created), the lines of a later start; each line once.
#[test]
fn logs_follow_prints_new_lines_across_a_rotation() {
    let t = web();
    let o = svc(&t, &["web", "start"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let mut f = Follower::start(&t);
    f.wait_for("svc web start: done");

    let o = svc(&t, &["web", "stop"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    f.wait_for("svc web stop: done");
    assert_eq!(f.count("umount"), 1, "{:?}", f.seen);

    // History up to just under the rotation size: the next line written rotates the file.
    let log = t.var_dir().join("web/actions.log");
    let size = std::fs::metadata(&log).unwrap().len();
    let line = |i: u64| {
        format!(
            "{:<99}\n",
            format!("2026-12-01 03:00:00 INFO    WEB                        filler {i:05}")
        )
    };
    let n = (1024 * 1024 - size - 10) / line(0).len() as u64;
    let filler: String = (0..n).map(line).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(filler.as_bytes())
        .unwrap();
    f.wait_for(&format!("filler {:05}", n - 1));

    let o = svc(&t, &["web", "start"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    f.wait_for("svc web start: done");
    let old = std::fs::read_to_string(t.var_dir().join("web/actions.log.1")).unwrap();
    assert!(old.ends_with(&filler), "the filled file was rotated");
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(
        new.lines()
            .next()
            .is_some_and(|l| l.ends_with("svc web start")),
        "{new}"
    );
    assert_eq!(
        f.count("filler"),
        usize::try_from(n).unwrap(),
        "each line once"
    );
    assert_eq!(f.count("svc web start: done"), 2, "{:?}", f.seen);
    assert_eq!(f.count("svc web stop: done"), 1, "{:?}", f.seen);
    let o = svc(&t, &["web", "stop"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
}

/// `svc web logs -f | head -1` ends quietly (exit 0) once its reader is gone, though nothing
/// more is written; so does `svc web logs -f` into a pipe closed before it printed anything
/// (a service with no log yet: it never writes, and sees the reader gone all the same).
#[test]
fn logs_follow_ends_when_its_reader_goes_away() {
    let t = web();
    let o = into_closed_pipe(&mut svc(&t, &["web", "logs", "-f"]), false);
    assert_quiet(&o, 0, "svc web logs -f into a closed pipe, no log");
    let o = svc(&t, &["web", "stop"]).output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let (first, status) = head_1(&mut svc(&t, &["web", "logs", "-f"]));
    assert!(first.ends_with("svc web stop"), "{first:?}");
    assert_eq!(status.code(), Some(0), "logs -f | head -1: {status}");
}
