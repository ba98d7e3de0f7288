//! The docker driver on the real host: a private dockerd (Debian's docker.io) per service, images
//! imported from a busybox-static rootfs (no registry). Every case has its own temp dir; `Host`'s
//! Drop kills what it started (dockerd, containerd, shims and their containers) even when the
//! case fails, then TempBerth's Drop unmounts and detaches what is left under the temp dir.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_drivers::{Ctx, DriverError, Outcome, docker, fs};
use berth_model::config::{ContainerSpec, Spec};
use berth_model::paths::Paths;
use berth_model::status::{Level, Status};
use berth_model::{ResourceState, Rid, ServiceConfig};
use berth_testkit::{TempBerth, alive, dockerds_on, ext4_image, require_root, signal};

/// One temp berth setup (config, var, run dirs) holding any number of services.
struct Host {
    tb: TempBerth,
    paths: Paths,
}

impl Host {
    fn new() -> Host {
        require_root();
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_target(false)
            .try_init();
        let tb = TempBerth::new();
        let paths = Paths::under(tb.root.path());
        Host { tb, paths }
    }

    /// Write and parse `services/<name>.toml`; `@ROOT@` stands for the temp dir.
    fn service(&self, name: &str, toml: &str) -> ServiceConfig {
        let text = toml.replace("@ROOT@", &self.tb.root.path().display().to_string());
        let file = self.tb.write_service(&format!("{name}.toml"), &text);
        ServiceConfig::parse(&file, &text).unwrap()
    }

    fn ctx<'a>(&'a self, svc: &'a ServiceConfig) -> Ctx<'a> {
        Ctx {
            svc,
            nodename: "node1",
            paths: &self.paths,
            force: false,
            fence: None,
            prechecked: None,
        }
    }

    fn socket(&self, svc: &str) -> PathBuf {
        self.paths.docker_socket(svc)
    }

