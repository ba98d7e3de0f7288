//! The core seed's docker tutorial end to end through the `svc` CLI (root): a service whose
//! docker data dir is a loop-image fs, its private dockerd started by the passthrough, an image
//! imported through it, the service started, listed and stopped. The guard's Drop kills what the
//! case started (dockerd, containerd, shims and their containers) even when it fails; then
//! TempBerth's Drop unmounts and detaches what is left.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use berth_testkit::{TempBerth, describe as text, ext4_image, mounted, procs, require_root};

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
        let mut child = self
            .t
            .svc(SVC)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn svc");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        child.wait_with_output().expect("wait svc")
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
