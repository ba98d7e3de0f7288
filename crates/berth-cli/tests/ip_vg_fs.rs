//! A service of ip + vg + fs through the `svc` CLI (root): each case runs `svc` inside its own
//! "node" network namespace, joined by a veth to a "peer" namespace; the VG sits on a loop PV and
//! the fs on a loop image. Everything is removed on drop, also when a case fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_testkit::{
    LoopVg, Netns, TempBerth, describe as text, ext4_image, mounted, require_root, veth,
};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

struct Lab {
    t: TempBerth,
    vg: LoopVg,
    node: Netns,
    peer: Netns,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let node = Netns::new("cn");
        let peer = Netns::new("cp");
        veth(&node, "eth0", &peer, "eth1");
        node.exec("ip", &["addr", "add", "10.66.0.1/24", "dev", "eth0"]);
        peer.exec("ip", &["addr", "add", "10.66.0.2/24", "dev", "eth1"]);
        let t = TempBerth::new();
        let vg = LoopVg::new();
        let img = t.path("root.img");
        ext4_image(&img, 16);
        t.write_service(
            "web.toml",
            &format!(
                "[service]\nnodes = [\"node1\"]\n\n[ip.1]\nipname = \"10.66.0.10\"\nipdev = \"eth0\"\n\
                 probe_timeout = \"200ms\"\n\n[vg.1]\nvgname = \"{}\"\n\n[fs.1]\ndev = \"{}\"\n\
                 mnt = \"{}\"\ntype = \"ext4\"\n",
                vg.name,
                img.display(),
                t.path("srv/web").display()
            ),
        );
        Lab { t, vg, node, peer }
    }

    /// `svc ARGS` inside the node namespace.
    fn svc(&self, args: &[&str]) -> Output {
        let mut c = self.node.netns_command(SVC);
        for (k, v) in [
            ("BERTH_CONFIG_DIR", self.t.config_dir()),
            ("BERTH_VAR_DIR", self.t.var_dir()),
            ("BERTH_RUN_DIR", self.t.run_dir()),
        ] {
            c.env(k, v);
        }
        c.env("BERTH_NODENAME", "node1").env("NO_COLOR", "1");
        c.args(args).output().expect("run svc")
    }

    /// The node's addresses on eth0, read with `ip` (not with the driver).
    fn addrs(&self) -> String {
        String::from_utf8_lossy(
            &self
                .node
                .exec("ip", &["-4", "addr", "show", "dev", "eth0"])
                .stdout,
        )
        .to_string()
    }
}

/// The action succeeded, and its log names the resources first in the order of `tags`.
fn done_in_order(o: &Output, tags: &[&str]) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    let at: Vec<usize> = tags
        .iter()
        .map(|tag| {
            log.find(tag)
                .unwrap_or_else(|| panic!("no {tag} in:\n{log}"))
        })
        .collect();
    assert!(at.is_sorted(), "{tags:?} in this order:\n{log}");
}