    /// The docker CLI against `svc`'s private daemon, failing the test when it fails.
    fn docker(&self, svc: &str, args: &[&str]) -> String {
        let out = self.docker_any(svc, args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn docker_any(&self, svc: &str, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket(svc).display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// Import a busybox-static rootfs into `svc`'s daemon as `image`, with Dockerfile `changes`.
    fn import(&self, svc: &str, image: &str, changes: &[&str]) {
        let rootfs = self.tb.path("rootfs");
        if !rootfs.exists() {
            berth_testkit::busybox_rootfs(&rootfs);
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket(svc).display()))
            .arg("import");
        for c in changes {
            cmd.arg("--change").arg(c);
        }
        let mut child = cmd
            .args(["-", image])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pid in `svc`'s docker pidfile.
    fn pidfile_pid(&self, svc: &str) -> Option<i32> {
        std::fs::read_to_string(self.paths.docker_pidfile(svc))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Live dockerd processes serving `svc`'s socket.
    fn dockerds(&self, svc: &str) -> Vec<i32> {
        dockerds_on(&self.socket(svc))
    }
}

fn rid(s: &str) -> Rid {
    s.parse().unwrap()
}

fn spec(svc: &ServiceConfig, r: &str) -> ContainerSpec {
    match &svc.resource(rid(r)).unwrap().spec {
        Spec::Container(c) => (**c).clone(),
        _ => panic!("{r} is not a container"),
    }
}

fn status(h: &Host, svc: &ServiceConfig, r: &str) -> ResourceState {
    docker::status(&h.ctx(svc), rid(r), &spec(svc, r))
}

fn start(h: &Host, svc: &ServiceConfig, r: &str) -> Result<Outcome, DriverError> {
    docker::start(&h.ctx(svc), rid(r), &spec(svc, r))
}

fn stop(h: &Host, svc: &ServiceConfig, r: &str) -> Result<Outcome, DriverError> {
    docker::stop(&h.ctx(svc), rid(r), &spec(svc, r))
}

/// The status is `want`, with an info line `line`.
fn assert_state(st: &ResourceState, want: Status, line: &str) {
    assert_eq!(st.status, want, "{st:?}");
    assert!(
        st.log
            .iter()
            .any(|l| l.level == Level::Info && l.message.contains(line)),
        "no info line {line:?} in {st:?}"
    );
}

/// The full id of the running container `name`.
fn container_id(h: &Host, svc: &str, name: &str) -> String {
    h.docker(svc, &["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

const SH: &str =
    "[container.1]\nrun_image = \"bb\"\nrun_command = \"/bin/sh\"\nstop_timeout = \"2s\"\n";

/// The seed's life cycle at the driver level: status after each step, start and stop twice,
/// and the chargeback figures.
#[test]
fn contract_start_stop_twice_and_status_after_each() {
    let h = Host::new();
    let svc = h.service("web", SH);
    let ctx = h.ctx(&svc);

    let st = status(&h, &svc, "container#1");
    assert_state(&st, Status::Down, "docker daemon is not running");
    assert_eq!(st.label, "bb");
    assert!(
        h.dockerds("web").is_empty(),
        "status must not start the daemon"
    );

    // The passthrough starts the daemon; the image is not there yet.
    let code = docker::passthrough(&ctx, &[OsString::from("images")]).unwrap();
    assert_eq!(code, 0);
    assert_eq!(h.dockerds("web").len(), 1);
    let st = status(&h, &svc, "container#1");
    assert_state(&st, Status::Down, "can not find container id");
    assert_eq!(st.label, "bb");

    h.import("web", "bb", &[]);
    let st = status(&h, &svc, "container#1");
    assert_state(&st, Status::Down, "can not find container id");
    assert_eq!(
        st.label, "bb:latest",
        "the image is shown by its name once known"
    );

    assert_eq!(start(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    let id = container_id(&h, "web", "web.container.1");
    let st = status(&h, &svc, "container#1");
    assert_eq!(st.status, Status::Up, "{st:?}");
    assert_eq!(st.label, format!("{}@bb:latest", &id[..12]));
    assert!(st.log.is_empty(), "{st:?}");
    assert_eq!(
        start(&h, &svc, "container#1").unwrap(),
        Outcome::AlreadyDone
    );
    assert_eq!(status(&h, &svc, "container#1").status, Status::Up);
    let ps = h.docker("web", &["ps", "--format", "{{.Names}} {{.Command}}"]);
    assert!(ps.contains("web.container.1"), "{ps}");

    let cb = docker::chargeback(&ctx, None).unwrap();
    assert_eq!((cb.containers, cb.running, cb.images), (1, 1, 1), "{cb:?}");
    assert!(cb.data_bytes > 1_000_000, "{cb:?}");
    assert!(cb.daemon_rss_bytes > 10_000_000, "{cb:?}");

    assert_eq!(stop(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    let st = status(&h, &svc, "container#1");
    assert_state(&st, Status::Down, "docker daemon is not running");
    assert_eq!(st.label, "bb");
    assert!(h.dockerds("web").is_empty(), "the daemon is shut down");
    assert!(!h.paths.docker_pidfile("web").exists());
    assert!(!h.socket("web").exists());
    assert_eq!(stop(&h, &svc, "container#1").unwrap(), Outcome::AlreadyDone);
    assert!(h.dockerds("web").is_empty());

    let cb = docker::chargeback(&ctx, None).unwrap();
    assert_eq!(
        (cb.containers, cb.running, cb.daemon_rss_bytes),
        (1, 0, 0),
        "{cb:?}"
    );
    let again = docker::chargeback(&ctx, Some(42)).unwrap();
    assert_eq!(again.data_bytes, 42, "a measured size is taken as it is");
    assert!(cb.images >= 1 && cb.data_bytes > 1_000_000, "{cb:?}");

    // Started again, the stopped container is reused.
    assert_eq!(start(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    assert_eq!(container_id(&h, "web", "web.container.1"), id);
    assert_eq!(stop(&h, &svc, "container#1").unwrap(), Outcome::Changed);
}

/// Two services, two daemons: images of one are invisible to the other, and stopping one leaves
/// the other running.
#[test]
fn two_services_two_daemons() {
    let h = Host::new();
    let a = h.service("a", &SH.replace("\"bb\"", "\"aimg\""));
    let b = h.service("b", &SH.replace("\"bb\"", "\"bimg\""));
    for (svc, name) in [(&a, "a"), (&b, "b")] {
        assert_eq!(
            docker::passthrough(&h.ctx(svc), &[OsString::from("info")]).unwrap(),
            0
        );
        h.import(name, &format!("{name}img"), &[]);
    }
    let (da, db) = (h.dockerds("a"), h.dockerds("b"));
    assert_eq!((da.len(), db.len()), (1, 1));
    assert_ne!(da, db);
    let images_a = h.docker("a", &["images", "--format", "{{.Repository}}"]);
    let images_b = h.docker("b", &["images", "--format", "{{.Repository}}"]);
    assert_eq!(images_a.trim(), "aimg");
    assert_eq!(images_b.trim(), "bimg");

    start(&h, &a, "container#1").unwrap();
    start(&h, &b, "container#1").unwrap();
    assert_eq!(status(&h, &a, "container#1").status, Status::Up);
    assert_eq!(status(&h, &b, "container#1").status, Status::Up);

    stop(&h, &a, "container#1").unwrap();
    assert_state(
        &status(&h, &a, "container#1"),
        Status::Down,
        "docker daemon is not running",
    );
    assert!(h.dockerds("a").is_empty());
    assert_eq!(h.dockerds("b"), db, "b's daemon still runs");
    let st = status(&h, &b, "container#1");
    assert_eq!(st.status, Status::Up, "{st:?}");
    stop(&h, &b, "container#1").unwrap();
    assert!(h.dockerds("b").is_empty());
}

/// A missing image fails the start clearly, and the daemon that start started is stopped.
#[test]
fn missing_image_fails_and_stops_the_daemon_it_started() {
    let h = Host::new();
    let svc = h.service("web", &SH.replace("\"bb\"", "\"nosuch:1.0\""));
    let e = start(&h, &svc, "container#1").unwrap_err().to_string();
    assert!(
        e.contains("image nosuch:1.0 is not known to the docker daemon of web")
            && e.contains("pull it (svc web docker pull nosuch:1.0")
            && e.contains(
                "svc web startfs, then tar -C ROOTFS -c . | svc web docker import - nosuch:1.0"
            ),
        "{e}"
    );
    assert!(
        h.dockerds("web").is_empty(),
        "the daemon started by the failed start is stopped"
    );
    assert!(!h.paths.docker_pidfile("web").exists());
    assert!(!h.socket("web").exists());
    assert_state(
        &status(&h, &svc, "container#1"),
        Status::Down,
        "docker daemon is not running",
    );
}

/// dockerd killed with SIGKILL: the status says it is not running, and the next start cleans
/// the stale pidfile and recovers.
#[test]
fn killed_daemon_is_reported_and_recovered() {
    let h = Host::new();
    let svc = h.service("web", SH);
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "bb", &[]);
    start(&h, &svc, "container#1").unwrap();
    let pid = h.pidfile_pid("web").unwrap();
    signal(pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "dockerd {pid} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        h.paths.docker_pidfile("web").exists(),
        "the pidfile is stale now"
    );
    // The container outlives its daemon (its shim keeps it): the status says what is true.
    let st = status(&h, &svc, "container#1");
    assert_eq!(st.status, Status::Warn, "{st:?}");
    assert!(st.label.ends_with("@bb"), "{st:?}");
    let warn = st
        .log
        .iter()
        .find(|l| l.level == Level::Warn)
        .unwrap_or_else(|| panic!("no warning: {st:?}"));
    let process: i32 = warn
        .message
        .strip_prefix("docker daemon is not running, but container ")
        .and_then(|m| m.split_once("still runs (pid "))
        .and_then(|(_, m)| m.split_once(' '))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("{warn:?}"));
    assert!(
        alive(process),
        "{warn:?} names a process that is not running"
    );

    assert_eq!(start(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    let new_pid = h.pidfile_pid("web").unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(h.dockerds("web"), [new_pid]);
    assert_eq!(status(&h, &svc, "container#1").status, Status::Up);
    stop(&h, &svc, "container#1").unwrap();
    assert!(h.dockerds("web").is_empty());
}

/// A daemon left running by a crashed berth (pidfile alive, socket answering) is reused.
#[test]
fn running_daemon_is_reused_not_duplicated() {
    let h = Host::new();
    let svc = h.service("web", SH);
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    let pid = h.pidfile_pid("web").unwrap();
    h.import("web", "bb", &[]);
    start(&h, &svc, "container#1").unwrap();
    assert_eq!(h.dockerds("web"), [pid]);
    stop(&h, &svc, "container#1").unwrap();
}

/// A container whose command ends is reported down.
#[test]
fn exited_container_is_reported_down() {
    let h = Host::new();
    let svc = h.service(
        "web",
        "[container.1]\nrun_image = \"bb\"\nrun_command = \"sleep 1\"\n",
    );
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "bb", &[]);
    start(&h, &svc, "container#1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let st = loop {
        let st = status(&h, &svc, "container#1");
        if st.status != Status::Up {
            break st;
        }
        assert!(Instant::now() < deadline, "the container still runs");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_state(&st, Status::Down, "exited (exit code 0)");
    assert!(st.label.ends_with("@bb:latest"), "{st:?}");
    // Stop finds it down, and shuts the idle daemon.
    assert_eq!(stop(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    assert!(h.dockerds("web").is_empty());
}

/// A PID 1 that ignores TERM (`sleep`) stops quickly under the default init; without init it
/// takes the whole stop timeout.
#[test]
fn init_stops_a_pid1_that_ignores_term() {
    let h = Host::new();
    let svc = h.service(
        "web",
        // `network = none`: this test runs in the host's namespace, where no service network
        // (a bridge) may be made.
        "[container.1]\nrun_image = \"bb\"\nrun_command = \"sleep 1000\"\nstop_timeout = \"10s\"\n\
         network = \"none\"\n\
         [container.2]\nrun_image = \"bb\"\nrun_command = \"sleep 1000\"\ninit = false\n\
         stop_timeout = \"3s\"\nnetwork = \"none\"\n",
    );
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "bb", &[]);
    start(&h, &svc, "container#1").unwrap();
    start(&h, &svc, "container#2").unwrap();

    let t = Instant::now();
    stop(&h, &svc, "container#1").unwrap();
    let with_init = t.elapsed();
    assert!(
        with_init < Duration::from_secs(5),
        "stop with init took {with_init:?}, not within the 5 s bound"
    );
    // Killed by TERM through the init (143), not by the KILL after the timeout (137).
    let code = h.docker(
        "web",
        &["inspect", "-f", "{{.State.ExitCode}}", "web.container.1"],
    );
    assert_eq!(code.trim(), "143");
    assert_eq!(
        h.dockerds("web").len(),
        1,
        "container#2 still runs: the daemon stays"
    );

    let t = Instant::now();
    stop(&h, &svc, "container#2").unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "without init, sleep as PID 1 should have ignored TERM"
    );
    assert!(h.dockerds("web").is_empty());
}

/// The data dir on the service's fs: the daemon never starts while that fs is down; once it is
/// up the seed's steps work, and after stop the fs unmounts (nothing of docker holds it).
#[test]
fn data_dir_fs_down_refuses_the_daemon() {
    let h = Host::new();
    ext4_image(&h.tb.path("root.img"), 16);
    ext4_image(&h.tb.path("data.img"), 256);
    let svc = h.service(
        "web",
        "[service]\ndocker_data_dir = \"@ROOT@/srv/appdata\"\n\
         [fs.1]\ndev = \"@ROOT@/root.img\"\nmnt = \"@ROOT@/srv\"\ntype = \"ext4\"\n\
         [fs.2]\ndev = \"@ROOT@/data.img\"\nmnt = \"@ROOT@/srv/appdata\"\ntype = \"ext4\"\n\
         [container.1]\nrun_image = \"bb\"\nrun_command = \"/bin/sh\"\n\
         run_args = \"-v @ROOT@/srv/vol1:/vol1:rw\"\nstop_timeout = \"2s\"\n",
    );
    let fs_spec = |r: &str| match &svc.resource(rid(r)).unwrap().spec {
        Spec::Fs(f) => f.clone(),
        _ => panic!(),
    };
    let (fs1, fs2) = (fs_spec("fs#1"), fs_spec("fs#2"));
    fs::start(&fs1).unwrap();

    let e = docker::passthrough(&h.ctx(&svc), &[OsString::from("images")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is on fs#2") && e.contains("which is down"),
        "{e}"
    );
    let e = start(&h, &svc, "container#1").unwrap_err().to_string();
    assert!(e.contains("is on fs#2") && e.contains("startfs"), "{e}");
    assert!(h.dockerds("web").is_empty());
    assert!(
        !fs2.mnt.join("image").exists(),
        "nothing written in the empty mount point"
    );

    fs::start(&fs2).unwrap();
    docker::passthrough(&h.ctx(&svc), &[OsString::from("images")]).unwrap();
    h.import("web", "bb", &[]);
    start(&h, &svc, "container#1").unwrap();
    assert_eq!(status(&h, &svc, "container#1").status, Status::Up);
    assert!(
        fs2.mnt.join("image").exists(),
        "the daemon keeps its data on fs#2"
    );
    h.docker("web", &["exec", "web.container.1", "touch", "/vol1/hello"]);
    assert!(fs1.mnt.join("vol1/hello").exists());

    stop(&h, &svc, "container#1").unwrap();
    assert!(h.dockerds("web").is_empty());
    fs::stop(&fs2).unwrap();
    fs::stop(&fs1).unwrap();
    let left: Vec<PathBuf> = fs::mountinfo::read()
        .unwrap()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|m| m.starts_with(h.tb.root.path()))
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "mounts left");
}

/// An image with a healthcheck: start waits until healthy; an unhealthy one fails the start.
#[test]
fn healthcheck_is_waited_for() {
    let h = Host::new();
    let svc = h.service(
        "web",
        // `network = none`: no service network (a bridge) in the host's namespace.
        "[container.1]\nrun_image = \"ok\"\nrun_command = \"sleep 1000\"\nnetwork = \"none\"\n\
         [container.2]\nrun_image = \"bad\"\nrun_command = \"sleep 1000\"\nstart_timeout = \"20s\"\n\
         network = \"none\"\n",
    );
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "ok", &["HEALTHCHECK --interval=1s CMD true"]);
    h.import(
        "web",
        "bad",
        &["HEALTHCHECK --interval=1s --retries=1 CMD false"],
    );
    start(&h, &svc, "container#1").unwrap();
    let health = h.docker(
        "web",
        &[
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            "web.container.1",
        ],
    );
    assert_eq!(health.trim(), "healthy");
    let e = start(&h, &svc, "container#2").unwrap_err().to_string();
    assert!(e.contains("unhealthy"), "{e}");
    assert_eq!(
        h.dockerds("web").len(),
        1,
        "the daemon was not started by that start"
    );
    stop(&h, &svc, "container#2").unwrap();
    stop(&h, &svc, "container#1").unwrap();
    assert!(h.dockerds("web").is_empty());
}

/// Service `web` of one container (`SH`), started once and stopped: the service and the id of
/// its container.
fn started_once(h: &Host) -> (ServiceConfig, String) {
    let svc = h.service("web", SH);
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "bb", &[]);
    start(h, &svc, "container#1").unwrap();
    let id = container_id(h, "web", "web.container.1");
    stop(h, &svc, "container#1").unwrap();
    (svc, id)
}

/// A stopped container created from another configuration is created again.
#[test]
fn changed_config_recreates_the_container() {
    let h = Host::new();
    let (_, first) = started_once(&h);

    let svc = h.service("web", &format!("{SH}env = [\"COLOUR=blue\"]\n"));
    start(&h, &svc, "container#1").unwrap();
    let second = container_id(&h, "web", "web.container.1");
    assert_ne!(first, second);
    let env = h.docker(
        "web",
        &["exec", "web.container.1", "sh", "-c", "echo $COLOUR"],
    );
    assert_eq!(env.trim(), "blue");
    stop(&h, &svc, "container#1").unwrap();
}

/// A running container whose image is not `run_image` (the file changed since it started) is up
/// with a warning naming both images.
#[test]
fn other_image_than_run_image_warns() {
    let h = Host::new();
    let svc = h.service("web", SH);
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    h.import("web", "bb", &[]);
    h.import("web", "bb2", &["ENV X=1"]);
    start(&h, &svc, "container#1").unwrap();
    let svc2 = h.service("web", &SH.replace("\"bb\"", "\"bb2\""));
    let st = status(&h, &svc2, "container#1");
    assert_eq!(st.status, Status::Up, "{st:?}");
    assert!(st.label.ends_with("@bb:latest"), "{st:?}");
    assert!(
        st.log.iter().any(|l| l.level == Level::Warn
            && l.message == "the container runs image bb:latest, not run_image bb2"),
        "{st:?}"
    );
    stop(&h, &svc2, "container#1").unwrap();
    assert!(h.dockerds("web").is_empty());
}

/// A's pidfile holds the pid of B's running dockerd (pids reused after a reboot, the var dir
/// kept): that is not A's daemon. A's stop and start log the stale pidfile and remove it, never
/// signal B's daemon, and A's start does not wait for it to answer on A's socket.
#[test]
fn a_stale_pidfile_naming_another_services_daemon_is_left_alone() {
    let h = Host::new();
    let a = h.service("a", SH);
    let b = h.service("b", SH);
    for (svc, name) in [(&a, "a"), (&b, "b")] {
        docker::passthrough(&h.ctx(svc), &[OsString::from("info")]).unwrap();
        h.import(name, "bb", &[]);
    }
    start(&h, &b, "container#1").unwrap();
    // A's daemon runs no container: its stop shuts it down.
    stop(&h, &a, "container#1").unwrap();
    assert!(h.dockerds("a").is_empty());
    let b_pid = h.pidfile_pid("b").unwrap();
    let a_pidfile = h.paths.docker_pidfile("a");
    let plant = || std::fs::write(&a_pidfile, format!("{b_pid}\n")).unwrap();

    plant();
    let st = status(&h, &a, "container#1");
    assert_state(&st, Status::Down, "docker daemon is not running");
    // Before: "does not answer ...: shut it down", and B's dockerd got TERM.
    assert_eq!(stop(&h, &a, "container#1").unwrap(), Outcome::Changed);
    assert!(!a_pidfile.exists());
    assert!(alive(b_pid), "B's dockerd was signalled by A's stop");
    assert_eq!(status(&h, &b, "container#1").status, Status::Up);

    // Before: A's start waited 60 s for B's daemon to answer on A's socket, then failed.
    plant();
    assert_eq!(start(&h, &a, "container#1").unwrap(), Outcome::Changed);
    let a_pid = h.pidfile_pid("a").unwrap();
    assert_ne!(a_pid, b_pid);
    assert_eq!(h.dockerds("a"), [a_pid]);
    assert!(alive(b_pid));
    assert_eq!(status(&h, &a, "container#1").status, Status::Up);
    assert_eq!(status(&h, &b, "container#1").status, Status::Up);
    stop(&h, &a, "container#1").unwrap();
    stop(&h, &b, "container#1").unwrap();
    assert!(h.dockerds("a").is_empty() && h.dockerds("b").is_empty());
}

/// After a successful start, `run_image` changed to an image the daemon does not have: the
/// start fails on the image, and the stopped container of the old configuration is still
/// there (it used to be removed first), and starts again under the old file.
#[test]
fn a_failed_start_keeps_the_old_container() {
    let h = Host::new();
    let (svc, old) = started_once(&h);

    let bad = h.service("web", &SH.replace("\"bb\"", "\"nosuch:2\""));
    let e = start(&h, &bad, "container#1").unwrap_err().to_string();
    assert!(e.contains("image nosuch:2 is not known"), "{e}");
    // The failed start shut down the daemon it started; look with a daemon again.
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    assert_eq!(
        container_id(&h, "web", "web.container.1"),
        old,
        "the old container is gone"
    );
    let svc = h.service("web", SH);
    assert_eq!(start(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    assert_eq!(container_id(&h, "web", "web.container.1"), old);
    stop(&h, &svc, "container#1").unwrap();
}

/// The file changed to a setting the daemon refuses at create (a CPU the node does not have):
/// the container of the old configuration, set aside under `<name>.replaced` while the new one
/// was created, is put back as it was; the old file starts it again, and the next change that
/// the daemon takes replaces it and leaves nothing aside.
#[test]
fn a_create_the_daemon_refuses_keeps_the_old_container() {
    let h = Host::new();
    let (svc, old) = started_once(&h);

    let refused = h.service("web", &format!("{SH}cpuset_cpus = \"1000\"\n"));
    let e = start(&h, &refused, "container#1").unwrap_err().to_string();
    assert!(e.contains("create container web.container.1"), "{e}");
    docker::passthrough(&h.ctx(&svc), &[OsString::from("info")]).unwrap();
    assert_eq!(
        container_id(&h, "web", "web.container.1"),
        old,
        "the old container is gone"
    );
    let names = h.docker("web", &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "web.container.1", "something is left aside");
    assert_eq!(start(&h, &svc, "container#1").unwrap(), Outcome::Changed);
    assert_eq!(container_id(&h, "web", "web.container.1"), old);
    stop(&h, &svc, "container#1").unwrap();

    let changed = h.service("web", &format!("{SH}env = [\"COLOUR=blue\"]\n"));
    start(&h, &changed, "container#1").unwrap();
    assert_ne!(container_id(&h, "web", "web.container.1"), old);
    let names = h.docker("web", &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        names.trim(),
        "web.container.1",
        "the replaced container is left"
    );
    stop(&h, &changed, "container#1").unwrap();
    assert!(h.dockerds("web").is_empty());
}
