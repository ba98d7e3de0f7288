//! DR nodes on a real etcd (root): n1 and n2 share a LUN, DR node n3 has its own device for the
//! same mount, kept mounted there by `always_on = ["drpnodes"]`. The DR start: refused while an
//! owner exists, a normal start with etcd answering and no owner, the site loss (n1, n2 and
//! etcd killed) and the forced start with its `drp_active` mark, the returning primary refused,
//! the fail-back: the DR copy sent back by `sync update --target nodes` to the primary's LUN,
//! mounted by hand on n1, then `switch`. Sampled throughout: the service's address is never up
//! on two nodes, and the primary LUN is never mounted on both n1 and n2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, Sampler, SharedLun, wait_until};
use berth_testkit::sshd::{SshClient, Sshd};
use berth_testkit::{describe, require_root};
use common::{PORT, SVCD, svc, svc_bin, svc_ok};

/// Three nodes (n1, n2: `nodes`; n3: `drpnodes`), one etcd member, service `web`: an ip, and an
/// fs on the shared LUN (n1, n2) or on n3's own device, always on on n3. With `sync`: an sshd
/// of the test's own on each node, node.toml's `[sync]` client config, and two rsync resources
/// of the fs's content, `sync#1` to the `drpnodes` and `sync#2` to the `nodes` (as in
/// `tests/drsync.rs`).
struct DrRig {
    // Dropped first: the sshds, then the nodes (their cgroups), then the LUNs and etcd.
    sshds: Vec<Sshd>,
    client: SshClient,
    nodes: Vec<Node>,
    etcd: Etcd,
    ip: Ipv4Addr,
    lun: SharedLun,
    dr_lun: SharedLun,
    mnt: tempfile::TempDir,
    _lan: Lan,
}

