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
