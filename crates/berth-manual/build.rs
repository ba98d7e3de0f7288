//! Records the git commit the binaries are built from, for `--version`.
//!
//! `BERTH_GIT_COMMIT` in the build environment wins (a build from a source tarball can say which
//! commit it is); otherwise `git rev-parse` in this crate's directory; otherwise "unknown". The
//! build script re-runs when HEAD moves (a commit, a checkout), not on every build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Re-run when this git file changes; a file that does not exist is not named (cargo would then
/// re-run the script, and rebuild every binary, on every build).
fn watch_git_path(name: &str) {
    if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name])
        && Path::new(&path).exists()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_GIT_COMMIT");
    let commit = match std::env::var("BERTH_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            let commit = git(&["rev-parse", "--short=12", "HEAD"]);
            if commit.is_some() {
                watch_git_path("HEAD");
                watch_git_path("packed-refs");
                if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    watch_git_path(&branch);
                }
            }
            commit.unwrap_or_else(|| "unknown".to_string())
        }
    };
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
}
