//! The cluster on a real etcd (root), the faults of issue 11: a switch whose stop fails, an
//! etcd member killed, a node cut off from etcd past its lease, `svc mon` with 3 nodes and 3
//! services and a dead node, `orchestrate = start` with the first node dead. svcd and svc on
//! rig nodes (`berth_testkit::cluster`), an ip + fs service on a shared LUN, sampled on every
//! node so it is never up on two.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use berth_testkit::cluster::wait_until;
use berth_testkit::pipe::{assert_quiet, into_closed_pipe};
use berth_testkit::{describe, grid_cells};
use common::{Rig, Spec, get_json, mon_json, svc, svc_bin, svc_ok};

/// Wait until `pid`'s working directory is `dir` (a holder settled in the mount).
fn wait_cwd(pid: u32, dir: &std::path::Path) {
    wait_until(
        Duration::from_secs(10),
        "the holder is in the mount",
        || std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == dir),
    );
}

#[test]
fn a_switch_whose_stop_fails_leaves_the_service_where_it_was() {
    // The fs stop gives up after 100 ms: below the TERM grace (200 ms), so a holder that ignores
    // TERM is never KILLed and keeps the mount busy: a real failing stop.
    let rig = Rig::new(Spec {
        fs_extra: "stop_timeout = \"100ms\"".to_string(),
        ..Spec::default()
    });
    let sampler = rig.sampler("web");
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));
    svc_ok(n1, &["web", "start"]);
    let (owner, token) = rig.owner("web");
    assert_eq!(owner.as_deref(), Some("n1"));
    let mnt = rig.service("web").mnt.path().to_path_buf();
    let mut holder = n1
        .command("sh")
        .args([
            "-c",
            &format!("trap '' TERM; cd {} && exec sleep 600", mnt.display()),
        ])
        .spawn()
        .expect("holder");
    wait_cwd(holder.id(), &mnt);

    let out = svc(n2, &["web", "switch", "--to", "n2", "--timeout", "30"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        describe(&out),
        rig.logs()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("n1: stopping web"), "{err}");
    assert!(err.contains("stop failed"), "{err}");
    assert!(err.contains("web stays on n1"), "{err}");
    assert!(err.contains("web is owned by n1"), "{err}");
    // Owner and token unchanged, nothing on n2, the fs still mounted on n1.
    assert_eq!(rig.owner("web"), (Some("n1".to_string()), token));
    assert!(!n2.has_addr(rig.service("web").ip) && !n2.has_mount(rig.service("web").lun.dev()));
    assert!(n1.has_mount(rig.service("web").lun.dev()));
    let v = mon_json(n2).unwrap();
    assert_eq!(v["services"]["web"]["owner"], "n1", "{v}");

    // Once the holder is gone the same switch goes through.
    let _ = holder.kill();
    let _ = holder.wait();
    let out = svc(n2, &["web", "switch", "--to", "n2", "--timeout", "30"]);
    assert!(out.status.success(), "{}\n{}", describe(&out), rig.logs());
    assert!(rig.up_on("n2", "web") && !rig.any_up_on("n1", "web"));
    let (owner, t) = rig.owner("web");
    assert_eq!(owner.as_deref(), Some("n2"));
    assert!(t.unwrap() > token.unwrap());
    let timeline = sampler.stop();
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");
}

