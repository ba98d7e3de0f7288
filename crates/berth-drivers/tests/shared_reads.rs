//! The shared host reads of a status walk ([`berth_drivers::reads`]) against each service's own
//! reads, on real resources: a mounted loop ext4 image (and a mount point mounted from another
//! device), addresses on a veth in a network namespace (up, absent, on a missing device, with a
//! missing gateway, IPv6), LVM VGs on loop PVs (tagged here, tagged here with an inactive LV,
//! missing). Every service's status must be the same both ways, and the walk must read each
//! host table once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use berth_drivers::{HOST, StatusReads, reads, vg};
use berth_engine::Engine;
use berth_model::config::ServiceConfig;
use berth_model::paths::Paths;
use berth_model::{ServiceStatus, Status};
use berth_testkit::{LoopVg, Netns, TempBerth, ext4_image, lvm_ok, require_root, veth};

#[test]
fn shared_reads_give_every_service_its_own_status() {
    require_root();
    let t = TempBerth::new();
    let paths = Paths::under(t.root.path());
    let node = Netns::new("bsn");
    let peer = Netns::new("bsp");
    veth(&node, "n0", &peer, "p0");
    node.exec("ip", &["addr", "add", "10.9.0.10/24", "dev", "n0"]);
    node.exec(
        "ip",
        &["-6", "addr", "add", "fd00:9::10/64", "dev", "n0", "nodad"],
    );
    let tagged = LoopVg::new();
    lvm_ok(&["vgchange", "-q", "--addtag", "@node1", &tagged.name]);
    let with_lv = LoopVg::new();
    with_lv.add_inactive_lv("lv1");
    lvm_ok(&["vgchange", "-q", "--addtag", "@node1", &with_lv.name]);

    let img = t.path("up.img");
    let other = t.path("other.img");
    ext4_image(&img, 32);
    ext4_image(&other, 32);
    let up = t.path("mnt/up");
    let down = t.path("mnt/down");
    let texts = [
        (
            "fsup",
            format!(
                "[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                img.display(),
                up.display()
            ),
        ),
        (
            "fsdown",
            format!(
                "[fs.1]\ndev = \"/dev/nonexistent-bs\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                down.display()
            ),
        ),
        (
            "fsother",
            format!(
                "[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                other.display(),
                up.display()
            ),
        ),
        (
            "ipup",
            "[ip.1]\nipname = \"10.9.0.10\"\nipdev = \"n0\"\nnetmask = 24\n".to_string(),
        ),
        (
            "ipdown",
            "[ip.1]\nipname = \"10.9.0.11\"\nipdev = \"n0\"\nnetmask = 24\n".to_string(),
        ),
        (
            "ipnodev",
            "[ip.1]\nipname = \"10.9.0.12\"\nipdev = \"nosuch0\"\nnetmask = 24\n".to_string(),
        ),
        (
            "ipgw",
            "[ip.1]\nipname = \"10.9.0.10\"\nipdev = \"n0\"\nnetmask = 24\ngateway = \"10.9.0.1\"\n"
                .to_string(),
        ),
        (
            "ipsix",
            "[ip.1]\nipname = \"fd00:9::10\"\nipdev = \"n0\"\nnetmask = 64\n".to_string(),
        ),
        ("vgup", format!("[vg.1]\nvgname = \"{}\"\n", tagged.name)),
        ("vgwarn", format!("[vg.1]\nvgname = \"{}\"\n", with_lv.name)),
        ("vgmissing", "[vg.1]\nvgname = \"nosuchvgbs\"\n".to_string()),
        (
            "all",
            format!(
                "[ip.1]\nipname = \"10.9.0.10\"\nipdev = \"n0\"\nnetmask = 24\n\
                 [vg.1]\nvgname = \"{}\"\n[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
                tagged.name,
                img.display(),
                up.display()
            ),
        ),
    ];
    let services: Vec<ServiceConfig> = texts
        .iter()
        .map(|(name, text)| {
            let file = t.write_service(&format!("{name}.toml"), text);
            ServiceConfig::parse(&file, text).unwrap()
        })
        .collect();
    let engine = Engine::new(&HOST, &paths, "node1");
    // Mounted by the driver, not an engine start: no service claims it (a start of fsup would
    // make the mount point fsup's, and "all" on the same mount point down).
    let berth_model::config::Spec::Fs(up_fs) = &services[0].resources[0].spec else {
        panic!("fsup has an fs");
    };
    berth_drivers::fs::start(up_fs).unwrap();

    let _in = node.enter();
    let own = |svc: &ServiceConfig| engine.status(svc);
    let before: Vec<ServiceStatus> = services.iter().map(own).collect();
    let lvm_before = vg::commands_run_on_this_thread();
    let walk = Arc::new(StatusReads::new().for_services(&services));
    let shared: Vec<ServiceStatus> = reads::with(&walk, || services.iter().map(own).collect());
    let lvm_shared = vg::commands_run_on_this_thread() - lvm_before;
    let after: Vec<ServiceStatus> = services.iter().map(own).collect();
    assert_eq!(before, after, "the host changed during the test");
    for ((b, s), (name, _)) in before.iter().zip(&shared).zip(&texts) {
        assert_eq!(b, s, "{name}: shared reads give another status");
    }

    // What the statuses are (so the comparison covers every case it names).
    let avail: Vec<(&str, Status)> = texts
        .iter()
        .zip(&shared)
        .map(|((n, _), s)| (*n, s.avail))
        .collect();
    assert_eq!(
        avail,
        [
            ("fsup", Status::Up),
            ("fsdown", Status::Down),
            ("fsother", Status::Down),
            ("ipup", Status::Up),
            ("ipdown", Status::Down),
            ("ipnodev", Status::Down),
            ("ipgw", Status::Warn),
            ("ipsix", Status::Up),
            ("vgup", Status::Up),
            ("vgwarn", Status::Warn),
            ("vgmissing", Status::Down),
            ("all", Status::Up),
        ]
    );
    let logs = |i: usize| format!("{:?}", shared[i].resources);
    assert!(logs(2).contains("is mounted from"), "{}", logs(2));
    assert!(
        logs(5).contains("device nosuch0 does not exist"),
        "{}",
        logs(5)
    );
    assert!(
        logs(6).contains("default route via 10.9.0.1"),
        "{}",
        logs(6)
    );
    assert!(logs(9).contains("inactive: lv1"), "{}", logs(9));
    assert!(logs(10).contains("does not exist"), "{}", logs(10));

    // One mount table, one netlink dump of this namespace, one LVM report of the three VGs.
    assert_eq!(walk.reads_made(), 3);
    // The report (of the two VGs there are), then the missing VG's own fullreport and vgs.
    assert_eq!(lvm_shared, 3);
}

