//! The core seed's docker tutorial end to end through the `svc` CLI (root): a service whose
//! docker data dir is a loop-image fs, its private dockerd started by the passthrough, an image
//! imported through it, the service started, listed and stopped. The guard's Drop kills what the
//! case started (dockerd, containerd, shims and their containers) even when it fails; then
//! TempBerth's Drop unmounts and detaches what is left.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Output, Stdio};

use berth_testkit::{
    TempBerth, describe as text, ext4_image, mounted, output_with_stdin, procs, require_root,
};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

struct Case {
    t: TempBerth,
}

impl Case {
    fn new(service: &str) -> Case {
        require_root();
        let t = TempBerth::new();
        ext4_image(&t.path("data.img"), 256);
        let root = t.root.path().display().to_string();
        t.write_service("web.toml", &service.replace("@ROOT@", &root));
        Case { t }
    }

    fn svc(&self, args: &[&str]) -> Output {
        self.t.svc(SVC).args(args).output().expect("run svc")
    }

    /// `svc` with `input` on its stdin.
    fn svc_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        output_with_stdin(self.t.svc(SVC).args(args), input)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path(rel)
    }

    /// Live dockerd processes started for this case.
    fn dockerds(&self) -> Vec<i32> {
        let root = self.t.root.path().display().to_string();
        procs()
            .into_iter()
            .filter(|p| p.comm == "dockerd" && p.words.iter().any(|w| w.contains(&root)))
            .map(|p| p.pid)
            .collect()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> Output {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    o
}

/// The line of `rid` in a `print status` tree, and the line below it.
fn resource_lines(tree: &str, rid: &str) -> (String, String) {
    let lines: Vec<&str> = tree.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(&format!("- {rid} ")))
        .unwrap_or_else(|| panic!("no {rid} in\n{tree}"));
    (
        lines[i].to_string(),
        lines.get(i + 1).unwrap_or(&"").to_string(),
    )
}

const SEED: &str = r#"
[service]
nodes = ["node1"]
docker_data_dir = "@ROOT@/srv/appdata"

[fs.1]
dev = "@ROOT@/data.img"
mnt = "@ROOT@/srv/appdata"
type = "ext4"
mnt_opt = "rw"

[container.1]
type = "docker"
run_image = "busybox:latest"
run_command = "/bin/sh"
run_args = "-v @ROOT@/srv/vol1:/vol1:rw"
stop_timeout = "2s"
"#;

#[test]
fn the_seed_docker_tutorial_through_the_cli() {
    let c = Case::new(SEED);
    let data = c.path("srv/appdata");

    // All down: the daemon is not running.
    let tree = stdout(&ok(c.svc(&["web", "print", "status"])));
    let (line, below) = resource_lines(&tree, "container#1");
    assert!(
        line.contains("down") && line.contains("busybox:latest"),
        "{tree}"
    );
    assert!(below.contains("# docker daemon is not running"), "{tree}");
    assert!(
        c.dockerds().is_empty(),
        "print status must not start the daemon"
    );

    // The passthrough refuses to start the daemon while the data dir's fs is down.
    let o = c.svc(&["web", "docker", "images"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("which is down"), "{}", text(&o));
    assert!(c.dockerds().is_empty());

    // Help and version need no daemon: they answer even while the data dir's fs is down.
    for args in [&["--help"][..], &["ps", "--help"], &["--version"]] {
        let o = ok(c.svc(&[&["web", "docker"][..], args].concat()));
        assert!(!stdout(&o).is_empty(), "{}", text(&o));
        assert!(
            c.dockerds().is_empty(),
            "docker {args:?} started the daemon"
        );
    }

    ok(c.svc(&["web", "startfs"]));
    assert!(mounted(&data));

    // The passthrough starts the daemon silently: no image yet.
    let o = ok(c.svc(&["web", "docker", "images"]));
    let images: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(images.len(), 1, "only the header: {}", text(&o));
    assert!(images[0].starts_with("REPOSITORY"), "{}", text(&o));
    assert_eq!(c.dockerds().len(), 1);
    let tree = stdout(&ok(c.svc(&["web", "print", "status"])));
    let (_, below) = resource_lines(&tree, "container#1");
    assert!(below.contains("# can not find container id"), "{tree}");

    // Exit codes pass through.
    let o = c.svc(&["web", "docker", "inspect", "no-such-thing"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Import through the passthrough's stdin.
    let tar = berth_testkit::busybox_tar(&c.path("rootfs"));
    let o = ok(c.svc_stdin(&["web", "docker", "import", "-", "busybox:latest"], &tar));
    assert!(stdout(&o).starts_with("sha256:"), "{}", text(&o));

    let o = ok(c.svc(&["web", "start"]));
    let log = String::from_utf8_lossy(&o.stderr).into_owned() + &stdout(&o);
    assert!(
        log.contains("run -t -i -d --name=web.container.1")
            && log.contains("wait for container up status"),
        "{}",
        text(&o)
    );
    let ps = stdout(&ok(c.svc(&[
        "web",
        "docker",
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}}",
    ])));
    let (id, name) = ps.trim().split_once(' ').expect("one container");
    assert_eq!(name, "web.container.1");
    let tree = stdout(&ok(c.svc(&["web", "print", "status"])));
    let (line, _) = resource_lines(&tree, "container#1");
    assert!(
        line.contains(" up ") && line.contains(&format!("{}@busybox:latest", &id[..12])),
        "{tree}"
    );
    assert!(tree.lines().nth(1).unwrap_or("").contains("up"), "{tree}");
    ok(c.svc(&["web", "status"]));
    // The JSON tree carries the chargeback (the text tree does not).
    let json: serde_json::Value = serde_json::from_str(&stdout(&ok(
        c.svc(&["--format", "json", "web", "print", "status"])
    )))
    .expect("json status");
    let cb = &json["chargeback"];
    assert_eq!(cb["containers"], 1, "{json}");
    assert_eq!(cb["images"], 1, "{json}");
    assert!(cb["data_bytes"].as_u64().unwrap_or(0) > 0, "{json}");
    assert!(cb["daemon_rss_bytes"].as_u64().unwrap_or(0) > 0, "{json}");
    // The volume from run_args works.
    ok(c.svc(&[
        "web",
        "docker",
        "exec",
        "web.container.1",
        "touch",
        "/vol1/x",
    ]));
    assert!(c.path("srv/vol1/x").exists());

    let o = ok(c.svc(&["web", "stop"]));
    let log = String::from_utf8_lossy(&o.stderr).into_owned() + &stdout(&o);
    assert!(
        log.contains("no more container handled by docker daemon. shut it down"),
        "{}",
        text(&o)
    );
    assert!(c.dockerds().is_empty(), "the daemon is gone");
    assert!(!mounted(&data), "the fs is unmounted");
    let tree = stdout(&ok(c.svc(&["web", "print", "status"])));
    assert!(tree.lines().nth(1).unwrap_or("").contains("down"), "{tree}");
    let (line, below) = resource_lines(&tree, "container#1");
    assert!(line.contains("down"), "{tree}");
    assert!(below.contains("# docker daemon is not running"), "{tree}");
    let (line, _) = resource_lines(&tree, "fs#1");
    assert!(line.contains("down"), "{tree}");
}

/// A service of one container, its data root under the var dir (no fs).
const PLAIN: &str = r#"
[container.1]
run_image = "bb"
run_command = "/bin/sh"
stop_timeout = "2s"
"#;

/// Lines of `child`'s stderr, one at a time, until `stop` says so; returns the last one.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    seen: &mut String,
    stop: impl Fn(&str) -> bool,
) -> Option<String> {
    for line in lines.by_ref() {
        let line = line.expect("read svc stderr");
        seen.push_str(&line);
        seen.push('\n');
        if stop(&line) {
            return Some(line);
        }
    }
    None
}

