//! Polling after a long outage (root: a real svcd): polls back off, but a node that comes back
//! is polled at once (a bare connect probes it every interval), not at the end of its backoff.
//! svcd answers gzip (the collector asks for it), so every poll here reads a gzip body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_node_back_is_seen_within_intervals_not_backoffs() {
    let mut n1 = Node::new("n1", None);
    n1.idle_service("db");
    n1.start();
    let dir = tempfile::tempdir().unwrap();
    let nodes = vec![("n1".to_string(), n1.url(), String::new())];
    // 500 ms interval, backoff up to 60 s: without the probe, the node would be seen back only
    // at the end of a wait of up to a minute.
    let toml = collector_toml(&dir.path().join("c.db"), None, &nodes)
        .replace("max_backoff = \"1s\"", "max_backoff = \"60s\"");
    let c = Collector::start(dir.path(), &toml);
    c.wait_avail("db", "n1", "down");
    n1.kill();
    c.wait_stale("n1", true);
    // Long enough for the backoff to grow past 8 s (2^5 intervals).
    let grown = wait_for(Duration::from_secs(30), || {
        c.node("n1")["failures"].as_u64().unwrap_or(0) >= 6
    });
    assert!(grown.is_some(), "{}", c.node("n1"));
    std::thread::sleep(Duration::from_secs(3));
    n1.start();
    let seen = wait_for(Duration::from_secs(4), || c.node("n1")["reachable"] == true);
    assert!(
        seen.is_some(),
        "the node was not polled again within 4 s of coming back: {}",
        c.node("n1")
    );
    // Its status bodies (gzip from svcd) are read as before.
    c.wait_avail("db", "n1", "down");
}
