//! `cluster-bench`: what berth's cluster layer costs, on the multi-node rig (root; the fixtures
//! are the rig's: a lan namespace, etcd members, nodes with their own namespaces, a loop LUN,
//! all removed at the end).
//!
//! 1. The owner-key transaction (acquire + release, as a start and a stop do) and the node
//!    record publication (a record of 100 services), p50/p99, against 1 and 3 etcd members.
//! 2. `svc web switch` of an ip + fs service between two nodes: the total time the command
//!    takes, the resources' part (the `duration` of the stop's and the start's
//!    `last_action.json`, on each node), and berth's own part (the rest).
//! 3. svcd's RSS on each node of a cluster of 3 nodes x `SERVICES` services.
//! 4. svcd's idle CPU on a cluster node, 3 nodes x 30 and x 300 services checked every second:
//!    what a check costs must not grow with the cluster's size.
//! 5. At size (issue 24): N HA services of one ip each on n1, n1 killed: the failover time of
//!    every service, double starts sampled, placement starts and etcd revisions, idle CPU, RSS
//!    and `svc mon` time.
//! 6. One copy of each service file (issue 25): `svc app set` on n1 of a service whose
//!    `nodes` are 3 nodes, until every node has the new file on disk (its svcd wrote it):
//!    the whole time, and the part after the command returned.
//! 7. A flex service (target 2 of 3 nodes): the replacement time of a dead node's instance.
//!
//! `cargo build --release -p berth-cli -p berth-agent -p berth-bench &&
//!  target/release/cluster-bench [SWITCHES] [SERVICES]` (svcd and svc next to this binary;
//! `CLUSTER_BENCH_ONLY=txn|switch|rss|idle|failover|scale|spread|flex|sim` runs one case (`scale`
//! and `sim` run only when asked: `scale` for the sizes in `CLUSTER_BENCH_SCALE`, default
//! `30,100,300,1000`; `sim` for `CLUSTER_BENCH_SIM`, default `32x1000`, nodes x services
//! simulated in one etcd),
//! `CLUSTER_BENCH_LOGS=1` prints the end of the svcd logs after the switches).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use berth_cluster::{NodeRecord, ServiceSummary, Store};
use berth_model::Status;
use berth_model::config::ClusterConfig;
use berth_testkit::bench::{cpu_seconds, rss_kib};
use berth_testkit::cluster::{Etcd, Lan, Node, SharedLun, wait_until};
use berth_testkit::{Netns, require_root};

const PORT: u16 = 1215;

/// The `per_mille`-th of `v` (500: the median, 990: p99), nearest rank.
fn pct(v: &mut [Duration], per_mille: usize) -> Duration {
    v.sort();
    let i = (v.len().saturating_sub(1) * per_mille + 500) / 1000;
    v[i.min(v.len().saturating_sub(1))]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn cluster_cfg(etcd: &Etcd) -> ClusterConfig {
    ClusterConfig {
        name: "b".to_string(),
        etcd: etcd.endpoints(),
        etcd_ca: None,
        etcd_cert: None,
        etcd_key: None,
        lease_ttl: Duration::from_secs(10),
        split_action: berth_model::config::SplitAction::Stop,
        ready_period: Duration::from_secs(1),
    }
}

fn record(services: usize) -> NodeRecord {
    NodeRecord {
        name: "bench".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        listen: "10.0.0.1:1215".to_string(),
        address: String::new(),
        since_ms: berth_cluster::now_ms(),
        updated_ms: berth_cluster::now_ms(),
        services: (0..services)
            .map(|i| {
                (
                    format!("svc{i:03}"),
                    ServiceSummary {
                        avail: Status::Down,
                        overall: Status::Down,
                        checksum: "0123456789abcdef".to_string(),
                        valid: true,
                        nodes: vec!["n1".into(), "n2".into(), "n3".into()],
                        drpnodes: Vec::new(),
                        invalid: None,
                        failed_ms: None,
                        flex: None,
                    },
                )
            })
            .collect(),
    }
}

/// Acquire + release and record publication against `members` etcd members, from a namespace
/// of its own on the lan (a thread that `setns`es there and runs a one-thread runtime: every
/// socket it opens is in that namespace).
fn txn_bench(members: usize, runs: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, members);
    let ns = Netns::new("rgb");
    lan.attach(&ns, "eth0", 240);
    let cfg = cluster_cfg(&etcd);
    let path = ns.path();
    let (txn, put) = std::thread::spawn(move || -> Result<(Vec<Duration>, Vec<Duration>)> {
        let f = std::fs::File::open(&path).context("open the netns")?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let store = Store::connect(&cfg, "bench", Duration::from_secs(2)).await?;
            let lease = store.grant(30).await?;
            let rec = record(100);
            store.put_node(&rec, lease).await?;
            let (mut txn, mut put) = (Vec::new(), Vec::new());
            for i in 0..runs + 10 {
                let t = Instant::now();
                let o = store
                    .acquire(
                        "web",
                        lease,
                        &berth_cluster::OwnerWhy::Action("bench".into()),
                    )
                    .await?;
                ensure!(store.release("web", o.token).await?, "release refused");
                let d = t.elapsed();
                let t = Instant::now();
                store.put_node(&rec, lease).await?;
                let p = t.elapsed();
                if i >= 10 {
                    txn.push(d);
                    put.push(p);
                }
            }
            store.revoke(lease).await?;
            Ok((txn, put))
        })
    })
    .join()
    .map_err(|_| anyhow!("the bench thread panicked"))??;
    let (mut txn, mut put) = (txn, put);
    println!(
        "| owner key acquire + release, {members} member(s) | {} | {} | {runs} |",
        ms(pct(&mut txn, 500)),
        ms(pct(&mut txn, 990))
    );
    println!(
        "| node record (100 services, {} bytes) put, {members} member(s) | {} | {} | {runs} |",
        serde_json::to_vec(&record(100))?.len(),
        ms(pct(&mut put, 500)),
        ms(pct(&mut put, 990))
    );
    Ok(())
}

