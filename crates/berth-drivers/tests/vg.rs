//! The vg driver on the real host: a VG on a loop PV, with a unique name per test, removed in
//! `Drop` (vgremove, pvremove, losetup -d) even when the test fails.
//!
//! This kernel has no device-mapper: a VG without LV goes through the whole cycle; an LV made
//! with `lvcreate --driverloaded n -an -Zn` exercises the activation failure path.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use berth_drivers::{Ctx, Outcome, vg};
use berth_model::config::{ServiceConfig, VgSpec};
use berth_model::paths::Paths;
use berth_model::{Kind, Rid, Status};
use berth_testkit::{LoopVg, lvm_ok as lvm, require_root};

/// The rid the tests give the driver.
const RID: Rid = Rid::new(Kind::Vg, 1);

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
        prechecked: None,
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
    vg::precheck(&c, RID, &spec).unwrap();
    assert_eq!(vg::start(&c, RID, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["node1"]);
    assert_eq!(vg::start(&c, RID, &spec).unwrap(), Outcome::AlreadyDone);
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
    let e = vg::precheck(&c, RID, &spec).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "volume group {} is tagged by node node2: refusing to take it over (use --force)",
            lv.name
        )
    );
    let e = vg::start(&c, RID, &spec).unwrap_err().to_string();
    assert!(e.contains("node2"), "{e}");
    assert_eq!(lv.tags(), ["node2"], "a refused start changed the tags");
    // Held by node2: down here, and stopping it here leaves node2's tag alone.
    assert_eq!(vg::status(&c, &spec).status, Status::Down);
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);
    assert_eq!(lv.tags(), ["node2"]);

    let c = ctx(&svc, &paths, "node1", true);
    vg::precheck(&c, RID, &spec).unwrap();
    assert_eq!(vg::start(&c, RID, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["node1"]);
    assert_eq!(vg::status(&c, &spec).status, Status::Up);
    vg::stop(&c, &spec).unwrap();
    assert!(lv.tags().is_empty());
}

#[test]
fn vg_activation_failure_is_clear_and_leaves_no_tag() {
    let lv = LoopVg::new();
    lv.add_inactive_lv("lv1");
    let (svc, paths) = (service(), Paths::default());
    let c = ctx(&svc, &paths, "node1", false);
    let spec = spec_of(&lv);

    vg::precheck(&c, RID, &spec).unwrap();
    let e = vg::start(&c, RID, &spec).unwrap_err().to_string();
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
    let e = vg::precheck(&c, RID, &spec).unwrap_err().to_string();
    assert_eq!(e, format!("volume group {} does not exist", spec.vgname));
    assert_eq!(vg::start(&c, RID, &spec).unwrap_err().to_string(), e);
    assert_eq!(vg::stop(&c, &spec).unwrap(), Outcome::AlreadyDone);

    let bad = VgSpec {
        vgname: "bad name".to_string(),
    };
    let e = vg::precheck(&c, RID, &bad).unwrap_err().to_string();
    assert!(e.contains("invalid volume group name"), "{e}");
}

#[test]
fn a_start_records_its_fencing_token_and_an_older_token_is_refused_even_forced() {
    let lv = LoopVg::new();
    let (svc, paths) = (service(), Paths::default());
    let spec = spec_of(&lv);
    let mut n1 = ctx(&svc, &paths, "node1", false);
    n1.fence = Some(5);
    assert_eq!(vg::start(&n1, RID, &spec).unwrap(), Outcome::Changed);
    let mut tags = lv.tags();
    tags.sort();
    assert_eq!(tags, ["berth_fence_5", "node1"]);
    assert_eq!(vg::stop(&n1, &spec).unwrap(), Outcome::Changed);
    assert_eq!(lv.tags(), ["berth_fence_5"], "the token outlives the stop");

    // node2 took the service later (token 9): its start replaces the token.
    let mut n2 = ctx(&svc, &paths, "node2", false);
    n2.fence = Some(9);
    vg::precheck(&n2, RID, &spec).unwrap();
    assert_eq!(vg::start(&n2, RID, &spec).unwrap(), Outcome::Changed);
    let mut tags = lv.tags();
    tags.sort();
    assert_eq!(tags, ["berth_fence_9", "node2"]);
    vg::stop(&n2, &spec).unwrap();

    // A start under the stale token 5 is refused, --force or not, and changes nothing.
    for force in [false, true] {
        let mut stale = ctx(&svc, &paths, "node1", force);
        stale.fence = Some(5);
        let err = vg::precheck(&stale, RID, &spec).unwrap_err().to_string();
        assert!(
            err.contains("fencing token 9") && err.contains("5"),
            "{err}"
        );
        let err = vg::start(&stale, RID, &spec).unwrap_err().to_string();
        assert!(err.contains("fencing token 9"), "{err}");
        assert_eq!(lv.tags(), ["berth_fence_9"]);
    }
    // Without a cluster (no token), the fence tag is no foreign node.
    let plain = ctx(&svc, &paths, "node3", false);
    vg::precheck(&plain, RID, &spec).unwrap();
}

