//! `svcd-bench`: measure svcd with many services. Builds a temporary node of N services (one fs
//! each, never mounted), starts the `svcd` next to this binary, then reports its RSS, its idle CPU
//! and `GET /status` throughput and p99 latency with `wrk` (apt-get install wrk).
//!
//! `cargo build --release -p berth-agent -p berth-bench && target/release/svcd-bench [SERVICES] [SECONDS]`

use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use berth_testkit::bench::{Daemon, cpu_seconds, rss_kib};

fn setup(root: &Path, services: usize) -> anyhow::Result<()> {
    for d in ["etc/services", "var", "run"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::write(
        root.join("etc/node.toml"),
        "listen = \"127.0.0.1:0\"\nmonitor_interval = \"10s\"\n",
    )?;
    for i in 0..services {
        let name = format!("svc{i:03}");
        let mut f = std::fs::File::create(root.join(format!("etc/services/{name}.toml")))?;
        // One fs per service, named as an operator would (never mounted: the device is absent).
        write!(
            f,
            "[service]\nnodes = [\"bench\"]\napp = \"BENCH\"\n\n[fs.1]\ndev = \"/dev/vg{name}/data\"\n\
             mnt = \"/srv/{name}\"\ntype = \"ext4\"\nmonitor = true\nrestart = 1\n"
        )?;
    }
    Ok(())
}

fn start(root: &Path) -> anyhow::Result<(Child, u16)> {
    let svcd = std::env::current_exe()?.with_file_name("svcd");
    let sock_path = root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut child = Command::new(&svcd)
        .env("BERTH_CONFIG_DIR", root.join("etc"))
        .env("BERTH_VAR_DIR", root.join("var"))
        .env("BERTH_RUN_DIR", root.join("run"))
        .env("BERTH_NODENAME", "bench")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("SVCD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", svcd.display()))?;
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if let Some(port) = msg
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.lines().next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
            {
                println!("svcd ready in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
                return Ok((child, port));
            }
        }
        if let Some(st) = child.try_wait()? {
            bail!("svcd exited: {st}");
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!("svcd not ready after 30s");
        }
    }
}

fn wrk(port: u16, seconds: u64, extra: &[&str]) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/status");
    let secs = format!("{seconds}s");
    let mut args = vec!["-t2", "-c50", "-d", &secs, "--latency"];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = Command::new("wrk")
        .args(&args)
        .output()
        .context("cannot run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec"))
        .unwrap_or("Requests/sec: ?");
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .unwrap_or("99% ?");
    let p50 = text
        .lines()
        .find(|l| l.trim_start().starts_with("50%"))
        .unwrap_or("50% ?");
    let errors = text
        .lines()
        .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .collect::<Vec<_>>()
        .join("; ");
    println!(
        "wrk {}: {rps}; latency p50 {} p99 {} {errors}",
        extra.join(" "),
        p50.split_whitespace().nth(1).unwrap_or("?"),
        p99.split_whitespace().nth(1).unwrap_or("?")
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10);
    let root = std::env::temp_dir().join(format!("svcd-bench.{}", std::process::id()));
    setup(&root, services)?;
    let (child, port) = start(&root)?;
    let g = Daemon { child, root };
    let pid = g.child.id();

    let body = Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/status")])
        .output()
        .map(|o| o.stdout.len())
        .unwrap_or(0);
    println!("{services} services, /status body {body} bytes");
    println!("rss after start: {} KiB", rss_kib(pid)?.0);

    let idle = Duration::from_secs(seconds);
    let c0 = cpu_seconds(pid)?;
    std::thread::sleep(idle);
    let c1 = cpu_seconds(pid)?;
    println!(
        "idle cpu over {}s (checks every 10s): {:.3}% of one core ({:.0} ms)",
        idle.as_secs(),
        (c1 - c0) / idle.as_secs_f64() * 100.0,
        (c1 - c0) * 1000.0
    );

    wrk(port, seconds, &[])?;
    let gz_body = Command::new("curl")
        .args([
            "-s",
            "-H",
            "Accept-Encoding: gzip",
            &format!("http://127.0.0.1:{port}/status"),
        ])
        .output()
        .map(|o| o.stdout.len())
        .unwrap_or(0);
    println!("/status body with Accept-Encoding: gzip: {gz_body} bytes");
    wrk(port, seconds, &["-H", "Accept-Encoding: gzip"])?;
    let etag = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/status"),
        ])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
                .map(|l| l[5..].trim().to_string())
        });
    if let Some(tag) = etag {
        let h = format!("If-None-Match: {tag}");
        wrk(port, seconds, &["-H", &h])?;
    }
    println!("rss after load: {} KiB", rss_kib(pid)?.0);
    drop(g);
    Ok(())
}
