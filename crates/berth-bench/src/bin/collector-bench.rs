//! `collector-bench`: N simulated nodes on loopback (one process, one listener per node, each
//! serving a status body made with the model crate: 6 services of ip + fs + container, with
//! chargeback, ETag / If-None-Match as svcd does), and the `berth-collector` next to this binary
//! polling them every 10 s. Reports the collector's CPU share and RSS, the database growth
//! (extrapolated to a day) and `/api/services` latency.
//!
//! Every service runs on two nodes (a failover pair: up on one, down on the other). Each
//! interval, 1 % of the nodes see one service change (up <-> warn), so events are written at a
//! steady rate; chargeback figures move a little at each change.
//!
//! `cargo build --release -p berth-collector -p berth-bench && target/release/collector-bench [NODES] [SECONDS]`

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use berth_model::status::{Chargeback, Flags, NodeStatus, ResourceStatus, ServiceStatus, Status};
use berth_model::{Kind, Rid};
use berth_testkit::bench::{Daemon, cpu_seconds, rss_kib};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const SERVICES_PER_NODE: usize = 6;
const INTERVAL: Duration = Duration::from_secs(10);

/// The web page in headless chromium (Debian's `chromium`): the seconds from chromium's start
/// to the DOM dumped once the page fetched and drew the grid (a 10 s virtual-time budget: idle
/// time is skipped, work is not), and the same for an empty page (chromium's own start-up and
/// shutdown), so the difference is the page's fetches and drawing.
fn page_render(addr: SocketAddr, root: &Path) -> anyhow::Result<(f64, f64)> {
    let blank = chromium_dump(root, "about:blank")?.1;
    let (html, secs) = chromium_dump(root, &format!("http://{addr}/"))?;
    if !html.contains("data-ready=") {
        bail!(
            "the page did not draw the grid ({} bytes of DOM)",
            html.len()
        );
    }
    Ok((secs, blank))
}

fn chromium_dump(root: &Path, url: &str) -> anyhow::Result<(String, f64)> {
    let t = Instant::now();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            root.join("chromium").display()
        ))
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .context("cannot run chromium (scripts/deps.sh installs it)")?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        t.elapsed().as_secs_f64(),
    ))
}

/// Bytes the database's live pages take (WAL included: a reader sees the last commit), and the
/// rows of events and chargeback samples. The files themselves grow in steps (the WAL is reused
/// after each checkpoint), so their size says little over a few minutes.
fn db_usage(db: &Path) -> anyhow::Result<(u64, i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let q = |sql: &str| -> anyhow::Result<i64> { Ok(c.query_row(sql, [], |r| r.get(0))?) };
    let pages = q("PRAGMA page_count")? - q("PRAGMA freelist_count")?;
    let bytes = u64::try_from(pages * q("PRAGMA page_size")?).unwrap_or(0);
    Ok((
        bytes,
        q("SELECT COUNT(*) FROM events")?,
        q("SELECT COUNT(*) FROM chargeback")?,
    ))
}

