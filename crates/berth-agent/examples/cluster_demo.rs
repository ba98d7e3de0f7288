//! The cluster demo (`scripts/demo-cluster.sh`): three berth nodes on this host, each in its own
//! network namespace, mount namespace and cgroup, a 3-member etcd from Debian's etcd-server, and
//! one HA service (an address and a filesystem on a shared loop LUN). It shows `svc mon`, a
//! `switch`, then kills the owner node and shows the failover. Everything it made is removed at
//! the end, also when it fails (the rig's `Drop`). Root only; touches nothing of the host's
//! network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_testkit::cluster::{Etcd, Lan, Node, SharedLun, wait_until};

fn bin(name: &str) -> String {
    let exe = std::env::current_exe().expect("own path");
    // target/debug/examples/cluster_demo -> target/debug/NAME
    let p: PathBuf = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: cargo build -p berth-cli -p berth-agent",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn run(node: &Node, args: &[&str]) -> String {
    println!("\n[{}]$ svc {}", node.name(), args.join(" "));
    let out = node.svc(&bin("svc")).args(args).output().expect("svc");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn up_on(node: &Node, ip: std::net::Ipv4Addr, lun: &SharedLun) -> bool {
    node.has_addr(ip) && node.has_mount(lun.dev())
}

fn main() {
    berth_testkit::require_root();
    let lan = Lan::new();
    println!("etcd: 3 members on a private lan (namespaces), starting...");
    let etcd = Etcd::start(&lan, 3);
    let lun = SharedLun::new(32);
    let mnt = tempfile::Builder::new()
        .prefix("bdemo")
        .tempdir_in("/tmp")
        .unwrap();
    let ip = lan.host(100);
    let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    let mut nodes: Vec<Node> = (1..=3u8)
        .map(|i| Node::new(&lan, &format!("n{i}"), i))
        .collect();
    for n in &mut nodes {
        n.write_node_toml(&format!(
            "listen = \"{}:1215\"\nmonitor_interval = \"2s\"\n\n[cluster]\nname = \"demo\"\n\
             etcd = [{}]\nlease_ttl = \"3s\"\nready_period = \"1s\"\n",
            n.addr(),
            eps.join(", ")
        ));
        n.write_service(
            "web.toml",
            &format!(
                "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\norchestrate = \"ha\"\napp = \"DEMO\"\n\n\
                 [ip.1]\nipname = \"{ip}\"\nipdev = \"eth0\"\nnetmask = 24\n\n[fs.1]\n\
                 dev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                lun.dev().display(),
                mnt.path().display()
            ),
        );
        // A flex service: one instance on each of two of the three nodes (a flag marks it up).
        n.write_service(
            "dns.toml",
            "[service]\nnodes = \"*\"\ntopology = \"flex\"\nflex_target = 2\norchestrate = \"ha\"\n\n\
             [fs.flag]\ntype = \"flag\"\n",
        );
        n.spawn_svcd(&bin("svcd"));
        n.wait_svcd_ready();
    }
    let dns = |nodes: &[Node]| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.holder_pid().is_some() && n.run_dir().join("dns/flags/fs#flag").exists())
            .map(|n| n.name().to_string())
            .collect()
    };
    println!("3 nodes up; the orchestrator starts web on the first node of `nodes`...");
    wait_until(Duration::from_secs(30), "web up on n1", || {
        up_on(&nodes[0], ip, &lun)
    });
    wait_until(Duration::from_secs(30), "two dns instances", || {
        dns(&nodes).len() == 2
    });
    println!("dns (flex, target 2) runs on {:?}", dns(&nodes));
    run(&nodes[0], &["mon"]);
    run(&nodes[1], &["web", "print", "status"]);
    run(&nodes[2], &["web", "switch", "--to", "n2"]);
    run(&nodes[0], &["mon"]);
    println!("\nn2 dies (every process of it killed at once)...");
    let t0 = Instant::now();
    nodes[1].kill();
    wait_until(Duration::from_secs(30), "web failed over", || {
        up_on(&nodes[0], ip, &lun) || up_on(&nodes[2], ip, &lun)
    });
    println!(
        "web is up again {:.1}s after the kill",
        t0.elapsed().as_secs_f64()
    );
    wait_until(Duration::from_secs(30), "two dns instances again", || {
        let live = dns(&nodes);
        live.len() == 2 && !live.contains(&"n2".to_string())
    });
    println!(
        "dns runs on {:?} again, {:.1}s after the kill",
        dns(&nodes),
        t0.elapsed().as_secs_f64()
    );
    run(&nodes[0], &["mon"]);
    println!("\ndone: removing the nodes, etcd and the LUN");
    drop(nodes);
    drop(etcd);
}
