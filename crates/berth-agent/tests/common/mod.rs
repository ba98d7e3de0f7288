//! A berth cluster on the rig (`berth_testkit::cluster`) for the cluster tests (`cluster.rs`,
//! `cluster_faults.rs`, `ha.rs`): N nodes with their svcd, a real etcd (1 or 3 members),
//! services made of an ip and an fs on a shared LUN each, and optional ip-only services.
//! Dropped whole, even on a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, Probe, Sampler, SharedLun, wait_until};
use berth_testkit::{describe, require_root};

pub const SVCD: &str = env!("CARGO_BIN_EXE_svcd");
/// The port every node's svcd listens on.
pub const PORT: u16 = 1215;

/// `svc`, built next to `svcd` (`cargo test --workspace` builds it).
pub fn svc_bin() -> PathBuf {
    let p = Path::new(SVCD).with_file_name("svc");
    assert!(
        p.exists(),
        "{} is missing: build berth-cli first (cargo build -p berth-cli)",
        p.display()
    );
    p
}

/// `svc ARGS` on `node`.
pub fn svc(node: &Node, args: &[&str]) -> Output {
    node.svc(svc_bin().to_str().unwrap())
        .args(args)
        .output()
        .expect("run svc")
}

/// `svc ARGS` on `node`, which must succeed.
pub fn svc_ok(node: &Node, args: &[&str]) -> Output {
    let out = svc(node, args);
    assert!(
        out.status.success(),
        "svc {args:?} on {}: {}\nsvcd log:\n{}",
        node.name(),
        describe(&out),
        node.svcd_log()
    );
    out
}

/// `svc mon --format json` on `node`, `None` when it fails or prints no JSON.
pub fn mon_json(node: &Node) -> Option<serde_json::Value> {
    let out = svc(node, &["mon", "--format", "json"]);
    serde_json::from_slice(&out.stdout).ok()
}

