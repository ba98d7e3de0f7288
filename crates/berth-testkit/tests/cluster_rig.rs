//! Self-test of the multi-node rig (`berth_testkit::cluster`): real namespaces, cgroups, loop
//! devices and etcd. Root.

#![allow(clippy::expect_used, clippy::cast_possible_wrap)] // pids fit in i32

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, Sampler, SharedLun, output_within, wait_until};
use berth_testkit::{alive, describe, require_root};

const BOUND: Duration = Duration::from_secs(15);

fn bounded(mut cmd: Command) -> Option<Output> {
    output_within(&mut cmd, BOUND)
}

fn ok(out: Option<Output>, what: &str) -> Output {
    let out = out.unwrap_or_else(|| panic!("{what}: did not finish within {BOUND:?}"));
    assert!(out.status.success(), "{what}: {}", describe(&out));
    out
}

fn put_get(etcd: &Etcd, node: &Node, key: &str, value: &str) {
    let mut put = etcd.etcdctl_from(node);
    put.args(["put", key, value]);
    ok(bounded(put), &format!("etcdctl put from {}", node.name()));
    let mut get = etcd.etcdctl_from(node);
    get.args(["get", "--print-value-only", key]);
    let out = ok(bounded(get), &format!("etcdctl get from {}", node.name()));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), value);
}

fn put_works(etcd: &Etcd, node: &Node) -> bool {
    let mut put = etcd.etcdctl_from(node);
    put.args(["put", "probe", node.name()]);
    bounded(put).is_some_and(|o| o.status.success())
}

/// What must be gone once the fixtures are dropped.
struct Leftovers {
    netns: Vec<String>,
    cgroups: Vec<PathBuf>,
    pids: Vec<i32>,
}

impl Leftovers {
    fn check(&self) {
        for ns in &self.netns {
            assert!(
                !Path::new("/run/netns").join(ns).exists(),
                "netns {ns} left behind"
            );
        }
        for cg in &self.cgroups {
            assert!(!cg.exists(), "cgroup {} left behind", cg.display());
        }
        for &pid in &self.pids {
            assert!(!alive(pid), "process {pid} left behind");
        }
    }
}

fn host_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo")
}

#[test]
fn three_member_etcd_through_the_lan_with_partition_and_member_loss() {
    require_root();
    let lan = Lan::new();
    let mut etcd = Etcd::start(&lan, 3);
    let n1 = Node::new(&lan, "n1", 1);
    let n2 = Node::new(&lan, "n2", 2);
    assert_eq!(etcd.endpoints().len(), 3);
    assert!(etcd.endpoints()[0].starts_with("http://10."));

    // The test's own etcdctl (from the client namespace) and each node's reach the cluster.
    let mut put = etcd.etcdctl();
    put.args(["put", "/rig/hello", "world"]);
    ok(bounded(put), "etcdctl put from the client namespace");
    put_get(&etcd, &n1, "/rig/n1", "one");
    put_get(&etcd, &n2, "/rig/n2", "two");

    // A partition: n1 cannot reach etcd, n2 still can; healing restores n1.
    n1.cut();
    let mut put = etcd.etcdctl_from(&n1);
    put.args(["put", "/rig/cut", "x"]);
    let out = bounded(put);
    assert!(
        out.as_ref().is_none_or(|o| !o.status.success()),
        "a put from a cut node succeeded: {}",
        out.as_ref().map(describe).unwrap_or_default()
    );
    put_get(&etcd, &n2, "/rig/n2", "still");
    n1.heal();
    wait_until(BOUND, "n1 reaches etcd after heal", || {
        put_works(&etcd, &n1)
    });
    put_get(&etcd, &n1, "/rig/n1", "back");

    // Losing a member (the leader, the harder case) leaves a healthy 2/3 cluster.
    let leader = etcd.leader().expect("a 3-member cluster has a leader");
    let leader_pid = etcd.pid(leader).expect("the leader runs") as i32;
    etcd.kill_member(leader);
    assert!(!alive(leader_pid), "the killed member still runs");
    etcd.wait_healthy();
    assert_eq!(etcd.live_members().len(), 2);
    put_get(&etcd, &n1, "/rig/after-loss", "1");
    put_get(&etcd, &n2, "/rig/after-loss", "2");
    wait_until(BOUND, "a new leader", || {
        etcd.leader().is_some_and(|l| l != leader)
    });
    etcd.restart_member(leader);
    assert_eq!(etcd.live_members().len(), 3);
    let mut get = etcd.etcdctl_at(&[etcd.endpoint(leader)]);
    get.args(["get", "--print-value-only", "/rig/after-loss"]);
    let out = ok(bounded(get), "get from the restarted member");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");

    let left = Leftovers {
        netns: [lan.netns(), n1.netns(), n2.netns()]
            .iter()
            .map(|n| n.name.clone())
            .chain((0..3).map(|i| etcd.member_netns(i).name.clone()))
            .collect(),
        cgroups: [&n1, &n2]
            .iter()
            .filter_map(|n| n.cgroup_dir().map(Path::to_path_buf))
            .collect(),
        pids: (0..3)
            .filter_map(|i| etcd.pid(i).map(|p| p as i32))
            .chain(
                [&n1, &n2]
                    .iter()
                    .filter_map(|n| n.holder_pid().map(|p| p as i32)),
            )
            .collect(),
    };
    assert_eq!(left.pids.len(), 5, "3 members and 2 holders run");
    drop(n1);
    drop(n2);
    drop(etcd);
    drop(lan);
    left.check();
}

