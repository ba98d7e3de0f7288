//! berth-collector against real svcd processes on loopback (root): three nodes, one over TLS
//! with a read token and a certificate from a CA the test makes; events, stale nodes, the
//! chargeback of a docker service, a restart of the collector, bad answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use berth_testkit::grid_cells;
use common::*;

/// The element of the JSON array `list` whose `field` is `value`.
fn entry(list: &serde_json::Value, field: &str, value: &str) -> Option<serde_json::Value> {
    let all = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"));
    all.iter().find(|x| x[field] == value).cloned()
}

/// `berth-collector print status ARGS` against `c`.
fn print_status(c: &Collector, args: &[&str]) -> std::process::Output {
    std::process::Command::new(COLLECTOR)
        .arg("--config")
        .arg(&c.config)
        .args(["print", "status"])
        .args(args)
        .args(["--url", &format!("http://127.0.0.1:{}", c.port)])
        .output()
        .unwrap()
}

/// Three nodes, a collector polling them every 500 ms: every service shows with its node; a
/// `svc stop` shows as an event; a killed svcd turns its node stale and back when restarted;
/// a docker service's chargeback grows while its container runs; `print status` draws the grid.
#[test]
fn three_nodes_events_stale_and_chargeback() {
    let ca = Ca::new("berth test CA");
    let mut n1 = Node::new("n1", None);
    let mut n2 = Node::new("n2", None);
    let mut n3 = Node::new("n3", Some(&ca));
    n1.fs_service("web", "app = \"shop\"");
    n1.idle_service("db");
    n2.idle_service("web");
    n2.idle_service("cache");
    n3.docker_service("box", "crm");
    n1.svc(&["web", "start"]);
    n1.start();
    n2.start();
    n3.start();

    // The TLS node refuses reads without its token.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file);
    let token_file = dir.path().join("n3.token");
    std::fs::write(&token_file, READ_TOKEN).unwrap();
    let nodes = vec![
        ("n1".to_string(), n1.url(), String::new()),
        ("n2".to_string(), n2.url(), String::new()),
        (
            "n3".to_string(),
            n3.url(),
            format!("token_file = \"{}\"\n", token_file.display()),
        ),
    ];
    let db = dir.path().join("c.db");
    let c = Collector::start(dir.path(), &collector_toml(&db, Some(&ca_file), &nodes));

    // Every service with its node.
    let all_there = wait_for(Duration::from_secs(20), || {
        let v = c.json("/api/services");
        let s = v["services"].as_array().unwrap();
        let on = |svc: &str, node: &str| {
            s.iter()
                .any(|x| x["name"] == svc && !x["nodes"][node].is_null())
        };
        on("web", "n1") && on("web", "n2") && on("db", "n1") && on("cache", "n2") && on("box", "n3")
    });
    assert!(
        all_there.is_some(),
        "{}\n{}",
        c.get("/api/services").text(),
        c.get("/api/nodes").text()
    );
    let web = entry(&c.json("/api/services")["services"], "name", "web").unwrap();
    assert_eq!(web["app"], "shop");
    assert_eq!(web["nodes"]["n1"]["avail"], "up", "{web}");
    assert_eq!(web["nodes"]["n2"]["avail"], "down", "{web}");
    assert_eq!(web["running_on"], serde_json::json!(["n1"]));
    for n in ["n1", "n2", "n3"] {
        let node = c.node(n);
        assert_eq!(node["reachable"], true, "{node}");
        assert_eq!(node["stale"], false, "{node}");
    }

    // ETag on the big answers: asked again with it, nothing changed in between (the answer
    // holds no ages), 304. (Retried: a status may still be settling between the two GETs.)
    let revalidated = wait_for(Duration::from_secs(10), || {
        let r = c.get("/api/services");
        let tag = r.header("etag").unwrap().to_string();
        let again = get(c.port, "/api/services", &[("If-None-Match", &tag)]);
        again.code == 304 && again.body.is_empty()
    });
    assert!(revalidated.is_some(), "no 304 on /api/services");

    // One service's trees.
    let d = c.json("/api/services/web");
    assert_eq!(d["nodes"]["n1"]["status"]["resources"][0]["rid"], "fs#1");
    assert_eq!(c.get("/api/services/nope").code, 404);

    // svc stop on n1: an event up -> down.
    n1.svc(&["web", "stop"]);
    let took = wait_for(Duration::from_secs(10), || {
        has_event(
            &c.events("node=n1&service=web"),
            "n1",
            Some("web"),
            Some("up"),
            Some("down"),
        )
    });
    let took = took.unwrap_or_else(|| {
        panic!(
            "no event:\n{}\n{}",
            c.get("/api/events").text(),
            c.log_text()
        )
    });
    eprintln!("svc stop seen as an event after {took:?} (interval 500ms)");
    let ev = c.events("service=web&node=n1");
    assert!(
        ev.iter()
            .any(|e| e["resource"] == "fs#1" && e["old"] == "up" && e["new"] == "down"),
        "{ev:?}"
    );

    // print status: the grid, from the running collector.
    let out = print_status(&c, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grid = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{grid}");
    assert!(grid.starts_with("Nodes"), "{grid}");
    assert_eq!(grid_cells(&grid, "web"), ["X", "X", "/"], "{grid}");
    assert_eq!(grid_cells(&grid, "box"), ["/", "/", "O"], "{grid}");
    // In their columns.
    assert!(grid.lines().any(|l| l.ends_with("/     /     O")), "{grid}");
    assert!(!grid.contains('\x1b'), "no colours off a terminal");
    let out = print_status(&c, &["--format", "json"]);
    let fleet: berth_model::fleet::Fleet = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fleet.nodes.len(), 3);
    assert_eq!(
        fleet.services["box"].nodes["n3"].avail,
        berth_model::Status::Up
    );

    // The docker service's chargeback grows while its container runs.
    let hours = |c: &Collector| {
        let crm = entry(&c.json("/api/chargeback?by=app")["rows"], "key", "crm");
        crm.map(|r| {
            (
                r["container_hours"].as_f64().unwrap(),
                r["max_containers"].as_i64().unwrap(),
                r["max_images"].as_i64().unwrap(),
            )
        })
    };
    let mut first = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            first = hours(&c).filter(|h| h.0 > 0.0);
            first.is_some()
        })
        .is_some(),
        "no chargeback for crm: {}",
        c.get("/api/chargeback?by=app").text()
    );
    let (h1, containers, images) = first.unwrap();
    assert_eq!(containers, 1);
    assert!(images >= 1);
    assert!(
        wait_for(Duration::from_secs(10), || hours(&c).unwrap().0 > h1).is_some(),
        "container-hours did not grow past {h1}"
    );
    let by_service = c.json("/api/chargeback?by=service");
    assert!(by_service["total"]["container_hours"].as_f64().unwrap() > 0.0);
    assert_eq!(c.get("/api/chargeback?by=colour").code, 400);

    // A killed svcd: its node turns stale, and back when restarted on the same port.
    n2.kill();
    c.wait_stale("n2", true);
    let node = c.node("n2");
    assert!(
        node["reason"]
            .as_str()
            .unwrap_or("")
            .contains("connect to 127.0.0.1"),
        "{node}"
    );
    c.assert_node_moved("n2", "up", "stale", 1);
    // The other nodes are still polled.
    assert_eq!(c.node("n1")["reachable"], true);
    n2.start();
    c.wait_stale("n2", false);
    c.assert_node_moved("n2", "stale", "up", 3);
    assert_eq!(c.get("/healthz").code, 200);
    n3.svc(&["box", "stop"]);
}

