//! docs/first-service.md, run as written (root): every ```sh block of the page, in order, in one
//! bash (`set -euo pipefail`), with `HOME` and the `BERTH_*_DIR` variables in a temp dir and the
//! freshly built `svc` first on the `PATH`. Then the missing-image hint the page quotes: a start
//! before the import is refused naming both ways (pull, or startfs + import). TempBerth's Drop
//! kills the service's dockerd and unmounts and detaches what is left, even when a step fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{TempBerth, describe, mounted, require_root};

const SVC: &str = env!("CARGO_BIN_EXE_svc");
const PAGE: &str = include_str!("../../../docs/first-service.md");

/// The page's ```sh blocks, in order.
fn sh_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block in the page");
    blocks
}

fn bash(t: &TempBerth, script: &str) -> Output {
    let bin = Path::new(SVC).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{script}")])
        .env("HOME", t.root.path())
        .env("PATH", path)
        .env("BERTH_CONFIG_DIR", t.config_dir())
        .env("BERTH_VAR_DIR", t.var_dir())
        .env("BERTH_RUN_DIR", t.run_dir())
        .env_remove("BERTH_NODENAME")
        .current_dir(t.root.path())
        .output()
        .expect("run bash")
}

#[test]
fn the_first_service_page_runs_as_written() {
    require_root();
    let t = TempBerth::new();
    let blocks = sh_blocks(PAGE);
    assert_eq!(blocks.len(), 4, "the page's command blocks: {blocks:?}");
    let o = bash(&t, &blocks.join("cd ~/first\n"));
    assert!(o.status.success(), "the page's commands: {}", describe(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    // What the page says the commands print.
    assert!(
        out.contains("first: ok (2 resources, 0 warnings)"),
        "{}",
        describe(&o)
    );
    assert!(out.contains("busybox"), "docker images: {}", describe(&o));
    let ups = out
        .lines()
        .filter(|l| l.contains("container#1") && l.contains(" up "))
        .count();
    assert_eq!(ups, 1, "container#1 up after the start: {}", describe(&o));
    let downs = out
        .lines()
        .filter(|l| (l.contains("container#1") || l.contains("fs#1")) && l.contains(" down "))
        .count();
    assert_eq!(
        downs,
        2,
        "fs#1 and container#1 down after the stop: {}",
        describe(&o)
    );
    let mnt = t.root.path().join("first/mnt");
    assert!(!mounted(&mnt), "the stop unmounted {}", mnt.display());

    // The missing-image hint: the container and the image gone, a start is refused naming both
    // ways, and the rollback leaves the fs down.
    let o = bash(
        &t,
        "svc first startfs\nsvc first docker rm first.container.1\n\
         svc first docker rmi busybox:latest\nsvc first stop\n",
    );
    assert!(o.status.success(), "{}", describe(&o));
    let o = bash(&t, "svc first start");
    assert!(!o.status.success(), "{}", describe(&o));
    let all = describe(&o);
    for want in [
        "image busybox:latest is not known to the docker daemon of first",
        "pull it (svc first docker pull busybox:latest",
        "svc first startfs, then tar -C ROOTFS -c . | svc first docker import - busybox:latest",
    ] {
        assert!(all.contains(want), "{want:?}: {all}");
    }
    assert!(!mounted(&mnt), "the failed start rolled back: {all}");
}

#[test]
fn sh_blocks_are_found_in_order() {
    let page = "a\n```sh\none\ntwo\n```\n```text\nno\n```\n```sh\nthree\n```\n";
    assert_eq!(sh_blocks(page), ["one\ntwo\n", "three\n"]);
}
