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

/// The `class` and mark of the instance of `service` on `node` (None when there is none).
fn cell(html: &str, node: &str, service: &str) -> Option<(String, String)> {
    let key = format!("data-node=\"{node}\" data-service=\"{service}\"");
    let at = html.find(&key)?;
    let open = html[..at].rfind("<span").unwrap();
    let tag_end = at + html[at..].find('>').unwrap();
    let class = class_of(&html[open..tag_end]);
    let text_end = tag_end + html[tag_end..].find('<').unwrap();
    Some((class, html[tag_end + 1..text_end].to_string()))
}

fn some(class: &str, mark: &str) -> Option<(String, String)> {
    Some((class.to_string(), mark.to_string()))
}

/// The `class` attribute of an HTML start tag (empty without one).
fn class_of(tag: &str) -> String {
    tag.split("class=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

/// The heartbeat of `node`: its tile's `data-hb`.
fn heartbeat(html: &str, node: &str) -> String {
    let key = format!("data-node=\"{node}\" data-hb=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no tile of {node} in:\n{html}"));
    html[at + key.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// The `data-status` of the row of `service`.
fn row_status(html: &str, service: &str) -> String {
    let key = format!("<tr data-service=\"{service}\" data-status=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no row of {service} in:\n{html}"));
    html[at + key.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_string()
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
    assert_eq!(cell(&html, "n1", "web"), some("m m-up", "✓"));
    // web is up on n1: its instance on n2 is passive, not red.
    assert_eq!(cell(&html, "n2", "web"), some("m m-passive", "○"));
    assert_eq!(cell(&html, "n2", "db"), None, "db is not on n2");
    assert_eq!(heartbeat(&html, "n2"), "up");
    assert_eq!(row_status(&html, "web"), "up");
    assert!(html.contains("<td>shop</td><td>PRD</td>"), "{html}");
    assert!(
        html.contains("data-app=\"crm\""),
        "chargeback table by app:\n{html}"
    );
    assert!(html.contains("href=\"/api/services?format=csv\""), "{html}");

    // An operator's stop: the grid follows, and it is not shown as a failure.
    n1.svc(&["web", "stop"]);
    let stopped = wait_for(Duration::from_secs(10), || {
        c.json("/api/fleet")["services"]["web"]["nodes"]["n1"]["target"] == "down"
    });
    assert!(stopped.is_some(), "{}", c.get("/api/fleet").text());
    let html = dom(&profile, c.port);
    assert_eq!(cell(&html, "n1", "web"), some("m m-stopped", "■"));
    assert_eq!(row_status(&html, "web"), "stopped");
    assert!(
        html.contains(">web</a></td><td></td><td><span>up</span> → <span>down</span></td>"),
        "the stop is among the last events:\n{html}"
    );
    // The service's own page: its instances, its history.
    let page = chromium(
        &profile,
        &format!("http://127.0.0.1:{}/#/service/web", c.port),
        &["--virtual-time-budget=4000", "--dump-dom"],
    );
    assert!(page.contains("Service web"), "{page}");
    assert_eq!(cell(&page, "n1", "web"), some("m m-stopped", "■"));

    // A node dies: its tile shows it, and web, up only there, is stale, never up.
    n1.svc(&["web", "start"]);
    c.wait_avail("web", "n1", "up");
    n1.kill();
    c.wait_stale("n1", true);
    let html = dom(&profile, c.port);
    assert_eq!(heartbeat(&html, "n1"), "down");
    assert_eq!(cell(&html, "n1", "web"), some("m m-stale", "?"));
    assert_eq!(row_status(&html, "web"), "stale");
    assert_eq!(heartbeat(&html, "n2"), "up");
    n2.svc(&["box", "stop"]);
}

/// A fleet of simulated nodes on loopback (a fixture, not svcd): each answers `GET /status`
/// with a realistic status body of its own name; `dead` ones do not listen at all.
struct SimFleet {
    ports: Vec<u16>,
    tasks: Vec<Option<tokio::task::JoinHandle<()>>>,
    _rt: tokio::runtime::Runtime,
}

fn sim_status(i: usize) -> Vec<u8> {
    use berth_model::status::{
        Chargeback, Flags, NodeStatus, ResourceStatus, ServiceStatus, Status,
    };
    let res = |rid: &str, st: Status, label: &str| ResourceStatus {
        network: None,
        rid: rid.parse().unwrap(),
        status: st,
        label: label.into(),
        flags: Flags::default(),
        log: vec![],
    };
    // Failover pairs: s<k> on nodes 2k and 2k+1, up on the first; every 50th pair (from the
    // 7th) failed on both, its target up; a flex "agent" service on every node.
    let k = i / 2;
    let first = i.is_multiple_of(2);
    let failed = k % 50 == 7;
    let st = if first && !failed {
        Status::Up
    } else {
        Status::Down
    };
    let mut s = ServiceStatus::from_resources(
        format!("s{k:03}"),
        vec![
            res("fs#1", st, "/dev/vg/lv on /srv"),
            res("container#1", st, "app@registry:5000/app:1"),
        ],
        false,
    );
    s.app = Some(format!("app{}", k % 12));
    s.env = Some(if k.is_multiple_of(3) { "PRD" } else { "DEV" }.into());
    // The active node was started by an operator; the passive one never was.
    s.target = first.then_some(Status::Up);
    s.chargeback = Some(Chargeback {
        containers: 1,
        running: u64::from(st == Status::Up),
        images: 2,
        data_bytes: 50_000_000,
        daemon_rss_bytes: 40_000_000,
    });
    let mut agent = ServiceStatus::from_resources(
        "agent".into(),
        vec![res(
            "container#1",
            Status::Up,
            "agent@registry:5000/agent:3",
        )],
        false,
    );
    agent.app = Some("infra".into());
    serde_json::to_vec(&NodeStatus {
        schema: berth_model::status::SCHEMA_VERSION,
        nodename: format!("n{i:04}"),
        services: vec![s, agent],
    })
    .unwrap()
}

impl SimFleet {
    fn start(nodes: usize, dead: &[usize]) -> SimFleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut ports = Vec::with_capacity(nodes);
        let mut tasks = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            ports.push(l.local_addr().unwrap().port());
            if dead.contains(&i) {
                tasks.push(None);
                continue; // dropped: the port refuses
            }
            l.set_nonblocking(true).unwrap();
            let body = sim_status(i);
            let task = rt.spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        continue;
                    };
                    let body = body.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        let mut got = 0;
                        while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf[got..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got += n,
                            }
                            if got == buf.len() {
                                return;
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                        let _ = s.write_all(&body).await;
                    });
                }
            });
            tasks.push(Some(task));
        }
        SimFleet {
            ports,
            tasks,
            _rt: rt,
        }
    }

    /// Node `i` dies: its listener closes, its port refuses.
    fn kill(&mut self, i: usize) {
        if let Some(t) = self.tasks[i].take() {
            t.abort();
        }
    }
}

