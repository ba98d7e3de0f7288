//! The cluster on a real etcd (root): svcd and svc on rig nodes (`berth_testkit::cluster`), an
//! ip + fs service on a shared LUN. Ownership, refusal naming the owner, switch, sampled so the
//! service is never up on two nodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Rig, Spec, svc, svc_ok};

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
