//! What the `svc` CLI refuses of a flex service, with no cluster needed: a relocation
//! (`switch`, `takeover`, `giveback`: a flex service has no one instance to move), a `vg` in it,
//! and counts outside `flex_min <= flex_target <= flex_max <= nodes`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_testkit::{TempBerth, describe as text};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

fn svc(t: &TempBerth, args: &[&str]) -> Output {
    t.svc(SVC).args(args).output().expect("run svc")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const FLEX: &str = "[service]\nnodes = [\"node1\", \"node2\", \"node3\"]\ntopology = \"flex\"\n";

#[test]
fn relocations_of_a_flex_service_are_refused_naming_the_topology() {
    let t = TempBerth::new();
    t.write_service("web.toml", &format!("{FLEX}\n[fs.flag]\ntype = \"flag\"\n"));
    for args in [
        &["web", "switch", "--to", "node2"][..],
        &["web", "takeover"],
        &["web", "giveback"],
    ] {
        let o = svc(&t, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let want = format!(
            "svc web {}: refused: web is a flex service (topology = flex)",
            args[1]
        );
        assert!(stderr(&o).contains(&want), "{args:?}: {}", text(&o));
    }
    // It loads: print config --eval shows the counts, defaults spelled out.
    let o = svc(&t, &["web", "print", "config", "--eval"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("topology = \"flex\"\nflex_min = 1\nflex_max = 3\nflex_target = 1\n"),
        "{out}"
    );
}

#[test]
fn a_vg_and_bad_counts_in_a_flex_service_are_refused_at_load() {
    let t = TempBerth::new();
    for (extra, want) in [
        (
            "\n[vg.1]\nvgname = \"vgweb\"\n",
            "[vg#1] a vg cannot be part of a flex service (topology = flex): a volume group is \
             active on one node at a time",
        ),
        (
            "flex_max = 4\n",
            "flex_max: bad value \"4\": more than the service's 3 nodes (one instance per node)",
        ),
        (
            "flex_min = 2\nflex_target = 1\n",
            "flex_target: bad value \"1\": outside [flex_min, flex_max] = [2, 3]",
        ),
    ] {
        t.write_service("web.toml", &format!("{FLEX}{extra}"));
        let o = svc(&t, &["web", "print", "config"]);
        assert_eq!(o.status.code(), Some(2), "{extra}: {}", text(&o));
        assert!(stderr(&o).contains(want), "{extra}: {}", text(&o));
    }
}

#[test]
fn all_is_refused_where_it_has_no_meaning_and_local_is_plain() {
    let t = TempBerth::new();
    let flag = "\n[fs.flag]\ntype = \"flag\"\n";
    // A failover service: one instance, plain start / stop act on it.
    t.write_service(
        "db.toml",
        &format!("[service]\nnodes = [\"node1\", \"node2\"]\n{flag}"),
    );
    for verb in ["start", "stop"] {
        let o = svc(&t, &["db", verb, "--all"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let want =
            format!("svc db {verb} --all: refused: db is a failover service (topology = failover)");
        assert!(stderr(&o).contains(&want), "{}", text(&o));
    }
    // A flex service that the orchestrator does not keep up: start --all is refused.
    for orchestrate in ["no", "start"] {
        t.write_service(
            "web.toml",
            &format!("{FLEX}orchestrate = \"{orchestrate}\"\n{flag}"),
        );
        let o = svc(&t, &["web", "start", "--all"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let want = format!(
            "svc web start --all: refused: web has orchestrate = {orchestrate}: the \
             orchestrator does not bring flex_target instances up again (only orchestrate = ha \
             does)"
        );
        assert!(stderr(&o).contains(&want), "{}", text(&o));
    }
    t.write_service("web.toml", &format!("{FLEX}orchestrate = \"ha\"\n{flag}"));
    for (args, want) in [
        (
            &["web", "stop", "--all", "--local"][..],
            "svc web stop: refused: --all and --local contradict",
        ),
        (
            &["web", "stop", "--all", "--rid", "fs#flag"],
            "svc web stop --all: refused with --rid",
        ),
        (&["web", "restart", "--all"], "restart does not take --all"),
        (
            &["web", "stop", "--all"],
            "svc web stop --all: this node is in no cluster",
        ),
    ] {
        let o = svc(&t, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", text(&o));
    }
    // --local on a flex service: the same as plain (this node's instance).
    let flag_file = t.run_dir().join("web/flags/fs#flag");
    for (verb, up) in [("start", true), ("stop", false)] {
        let o = svc(&t, &["web", verb, "--local"]);
        assert!(o.status.success(), "{verb} --local: {}", text(&o));
        assert_eq!(flag_file.exists(), up, "{verb} --local: {}", text(&o));
    }
}
