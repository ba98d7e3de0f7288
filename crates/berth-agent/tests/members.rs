//! The durable membership on a real etcd (root): a node is a member from its first join until
//! `svc node forget`, refused while the node holds a lease; a dead node stays a member with
//! `hb` down (no service names it, so only the membership keeps it in `svc mon`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rig, Spec, svc, svc_ok};

use berth_testkit::cluster::wait_until;
use berth_testkit::describe;

/// The member keys in etcd, in the order etcd created them (read on the host with etcdctl).
fn members_in_etcd(rig: &Rig) -> Vec<String> {
    let out = rig
        .etcd
        .etcdctl()
        .args([
            "get",
            "--prefix",
            "/berth/t/members/",
            "--keys-only",
            "--sort-by=CREATE",
            "--order=ASCEND",
        ])
        .output()
        .expect("etcdctl");
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("/berth/t/members/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_dead_node_stays_a_member_until_forgotten_and_forget_is_refused_while_it_holds_a_lease() {
    let mut rig = Rig::new(Spec {
        nodes: 3,
        services: 0,
        ..Spec::default()
    });
    assert_eq!(members_in_etcd(&rig), ["n1", "n2", "n3"]);
    let n1 = rig.node("n1");

    // Refused while n3's svcd holds its lease, naming the lease; nothing removed.
    let out = svc(n1, &["node", "forget", "n3"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node n3 holds lease"), "{err}");
    // A node that is no member: refused, naming the members.
    let out = svc(n1, &["node", "forget", "n9"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node n9 is not a member of cluster t (members: n1, n2, n3)"),
        "{err}"
    );
    // Which node: a usage error.
    let out = svc(n1, &["node", "forget"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(members_in_etcd(&rig), ["n1", "n2", "n3"]);

    // n3's svcd dies: its lease expires, it stays a member, shown with hb down.
    rig.node_mut("n3").kill_svcd();
    wait_until(
        Duration::from_secs(15),
        "svc mon shows n3 with hb down",
        || rig.mon()["nodes"]["n3"]["hb"] == "down",
    );
    let mon = rig.mon();
    assert_eq!(mon["nodes"]["n1"]["hb"], "up", "{mon}");
    assert_eq!(mon["nodes"]["n2"]["hb"], "up", "{mon}");
    assert_eq!(members_in_etcd(&rig), ["n1", "n2", "n3"]);

    // Now it can be forgotten: gone from etcd and from svc mon.
    let n1 = rig.node("n1");
    let out = svc_ok(n1, &["node", "forget", "n3"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("n3: no longer a member of cluster t"),
        "{}",
        describe(&out)
    );
    assert_eq!(members_in_etcd(&rig), ["n1", "n2"]);
    let mon = rig.mon();
    assert!(mon["nodes"].get("n3").is_none(), "{mon}");

    // Its svcd comes back: it joins again, last in the join order.
    let i = rig.index("n3");
    rig.boot(i);
    rig.wait_alive("n3");
    assert_eq!(members_in_etcd(&rig), ["n1", "n2", "n3"]);
}