fn svc(bin: &Path, node: &Node, args: &[&str]) -> Result<Output> {
    let out = node
        .svc(bin.to_str().context("utf-8 path")?)
        .args(args)
        .output()?;
    Ok(out)
}

fn mon(bin: &Path, node: &Node) -> Option<serde_json::Value> {
    let out = svc(bin, node, &["mon", "--format", "json"]).ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// Nodes `n1..=count` on a 1-member etcd, each with its svcd (checks every 10 s) and the
/// service files `files` gives for it; returns once every node sees every other alive.
fn cluster(
    lan: &Lan,
    etcd: &Etcd,
    bins: &(PathBuf, PathBuf),
    count: usize,
    ttl: u64,
    files: impl Fn(&Node) -> Vec<(String, String)>,
) -> Result<Vec<Node>> {
    cluster_checking(lan, etcd, bins, (count, ttl, "10s"), files)
}

/// [`cluster`] with the nodes' `monitor_interval`: (count, ttl, interval).
fn cluster_checking(
    lan: &Lan,
    etcd: &Etcd,
    bins: &(PathBuf, PathBuf),
    (count, ttl, interval): (usize, u64, &str),
    files: impl Fn(&Node) -> Vec<(String, String)>,
) -> Result<Vec<Node>> {
    let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
    let mut nodes = Vec::new();
    for i in 1..=count {
        let mut node = Node::new(lan, &format!("n{i}"), u8::try_from(i)?);
        node.write_node_toml(&format!(
            "listen = \"{}:{PORT}\"\nmonitor_interval = \"{interval}\"\n\n[cluster]\nname = \"t\"\n\
             etcd = [{}]\nlease_ttl = \"{ttl}s\"\nready_period = \"1s\"\n",
            node.addr(),
            eps.join(", ")
        ));
        for (f, text) in files(&node) {
            node.write_service(&f, &text);
        }
        node.spawn_svcd(bins.0.to_str().context("utf-8 path")?);
        node.wait_svcd_ready();
        nodes.push(node);
    }
    for n in &nodes {
        for m in &nodes {
            wait_until(Duration::from_secs(30), "every node alive", || {
                mon(&bins.1, n).is_some_and(|v| v["nodes"][m.name()]["hb"] == "up")
            });
        }
    }
    Ok(nodes)
}

/// The `duration` of `node`'s last action on `svc` (its `last_action.json`), with its name.
fn last_action(node: &Node, svc: &str) -> Result<(String, Duration)> {
    let path = find(&node.var_dir(), svc)?;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let d = v["duration"].as_f64().context("duration")?;
    Ok((
        v["action"].as_str().unwrap_or_default().to_string(),
        Duration::from_secs_f64(d),
    ))
}

fn find(var: &Path, svc: &str) -> Result<PathBuf> {
    for rel in [
        format!("{svc}/last_action.json"),
        format!("services/{svc}/last_action.json"),
    ] {
        let p = var.join(rel);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("no last_action.json of {svc} under {}", var.display())
}

fn switch_bench(bins: &(PathBuf, PathBuf), runs: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let lun = SharedLun::new(64);
    let mnt = tempfile::Builder::new().prefix("rgbm").tempdir_in("/tmp")?;
    let ip = lan.host(100);
    let text = format!(
        "[service]\nnodes = [\"n1\", \"n2\"]\n\n[ip.1]\nipname = \"{ip}\"\nipdev = \"eth0\"\n\
         netmask = 24\nprobe_timeout = \"200ms\"\n\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\n\
         type = \"ext4\"\n",
        lun.dev().display(),
        mnt.path().display()
    );
    let nodes = cluster(&lan, &etcd, bins, 2, 3, |_| {
        vec![("web.toml".to_string(), text.clone())]
    })?;
    let out = svc(&bins.1, &nodes[0], &["web", "start"])?;
    ensure!(
        out.status.success(),
        "start: {}",
        berth_testkit::describe(&out)
    );
    let (mut total, mut res, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let (from, to) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        let t = Instant::now();
        let out = svc(
            &bins.1,
            &nodes[from],
            &["web", "switch", "--to", nodes[to].name(), "--timeout", "30"],
        )?;
        let d = t.elapsed();
        ensure!(
            out.status.success(),
            "switch: {}",
            berth_testkit::describe(&out)
        );
        let (a, stop) = last_action(&nodes[from], "web")?;
        let (b, start) = last_action(&nodes[to], "web")?;
        ensure!(a == "stop" && b == "start", "last actions {a} / {b}");
        if i > 0 {
            total.push(d);
            res.push(stop + start);
            own.push(d.saturating_sub(stop + start));
        }
    }
    let med = |v: &mut Vec<Duration>| ms(pct(v, 500));
    let max = |v: &mut Vec<Duration>| ms(*v.iter().max().unwrap_or(&Duration::ZERO));
    println!(
        "| switch ip + fs, total | {} | {} | {runs} |",
        med(&mut total),
        max(&mut total)
    );
    println!(
        "| switch: resources' stop + start | {} | {} | {runs} |",
        med(&mut res),
        max(&mut res)
    );
    println!(
        "| switch: berth's own part | {} | {} | {runs} |",
        med(&mut own),
        max(&mut own)
    );
    if std::env::var_os("CLUSTER_BENCH_LOGS").is_some() {
        for n in &nodes {
            let log = n.svcd_log();
            let lines: Vec<&str> = log.lines().collect();
            println!(
                "--- {} ---\n{}",
                n.name(),
                lines[lines.len().saturating_sub(12)..].join("\n")
            );
        }
    }
    drop(nodes);
    Ok(())
}

/// Failover of an HA ip + fs service on 3 nodes: the owner node killed whole (every process at
/// once, its link down), the time until the service is up (ip and fs) on another node; then a
/// partition of the owner: the time until its ip and fs are gone, against its deadline (the
/// lease can expire no earlier than TTL after the last renewal, hence after cut + TTL at the
/// latest), and until the other side has it up.
fn failover_bench(bins: &(PathBuf, PathBuf), ttl: u64, runs: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let lun = SharedLun::new(64);
    let mnt = tempfile::Builder::new().prefix("rgbf").tempdir_in("/tmp")?;
    let ip = lan.host(100);
    let text = format!(
        "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\norchestrate = \"ha\"\n\n[ip.1]\n\
         ipname = \"{ip}\"\nipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n\n\
         [fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
        lun.dev().display(),
        mnt.path().display()
    );
    let mut nodes = cluster(&lan, &etcd, bins, 3, ttl, |_| {
        vec![("web.toml".to_string(), text.clone())]
    })?;
    let up = |n: &Node| n.has_addr(ip) && n.has_mount(lun.dev());
    let owner = |nodes: &[Node]| -> Result<usize> {
        let mut at = None;
        wait_until(Duration::from_secs(30), "web up on one node", || {
            at = nodes.iter().position(|n| n.holder_pid().is_some() && up(n));
            at.is_some()
        });
        at.context("web up nowhere")
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        let o = owner(&nodes)?;
        let t = Instant::now();
        nodes[o].kill();
        loop {
            if nodes.iter().any(|n| n.holder_pid().is_some() && up(n)) {
                break;
            }
            ensure!(t.elapsed() < Duration::from_secs(60), "no failover in 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(t.elapsed());
        nodes[o].restart();
        nodes[o].spawn_svcd(bins.0.to_str().context("utf-8 path")?);
        nodes[o].wait_svcd_ready();
        let name = nodes[o].name().to_string();
        wait_until(Duration::from_secs(30), "the node back", || {
            mon(&bins.1, &nodes[(o + 1) % 3])
                .is_some_and(|v| v["nodes"][name.as_str()]["hb"] == "up")
        });
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "| failover after node death, lease_ttl {ttl}s | {} | {} | {runs} |",
        ms(pct(&mut sorted, 500)),
        ms(*sorted.last().unwrap_or(&Duration::ZERO))
    );
    // A partition of the owner.
    let (mut stopped, mut taken) = (Vec::new(), Vec::new());
    for _ in 0..runs.min(5) {
        let o = owner(&nodes)?;
        let t = Instant::now();
        nodes[o].cut();
        let mut gone = None;
        let mut other = None;
        while other.is_none() {
            if gone.is_none() && !nodes[o].has_addr(ip) && !nodes[o].has_mount(lun.dev()) {
                gone = Some(t.elapsed());
            }
            if nodes.iter().enumerate().any(|(i, n)| i != o && up(n)) {
                other = Some(t.elapsed());
            }
            ensure!(t.elapsed() < Duration::from_secs(60), "no takeover in 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        stopped.push(gone.context("the old owner still had it when the other side took it")?);
        taken.push(other.unwrap_or_default());
        nodes[o].heal();
        let name = nodes[o].name().to_string();
        wait_until(Duration::from_secs(30), "the node back", || {
            mon(&bins.1, &nodes[(o + 1) % 3])
                .is_some_and(|v| v["nodes"][name.as_str()]["hb"] == "up")
        });
    }
    let n = stopped.len();
    stopped.sort();
    taken.sort();
    println!(
        "| partition, lease_ttl {ttl}s: old owner's ip + fs gone after the cut (deadline <= {ttl} s) | {} | {} | {n} |",
        ms(pct(&mut stopped, 500)),
        ms(*stopped.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| partition, lease_ttl {ttl}s: up on the other side after the cut | {} | {} | {n} |",
        ms(pct(&mut taken, 500)),
        ms(*taken.last().unwrap_or(&Duration::ZERO))
    );
    drop(nodes);
    Ok(())
}

/// A flex service (`flex_target = 2`, `flex_max = 2`, one `type = flag` fs) on 3 nodes: a node
/// with an instance killed, the time until the third node's instance is up (the flag file
/// there), `runs` times; the killed node comes back (its run dir emptied, as a boot empties the
/// tmpfs) before the next run.
fn flex_bench(bins: &(PathBuf, PathBuf), ttl: u64, runs: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let text = "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\ntopology = \"flex\"\nflex_max = 2\n\
                flex_target = 2\norchestrate = \"ha\"\n\n[fs.flag]\ntype = \"flag\"\n";
    let mut nodes = cluster(&lan, &etcd, bins, 3, ttl, |_| {
        vec![("fx.toml".to_string(), text.to_string())]
    })?;
    let flag = |n: &Node| n.run_dir().join("fx/flags/fs#flag");
    let live = |nodes: &[Node]| -> Vec<usize> {
        (0..nodes.len())
            .filter(|i| nodes[*i].holder_pid().is_some() && flag(&nodes[*i]).exists())
            .collect()
    };
    let mut times = Vec::new();
    for _ in 0..runs {
        wait_until(Duration::from_secs(30), "two instances", || {
            live(&nodes).len() == 2
        });
        let before = live(&nodes);
        let victim = before[0];
        let t = Instant::now();
        nodes[victim].kill();
        loop {
            let now = live(&nodes);
            ensure!(now.len() <= 2, "more than flex_max instances: {now:?}");
            if now.len() == 2 {
                break;
            }
            ensure!(
                t.elapsed() < Duration::from_secs(60),
                "no replacement in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(t.elapsed());
        let _ = std::fs::remove_dir_all(nodes[victim].run_dir().join("fx"));
        nodes[victim].restart();
        nodes[victim].spawn_svcd(bins.0.to_str().context("utf-8 path")?);
        nodes[victim].wait_svcd_ready();
        let name = nodes[victim].name().to_string();
        wait_until(Duration::from_secs(30), "the node back", || {
            mon(&bins.1, &nodes[(victim + 1) % 3])
                .is_some_and(|v| v["nodes"][name.as_str()]["hb"] == "up")
        });
    }
    times.sort();
    println!(
        "| flex replacement after node death (target 2 of 3 nodes), lease_ttl {ttl}s | {} | {} | {runs} |",
        ms(pct(&mut times, 500)),
        ms(*times.last().unwrap_or(&Duration::ZERO))
    );
    drop(nodes);
    Ok(())
}

/// `services` services on n1..n3 of one fs each, never mounted (the device is absent), as
/// svcd-bench: what the rss and idle cases load the nodes with.
fn fs_services(services: usize) -> Vec<(String, String)> {
    (0..services)
        .map(|i| {
            let name = format!("svc{i:03}");
            (
                format!("{name}.toml"),
                format!(
                    "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\n\n[fs.1]\n\
                     dev = \"/dev/vg{name}/data\"\nmnt = \"/srv/{name}\"\ntype = \"ext4\"\n"
                ),
            )
        })
        .collect()
}

/// Waits (up to `within`) until `node` sees every node's record of every one of `services`
/// services (each record reached every other node).
fn wait_published(svc_bin: &Path, node: &Node, services: usize, within: Duration) {
    wait_until(within, "every record published", || {
        mon(svc_bin, node).is_some_and(|v| {
            v["services"].as_object().is_some_and(|s| {
                s.len() == services
                    && s.values()
                        .all(|x| x["nodes"].as_object().is_some_and(|n| n.len() == 3))
            })
        })
    });
}

fn rss_bench(bins: &(PathBuf, PathBuf), services: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let nodes = cluster(&lan, &etcd, bins, 3, 3, |_| fs_services(services))?;
    wait_published(&bins.1, &nodes[0], services, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let mut rss = BTreeMap::new();
    for n in &nodes {
        let pid = n.svcd_pid().context("svcd pid")?;
        rss.insert(n.name().to_string(), rss_kib(pid)?.0);
    }
    let max = rss.values().max().copied().unwrap_or(0);
    println!(
        "| svcd RSS, 3 nodes x {services} services (max of {:?} KiB) | {:.1} MB | | 1 |",
        rss,
        f64::from(u32::try_from(max).unwrap_or(u32::MAX)) / 1024.0
    );
    drop(nodes);
    Ok(())
}

/// The idle cost of svcd on a cluster node: 3 nodes x `services` services (one fs each, never
/// mounted, nobody starts them), checks every second; once every record is published, the CPU
/// time each svcd uses over `IDLE_WINDOW`, as a share of one core and per service check.
fn idle_bench(bins: &(PathBuf, PathBuf), services: usize) -> Result<()> {
    const IDLE_WINDOW: Duration = Duration::from_secs(20);
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let nodes = cluster_checking(&lan, &etcd, bins, (3, 5, "1s"), |_| fs_services(services))?;
    wait_published(&bins.1, &nodes[0], services, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<u32> = nodes
        .iter()
        .map(|n| n.svcd_pid().context("svcd pid"))
        .collect::<Result<_>>()?;
    let before: Vec<f64> = pids
        .iter()
        .map(|p| cpu_seconds(*p))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let wall = t.elapsed().as_secs_f64();
    let mut shares = Vec::new();
    for (p, b) in pids.iter().zip(&before) {
        shares.push((cpu_seconds(*p)? - b) / wall);
    }
    shares.sort_by(f64::total_cmp);
    let median = shares[shares.len() / 2];
    let max = shares[shares.len() - 1];
    // One check per service per second.
    let n = f64::from(u32::try_from(services)?);
    let per_check_us = |share: f64| share * 1e6 / n;
    println!(
        "| idle svcd, 3 nodes x {services} services, 1 s checks: CPU (share of a core; per service check) | {:.1} % ({:.0} µs) | {:.1} % ({:.0} µs) | 3 nodes x {:.0} s |",
        median * 100.0,
        per_check_us(median),
        max * 100.0,
        per_check_us(max),
        wall
    );
    drop(nodes);
    Ok(())
}

/// The `k`-th service address of the scale case: 198.18.0.0/15 (RFC 2544's benchmark range), a
/// subnet of its own on the nodes' `eth0`, so that 1000 fit.
fn scale_addr(k: usize) -> Result<Ipv4Addr> {
    let k = u32::try_from(k)?;
    Ok(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 10)) + k))
}

/// The IPv4 addresses on the interfaces of network namespace `ns`.
fn ns_addrs(ns: &str) -> Result<HashSet<Ipv4Addr>> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show"])
        .output()?;
    ensure!(out.status.success(), "ip addr show in {ns}");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(3)?.split('/').next()?.parse().ok()
        })
        .collect())
}

/// etcd's current revision (every write bumps it once).
fn etcd_revision(etcd: &Etcd) -> Result<u64> {
    let out = etcd
        .etcdctl()
        .args(["endpoint", "status", "-w", "json"])
        .output()?;
    ensure!(out.status.success(), "etcdctl endpoint status");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v[0]["Status"]["header"]["revision"]
        .as_u64()
        .context("no revision in etcdctl's answer")
}

/// The lines of `node`'s svcd log that say a start here ended well.
fn starts_logged(node: &Node) -> usize {
    node.svcd_log()
        .lines()
        .filter(|l| l.contains(&format!(": started on {} (", node.name())))
        .count()
}

/// Where a process's resident memory is: its thread count and its largest mappings by RSS
/// (`/proc/PID/smaps`: size and RSS in KiB, the mapping's name; glibc's per-thread malloc
/// arenas are the anonymous mappings of up to 64 MiB, thread stacks those of 2 MiB + a guard).
fn memory_map(pid: u32) -> String {
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|t| t.trim().to_string()))
        .unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, u64, String)> = Vec::new();
    for l in smaps.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
        {
            let size = w[0]
                .split_once('-')
                .and_then(|(a, b)| {
                    Some(u64::from_str_radix(b, 16).ok()? - u64::from_str_radix(a, 16).ok()?)
                })
                .unwrap_or_default()
                / 1024;
            maps.push((0, size, w.get(5).copied().unwrap_or("[anon]").to_string()));
        } else if w.first() == Some(&"Rss:")
            && let Some(m) = maps.last_mut()
        {
            m.0 = w.get(1).and_then(|v| v.parse().ok()).unwrap_or_default();
        }
    }
    let anon: u64 = maps.iter().filter(|m| m.2 == "[anon]").map(|m| m.0).sum();
    let heap: u64 = maps.iter().filter(|m| m.2 == "[heap]").map(|m| m.0).sum();
    let files: u64 = maps
        .iter()
        .filter(|m| m.2.starts_with('/'))
        .map(|m| m.0)
        .sum();
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    let top: Vec<String> = maps
        .iter()
        .take(6)
        .map(|(rss, size, name)| format!("{rss}/{size} KiB {name}"))
        .collect();
    format!(
        "svcd {pid}: {threads} threads; RSS in anonymous mappings {anon} KiB, [heap] {heap} KiB, files {files} KiB; largest (RSS/size): {}",
        top.join(", ")
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The cluster at size (issue 24): 3 nodes on a 1-member etcd, lease_ttl 3 s, checks every
/// 10 s, `services` HA services of one ip each (`nodes = n1 n2 n3`: all placed on n1). Prints
/// the placement (time, starts, etcd revisions), n1's idle svcd (CPU over 20 s, RSS), `svc mon`
/// on n2, then kills n1 and samples the addresses of n2 and n3 until every service is up on
/// one of them: the failover time of each service (kill to its address up), and the samples in
/// which one address was up on both (a double start).
fn scale_bench(bins: &(PathBuf, PathBuf), services: usize) -> Result<()> {
    const IDLE_WINDOW: Duration = Duration::from_secs(20);
    let load_before = loadavg();
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let addrs: Vec<Ipv4Addr> = (0..services).map(scale_addr).collect::<Result<_>>()?;
    let files = |_: &Node| {
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                (
                    format!("s{i:04}.toml"),
                    format!(
                        "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\norchestrate = \"ha\"\n\n\
                         [ip.1]\nipname = \"{a}\"\nipdev = \"eth0\"\nnetmask = 15\n"
                    ),
                )
            })
            .collect()
    };
    let rev0 = etcd_revision(&etcd)?;
    let t = Instant::now();
    let mut nodes = cluster(&lan, &etcd, bins, 3, 3, files)?;
    let want: HashSet<Ipv4Addr> = addrs.iter().copied().collect();
    let n1 = nodes[0].netns().name.clone();
    wait_until(Duration::from_secs(300), "every service up on n1", || {
        ns_addrs(&n1).is_ok_and(|a| want.is_subset(&a))
    });
    let placed = t.elapsed();
    // An address is up before its start ends (the gratuitous ARPs, the status check, the
    // target put): the starts are counted once they have all ended (bounded), else a loaded
    // machine counts the ones still under way as missing (282 of 300 in the last round).
    // Then the placement's writes settle before they are counted.
    let w = Instant::now();
    while nodes.iter().map(starts_logged).sum::<usize>() < services
        && w.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let rev1 = etcd_revision(&etcd)?;
    let starts: usize = nodes.iter().map(starts_logged).sum();
    // n1 idle: CPU over the window, RSS after it; etcd writes meanwhile.
    let pid = nodes[0].svcd_pid().context("svcd pid")?;
    let cpu0 = cpu_seconds(pid)?;
    let w = Instant::now();
    std::thread::sleep(IDLE_WINDOW);
    let share = (cpu_seconds(pid)? - cpu0) / w.elapsed().as_secs_f64();
    let rss = rss_kib(pid)?.0;
    println!("({})", memory_map(pid));
    let rev2 = etcd_revision(&etcd)?;
    let mut mons = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = svc(&bins.1, &nodes[1], &["mon"])?;
        mons.push(t.elapsed());
        ensure!(
            out.status.success(),
            "svc mon: {}",
            berth_testkit::describe(&out)
        );
    }
    // Node death: n1 killed whole, then n2's and n3's addresses sampled.
    let (n2, n3) = (nodes[1].netns().name.clone(), nodes[2].netns().name.clone());
    let mut up: BTreeMap<Ipv4Addr, Duration> = BTreeMap::new();
    let (mut samples, mut doubles) = (0usize, 0usize);
    let rev3 = etcd_revision(&etcd)?;
    let t = Instant::now();
    nodes[0].kill();
    while up.len() < services {
        ensure!(
            t.elapsed() < Duration::from_secs(120),
            "{} of {services} services up after 120 s",
            up.len()
        );
        let (a, b) = (ns_addrs(&n2)?, ns_addrs(&n3)?);
        let at = t.elapsed();
        samples += 1;
        for ip in &addrs {
            let (x, y) = (a.contains(ip), b.contains(ip));
            if x && y {
                doubles += 1;
            }
            if x || y {
                up.entry(*ip).or_insert(at);
            }
        }
    }
    // Late double starts: sample a while longer.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(5) {
        let (a, b) = (ns_addrs(&n2)?, ns_addrs(&n3)?);
        samples += 1;
        doubles += a.intersection(&b).filter(|ip| want.contains(ip)).count();
        std::thread::sleep(Duration::from_millis(50));
    }
    let rev4 = etcd_revision(&etcd)?;
    let fo_starts: usize = nodes[1..].iter().map(starts_logged).sum();
    let mut times: Vec<Duration> = up.values().copied().collect();
    let within = times
        .iter()
        .filter(|d| **d <= Duration::from_secs(5))
        .count();
    let med = pct(&mut times, 500);
    let max = times.last().copied().unwrap_or_default();
    let mon_med = pct(&mut mons, 500);
    let n = f64::from(u32::try_from(services)?);
    let revs = |a: u64, b: u64| f64::from(u32::try_from(b.saturating_sub(a)).unwrap_or(u32::MAX));
    println!(
        "| {services} | {:.2} / {:.2} s | {within}/{services} | {doubles} in {samples} samples x {services} | \
         {:.1} s, {starts} starts, {:.1} revisions per service | {:.1} % | {:.1} MiB | {} | \
         {fo_starts} starts, {:.1} revisions per service | {load_before} -> {} |",
        med.as_secs_f64(),
        max.as_secs_f64(),
        placed.as_secs_f64(),
        revs(rev0, rev1) / n,
        share * 100.0,
        f64::from(u32::try_from(rss).unwrap_or(u32::MAX)) / 1024.0,
        ms(mon_med),
        revs(rev3, rev4) / n,
        loadavg()
    );
    if rev2 != rev1 {
        println!(
            "(idle: {} etcd revisions in {:.0} s)",
            rev2 - rev1,
            IDLE_WINDOW.as_secs_f64()
        );
    }
    drop(nodes);
    Ok(())
}