/// Bytes of each table with its indexes (SQLite's dbstat: the pages each B-tree uses).
fn table_bytes(db: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = c.prepare(
        "SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
         GROUP BY m.tbl_name",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn file_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn res(kind: Kind, status: Status, label: String, monitored: bool) -> ResourceStatus {
    ResourceStatus {
        network: None,
        rid: Rid::new(kind, 1),
        status,
        label,
        flags: Flags {
            monitored,
            ..Flags::default()
        },
        log: Vec::new(),
    }
}

/// Service `s` of node `n`: the pair (2k, 2k+1) shares its services; the even node runs them.
fn service(n: usize, s: usize, warn: bool, generation: u64) -> ServiceStatus {
    let pair = n / 2;
    let up = n.is_multiple_of(2);
    let st = if up { Status::Up } else { Status::Down };
    let name = format!("svc{pair:04}-{s}");
    let mut rs = vec![
        res(
            Kind::Container,
            st,
            format!("{:012x}@registry.example/app{s}:1.{}", pair * 7 + s, s),
            true,
        ),
        res(
            Kind::Fs,
            st,
            format!("/dev/vg{pair}/lv{s}@/srv/{name}"),
            false,
        ),
        res(
            Kind::Ip,
            st,
            format!("10.{}.{}.{}@eth0", pair / 250, pair % 250, s + 10),
            false,
        ),
    ];
    if warn && up {
        rs[0].log.push(berth_model::status::LogEntry::warn(
            "restarted 1 of 3 times",
        ));
    }
    let mut svc = ServiceStatus::from_resources(name, rs, false);
    svc.app = Some(format!("app{}", pair % 20));
    svc.env = Some(if pair.is_multiple_of(3) { "PRD" } else { "DEV" }.to_string());
    if up {
        svc.chargeback = Some(Chargeback {
            containers: 1,
            running: 1,
            images: 2,
            data_bytes: 50_000_000 + generation * 4096,
            daemon_rss_bytes: 40_000_000,
        });
    }
    svc
}

struct SimNode {
    body: Bytes,
    etag: String,
    warn: Option<usize>,
    generation: u64,
}

fn render(n: usize, warn: Option<usize>, generation: u64) -> (Bytes, String) {
    let status = NodeStatus {
        schema: berth_model::status::SCHEMA_VERSION,
        nodename: format!("n{n:04}"),
        services: (0..SERVICES_PER_NODE)
            .map(|s| service(n, s, warn == Some(s), generation))
            .collect(),
    };
    let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
    (body, format!("\"{n}-{generation}\""))
}

async fn serve_node(listener: TcpListener, node: Arc<RwLock<SimNode>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let node = node.clone();
                async move {
                    let (body, etag) = {
                        let n = node.read().unwrap_or_else(|p| p.into_inner());
                        (n.body.clone(), n.etag.clone())
                    };
                    let hit = req
                        .headers()
                        .get(header::IF_NONE_MATCH)
                        .and_then(|v| v.to_str().ok())
                        == Some(etag.as_str());
                    let mut r = if hit {
                        let mut r = Response::new(Full::new(Bytes::new()));
                        *r.status_mut() = StatusCode::NOT_MODIFIED;
                        r
                    } else {
                        let mut r = Response::new(Full::new(body));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        );
                        r
                    };
                    if let Ok(v) = HeaderValue::from_str(&etag) {
                        r.headers_mut().insert(header::ETAG, v);
                    }
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One GET of `path` on the collector; (time, body length).
async fn timed_get(addr: SocketAddr, path: &str) -> anyhow::Result<(Duration, usize)> {
    let t = Instant::now();
    let target =
        berth_collector::client::Target::new("collector", &format!("http://{addr}"), None, None)?;
    let (code, _, body) = berth_collector::client::get(&target, path, None, 64 << 20)
        .await
        .map_err(|e| anyhow!(e))?;
    if !code.is_success() {
        bail!("{path}: HTTP {code}");
    }
    Ok((t.elapsed(), body.len()))
}

/// The `permille`th per-thousand of sorted samples (nearest rank).
fn pct(sorted: &[Duration], permille: usize) -> Duration {
    let i = (sorted.len() - 1) * permille / 1000;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let nodes: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(120), |s| s.parse())?;
    let collector = std::env::current_exe()?.with_file_name("berth-collector");
    if !collector.exists() {
        bail!("{} is missing: build berth-collector", collector.display());
    }
    let root = PathBuf::from(format!("/tmp/cbench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;

    // The simulated nodes.
    let mut sims = Vec::with_capacity(nodes);
    let mut toml = String::new();
    for n in 0..nodes {
        let (body, etag) = render(n, None, 0);
        let sim = Arc::new(RwLock::new(SimNode {
            body,
            etag,
            warn: None,
            generation: 0,
        }));
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let port = l.local_addr()?.port();
        toml.push_str(&format!(
            "[[nodes]]\nname = \"n{n:04}\"\nurl = \"http://127.0.0.1:{port}\"\n"
        ));
        tokio::spawn(serve_node(l, sim.clone()));
        sims.push(sim);
    }
    let body_len = sims[0].read().map(|s| s.body.len()).unwrap_or(0);
    let db = root.join("collector.db");
    let log = root.join("collector.log");
    let config = root.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\ninterval = \"10s\"\n{toml}",
            db.display()
        ),
    )?;
    let child = Command::new(&collector)
        .arg("--config")
        .arg(&config)
        .env("BERTH_COLLECTOR_LOG", "warn,berth_collector=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot run {}", collector.display()))?;
    let guard = Daemon {
        child,
        root: root.clone(),
    };
    let pid = guard.child.id();
    let addr: SocketAddr = {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(a) = text
                .split(" on http://")
                .nth(1)
                .and_then(|r| r.split(": ").next())
            {
                break a.parse()?;
            }
            if t.elapsed() > Duration::from_secs(20) {
                bail!("collector did not start:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // The changes: each interval, 1 % of the nodes (at least one) flip one service.
    let changer = {
        let sims = sims.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            let mut k = 0usize;
            loop {
                tick.tick().await;
                let count = (sims.len() / 100).max(1);
                for _ in 0..count {
                    k = (k + 37) % sims.len();
                    let mut s = sims[k].write().unwrap_or_else(|p| p.into_inner());
                    s.generation += 1;
                    s.warn = match s.warn {
                        Some(_) => None,
                        None => Some(
                            usize::try_from(s.generation % SERVICES_PER_NODE as u64).unwrap_or(0),
                        ),
                    };
                    let (body, etag) = render(k, s.warn, s.generation);
                    s.body = body;
                    s.etag = etag;
                }
            }
        })
    };

    // Warm-up: every node polled at least twice (first polls spread over one interval).
    tokio::time::sleep(INTERVAL * 2 + Duration::from_secs(2)).await;
    let cpu0 = cpu_seconds(pid)?;
    let db0 = db_usage(&db)?;
    let tables0 = table_bytes(&db)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - cpu0;
    let db1 = db_usage(&db)?;
    let tables1 = table_bytes(&db)?;
    let (rss, hwm) = rss_kib(pid)?;

    // /api/services latency: sequential full GETs while polling goes on.
    let mut lat = Vec::new();
    let mut api_len = 0;
    for _ in 0..200 {
        let (d, len) = timed_get(addr, "/api/services").await?;
        lat.push(d);
        api_len = len;
    }
    lat.sort();
    let nodes_json = timed_get(addr, "/api/nodes").await?;
    let fleet = timed_get(addr, "/api/fleet").await?;
    let events = timed_get(addr, "/api/events?limit=1000").await?;
    let cb = timed_get(addr, "/api/chargeback?by=app").await?;
    let page = page_render(addr, &root)?;
    changer.abort();

    let day = 86_400.0 / wall;
    let per_day = (db1.0.saturating_sub(db0.0)) as f64 * day;
    let events_day = (db1.1 - db0.1) as f64 * day;
    let samples_day = (db1.2 - db0.2) as f64 * day;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut out = BTreeMap::new();
    out.insert("nodes", format!("{nodes}"));
    out.insert("services per node", format!("{SERVICES_PER_NODE}"));
    out.insert("status body per node", format!("{body_len} bytes"));
    out.insert("measured over", format!("{wall:.0} s after a 22 s warm-up"));
    out.insert(
        "collector CPU",
        format!("{:.2} % of one core", cpu / wall * 100.0),
    );
    out.insert(
        "collector RSS",
        format!(
            "{:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
    );
    out.insert(
        "database",
        format!(
            "{:.1} MiB live ({:.1} MiB of files), +{:.1} MiB/day extrapolated ({:.0} events/day, {:.0} chargeback rows/day)",
            db1.0 as f64 / 1048576.0,
            file_bytes(&db) as f64 / 1048576.0,
            per_day / 1048576.0,
            events_day,
            samples_day
        ),
    );
    let growth: Vec<String> = tables1
        .iter()
        .map(|(t, b)| {
            let d = (b - tables0.get(t).copied().unwrap_or(0)) as f64 * day;
            format!("{t} {:.1}", d / 1048576.0)
        })
        .collect();
    out.insert("growth by table", format!("MiB/day: {}", growth.join(", ")));
    out.insert(
        "/api/services",
        format!(
            "{api_len} bytes; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (200 sequential GETs)",
            ms(pct(&lat, 500)),
            ms(pct(&lat, 990)),
            ms(lat[lat.len() - 1])
        ),
    );
    out.insert(
        "other reads",
        format!(
            "/api/nodes {:.2} ms, /api/fleet {:.2} ms, /api/events?limit=1000 {:.2} ms, /api/chargeback {:.2} ms",
            ms(nodes_json.0),
            ms(fleet.0),
            ms(events.0),
            ms(cb.0)
        ),
    );
    out.insert(
        "page render",
        format!(
            "{:.2} s from headless chromium's start to the drawn page's DOM ({:.2} s for an empty page: {:.2} s of fetching and drawing)",
            page.0,
            page.1,
            page.0 - page.1
        ),
    );
    for (k, v) in &out {
        println!("{k:<22} {v}");
    }
    drop(guard);
    Ok(())
}