#[test]
fn ip_vg_fs_start_and_stop_in_order_with_the_seed_tree() {
    let lab = Lab::new();
    done_in_order(
        &lab.svc(&["web", "start"]),
        &["WEB.IP#1", "WEB.VG#1", "WEB.FS#1"],
    );
    assert!(
        lab.addrs().contains("inet 10.66.0.10/24"),
        "{}",
        lab.addrs()
    );
    assert_eq!(lab.vg.tags(), ["node1"]);
    assert!(mounted(&lab.t.path("srv/web")));

    let o = lab.svc(&["web", "print", "status"]);
    let img = lab.t.path("root.img");
    let mnt = lab.t.path("srv/web");
    let want = format!(
        "web\n\
         overall                   up\n\
         |- avail                  up\n\
         |  |- vg#1           .... up       {vg}\n\
         |  |- fs#1           .... up       {img}@{mnt}\n\
         |  '- ip#1           .... up       10.66.0.10@eth0\n\
         |- sync                   n/a\n\
         '- hb                     n/a\n",
        vg = lab.vg.name,
        img = img.display(),
        mnt = mnt.display()
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);

    done_in_order(
        &lab.svc(&["web", "stop"]),
        &["WEB.FS#1", "WEB.VG#1", "WEB.IP#1"],
    );
    assert!(!lab.addrs().contains("10.66.0.10"), "{}", lab.addrs());
    assert!(lab.vg.tags().is_empty());
    assert!(!mounted(&mnt));
    let o = lab.svc(&["web", "print", "status"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("overall                   down"),
        "{}",
        text(&o)
    );
}

#[test]
fn an_address_answering_on_the_link_refuses_the_whole_start() {
    let lab = Lab::new();
    lab.peer
        .exec("ip", &["addr", "add", "10.66.0.10/24", "dev", "eth1"]);
    // The peer's MAC, read inside its namespace.
    let mac = String::from_utf8_lossy(
        &lab.peer
            .exec("cat", &["/sys/class/net/eth1/address"])
            .stdout,
    )
    .trim()
    .to_string();
    for attempt in 1..=20 {
        let o = lab.svc(&["web", "start"]);
        assert_eq!(o.status.code(), Some(1), "attempt {attempt}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("start refused, nothing was started"), "{err}");
        assert!(
            err.contains("10.66.0.10") && err.contains(&mac),
            "names the address and the MAC: {err}"
        );
        assert!(
            !mounted(&lab.t.path("srv/web")),
            "attempt {attempt}: the fs must stay unmounted"
        );
        assert!(
            lab.vg.tags().is_empty(),
            "attempt {attempt}: the vg must stay untagged"
        );
        assert!(!lab.addrs().contains("10.66.0.10"));
    }
    let o = lab.svc(&["web", "start", "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("WARNING"),
        "--force says it skipped the check: {}",
        text(&o)
    );
    assert!(mounted(&lab.t.path("srv/web")));
    let o = lab.svc(&["web", "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Services on web's address (b), on web's mount point (c, another image) and on web's VG (d):
/// their starts are refused naming web, their statuses say down, and their stops leave web's
/// address, filesystem and VG alone (before, b's start said "already up" and either stop took
/// web's address, c's stop unmounted web's filesystem, d's stop deactivated and untagged web's
/// VG). `svc validate config` names the three conflicts.
#[test]
fn another_services_address_mount_point_and_vg_are_left_alone() {
    let lab = Lab::new();
    let mnt = lab.t.path("srv/web");
    let other = lab.t.path("other.img");
    ext4_image(&other, 16);
    lab.t.write_service(
        "b.toml",
        "[ip.1]\nipname = \"10.66.0.10\"\nipdev = \"eth0\"\nprobe_timeout = \"200ms\"\n",
    );
    lab.t.write_service(
        "c.toml",
        &format!(
            "[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
            other.display(),
            mnt.display()
        ),
    );
    lab.t
        .write_service("d.toml", &format!("[vg.1]\nvgname = \"{}\"\n", lab.vg.name));
    let o = lab.svc(&["web", "start"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    for (svc, what) in [
        (
            "b",
            "ip#1: address 10.66.0.10 is held by service web (ip#1)".to_string(),
        ),
        (
            "c",
            format!(
                "fs#1: mount point {} is held by service web (fs#1)",
                mnt.display()
            ),
        ),
        (
            "d",
            format!(
                "vg#1: volume group {} is held by service web (vg#1)",
                lab.vg.name
            ),
        ),
    ] {
        let o = lab.svc(&[svc, "start"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("start refused, nothing was started: {what}")),
            "{err}"
        );
        let o = lab.svc(&[svc, "status"]);
        assert_ne!(o.status.code(), Some(0), "{svc} is not up: {}", text(&o));
        let o = lab.svc(&[svc, "print", "status"]);
        let tree = String::from_utf8_lossy(&o.stdout);
        assert!(
            tree.contains("|- avail                  down") && tree.contains("held by service web"),
            "{}",
            text(&o)
        );
        let o = lab.svc(&[svc, "stop"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            lab.addrs().contains("inet 10.66.0.10/24"),
            "{svc}'s stop took web's address: {}",
            lab.addrs()
        );
        assert!(mounted(&mnt), "{svc}'s stop unmounted web's filesystem");
        assert_eq!(lab.vg.tags(), ["node1"], "{svc}'s stop took web's VG");
        let o = lab.svc(&["web", "status"]);
        assert_eq!(o.status.code(), Some(0), "web is still up: {}", text(&o));
    }

    let o = lab.svc(&["validate", "config"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "address 10.66.0.10 is claimed by several services: b (ip#1), web (ip#1)".to_string(),
        format!(
            "mount point {} is claimed by several services: c (fs#1), web (fs#1)",
            mnt.display()
        ),
        format!(
            "volume group {} is claimed by several services: d (vg#1), web (vg#1)",
            lab.vg.name
        ),
    ] {
        assert!(out.contains(&want), "no {want:?} in:\n{out}");
    }

    // Once web is stopped, c's start is c's own.
    let o = lab.svc(&["web", "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = lab.svc(&["c", "start"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = lab.svc(&["c", "stop"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!mounted(&mnt));
}
