//! The cluster on a real etcd (root): svcd and svc on rig nodes (`berth_testkit::cluster`), an
//! ip + fs service on a shared LUN. Ownership, refusal naming the owner, switch, sampled so the
//! service is never up on two nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, Sampler, SharedLun, wait_until};
use berth_testkit::{describe, require_root};

const SVCD: &str = env!("CARGO_BIN_EXE_svcd");

fn svc_bin() -> PathBuf {
    let p = Path::new(SVCD).with_file_name("svc");
    assert!(
        p.exists(),
        "{} is missing: build berth-cli first",
        p.display()
    );
    p
}

fn svc(node: &Node, args: &[&str]) -> std::process::Output {
    node.svc(svc_bin().to_str().unwrap())
        .args(args)
        .output()
        .expect("run svc")
}

/// A cluster of `n` nodes on a 1-member etcd, each with its svcd, and one ip + fs service.
struct Rig {
    nodes: Vec<Node>,
    lun: SharedLun,
    ip: std::net::Ipv4Addr,
    _mnt: tempfile::TempDir,
    etcd: Etcd,
    _lan: Lan,
}

impl Rig {
    fn new(n: usize, members: usize, ttl: u64, service_extra: &str) -> Rig {
        require_root();
        let lan = Lan::new();
        let etcd = Etcd::start(&lan, members);
        let lun = SharedLun::new(16);
        let mnt = tempfile::Builder::new()
            .prefix("rgc")
            .tempdir_in("/tmp")
            .unwrap();
        let ip = lan.host(100);
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut node = Node::new(&lan, name, u8::try_from(i + 1).unwrap());
            node.write_node_toml(&format!(
                "listen = \"{}:1215\"\nmonitor_interval = \"1s\"\n\n[cluster]\nname = \"t\"\n\
                 etcd = [{}]\nlease_ttl = \"{ttl}s\"\nready_period = \"1s\"\n",
                node.addr(),
                eps.join(", ")
            ));
            let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            node.write_service(
                "web.toml",
                &format!(
                    "[service]\nnodes = [{}]\n{service_extra}\n[ip.1]\nipname = \"{ip}\"\n\
                     ipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n\n[fs.1]\n\
                     dev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                    list.join(", "),
                    lun.dev().display(),
                    mnt.path().display()
                ),
            );
            node.spawn_svcd(SVCD);
            node.wait_svcd_ready();
            nodes.push(node);
        }
        let rig = Rig {
            nodes,
            lun,
            ip,
            _mnt: mnt,
            etcd,
            _lan: lan,
        };
        for n in &rig.nodes {
            rig.wait_alive(n.name());
        }
        rig
    }

    /// Wait until every node sees `name`'s node key (`svc mon --format json`).
    fn wait_alive(&self, name: &str) {
        for n in &self.nodes {
            wait_until(
                Duration::from_secs(20),
                &format!("{} sees {name} alive", n.name()),
                || {
                    let out = svc(n, &["mon", "--format", "json"]);
                    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
                        Ok(v) => v,
                        Err(_) => return false,
                    };
                    v["nodes"][name]["hb"] == "up"
                },
            );
        }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name() == name).unwrap()
    }

    fn up_on(&self, name: &str) -> bool {
        let n = self.node(name);
        n.has_addr(self.ip) && n.has_mount(self.lun.dev())
    }

    fn sampler(&self) -> Sampler {
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

    fn owner(&self) -> (Option<String>, Option<i64>) {
        let out = svc(&self.nodes[0], &["mon", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("mon json");
        let s = &v["services"]["web"];
        (s["owner"].as_str().map(str::to_string), s["token"].as_i64())
    }
}

#[test]
fn start_is_refused_on_a_node_that_does_not_own_the_service_and_switch_moves_it() {
    let rig = Rig::new(2, 1, 3, "");
    let sampler = rig.sampler();
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));
    let out = svc(n1, &["web", "start"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&out),
        n1.svcd_log()
    );
    assert!(rig.up_on("n1"));
    let (owner, token) = rig.owner();
    assert_eq!(owner.as_deref(), Some("n1"));
    let mut token = token.expect("a fencing token");

    // n2 refuses, naming n1, and touches nothing.
    let out = svc(n2, &["web", "start", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web is running on n1") && err.contains("switch --to n2"),
        "{err}"
    );
    assert!(!rig.node("n2").has_addr(rig.ip) && !n2.has_mount(rig.lun.dev()));

    // print status has the cluster rows.
    let out = svc(n1, &["web", "print", "status", "--format", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["hb"], "up", "{st}");
    assert_eq!(st["sync"], "up", "{st}");
    assert_eq!(st["cluster"]["owner"], "n1", "{st}");

    // Switch back and forth, from either node; the token grows each time.
    for round in 0..4 {
        let (from, to) = if round % 2 == 0 {
            ("n1", "n2")
        } else {
            ("n2", "n1")
        };
        let asker = if round % 3 == 0 { from } else { to };
        let out = svc(
            rig.node(asker),
            &["web", "switch", "--to", to, "--timeout", "30"],
        );
        assert!(
            out.status.success(),
            "round {round}: {}\n{from}:\n{}\n{to}:\n{}",
            describe(&out),
            rig.node(from).svcd_log(),
            rig.node(to).svcd_log()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{from}: stopping web")), "{err}");
        assert!(err.contains(&format!("{to}: web is up")), "{err}");
        assert!(rig.up_on(to) && !rig.up_on(from), "round {round}");
        let (owner, t) = rig.owner();
        assert_eq!(owner.as_deref(), Some(to));
        let t = t.unwrap();
        assert!(t > token, "token {t} after {token}");
        token = t;
    }
    let timeline = sampler.stop();
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");
    let out = svc(n1, &["web", "stop"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rig.owner().0, None);
    drop(rig.etcd);
}
