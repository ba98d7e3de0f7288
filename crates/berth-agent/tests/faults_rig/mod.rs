//! The rig of `cluster_faults.rs`: `n` rig nodes (`berth_testkit::cluster`) on a 1- or
//! 3-member etcd, each with its svcd, the ip + fs service `web` on a shared LUN, and optional
//! ip-only services.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, Sampler, SharedLun, wait_until};
use berth_testkit::require_root;

pub const SVCD: &str = env!("CARGO_BIN_EXE_svcd");
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

/// Run `svc args` inside `node`.
pub fn svc(node: &Node, args: &[&str]) -> std::process::Output {
    node.svc(svc_bin().to_str().unwrap())
        .args(args)
        .output()
        .expect("run svc")
}

/// `svc mon --format json` on `node`, `None` when it fails or prints no JSON.
pub fn mon_json(node: &Node) -> Option<serde_json::Value> {
    let out = svc(node, &["mon", "--format", "json"]);
    serde_json::from_slice(&out.stdout).ok()
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

/// What a rig is made of.
pub struct Spec {
    /// How many nodes (n1, n2...).
    pub nodes: usize,
    /// etcd members (1 or 3).
    pub members: usize,
    /// The nodes' lease TTL, seconds.
    pub ttl: u64,
    /// Extra `[service]` lines of `web` (e.g. `orchestrate = "start"`).
    pub web_extra: String,
    /// Extra `[fs.1]` lines of `web` (e.g. `stop_timeout = "100ms"`).
    pub fs_extra: String,
    /// Names of ip-only services (each on its own address, `Rig::ip_of`).
    pub ip_services: Vec<String>,
    /// Freeze `web` cluster-wide (its etcd key) before any svcd starts.
    pub web_frozen: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            nodes: 2,
            members: 1,
            ttl: 3,
            web_extra: String::new(),
            fs_extra: String::new(),
            ip_services: Vec::new(),
            web_frozen: false,
        }
    }
}

/// A cluster of rig nodes, each with its svcd, and the service `web` (ip + fs on the LUN).
pub struct Rig {
    pub nodes: Vec<Node>,
    pub lun: SharedLun,
    pub ip: Ipv4Addr,
    pub mnt: tempfile::TempDir,
    pub ip_services: Vec<(String, Ipv4Addr)>,
    pub ttl: Duration,
    pub etcd: Etcd,
    pub lan: Lan,
}

impl Rig {
    /// `n` nodes, `members` etcd members, lease TTL `ttl` s, `web` with `service_extra`.
    pub fn new(n: usize, members: usize, ttl: u64, service_extra: &str) -> Rig {
        Rig::build(Spec {
            nodes: n,
            members,
            ttl,
            web_extra: service_extra.to_string(),
            ..Spec::default()
        })
    }

    /// The rig of `spec`; returns once every node sees every other alive.
    pub fn build(spec: Spec) -> Rig {
        require_root();
        let lan = Lan::new();
        let etcd = Etcd::start(&lan, spec.members);
        if spec.web_frozen {
            let out = etcd
                .etcdctl()
                .args(["put", "/berth/t/services/web/frozen", "1"])
                .output()
                .expect("etcdctl");
            assert!(out.status.success(), "{}", berth_testkit::describe(&out));
        }
        let lun = SharedLun::new(16);
        let mnt = tempfile::Builder::new()
            .prefix("rgc")
            .tempdir_in("/tmp")
            .unwrap();
        let ip = lan.host(100);
        let ip_services: Vec<(String, Ipv4Addr)> = spec
            .ip_services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), lan.host(101 + u8::try_from(i).unwrap())))
            .collect();
        let names: Vec<String> = (1..=spec.nodes).map(|i| format!("n{i}")).collect();
        let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let list = list.join(", ");
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut node = Node::new(&lan, name, u8::try_from(i + 1).unwrap());
            node.write_node_toml(&format!(
                "listen = \"{}:{PORT}\"\nmonitor_interval = \"1s\"\n\n[cluster]\nname = \"t\"\n\
                 etcd = [{}]\nlease_ttl = \"{}s\"\nready_period = \"1s\"\n",
                node.addr(),
                eps.join(", "),
                spec.ttl
            ));
            node.write_service(
                "web.toml",
                &format!(
                    "[service]\nnodes = [{list}]\n{}\n[ip.1]\nipname = \"{ip}\"\n\
                     ipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n\n[fs.1]\n\
                     dev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n{}\n",
                    spec.web_extra,
                    lun.dev().display(),
                    mnt.path().display(),
                    spec.fs_extra
                ),
            );
            for (s, sip) in &ip_services {
                node.write_service(
                    &format!("{s}.toml"),
                    &format!(
                        "[service]\nnodes = [{list}]\n\n[ip.1]\nipname = \"{sip}\"\n\
                         ipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n"
                    ),
                );
            }
            node.spawn_svcd(SVCD);
            node.wait_svcd_ready();
            nodes.push(node);
        }
        let rig = Rig {
            nodes,
            lun,
            ip,
            mnt,
            ip_services,
            ttl: Duration::from_secs(spec.ttl),
            etcd,
            lan,
        };
        for n in &rig.nodes {
            rig.wait_alive(n.name());
        }
        rig
    }

    /// Wait until every live node sees `name`'s node key (`svc mon --format json`).
    pub fn wait_alive(&self, name: &str) {
        for n in self.nodes.iter().filter(|n| n.holder_pid().is_some()) {
            wait_until(
                Duration::from_secs(20),
                &format!("{} sees {name} alive", n.name()),
                || mon_json(n).is_some_and(|v| v["nodes"][name]["hb"] == "up"),
            );
        }
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name() == name).unwrap()
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name() == name).unwrap()
    }

    /// The address of the ip-only service `svc`.
    pub fn ip_of(&self, svc: &str) -> Ipv4Addr {
        self.ip_services
            .iter()
            .find(|(s, _)| s == svc)
            .map(|(_, ip)| *ip)
            .unwrap()
    }

    /// `web`'s ip and fs are both up on `name`.
    pub fn up_on(&self, name: &str) -> bool {
        let n = self.node(name);
        n.has_addr(self.ip) && n.has_mount(self.lun.dev())
    }

    /// `web`'s ip or fs is up on `name`.
    pub fn any_up_on(&self, name: &str) -> bool {
        let n = self.node(name);
        n.has_addr(self.ip) || n.has_mount(self.lun.dev())
    }

    /// A sampler of `web` (ip or fs up) on every node.
    pub fn sampler(&self) -> Sampler {
        Sampler::start(
            self.nodes
                .iter()
                .map(|n| {
                    (
                        n.name().to_string(),
                        n.ip_or_mount_probe(self.ip, self.lun.dev()),
                    )
                })
                .collect(),
        )
    }

    /// `web`'s owner and fencing token, as `svc mon` on `asker` says.
    pub fn owner_from(&self, asker: &str, name: &str) -> (Option<String>, Option<i64>) {
        let out = svc(self.node(asker), &["mon", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("svc mon on {asker}: {e}: {}", berth_testkit::describe(&out))
        });
        let s = &v["services"][name];
        (s["owner"].as_str().map(str::to_string), s["token"].as_i64())
    }

    /// `web`'s owner and fencing token, as `svc mon` on n1 says.
    pub fn owner(&self) -> (Option<String>, Option<i64>) {
        self.owner_from("n1", "web")
    }

    /// Every node's svcd log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.name(), n.svcd_log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