/// A collector stopped and started again on the same database keeps its history and emits no
/// event twice; a change made while it was down is one event.
#[test]
fn restart_keeps_history_without_duplicates() {
    let mut n1 = Node::new("n1", None);
    n1.fs_service("web", "");
    n1.idle_service("db");
    n1.svc(&["web", "start"]);
    n1.start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let toml = collector_toml(&db, None, &[("n1".into(), n1.url(), String::new())]);
    let mut c = Collector::start(dir.path(), &toml);
    assert!(
        wait_for(Duration::from_secs(10), || c.events("").len() >= 2).is_some(),
        "{}",
        c.get("/api/events").text()
    );
    n1.svc(&["web", "stop"]);
    assert!(
        wait_for(Duration::from_secs(10), || has_event(
            &c.events(""),
            "n1",
            Some("web"),
            Some("up"),
            Some("down")
        ))
        .is_some()
    );
    let before = c.events("");
    c.stop();

    // A change while the collector is down.
    n1.svc(&["web", "start"]);
    let c = Collector::start(dir.path(), &toml);
    assert!(
        wait_for(Duration::from_secs(10), || c.events("").len()
            > before.len())
        .is_some(),
        "the change made while down is not seen: {}",
        c.get("/api/events").text()
    );
    // Several more polls: nothing else happens.
    std::thread::sleep(Duration::from_secs(2));
    let after = c.events("");
    let new: Vec<_> = after[..after.len() - before.len()].to_vec();
    assert_eq!(
        &after[new.len()..],
        &before[..],
        "the history is kept as it was"
    );
    let service_level: Vec<_> = new.iter().filter(|e| e.get("resource").is_none()).collect();
    assert_eq!(
        service_level.len(),
        1,
        "one service event, no duplicates: {new:?}"
    );
    assert_eq!(service_level[0]["old"], "down");
    assert_eq!(service_level[0]["new"], "up");
    n1.svc(&["web", "stop"]);
}