/// `GET path` from inside `node` to its own svcd: the whole answer as text (head and body).
pub fn get_text(node: &Node, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from((node.addr(), PORT));
    let mut s = node.tcp_connect(addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// `GET path` from inside `node` to its own svcd: the status code and the JSON body.
pub fn get_json(node: &Node, path: &str) -> Option<(u16, serde_json::Value)> {
    let addr = std::net::SocketAddr::from((node.addr(), PORT));
    let mut s = node.tcp_connect(addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    // Chunked or not: the JSON object is between the first `{` and the last `}`.
    let (a, b) = (body.find('{')?, body.rfind('}')?);
    Some((code, serde_json::from_str(&body[a..=b]).ok()?))
}

/// `POST path` with `Authorization: Bearer token` from inside `node` to its own svcd: the
/// status code and the JSON body.
pub fn post_json(node: &Node, path: &str, token: &str) -> Option<(u16, serde_json::Value)> {
    let addr = std::net::SocketAddr::from((node.addr(), PORT));
    let mut s = node.tcp_connect(addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    let (a, b) = (body.find('{')?, body.rfind('}')?);
    Some((code, serde_json::from_str(&body[a..=b]).ok()?))
}

/// One service of the rig: an ip and an fs on its own LUN.
pub struct Service {
    pub name: String,
    pub ip: Ipv4Addr,
    pub lun: SharedLun,
    pub mnt: tempfile::TempDir,
}

/// Settings of a rig.
pub struct Spec {
    /// How many nodes (n1, n2...).
    pub nodes: usize,
    /// etcd members (1 or 3).
    pub members: usize,
    /// The nodes' lease TTL, seconds.
    pub ttl: u64,
    /// How many ip + fs services (web, db, app, api).
    pub services: usize,
    /// Extra `[service]` lines of the ip + fs services (`orchestrate = "ha"`).
    pub service_extra: String,
    /// Extra `[ip.1]` lines of the ip + fs services (`monitor = true`).
    pub ip_extra: String,
    /// Extra `[fs.1]` lines of the ip + fs services (`stop_timeout = "100ms"`).
    pub fs_extra: String,
    /// Names of ip-only services, each on its own address (`Rig::ip_of`).
    pub ip_services: Vec<String>,
    /// Freeze the ip + fs services cluster-wide (their etcd key) before any svcd starts.
    pub frozen: bool,
    /// The action token every node's svcd takes (`<config>/token`), none when `None`.
    pub token: Option<String>,
    /// Extra `[service]` lines of the ip-only services (`orchestrate = "start"`).
    pub ip_service_extra: String,
    /// The nodes' `monitor_interval` (`1s`).
    pub monitor_interval: String,
    /// Other service files written on every node: (file name, text).
    pub files: Vec<(String, String)>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            nodes: 2,
            members: 1,
            ttl: 3,
            services: 1,
            service_extra: String::new(),
            ip_extra: String::new(),
            fs_extra: String::new(),
            ip_services: Vec::new(),
            frozen: false,
            token: None,
            ip_service_extra: String::new(),
            monitor_interval: "1s".to_string(),
            files: Vec::new(),
        }
    }
}

pub struct Rig {
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    /// The ip-only services and their addresses.
    pub ip_services: Vec<(String, Ipv4Addr)>,
    pub etcd: Etcd,
    pub lan: Lan,
    pub ttl: Duration,
}

impl Rig {
    pub fn new(spec: Spec) -> Rig {
        require_root();
        let lan = Lan::new();
        let etcd = Etcd::start(&lan, spec.members);
        let names: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let services: Vec<Service> = (0..spec.services)
            .map(|i| Service {
                name: ["web", "db", "app", "api"][i].to_string(),
                ip: lan.host(100 + u8::try_from(i).unwrap()),
                lun: SharedLun::new(16),
                mnt: tempfile::Builder::new()
                    .prefix("rgc")
                    .tempdir_in("/tmp")
                    .unwrap(),
            })
            .collect();
        if spec.frozen {
            for s in &services {
                let key = format!("/berth/t/services/{}/frozen", s.name);
                let out = etcd.etcdctl().args(["put", &key, "1"]).output();
                let out = out.expect("etcdctl");
                assert!(out.status.success(), "{}", describe(&out));
            }
        }
        let ip_services = (spec.ip_services.iter().enumerate())
            .map(|(i, s)| {
                (
                    s.clone(),
                    lan.host(100 + u8::try_from(services.len() + i).unwrap()),
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let node = Node::new(&lan, name, u8::try_from(i + 1).unwrap());
            nodes.push(node);
        }
        let mut rig = Rig {
            nodes,
            services,
            ip_services,
            etcd,
            lan,
            ttl: Duration::from_secs(spec.ttl),
        };
        for i in 0..rig.nodes.len() {
            rig.configure(i, &names, &spec);
        }
        for i in 0..rig.nodes.len() {
            rig.boot(i);
        }
        for n in names {
            rig.wait_alive(&n);
        }
        rig
    }

    fn configure(&self, i: usize, names: &[String], spec: &Spec) {
        let node = &self.nodes[i];
        let eps: Vec<String> = self
            .etcd
            .endpoints()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        node.write_node_toml(&format!(
            "listen = \"{}:{PORT}\"\nmonitor_interval = \"{}\"\n\n[cluster]\nname = \"t\"\n\
             etcd = [{}]\nlease_ttl = \"{}s\"\nready_period = \"1s\"\n",
            node.addr(),
            spec.monitor_interval,
            eps.join(", "),
            self.ttl.as_secs()
        ));
        if let Some(token) = &spec.token {
            use std::os::unix::fs::PermissionsExt as _;
            let path = node.config_dir().join("token");
            std::fs::write(&path, format!("{token}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let list = list.join(", ");
        let (extra, ip_extra, fs_extra) = (&spec.service_extra, &spec.ip_extra, &spec.fs_extra);
        for s in &self.services {
            node.write_service(
                &format!("{}.toml", s.name),
                &format!(
                    "[service]\nnodes = [{list}]\n{extra}\n[ip.1]\nipname = \"{}\"\n\
                     ipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n{ip_extra}\n[fs.1]\n\
                     dev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n{fs_extra}\n",
                    s.ip,
                    s.lun.dev().display(),
                    s.mnt.path().display()
                ),
            );
        }
        for (file, text) in &spec.files {
            node.write_service(file, text);
        }
        for (s, ip) in &self.ip_services {
            node.write_service(
                &format!("{s}.toml"),
                &format!(
                    "[service]\nnodes = [{list}]\n{}\n[ip.1]\nipname = \"{ip}\"\n\
                     ipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n",
                    spec.ip_service_extra
                ),
            );
        }
    }

    /// Start node `i`'s svcd and wait for it to be ready.
    pub fn boot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.spawn_svcd(SVCD);
        node.wait_svcd_ready();
    }

    /// Kill node `name` (every process at once) and boot it again with its svcd.
    pub fn reboot(&mut self, name: &str) {
        let i = self.index(name);
        self.nodes[i].restart();
        self.boot(i);
    }

    pub fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name() == name).unwrap()
    }

    pub fn node(&self, name: &str) -> &Node {
        &self.nodes[self.index(name)]
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        let i = self.index(name);
        &mut self.nodes[i]
    }

    pub fn service(&self, name: &str) -> &Service {
        self.services.iter().find(|s| s.name == name).unwrap()
    }

    /// The address of the ip-only service `svc`.
    pub fn ip_of(&self, svc: &str) -> Ipv4Addr {
        let found = self.ip_services.iter().find(|(s, _)| s == svc);
        found.map(|(_, ip)| *ip).unwrap()
    }

    /// `svc mon --format json` from a live node (the first that answers).
    pub fn mon(&self) -> serde_json::Value {
        for n in self.nodes.iter().filter(|n| n.holder_pid().is_some()) {
            let out = svc(n, &["mon", "--format", "json"]);
            if out.status.success()
                && let Ok(v) = serde_json::from_slice(&out.stdout)
            {
                return v;
            }
        }
        panic!("no node answers svc mon");
    }

    /// Wait until every live node sees `name`'s node key alive.
    pub fn wait_alive(&self, name: &str) {
        for n in self.nodes.iter().filter(|n| n.holder_pid().is_some()) {
            wait_until(
                Duration::from_secs(20),
                &format!("{} sees {name} alive", n.name()),
                || mon_json(n).is_some_and(|v| v["nodes"][name]["hb"] == "up"),
            );
        }
    }

    /// The owner and fencing token of `svc` in etcd (`svc mon` on the first live node).
    pub fn owner(&self, svc: &str) -> (Option<String>, Option<i64>) {
        let v = self.mon();
        let s = &v["services"][svc];
        (s["owner"].as_str().map(str::to_string), s["token"].as_i64())
    }

    /// The owner and fencing token of `svc`, as `svc mon` on `asker` says.
    pub fn owner_from(&self, asker: &str, svc_name: &str) -> (Option<String>, Option<i64>) {
        let out = svc(self.node(asker), &["mon", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("svc mon on {asker}: {e}: {}", describe(&out)));
        let s = &v["services"][svc_name];
        (s["owner"].as_str().map(str::to_string), s["token"].as_i64())
    }

    /// Whether `svc`'s ip and fs are both up on `node`.
    pub fn up_on(&self, node: &str, svc: &str) -> bool {
        let n = self.node(node);
        let s = self.service(svc);
        n.has_addr(s.ip) && n.has_mount(s.lun.dev())
    }

    /// Whether any part of `svc` (its ip or its fs) is up on `node`.
    pub fn any_up_on(&self, node: &str, svc: &str) -> bool {
        let n = self.node(node);
        let s = self.service(svc);
        n.has_addr(s.ip) || n.has_mount(s.lun.dev())
    }

    /// The nodes where any part of `svc` (its ip or its fs) is up.
    pub fn where_up(&self, svc: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| self.any_up_on(n.name(), svc))
            .map(|n| n.name().to_string())
            .collect()
    }

    /// A sampler of `svc` on every node: up when its ip or its fs is there.
    pub fn sampler(&self, svc: &str) -> Sampler {
        let s = self.service(svc);
        let probes: Vec<(String, Probe)> = self
            .nodes
            .iter()
            .map(|n| (n.name().to_string(), n.ip_or_mount_probe(s.ip, s.lun.dev())))
            .collect();
        Sampler::start(probes)
    }

    /// Wait until `svc` is up (ip and fs) on exactly one node, and return it.
    pub fn wait_up_once(&self, svc: &str, bound: Duration) -> String {
        let mut at = String::new();
        wait_until(bound, &format!("{svc} up on one node"), || {
            let up: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| self.up_on(n.name(), svc))
                .map(|n| n.name().to_string())
                .collect();
            if up.len() == 1 && self.where_up(svc).len() == 1 {
                at = up[0].clone();
                true
            } else {
                false
            }
        });
        at
    }

    /// Wait until `svc` is up (ip and fs) on `node` and nowhere else.
    pub fn wait_up_on(&self, svc: &str, node: &str, bound: Duration) {
        wait_until(bound, &format!("{svc} up on {node} only"), || {
            self.up_on(node, svc) && self.where_up(svc) == [node]
        });
    }

    /// Every svcd log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("==== {} ====\n{}", n.name(), n.svcd_log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
