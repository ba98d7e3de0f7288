//! `svcd` writing into a pipe whose reader is gone (`svcd --completions bash | head -1`,
//! `svcd 2>&1 | head -1`): it ends quietly with the exit status documented in docs/cli.md (the
//! command's own), never a panic. No root needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use berth_testkit::pipe::{assert_quiet, into_closed_pipe};
use berth_testkit::{TempBerth, describe};

const SVCD: &str = env!("CARGO_BIN_EXE_svcd");

#[test]
fn every_text_output_into_a_closed_pipe_ends_quietly() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["--completions", "bash"],
        &["--completions", "zsh"],
        &["--completions", "fish"],
    ] {
        let read = Command::new(SVCD).args(args).output().unwrap();
        assert!(read.status.success(), "{args:?}: {}", describe(&read));
        assert!(!read.stdout.is_empty(), "{args:?}: {}", describe(&read));
        let o = into_closed_pipe(Command::new(SVCD).args(args), false);
        assert_quiet(&o, 0, &format!("svcd {}", args.join(" ")));
    }
}

#[test]
fn a_fatal_error_into_a_closed_stderr_keeps_its_exit_code() {
    let t = TempBerth::new();
    std::fs::write(t.config_dir().join("node.toml"), "listen = 12\n").unwrap();
    let svcd = || {
        let mut c = Command::new(SVCD);
        c.env("BERTH_CONFIG_DIR", t.config_dir())
            .env("BERTH_VAR_DIR", t.var_dir())
            .env("BERTH_RUN_DIR", t.run_dir())
            .env_remove("JOURNAL_STREAM");
        c
    };
    let read = svcd().output().unwrap();
    assert_eq!(read.status.code(), Some(2), "{}", describe(&read));
    assert!(
        String::from_utf8_lossy(&read.stderr).contains("svcd: "),
        "{}",
        describe(&read)
    );
    let o = into_closed_pipe(&mut svcd(), true);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}
