//! The durable membership on a real etcd (root): a node is a member from its first join until
//! `svc node forget`, refused while the node holds a lease; a dead node stays a member with
//! `hb` down (no service names it, so only the membership keeps it in `svc mon`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Rig, Spec, get_json, svc, svc_ok};

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

/// The nodes `node` publishes for service `svc` in its node record (read on the host).
fn published_nodes(rig: &Rig, node: &str, svc: &str) -> Option<Vec<String>> {
    let out = rig
        .etcd
        .etcdctl()
        .args([
            "get",
            "--print-value-only",
            &format!("/berth/t/nodes/{node}"),
        ])
        .output()
        .expect("etcdctl");
    assert!(out.status.success(), "{}", describe(&out));
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let nodes = rec["services"][svc]["nodes"].as_array()?;
    Some(
        nodes
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
    )
}

fn wait_published(rig: &Rig, node: &str, svc: &str, want: &[String]) {
    wait_until(
        Duration::from_secs(15),
        &format!("{node} publishes {svc} with nodes {want:?}"),
        || published_nodes(rig, node, svc).is_some_and(|n| n == want),
    );
}

#[test]
fn a_dead_node_stays_a_member_until_forgotten_and_forget_is_refused_while_it_holds_a_lease() {
    let mut rig = Rig::new(Spec {
        nodes: 3,
        services: 0,
        ..Spec::default()
    });
    // The rig's etcd compacts (its own start log says so; etcd 3.4 logs the revision count
    // 1000 as a duration of 1000 ns, "1µs"; "0s" would mean off).
    let log = rig.etcd.member_log(0);
    assert!(
        log.contains("\"auto-compaction-mode\":\"revision\",\"auto-compaction-retention\":\"1µs\""),
        "{log}"
    );
    // svcd joins after it is ready: the three boot close together, in any join order.
    let order = members_in_etcd(&rig);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, ["n1", "n2", "n3"]);
    let without_n3: Vec<String> = order.iter().filter(|n| *n != "n3").cloned().collect();
    let rejoined: Vec<String> = without_n3
        .iter()
        .cloned()
        .chain(["n3".to_string()])
        .collect();
    // `nodes = "*"` (TOML) and `{clusternodes}` (INI) are the members, in join order.
    for n in &rig.nodes {
        n.write_service("star.toml", "[service]\nnodes = \"*\"\n");
        n.write_service("ini.conf", "[DEFAULT]\nnodes = {clusternodes}\n");
        n.write_service("pinned.toml", "[service]\nnodes = [\"n1\"]\n");
    }
    wait_published(&rig, "n1", "star", &order);
    wait_published(&rig, "n2", "ini", &order);
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
        err.contains(&format!(
            "node n9 is not a member of cluster t (members: {})",
            order.join(", ")
        )),
        "{err}"
    );
    // Which node: a usage error.
    let out = svc(n1, &["node", "forget"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(members_in_etcd(&rig), order);

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
    assert_eq!(members_in_etcd(&rig), order);
    // Why each node does not run a service: in svc mon's JSON and svcd's GET /cluster.
    wait_until(Duration::from_secs(15), "svc mon says why", || {
        let mon = rig.mon();
        let why = &mon["services"]["star"]["why"];
        why["n3"] == "hb down"
            && why["n1"] == "no owner: not started"
            && mon["services"]["pinned"]["why"]["n2"] == "not in nodes"
    });
    wait_until(Duration::from_secs(15), "GET /cluster says why", || {
        get_json(rig.node("n2"), "/cluster").is_some_and(|(code, c)| {
            code == 200
                && c["services"]["star"]["why"]["n3"] == "hb down"
                && c["services"]["pinned"]["why"]["n2"] == "not in nodes"
        })
    });
    // A dead member stays in `nodes = "*"`.
    wait_published(&rig, "n1", "star", &order);

    // Now it can be forgotten: gone from etcd and from svc mon.
    let n1 = rig.node("n1");
    let out = svc_ok(n1, &["node", "forget", "n3"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("n3: no longer a member of cluster t"),
        "{}",
        describe(&out)
    );
    assert_eq!(members_in_etcd(&rig), without_n3);
    wait_published(&rig, "n1", "star", &without_n3);
    wait_published(&rig, "n2", "ini", &without_n3);
    wait_published(&rig, "n1", "ini", &without_n3);
    wait_published(&rig, "n2", "star", &without_n3);
    let mon = rig.mon();
    assert!(mon["nodes"].get("n3").is_none(), "{mon}");

    // Its svcd comes back: it joins again, last in the join order.
    let i = rig.index("n3");
    rig.boot(i);
    rig.wait_alive("n3");
    assert_eq!(members_in_etcd(&rig), rejoined);
    wait_published(&rig, "n1", "star", &rejoined);
    wait_published(&rig, "n3", "star", &rejoined);
}