impl DrRig {
    fn new(service_extra: &str, sync: bool) -> DrRig {
        require_root();
        let lan = Lan::new();
        let etcd = Etcd::start(&lan, 1);
        let ip = lan.host(100);
        let lun = SharedLun::new(16);
        let dr_lun = SharedLun::new(16);
        let mnt = tempfile::Builder::new()
            .prefix("rgd")
            .tempdir_in("/tmp")
            .unwrap();
        let mut nodes: Vec<Node> = (1..=3u8)
            .map(|i| Node::new(&lan, &format!("n{i}"), i))
            .collect();
        let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let client = SshClient::new();
        let m = mnt.path().display();
        let syncs = if sync {
            format!(
                "\n[sync.1]\ntype = \"rsync\"\nsrc = \"{m}/\"\ndstfs = \"{m}\"\n\
                 target = [\"drpnodes\"]\nexclude = [\"lost+found\"]\n\n[sync.2]\n\
                 type = \"rsync\"\nsrc = \"{m}/\"\ndstfs = \"{m}\"\ntarget = [\"nodes\"]\n\
                 exclude = [\"lost+found\"]\n"
            )
        } else {
            String::new()
        };
        for node in &nodes {
            node.write_node_toml(&format!(
                "listen = \"{}:{PORT}\"\nmonitor_interval = \"1s\"\n\n[cluster]\nname = \"t\"\n\
                 etcd = [{}]\nlease_ttl = \"3s\"\nready_period = \"1s\"\n\n{}",
                node.addr(),
                eps.join(", "),
                if sync {
                    client.node_toml()
                } else {
                    String::new()
                },
            ));
            node.write_service(
                "web.toml",
                &format!(
                    "[service]\nnodes = [\"n1\", \"n2\"]\ndrpnodes = [\"n3\"]\n{service_extra}\n\
                     [ip.1]\nipname = \"{ip}\"\nipdev = \"eth0\"\nnetmask = 24\n\
                     probe_timeout = \"200ms\"\n\n[fs.1]\ndev = \"{}\"\n\"dev@n3\" = \"{}\"\n\
                     mnt = \"{}\"\ntype = \"ext4\"\nalways_on = [\"drpnodes\"]\n{syncs}",
                    lun.dev().display(),
                    dr_lun.dev().display(),
                    mnt.path().display()
                ),
            );
        }
        let mut sshds = Vec::new();
        if sync {
            let bin_dir = svc_bin().parent().unwrap().to_path_buf();
            for node in &nodes {
                let s = Sshd::start(node, &client, &[&bin_dir]);
                client.trust(&s);
                sshds.push(s);
            }
        }
        for node in &mut nodes {
            node.spawn_svcd(SVCD);
            node.wait_svcd_ready();
        }
        let rig = DrRig {
            sshds,
            client,
            nodes,
            etcd,
            ip,
            lun,
            dr_lun,
            mnt,
            _lan: lan,
        };
        for n in ["n1", "n2", "n3"] {
            rig.wait_alive(n);
        }
        rig
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name() == name).unwrap()
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.name() == name).unwrap()
    }

    fn wait_alive(&self, name: &str) {
        let asker = self.node(name);
        wait_until(Duration::from_secs(20), &format!("{name} alive"), || {
            common::mon_json(asker).is_some_and(|v| v["nodes"][name]["hb"] == "up")
        });
    }

    /// The service runs on `node`: its address is there (n3's fs is always on: no sign).
    fn runs_on(&self, node: &str) -> bool {
        self.node(node).has_addr(self.ip)
    }

    fn where_runs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.has_addr(self.ip) || n.has_mount(self.lun.dev()))
            .map(|n| n.name().to_string())
            .collect()
    }

    /// Two samplers, each to show at most one node up at any time: the service's address (every
    /// node), and the primary LUN mounted (n1, n2, the nodes that share it).
    ///
    /// Not one "address or primary LUN" probe per node: the fail-back mounts the primary LUN by
    /// hand on n1 to receive the DR copy while the service runs on n3 (its own device), which is
    /// no double start (not one block device used twice, no address twice) but would count two.
    /// What a double start breaks is still caught: the service up on two nodes brings its
    /// address up on both (the first sampler), and the shared LUN mounted on both primaries at
    /// once is the second sampler's case.
    fn samplers(&self) -> (Sampler, Sampler) {
        let addr = self
            .nodes
            .iter()
            .map(|n| (n.name().to_string(), n.addr_probe(self.ip)))
            .collect();
        let lun = self
            .nodes
            .iter()
            .filter(|n| n.name() != "n3")
            .map(|n| (n.name().to_string(), n.mount_probe(self.lun.dev())))
            .collect();
        (Sampler::start(addr), Sampler::start(lun))
    }

    /// Write `n` files of 64 KiB of random data under `<mnt>/<sub>` on `node`.
    fn write_files(&self, node: &str, sub: &str, n: usize) {
        let script = format!(
            "mkdir -p {d}/{sub} && for i in $(seq 1 {n}); do \
             head -c 65536 /dev/urandom > {d}/{sub}/f$i; done",
            d = self.mnt.path().display(),
        );
        self.node(node).run("sh", &["-c", &script]);
    }

    /// `sha256sum` of every file under `<mnt>/<sub>` on `node`, sorted, as `path  sum` lines.
    fn tree(&self, node: &str, sub: &str) -> Vec<String> {
        let script = format!(
            "cd {}/{sub} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum",
            self.mnt.path().display()
        );
        let out = self.node(node).run("sh", &["-c", &script]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A fresh sshd on `name` after its restart (the old one died with the node's cgroup): a new
    /// host key, trusted in place of the old one.
    fn restart_sshd(&mut self, name: &str) {
        let node = self.node(name);
        let dir = node.path("sshd");
        for f in ["host_ed25519", "host_ed25519.pub"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        let bin_dir = svc_bin().parent().unwrap().to_path_buf();
        let s = Sshd::start(node, &self.client, &[&bin_dir]);
        let kh = self.client.known_hosts();
        let prefix = format!("{} ", node.addr());
        let kept: String = std::fs::read_to_string(&kh)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&kh, kept).unwrap();
        self.client.trust(&s);
        self.sshds.push(s);
    }

    fn dr_fs_mounted(&self) -> bool {
        self.node("n3").has_mount(self.dr_lun.dev())
    }

    /// An etcd key's value, `None` when absent.
    fn etcd_get(&self, key: &str) -> Option<String> {
        let out = self
            .etcd
            .etcdctl()
            .args(["get", "--print-value-only", key])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!v.is_empty()).then_some(v)
    }

    fn owner(&self) -> Option<String> {
        self.etcd_get("/berth/t/services/web/owner")
            .map(|v| serde_json::from_str::<serde_json::Value>(&v).unwrap()["node"].to_string())
            .map(|s| s.trim_matches('"').to_string())
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("==== {} ====\n{}", n.name(), n.svcd_log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn always_on_dr_start_refused_while_owned_taking_a_free_owner_key_and_an_unreachable_dr_node() {
    let mut rig = DrRig::new("", false);
    let (sampler, lun_sampler) = rig.samplers();
    let (n1, n3) = (rig.node("n1"), rig.node("n3"));

    // svcd mounts the DR node's always_on fs (stdby up), and nowhere else.
    wait_until(Duration::from_secs(20), "n3's DR fs mounted", || {
        rig.dr_fs_mounted()
    });
    assert!(rig.where_runs().is_empty(), "{:?}", rig.where_runs());
    let st = svc_ok(
        n3,
        &["web", "print", "status", "--format", "json", "--refresh"],
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let fs = st["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rid"] == "fs#1")
        .unwrap_or_else(|| panic!("{st}"));
    assert_eq!(fs["status"], "stdby up", "{st}");
    assert_eq!(st["avail"], "stdby up", "{st}");

    // The service runs on n1; n3 keeps its fs mounted.
    svc_ok(n1, &["web", "start"]);
    assert!(rig.runs_on("n1") && rig.node("n1").has_mount(rig.lun.dev()));
    assert!(rig.dr_fs_mounted());

    // Someone unmounts the DR fs: svcd mounts it again, and says so.
    let out = n3.run_any("umount", &[rig.mnt.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!rig.dr_fs_mounted());
    wait_until(Duration::from_secs(20), "n3's DR fs mounted again", || {
        rig.dr_fs_mounted()
    });
    let logs = String::from_utf8_lossy(&svc_ok(n3, &["web", "logs"]).stdout).into_owned();
    assert!(
        logs.contains("standby fs#1 down: starting it again")
            && logs.contains("standby fs#1 started again"),
        "{logs}"
    );

    // A DR start while n1 owns it: refused, naming n1; nothing moves.
    let out = svc(n3, &["web", "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("web is running on n1") && stderr(&out).contains("DR node n3"),
        "{}",
        describe(&out)
    );
    assert!(!rig.runs_on("n3") && rig.runs_on("n1"));

    // Stopped on n1 (no owner), etcd answering: the DR start takes the owner key.
    svc_ok(n1, &["web", "stop"]);
    assert!(rig.where_runs().is_empty());
    assert_eq!(rig.owner(), None);
    // A primary that holds a drp_active mark in its own var dir refuses too, naming the DR node.
    let own_mark = n1.var_dir().join("web").join("drp_active");
    std::fs::write(
        &own_mark,
        r#"{"node": "n3", "time": 1800000000, "token": 0}"#,
    )
    .unwrap();
    let out = svc(n1, &["web", "start", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("started on DR node n3"),
        "{}",
        describe(&out)
    );
    assert!(rig.where_runs().is_empty());
    std::fs::remove_file(&own_mark).unwrap();
    svc_ok(n3, &["web", "start"]);
    assert!(rig.runs_on("n3"));
    assert_eq!(rig.owner().as_deref(), Some("n3"));
    // The primary refuses while n3 owns it.
    let out = svc(n1, &["web", "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("running on n3"), "{}", describe(&out));

    // A stop on n3 leaves the always_on fs mounted; `--force` stops it too.
    svc_ok(n3, &["web", "stop"]);
    assert!(!rig.runs_on("n3"));
    assert!(rig.dr_fs_mounted());
    assert_eq!(rig.owner(), None);
    svc_ok(n3, &["web", "stop", "--force"]);
    assert!(!rig.dr_fs_mounted());
    // An operator's forced stop is not undone by svcd.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!rig.dr_fs_mounted(), "{}", rig.logs());

    // The DR node dies while nobody owns the service: a start on n1 says why and needs --force.
    rig.node_mut("n3").kill();
    wait_until(Duration::from_secs(20), "n1 sees n3 dead", || {
        common::mon_json(rig.node("n1")).is_some_and(|v| v["nodes"]["n3"]["hb"] == "down")
    });
    let n1 = rig.node("n1");
    let out = svc(n1, &["web", "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("DR node n3 of web is unreachable")
            && stderr(&out).contains("--force"),
        "{}",
        describe(&out)
    );
    assert!(rig.where_runs().is_empty());
    let mon = common::mon_json(n1).unwrap();
    assert!(
        mon["services"]["web"]["why"]["n1"]
            .as_str()
            .is_some_and(|w| w.contains("DR node n3 unreachable")),
        "{mon}"
    );
    svc_ok(n1, &["web", "start", "--force"]);
    assert!(rig.runs_on("n1"));
    assert_eq!(rig.owner().as_deref(), Some("n1"));

    let timeline = sampler.stop();
    assert!(timeline.max_concurrent_up() <= 1, "{timeline}");
    let timeline = lun_sampler.stop();
    assert!(timeline.max_concurrent_up() <= 1, "{timeline}");
}

#[test]
fn site_loss_then_forced_dr_start_the_returning_primary_refused_and_the_fail_back() {
    let mut rig = DrRig::new("orchestrate = \"ha\"\n", true);
    let (sampler, lun_sampler) = rig.samplers();
    // The orchestrator places it on n1 (the DR node is no candidate).
    wait_until(Duration::from_secs(30), "web up on n1", || {
        rig.runs_on("n1") && rig.node("n1").has_mount(rig.lun.dev())
    });
    wait_until(Duration::from_secs(20), "n3's DR fs mounted", || {
        rig.dr_fs_mounted()
    });
    let mon = common::mon_json(rig.node("n3")).unwrap();
    assert_eq!(
        mon["services"]["web"]["why"]["n3"], "DR node: started by hand only",
        "{mon}"
    );
    // Data written on n1 while it runs there, sent to the DR node's copy.
    rig.write_files("n1", "before", 8);
    svc_ok(
        rig.node("n1"),
        &["web", "sync", "update", "--rid", "sync#1"],
    );
    let before = rig.tree("n1", "before");
    assert_eq!(before.len(), 8, "{before:?}");
    assert_eq!(rig.tree("n3", "before"), before);

    // The primary site is lost: n1, n2 and etcd die at once.
    rig.node_mut("n1").kill();
    rig.node_mut("n2").kill();
    rig.etcd.kill_member(0);
    // n3's svcd and its watchdog see the lease go (its fs is standby: nothing to stop).
    wait_until(Duration::from_secs(20), "n3 past its fencing point", || {
        rig.node("n3").svcd_log().contains("not renewed for")
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(rig.dr_fs_mounted(), "{}", rig.logs());
    assert!(!rig.runs_on("n3"));

    // A plain start on the DR node is refused, naming etcd.
    let n3 = rig.node("n3");
    let out = svc(n3, &["web", "start"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("etcd is unreachable from DR node n3")
            && stderr(&out).contains("--force"),
        "{}",
        describe(&out)
    );
    assert!(!rig.runs_on("n3"));

    // Forced: it starts, and the mark is written.
    let t = std::time::Instant::now();
    let out = svc_ok(n3, &["web", "start", "--force"]);
    eprintln!("forced DR start: {:?}", t.elapsed());
    assert!(
        stderr(&out).contains("drp_active mark written"),
        "{}",
        describe(&out)
    );
    assert!(rig.runs_on("n3") && rig.dr_fs_mounted());
    let mark_file = n3.var_dir().join("web").join("drp_active");
    let mark: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mark_file).unwrap()).unwrap();
    assert_eq!(mark["node"], "n3", "{mark}");
    assert_eq!(mark["token"], 0, "{mark}");
    // svcd keeps it running while etcd is away.
    std::thread::sleep(Duration::from_secs(3));
    assert!(rig.runs_on("n3"), "{}", rig.logs());
    // The service works on its DR copy: new files, two of the old ones rewritten.
    rig.write_files("n3", "dr", 8);
    rig.write_files("n3", "before", 2);
    let (dr, dr_before) = (rig.tree("n3", "dr"), rig.tree("n3", "before"));
    assert_ne!(dr_before, before);

    // etcd comes back: n3's svcd publishes the mark and takes the owner key.
    rig.etcd.restart_member(0);
    let back = std::time::Instant::now();
    wait_until(Duration::from_secs(30), "the mark in etcd", || {
        rig.etcd_get("/berth/t/services/web/drp_active").is_some()
    });
    let published = back.elapsed();
    wait_until(Duration::from_secs(30), "n3 owns web", || {
        rig.owner().as_deref() == Some("n3")
    });
    // Reported, not asserted (no timed assertions): the lost site's owner key lives on a TTL.
    eprintln!(
        "etcd back: mark published after {published:?}, owner key taken after {:?}",
        back.elapsed()
    );
    assert!(rig.runs_on("n3"), "{}", rig.logs());

    // The primary returns and refuses to start it, naming the DR node.
    rig.node_mut("n1").restart();
    rig.node_mut("n1").spawn_svcd(SVCD);
    rig.node_mut("n1").wait_svcd_ready();
    rig.restart_sshd("n1");
    rig.wait_alive("n1");
    let n1 = rig.node("n1");
    for args in [&["web", "start"][..], &["web", "start", "--force"][..]] {
        let out = svc(n1, args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("DR node n3") && err.contains("switch --to n1"),
            "{}",
            describe(&out)
        );
    }
    assert!(!rig.runs_on("n1") && rig.runs_on("n3"));

    // The fail-back, 1: the DR copy back to the primary's LUN. On n1 the LUN is mounted by hand
    // on the service's mount point (its storage only: no address, nothing started), which holds
    // the data of before the site loss.
    let (lun, mnt) = (
        rig.lun.dev().to_str().unwrap(),
        rig.mnt.path().to_str().unwrap(),
    );
    rig.node("n1").run("mount", &[lun, mnt]);
    assert_eq!(rig.tree("n1", "before"), before);
    // n3 sends to the `nodes`: n1 receives; n2 is still down (no node record in etcd, so no
    // address): its transfer fails and the command exits 1 naming it, after n1's went through.
    let out = svc(
        rig.node("n3"),
        &[
            "web", "sync", "update", "--rid", "sync#2", "--target", "nodes",
        ],
    );
    eprintln!(
        "sync update --target nodes with n2 down: {}",
        describe(&out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("sync#2: n2: no address for n2") && !err.contains("sync#2: n1"),
        "{}",
        describe(&out)
    );
    let records: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rig.node("n3").var_dir().join("web/sync/sync#2.json")).unwrap(),
    )
    .unwrap();
    assert!(records["n1"]["last_ok"].is_object(), "{records}");
    assert_eq!(records["n1"]["last"]["result"], "ok", "{records}");
    assert_eq!(records["n2"]["last"]["result"], "failed", "{records}");
    assert!(records["n2"]["last_ok"].is_null(), "{records}");
    let rec: serde_json::Value =
        serde_json::from_str(&rig.etcd_get("/berth/t/sync/web/sync#2/n1").unwrap()).unwrap();
    assert_eq!(rec["result"], "ok", "{rec}");
    assert_eq!(rig.tree("n1", "dr"), dr);
    assert_eq!(rig.tree("n1", "before"), dr_before);
    rig.node("n1").run("umount", &[mnt]);
    assert!(!rig.node("n1").has_mount(rig.lun.dev()));

    // The fail-back, 2: a switch from n3 clears the mark (etcd and file) and n1 runs it.
    let out = svc_ok(
        rig.node("n3"),
        &["web", "switch", "--to", "n1", "--timeout", "30"],
    );
    assert!(stderr(&out).contains("n1: web is up"), "{}", describe(&out));
    assert!(rig.runs_on("n1") && !rig.runs_on("n3"));
    assert_eq!(rig.owner().as_deref(), Some("n1"));
    assert_eq!(rig.etcd_get("/berth/t/services/web/drp_active"), None);
    assert!(!mark_file.exists());
    // n3 keeps its DR copy mounted; n1 runs on the DR data.
    assert!(rig.dr_fs_mounted());
    assert!(rig.node("n1").has_mount(rig.lun.dev()));
    assert_eq!(rig.tree("n1", "dr"), dr);
    assert_eq!(rig.tree("n1", "before"), dr_before);
    let logs =
        String::from_utf8_lossy(&svc_ok(rig.node("n3"), &["web", "logs"]).stdout).into_owned();
    assert!(
        logs.contains("drp_active mark published")
            && logs.contains("owner key taken on n3")
            && logs.contains("drp_active mark cleared (fail-back)"),
        "{logs}"
    );
    // n1's owner key from before the site loss lived on a TTL after etcd's return: no conflict.
    assert!(!logs.contains("on both sides"), "{logs}");

    let timeline = sampler.stop();
    assert!(timeline.max_concurrent_up() <= 1, "{timeline}");
    let timeline = lun_sampler.stop();
    assert!(timeline.max_concurrent_up() <= 1, "{timeline}");
}
