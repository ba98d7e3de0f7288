//! One copy of each service file for the whole cluster, on a real etcd (root): a file created
//! on one node appears on the nodes of its `nodes` (and not on the others), a `set` on one node
//! reaches the others, of two concurrent changes one wins and the other is refused naming it, a
//! hand edit on the current copy is published, one on a stale copy is a conflict (shown in
//! status with both checksums, nothing overwritten); `delete` is refused while the service runs,
//! then removes every copy; a start on a node outside `nodes` is refused, naming them; a file
//! over the size limit is refused, naming its size. Truth is read on the host: the files in each
//! node's services dir and the keys in etcd (etcdctl).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Rig, Spec, svc, svc_ok};

use berth_testkit::cluster::{Node, wait_until};
use berth_testkit::describe;

const BOUND: Duration = Duration::from_secs(15);

fn file_on(node: &Node, name: &str) -> PathBuf {
    node.config_dir().join("services").join(name)
}

fn read_on(node: &Node, name: &str) -> Option<String> {
    std::fs::read_to_string(file_on(node, name)).ok()
}

/// The cluster's copy of `svc`'s file in etcd (read with etcdctl), `None` when absent.
fn in_etcd(rig: &Rig, svc_name: &str) -> Option<String> {
    let out = rig
        .etcd
        .etcdctl()
        .args([
            "get",
            "--print-value-only",
            &format!("/berth/t/services/{svc_name}/file"),
        ])
        .output()
        .expect("etcdctl");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // etcdctl ends the value with a newline of its own.
    text.strip_suffix('\n').map(str::to_string)
}

fn wait_file(rig: &Rig, node: &str, name: &str, want: &str) {
    let n = rig.node(node);
    wait_until(BOUND, &format!("{node} has {name} as wanted"), || {
        read_on(n, name).as_deref() == Some(want)
    });
}

fn app_text(rig: &Rig, probe: &str) -> String {
    format!(
        "[service]\nnodes = [\"n1\", \"n2\"]\n\n[ip.1]\nipname = \"{}\"\nipdev = \"eth0\"\n\
         netmask = 24\nprobe_timeout = \"{probe}\"\n",
        rig.lan.host(150)
    )
}

