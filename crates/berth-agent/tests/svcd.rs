//! svcd as a real process (root): its HTTP endpoint, the monitor, autostart, SIGTERM, reloads
//! and hostile clients. Every case has its own temp dirs, loop images and daemon; the daemon
//! listens on a free loopback port it picks itself (`listen = "127.0.0.1:0"`) and tells it in its
//! sd_notify READY message, which the test receives on its own socket. `Case` kills the daemon,
//! then `TempBerth` unmounts and detaches, even when a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_model::status::{Level, NodeStatus, ServiceStatus, Status};
use berth_testkit::daemon::{Notify, Resp, http, raw_request, wait_for};
use berth_testkit::{TempBerth, ext4_image, mounted, require_root};

const SVCD: &str = env!("CARGO_BIN_EXE_svcd");
const TOKEN: &str = "s3cret-token";

/// `svc`, built next to `svcd` (`cargo test --workspace` builds it; so does `cargo build -p berth-cli`).
fn svc_bin() -> PathBuf {
    let p = Path::new(SVCD).with_file_name("svc");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p berth-cli` first (scripts/test.sh builds it)",
        p.display()
    );
    p
}

fn umount(p: &Path) {
    let out = Command::new("umount").arg(p).output().unwrap();
    assert!(out.status.success(), "umount {}: {:?}", p.display(), out);
}

/// A running svcd, killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world. Field order matters: the daemon dies before the dirs are cleaned.
struct Case {
    daemon: Option<Daemon>,
    t: TempBerth,
}

impl Case {
    fn new(node_toml: &str) -> Case {
        require_root();
        let t = TempBerth::new();
        let token = t.config_dir().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            t.config_dir().join("node.toml"),
            format!("listen = \"127.0.0.1:0\"\n{node_toml}"),
        )
        .unwrap();
        Case { daemon: None, t }
    }

    /// A service `name` with one fs on a fresh image; `svc_extra` goes in `[service]`,
    /// `fs_extra` in `[fs.1]`. Returns the mount point.
    fn fs_service(&self, name: &str, svc_extra: &str, fs_extra: &str) -> PathBuf {
        let img = self.t.path(&format!("{name}.img"));
        ext4_image(&img, 8);
        let mnt = self.t.path(&format!("mnt/{name}"));
        self.t.write_service(
            &format!("{name}.toml"),
            &format!(
                "[service]\nnodes = [\"node1\"]\n{svc_extra}\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n{fs_extra}\n",
                img.display(),
                mnt.display()
            ),
        );
        mnt
    }

    /// A service `name` whose fs is never mounted (its image does not exist).
    fn idle_service(&self, name: &str) {
        self.t.write_service(
            &format!("{name}.toml"),
            &format!(
                "[service]\nnodes = [\"node1\"]\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                self.t.path(&format!("{name}.img")).display(),
                self.t.path(&format!("mnt/{name}")).display()
            ),
        );
    }

    fn command(&self, envs: &[(&str, &str)]) -> (Command, PathBuf, Notify) {
        let notify = Notify::bind(&self.t.path("notify.sock"));
        let log = self.t.path("svcd.log");
        let mut cmd = Command::new(SVCD);
        cmd.env("BERTH_CONFIG_DIR", self.t.config_dir())
            .env("BERTH_VAR_DIR", self.t.var_dir())
            .env("BERTH_RUN_DIR", self.t.run_dir())
            .env("BERTH_NODENAME", "node1")
            .env("NOTIFY_SOCKET", notify.path())
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        (cmd, log, notify)
    }

    /// Start svcd and wait for its READY=1 (it carries the port).
    fn start_daemon(&mut self, envs: &[(&str, &str)]) {
        let (mut cmd, log, notify) = self.command(envs);
        let mut child = cmd.spawn().unwrap();
        let port = notify
            .wait_ready(
                "svcd",
                || child.try_wait().ok().flatten(),
                || std::fs::read_to_string(&log).unwrap_or_default(),
            )
            .port();
        self.daemon = Some(Daemon { child, port, log });
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("daemon started")
    }

    fn port(&self) -> u16 {
        self.daemon.as_ref().expect("daemon started").port
    }

    fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
            .unwrap_or_default()
    }

    fn get(&self, path: &str) -> Resp {
        http(self.port(), "GET", path, &[], b"")
    }

    fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http(self.port(), "POST", path, &headers, body)
    }

    fn status(&self) -> NodeStatus {
        let r = self.get("/status");
        assert_eq!(r.code, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
    }

    fn service(&self, name: &str) -> ServiceStatus {
        let r = self.get(&format!("/status/{name}"));
        assert_eq!(r.code, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    fn svc(&self, args: &[&str]) -> Output {
        let out = self
            .t
            .svc(svc_bin().to_str().unwrap())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "svc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

#[test]
fn status_is_the_cli_tree_with_etags() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    c.idle_service("web");
    c.idle_service("db");
    c.t.write_service(
        "broken.toml",
        "[fs.1]\ndev = \"/x\"\nmnt = \"/y\"\ntype = \"ext4\"\nbogus_key = 1\n",
    );
    c.start_daemon(&[]);

    let r = c.get("/status");
    assert_eq!(r.code, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let node: NodeStatus = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(node.schema, berth_model::status::SCHEMA_VERSION);
    assert_eq!(node.nodename, "node1");
    let names: Vec<&str> = node.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["broken", "db", "web"]);
    let broken = &node.services[0];
    assert_eq!(broken.avail, Status::Undef);
    assert!(
        broken.error.as_deref().unwrap_or("").contains("bogus_key"),
        "{broken:?}"
    );
    assert_eq!(node.services[2].avail, Status::Down);
    assert_eq!(node.services[2].resources[0].rid.to_string(), "fs#1");

    // The same tree as the CLI's JSON.
    let out =
        c.t.svc(svc_bin().to_str().unwrap())
            .args(["--refresh", "--format", "json", "print", "status"])
            .output()
            .unwrap();
    let cli: NodeStatus = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(cli, node);

    // ETag / If-None-Match.
    let etag = r.header("etag").expect("an etag").to_string();
    let again = http(c.port(), "GET", "/status", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.code, 304, "{again:?}");
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = http(
        c.port(),
        "GET",
        "/status",
        &[("If-None-Match", "\"nope\"")],
        b"",
    );
    assert_eq!(other.code, 200);

    let one = c.get("/status/web");
    assert_eq!(one.code, 200);
    let web: ServiceStatus = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(web, node.services[2]);
    let tag = one.header("etag").unwrap().to_string();
    assert_eq!(
        http(
            c.port(),
            "GET",
            "/status/web",
            &[("If-None-Match", &tag)],
            b""
        )
        .code,
        304
    );
    assert_eq!(c.get("/status/nope").code, 404);
    assert_eq!(c.get("/healthz").code, 200);
    assert_eq!(c.get("/nowhere").code, 404);
    assert_eq!(http(c.port(), "DELETE", "/status", &[], b"").code, 405);
    assert_eq!(http(c.port(), "HEAD", "/status", &[], b"").code, 200);

    let m = c.get("/metrics");
    assert_eq!(m.code, 200);
    let text = m.text();
    for want in [
        "berth_service_up{service=\"web\"} 0",
        "berth_service_broken{service=\"broken\"} 1",
        "berth_resource_status{service=\"web\",rid=\"fs#1\",status=\"down\"} 1",
        "berth_node_memory_total_bytes ",
        "berth_agent_resident_bytes ",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
}

#[test]
fn actions_need_the_token() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    let mnt = c.fs_service("web", "", "");
    c.start_daemon(&[]);

    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some("s3cret-toke"),
        Some("s3cret-token2"),
    ] {
        let r = c.post("/services/web/actions/start", token, b"");
        assert_eq!(r.code, 401, "token {token:?}: {}", r.text());
        assert!(r.header("www-authenticate").is_some());
    }
    let r = http(
        c.port(),
        "POST",
        "/services/web/actions/start",
        &[("Authorization", TOKEN)],
        b"",
    );
    assert_eq!(r.code, 401, "a token without `Bearer` is refused");
    // An unknown service answers 401 too without the token: nothing is told to strangers.
    assert_eq!(c.post("/services/nope/actions/start", None, b"").code, 401);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!mounted(&mnt), "nothing may run without the token");
    assert!(!c.t.var_dir().join("web/last_action.json").exists());

    let r = c.post("/services/web/actions/start", Some(TOKEN), b"");
    assert_eq!(r.code, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["changed"][0], "fs#1");
    assert_eq!(v["status"]["avail"], "up");
    assert!(mounted(&mnt));
    assert_eq!(c.service("web").avail, Status::Up);

    // Bad requests with the right token.
    assert_eq!(
        c.post("/services/nope/actions/start", Some(TOKEN), b"")
            .code,
        404
    );
    assert_eq!(
        c.post("/services/web/actions/explode", Some(TOKEN), b"")
            .code,
        404
    );
    assert_eq!(
        c.post("/services/web/actions/start", Some(TOKEN), b"{not json")
            .code,
        400
    );
    assert_eq!(
        c.post("/services/web/actions/start", Some(TOKEN), b"{\"bogus\":1}")
            .code,
        400
    );
    let r = c.post(
        "/services/web/actions/start",
        Some(TOKEN),
        b"{\"rid\":\"fs#9\"}",
    );
    assert_eq!(r.code, 400, "{}", r.text());
    assert_eq!(c.get("/services/web/actions/start").code, 405);

    // A partial action, with options in the body.
    let r = c.post(
        "/services/web/actions/stopfs",
        Some(TOKEN),
        b"{\"rid\":\"fs#1\"}",
    );
    assert_eq!(r.code, 200, "{}", r.text());
    assert_eq!(r.json()["status"]["avail"], "down");
    assert!(!mounted(&mnt));
    let r = c.post("/services/web/actions/freeze", Some(TOKEN), b"");
    assert_eq!(r.code, 200, "{}", r.text());
    assert_eq!(r.json()["status"]["frozen"], true);
    assert!(c.t.var_dir().join("web/frozen").exists());
    let r = c.post("/services/web/actions/thaw", Some(TOKEN), b"");
    assert_eq!(r.json()["status"]["frozen"], false);
}

#[test]
fn world_readable_token_is_refused() {
    let mut c = Case::new("");
    let token = c.t.config_dir().join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (mut cmd, log, _sock) = c.command(&[]);
    let mut child = cmd.spawn().unwrap();
    let exited = wait_for(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    });
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("svcd kept running with a world-readable token");
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("world-readable"), "{text}");
    assert!(text.contains(&token.display().to_string()), "{text}");
    c.daemon = None;
}

/// A token written, rotated, chmod-ed or removed while svcd runs applies at once (no SIGHUP),
/// and every 401 says the real reason. An unknown action answers 404 once the token passed.
fn token_changes_apply_at_once(envs: &[(&str, &str)], token_dir: Option<&str>) {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    let token = match token_dir {
        Some(dir) => {
            let dir = c.t.path(dir);
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("action.token");
            std::fs::rename(c.t.config_dir().join("token"), &file).unwrap();
            std::fs::write(
                c.t.config_dir().join("node.toml"),
                format!(
                    "listen = \"127.0.0.1:0\"\nmonitor_interval = \"1h\"\ntoken_file = \"{}\"\n",
                    file.display()
                ),
            )
            .unwrap();
            file
        }
        None => c.t.config_dir().join("token"),
    };
    c.idle_service("web");
    c.start_daemon(envs);
    let probe = |t: &str| c.post("/services/web/actions/explode", Some(t), b"");
    let settle = |what: &str, t: &str, code: u16, says: &str| {
        wait_for(Duration::from_secs(5), || {
            let r = probe(t);
            r.code == code && r.text().contains(says)
        })
        .unwrap_or_else(|| {
            let r = probe(t);
            panic!("{what}: {} {}\n{}", r.code, r.text(), c.log())
        });
    };
    assert_eq!(probe(TOKEN).code, 404);

    // Rotated the way operations.md says (umask 077; a new file in place).
    std::fs::write(&token, "rotated-token\n").unwrap();
    settle(
        "new token after a rotation",
        "rotated-token",
        404,
        "unknown action",
    );
    let r = probe(TOKEN);
    assert_eq!(r.code, 401, "the old token after a rotation: {}", r.text());
    assert!(r.text().contains("wrong token"), "{}", r.text());

    // Made world-readable: refused, and the answer says so.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    settle(
        "world-readable token",
        "rotated-token",
        401,
        "world-readable (mode 0644)",
    );
    assert!(
        probe("rotated-token")
            .text()
            .contains(&token.display().to_string())
    );
    assert!(c.log().contains("world-readable"), "{}", c.log());

    // Private again: accepted.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    settle(
        "token made private again",
        "rotated-token",
        404,
        "unknown action",
    );

    // Removed: refused, naming the file.
    std::fs::remove_file(&token).unwrap();
    settle("token removed", "rotated-token", 401, "no token in");
    assert!(
        probe("rotated-token")
            .text()
            .contains(&token.display().to_string())
    );

    // Written afresh with the shell's umask (0644), then chmod-ed: the chmod alone applies it.
    std::fs::write(&token, "fresh-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    settle(
        "fresh world-readable token",
        "fresh-token",
        401,
        "world-readable",
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    settle(
        "fresh token made private",
        "fresh-token",
        404,
        "unknown action",
    );
}

#[test]
fn token_changes_apply_at_once_inotify() {
    token_changes_apply_at_once(&[], None);
}

#[test]
fn token_changes_apply_at_once_in_another_dir() {
    token_changes_apply_at_once(&[], Some("secrets"));
}

#[test]
fn token_changes_apply_at_once_polling() {
    token_changes_apply_at_once(&[("BERTH_SVCD_WATCH", "poll")], Some("secrets"));
}

fn cli_actions_show_within_a_second(envs: &[(&str, &str)]) {
    // Checks once an hour: only the watch on last_action.json can tell svcd in time.
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    let mnt = c.fs_service("web", "", "");
    c.idle_service("other");
    c.start_daemon(envs);
    assert_eq!(c.service("web").avail, Status::Down);

    c.svc(&["web", "start"]);
    let done = Instant::now();
    let seen = wait_for(Duration::from_secs(5), || {
        c.service("web").avail == Status::Up
    });
    let took = seen.map(|_| done.elapsed());
    assert!(
        took.is_some_and(|d| d < Duration::from_secs(1)),
        "start by the CLI seen after {took:?}\n{}",
        c.log()
    );
    assert!(mounted(&mnt));

    c.svc(&["web", "freeze"]);
    let done = Instant::now();
    wait_for(Duration::from_secs(5), || c.service("web").frozen).expect("freeze seen");
    assert!(
        done.elapsed() < Duration::from_secs(1),
        "freeze seen after {:?}",
        done.elapsed()
    );

    c.svc(&["web", "thaw"]);
    c.svc(&["web", "stop"]);
    let done = Instant::now();
    wait_for(Duration::from_secs(5), || {
        let s = c.service("web");
        s.avail == Status::Down && !s.frozen
    })
    .expect("stop and thaw seen");
    assert!(
        done.elapsed() < Duration::from_secs(1),
        "stop seen after {:?}",
        done.elapsed()
    );

    let m = c.get("/metrics").text();
    assert!(
        m.contains("berth_actions_total{service=\"web\",action=\"start\",result=\"ok\"} 1"),
        "{m}"
    );
}

#[test]
fn cli_actions_show_within_a_second_inotify() {
    cli_actions_show_within_a_second(&[]);
}

#[test]
fn cli_actions_show_within_a_second_polling() {
    cli_actions_show_within_a_second(&[("BERTH_SVCD_WATCH", "poll")]);
}

const INTERVAL: Duration = Duration::from_millis(500);
/// "Within two monitor intervals", plus a little for the restart itself on a loaded machine.
const REMOUNT_BOUND: Duration = Duration::from_millis(2 * 500 + 300);

fn remounted_in_time(c: &Case, mnt: &Path) {
    umount(mnt);
    let took = wait_for(Duration::from_secs(10), || mounted(mnt));
    assert!(
        took.is_some_and(|d| d <= REMOUNT_BOUND),
        "remounted after {took:?} (bound {REMOUNT_BOUND:?})\n{}",
        c.log()
    );
}

fn stays_down(c: &Case, mnt: &Path, what: &str) {
    std::thread::sleep(INTERVAL * 4);
    assert!(
        !mounted(mnt),
        "{what}: the monitor remounted it\n{}",
        c.log()
    );
}

#[test]
fn monitor_restarts_up_to_the_count() {
    let mut c = Case::new("monitor_interval = \"500ms\"\n");
    let mnt = c.fs_service("web", "", "monitor = true\nrestart = 2");
    let other = c.fs_service("plain", "", "");
    c.start_daemon(&[]);
    assert_eq!(
        c.post("/services/web/actions/start", Some(TOKEN), b"").code,
        200
    );
    c.svc(&["plain", "start"]);

    remounted_in_time(&c, &mnt);
    remounted_in_time(&c, &mnt);
    // The count (2) is spent: left down, and the tree says why.
    umount(&mnt);
    stays_down(&c, &mnt, "third failure");
    let web = c.service("web");
    let fs = &web.resources[0];
    assert_eq!(fs.status, Status::Down);
    assert!(
        fs.log
            .iter()
            .any(|l| l.level == Level::Warn && l.message.contains("restarted 2 of 2")),
        "{web:?}"
    );
    assert_eq!(web.overall, Status::Warn);
    let m = c.get("/metrics").text();
    assert!(
        m.contains("berth_monitor_restarts_total{service=\"web\",rid=\"fs#1\"} 2"),
        "{m}"
    );

    // An unmonitored resource is never restarted.
    umount(&other);
    stays_down(&c, &other, "unmonitored fs");

    // An operator start resets the count.
    c.svc(&["web", "start"]);
    assert!(mounted(&mnt));
    wait_for(Duration::from_secs(2), || {
        c.service("web").avail == Status::Up
    })
    .expect("up again");
    remounted_in_time(&c, &mnt);

    // What the operator stops stays stopped.
    c.svc(&["web", "stop"]);
    stays_down(&c, &mnt, "operator stop");
}

/// `svc web logs` tells what svcd did to the service, in the CLI's format, each line headed by
/// who acted: an action asked over HTTP (and by whom), then a monitor restart of the fs
/// unmounted behind svcd's back (why, its lines, how it went), between the CLI's own actions,
/// whose lines stay as they were.
#[test]
fn svcd_actions_are_in_the_service_log() {
    let mut c = Case::new("monitor_interval = \"500ms\"\n");
    let mnt = c.fs_service("web", "", "monitor = true\nrestart = 2");
    c.svc(&["web", "stop"]);
    c.start_daemon(&[]);
    let r = c.post(
        "/services/web/actions/start",
        Some(TOKEN),
        b"{\"waitlock\": 5}",
    );
    assert_eq!(r.code, 200, "{}", r.text());
    assert!(mounted(&mnt));
    umount(&mnt);
    assert!(
        wait_for(Duration::from_secs(10), || mounted(&mnt)).is_some(),
        "not remounted:\n{}",
        c.log()
    );
    let logs = || String::from_utf8_lossy(&c.svc(&["web", "logs"]).stdout).into_owned();
    assert!(
        wait_for(Duration::from_secs(10), || logs()
            .contains("svcd monitor: restart of fs#1 done"))
        .is_some(),
        "{}\n{}",
        logs(),
        c.log()
    );
    c.svc(&["web", "stop"]);
    let logs = logs();
    // The lines after the date and time.
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.as_bytes().get(4) == Some(&b'-'))
        .map(|l| &l[20..])
        .collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in:\n{logs}"))
    };
    let http = at(
        "INFO    WEB                        svcd http: start --waitlock 5 requested by 127.0.0.1:",
    );
    let http_mount = at("INFO    WEB.FS#1                   svcd http: mount -t ext4");
    let http_done = at("INFO    WEB                        svcd http: start --waitlock 5: done");
    let down = at(
        "WARNING WEB.FS#1                   svcd monitor: went down (it was up since the last action): restart 1 of 2",
    );
    let restart_mount = lines
        .iter()
        .rposition(|l| l.contains("WEB.FS#1                   svcd monitor: mount -t ext4"))
        .unwrap_or_else(|| panic!("no monitor mount in:\n{logs}"));
    let restarted = at("INFO    WEB                        svcd monitor: restart of fs#1 done");
    let cli = lines
        .iter()
        .rposition(|l| *l == "INFO    WEB                        svc web stop")
        .unwrap_or_else(|| panic!("no CLI stop in:\n{logs}"));
    assert!(
        http < http_mount
            && http_mount < http_done
            && http_done < down
            && down < restart_mount
            && restart_mount < restarted
            && restarted < cli,
        "{logs}"
    );
    // The CLI's lines are as they were: no origin, its command line and outcome.
    assert!(
        lines[cli..]
            .iter()
            .any(|l| l.ends_with("svc web stop: done"))
            && lines[cli..]
                .iter()
                .any(|l| l.starts_with("INFO    WEB.FS#1                   umount ")),
        "{logs}"
    );
}

/// An operator's stop that takes a while (a holder of the second fs ignores TERM): the
/// monitored fs it took down first is no failure. Nothing of the monitor in the service's log
/// (before: "went down ... restart 1 of 3" and "restart deferred" in the middle of the stop),
/// and the fs stays down.
#[test]
fn an_operators_stop_is_not_a_failure() {
    let mut c = Case::new("monitor_interval = \"200ms\"\n");
    for name in ["deep", "slow"] {
        ext4_image(&c.t.path(&format!("{name}.img")), 8);
    }
    let deep = c.t.path("mnt/a/deep");
    let slow = c.t.path("mnt/slow");
    c.t.write_service(
        "web.toml",
        &format!(
            "[service]\nnodes = [\"node1\"]\n\
             [fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\nmonitor = true\nrestart = 3\n\
             [fs.2]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\nstop_timeout = \"10s\"\n",
            c.t.path("deep.img").display(),
            deep.display(),
            c.t.path("slow.img").display(),
            slow.display()
        ),
    );
    c.start_daemon(&[]);
    c.svc(&["web", "start"]);
    wait_for(Duration::from_secs(10), || {
        c.service("web").avail == Status::Up
    })
    .expect("svcd sees web up");
    // Armed: a check after the start saw fs#1 up.
    std::thread::sleep(INTERVAL);
    // Holds the slow fs and ignores TERM: the stop waits for the KILL (a fifth of 10 s).
    let mut holder = Command::new("sh")
        .args(["-c", "trap '' TERM; while :; do sleep 0.1; done"])
        .current_dir(&slow)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    let out = c.svc(&["web", "stop"]);
    let took = began.elapsed();
    let _ = holder.wait();
    assert!(
        took >= Duration::from_secs(1),
        "the stop was too quick to overlap checks ({took:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(INTERVAL * 3);
    assert!(!mounted(&deep), "the monitor remounted it\n{}", c.log());
    let logs = String::from_utf8_lossy(&c.svc(&["web", "logs"]).stdout).into_owned();
    assert!(!logs.contains("svcd monitor"), "{logs}\n{}", c.log());
}

#[test]
fn frozen_service_is_left_alone() {
    let mut c = Case::new("monitor_interval = \"500ms\"\n");
    let mnt = c.fs_service("web", "", "monitor = true\nrestart = 5");
    c.start_daemon(&[]);
    assert_eq!(
        c.post("/services/web/actions/start", Some(TOKEN), b"").code,
        200
    );
    assert_eq!(
        c.post("/services/web/actions/freeze", Some(TOKEN), b"")
            .code,
        200
    );
    umount(&mnt);
    stays_down(&c, &mnt, "frozen");
    let web = c.service("web");
    assert!(web.frozen);
    // Thawed (by the CLI), the monitor takes it back.
    c.svc(&["web", "thaw"]);
    let took = wait_for(Duration::from_secs(10), || mounted(&mnt));
    assert!(
        took.is_some_and(|d| d <= REMOUNT_BOUND + Duration::from_secs(1)),
        "{took:?}\n{}",
        c.log()
    );
}

#[test]
fn sigterm_leaves_services_up() {
    let mut c = Case::new("monitor_interval = \"500ms\"\n");
    let mnt = c.fs_service("web", "", "monitor = true\nrestart = 1");
    c.start_daemon(&[]);
    assert_eq!(
        c.post("/services/web/actions/start", Some(TOKEN), b"").code,
        200
    );
    let pid = c.daemon().child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let d = c.daemon();
    wait_for(Duration::from_secs(20), || {
        d.child.try_wait().unwrap().is_some()
    })
    .expect("svcd exits on SIGTERM");
    assert_eq!(d.child.wait().unwrap().code(), Some(0));
    assert!(mounted(&mnt), "SIGTERM must leave the services up");
    let log = c.log();
    assert!(log.contains("SIGTERM"), "{log}");
}

/// A second svcd on the same var dir (on another port) refuses to run, naming the first's pid,
/// and leaves the first its local socket (before, both ran and the second took svcd.sock).
#[test]
fn a_second_svcd_on_one_var_dir_refuses_naming_the_first() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    c.idle_service("web");
    c.start_daemon(&[]);
    let first = c.daemon().child.id();
    let socket = c.t.run_dir().join("svcd.sock");
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&socket).unwrap());
    let before = inode();
    let log = c.t.path("second.log");
    let (mut cmd, _, _notify) = c.command(&[]);
    let mut second = cmd
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let code = wait_for(Duration::from_secs(20), || {
        second.try_wait().unwrap().is_some()
    });
    if code.is_none() {
        let _ = second.kill();
        let _ = second.wait();
        panic!(
            "the second svcd runs:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    assert_eq!(second.wait().unwrap().code(), Some(1));
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains(&format!("another svcd (pid {first}) runs on the var dir")),
        "{err}"
    );
    assert_eq!(inode(), before, "the first's socket was replaced");
    assert_eq!(c.get("/healthz").code, 200);
}

#[test]
fn autostart_on_this_node_only() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    let mine = c.fs_service("mine", "autostart_node = \"node1\"", "");
    let theirs = c.fs_service("theirs", "autostart_node = \"node2\"", "");
    let frozen = c.fs_service("frozen", "autostart_node = \"node1\"", "");
    std::fs::create_dir_all(c.t.var_dir().join("frozen")).unwrap();
    std::fs::write(c.t.var_dir().join("frozen/frozen"), b"").unwrap();
    c.start_daemon(&[]);
    wait_for(Duration::from_secs(10), || mounted(&mine)).expect("autostarted");
    wait_for(Duration::from_secs(5), || {
        c.service("mine").avail == Status::Up
    })
    .expect("autostart in the tree");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!mounted(&theirs), "autostart_node is node2");
    assert!(!mounted(&frozen), "frozen services are not autostarted");
}

#[test]
fn broken_files_and_reloads() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    c.idle_service("web");
    c.t.write_service("db.toml", "[fs.1]\nmnt = \n");
    c.start_daemon(&[]);
    let node = c.status();
    let db = node.services.iter().find(|s| s.name == "db").unwrap();
    assert!(db.error.is_some());
    assert_eq!(
        node.services
            .iter()
            .find(|s| s.name == "web")
            .unwrap()
            .avail,
        Status::Down
    );

    // Fixed, added, removed: seen without a signal.
    c.idle_service("db");
    c.idle_service("new");
    std::fs::remove_file(c.t.config_dir().join("services/web.toml")).unwrap();
    wait_for(Duration::from_secs(5), || {
        let n = c.status();
        let names: Vec<&str> = n.services.iter().map(|s| s.name.as_str()).collect();
        names == ["db", "new"] && n.services.iter().all(|s| s.error.is_none())
    })
    .unwrap_or_else(|| panic!("reload not seen: {:?}\n{}", c.status(), c.log()));

    // Broken again: that service only.
    c.t.write_service("new.toml", "garbage [[[");
    wait_for(Duration::from_secs(5), || c.service("new").error.is_some()).expect("broken seen");
    assert!(c.service("db").error.is_none());

    // SIGHUP re-reads node.toml.
    std::fs::write(
        c.t.config_dir().join("node.toml"),
        "listen = \"127.0.0.1:0\"\nmonitor_interval = \"300ms\"\n",
    )
    .unwrap();
    let pid = c.daemon().child.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        c.log().contains("checks every 300ms")
    })
    .unwrap_or_else(|| panic!("reload not logged:\n{}", c.log()));
    assert_eq!(c.get("/healthz").code, 200);
}

#[test]
fn hostile_clients_do_not_hurt() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    c.idle_service("web");
    c.start_daemon(&[]);
    let port = c.port();

    // Slow clients: each sends half a request line and stalls.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /sta").unwrap();
            s
        })
        .collect();
    // Meanwhile others are served, promptly.
    let t = Instant::now();
    for _ in 0..20 {
        assert_eq!(c.get("/status").code, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "served slowly: {:?}",
        t.elapsed()
    );
    // And the slow ones are cut off after the header timeout.
    let mut s = slow.into_iter().next().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "slow client kept {:?}",
        t.elapsed()
    );

    // Malformed.
    let r = raw_request(port, b"GARBAGE\r\n\r\n");
    assert_eq!(r.code, 400, "{r:?}");
    let r = raw_request(
        port,
        b"GET /status HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    );
    assert_eq!(r.code, 400, "{r:?}");
    // Oversized headers.
    let big = "x".repeat(20 * 1024);
    let r = http(port, "GET", "/status", &[("X-Big", &big)], b"");
    assert_eq!(r.code, 431, "{r:?}");
    // Oversized bodies, declared or chunked.
    let auth = format!("Bearer {TOKEN}");
    let body = vec![b'a'; 100 * 1024];
    let r = http(
        port,
        "POST",
        "/services/web/actions/start",
        &[("Authorization", &auth)],
        &body,
    );
    assert_eq!(r.code, 413, "{r:?}");
    let mut raw = format!(
        "POST /services/web/actions/start HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..20 {
        raw.extend_from_slice(b"1000\r\n");
        raw.extend_from_slice(&[b' '; 0x1000]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = raw_request(port, &raw);
    assert_eq!(r.code, 413, "{r:?}");
    // A body that never comes.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        format!(
            "POST /services/web/actions/start HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Length: 10\r\nConnection: close\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.get("/status").code, 200, "served while a body trickles");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert_eq!(Resp::parse(&buf).code, 408);

    // Still alive and well.
    assert_eq!(c.get("/healthz").code, 200);
    assert!(c.daemon().child.try_wait().unwrap().is_none());
    assert!(
        !c.t.var_dir().join("web/last_action.json").exists(),
        "no action ran"
    );
}

/// A monitored container killed behind svcd's back is restarted within two monitor intervals,
/// up to its `restart` count, and the private dockerd it runs in is reused.
#[test]
fn monitor_restarts_a_killed_container() {
    let mut c = Case::new("monitor_interval = \"1s\"\n");
    let img = c.t.path("data.img");
    ext4_image(&img, 256);
    let data = c.t.path("srv/appdata");
    c.t.write_service(
        "app.toml",
        &format!(
            "[service]\nnodes = [\"node1\"]\ndocker_data_dir = \"{d}\"\n\n[fs.1]\ndev = \"{i}\"\n\
             mnt = \"{d}\"\ntype = \"ext4\"\n\n[container.1]\nrun_image = \"busybox:latest\"\n\
             run_command = \"sleep 1000000\"\nmonitor = true\nrestart = 1\n",
            d = data.display(),
            i = img.display()
        ),
    );
    c.svc(&["app", "startfs"]);
    let tar = berth_testkit::busybox_tar(&c.t.path("rootfs"));
    let mut import =
        c.t.svc(svc_bin().to_str().unwrap())
            .args(["app", "docker", "import", "-", "busybox:latest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
    import.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(import.wait().unwrap().success(), "docker import");
    c.svc(&["app", "start"]);
    c.start_daemon(&[]);
    let container_up = |c: &Case| {
        c.service("app")
            .resources
            .iter()
            .any(|r| r.rid.to_string() == "container#1" && r.status == Status::Up)
    };
    assert!(wait_for(Duration::from_secs(5), || container_up(&c)).is_some());
    // Let the monitor see it up (armed) before it dies.
    std::thread::sleep(Duration::from_millis(1500));

    c.svc(&["app", "docker", "kill", "app.container.1"]);
    let took = wait_for(Duration::from_secs(10), || {
        c.get("/status/app")
            .text()
            .contains("restarted 1 of 1 times")
            && container_up(&c)
    });
    let took = took.unwrap_or_else(|| panic!("not restarted:\n{}", c.log()));
    assert!(
        took < Duration::from_secs(3),
        "restarted after {took:?}\n{}",
        c.log()
    );

    // The count is spent: a second kill leaves it down, and the tree says why.
    std::thread::sleep(Duration::from_millis(1500));
    c.svc(&["app", "docker", "kill", "app.container.1"]);
    let gave_up = wait_for(Duration::from_secs(6), || {
        c.get("/status/app")
            .text()
            .contains("left down until an operator start")
    });
    assert!(
        gave_up.is_some(),
        "{}\n{}",
        c.get("/status/app").text(),
        c.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!container_up(&c), "restarted beyond its count");
    c.svc(&["app", "stop"]);
}

/// A client that pipelines requests and never reads the answers loses its connection once the
/// answers have made no progress for svcd's write timeout (10 s), instead of holding it forever;
/// others are served meanwhile.
#[test]
fn a_client_that_stops_reading_is_dropped() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    for n in 0..50 {
        c.idle_service(&format!("s{n:02}"));
    }
    c.start_daemon(&[]);
    let body_len = c.get("/status").body.len();
    assert!(body_len > 10_000, "{body_len}");
    let requests = 1000;
    let mut s = TcpStream::connect(("127.0.0.1", c.port())).unwrap();
    let mut writer = s.try_clone().unwrap();
    let pipelined = std::thread::spawn(move || {
        let one = b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n";
        for _ in 0..requests {
            if writer.write_all(one).is_err() {
                break;
            }
        }
    });
    // Far more than the socket buffers hold is now waiting to be read; nobody reads it.
    std::thread::sleep(Duration::from_secs(3));
    let r = c.get("/healthz");
    assert_eq!(r.code, 200, "others are served while one client stalls");
    std::thread::sleep(Duration::from_secs(11));
    // Past the write timeout: what is left is the buffered answers, then the end of the stream.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection was not closed: {e} after {} bytes",
                got.len()
            ),
        }
    }
    let answers = String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200")
        .count();
    assert!(
        answers < requests,
        "all {answers} answers were sent: the stalled write was not cut"
    );
    let _ = pipelined.join();
}

/// `GET /status` with `Accept-Encoding: gzip`: the compressed form of the same body, its own
/// ETag, 304 on either tag; without the header, the body as it is.
#[test]
fn status_is_gzipped_for_clients_that_accept_it() {
    use std::io::Read as _;
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    for i in 0..6 {
        c.idle_service(&format!("svc{i}"));
    }
    c.start_daemon(&[]);
    let plain = c.get("/status");
    assert_eq!(plain.code, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let gz = http(
        c.port(),
        "GET",
        "/status",
        &[("Accept-Encoding", "gzip, deflate")],
        b"",
    );
    assert_eq!(gz.code, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        gz.body.len() < plain.body.len(),
        "{} >= {}",
        gz.body.len(),
        plain.body.len()
    );
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain.body);
    let (tag, gz_tag) = (plain.header("etag").unwrap(), gz.header("etag").unwrap());
    assert_ne!(tag, gz_tag);
    for t in [tag, gz_tag] {
        let again = http(
            c.port(),
            "GET",
            "/status",
            &[("Accept-Encoding", "gzip"), ("If-None-Match", t)],
            b"",
        );
        assert_eq!(again.code, 304, "{t}");
        assert_eq!(again.header("etag"), Some(gz_tag));
    }
    let refused = http(
        c.port(),
        "GET",
        "/status",
        &[("Accept-Encoding", "gzip;q=0")],
        b"",
    );
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.body, plain.body);
}

/// `svc print status` while svcd runs: svcd's tree over `<run>/svcd.sock`, said in a header
/// line, the same tree as a real check; `--refresh` checks by itself; an action is seen at once;
/// a killed svcd (its socket left behind) means a real check.
#[test]
fn print_status_reads_svcds_tree_over_its_socket() {
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    let mnt = c.fs_service("web", "", "");
    c.idle_service("db");
    // The files were written a minute ago: svcd's first check is surely after them (the CLI
    // counts a change less than 20 ms before a check as after it: file times are coarse).
    let a_minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    let config = c.t.config_dir();
    for p in [
        config.join("node.toml"),
        config.join("services/web.toml"),
        config.join("services/db.toml"),
        config.join("services"),
    ] {
        let o = Command::new("touch")
            .arg("-d")
            .arg(format!("@{a_minute_ago}"))
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success(), "touch {}", p.display());
    }
    c.start_daemon(&[]);
    let socket = c.t.run_dir().join("svcd.sock");
    assert!(socket.exists());
    let text = |o: Output| String::from_utf8(o.stdout).unwrap();

    let via = text(c.svc(&["web", "print", "status"]));
    assert!(via.starts_with("# from svcd, checked "), "{via}");
    let real = text(c.svc(&["web", "print", "status", "--refresh"]));
    assert!(!real.contains("# from svcd"), "{real}");
    assert_eq!(via.split_once('\n').unwrap().1, real);
    let node = text(c.svc(&["print", "status"]));
    assert!(node.starts_with("# from svcd"), "{node}");
    let json_via = text(c.svc(&["--format", "json", "print", "status"]));
    let json_real = text(c.svc(&["--refresh", "--format", "json", "print", "status"]));
    let (a, b): (NodeStatus, NodeStatus) = (
        serde_json::from_str(&json_via).unwrap(),
        serde_json::from_str(&json_real).unwrap(),
    );
    assert_eq!(a, b);

    // An action through the CLI: the next print status shows it, from svcd or by itself.
    c.svc(&["web", "start"]);
    let after = text(c.svc(&["web", "print", "status"]));
    assert!(after.contains("overall                   up"), "{after}");

    // svcd killed: the socket stays behind, nobody answers, svc checks by itself.
    let pid = i32::try_from(c.daemon().child.id()).unwrap();
    berth_testkit::signal(pid, libc::SIGKILL);
    let _ = c.daemon().child.wait();
    assert!(socket.exists());
    let alone = text(c.svc(&["web", "print", "status"]));
    assert!(!alone.contains("# from svcd"), "{alone}");
    assert!(alone.contains("overall                   up"), "{alone}");
    c.svc(&["web", "stop"]);
    assert!(!berth_testkit::mounted(&mnt));
}

/// GET `path` on a new connection, every step (connect, write, each read) within what is left
/// of `bound`: an answer that takes longer is an error, not a slow success.
fn bounded_get(port: u16, path: &str, bound: Duration) -> Result<Resp, String> {
    let deadline = Instant::now() + bound;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("GET {path}: no answer within {bound:?}"))
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, left()?).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("GET {path}: write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1 << 16];
    loop {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("GET {path}: read after {} bytes: {e}", buf.len())),
        }
    }
    Ok(Resp::parse(&buf))
}

/// The accept queue of the loopback listener on `port` (`/proc/net/tcp`: a LISTEN socket's
/// rx_queue is the number of connections waiting for `accept`).
fn listen_queue(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| {
                f.get(4)?
                    .split_once(':')
                    .map(|(_, rx)| u64::from_str_radix(rx, 16).ok())
            })
            .flatten()
            .flatten()
    })
}

/// Raise this process's open-files limit to at least `n` (root may raise the hard limit).
fn allow_open_files(n: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < n {
        setrlimit(Resource::RLIMIT_NOFILE, n, hard.max(n)).unwrap();
    }
}

/// 5000 idle connections (more than the 1024 slots, and more than the listen backlog behind
/// them) do not starve the endpoint: /healthz and /status each answer within 100 ms, because a
/// new connection sheds the oldest idle one. They used to wait in the backlog behind the idle
/// ones until the header timeout freed slots (/healthz failed 5 times in a row over 5.8 s with
/// 2000 idle). 4000 are opened at once, then the last 1000 at a steady 500 per second (more
/// than the 200 per second the header timeout frees), and the endpoint is asked meanwhile.
#[test]
fn idle_connections_do_not_starve_healthz_and_status() {
    let idle_count = 5000;
    allow_open_files(idle_count as u64 + 1024);
    let mut c = Case::new("monitor_interval = \"1h\"\n");
    c.idle_service("web");
    c.start_daemon(&[]);
    let port = c.port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let open = move |n: usize, t: usize| {
        TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("idle connection {n} of thread {t} not accepted: {e}"))
    };
    let burst: Vec<_> = (0..20)
        .map(|t| std::thread::spawn(move || (0..200).map(|n| open(n, t)).collect::<Vec<_>>()))
        .collect();
    let mut idle: Vec<TcpStream> = burst.into_iter().flat_map(|t| t.join().unwrap()).collect();
    // svcd accepts the burst (the kernel queued it): then the steady flood begins.
    let drained = wait_for(Duration::from_secs(20), || listen_queue(port) == Some(0));
    assert!(drained.is_some(), "accept queue: {:?}", listen_queue(port));
    let steady = std::thread::spawn(move || {
        (0..1000)
            .map(|n| {
                let s = open(n, 99);
                std::thread::sleep(Duration::from_millis(2));
                s
            })
            .collect::<Vec<_>>()
    });
    let mut failures = Vec::new();
    let mut ask = |when: &str| {
        for path in ["/healthz", "/status"] {
            match bounded_get(port, path, Duration::from_millis(100)) {
                Ok(r) if r.code == 200 => {}
                Ok(r) => failures.push(format!("{when}: {path}: {r:?}")),
                Err(e) => failures.push(format!("{when}: {e}")),
            }
        }
    };
    // While the last 1000 come in...
    let mut round = 0;
    while !steady.is_finished() {
        round += 1;
        ask(&format!("round {round}, while connections come in"));
        std::thread::sleep(Duration::from_millis(100));
    }
    idle.extend(steady.join().unwrap());
    assert_eq!(idle.len(), idle_count);
    // ...and with all 5000 open.
    for round in 1..=5 {
        ask(&format!("round {round}, {idle_count} open"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The oldest idle connections were shed (closed by svcd); a new idle one is kept and
    // served when it sends its request.
    let mut oldest = &idle[0];
    oldest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(oldest.read(&mut byte), Ok(0) | Err(_)),
        "the oldest idle connection is still open"
    );
    let mut newest = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    newest
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    newest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = newest.read_to_end(&mut buf);
    assert_eq!(Resp::parse(&buf).code, 200);
    drop(idle);
    assert!(c.daemon().child.try_wait().unwrap().is_none());
}

/// `man svcd` says what an operator needs beyond the options: the environment, the endpoint, the
/// signals and the exit codes (as docs/operations.md does).
#[test]
fn man_svcd_has_environment_endpoint_signals_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(SVCD)
        .arg("--generate-man")
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(d.path().join("svcd.1")).unwrap();
    let at = |s: &str| {
        page.find(s)
            .unwrap_or_else(|| panic!("{s:?} not in svcd.1:\n{page}"))
    };
    let order = [
        ".SH OPTIONS",
        ".SH ENVIRONMENT",
        ".SH ENDPOINT",
        ".SH SIGNALS",
        ".SH \"EXIT STATUS\"",
        ".SH VERSION",
        ".SH FILES",
    ];
    let places: Vec<usize> = order.iter().map(|s| at(s)).collect();
    assert!(places.windows(2).all(|w| w[0] < w[1]), "{order:?}: {page}");
    for needle in [
        "\\fBSVCD_LOG\\fR",
        "\\fBBERTH_NODENAME\\fR",
        "\\fBBERTH_SVCD_WATCH=poll\\fR",
        "127.0.0.1:1215",
        "\\fBPOST /services/SVC/actions/ACTION\\fR",
        "\\fBSIGHUP\\fR",
        "world\\-readable token file",
    ] {
        at(needle);
    }
}