#[test]
fn mounts_are_private_to_a_node_and_the_lun_is_shared() {
    require_root();
    let lan = Lan::new();
    let lun = SharedLun::new(16);
    let mut a = Node::new(&lan, "a", 1);
    let b = Node::new(&lan, "b", 2);
    let dev = lun.dev().to_str().expect("utf-8").to_string();
    // Both nodes see the LUN (a loop device is global, like a SAN LUN).
    for n in [&a, &b] {
        n.run("test", &["-b", &dev]);
    }

    let mnt_a = a.path("mnt");
    std::fs::create_dir_all(&mnt_a).expect("mkdir");
    let mnt_a_s = mnt_a.to_str().expect("utf-8").to_string();
    a.run("mount", &[&dev, &mnt_a_s]);
    // The mount lives in a's namespace: seen by a's holder and by later commands on a.
    assert!(a.has_mount(lun.dev()) && a.has_mount(&mnt_a));
    a.run("sh", &["-c", &format!("echo from-a > {mnt_a_s}/f")]);
    let out = a.run("cat", &[&format!("{mnt_a_s}/f")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-a");
    a.run("mountpoint", &["-q", &mnt_a_s]);
    // Not in b's, not on the host.
    assert!(!b.has_mount(lun.dev()) && !b.has_mount(&mnt_a));
    let out = b.run_any("mountpoint", &["-q", &mnt_a_s]);
    assert!(!out.status.success(), "the mount is visible on b");
    assert!(
        !host_mountinfo().contains(&dev),
        "the mount is visible on the host"
    );
    assert!(!Path::new(&format!("{mnt_a_s}/f")).exists());

    // A node's death takes its mounts with it: b can then mount the LUN and read a's file.
    a.kill();
    assert!(!a.has_mount(lun.dev()));
    let mnt_b = b.path("mnt");
    std::fs::create_dir_all(&mnt_b).expect("mkdir");
    let mnt_b_s = mnt_b.to_str().expect("utf-8").to_string();
    // e2fsck sees a clean-enough journal; the kernel may need a moment to drop a's superblock.
    wait_until(BOUND, "b mounts the LUN after a died", || {
        b.run_any("mount", &[&dev, &mnt_b_s]).status.success()
    });
    let out = b.run("cat", &[&format!("{mnt_b_s}/f")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-a");
    assert!(b.has_mount(lun.dev()));
    b.run("umount", &[&mnt_b_s]);

    // A restarted node has a fresh mount namespace, without the old mount.
    let old_holder = a.holder_pid();
    a.restart();
    assert_ne!(a.holder_pid(), old_holder);
    assert!(!a.has_mount(lun.dev()));
    let out = a.run_any("mountpoint", &["-q", &mnt_a_s]);
    assert!(!out.status.success(), "a's old mount survived its death");

    // A mount another test holds on the host when a node is born is not copied into the
    // node's namespace (where the host's umount would not reach it and its device would stay
    // busy).
    let foreign = tempfile::Builder::new()
        .prefix("rgforeign")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let foreign_s = foreign.path().to_str().expect("utf-8").to_string();
    berth_testkit::run("mount", &["-t", "tmpfs", "rgforeign", &foreign_s]);
    let c = Node::new(&lan, "c", 3);
    let seen = c.has_mount(foreign.path());
    berth_testkit::run("umount", &[&foreign_s]);
    assert!(
        !seen,
        "a node's namespace holds a host mount made before it"
    );
    assert!(c.has_mount(Path::new("/")), "the probe reads c's mounts");
    drop(c);

    let image = lun.image();
    let left = Leftovers {
        netns: [lan.netns(), a.netns(), b.netns()]
            .iter()
            .map(|n| n.name.clone())
            .collect(),
        cgroups: [&a, &b]
            .iter()
            .filter_map(|n| n.cgroup_dir().map(Path::to_path_buf))
            .collect(),
        pids: [&a, &b]
            .iter()
            .filter_map(|n| n.holder_pid().map(|p| p as i32))
            .collect(),
    };
    drop(a);
    drop(b);
    drop(lun);
    drop(lan);
    left.check();
    let loops = std::fs::read_dir("/sys/block").expect("/sys/block");
    for e in loops.flatten() {
        let backing =
            std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        assert!(
            !backing.contains(image.to_str().expect("utf-8")),
            "loop device {:?} still backs the LUN image",
            e.file_name()
        );
    }
}

#[test]
fn kill_takes_every_process_of_the_node_and_restart_boots_it_again() {
    require_root();
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let mut n = Node::new(&lan, "n1", 1);
    let peer = Node::new(&lan, "n2", 2);
    put_get(&etcd, &n, "/rig/k", "before");
    assert_eq!(etcd.leader(), Some(0));

    // Processes started through command(), one of them with children of its own.
    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(n.command("sleep").arg("1000").spawn().expect("spawn sleep"));
    }
    children.push(
        n.command("sh")
            .args(["-c", "sleep 1000 & sleep 1000 & wait"])
            .spawn()
            .expect("spawn sh"),
    );
    wait_until(BOUND, "the sh's two sleeps are in the cgroup", || {
        n.pids().len() >= 6
    });
    let pids = n.pids();
    for c in &children {
        assert!(
            pids.contains(&(c.id() as i32)),
            "{} not in the cgroup",
            c.id()
        );
    }
    let holder = n.holder_pid().expect("holder") as i32;
    assert!(pids.contains(&holder));
    // An address a service would have added, and the node's own, seen by the probes.
    let service_ip: Ipv4Addr = lan.host(150);
    n.run(
        "ip",
        &["addr", "add", &format!("{service_ip}/24"), "dev", "eth0"],
    );
    assert!(n.has_addr(service_ip) && !peer.has_addr(service_ip));
    let cgroup = n.cgroup_dir().expect("cgroup").to_path_buf();

    n.kill();
    for &pid in &pids {
        assert!(!alive(pid), "process {pid} survived the node's death");
    }
    for mut c in children {
        let status = c.wait().expect("reap");
        assert!(!status.success());
    }
    assert!(!cgroup.exists(), "the dead node's cgroup is still there");
    assert!(n.holder_pid().is_none() && n.pids().is_empty());
    assert!(
        !n.has_addr(service_ip),
        "a dead node still holds a service address"
    );
    assert!(n.has_addr(n.addr()));
    // Its port on the bridge is down: its eth0 has no carrier.
    let link = berth_testkit::run("ip", &["-n", &n.netns().name, "-o", "link", "show", "eth0"]);
    let link = String::from_utf8_lossy(&link.stdout).to_string();
    assert!(
        link.contains("NO-CARRIER"),
        "a dead node's link is up: {link}"
    );

    n.restart();
    assert!(n.holder_pid().is_some_and(|p| p as i32 != holder));
    let cg = n
        .cgroup_dir()
        .expect("a restarted node has a cgroup")
        .to_path_buf();
    let mut c = n.command("sleep").arg("1000").spawn().expect("spawn");
    assert!(n.pids().contains(&(c.id() as i32)));
    wait_until(BOUND, "the restarted node reaches etcd", || {
        put_works(&etcd, &n)
    });
    put_get(&etcd, &n, "/rig/k", "after");

    // A stand-in svcd (a script: svcd lives in another crate): spawn_svcd runs it inside the
    // node with its output in the log; kill_svcd kills that pid only.
    let script = n.path("fake-svcd");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"svcd-standin $BERTH_NODENAME $BERTH_CONFIG_DIR\" >&2\nexec sleep 1000\n",
    )
    .expect("write script");
    berth_testkit::run("chmod", &["+x", script.to_str().expect("utf-8")]);
    n.spawn_svcd(script.to_str().expect("utf-8"));
    let svcd = n.svcd_pid().expect("svcd runs") as i32;
    wait_until(BOUND, "the stand-in svcd logs", || {
        n.svcd_log().contains("svcd-standin n1 ")
    });
    assert!(
        n.svcd_log()
            .contains(n.config_dir().to_str().expect("utf-8"))
    );
    assert!(n.pids().contains(&svcd));
    n.kill_svcd();
    assert!(!alive(svcd) && n.svcd_pid().is_none());
    assert!(
        alive(c.id() as i32),
        "kill_svcd killed another process of the node"
    );
    let _ = c.kill();
    let _ = c.wait();

    let etcd_pid = etcd.pid(0).expect("member runs") as i32;
    let left = Leftovers {
        netns: vec![n.netns().name.clone(), lan.netns().name.clone()],
        cgroups: vec![cg],
        pids: vec![etcd_pid, n.holder_pid().expect("holder") as i32],
    };
    drop(n);
    drop(peer);
    drop(etcd);
    drop(lan);
    left.check();
}

#[test]
fn sampler_sees_a_clean_move_and_an_overlap() {
    require_root();
    let lan = Lan::new();
    let n1 = Node::new(&lan, "n1", 1);
    let n2 = Node::new(&lan, "n2", 2);
    let ip = lan.host(120);
    let cidr = format!("{ip}/24");
    let add = |n: &Node| n.run("ip", &["addr", "add", &cidr, "dev", "eth0"]);
    let del = |n: &Node| n.run("ip", &["addr", "del", &cidr, "dev", "eth0"]);

    // A clean move n1 -> n2: never on both.
    add(&n1);
    let sampler = Sampler::start(vec![
        ("n1".to_string(), n1.addr_probe(ip)),
        ("n2".to_string(), n2.addr_probe(ip)),
    ]);
    sampler.wait_samples(2);
    del(&n1);
    let moved_at = sampler.elapsed();
    sampler.wait_samples(2);
    add(&n2);
    sampler.wait_samples(2);
    let t = sampler.stop();
    assert_eq!(t.max_concurrent_up(), 1, "{t}");
    assert!(
        t.first_up("n1").is_some() && t.last_up("n2") && !t.last_up("n1"),
        "{t}"
    );
    assert!(t.first_up_after("n2", moved_at).is_some(), "{t}");
    assert!(t.first_up_after("n1", moved_at).is_none(), "{t}");

    // An overlap held while the sampler takes two samples is seen.
    let sampler = Sampler::start(vec![
        ("n1".to_string(), n1.addr_probe(ip)),
        ("n2".to_string(), n2.addr_probe(ip)),
    ]);
    add(&n1);
    sampler.wait_samples(2);
    del(&n1);
    let t = sampler.stop();
    assert_eq!(t.max_concurrent_up(), 2, "{t}");
    assert!(!t.overlaps().is_empty());
    println!("{t}");

    // The mount probe follows the node's mount namespace.
    let lun = SharedLun::new(16);
    let mnt = n2.path("m");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let sampler = Sampler::start(vec![
        ("n1".to_string(), n1.mount_probe(lun.dev())),
        ("n2".to_string(), n2.mount_probe(lun.dev())),
    ]);
    n2.run(
        "mount",
        &[
            lun.dev().to_str().expect("utf-8"),
            mnt.to_str().expect("utf-8"),
        ],
    );
    sampler.wait_samples(2);
    n2.run("umount", &[mnt.to_str().expect("utf-8")]);
    let t = sampler.stop();
    assert_eq!(t.max_concurrent_up(), 1, "{t}");
    assert!(
        t.first_up("n2").is_some() && t.first_up("n1").is_none(),
        "{t}"
    );
}
