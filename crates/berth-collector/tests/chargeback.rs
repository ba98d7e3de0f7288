//! The chargeback bills what runs, against real svcd nodes with real containers (root): a
//! stopped service bills nothing, a leftover on a second node bills nothing, a collector down
//! 30 s and a stale node are gaps (listed, not billed); an operator's stop carries its target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const HOUR_MS: f64 = 3_600_000.0;

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The row of `key` in `/api/chargeback?by=BY&from=FROM` (the answer is cached one interval).
fn row(c: &Collector, by: &str, from: i64, key: &str) -> serde_json::Value {
    let v = c.json(&format!(
        "/api/chargeback?by={by}&from={from}&to={}",
        now_ms()
    ));
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no row {key}: {v}"))
}

fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

/// The chargeback figures node `node` reports for `svc`, through the collector.
fn figures(c: &Collector, svc: &str, node: &str) -> serde_json::Value {
    c.json(&format!("/api/services/{svc}"))["nodes"][node]["status"]["chargeback"].clone()
}

#[test]
fn bills_running_containers_where_up_and_not_the_gaps() {
    let mut n1 = Node::new("n1", None);
    let mut n2 = Node::new("n2", None);
    n1.docker_service("box", "crm");
    // n2 holds a leftover of the same service: its filesystem mounted, one container, stopped.
    n2.docker_service("box", "crm");
    n2.svc(&["box", "stopcontainer"]);
    n1.start();
    n2.start();
    let dir = tempfile::tempdir().unwrap();
    let nodes = vec![
        ("n1".to_string(), n1.url(), String::new()),
        ("n2".to_string(), n2.url(), String::new()),
    ];
    let db = dir.path().join("c.db");
    let toml = format!(
        "{}[rates]\ncurrency = \"EUR\"\ncontainer_hour = 3600.0\n",
        collector_toml(&db, None, &nodes)
    );
    let from = now_ms();
    let mut c = Collector::start(dir.path(), &toml);
    c.wait_avail("box", "n1", "up");
    c.wait_avail("box", "n2", "warn");

    // n1 bills its running container; n2's leftover is inventory only.
    let billed = wait_for(Duration::from_secs(10), || {
        f(&row(&c, "node", from, "n1"), "container_hours") > 0.0
    });
    assert!(
        billed.is_some(),
        "{}",
        c.get("/api/chargeback?by=node").text()
    );
    let n2row = row(&c, "node", from, "n2");
    assert_eq!(f(&n2row, "container_hours"), 0.0, "{n2row}");
    assert_eq!(n2row["max_containers"], 1, "{n2row}");
    assert_eq!(n2row["max_running"], 0, "{n2row}");
    let n1row = row(&c, "node", from, "n1");
    assert_eq!(n1row["max_running"], 1, "{n1row}");
    // Rates give costs: 3600 per container-hour is 1 per container-second.
    let cost = f(&n1row, "cost");
    assert!(
        (cost - f(&n1row, "container_hours") * 3600.0).abs() < 1e-6,
        "{n1row}"
    );
    let answer = c.json("/api/chargeback?by=app");
    assert_eq!(answer["currency"], "EUR");
    // CSV on every table, parsed back: the same figures as the JSON.
    let rows = csv_maps(
        &c,
        &format!("/api/chargeback?by=node&from={from}&format=csv"),
    );
    let n2csv = rows.iter().find(|r| r["key"] == "n2").unwrap();
    assert_eq!(n2csv["container_hours"], "0.0");
    assert_eq!(n2csv["max_containers"], "1");
    assert!(rows.iter().any(|r| r["key"] == "total"), "{rows:?}");
    let nodes = csv_maps(&c, "/api/nodes?format=csv");
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes
            .iter()
            .all(|n| n["hb"] == "up" && n["stale"] == "false"),
        "{nodes:?}"
    );
    let services = csv_maps(&c, "/api/services?format=csv");
    let on = |node: &str| services.iter().find(|s| s["node"] == node).unwrap().clone();
    assert_eq!(
        (on("n1")["name"].as_str(), on("n1")["avail"].as_str()),
        ("box", "up")
    );
    assert_eq!(on("n2")["avail"], "warn");
    assert_eq!(on("n1")["app"], "crm");
    let events = csv_maps(&c, "/api/events?format=csv&service=box");
    let json_events = c.events("service=box");
    assert_eq!(events.len(), json_events.len());
    assert_eq!(events[0]["id"], json_events[0]["id"].to_string());
    assert_eq!(c.get("/api/events?format=xml").code, 400);
    // The page's filters are API parameters too.
    let only = c.json("/api/services?app=crm&q=box");
    assert_eq!(only["services"].as_array().unwrap().len(), 1);
    let none = c.json("/api/services?app=shop");
    assert!(none["services"].as_array().unwrap().is_empty());
    let problems = c.json("/api/fleet?problems=1");
    assert!(
        problems["services"]["box"].is_object(),
        "warn on n2 is a problem: {problems}"
    );
    // By app, the service is billed once (on n1), not on both nodes.
    let app = row(&c, "app", from, "crm");
    let elapsed_h = (now_ms() - from) as f64 / HOUR_MS;
    assert!(
        f(&app, "container_hours") <= elapsed_h + 1e-9,
        "one container at most: {app}, {elapsed_h} h"
    );

    // The collector crashes and stays down 30 s: the time is a gap, listed and not billed.
    std::thread::sleep(Duration::from_secs(2));
    c.kill();
    let killed = now_ms();
    std::thread::sleep(Duration::from_secs(30));
    let mut c = Collector::start(dir.path(), &toml);
    let back = now_ms();
    c.wait_avail("box", "n1", "up");
    let answer = c.json(&format!("/api/chargeback?by=node&from={from}"));
    let gap = answer["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["why"] == "collector down")
        .cloned()
        .unwrap_or_else(|| panic!("no collector gap: {answer}"));
    assert!(gap["node"].is_null(), "{gap}");
    let (g0, g1) = (gap["from"].as_i64().unwrap(), gap["to"].as_i64().unwrap());
    assert!(
        g0 <= killed && killed - g0 < 2000,
        "{gap}, killed at {killed}"
    );
    assert!(g1 <= back && back - g1 < 5000, "{gap}, back at {back}");
    // n1 was billed at most the time outside the gap.
    let n1row = row(&c, "node", from, "n1");
    let outside_h = ((now_ms() - from) - (g1 - g0)) as f64 / HOUR_MS;
    let ch = f(&n1row, "container_hours");
    assert!(
        ch > 0.0 && ch <= outside_h + 1e-9,
        "{n1row}: outside the gap {outside_h} h"
    );

    // An operator's stop: the node's figures follow within a check interval, the target says
    // down, and the container-hours stop growing.
    n1.svc(&["box", "stop"]);
    let followed = wait_for(Duration::from_secs(5), || {
        figures(&c, "box", "n1")["running"] == 0
    });
    assert!(followed.is_some(), "{}", figures(&c, "box", "n1"));
    let told = wait_for(Duration::from_secs(5), || {
        let cell = &c.json("/api/fleet")["services"]["box"]["nodes"]["n1"];
        cell["target"] == "down" && cell["avail"] == "down"
    });
    assert!(told.is_some(), "{}", c.get("/api/fleet").text());
    std::thread::sleep(Duration::from_secs(2));
    let stopped = f(&row(&c, "node", from, "n1"), "container_hours");
    std::thread::sleep(Duration::from_secs(3));
    let later = f(&row(&c, "node", from, "n1"), "container_hours");
    assert!(
        (later - stopped).abs() < 1e-9,
        "a stopped service is not billed: {stopped} -> {later}"
    );
    // Started again, it bills again.
    n1.svc(&["box", "start"]);
    let again = wait_for(Duration::from_secs(10), || {
        f(&row(&c, "node", from, "n1"), "container_hours") > later
    });
    assert!(
        again.is_some(),
        "{}",
        c.get("/api/chargeback?by=node").text()
    );
    let told = wait_for(Duration::from_secs(5), || {
        c.json("/api/fleet")["services"]["box"]["nodes"]["n1"]["target"] == "up"
    });
    assert!(told.is_some(), "{}", c.get("/api/fleet").text());

    // A stale node: its time without a good answer is a gap of its own.
    n1.kill();
    c.wait_stale("n1", true);
    let answer = c.json(&format!("/api/chargeback?by=node&from={from}"));
    let gap = answer["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["node"] == "n1")
        .cloned()
        .unwrap_or_else(|| panic!("no n1 gap: {answer}"));
    assert!(
        gap["why"].as_str().unwrap().starts_with("node stale: "),
        "{gap}"
    );
    assert!(gap["to"].is_null(), "still stale: {gap}");
    // And the service, up only on the stale node, is stale, never up.
    let services = c.json("/api/services");
    let svc = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "box")
        .cloned()
        .unwrap();
    assert_eq!(svc["overall"], "stale", "{svc}");
    let metrics = c.get("/metrics").text();
    assert!(
        metrics.contains("berth_collector_services{overall=\"stale\"} 1"),
        "{metrics}"
    );
    n1.svc(&["box", "stop"]);
    n2.svc(&["box", "stop"]);
    c.stop();
}