/// `vgs` as berth runs it (its `LVM_SYSTEM_DIR`, no AIO) and as the host runs it answer the same,
/// also after another node (a plain LVM command) retagged the VG; status follows the retag.
#[test]
fn lvm_system_dir_gives_the_hosts_answers() {
    let lv = LoopVg::new();
    let run = tempfile::tempdir().unwrap();
    let dir = vg::lvm_system_dir(run.path()).expect("berth's LVM system dir");
    let conf = std::fs::read_to_string(dir.join("lvm.conf")).unwrap();
    assert!(conf.trim_end().ends_with("use_aio = 0\n}"), "{conf}");
    let vgs = |system_dir: Option<&Path>| {
        let mut c = std::process::Command::new("vgs");
        c.args([
            "--reportformat",
            "json",
            "-o",
            "vg_name,vg_tags,lv_count,vg_attr",
            &lv.name,
        ])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1");
        if let Some(d) = system_dir {
            c.env("LVM_SYSTEM_DIR", d);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(vgs(Some(&dir)), vgs(None));

    let svc = service();
    let paths = Paths {
        run_dir: run.path().to_path_buf(),
        ..Paths::default()
    };
    let c = ctx(&svc, &paths, "node1", false);
    let spec = spec_of(&lv);
    vg::start(&c, RID, &spec).unwrap();
    assert_eq!(vg::status(&c, &spec).status, Status::Up);
    // Another node takes it over with the host's LVM configuration.
    lvm(&["vgchange", "-q", "--deltag", "@node1", &lv.name]);
    lvm(&["vgchange", "-q", "--addtag", "@node2", &lv.name]);
    assert_eq!(vgs(Some(&dir)), vgs(None));
    assert!(vgs(Some(&dir)).contains("node2"));
    assert_eq!(vg::status(&c, &spec).status, Status::Down);
    let e = vg::precheck(&c, RID, &spec).unwrap_err().to_string();
    assert!(e.contains("tagged by node node2"), "{e}");
}

/// Through the engine, as `svc start` runs it: the precheck's `lvm fullreport` is the start's
/// read, so a start runs what an operator runs (a report, `vgchange --addtag`, `vgchange -a y`)
/// and a start of a VG already up runs the report alone.
#[test]
fn an_engine_start_reuses_the_prechecks_report() {
    use berth_engine::{ActionOptions, Engine};
    let lv = LoopVg::new();
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let text = format!("[vg.1]\nvgname = \"{}\"\n", lv.name);
    let svc = ServiceConfig::parse(Path::new("/tmp/vgreuse.toml"), &text).unwrap();
    let engine = Engine::new(&berth_drivers::HOST, &paths, "node1");
    let opts = ActionOptions::default();
    let counted = |f: &dyn Fn()| {
        let before = vg::commands_run_on_this_thread();
        f();
        vg::commands_run_on_this_thread() - before
    };

    let n = counted(&|| {
        let r = engine.start(&svc, &opts).unwrap();
        assert_eq!(r.changed, [RID]);
    });
    assert_eq!(n, 3, "fullreport, vgchange --addtag, vgchange -a y");
    assert_eq!(lv.tags(), ["node1"]);
    let n = counted(&|| {
        let r = engine.start(&svc, &opts).unwrap();
        assert_eq!(r.unchanged, [RID]);
    });
    assert_eq!(n, 1, "already up: the precheck's report alone");
    assert_eq!(engine.status(&svc).avail, Status::Up);

    // Tagged by another node after this start: the next start's precheck sees it and refuses.
    engine.stop(&svc, &opts).unwrap();
    lvm(&["vgchange", "-q", "--addtag", "@node2", &lv.name]);
    let e = engine.start(&svc, &opts).unwrap_err().to_string();
    assert!(e.contains("tagged by node node2"), "{e}");
    assert_eq!(lv.tags(), ["node2"]);
}