#[test]
fn a_file_spreads_and_every_change_goes_through_etcd_one_writer_at_a_time() {
    let mut rig = Rig::new(Spec {
        nodes: 3,
        services: 0,
        ..Spec::default()
    });
    let text = app_text(&rig, "200ms");
    let src = rig.node("n1").path("app-src.toml");
    std::fs::write(&src, &text).unwrap();

    // Created on n1: in etcd, on n1 and n2 (its nodes), never on n3.
    let out = svc_ok(
        rig.node("n1"),
        &["app", "create", "--config", src.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app: created in the cluster (revision"),
        "{}",
        describe(&out)
    );
    assert_eq!(in_etcd(&rig, "app").as_deref(), Some(text.as_str()));
    wait_file(&rig, "n1", "app.toml", &text);
    wait_file(&rig, "n2", "app.toml", &text);
    // Created again: refused, naming it.
    let out = svc(
        rig.node("n2"),
        &["app", "create", "--config", src.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("app exists already"),
        "{}",
        describe(&out)
    );

    // `set` on n2 reaches n1 (through etcd).
    svc_ok(
        rig.node("n2"),
        &["app", "set", "--kw", "ip#1.probe_timeout=300ms"],
    );
    let t300 = app_text(&rig, "300ms");
    assert_eq!(in_etcd(&rig, "app").as_deref(), Some(t300.as_str()));
    wait_file(&rig, "n1", "app.toml", &t300);
    wait_file(&rig, "n2", "app.toml", &t300);
    // n3 is not in its nodes: it keeps no copy, and the config row is up on n1.
    assert!(read_on(rig.node("n3"), "app.toml").is_none());
    wait_until(BOUND, "n1's config row sync#i0 up", || {
        let out = svc(
            rig.node("n1"),
            &["app", "print", "status", "--format", "json"],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .is_ok_and(|st| st["config_sync"]["status"] == "up" && st["sync"] == "up")
    });

    // Two changes at once: n1's `edit config` read revision R, n2's `set` wrote R+1 while
    // the editor was open: n1's is refused, naming n2's change; n2's stays everywhere.
    let dir = rig.node("n1").path("editor");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("ed.sh");
    std::fs::write(
        &script,
        format!(
            "touch {d}/started\nwhile [ ! -e {d}/go ]; do sleep 0.05; done\n\
             sed -i 's/300ms/500ms/' \"$1\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let editing = rig
        .node("n1")
        .svc(common::svc_bin().to_str().unwrap())
        .args(["app", "edit", "config"])
        .env("EDITOR", format!("sh {}", script.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(BOUND, "the editor on n1 is open", || {
        dir.join("started").exists()
    });
    svc_ok(
        rig.node("n2"),
        &["app", "set", "--kw", "ip#1.probe_timeout=400ms"],
    );
    std::fs::write(dir.join("go"), "").unwrap();
    let out = editing.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused, nothing written: the service file changed since revision")
            && err.contains("written by n2"),
        "{err}"
    );
    let t400 = app_text(&rig, "400ms");
    assert_eq!(in_etcd(&rig, "app").as_deref(), Some(t400.as_str()));
    wait_file(&rig, "n1", "app.toml", &t400);
    wait_file(&rig, "n2", "app.toml", &t400);

    // A hand edit on n2, on the current copy: published, and n1 takes it.
    let t600 = app_text(&rig, "600ms");
    std::fs::write(file_on(rig.node("n2"), "app.toml"), &t600).unwrap();
    wait_until(BOUND, "n2's hand edit published", || {
        in_etcd(&rig, "app").as_deref() == Some(t600.as_str())
    });
    wait_file(&rig, "n1", "app.toml", &t600);

    // A hand edit on a stale copy: n2's svcd is down while n1 changes the file; n2's copy is
    // edited by hand meanwhile. When n2's svcd comes back: a conflict, nothing written either
    // way, both checksums in n2's status.
    rig.node_mut("n2").kill_svcd();
    svc_ok(
        rig.node("n1"),
        &["app", "set", "--kw", "ip#1.probe_timeout=700ms"],
    );
    let t700 = app_text(&rig, "700ms");
    let t800 = app_text(&rig, "800ms");
    std::fs::write(file_on(rig.node("n2"), "app.toml"), &t800).unwrap();
    let i = rig.index("n2");
    rig.boot(i);
    rig.wait_alive("n2");
    let mut shown = serde_json::Value::Null;
    wait_until(BOUND, "n2 shows the conflict in its config row", || {
        let out = svc(
            rig.node("n2"),
            &["app", "print", "status", "--format", "json"],
        );
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(st) if st["config_sync"]["status"] == "warn" => {
                shown = st["config_sync"].clone();
                shown.to_string().contains("n2: conflict")
            }
            _ => false,
        }
    });
    let sum = |t: &str| berth_cluster::file_checksum(t.as_bytes());
    let row = shown.to_string();
    assert!(
        row.contains(&sum(&t800)) && row.contains(&sum(&t700)),
        "{row}"
    );
    assert_eq!(
        read_on(rig.node("n2"), "app.toml").as_deref(),
        Some(t800.as_str())
    );
    assert_eq!(in_etcd(&rig, "app").as_deref(), Some(t700.as_str()));
    // n1's row names n2 as behind or in conflict.
    wait_until(BOUND, "n1's row names n2", || {
        let out = svc(
            rig.node("n1"),
            &["app", "print", "status", "--format", "json"],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|st| {
            st["config_sync"]["status"] == "warn"
                && st["config_sync"]["behind"].to_string().contains("n2: ")
        })
    });
    // `svc mon` says why n2 would not run it.
    wait_until(BOUND, "svc mon says config behind", || {
        rig.mon()["services"]["app"]["why"]["n2"] == "config behind"
    });
    // Still so after a while: n2's svcd did not overwrite either side.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        read_on(rig.node("n2"), "app.toml").as_deref(),
        Some(t800.as_str())
    );
    assert_eq!(in_etcd(&rig, "app").as_deref(), Some(t700.as_str()));
    // The operator removes n2's copy: n2 takes the cluster's.
    std::fs::remove_file(file_on(rig.node("n2"), "app.toml")).unwrap();
    wait_file(&rig, "n2", "app.toml", &t700);
}

#[test]
fn delete_is_refused_while_it_runs_a_start_outside_nodes_is_refused_and_a_big_file_too() {
    let mut rig = Rig::new(Spec {
        nodes: 3,
        services: 0,
        ..Spec::default()
    });
    let text = app_text(&rig, "200ms");
    let src = rig.node("n1").path("app-src.toml");
    std::fs::write(&src, &text).unwrap();
    svc_ok(
        rig.node("n1"),
        &["app", "create", "--config", src.to_str().unwrap()],
    );
    wait_file(&rig, "n2", "app.toml", &text);

    // A file over the cluster's limit: refused, naming its size; nothing in etcd.
    let mut big = String::from("[service]\nnodes = [\"n1\", \"n2\"]\n");
    while big.len() <= 1024 * 1024 {
        big.push_str("# a comment line to make the file big, over the cluster's limit\n");
    }
    let big_src = rig.node("n1").path("big-src.toml");
    std::fs::write(&big_src, &big).unwrap();
    let out = svc(
        rig.node("n1"),
        &["big", "create", "--config", big_src.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "the service file is {} bytes, over the cluster's limit of 1048576 bytes",
            big.len()
        )),
        "{err}"
    );
    assert_eq!(in_etcd(&rig, "big"), None);
    assert!(read_on(rig.node("n1"), "big.toml").is_none());

    // Running on n1: delete refused from n2, naming where it runs.
    svc_ok(rig.node("n1"), &["app", "start"]);
    let out = svc(rig.node("n2"), &["app", "delete"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused: app runs on n1"), "{err}");
    assert!(in_etcd(&rig, "app").is_some());
    // Stopped: deleted everywhere (etcd, n1, n2); n1's var dir is reported, not removed.
    svc_ok(rig.node("n1"), &["app", "stop"]);
    // Until n1's svcd publishes the stop, its record still says up: refused meanwhile.
    let mut said = String::new();
    wait_until(BOUND, "delete accepted once app is down everywhere", || {
        let out = svc(rig.node("n1"), &["app", "delete"]);
        said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
    });
    assert!(said.contains("app: deleted from the cluster"), "{said}");
    assert!(said.contains("is left (the service's log"), "{said}");
    assert_eq!(in_etcd(&rig, "app"), None);
    assert!(read_on(rig.node("n1"), "app.toml").is_none());
    wait_until(BOUND, "n2's copy removed", || {
        read_on(rig.node("n2"), "app.toml").is_none()
    });
    assert!(rig.node("n1").var_dir().join("app").exists());

    // A start on a node outside the service's nodes: refused, naming them. (n3's svcd is
    // stopped first: it would not keep a copy of a file that is not its own.)
    rig.node_mut("n3").kill_svcd();
    rig.node("n3").write_service("solo.toml", &text);
    let out = svc(rig.node("n3"), &["solo", "start"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("solo does not start on n3: n3 is not in its nodes (n1, n2)"),
        "{err}"
    );
    assert!(!rig.node("n3").has_addr(rig.lan.host(150)));
}