/// A fake node that answers every request with `answer(request)` (a thread per connection).
fn fake_node(answer: fn(&mut std::net::TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                answer(&mut s);
            });
        }
    });
    port
}

/// Nodes that answer garbage, a huge body, too slowly, or with a certificate from another CA are
/// recorded as failing with the reason; the good node is polled all along. A SIGHUP after the
/// bad certificate is replaced by a good one brings that node back (svcd re-reads it).
#[test]
fn bad_answers_are_failing_nodes_with_reasons() {
    let good_ca = Ca::new("good CA");
    let other_ca = Ca::new("other CA");
    let mut good = Node::new("good", None);
    good.idle_service("web");
    good.start();
    let mut wrong = Node::new("wrongcert", Some(&other_ca));
    wrong.idle_service("web");
    wrong.start();

    let garbage = fake_node(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!");
    });
    let noise = fake_node(|s| {
        let _ = s.write_all(b"\x00\x01\x02 this is not HTTP\r\n\r\n");
    });
    let huge = fake_node(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
        let chunk = vec![b' '; 65536];
        for _ in 0..160 {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let slow = fake_node(|s| {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{");
        std::thread::sleep(Duration::from_secs(5));
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    good_ca.write(&ca_file);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, READ_TOKEN).unwrap();
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    let nodes = vec![
        ("good".to_string(), good.url(), String::new()),
        (
            "wrongcert".to_string(),
            wrong.url(),
            format!("token_file = \"{}\"\n", token_file.display()),
        ),
        ("garbage".to_string(), url(garbage), String::new()),
        ("noise".to_string(), url(noise), String::new()),
        ("huge".to_string(), url(huge), String::new()),
        ("slow".to_string(), url(slow), String::new()),
        ("notoken".to_string(), wrong.url(), String::new()),
    ];
    let db = dir.path().join("c.db");
    let c = Collector::start(dir.path(), &collector_toml(&db, Some(&ca_file), &nodes));
    let want = [
        ("garbage", "bad status body"),
        ("noise", "request"),
        ("huge", "body larger than 262144 bytes"),
        ("slow", "no complete answer within 3000ms"),
        ("wrongcert", "TLS"),
    ];
    for (name, reason) in want {
        let ok = wait_for(Duration::from_secs(10), || {
            c.node(name)["reason"]
                .as_str()
                .is_some_and(|r| r.contains(reason))
        });
        assert!(ok.is_some(), "{name}: {}", c.node(name));
        assert_eq!(c.node(name)["reachable"], false);
    }
    let wrong_reason = c.node("wrongcert")["reason"].as_str().unwrap().to_string();
    assert!(
        wrong_reason.contains("certificate") || wrong_reason.contains("UnknownIssuer"),
        "{wrong_reason}"
    );
    let g = c.node("good");
    assert_eq!(g["reachable"], true, "{g}");
    assert_eq!(g["services"], 1, "{g}");
    let fleet = c.json("/api/fleet");
    assert_eq!(fleet["nodes"]["good"]["hb"], "up");
    assert!(fleet["nodes"]["garbage"]["hb"] == "warn" || fleet["nodes"]["garbage"]["hb"] == "down");

    // A good certificate, then SIGHUP: svcd serves it to new connections.
    let (cert, key) = good_ca.server_cert();
    std::fs::write(wrong.t.path("node.pem"), cert).unwrap();
    std::fs::write(wrong.t.path("node.key"), key).unwrap();
    berth_testkit::signal(wrong.pid(), 1);
    assert!(
        wait_for(Duration::from_secs(10), || c.node("wrongcert")["reachable"]
            == true)
        .is_some(),
        "{}\n{}",
        c.node("wrongcert"),
        wrong.log()
    );
    // Without the read token, the TLS node refuses reads.
    assert!(
        wait_for(Duration::from_secs(10), || c.node("notoken")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("HTTP 401")))
        .is_some(),
        "{}",
        c.node("notoken")
    );
    assert_eq!(c.get("/healthz").code, 200);
}