/// Issue 24 item 3 where the machine cannot run it: a cluster of `nodes` nodes x `per_node`
/// services simulated in one etcd by a bench client: every node's record (`per_node` services
/// each, `nodes = <it> <next> <next but one>`), its lease, and its services' owner keys (taken
/// through [`berth_cluster::Taker`], in batches, as svcd does). Then what berth does on that
/// size: the view (`Store::snapshot`, as svcd's watch starts and `svc mon` reads), n1's
/// planner over its services, the fleet grid; the request and database sizes.
fn sim_bench(nodes: usize, per_node: usize) -> Result<()> {
    let load_before = loadavg();
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let ns = Netns::new("rgs");
    lan.attach(&ns, "eth0", 240);
    let cfg = cluster_cfg(&etcd);
    let path = ns.path();
    let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
    let rev0 = etcd_revision(&etcd)?;
    let out = std::thread::spawn(move || -> Result<Vec<String>> {
        let f = std::fs::File::open(&path).context("open the netns")?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut lines = Vec::new();
            let mut record_bytes = 0;
            let mut take_time = Duration::ZERO;
            let mut leases = BTreeMap::new();
            for (k, node) in names.iter().enumerate() {
                let store = Store::connect(&cfg, node, Duration::from_secs(10)).await?;
                let lease = store.grant(600).await?;
                leases.insert(node.clone(), lease);
                let svcs: Vec<String> = (0..per_node).map(|i| format!("{node}-s{i:04}")).collect();
                let mut rec = record(0);
                rec.name = node.clone();
                for s in &svcs {
                    rec.services.insert(
                        s.clone(),
                        ServiceSummary {
                            avail: Status::Up,
                            overall: Status::Up,
                            checksum: "0123456789abcdef".to_string(),
                            valid: true,
                            nodes: (0..3).map(|j| names[(k + j) % names.len()].clone()).collect(),
                            drpnodes: Vec::new(),
                            invalid: None,
                            failed_ms: None,
                            flex: None,
                        },
                    );
                }
                record_bytes = serde_json::to_vec(&rec)?.len();
                store.put_node(&rec, lease).await?;
                let taker = berth_cluster::Taker::spawn(store.clone(), &tokio::runtime::Handle::current());
                let why = berth_cluster::OwnerWhy::Orchestrate;
                let t = Instant::now();
                let taken = futures_util::future::join_all(
                    svcs.iter().map(|s| taker.take(s, lease, &why, None)),
                )
                .await;
                take_time += t.elapsed();
                for r in taken {
                    r?;
                }
            }
            let reader = Store::connect(&cfg, "n1", Duration::from_secs(30)).await?;
            let mut snaps = Vec::new();
            let mut view = None;
            for _ in 0..5 {
                let t = Instant::now();
                let v = reader.snapshot().await;
                snaps.push(t.elapsed());
                view = Some(v.map_err(|e| anyhow!("the view of {nodes} x {per_node}: {e}"))?);
            }
            let view = view.context("no view")?;
            ensure!(
                view.owners.len() == nodes * per_node && view.nodes.len() == nodes,
                "the view has {} owners and {} nodes",
                view.owners.len(),
                view.nodes.len()
            );
            // n1's planner over the services whose file it has (its own, its two neighbours').
            let mine: Vec<(String, Vec<String>)> = view
                .nodes
                .values()
                .flat_map(|n| n.record.services.iter())
                .filter(|(_, s)| s.nodes.iter().any(|n| n == "n1"))
                .map(|(name, s)| (name.clone(), s.nodes.clone()))
                .collect();
            let configs: Vec<berth_cluster::plan::Config<'_>> = mine
                .iter()
                .map(|(name, nodes)| berth_cluster::plan::Config {
                    name,
                    orchestrate: berth_model::config::Orchestrate::Ha,
                    nodes,
                })
                .collect();
            let health = berth_cluster::plan::Health {
                held: true,
                lease: leases.get("n1").copied().unwrap_or_default(),
            };
            let memory = berth_cluster::plan::Memory::default();
            let now = berth_cluster::plan::Now {
                ms: berth_cluster::now_ms(),
                ready: true,
            };
            let (mut plans, mut fleets) = (Vec::new(), Vec::new());
            for _ in 0..20 {
                let t = Instant::now();
                let steps = berth_cluster::plan::plan(&view, "n1", health, &configs, &memory, now);
                plans.push(t.elapsed());
                ensure!(steps.is_empty(), "the planner wants {} steps", steps.len());
                let t = Instant::now();
                let fleet = view.fleet();
                fleets.push(t.elapsed());
                drop(fleet);
            }
            let total = nodes * per_node;
            lines.push(format!(
                "| owner keys taken in batches, {total} ({nodes} takers of {per_node}) | {:.2} s in all | | 1 |",
                take_time.as_secs_f64()
            ));
            lines.push(format!(
                "| the view (snapshot) of {nodes} node records ({record_bytes} bytes each) + {total} owner keys | {} | {} | 5 |",
                ms(pct(&mut snaps, 500)),
                ms(pct(&mut snaps, 1000))
            ));
            lines.push(format!(
                "| n1's planner over {} services on that view | {} | {} | 20 |",
                configs.len(),
                ms(pct(&mut plans, 500)),
                ms(pct(&mut plans, 1000))
            ));
            lines.push(format!(
                "| the fleet grid (`svc mon`'s) of that view | {} | {} | 20 |",
                ms(pct(&mut fleets, 500)),
                ms(pct(&mut fleets, 1000))
            ));
            Ok(lines)
        })
    })
    .join()
    .map_err(|_| anyhow!("the bench thread panicked"))??;
    let rev1 = etcd_revision(&etcd)?;
    let status = etcd
        .etcdctl()
        .args(["endpoint", "status", "-w", "json"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let db = v[0]["Status"]["dbSize"].as_u64().unwrap_or_default();
    for l in out {
        println!("{l}");
    }
    println!(
        "| etcd after it: {} revisions, database {:.1} MiB | | | load {load_before} -> {} |",
        rev1 - rev0,
        db as f64 / 1048576.0,
        loadavg()
    );
    drop(ns);
    Ok(())
}

/// Time to spread a changed service file to 3 nodes: `svc app set` on n1, then until the new
/// bytes are on every node's disk (polled every 2 ms on the host).
fn spread_bench(bins: &(PathBuf, PathBuf), runs: usize) -> Result<()> {
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let nodes = cluster(&lan, &etcd, bins, 3, 3, |_| Vec::new())?;
    let text = |i: usize| {
        format!(
            "[service]\nnodes = [\"n1\", \"n2\", \"n3\"]\n\n[ip.1]\nipname = \"{}\"\nipdev = \"eth0\"\n\
             netmask = 24\nprobe_timeout = \"{}ms\"\n",
            lan.host(150),
            200 + i
        )
    };
    let src = nodes[0].path("app-src.toml");
    std::fs::write(&src, text(0))?;
    let out = svc(
        &bins.1,
        &nodes[0],
        &[
            "app",
            "create",
            "--config",
            src.to_str().context("utf-8 path")?,
        ],
    )?;
    ensure!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_all = |want: &str| {
        nodes.iter().all(|n| {
            std::fs::read_to_string(n.config_dir().join("services/app.toml"))
                .is_ok_and(|t| t == want)
        })
    };
    wait_until(Duration::from_secs(15), "created everywhere", || {
        on_all(&text(0))
    });
    let (mut total, mut after) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let t0 = Instant::now();
        let kw = format!("ip#1.probe_timeout={}ms", 200 + i);
        let out = svc(&bins.1, &nodes[0], &["app", "set", "--kw", &kw])?;
        ensure!(
            out.status.success(),
            "set: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let returned = t0.elapsed();
        let want = text(i);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !on_all(&want) {
            ensure!(
                Instant::now() < deadline,
                "run {i}: not on every node within 15 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let all = t0.elapsed();
        total.push(all);
        after.push(all.saturating_sub(returned));
    }
    println!(
        "| spread a changed file to 3 nodes (`svc set` on n1 until on every disk) | {} | {} | {runs} |",
        ms(pct(&mut total, 500)),
        ms(pct(&mut total, 990))
    );
    println!(
        "| ... of which after `svc set` returned | {} | {} | {runs} |",
        ms(pct(&mut after, 500)),
        ms(pct(&mut after, 990))
    );
    drop(nodes);
    Ok(())
}

fn main() -> Result<()> {
    require_root();
    let mut args = std::env::args().skip(1);
    let switches: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let services: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let exe = std::env::current_exe()?;
    let bins = (exe.with_file_name("svcd"), exe.with_file_name("svc"));
    for b in [&bins.0, &bins.1] {
        ensure!(
            b.exists(),
            "{} is missing: build berth-agent and berth-cli",
            b.display()
        );
    }
    println!("| case | p50 / median | p99 / max | runs |");
    println!("|---|---|---|---|");
    // CLUSTER_BENCH_ONLY=txn|switch|rss runs one case.
    let only = std::env::var("CLUSTER_BENCH_ONLY").unwrap_or_default();
    let run = |case: &str| only.is_empty() || only == case;
    if run("txn") {
        txn_bench(1, 200)?;
        txn_bench(3, 200)?;
    }
    if run("switch") {
        switch_bench(&bins, switches)?;
    }
    if run("rss") {
        rss_bench(&bins, services)?;
    }
    if run("idle") {
        idle_bench(&bins, 30)?;
        idle_bench(&bins, 300)?;
    }
    // Only when asked: 1000 services take minutes.
    if only == "scale" {
        let sizes =
            std::env::var("CLUSTER_BENCH_SCALE").unwrap_or_else(|_| "30,100,300,1000".into());
        println!(
            "| N | failover median / max | within 5 s | double starts | placement | idle svcd n1 (10 s checks) | svcd RSS n1 | `svc mon` median | failover starts, etcd | load average |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for n in sizes.split(',') {
            scale_bench(&bins, n.trim().parse()?)?;
        }
    }
    // Only when asked: 32 x 1000 keys take a minute to write.
    if only == "sim" {
        let size = std::env::var("CLUSTER_BENCH_SIM").unwrap_or_else(|_| "32x1000".into());
        let (n, per) = size
            .split_once('x')
            .context("CLUSTER_BENCH_SIM is NODESxSERVICES")?;
        sim_bench(n.parse()?, per.parse()?)?;
    }
    if run("spread") {
        spread_bench(&bins, switches.max(20))?;
    }
    if run("flex") {
        flex_bench(&bins, 3, switches)?;
    }
    if run("failover") {
        failover_bench(&bins, 3, switches)?;
        failover_bench(&bins, 5, switches)?;
    }
    Ok(())
}