/// `svc web start` killed (-9) right after it spawned dockerd, and started again at once while
/// that dockerd is still starting: the second start finds it and waits for it instead of
/// spawning a second daemon (which failed on the first one's pidfile). The first daemon is
/// held "still starting" deterministically: its config file is a FIFO it blocks reading until
/// the test writes it, before it writes its pidfile or socket.
#[test]
fn a_start_killed_after_spawning_dockerd_is_finished_by_the_next_start() {
    use std::io::BufRead as _;
    let c = Case::new(PLAIN);
    ok(c.svc(&["web", "docker", "info"]));
    let tar = berth_testkit::busybox_tar(&c.path("rootfs"));
    ok(c.svc_stdin(&["web", "docker", "import", "-", "bb"], &tar));
    ok(c.svc(&["web", "stop"]));
    assert!(c.dockerds().is_empty());
    let config = c.path("var/web/daemon.json");
    std::fs::remove_file(&config).unwrap();
    berth_testkit::run("mkfifo", &[config.to_str().unwrap()]);

    let spawn_start = || {
        c.t.svc(SVC)
            .args(["web", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn svc")
    };
    let mut first = spawn_start();
    let mut first_err = std::io::BufReader::new(first.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    read_until(&mut first_err, &mut seen, |l| l.contains("dockerd -H"))
        .unwrap_or_else(|| panic!("no dockerd line: {seen}"));
    // The line comes just before the spawn: kill once the daemon exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let daemon = loop {
        if let [pid] = c.dockerds()[..] {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "no dockerd: {seen}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!c.path("var/web/docker.pid").exists(), "still starting");

    let mut second = spawn_start();
    let mut second_err = std::io::BufReader::new(second.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let line = read_until(&mut second_err, &mut seen, |l| {
        l.contains("dockerd -H") || l.contains("is starting or does not answer")
    })
    .unwrap_or_else(|| panic!("the second start said nothing of the daemon: {seen}"));
    assert!(
        line.contains(&format!("docker daemon pid {daemon} of web is starting")),
        "the second start spawned another daemon: {seen}"
    );
    // Let the first daemon go on: it reads its (empty) config and comes up.
    std::fs::write(&config, "{}\n").unwrap();
    read_until(&mut second_err, &mut seen, |_| false);
    let status = second.wait().unwrap();
    assert!(status.success(), "second start failed: {seen}");
    assert_eq!(c.dockerds(), [daemon], "one daemon, the first one");
    let tree = stdout(&ok(c.svc(&["web", "print", "status"])));
    let (line, _) = resource_lines(&tree, "container#1");
    assert!(line.contains(" up "), "{tree}");
    ok(c.svc(&["web", "stop"]));
    assert!(c.dockerds().is_empty());
}
