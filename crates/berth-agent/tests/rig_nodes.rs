//! The multi-node rig (`berth_testkit::cluster`) with the real `svcd` and `svc` (root): two
//! nodes on a lan, each with its svcd, one ip + fs service on a shared LUN moved by hand between
//! them (no `[cluster]`: this checks the rig under the binaries, not the cluster logic).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use berth_model::status::{ServiceStatus, Status};
use berth_testkit::cluster::{Lan, Node, Sampler, SharedLun, wait_until};
use berth_testkit::require_root;

mod common;
use common::{PORT, SVCD, svc_ok};

/// `GET path` from inside `from` to `to`'s svcd; `None` when it cannot connect.
fn get(from: &Node, to: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = from.tcp_connect(to, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, buf[head_end + 4..].to_vec()))
}

fn avail(from: &Node, to: SocketAddr) -> Status {
    let (code, body) = get(from, to, "/status/web").expect("svcd answers");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let s: ServiceStatus = serde_json::from_slice(&body).unwrap();
    s.avail
}

#[test]
fn a_service_moved_by_hand_between_two_rig_nodes_with_their_svcd() {
    require_root();
    let lan = Lan::new();
    let lun = SharedLun::new(16);
    let mnt = tempfile::Builder::new()
        .prefix("rgsrv")
        .tempdir_in("/tmp")
        .unwrap();
    let ip = lan.host(100);
    let mut nodes = [Node::new(&lan, "n1", 1), Node::new(&lan, "n2", 2)];
    let mut listen = Vec::new();
    for n in &mut nodes {
        n.write_node_toml(&format!("listen = \"{}:{PORT}\"\n", n.addr()));
        n.write_service(
            "web.toml",
            &format!(
                "[service]\nnodes = [\"n1\", \"n2\"]\n\n[ip.1]\nipname = \"{ip}\"\nipdev = \"eth0\"\n\
                 netmask = 24\nprobe_timeout = \"200ms\"\n\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\n\
                 type = \"ext4\"\n",
                lun.dev().display(),
                mnt.path().display()
            ),
        );
        n.spawn_svcd(SVCD);
        let at = n.wait_svcd_ready();
        assert_eq!(at, SocketAddr::from((n.addr(), PORT)));
        listen.push(at);
    }
    let [n1, n2] = &mut nodes;
    // Each svcd is reachable from the other node over the lan.
    assert_eq!(get(n1, listen[1], "/healthz").map(|r| r.0), Some(200));
    assert_eq!(get(n2, listen[0], "/healthz").map(|r| r.0), Some(200));

    let sampler = Sampler::start(vec![
        ("n1".to_string(), n1.ip_or_mount_probe(ip, lun.dev())),
        ("n2".to_string(), n2.ip_or_mount_probe(ip, lun.dev())),
    ]);
    svc_ok(n1, &["web", "start"]);
    assert!(n1.has_addr(ip) && n1.has_mount(lun.dev()) && n1.has_mount(mnt.path()));
    assert!(!n2.has_addr(ip) && !n2.has_mount(lun.dev()));
    assert!(
        !berth_testkit::mounted(mnt.path()),
        "the node's mount is visible on the host"
    );
    wait_until(Duration::from_secs(15), "n1's svcd sees web up", || {
        avail(n2, listen[0]) == Status::Up
    });
    sampler.wait_samples(2);

    // By hand: stop on n1, start on n2.
    svc_ok(n1, &["web", "stop"]);
    sampler.wait_samples(2);
    svc_ok(n2, &["web", "start"]);
    assert!(n2.has_addr(ip) && n2.has_mount(lun.dev()));
    assert!(!n1.has_addr(ip) && !n1.has_mount(lun.dev()));
    wait_until(Duration::from_secs(15), "n2's svcd sees web up", || {
        avail(n1, listen[1]) == Status::Up
    });

    // A partition of n2: its svcd is out of n1's reach, and back after healing.
    n2.cut();
    assert!(get(n1, listen[1], "/healthz").is_none());
    n2.heal();
    wait_until(Duration::from_secs(15), "n2's svcd reachable again", || {
        get(n1, listen[1], "/healthz").is_some_and(|r| r.0 == 200)
    });

    // n2 dies with the service up: its address and mount go with it, and n1 can take it.
    let killed_at = sampler.elapsed();
    n2.kill();
    assert!(!n2.has_addr(ip) && !n2.has_mount(lun.dev()));
    assert!(get(n1, listen[1], "/healthz").is_none());
    svc_ok(n1, &["web", "start"]);
    assert!(n1.has_addr(ip) && n1.has_mount(lun.dev()));
    sampler.wait_samples(2);
    let timeline = sampler.stop();
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");
    assert!(
        timeline.first_up("n2").is_some() && timeline.last_up("n1"),
        "{timeline}"
    );
    let back = timeline
        .first_up_after("n1", killed_at)
        .expect("n1 up after n2's death");
    println!(
        "n1 up {:?} after n2's death (svc start by hand)",
        back - killed_at
    );
    svc_ok(n1, &["web", "stop"]);
    println!("{timeline}");
}
