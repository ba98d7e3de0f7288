//! The vg driver on the real host: a VG on a loop PV, with a unique name per test, removed in
//! `Drop` (vgremove, pvremove, losetup -d) even when the test fails.
//!
//! This kernel has no device-mapper: a VG without LV goes through the whole cycle; an LV made
//! with `lvcreate --driverloaded n -an -Zn` exercises the activation failure path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use berth_drivers::{Ctx, Outcome, vg};
use berth_model::Status;
use berth_model::config::{ServiceConfig, VgSpec};
use berth_model::paths::Paths;
use berth_testkit::{LoopVg, lvm_ok as lvm, require_root};

/// A VG on a loop device backed by a sparse file.
fn spec_of(vg: &LoopVg) -> VgSpec {
    VgSpec {
        vgname: vg.name.clone(),
    }
}

fn service() -> ServiceConfig {
    ServiceConfig::parse(Path::new("/tmp/vgtest.toml"), "[service]\n").unwrap()
}

fn ctx<'a>(svc: &'a ServiceConfig, paths: &'a Paths, node: &'a str, force: bool) -> Ctx<'a> {
    Ctx {
        svc,
        nodename: node,
        paths,
        force,
        fence: None,
    }
}

#[test]
fn vg_contract_on_a_vg_without_lv() {
    let lv = LoopVg::new();
    let (svc, paths) = (service(), Paths::default());
    let c = ctx(&svc, &paths, "node1", false);
    let spec = spec_of(&lv);
    assert_eq!(vg::label(&spec), lv.name);

    assert_eq!(vg::status(&c, &spec).status, Status::Down);
    vg::precheck(&c, &spec).unwrap();
    assert_eq!(vg::start(&c, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["node1"]);
    assert_eq!(vg::start(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert_eq!(lv.tags(), ["node1"]);
    let st = vg::status(&c, &spec);
    assert_eq!(st.status, Status::Up, "{:?}", st.log);
    assert_eq!(st.label, lv.name);

    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::Changed);
    assert!(lv.tags().is_empty(), "{:?}", lv.tags());
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert!(lv.tags().is_empty());
    assert_eq!(vg::status(&c, &spec).status, Status::Down);
}

#[test]
fn vg_tagged_by_another_node_is_refused_unless_forced() {
    let lv = LoopVg::new();
    lvm(&["vgchange", "-q", "--addtag", "@node2", &lv.name]);
    let (svc, paths) = (service(), Paths::default());
    let spec = spec_of(&lv);

    let c = ctx(&svc, &paths, "node1", false);
    let e = vg::precheck(&c, &spec).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "volume group {} is tagged by node node2: refusing to take it over (use --force)",
            lv.name
        )
    );
    let e = vg::start(&c, &spec).unwrap_err().to_string();
    assert!(e.contains("node2"), "{e}");
    assert_eq!(lv.tags(), ["node2"], "a refused start changed the tags");
    // Held by node2: down here, and stopping it here leaves node2's tag alone.
    assert_eq!(vg::status(&c, &spec).status, Status::Down);
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert_eq!(lv.tags(), ["node2"]);

    let c = ctx(&svc, &paths, "node1", true);
    vg::precheck(&c, &spec).unwrap();
    assert_eq!(vg::start(&c, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["node1"]);
    assert_eq!(vg::status(&c, &spec).status, Status::Up);
    vg::stop(&c, &spec).unwrap();
    assert!(lv.tags().is_empty());
}

#[test]
fn vg_activation_failure_is_clear_and_leaves_no_tag() {
    let lv = LoopVg::new();
    lvm(&[
        "lvcreate",
        "-q",
        "--driverloaded",
        "n",
        "-an",
        "-Zn",
        "-L",
        "8M",
        "-n",
        "lv1",
        &lv.name,
    ]);
    let (svc, paths) = (service(), Paths::default());
    let c = ctx(&svc, &paths, "node1", false);
    let spec = spec_of(&lv);

    vg::precheck(&c, &spec).unwrap();
    let e = vg::start(&c, &spec).unwrap_err().to_string();
    let cmd = format!("vgchange -a y {} failed (exit code 5): ", lv.name);
    assert!(e.starts_with(&cmd), "{e}");
    assert!(e.contains("device-mapper"), "{e}");
    assert_eq!(
        e.matches("/dev/mapper/control: open failed").count(),
        1,
        "repeated lines: {e}"
    );
    assert!(
        lv.tags().is_empty(),
        "the failed start left a tag: {:?}",
        lv.tags()
    );
    assert_eq!(vg::status(&c, &spec).status, Status::Down);

    // Tagged here with an inactive LV: warn, naming the LV.
    lvm(&["vgchange", "-q", "--addtag", "@node1", &lv.name]);
    let st = vg::status(&c, &spec);
    assert_eq!(st.status, Status::Warn);
    assert!(st.log[0].message.contains("lv1"), "{:?}", st.log);
    // Stop: nothing is active, the tag goes.
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::Changed);
    assert!(lv.tags().is_empty());
}

