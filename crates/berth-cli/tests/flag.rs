//! `[fs#N] type = flag` through the `svc` CLI (root: the run dir is a real tmpfs here, as
//! `/run` is, so a "reboot" — a fresh tmpfs — is seen to bring the flag down).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_testkit::{TempBerth, describe as text, mounted, require_root, run};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

fn svc(t: &TempBerth, args: &[&str]) -> Output {
    t.svc(SVC).args(args).output().expect("run svc")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A fresh tmpfs on the run dir (what a boot gives `/run`).
fn boot(t: &TempBerth) {
    let run_dir = t.run_dir();
    if mounted(&run_dir) {
        run("umount", &[&run_dir.display().to_string()]);
    }
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            &run_dir.display().to_string(),
        ],
    );
}

fn flag_status(t: &TempBerth) -> (String, String) {
    let o = svc(t, &["--format", "json", "web", "print", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["resources"][0]["rid"], "fs#flag", "{v}");
    (
        v["avail"].as_str().unwrap().to_string(),
        v["resources"][0]["status"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_flag_is_up_once_started_down_once_stopped_and_down_after_a_reboot() {
    require_root();
    let t = TempBerth::new();
    boot(&t);
    t.write_service(
        "web.conf",
        "[DEFAULT]\nnodes = node1\n\n[fs#flag]\ntype = flag\n",
    );
    let file = t.run_dir().join("web/flags/fs#flag");
    assert_eq!(flag_status(&t), ("down".into(), "down".into()));

    let o = svc(&t, &["web", "start"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(file.exists(), "{}", file.display());
    assert_eq!(flag_status(&t), ("up".into(), "up".into()));
    let o = svc(&t, &["web", "start"]);
    assert_eq!(code(&o), 0, "start again: {}", text(&o));

    let o = svc(&t, &["web", "stop"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!file.exists());
    assert_eq!(flag_status(&t), ("down".into(), "down".into()));
    let o = svc(&t, &["web", "stop"]);
    assert_eq!(code(&o), 0, "stop again: {}", text(&o));

    // Started, then the node reboots: the flag is gone with the tmpfs.
    let o = svc(&t, &["web", "start"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(flag_status(&t).1, "up");
    boot(&t);
    assert!(!file.exists());
    assert_eq!(flag_status(&t), ("down".into(), "down".into()));
}
