//! The cluster on a real etcd (root): svcd and svc on rig nodes (`berth_testkit::cluster`), an
//! ip + fs service on a shared LUN. Ownership, refusal naming the owner, switch, sampled so the
//! service is never up on two nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Rig, Spec, svc, svc_ok};

use berth_testkit::cluster::wait_until;
use berth_testkit::describe;

#[test]
fn start_is_refused_on_a_node_that_does_not_own_the_service_and_switch_moves_it() {
    let rig = Rig::new(Spec::default());
    let sampler = rig.sampler("web");
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));
    svc_ok(n1, &["web", "start"]);
    assert!(rig.up_on("n1", "web"));
    let (owner, token) = rig.owner("web");
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
    assert!(rig.where_up("web").iter().all(|n| n == "n1"));

    // print status has the cluster rows.
    let out = svc(n1, &["web", "print", "status", "--format", "json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["hb"], "up", "{st}");
    assert_eq!(st["sync"], "up", "{st}");
    assert_eq!(st["cluster"]["owner"], "n1", "{st}");

    // Switch back and forth, from either node; the token grows each time.
    for round in 0..10 {
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
        assert!(
            rig.up_on(to, "web") && !rig.up_on(from, "web"),
            "round {round}"
        );
        let (owner, t) = rig.owner("web");
        assert_eq!(owner.as_deref(), Some(to));
        let t = t.unwrap();
        assert!(t > token, "token {t} after {token}");
        token = t;
    }
    let timeline = sampler.stop();
    assert_eq!(timeline.max_concurrent_up(), 1, "{timeline}");

    // Each node's `svc web logs` says what its svcd did for the switches, and why.
    let logs = |n| String::from_utf8_lossy(&svc_ok(n, &["web", "logs"]).stdout).into_owned();
    let (l1, l2) = (logs(n1), logs(n2));
    for (log, me, other) in [(&l1, "n1", "n2"), (&l2, "n2", "n1")] {
        for line in [
            format!("svcd switch: stop on {me}: switch to {other} asked by "),
            format!("svcd switch: handed to {other} (fencing token "),
            format!(
                "svcd orchestrator: start on {me}: switch from {other}: handed to {me}, asked by "
            ),
            "svcd orchestrator: start done".to_string(),
        ] {
            assert!(log.contains(&line), "{me}: no {line:?} in:\n{log}");
        }
    }
    svc_ok(n1, &["web", "stop"]);
    assert_eq!(rig.owner("web").0, None);
}

/// Placement of N `orchestrate = "start"` services runs N starts, not more (counted in every
/// node's service logs), whatever the number of etcd changes meanwhile; an operator's stop
/// right after the orchestrator placed each service holds (no queued start brings it back);
/// and a node that never acted on them (its only check ran before it joined the cluster, the
/// next is 60 s away) shows their `hb` and `sync` rows from svcd's cache, as `--refresh` does.
#[test]
fn placement_runs_one_start_per_service_and_an_operators_stop_right_after_holds() {
    const N: usize = 16;
    let names: Vec<String> = (0..N).map(|i| format!("s{i:02}")).collect();
    let rig = Rig::new(Spec {
        services: 0,
        ip_services: names.clone(),
        ip_service_extra: "orchestrate = \"start\"\n".to_string(),
        monitor_interval: "60s".to_string(),
        ..Spec::default()
    });
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));

    // n2's cached tree carries the cluster rows.
    for name in &names {
        wait_until(
            Duration::from_secs(15),
            &format!("n2's cached status of {name} has hb and sync up"),
            || {
                let out = svc(n2, &[name, "print", "status", "--format", "json"]);
                serde_json::from_slice::<serde_json::Value>(&out.stdout)
                    .is_ok_and(|st| st["hb"] == "up" && st["sync"] == "up")
            },
        );
    }

    // Stop each service as soon as the orchestrator placed it (its owner key is there).
    let mut stopped = std::collections::BTreeSet::new();
    wait_until(Duration::from_secs(60), "every service placed", || {
        let mon = rig.mon();
        for name in &names {
            if stopped.contains(name) {
                continue;
            }
            if let Some(owner) = mon["services"][name]["owner"].as_str() {
                svc_ok(rig.node(owner), &[name, "stop"]);
                stopped.insert(name.clone());
            }
        }
        stopped.len() == N
    });

    // They stay stopped: sampled for 5 s, no address of theirs on any node, no owner.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for name in &names {
            let ip = rig.ip_of(name);
            for n in [n1, n2] {
                assert!(
                    !n.has_addr(ip),
                    "{name} is up again on {} after its stop:\n{}",
                    n.name(),
                    rig.logs()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mon = rig.mon();
    for name in &names {
        assert!(mon["services"][name]["owner"].is_null(), "{name}: {mon}");
    }

    // N starts, not more: one per service, on one node.
    let mut decided = 0;
    let mut done = 0;
    for n in [n1, n2] {
        for name in &names {
            let log = String::from_utf8_lossy(&svc_ok(n, &[name, "logs"]).stdout).into_owned();
            decided += log.matches("svcd orchestrator: start on ").count();
            done += log.matches("svcd orchestrator: start done").count();
        }
    }
    assert_eq!((decided, done), (N, N), "{}", rig.logs());
}
