//! Fixtures for the collector's tests: real svcd processes on loopback ports (each in its own
//! TempBerth), a real berth-collector process, a test CA (rcgen), plain HTTP over std sockets.
//! Every process is killed on drop, before its directories are removed.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::daemon::Notify;
pub use berth_testkit::daemon::{Resp, get, wait_for};
use berth_testkit::{TempBerth, ext4_image, require_root};

pub const COLLECTOR: &str = env!("CARGO_BIN_EXE_berth-collector");
pub const READ_TOKEN: &str = "read-s3cret";

/// A binary built next to berth-collector (`cargo test --workspace` builds them all).
pub fn sibling(name: &str) -> PathBuf {
    let p = Path::new(COLLECTOR).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p berth-agent -p berth-cli` first (scripts/test.sh builds it)",
        p.display()
    );
    p
}

/// A test CA and the certificates it signs.
pub struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        Ca { cert, issuer }
    }

    /// Write the CA certificate (PEM) to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }

    /// A server certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
    pub fn server_cert(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A running svcd, killed on drop.
pub struct Daemon {
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node: its dirs and its svcd. Field order matters: the daemon dies before the dirs go.
pub struct Node {
    pub daemon: Option<Daemon>,
    pub name: String,
    pub port: u16,
    pub tls: bool,
    pub t: TempBerth,
}

impl Node {
    /// A node named `name`; `tls` gives it a certificate from `ca` and a read token.
    pub fn new(name: &str, tls: Option<&Ca>) -> Node {
        require_root();
        let t = TempBerth::new();
        let mut toml = String::from("monitor_interval = \"1s\"\n");
        if let Some(ca) = tls {
            let (cert, key) = ca.server_cert();
            std::fs::write(t.path("node.pem"), cert).unwrap();
            std::fs::write(t.path("node.key"), key).unwrap();
            toml.push_str(&format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                t.path("node.pem").display(),
                t.path("node.key").display()
            ));
            let rt = t.config_dir().join("read-token");
            std::fs::write(&rt, format!("{READ_TOKEN}\n")).unwrap();
            std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(
            t.config_dir().join("node.toml"),
            format!("listen = \"127.0.0.1:0\"\n{toml}"),
        )
        .unwrap();
        Node {
            daemon: None,
            name: name.into(),
            port: 0,
            tls: tls.is_some(),
            t,
        }
    }

    /// The URL the collector polls.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A service `name` that is never up (its image does not exist).
    pub fn idle_service(&self, name: &str) {
        self.t.write_service(
            &format!("{name}.toml"),
            &format!(
                "[service]\nnodes = [\"{n}\"]\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                self.t.path(&format!("{name}.img")).display(),
                self.t.path(&format!("mnt/{name}")).display(),
                n = self.name
            ),
        );
    }

    /// A service `name` with one fs on a fresh 8 MiB image; `extra` goes in `[service]`.
    pub fn fs_service(&self, name: &str, extra: &str) {
        let img = self.t.path(&format!("{name}.img"));
        ext4_image(&img, 8);
        self.t.write_service(
            &format!("{name}.toml"),
            &format!(
                "[service]\nnodes = [\"{n}\"]\n{extra}\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                img.display(),
                self.t.path(&format!("mnt/{name}")).display(),
                n = self.name
            ),
        );
    }

    /// A docker service `name` (fs + one busybox container, image imported), started.
    pub fn docker_service(&self, name: &str, app: &str) {
        let img = self.t.path(&format!("{name}.img"));
        ext4_image(&img, 256);
        let data = self.t.path(&format!("srv/{name}"));
        self.t.write_service(
            &format!("{name}.toml"),
            &format!(
                "[service]\nnodes = [\"{n}\"]\napp = \"{app}\"\nenv = \"TST\"\ndocker_data_dir = \"{d}\"\n\n\
                 [fs.1]\ndev = \"{i}\"\nmnt = \"{d}\"\ntype = \"ext4\"\n\n[container.1]\n\
                 run_image = \"busybox:latest\"\nrun_command = \"sleep 1000000\"\nstop_timeout = \"2s\"\n",
                d = data.display(),
                i = img.display(),
                n = self.name
            ),
        );
        self.svc(&[name, "startfs"]);
        let tar = berth_testkit::busybox_tar(&self.t.path(&format!("rootfs-{name}")));
        let mut import = self
            .svc_cmd()
            .args([name, "docker", "import", "-", "busybox:latest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        import.stdin.take().unwrap().write_all(&tar).unwrap();
        assert!(import.wait().unwrap().success(), "docker import");
        self.svc(&[name, "start"]);
    }

    pub fn svc_cmd(&self) -> Command {
        let mut c = self.t.svc(sibling("svc").to_str().unwrap());
        c.env("BERTH_NODENAME", &self.name);
        c
    }

    /// Run `svc ARGS` on this node; it must succeed.
    pub fn svc(&self, args: &[&str]) -> Output {
        let out = self.svc_cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "svc {args:?} on {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start svcd and wait for its READY=1 (it carries the port). A restart reuses the port.
    pub fn start(&mut self) {
        if self.port != 0 {
            let path = self.t.config_dir().join("node.toml");
            let text = std::fs::read_to_string(&path).unwrap().replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{}\"", self.port),
            );
            std::fs::write(&path, text).unwrap();
        }
        let notify = Notify::bind(&self.t.path("notify.sock"));
        let log = self.t.path("svcd.log");
        let mut child = spawn_logged(
            Command::new(sibling("svcd"))
                .env("BERTH_CONFIG_DIR", self.t.config_dir())
                .env("BERTH_VAR_DIR", self.t.var_dir())
                .env("BERTH_RUN_DIR", self.t.run_dir())
                .env("BERTH_NODENAME", &self.name)
                .env("NOTIFY_SOCKET", notify.path()),
            &log,
        );
        let port = notify
            .wait_ready(
                &format!("svcd {}", self.name),
                || child.try_wait().ok().flatten(),
                || std::fs::read_to_string(&log).unwrap_or_default(),
            )
            .port();
        self.port = port;
        self.daemon = Some(Daemon { child });
    }

    /// Kill svcd (SIGKILL).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.daemon.as_ref().expect("started").child.id()).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.t.path("svcd.log")).unwrap_or_default()
    }
}

/// A running berth-collector, killed on drop.
pub struct Collector {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The collector.toml for `nodes`: `(name, url, extra keys)`.
pub fn collector_toml(db: &Path, ca: Option<&Path>, nodes: &[(String, String, String)]) -> String {
    let mut s = format!(
        "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\ninterval = \"500ms\"\ntimeout = \"3s\"\n\
         stale_after = \"2s\"\nmax_backoff = \"1s\"\nchargeback_period = \"1s\"\nmax_body_bytes = 262144\n",
        db.display()
    );
    if let Some(ca) = ca {
        s.push_str(&format!("ca = \"{}\"\n", ca.display()));
    }
    for (name, url, extra) in nodes {
        s.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}"
        ));
    }
    s
}

impl Collector {
    /// Start berth-collector with the config text `toml` written to `dir/collector.toml`, and
    /// wait for it to listen (its log line says where).
    pub fn start(dir: &Path, toml: &str) -> Collector {
        let config = dir.join("collector.toml");
        std::fs::write(&config, toml).unwrap();
        let log = dir.join(format!(
            "collector-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = spawn_logged(Command::new(COLLECTOR).arg("--config").arg(&config), &log);
        let mut c = Collector {
            child: Some(child),
            port: 0,
            log,
            config,
        };
        let found = wait_for(Duration::from_secs(20), || {
            let text = c.log_text();
            if let Some(port) = text
                .split(" on http://127.0.0.1:")
                .nth(1)
                .or_else(|| text.split(" on https://127.0.0.1:").nth(1))
                .and_then(|r| r.split(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                c.port = port;
                return true;
            }
            assert!(
                c.child.as_mut().unwrap().try_wait().unwrap().is_none(),
                "berth-collector exited:\n{text}"
            );
            false
        });
        assert!(
            found.is_some(),
            "collector not listening:\n{}",
            c.log_text()
        );
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Resp {
        get(self.port, path, &[])
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.code, 200, "{path}: {}", r.text());
        r.json()
    }

    /// SIGTERM, and wait for it to exit cleanly.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        berth_testkit::signal(i32::try_from(child.id()).unwrap(), libc_sigterm());
        let st = child.wait().unwrap();
        assert!(st.success(), "collector exit {st}:\n{}", self.log_text());
    }

    /// SIGKILL: a crash, nothing written on the way out.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The events, newest first.
    pub fn events(&self, query: &str) -> Vec<serde_json::Value> {
        self.json(&format!("/api/events?limit=1000&{query}"))["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait (10 s) until `/api/fleet` shows `svc` on `node` with the availability `avail`.
    pub fn wait_avail(&self, svc: &str, node: &str, avail: &str) {
        let seen = wait_for(Duration::from_secs(10), || {
            self.json("/api/fleet")["services"][svc]["nodes"][node]["avail"] == avail
        });
        let fleet = || self.get("/api/fleet").text();
        assert!(seen.is_some(), "{svc} not {avail} on {node}: {}", fleet());
    }

    /// Wait (10 s) until node `name` is stale (`stale`), or polled again and reachable.
    pub fn wait_stale(&self, name: &str, stale: bool) {
        let seen = wait_for(Duration::from_secs(10), || {
            let n = self.node(name);
            n["stale"] == stale && (stale || n["reachable"] == true)
        });
        let (node, log) = (self.node(name), self.log_text());
        assert!(seen.is_some(), "{name} not stale={stale}: {node}\n{log}");
    }

    /// Node `name` went `old` -> `new` (an event), and `/metrics` counts `count` nodes `new`.
    pub fn assert_node_moved(&self, name: &str, old: &str, new: &str, count: usize) {
        let events = self.events(&format!("node={name}"));
        assert!(
            has_event(&events, name, None, Some(old), Some(new)),
            "{events:?}"
        );
        let metrics = self.get("/metrics").text();
        let line = format!("berth_collector_nodes{{state=\"{new}\"}} {count}");
        assert!(metrics.contains(&line), "{metrics}");
    }

    /// The node's entry of `/api/nodes`.
    pub fn node(&self, name: &str) -> serde_json::Value {
        self.json("/api/nodes")["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no node {name}"))
    }
}

/// Start `cmd` without stdin or stdout, its stderr to `log`, not as under journald.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    cmd.env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

pub fn libc_sigterm() -> i32 {
    15
}

/// Whether an event of `node`/`service`/`resource` from `old` to `new` is in `events`.
pub fn has_event(
    events: &[serde_json::Value],
    node: &str,
    service: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
) -> bool {
    events.iter().any(|e| {
        e["node"] == node
            && e.get("service").and_then(|v| v.as_str()) == service
            && e.get("resource").is_none()
            && e["old"].as_str() == old
            && e["new"].as_str() == new
    })
}

/// Parse CSV (RFC 4180: quoted fields, doubled quotes, CRLF) into rows of fields.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// A CSV answer of `c` at `path` as a list of header -> value maps.
pub fn csv_maps(c: &Collector, path: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let r = c.get(path);
    assert_eq!(r.code, 200, "{path}: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/csv"),
        "{:?}",
        r.header("content-type")
    );
    let rows = parse_csv(&r.text());
    let (head, body) = rows.split_first().expect("a header line");
    body.iter()
        .map(|r| {
            assert_eq!(r.len(), head.len(), "{r:?} against {head:?}");
            head.iter().cloned().zip(r.iter().cloned()).collect()
        })
        .collect()
}
