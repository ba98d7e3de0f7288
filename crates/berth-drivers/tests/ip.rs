//! The ip driver on the real host, each case in its own pair of network namespaces: a "node"
//! namespace (where the driver runs: the test thread `setns`es into it) and a "peer" namespace,
//! joined by a veth pair `n0` (node) / `p0` (peer). The address checks use `ip -n NS`, never the
//! driver's own status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use berth_drivers::{Ctx, Outcome, ip};
use berth_model::Status;
use berth_model::config::{IpSpec, Prefix, ServiceConfig, Spec};
use berth_model::paths::Paths;
use berth_testkit::{Netns, require_root, run, veth};

/// Two namespaces and a veth between them; the peer side has `10.9.0.1/24` and `fd00:9::1/64`.
struct Lab {
    node: Netns,
    peer: Netns,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let node = Netns::new("bn");
        let peer = Netns::new("bp");
        veth(&node, "n0", &peer, "p0");
        peer.exec("ip", &["addr", "add", "10.9.0.1/24", "dev", "p0"]);
        Lab { node, peer }
    }

    /// `ip -n NS -o addr show dev DEV`.
    fn addrs(ns: &Netns, dev: &str) -> String {
        let out = run("ip", &["-n", &ns.name, "-o", "addr", "show", "dev", dev]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn node_addrs(&self) -> String {
        Lab::addrs(&self.node, "n0")
    }

    fn mac(ns: &Netns, dev: &str) -> String {
        let out = run("ip", &["-n", &ns.name, "-o", "link", "show", "dev", dev]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = text.find("link/ether ").expect("an ethernet address") + "link/ether ".len();
        text[at..at + 17].to_string()
    }
}

fn service(text: &str) -> ServiceConfig {
    ServiceConfig::parse(Path::new("/tmp/iptest.toml"), text).unwrap()
}

fn ip_spec(svc: &ServiceConfig) -> IpSpec {
    match &svc.resources[0].spec {
        Spec::Ip(s) => s.clone(),
        other => panic!("not an ip resource: {other:?}"),
    }
}

fn spec(ipname: &str, netmask: Option<u8>) -> IpSpec {
    IpSpec {
        ipname: ipname.to_string(),
        ipdev: "n0".to_string(),
        netmask: netmask.map(Prefix),
        gateway: None,
        probe_timeout: Duration::from_millis(300),
        garp_count: 1,
        garp_interval: Duration::from_millis(100),
        netns: None,
    }
}

fn ctx<'a>(svc: &'a ServiceConfig, paths: &'a Paths, force: bool) -> Ctx<'a> {
    Ctx {
        svc,
        nodename: "node1",
        paths,
        force,
        fence: None,
        prechecked: None,
    }
}

#[test]
fn ip_contract_start_stop_status() {
    let lab = Lab::new();
    let svc = service(
        "[service]\nnodes = [\"node1\"]\n\n[ip.1]\nipdev = \"n0\"\nipname = \"10.9.0.2\"\n\
         netmask = \"255.255.255.0\"\nprobe_timeout = \"200ms\"\n",
    );
    let spec = ip_spec(&svc);
    assert_eq!(spec.probe_timeout, Duration::from_millis(200));
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);
    let logs = berth_testkit::LogCapture::start();

    assert_eq!(ip::status(&c, &spec).status, Status::Down);
    ip::precheck(&c, &spec).unwrap();
    assert!(
        logs.text().contains("checking 10.9.0.2 availability"),
        "{}",
        logs.text()
    );
    assert_eq!(ip::start(&c, &spec).unwrap(), Outcome::Changed);
    assert!(
        lab.node_addrs().contains("inet 10.9.0.2/24"),
        "{}",
        lab.node_addrs()
    );
    assert!(
        logs.text().contains("ip addr add 10.9.0.2/24 dev n0"),
        "{}",
        logs.text()
    );

    // Already up: the precheck does not probe, the start is a no-op.
    ip::precheck(&c, &spec).unwrap();
    assert_eq!(ip::start(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert!(logs.text().contains("10.9.0.2 is already up on n0"));
    assert_eq!(
        lab.node_addrs().matches("inet 10.9.0.2/").count(),
        1,
        "{}",
        lab.node_addrs()
    );
    let st = ip::status(&c, &spec);
    assert_eq!(st.status, Status::Up);
    assert_eq!(st.label, "10.9.0.2@n0");

    assert_eq!(ip::stop(&c, &spec).unwrap(), Outcome::Changed);
    assert!(
        !lab.node_addrs().contains("10.9.0.2"),
        "{}",
        lab.node_addrs()
    );
    assert_eq!(ip::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert!(!lab.node_addrs().contains("10.9.0.2"));
    assert_eq!(ip::status(&c, &spec).status, Status::Down);
}

#[test]
fn ip_netmask_comes_from_the_device_when_absent() {
    let lab = Lab::new();
    lab.node
        .exec("ip", &["addr", "add", "10.9.0.3/26", "dev", "n0"]);
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);

    let s = spec("10.9.0.20", None);
    ip::precheck(&c, &s).unwrap();
    ip::start(&c, &s).unwrap();
    assert!(
        lab.node_addrs().contains("inet 10.9.0.20/26"),
        "{}",
        lab.node_addrs()
    );
    ip::stop(&c, &s).unwrap();

    // Not on any subnet of the device: a clear error, nothing added.
    let s = spec("10.77.0.20", None);
    let e = ip::precheck(&c, &s).unwrap_err().to_string();
    assert!(
        e.contains("no netmask for 10.77.0.20") && e.contains("n0"),
        "{e}"
    );
    let e = ip::start(&c, &s).unwrap_err().to_string();
    assert!(e.contains("set netmask"), "{e}");
    assert!(!lab.node_addrs().contains("10.77.0.20"));
}

#[test]
fn ip_device_missing_or_down_is_refused() {
    let lab = Lab::new();
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);

    let mut s = spec("10.9.0.2", Some(24));
    s.ipdev = "nosuch0".to_string();
    let e = ip::precheck(&c, &s).unwrap_err().to_string();
    assert_eq!(e, "device nosuch0 does not exist");
    assert_eq!(ip::start(&c, &s).unwrap_err().to_string(), e);
    assert_eq!(ip::stop(&c, &s).unwrap(), Outcome::AlreadyDone);
    let st = ip::status(&c, &s);
    assert_eq!(st.status, Status::Down);
    assert!(st.log[0].message.contains("nosuch0"));

    let s = spec("10.9.0.2", Some(24));
    ip::start(&c, &s).unwrap();
    lab.node.exec("ip", &["link", "set", "n0", "down"]);
    let st = ip::status(&c, &s);
    assert_eq!(st.status, Status::Warn);
    assert!(st.log[0].message.contains("device is down"), "{:?}", st.log);
    ip::stop(&c, &s).unwrap();
    assert!(!lab.node_addrs().contains("10.9.0.2"));
    let e = ip::precheck(&c, &s).unwrap_err().to_string();
    assert!(e.contains("device n0 is down"), "{e}");
    let e = ip::start(&c, &s).unwrap_err().to_string();
    assert!(e.contains("device n0 is down"), "{e}");
    assert!(!lab.node_addrs().contains("10.9.0.2"));
}

#[test]
fn ip_conflict_is_refused_every_time_and_force_skips_it() {
    let lab = Lab::new();
    lab.peer
        .exec("ip", &["addr", "add", "10.9.0.7/24", "dev", "p0"]);
    let peer_mac = Lab::mac(&lab.peer, "p0");
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let s = spec("10.9.0.7", Some(24));

    let c = ctx(&svc, &paths, false);
    let mut refused = 0;
    for _ in 0..20 {
        if let Err(e) = ip::precheck(&c, &s) {
            assert_eq!(
                e.to_string(),
                format!(
                    "address 10.9.0.7 is already in use on the link of n0: answered by {peer_mac}"
                )
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "refused {refused} of 20 probes");
    assert!(!lab.node_addrs().contains("10.9.0.7"));

    // --force: no probe, a warning in the log, and the start goes through.
    let logs = berth_testkit::LogCapture::start();
    let c = ctx(&svc, &paths, true);
    ip::precheck(&c, &s).unwrap();
    assert!(
        logs.text()
            .contains("--force: skipping the conflict check of 10.9.0.7 on n0"),
        "{}",
        logs.text()
    );
    assert!(logs.text().contains("WARN"), "{}", logs.text());
    assert_eq!(ip::start(&c, &s).unwrap(), Outcome::Changed);
    assert!(lab.node_addrs().contains("inet 10.9.0.7/24"));
    ip::stop(&c, &s).unwrap();
}

#[test]
fn ip_free_address_passes_the_probe() {
    let lab = Lab::new();
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);
    // The peer's own address answers; a free one does not.
    let e = ip::precheck(&c, &spec("10.9.0.1", Some(24))).unwrap_err();
    assert!(e.to_string().contains("10.9.0.1"), "{e}");
    ip::precheck(&c, &spec("10.9.0.99", Some(24))).unwrap();
}

#[test]
fn ip_gratuitous_arp_updates_the_peer() {
    let lab = Lab::new();
    let node_mac = Lab::mac(&lab.node, "n0");
    // The peer still believes 10.9.0.2 is at another MAC (the node it failed over from).
    lab.peer.exec(
        "ip",
        &[
            "neigh",
            "add",
            "10.9.0.2",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "p0",
            "nud",
            "stale",
        ],
    );
    // And it learns a new address announced on the link.
    lab.peer
        .exec("sysctl", &["-q", "-w", "net.ipv4.conf.p0.arp_accept=1"]);
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);

    let neigh = |addr: &str| {
        let out = run(
            "ip",
            &["-n", &lab.peer.name, "neigh", "show", addr, "dev", "p0"],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(neigh("10.9.0.2").contains("02:00:00:00:00:99"));
    let mut s = spec("10.9.0.2", Some(24));
    s.garp_count = 2;
    ip::start(&c, &s).unwrap();
    let seen = neigh("10.9.0.2");
    assert!(seen.contains(&node_mac), "peer neighbour table: {seen}");

    assert!(!neigh("10.9.0.3").contains("lladdr"));
    ip::start(&c, &spec("10.9.0.3", Some(24))).unwrap();
    let seen = neigh("10.9.0.3");
    assert!(seen.contains(&node_mac), "peer neighbour table: {seen}");

    // garp_count = 0: no announcement.
    let mut s = spec("10.9.0.4", Some(24));
    s.garp_count = 0;
    ip::start(&c, &s).unwrap();
    assert!(
        !neigh("10.9.0.4").contains("lladdr"),
        "{}",
        neigh("10.9.0.4")
    );
}

/// Wait until no address of `dev` in `ns` is tentative (the peer's own DAD).
fn wait_not_tentative(ns: &Netns, dev: &str) {
    let start = Instant::now();
    loop {
        let out = run(
            "ip",
            &[
                "-n",
                &ns.name,
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                dev,
                "tentative",
            ],
        );
        if out.stdout.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "peer DAD never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ip_v6_start_waits_out_tentative() {
    let lab = Lab::new();
    lab.peer
        .exec("ip", &["addr", "add", "fd00:9::1/64", "dev", "p0"]);
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);
    let logs = berth_testkit::LogCapture::start();

    let s = spec("fd00:9::10", Some(64));
    ip::precheck(&c, &s).unwrap();
    assert_eq!(ip::start(&c, &s).unwrap(), Outcome::Changed);
    let a = Lab::addrs(&lab.node, "n0");
    assert!(a.contains("inet6 fd00:9::10/64"), "{a}");
    let line = a.lines().find(|l| l.contains("fd00:9::10")).unwrap();
    assert!(!line.contains("tentative"), "{line}");
    assert!(
        logs.text().contains("passed duplicate address detection"),
        "{}",
        logs.text()
    );
    assert_eq!(ip::status(&c, &s).status, Status::Up);
    assert_eq!(ip::start(&c, &s).unwrap(), Outcome::AlreadyDone);
    assert_eq!(ip::stop(&c, &s).unwrap(), Outcome::Changed);
    assert!(!Lab::addrs(&lab.node, "n0").contains("fd00:9::10"));
    assert_eq!(ip::stop(&c, &s).unwrap(), Outcome::AlreadyDone);
}

#[test]
fn ip_v6_duplicate_fails_with_dadfailed_and_is_removed() {
    let lab = Lab::new();
    lab.peer
        .exec("ip", &["addr", "add", "fd00:9::7/64", "dev", "p0"]);
    wait_not_tentative(&lab.peer, "p0");
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);

    let s = spec("fd00:9::7", Some(64));
    ip::precheck(&c, &s).unwrap();
    let e = ip::start(&c, &s).unwrap_err().to_string();
    assert!(
        e.contains("fd00:9::7") && e.contains("dadfailed") && e.contains("n0"),
        "{e}"
    );
    let a = Lab::addrs(&lab.node, "n0");
    assert!(
        !a.contains("fd00:9::7"),
        "the failed address is left on the device: {a}"
    );
    assert_eq!(ip::status(&c, &s).status, Status::Down);

    // --force: no duplicate address detection, the address is taken.
    let c = ctx(&svc, &paths, true);
    assert_eq!(ip::start(&c, &s).unwrap(), Outcome::Changed);
    let a = Lab::addrs(&lab.node, "n0");
    let line = a.lines().find(|l| l.contains("fd00:9::7/64")).expect(&a);
    assert!(
        !line.contains("dadfailed") && !line.contains("tentative"),
        "{line}"
    );
    ip::stop(&c, &s).unwrap();
    assert!(!Lab::addrs(&lab.node, "n0").contains("fd00:9::7"));
}

#[test]
fn ip_gateway_route_follows_the_address() {
    let lab = Lab::new();
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);
    let routes = || {
        let out = run("ip", &["-n", &lab.node.name, "route", "show", "default"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let mut s = spec("10.9.0.2", Some(24));
    s.gateway = Some("10.9.0.1".parse().unwrap());
    ip::start(&c, &s).unwrap();
    assert!(
        routes().contains("default via 10.9.0.1 dev n0"),
        "{}",
        routes()
    );
    assert_eq!(ip::status(&c, &s).status, Status::Up);
    run("ip", &["-n", &lab.node.name, "route", "del", "default"]);
    let st = ip::status(&c, &s);
    assert_eq!(st.status, Status::Warn);
    assert!(st.log[0].message.contains("10.9.0.1"), "{:?}", st.log);
    assert_eq!(ip::start(&c, &s).unwrap(), Outcome::Changed);
    assert!(routes().contains("default via 10.9.0.1 dev n0"));
    ip::stop(&c, &s).unwrap();
    assert!(!routes().contains("default"), "{}", routes());
    assert!(!lab.node_addrs().contains("10.9.0.2"));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Timing figures for the docs (run with `--ignored --nocapture`): driver start/stop without the
/// probe against raw rtnetlink add/del in the same namespace, and the probe.
#[test]
#[ignore = "a measurement: run explicitly with --ignored --nocapture"]
fn ip_measure() {
    let lab = Lab::new();
    let svc = service("[service]\n");
    let paths = Paths::default();
    let _in = lab.node.enter();
    let c = ctx(&svc, &paths, false);
    const N: usize = 21;

    // Raw rtnetlink (the rtnetlink crate on a current-thread runtime, connection kept open).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut raw_add, mut raw_del) = (Vec::new(), Vec::new());
    rt.block_on(async {
        use futures_util::StreamExt;
        let (conn, handle, _) = rtnetlink::new_connection().unwrap();
        tokio::spawn(conn);
        let mut links = handle.link().get().match_name("n0").execute();
        let index = links.next().await.unwrap().unwrap().header.index;
        for _ in 0..N {
            let addr: std::net::IpAddr = "10.9.0.40".parse().unwrap();
            let t = Instant::now();
            handle
                .address()
                .add(index, addr, 24)
                .execute()
                .await
                .unwrap();
            raw_add.push(t.elapsed());
            let mut got = handle
                .address()
                .get()
                .set_link_index_filter(index)
                .set_address_filter(addr)
                .execute();
            let msg = got.next().await.unwrap().unwrap();
            drop(got);
            let t = Instant::now();
            handle.address().del(msg).execute().await.unwrap();
            raw_del.push(t.elapsed());
        }
    });

    let mut s = spec("10.9.0.41", Some(24));
    let mut measure = |garp: u32| {
        s.garp_count = garp;
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for _ in 0..N {
            let t = Instant::now();
            assert_eq!(ip::start(&c, &s).unwrap(), Outcome::Changed);
            up.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(ip::stop(&c, &s).unwrap(), Outcome::Changed);
            down.push(t.elapsed());
        }
        (median(up), median(down))
    };
    let (up0, down0) = measure(0);
    let (up1, _) = measure(1);
    let (up3, _) = measure(3);

    let s = spec("10.9.0.42", Some(24));
    let mut probe = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        ip::precheck(&c, &s).unwrap();
        probe.push(t.elapsed());
    }
    let s7 = spec("10.9.0.1", Some(24));
    let mut refused = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        let e = ip::precheck(&c, &s7).unwrap_err();
        assert!(e.to_string().contains("10.9.0.1 is already in use"), "{e}");
        refused.push(t.elapsed());
    }
    println!("median of {N}:");
    println!(
        "  raw rtnetlink add {:?}, del {:?}",
        median(raw_add),
        median(raw_del)
    );
    println!("  driver start (garp 0) {up0:?}, stop {down0:?}");
    println!("  driver start (garp 1) {up1:?}; (garp 3, 100 ms apart) {up3:?}");
    println!(
        "  precheck, free address (300 ms probe) {:?}",
        median(probe)
    );
    println!("  precheck, conflicting address {:?}", median(refused));
}
