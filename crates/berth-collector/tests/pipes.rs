//! `berth-collector` writing into a pipe whose reader is gone (`berth-collector print status |
//! head -1`): it ends quietly with the exit status documented in docs/cli.md (the command's own),
//! never a panic. A real collector process on loopback, its one node unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use berth_testkit::describe;
use berth_testkit::pipe::{assert_quiet, into_closed_pipe};

mod common;
use common::{COLLECTOR, Collector, collector_toml};

#[test]
fn every_text_output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 of loopback: nothing listens there, the node is unreachable.
    let nodes = [(
        "n1".to_string(),
        "http://127.0.0.1:1".to_string(),
        String::new(),
    )];
    let c = Collector::start(
        dir.path(),
        &collector_toml(&dir.path().join("c.db"), None, &nodes),
    );
    let url = format!("http://127.0.0.1:{}", c.port);
    let cases: [&[&str]; 7] = [
        &["print", "status", "--url", &url],
        &["print", "status", "--format", "json", "--url", &url],
        &["--help"],
        &["print", "--help"],
        &["--version"],
        &["--completions", "bash"],
        &["--completions", "fish"],
    ];
    for args in cases {
        let read = Command::new(COLLECTOR).args(args).output().unwrap();
        assert!(read.status.success(), "{args:?}: {}", describe(&read));
        assert!(!read.stdout.is_empty(), "{args:?}: {}", describe(&read));
        let o = into_closed_pipe(Command::new(COLLECTOR).args(args), false);
        assert_quiet(&o, 0, &format!("berth-collector {}", args.join(" ")));
    }
    // A failure said into a closed stderr keeps its code: 1 (nothing listens on port 1).
    let o = into_closed_pipe(
        Command::new(COLLECTOR).args(["print", "status", "--url", "http://127.0.0.1:1"]),
        true,
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    // And a daemon that cannot read its config: 2.
    let o = into_closed_pipe(
        Command::new(COLLECTOR)
            .arg("--config")
            .arg(dir.path().join("missing.toml")),
        true,
    );
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}