/// The netlink dump is per network namespace: a walk across two namespaces answers each from
/// its own, and a walk whose bound has passed reads afresh every time.
#[test]
fn shared_reads_follow_the_network_namespace() {
    require_root();
    let t = TempBerth::new();
    let paths = Paths::under(t.root.path());
    let a = Netns::new("bsa");
    let b = Netns::new("bsb");
    veth(&a, "n0", &b, "m0");
    a.exec("ip", &["addr", "add", "10.9.1.1/24", "dev", "n0"]);
    let text = "[ip.1]\nipname = \"10.9.1.1\"\nipdev = \"n0\"\nnetmask = 24\n";
    let file = t.write_service("x.toml", text);
    let svc = ServiceConfig::parse(&file, text).unwrap();
    let engine = Engine::new(&HOST, &paths, "node1");
    let walk = Arc::new(StatusReads::new());
    let (in_a, in_b) = reads::with(&walk, || {
        let in_a = {
            let _in = a.enter();
            engine.status(&svc).avail
        };
        let in_b = {
            let _in = b.enter();
            engine.status(&svc).avail
        };
        (in_a, in_b)
    });
    assert_eq!((in_a, in_b), (Status::Up, Status::Down));
    assert_eq!(walk.reads_made(), 2, "one dump per namespace");

    let stale = Arc::new(StatusReads::within(std::time::Duration::ZERO));
    let _in = a.enter();
    let st = reads::with(&stale, || engine.status(&svc));
    assert_eq!(st.avail, Status::Up);
    assert_eq!(stale.reads_made(), 0, "past its bound nothing is shared");
}