#[test]
fn vg_that_does_not_exist() {
    require_root();
    let (svc, paths) = (service(), Paths::default());
    let c = ctx(&svc, &paths, "node1", false);
    let spec = VgSpec {
        vgname: format!("berthnone{}", std::process::id()),
    };
    let st = vg::status(&c, &spec);
    assert_eq!(st.status, Status::Down);
    assert_eq!(
        st.log[0].message,
        format!("volume group {} does not exist", spec.vgname)
    );
    let e = vg::precheck(&c, &spec).unwrap_err().to_string();
    assert_eq!(e, format!("volume group {} does not exist", spec.vgname));
    assert_eq!(vg::start(&c, &spec).unwrap_err().to_string(), e);
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);

    let bad = VgSpec {
        vgname: "bad name".to_string(),
    };
    let e = vg::precheck(&c, &bad).unwrap_err().to_string();
    assert!(e.contains("invalid volume group name"), "{e}");
}

#[test]
fn a_start_records_its_fencing_token_and_an_older_token_is_refused_even_forced() {
    let lv = LoopVg::new();
    let (svc, paths) = (service(), Paths::default());
    let spec = spec_of(&lv);
    let mut n1 = ctx(&svc, &paths, "node1", false);
    n1.fence = Some(5);
    assert_eq!(vg::start(&n1, &spec).unwrap(), Outcome::Changed);
    let mut tags = lv.tags();
    tags.sort();
    assert_eq!(tags, ["berth_fence_5", "node1"]);
    assert_eq!(vg::stop(&n1, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["berth_fence_5"], "the token outlives the stop");

    // node2 took the service later (token 9): its start replaces the token.
    let mut n2 = ctx(&svc, &paths, "node2", false);
    n2.fence = Some(9);
    vg::precheck(&n2, &spec).unwrap();
    assert_eq!(vg::start(&n2, &spec).unwrap(), Outcome::Changed);
    let mut tags = lv.tags();
    tags.sort();
    assert_eq!(tags, ["berth_fence_9", "node2"]);
    vg::stop(&n2, &spec).unwrap();

    // A start under the stale token 5 is refused, --force or not, and changes nothing.
    for force in [false, true] {
        let mut stale = ctx(&svc, &paths, "node1", force);
        stale.fence = Some(5);
        let err = vg::precheck(&stale, &spec).unwrap_err().to_string();
        assert!(
            err.contains("fencing token 9") && err.contains("5"),
            "{err}"
        );
        let err = vg::start(&stale, &spec).unwrap_err().to_string();
        assert!(err.contains("fencing token 9"), "{err}");
        assert_eq!(lv.tags(), ["berth_fence_9"]);
    }
    // Without a cluster (no token), the fence tag is no foreign node.
    let plain = ctx(&svc, &paths, "node3", false);
    vg::precheck(&plain, &spec).unwrap();
}
