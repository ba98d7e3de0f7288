//! The web page in a real browser: Debian's chromium, headless, loads `/` from a collector
//! polling real svcd processes, runs the page's JavaScript (it fetches the API) and dumps the
//! DOM; the test reads the grid's cells from it before and after a service changes and a node
//! dies, then takes a screenshot (`BERTH_UPDATE_SCREENSHOT=1` copies it to docs/ for the README).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Run headless chromium on `url` with `args`; its stdout. Fails loudly when chromium is missing.
fn chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run chromium (scripts/deps.sh installs it): {e}"));
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "chromium {args:?}: {st}");
            break;
        }
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The page's DOM once its scripts ran (the first refresh is done before the budget ends).
fn dom(profile: &Path, port: u16) -> String {
    let html = chromium(
        profile,
        &format!("http://127.0.0.1:{port}/"),
        &["--virtual-time-budget=4000", "--dump-dom"],
    );
    assert!(
        html.contains("data-ready="),
        "the page did not render the API's data:\n{html}"
    );
    html
}

/// The `class` and text of the grid cell of `service` on `node`.
fn cell(html: &str, node: &str, service: &str) -> (String, String) {
    let key = format!("data-node=\"{node}\" data-service=\"{service}\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no cell {service}@{node} in:\n{html}"));
    let open = html[..at].rfind("<td").unwrap();
    let tag_end = at + html[at..].find('>').unwrap();
    let tag = &html[open..tag_end];
    let class = class_of(tag);
    let text_end = tag_end + html[tag_end..].find('<').unwrap();
    (class, html[tag_end + 1..text_end].to_string())
}

/// The `class` attribute of an HTML start tag (empty without one).
fn class_of(tag: &str) -> String {
    tag.split("class=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// The heartbeat header of `node`: its `class` and its badge word.
fn heartbeat(html: &str, node: &str) -> (String, String) {
    let key = format!("data-node=\"{node}\" data-hb=");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no heartbeat of {node} in:\n{html}"));
    let open = html[..at].rfind("<th").unwrap();
    let tag = &html[open..at + html[at..].find('>').unwrap()];
    let class = class_of(tag);
    let badge = html[at..].split("class=\"badge").nth(1).unwrap();
    let word = badge.split('>').nth(1).unwrap().split('<').next().unwrap();
    (class, word.to_string())
}

#[test]
fn the_page_shows_the_grid_events_and_chargeback() {
    let mut n1 = Node::new("n1", None);
    let mut n2 = Node::new("n2", None);
    n1.fs_service("web", "app = \"shop\"\nenv = \"PRD\"");
    n1.idle_service("db");
    n2.idle_service("web");
    n2.docker_service("box", "crm");
    n1.svc(&["web", "start"]);
    n1.start();
    n2.start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let c = Collector::start(
        dir.path(),
        &collector_toml(
            &db,
            None,
            &[
                ("n1".into(), n1.url(), String::new()),
                ("n2".into(), n2.url(), String::new()),
            ],
        ),
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            let f = c.json("/api/fleet");
            f["services"]["web"]["nodes"]["n1"]["avail"] == "up"
                && f["services"]["box"]["nodes"]["n2"]["avail"] == "up"
        })
        .is_some(),
        "{}",
        c.get("/api/fleet").text()
    );
    let profile = dir.path().join("chromium");

    let html = dom(&profile, c.port);
    assert_eq!(cell(&html, "n1", "web"), ("cell s-up".into(), "O".into()));
    assert_eq!(cell(&html, "n2", "web"), ("cell s-down".into(), "X".into()));
    assert_eq!(cell(&html, "n2", "db"), ("cell s-na".into(), "/".into()));
    assert_eq!(heartbeat(&html, "n2").1, "up");
    assert!(html.contains("<td>shop</td>") && html.contains("<td>PRD</td>"));
    assert!(
        html.contains("data-app=\"crm\""),
        "chargeback table by app:\n{html}"
    );

    // A service changes: the grid follows.
    n1.svc(&["web", "stop"]);
    c.wait_avail("web", "n1", "down");
    let html = dom(&profile, c.port);
    assert_eq!(cell(&html, "n1", "web"), ("cell s-down".into(), "X".into()));
    assert!(
        html.contains("<td>web</td><td></td><td><span class=\"s-up\">up</span> → <span class=\"s-down\">down</span></td>"),
        "the stop is among the last events:\n{html}"
    );

    // A node dies: its column is shown stale.
    n1.svc(&["web", "start"]);
    c.wait_avail("web", "n1", "up");
    n1.kill();
    c.wait_stale("n1", true);
    let html = dom(&profile, c.port);
    let (class, word) = heartbeat(&html, "n1");
    assert_eq!(word, "stale");
    assert!(class.contains("stale"), "{class}");
    assert!(cell(&html, "n1", "db").0.contains("stale"));
    assert_eq!(heartbeat(&html, "n2").1, "up");

    // The screenshot for the README.
    let png: PathBuf = dir.path().join("collector.png");
    chromium(
        &profile,
        &format!("http://127.0.0.1:{}/", c.port),
        &[
            "--virtual-time-budget=4000",
            "--window-size=1280,720",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("BERTH_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/collector.png");
        std::fs::copy(&png, &docs).unwrap();
    }
    n2.svc(&["box", "stop"]);
}