/// The page at fleet size: 1000 simulated nodes (10 of them dead), 500 failover services and a
/// flex one on every node, in headless chromium: every node has its tile, the service rows
/// are drawn (the first 400, the rest on demand), a failed pair is red, a passive instance is
/// not, a service's page works; the render time is printed (the bench records it) and the
/// screenshot taken (`BERTH_UPDATE_SCREENSHOT=1` copies it to docs/).
#[test]
fn a_thousand_nodes() {
    const N: usize = 1000;
    let dead = [3, 251, 600, 999];
    let mut sims = SimFleet::start(N, &dead);
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<(String, String, String)> = sims
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("n{i:04}"),
                format!("http://127.0.0.1:{p}"),
                String::new(),
            )
        })
        .collect();
    let toml = collector_toml(&dir.path().join("c.db"), None, &nodes)
        .replace("interval = \"500ms\"", "interval = \"2s\"")
        .replace("stale_after = \"2s\"", "stale_after = \"5s\"")
        .replace("max_body_bytes = 262144", "concurrency = 128");
    let c = Collector::start(dir.path(), &toml);
    let settled = wait_for(Duration::from_secs(60), || {
        let v = c.json("/api/nodes");
        let n = v["nodes"].as_array().unwrap();
        n.iter().filter(|x| x["hb"] == "up").count() == N - dead.len()
            && n.iter().filter(|x| x["failures"] == 0).count() >= N - dead.len()
            && n.iter().filter(|x| x["stale"] == true).count() == dead.len()
    });
    assert!(settled.is_some(), "{}", c.get("/metrics").text());
    // n0250 (where s125 is up) dies after it was seen.
    sims.kill(250);
    c.wait_stale("n0250", true);
    let profile = dir.path().join("chromium");
    let html = chromium(
        &profile,
        &format!("http://127.0.0.1:{}/", c.port),
        &["--virtual-time-budget=10000", "--dump-dom"],
    );
    assert!(
        html.contains("data-ready="),
        "not rendered:\n{}",
        &html[..html.len().min(3000)]
    );
    assert_eq!(
        html.matches("class=\"tile ").count(),
        N,
        "one tile per node"
    );
    assert_eq!(
        html.matches("class=\"tile t-down\"").count(),
        dead.len() + 1
    );
    let rows = html.matches("<tr data-service=").count();
    assert_eq!(rows, 400, "the first 400 rows are drawn");
    // 500: n0251's pair s125 is known from n0250; the 3 other dead nodes' pairs from their
    // partners; "agent" on every node.
    assert!(html.contains("400 of 501 shown"), "{}", &html[..3000]);
    // s007 failed on both nodes: red; s000 up on n0000, its passive instance on n0001 grey.
    assert_eq!(row_status(&html, "s007"), "down");
    assert_eq!(cell(&html, "n0014", "s007"), some("m m-down", "✗"));
    assert_eq!(cell(&html, "n0000", "s000"), some("m m-up", "✓"));
    assert_eq!(cell(&html, "n0001", "s000"), some("m m-passive", "○"));
    // s125 is up on n0250, a dead node: stale, never up.
    assert_eq!(row_status(&html, "s125"), "stale");
    let ms: u64 = html
        .split("data-render-ms=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|v| v.parse().ok())
        .expect("data-render-ms");
    // performance.now() under a virtual-time budget: indicative only; collector-bench times it.
    println!("render of {N} nodes: {ms} ms (data-render-ms)");
    // A node's page.
    let page = chromium(
        &profile,
        &format!("http://127.0.0.1:{}/#/node/n0014", c.port),
        &["--virtual-time-budget=6000", "--dump-dom"],
    );
    assert!(
        page.contains("Node n0014"),
        "{}",
        &page[..page.len().min(3000)]
    );
    assert_eq!(cell(&page, "n0014", "agent"), some("m m-up", "✓"));

    let png: PathBuf = dir.path().join("collector.png");
    chromium(
        &profile,
        &format!("http://127.0.0.1:{}/", c.port),
        &[
            "--virtual-time-budget=10000",
            "--window-size=1400,1000",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    if std::env::var_os("BERTH_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/collector.png");
        std::fs::copy(&png, &docs).unwrap();
    }
}
