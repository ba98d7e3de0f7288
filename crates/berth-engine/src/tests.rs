//! The engine against a fake driver: ordering, idempotence, rollback, stop collecting errors,
//! prechecks, selectors, dry-run, locking. No root, no host.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berth_model::config::Resource;
use berth_model::order::Selector;
use berth_model::status::{ResourceState, Status};

use super::*;

/// A host made of booleans, recording every call.
#[derive(Default)]
struct Fake {
    up: RefCell<BTreeSet<String>>,
    fail_start: BTreeSet<String>,
    fail_stop: BTreeSet<String>,
    refuse: BTreeSet<String>,
    calls: RefCell<Vec<String>>,
    /// Per start: the rid and what its precheck kept that the start got back.
    reused: RefCell<Vec<(String, Option<String>)>>,
}

impl Fake {
    fn failing_start(rids: &[&str]) -> Self {
        Fake {
            fail_start: rids.iter().map(|s| s.to_string()).collect(),
            ..Fake::default()
        }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
    fn set_up(&self, rids: &[&str]) {
        self.up
            .borrow_mut()
            .extend(rids.iter().map(|s| s.to_string()));
    }
}

impl Driver for Fake {
    fn precheck(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<(), DriverError> {
        let rid = res.rid.to_string();
        self.calls.borrow_mut().push(format!("check {rid}"));
        if self.refuse.contains(&rid) {
            return Err(DriverError::Refused(format!("{rid} conflicts")));
        }
        ctx.keep_prechecked(res.rid, format!("read by check {rid}"));
        Ok(())
    }
    fn status(&self, _ctx: &Ctx<'_>, res: &Resource) -> ResourceState {
        let up = self.up.borrow().contains(&res.rid.to_string());
        ResourceState {
            network: None,
            status: if up { Status::Up } else { Status::Down },
            label: res.rid.to_string(),
            log: Vec::new(),
        }
    }
    fn start(&self, ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        let rid = res.rid.to_string();
        let kept = ctx.take_prechecked::<String>(res.rid);
        self.reused.borrow_mut().push((rid.clone(), kept));
        if self.fail_start.contains(&rid) {
            self.calls.borrow_mut().push(format!("start {rid} FAILED"));
            return Err(DriverError::Refused(format!("{rid} cannot start")));
        }
        if !self.up.borrow_mut().insert(rid.clone()) {
            self.calls
                .borrow_mut()
                .push(format!("start {rid} (already)"));
            return Ok(Outcome::AlreadyDone);
        }
        self.calls.borrow_mut().push(format!("start {rid}"));
        Ok(Outcome::Changed)
    }
    fn stop(&self, _ctx: &Ctx<'_>, res: &Resource) -> Result<Outcome, DriverError> {
        let rid = res.rid.to_string();
        if self.fail_stop.contains(&rid) {
            self.calls.borrow_mut().push(format!("stop {rid} FAILED"));
            return Err(DriverError::Refused(format!("{rid} cannot stop")));
        }
        if !self.up.borrow_mut().remove(&rid) {
            self.calls
                .borrow_mut()
                .push(format!("stop {rid} (already)"));
            return Ok(Outcome::AlreadyDone);
        }
        self.calls.borrow_mut().push(format!("stop {rid}"));
        Ok(Outcome::Changed)
    }
}

const SVC: &str = r#"
[container.1]
run_image = "busybox"
[fs.2]
dev = "/dev/vg/data"
mnt = "/srv/web/appdata"
type = "ext4"
[fs.1]
dev = "/dev/vg/root"
mnt = "/srv/web"
type = "ext4"
tags = ["root"]
[ip.1]
ipdev = "eth0"
ipname = "192.0.2.10"
[vg.1]
vgname = "vgweb"
"#;

struct Setup {
    dir: tempfile::TempDir,
    paths: Paths,
    svc: ServiceConfig,
}

fn setup(text: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let svc = ServiceConfig::parse(Path::new("/etc/berth/services/web.toml"), text).unwrap();
    Setup { dir, paths, svc }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn checks() -> Vec<String> {
    s(&[
        "check ip#1",
        "check vg#1",
        "check fs#1",
        "check fs#2",
        "check container#1",
    ])
}

#[test]
fn start_walks_the_order_after_every_precheck() {
    let t = setup(SVC);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    let report = e.start(&t.svc, &ActionOptions::default()).unwrap();
    let mut want = checks();
    want.extend(s(&[
        "start ip#1",
        "start vg#1",
        "start fs#1",
        "start fs#2",
        "start container#1",
    ]));
    assert_eq!(fake.calls(), want);
    assert_eq!(report.changed.len(), 5);
    assert_eq!(e.status(&t.svc).avail, Status::Up);
}

#[test]
fn a_start_gets_its_precheck_read_until_the_host_changed() {
    let t = setup(SVC);
    let fake = Fake::default();
    // ip#1 and vg#1 already up: nothing changes before fs#1 starts.
    fake.set_up(&["ip#1", "vg#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    e.start(&t.svc, &ActionOptions::default()).unwrap();
    let kept = |rid: &str| Some(format!("read by check {rid}"));
    assert_eq!(
        *fake.reused.borrow(),
        vec![
            ("ip#1".to_string(), kept("ip#1")),
            ("vg#1".to_string(), kept("vg#1")),
            ("fs#1".to_string(), kept("fs#1")),
            // fs#1 changed the host: what fs#2 and container#1's prechecks read is dropped.
            ("fs#2".to_string(), None),
            ("container#1".to_string(), None),
        ]
    );
    // A second start: everything is already up, every start gets its precheck's read.
    fake.reused.borrow_mut().clear();
    e.start(&t.svc, &ActionOptions::default()).unwrap();
    assert!(
        fake.reused.borrow().iter().all(|(r, k)| *k == kept(r)),
        "{:?}",
        fake.reused.borrow()
    );
    // Outside a start (the rollback and stop contexts, a status), nothing is kept.
    let ctx = e.context(&t.svc);
    let rid = t.svc.resources[0].rid;
    ctx.keep_prechecked(rid, 1u8);
    assert_eq!(ctx.take_prechecked::<u8>(rid), None);
}

#[test]
fn prechecked_reads_are_taken_once_and_by_type() {
    let p = Prechecked::default();
    let t = setup(SVC);
    let ctx = Ctx {
        prechecked: Some(&p),
        ..Ctx::new(&t.svc, "node1", &t.paths)
    };
    let (a, b) = (t.svc.resources[0].rid, t.svc.resources[1].rid);
    ctx.keep_prechecked(a, 1u32);
    ctx.keep_prechecked(a, 2u32);
    ctx.keep_prechecked(b, "b".to_string());
    assert_eq!(p.len(), 2, "one value per resource, the last kept");
    assert_eq!(ctx.take_prechecked::<u32>(a), Some(2));
    assert_eq!(ctx.take_prechecked::<u32>(a), None, "taken once");
    assert_eq!(
        ctx.take_prechecked::<u32>(b),
        None,
        "another type is not given"
    );
    assert!(
        p.is_empty(),
        "a value of the wrong type is dropped, not kept"
    );
}

#[test]
fn stop_walks_the_reverse_order() {
    let t = setup(SVC);
    let fake = Fake::default();
    fake.set_up(&["ip#1", "vg#1", "fs#1", "fs#2", "container#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    e.stop(&t.svc, &ActionOptions::default()).unwrap();
    assert_eq!(
        fake.calls(),
        s(&[
            "stop container#1",
            "stop fs#2",
            "stop fs#1",
            "stop vg#1",
            "stop ip#1"
        ])
    );
    assert_eq!(e.status(&t.svc).avail, Status::Down);
}

#[test]
fn already_up_resources_are_not_rolled_back() {
    let t = setup(SVC);
    let fake = Fake::failing_start(&["container#1"]);
    fake.set_up(&["ip#1", "fs#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    let err = e.start(&t.svc, &ActionOptions::default()).unwrap_err();
    let mut want = checks();
    want.extend(s(&[
        "start ip#1 (already)",
        "start vg#1",
        "start fs#1 (already)",
        "start fs#2",
        "start container#1 FAILED",
        "stop fs#2",
        "stop vg#1",
    ]));
    assert_eq!(fake.calls(), want);
    let msg = err.to_string();
    assert_eq!(
        msg,
        "start failed: container#1: container#1 cannot start (rolled back: fs#2, vg#1)"
    );
    // What was up before the action is still up.
    assert_eq!(
        *fake.up.borrow(),
        ["fs#1", "ip#1"].iter().map(|x| x.to_string()).collect()
    );
}

#[test]
fn disable_rollback_leaves_started_resources_up() {
    let t = setup(SVC);
    let fake = Fake::failing_start(&["fs#2"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    let opts = ActionOptions {
        disable_rollback: true,
        ..ActionOptions::default()
    };
    let err = e.start(&t.svc, &opts).unwrap_err();
    assert!(err.to_string().contains("rollback disabled"), "{err}");
    assert!(!fake.calls().iter().any(|c| c.starts_with("stop")));
    assert_eq!(fake.up.borrow().len(), 3);
}

#[test]
fn rollback_failures_are_reported() {
    let t = setup(SVC);
    let mut fake = Fake::failing_start(&["container#1"]);
    fake.fail_stop.insert("fs#1".into());
    let e = Engine::new(&fake, &t.paths, "node1");
    let err = e.start(&t.svc, &ActionOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "start failed: container#1: container#1 cannot start (rolled back: fs#2, vg#1, ip#1); \
         rollback failed: fs#1: fs#1 cannot stop"
    );
}

#[test]
fn stop_keeps_going_and_reports_every_error() {
    let t = setup(SVC);
    let fake = Fake {
        fail_stop: ["fs#2", "vg#1"].iter().map(|x| x.to_string()).collect(),
        ..Fake::default()
    };
    fake.set_up(&["ip#1", "vg#1", "fs#1", "fs#2", "container#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    let err = e.stop(&t.svc, &ActionOptions::default()).unwrap_err();
    assert_eq!(
        fake.calls(),
        s(&[
            "stop container#1",
            "stop fs#2 FAILED",
            "stop fs#1",
            "stop vg#1 FAILED",
            "stop ip#1"
        ])
    );
    match err {
        ActionError::Stop(errors) => {
            let rids: Vec<String> = errors.iter().map(|e| e.rid.to_string()).collect();
            assert_eq!(rids, ["fs#2", "vg#1"]);
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_refused_precheck_starts_nothing() {
    let t = setup(SVC);
    let fake = Fake {
        refuse: ["ip#1".to_string()].into(),
        ..Fake::default()
    };
    let e = Engine::new(&fake, &t.paths, "node1");
    let err = e.start(&t.svc, &ActionOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "start refused, nothing was started: ip#1: ip#1 conflicts"
    );
    assert_eq!(fake.calls(), s(&["check ip#1"]));
    assert!(fake.up.borrow().is_empty());
}

#[test]
fn selectors_and_partial_actions() {
    let t = setup(SVC);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    let (_, kinds) = berth_model::order::partial_action("startfs").unwrap();
    let opts = ActionOptions {
        selector: Selector::default().with_kinds(kinds),
        ..ActionOptions::default()
    };
    e.start(&t.svc, &opts).unwrap();
    assert_eq!(
        fake.calls(),
        s(&[
            "check vg#1",
            "check fs#1",
            "check fs#2",
            "start vg#1",
            "start fs#1",
            "start fs#2"
        ])
    );
    fake.calls.borrow_mut().clear();
    let opts = ActionOptions {
        selector: Selector::default().with_tags("root").unwrap(),
        ..ActionOptions::default()
    };
    e.stop(&t.svc, &opts).unwrap();
    assert_eq!(fake.calls(), s(&["stop fs#1"]));
    let bad = ActionOptions {
        selector: Selector::default().with_rids("fs#7").unwrap(),
        ..ActionOptions::default()
    };
    assert!(matches!(
        e.start(&t.svc, &bad),
        Err(ActionError::Selector(_))
    ));
}

#[test]
fn dry_run_touches_nothing() {
    let t = setup(SVC);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    let opts = ActionOptions {
        dry_run: true,
        ..ActionOptions::default()
    };
    e.start(&t.svc, &opts).unwrap();
    e.stop(&t.svc, &opts).unwrap();
    assert!(fake.calls().is_empty());
    assert!(!t.paths.lock_file("web").exists(), "dry-run takes no lock");
}

#[test]
fn disabled_and_standby_resources() {
    let text = SVC
        .replace("tags = [\"root\"]", "disable = true")
        .replace("vgname = \"vgweb\"", "vgname = \"vgweb\"\nstandby = true");
    let t = setup(&text);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    e.start(&t.svc, &ActionOptions::default()).unwrap();
    assert!(
        !fake.calls().iter().any(|c| c.contains("fs#1")),
        "{:?}",
        fake.calls()
    );
    let st = e.status(&t.svc);
    let vg = st
        .resources
        .iter()
        .find(|r| r.rid.to_string() == "vg#1")
        .unwrap();
    assert_eq!(vg.status, Status::StdbyUp);
    fake.calls.borrow_mut().clear();
    e.stop(&t.svc, &ActionOptions::default()).unwrap();
    assert!(
        !fake.calls().iter().any(|c| c.contains("vg#1")),
        "standby stays up: {:?}",
        fake.calls()
    );
    let forced = ActionOptions {
        force: true,
        ..ActionOptions::default()
    };
    e.stop(&t.svc, &forced).unwrap();
    assert!(fake.calls().contains(&"stop vg#1".to_string()));
}

#[test]
fn a_held_lock_makes_the_action_wait_then_fail() {
    let t = setup(SVC);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    let held = ServiceLock::acquire("web", &t.paths.lock_file("web"), Duration::ZERO).unwrap();
    let opts = ActionOptions {
        waitlock: Duration::from_millis(100),
        ..ActionOptions::default()
    };
    let err = e.start(&t.svc, &opts).unwrap_err();
    assert!(
        matches!(err, ActionError::Lock(LockError::Busy { .. })),
        "{err}"
    );
    assert!(fake.calls().is_empty());
    drop(held);
    e.start(&t.svc, &opts).unwrap();
    let _ = &t.dir;
}

#[test]
fn restart_stops_then_starts() {
    let t = setup(SVC);
    let fake = Fake::default();
    fake.set_up(&["ip#1", "vg#1", "fs#1", "fs#2", "container#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    e.restart(&t.svc, &ActionOptions::default()).unwrap();
    let calls = fake.calls();
    assert_eq!(calls[0], "stop container#1");
    assert_eq!(calls[4], "stop ip#1");
    assert_eq!(calls.last().unwrap(), "start container#1");
    let counts: BTreeMap<&str, usize> = calls.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.split(' ').next().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(counts["start"], 5);
}

#[test]
fn actions_are_recorded_for_the_agent() {
    let t = setup(SVC);
    let fake = Fake::failing_start(&["container#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    let err = e.start(&t.svc, &ActionOptions::default()).unwrap_err();
    assert!(matches!(err, ActionError::Start { .. }), "{err}");
    let rec = record::read(&t.paths.service_var("web")).unwrap();
    assert_eq!(rec.action, "start");
    assert!(!rec.ok);
    assert!(rec.error.unwrap().contains("container#1 cannot start"));
    e.stop(&t.svc, &ActionOptions::default()).unwrap();
    let rec = record::read(&t.paths.service_var("web")).unwrap();
    assert_eq!((rec.action.as_str(), rec.ok), ("stop", true));
}

#[test]
fn an_optional_resource_failing_does_not_fail_nor_roll_back_the_start() {
    let text = SVC.replace(
        "[container.1]\nrun_image = \"busybox\"",
        "[container.1]\nrun_image = \"busybox\"\noptional = true",
    );
    let t = setup(&text);
    let fake = Fake::failing_start(&["container#1"]);
    let e = Engine::new(&fake, &t.paths, "node1");
    let report = e.start(&t.svc, &ActionOptions::default()).unwrap();
    assert_eq!(report.changed.len(), 4, "{report:?}");
    assert!(!fake.calls().iter().any(|c| c.starts_with("stop")));
    // A refused precheck of an optional resource skips it; the others start.
    let mut fake = Fake::default();
    fake.refuse.insert("container#1".into());
    let e = Engine::new(&fake, &t.paths, "node1");
    e.start(&t.svc, &ActionOptions::default()).unwrap();
    assert!(
        !fake
            .calls()
            .iter()
            .any(|c| c.starts_with("start container#1"))
    );
    assert_eq!(fake.up.borrow().len(), 4);
    // A non-optional one still refuses the whole start.
    let mut fake = Fake::default();
    fake.refuse.insert("fs#1".into());
    let e = Engine::new(&fake, &t.paths, "node1");
    assert!(matches!(
        e.start(&t.svc, &ActionOptions::default()),
        Err(ActionError::Refused(_))
    ));
}

#[test]
fn start_if_asks_under_the_lock_and_does_nothing_when_told_no() {
    let t = setup(SVC);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    let lock = t.paths.lock_file("web");
    let asked = std::cell::Cell::new(false);
    let got = e
        .start_if(&t.svc, &ActionOptions::default(), || {
            asked.set(true);
            // The lock is held while the question is asked.
            ServiceLock::acquire("web", &lock, Duration::ZERO).is_err()
                && record::read(&t.paths.service_var("web")).is_none()
        })
        .unwrap();
    assert!(asked.get());
    assert_eq!(got.map(|r| r.changed.len()), Some(5));
    assert_eq!(
        record::read(&t.paths.service_var("web")).unwrap().action,
        "start"
    );
    let before = fake.calls().len();
    let got = e
        .start_if(&t.svc, &ActionOptions::default(), || false)
        .unwrap();
    assert!(got.is_none());
    assert_eq!(fake.calls().len(), before);
    // The lock was released.
    ServiceLock::acquire("web", &lock, Duration::ZERO).unwrap();
}

/// Two services on one mount point: the second start is refused naming the first, and the
/// second service's status and stop leave the first's filesystem alone.
#[test]
fn another_services_claim_is_not_this_ones_to_report_or_take_down() {
    let t = setup("");
    std::fs::create_dir_all(t.paths.services_dir()).unwrap();
    let fs =
        |dev: &str| format!("[fs.1]\ndev = \"{dev}\"\nmnt = \"/srv/data/\"\ntype = \"ext4\"\n");
    let mut services = Vec::new();
    for (name, dev) in [("a", "/a.img"), ("b", "/b.img")] {
        let path = t.paths.services_dir().join(format!("{name}.toml"));
        std::fs::write(&path, fs(dev)).unwrap();
        services.push(ServiceConfig::parse(&path, &fs(dev)).unwrap());
    }
    let (a, b) = (&services[0], &services[1]);
    let fake = Fake::default();
    let e = Engine::new(&fake, &t.paths, "node1");
    e.start(a, &ActionOptions::default()).unwrap();
    fake.calls.borrow_mut().clear();

    let err = e
        .start(b, &ActionOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "start refused, nothing was started: fs#1: mount point /srv/data is held by service a \
         (fs#1): stop it there first (svc a stop)"
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());

    let st = e.status(b);
    assert_eq!(st.resources[0].status, Status::Down);
    assert_eq!(
        st.resources[0].log[0].message,
        "mount point /srv/data is held by service a (fs#1), not by this service"
    );
    assert_eq!(e.status(a).resources[0].status, Status::Up);

    let report = e.stop(b, &ActionOptions::default()).unwrap();
    assert!(
        fake.calls().is_empty(),
        "b's stop touched a's: {:?}",
        fake.calls()
    );
    assert_eq!(report.unchanged.len(), 1);
    assert_eq!(e.status(a).avail, Status::Up);

    // a's stop frees it for b.
    e.stop(a, &ActionOptions::default()).unwrap();
    e.start(b, &ActionOptions::default()).unwrap();
    assert_eq!(e.status(b).avail, Status::Up);
    assert_eq!(e.status(a).avail, Status::Down);
}