/// The events of `GET /cluster` on `node` of the given kind.
fn events(node: &berth_testkit::cluster::Node, kind: &str) -> Vec<serde_json::Value> {
    let (_, v) = get_json(node, "/cluster").expect("GET /cluster");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn killing_an_etcd_member_moves_nothing_and_no_node_loses_its_lease() {
    let mut rig = Rig::new(Spec {
        members: 3,
        ..Spec::default()
    });
    let n1 = rig.node("n1");
    svc_ok(n1, &["web", "start"]);
    let (owner, token) = rig.owner("web");
    assert_eq!(owner.as_deref(), Some("n1"));
    let leases: Vec<serde_json::Value> = rig
        .nodes
        .iter()
        .map(|n| get_json(n, "/cluster").unwrap().1["lease"].clone())
        .collect();
    let sampler = rig.sampler("web");
    // A follower: the nodes' requests routed to it must go to the others. (The leader's death
    // costs an election during which etcd answers no keepalive for 1.3-2 s, plus up to one
    // renewal period before it: up to 2.6 s, past the self-fencing point of lease_ttl 3 s
    // (two thirds: 2 s), although the lease itself survives: the new leader renews every
    // lease for a full TTL. The HA tests' CTS loop covers the leader's death.)
    let leader = rig.etcd.leader().expect("an etcd leader");
    rig.etcd.kill_member((leader + 1) % 3);
    let until = std::time::Instant::now() + rig.ttl * 2;
    while std::time::Instant::now() < until {
        for (n, lease) in rig.nodes.iter().zip(&leases) {
            let (_, c) = get_json(n, "/cluster").expect("GET /cluster");
            assert_eq!(c["hb"], "up", "{}: {c}\n{}", n.name(), rig.logs());
            assert_eq!(&c["lease"], lease, "{}: {c}", n.name());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let timeline = sampler.stop();
    for n in &rig.nodes {
        for kind in ["fence_stop", "lease_lost", "fence_stopped"] {
            let ev = events(n, kind);
            assert!(ev.is_empty(), "{}: {ev:?}\n{}", n.name(), n.svcd_log());
        }
    }
    // Nothing moved: up on n1 in every sample, never on n2, same owner and token.
    assert!(
        timeline.samples.iter().all(|s| s.up == vec![true, false]),
        "{timeline}"
    );
    assert_eq!(rig.owner_from("n2", "web"), (Some("n1".to_string()), token));
    let v = mon_json(rig.node("n2")).unwrap();
    assert_eq!(v["nodes"]["n1"]["hb"], "up", "{v}");
    assert_eq!(v["nodes"]["n2"]["hb"], "up", "{v}");
}

#[test]
fn a_node_cut_off_from_etcd_stops_its_services_before_its_deadline_and_leaves_them_stopped() {
    let rig = Rig::new(Spec::default());
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));
    svc_ok(n1, &["web", "start"]);
    let (_, before) = get_json(n1, "/cluster").unwrap();
    let lease_before = before["lease"].clone();
    let ttl_ms = u64::try_from(rig.ttl.as_millis()).unwrap();
    let sampler = rig.sampler("web");
    sampler.wait_samples(2);
    let cut_ms = berth_cluster::now_ms();
    let cut_at = sampler.elapsed();
    n1.cut();

    // svcd says it stops before the deadline, and names it.
    wait_until(Duration::from_secs(10), "n1 logs its fence stop", || {
        n1.svcd_log().contains("before the deadline")
    });
    wait_until(Duration::from_secs(10), "web down on n1", || {
        !rig.any_up_on("n1", "web")
    });
    let log = n1.svcd_log();
    let line = log
        .lines()
        .find(|l| l.contains("before the deadline"))
        .unwrap();
    let deadline = line
        .split("before the deadline ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap();
    // Same fixed-width RFC 3339 form: the text order is the time order.
    let latest = berth_cluster::format_ms_precise(cut_ms + ttl_ms);
    assert!(
        deadline <= latest.as_str(),
        "deadline {deadline} after cut + ttl {latest}: {line}"
    );
    let stopped = events(n1, "fence_stopped");
    assert_eq!(stopped.len(), 1, "{stopped:?}\n{log}");
    let at = stopped[0]["at_ms"].as_u64().unwrap();
    assert!(
        at < cut_ms + ttl_ms,
        "stopped {}ms after the cut",
        at - cut_ms
    );

    // hb says so, in GET /cluster and in print status; the lease is lost past the deadline.
    wait_until(Duration::from_secs(10), "n1's hb down", || {
        get_json(n1, "/cluster").is_some_and(|(_, c)| c["hb"] == "down")
    });
    let out = svc(n1, &["web", "print", "status", "--format", "json"]);
    let st: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert!(st["hb"] == "warn" || st["hb"] == "down", "{st}");
    // n2 sees n1 go (lease expired), and does not take web (orchestrate = no).
    wait_until(Duration::from_secs(10), "n2 sees n1 dead", || {
        mon_json(n2).is_some_and(|v| v["nodes"]["n1"]["hb"] == "down")
    });

    // Healed: a new lease, and web stays stopped.
    n1.heal();
    wait_until(Duration::from_secs(15), "n1 rejoins", || {
        get_json(n1, "/cluster").is_some_and(|(_, c)| c["hb"] == "up" && c["lease"] != lease_before)
    });
    rig.wait_alive("n1");
    sampler.wait_samples(30);
    let timeline = sampler.stop();
    let i1 = timeline.names.iter().position(|n| n == "n1").unwrap();
    let last_up = timeline
        .samples
        .iter()
        .filter(|s| s.up[i1])
        .map(|s| s.at)
        .max()
        .unwrap();
    assert!(
        last_up < cut_at + rig.ttl,
        "web seen up on n1 at {last_up:?}, cut at {cut_at:?}\n{timeline}"
    );
    assert!(
        !timeline.last_up("n1") && !timeline.last_up("n2"),
        "{timeline}"
    );
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");
    assert_eq!(rig.owner("web").0, None);
}

#[test]
fn svc_mon_shows_three_nodes_and_three_services_and_a_dead_node() {
    let mut rig = Rig::new(Spec {
        nodes: 3,
        ip_services: vec!["db".to_string(), "app".to_string()],
        ..Spec::default()
    });
    for (svc_name, node) in [("web", "n1"), ("db", "n2"), ("app", "n3")] {
        svc_ok(rig.node(node), &[svc_name, "start"]);
    }
    svc_ok(rig.node("n1"), &["db", "freeze"]);
    let want = [("web", "n1"), ("db", "n2"), ("app", "n3")];
    wait_until(
        Duration::from_secs(15),
        "mon shows every service up on its owner",
        || {
            let Some(v) = mon_json(rig.node("n2")) else {
                return false;
            };
            want.iter().all(|(s, owner)| {
                let sv = &v["services"][*s];
                sv["owner"] == *owner
                    && ["n1", "n2", "n3"]
                        .iter()
                        .all(|n| sv["nodes"][*n]["avail"] == if n == owner { "up" } else { "down" })
            })
        },
    );
    let v = mon_json(rig.node("n3")).unwrap();
    for n in ["n1", "n2", "n3"] {
        assert_eq!(v["nodes"][n]["hb"], "up", "{v}");
    }
    assert_eq!(v["services"]["db"]["frozen"], true, "{v}");
    assert_eq!(v["services"]["web"]["frozen"], false, "{v}");
    assert!(v["services"]["web"]["token"].as_i64().is_some(), "{v}");

    // The grid: one row per service, one column per node, OpenSVC's marks.
    let out = svc_ok(rig.node("n1"), &["mon"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{text}"));
        let cells = line.split('|').nth(1).unwrap();
        cells.split_whitespace().map(str::to_string).collect()
    };
    let header: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("Services"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .collect();
    assert_eq!(header, ["n1", "n2", "n3"], "{text}");
    assert_eq!(row("hb"), ["up", "up", "up"], "{text}");
    assert_eq!(row("web"), ["O^", "X", "X"], "{text}");
    assert_eq!(row("db"), ["X^*", "O*", "X*"], "{text}");
    assert_eq!(row("app"), ["X^", "X", "O"], "{text}");

    // n3 dies: listed with hb down, its cells n/a, app owned by nobody once its lease expired.
    rig.node_mut("n3").kill();
    wait_until(Duration::from_secs(15), "mon shows n3 down", || {
        mon_json(rig.node("n1")).is_some_and(|v| v["nodes"]["n3"]["hb"] == "down")
    });
    let v = mon_json(rig.node("n1")).unwrap();
    assert!(v["services"]["app"]["owner"].is_null(), "{v}");
    assert_eq!(v["services"]["web"]["owner"], "n1", "{v}");
    assert!(v["services"]["web"]["nodes"]["n3"].is_null(), "{v}");
    let out = svc(rig.node("n1"), &["mon"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(grid_cells(&text, "hb"), ["up", "up", "down"], "{text}");
    assert!(text.contains("# n3: "), "{text}");
    assert_eq!(grid_cells(&text, "web"), ["O^", "X", "/"], "{text}");

    // `svc mon --watch | head -1`: it stops once its reader is gone, quietly (docs/cli.md).
    let mut watch = rig.node("n1").svc(svc_bin().to_str().unwrap());
    let o = into_closed_pipe(watch.args(["mon", "--watch"]), false);
    assert_quiet(&o, 0, "svc mon --watch");
}

#[test]
fn orchestrate_start_with_the_first_node_dead_starts_on_the_second_once() {
    // Frozen until the first node is dead: it cannot start it before.
    let mut rig = Rig::new(Spec {
        nodes: 3,
        service_extra: "orchestrate = \"start\"".to_string(),
        frozen: true,
        ..Spec::default()
    });
    let sampler = rig.sampler("web");
    rig.node_mut("n1").kill();
    svc_ok(rig.node("n2"), &["web", "thaw"]);
    wait_until(Duration::from_secs(20), "web up on n2", || {
        rig.up_on("n2", "web")
    });
    assert_eq!(rig.owner_from("n2", "web").0.as_deref(), Some("n2"));
    // A few orchestrator rounds more: nothing else starts.
    sampler.wait_samples(20);
    svc_ok(rig.node("n2"), &["web", "stop"]);
    assert!(!rig.any_up_on("n2", "web"));
    // Stopped by the operator (target = stopped): the orchestrator leaves it so.
    sampler.wait_samples(30);
    let timeline = sampler.stop();
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");
    assert_eq!(timeline.first_up("n1"), None, "{timeline}");
    assert_eq!(timeline.first_up("n3"), None, "{timeline}");
    let i2 = timeline.names.iter().position(|n| n == "n2").unwrap();
    let rises = timeline
        .samples
        .windows(2)
        .filter(|w| !w[0].up[i2] && w[1].up[i2])
        .count();
    assert_eq!(rises, 1, "web came up on n2 {rises} times\n{timeline}");
    assert!(!timeline.last_up("n2"), "{timeline}");
    let starts = rig
        .node("n2")
        .svcd_log()
        .matches("web: started on n2 (orchestrate)")
        .count();
    assert_eq!(starts, 1, "{}", rig.node("n2").svcd_log());
    assert!(!rig.node("n3").svcd_log().contains("started on n3"));
    let (owner, _) = rig.owner_from("n2", "web");
    assert_eq!(owner, None);
}
