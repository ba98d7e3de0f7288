//! `copy_executable` under the condition that made `holder_by_executable_is_killed` flaky: other
//! threads of the test process forking all the time while a copied binary is run at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn a_copied_executable_runs_at_once_while_other_threads_fork() {
    let dir = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let forkers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = Command::new("/bin/true").status();
                }
            })
        })
        .collect();
    let mut failures = Vec::new();
    for i in 0..300 {
        let bin = dir.path().join(format!("true{i}"));
        berth_testkit::copy_executable(Path::new("/bin/true"), &bin);
        match Command::new(&bin).stdin(Stdio::null()).status() {
            Ok(s) if s.success() => {}
            other => failures.push(format!("{}: {other:?}", bin.display())),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in forkers {
        f.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of 300 runs failed: {failures:?}",
        failures.len()
    );
}
