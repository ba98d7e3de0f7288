//! The Debian package, built by `scripts/package.sh --debug` (the debug profile, so the test
//! builds in seconds, not the minutes a release build takes on two cores; the package's content
//! is the same), then installed into a throwaway root with `dpkg --root` (dpkg chroots into it to
//! run the maintainer scripts, with busybox's sh), upgraded over a modified conffile, removed and
//! purged. Needs root (chroot).
//!
//! systemd does not run on the test machines (PID 1 is not systemd), so the root gets a
//! `systemctl` that records its arguments, and `/run/systemd/system`, which is how the maintainer
//! scripts tell that systemd runs: the test checks which units they would enable, start, stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testkit::{describe, require_root};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: {}", describe(&o));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Builds the package; its path.
fn build(out: &Path) -> PathBuf {
    let o = Command::new(repo().join("scripts/package.sh"))
        .args(["--debug", "--out"])
        .arg(out)
        .env("CARGO", env!("CARGO"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/package.sh");
    let o = ok(o, "scripts/package.sh --debug");
    let deb = PathBuf::from(stdout(&o).lines().last().unwrap_or_default());
    assert!(
        deb.is_file(),
        "no package at {}: {}",
        deb.display(),
        describe(&o)
    );
    deb
}

fn field(deb: &Path, name: &str) -> String {
    let o = ok(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(deb)
            .arg(name)
            .output()
            .unwrap(),
        "dpkg-deb -f",
    );
    stdout(&o).trim().to_string()
}

/// A throwaway root: an empty dpkg database, busybox as /bin/sh, a recording systemctl.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for d in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "bin",
            "tmp",
            "run/systemd/system",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::create_dir(r.join("dev")).unwrap();
        ok(
            Command::new("mknod")
                .args(["-m", "0666"])
                .arg(r.join("dev/null"))
                .args(["c", "1", "3"])
                .output()
                .unwrap(),
            "mknod dev/null",
        );
        std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
        std::fs::write(r.join("var/lib/dpkg/available"), "").unwrap();
        std::fs::copy("/bin/busybox", r.join("bin/busybox"))
            .expect("copy /bin/busybox (busybox-static, scripts/deps.sh installs it)");
        for applet in ["sh", "mkdir", "rmdir", "rm", "cat", "echo", "test", "["] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
        std::fs::write(
            r.join("bin/systemctl"),
            "#!/bin/sh\necho \"$*\" >> /systemctl.log\n",
        )
        .unwrap();
        ok(
            Command::new("chmod")
                .arg("0755")
                .arg(r.join("bin/systemctl"))
                .output()
                .unwrap(),
            "chmod",
        );
        Root { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn dpkg(&self, args: &[&str]) -> Output {
        Command::new("dpkg")
            .arg(format!("--root={}", self.dir.path().display()))
            // The dependencies (libc6, lvm2...) are not in this empty root's database.
            .arg("--force-depends")
            .args(args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .expect("run dpkg")
    }

    /// The systemctl calls since the last look.
    fn systemctl_calls(&self) -> Vec<String> {
        let log = self.path("systemctl.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text.lines().map(String::from).collect()
    }
}

/// The next version of the package: its `node.toml` changed too (a new commented key), so an
/// upgrade meets an operator's edit and the packager's.
fn next_version(deb: &Path, work: &Path, version: &str, node_toml_extra: &str) -> PathBuf {
    let tree = work.join(format!("tree-{version}"));
    ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(deb)
            .arg(&tree)
            .output()
            .unwrap(),
        "dpkg-deb -R",
    );
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let old = field(deb, "Version");
    std::fs::write(
        &control,
        text.replace(&format!("Version: {old}"), &format!("Version: {version}")),
    )
    .unwrap();
    let node = tree.join("etc/berth/node.toml");
    let mut text = std::fs::read_to_string(&node).unwrap();
    text.push_str(node_toml_extra);
    std::fs::write(&node, text).unwrap();
    let out = work.join(format!("berth_{version}.deb"));
    ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "-b"])
            .arg(&tree)
            .arg(&out)
            .output()
            .unwrap(),
        "dpkg-deb -b",
    );
    out
}

#[test]
fn package_installs_upgrades_over_an_edited_conffile_and_purges() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let deb = build(work.path());

    // What the package declares.
    assert_eq!(field(&deb, "Package"), "berth");
    let depends = field(&deb, "Depends");
    for d in ["libc6", "e2fsprogs", "lvm2"] {
        assert!(depends.contains(d), "Depends: {depends}");
    }
    assert_eq!(field(&deb, "Recommends"), "docker.io");
    assert_eq!(field(&deb, "Suggests"), "etcd-client");
    let list = stdout(&ok(
        Command::new("dpkg-deb")
            .arg("-c")
            .arg(&deb)
            .output()
            .unwrap(),
        "dpkg-deb -c",
    ));
    let mut wanted = vec![
        "./usr/bin/svc",
        "./usr/bin/svcd",
        "./lib/systemd/system/svcd.service",
        "./etc/berth/node.toml",
        "./etc/berth/services/",
        "./var/lib/berth/",
        "./usr/share/doc/berth/copyright",
        "./usr/share/doc/berth/configuration.md",
        "./usr/share/doc/berth/examples/web.toml",
        "./usr/share/man/man1/svc.1.gz",
        "./usr/share/man/man1/svcd.1.gz",
        "./usr/share/man/man5/berth.conf.5.gz",
        "./usr/share/bash-completion/completions/svc",
        "./usr/share/zsh/vendor-completions/_svc",
        "./usr/share/fish/vendor_completions.d/svc.fish",
    ];
    let collector = repo().join("crates/berth-collector/Cargo.toml").exists();
    if collector {
        wanted.push("./usr/bin/berth-collector");
        wanted.push("./usr/share/man/man1/berth-collector.1.gz");
    }
    for w in &wanted {
        assert!(
            list.lines().any(|l| l.ends_with(&format!(" {w}"))),
            "{w} not in the package:\n{list}"
        );
    }

    // Install: files in place, the unit points at /usr/bin, nothing enabled nor started.
    let root = Root::new();
    ok(
        root.dpkg(&["--install", &deb.to_string_lossy()]),
        "dpkg --install",
    );
    let version = ok(
        Command::new(root.path("usr/bin/svc"))
            .arg("--version")
            .output()
            .unwrap(),
        "svc --version",
    );
    assert!(
        stdout(&version).starts_with("svc 0.1.0 (commit "),
        "{}",
        stdout(&version)
    );
    let unit = std::fs::read_to_string(root.path("lib/systemd/system/svcd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/svcd"), "{unit}");
    assert!(root.path("etc/berth/services").is_dir());
    assert!(root.path("var/lib/berth").is_dir());
    let conffiles =
        std::fs::read_to_string(root.path("var/lib/dpkg/info/berth.conffiles")).unwrap();
    let mut want_conffiles = vec!["/etc/berth/node.toml"];
    if collector {
        // The collector unit's config: a commented example, so the file the unit names exists.
        want_conffiles.insert(0, "/etc/berth/collector.toml");
        let unit = std::fs::read_to_string(root.path("lib/systemd/system/berth-collector.service"))
            .unwrap();
        assert!(
            unit.contains("ExecStart=/usr/bin/berth-collector --config /etc/berth/collector.toml"),
            "{unit}"
        );
        let example = std::fs::read_to_string(root.path("etc/berth/collector.toml")).unwrap();
        assert!(example.contains("# [[nodes]]"), "{example}");
    }
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), want_conffiles);

    // The installed README's links lead to files installed beside it.
    let doc = root.path("usr/share/doc/berth");
    let readme = std::fs::read_to_string(doc.join("README.md")).unwrap();
    let mut links = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let target = &rest[..rest.find(')').unwrap()];
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let file = target.split('#').next().unwrap();
        assert!(
            doc.join(file).is_file(),
            "the installed README links to {target}, which is not in {}",
            doc.display()
        );
        links += 1;
    }
    assert!(links >= 10, "the README's links: {links}");
    assert_eq!(
        root.systemctl_calls(),
        ["daemon-reload"],
        "a first install only reloads units"
    );
    // The installed node.toml is all comments: svc reads it as the defaults.
    let status = Command::new(root.path("usr/bin/svc"))
        .arg("--config-dir")
        .arg(root.path("etc/berth"))
        .args(["--format", "json", "print", "status"])
        .env("BERTH_NODENAME", "node1")
        .output()
        .unwrap();
    let status = stdout(&ok(status, "svc print status on the installed config"));
    assert!(status.contains("\"nodename\": \"node1\""), "{status}");
    assert!(status.contains("\"services\": []"), "{status}");

    // The operator edits node.toml; the next version changes it too: theirs is kept, the new
    // one lands beside it (.dpkg-dist), and the running svcd would be restarted, only if running.
    let node = root.path("etc/berth/node.toml");
    let mut edited = std::fs::read_to_string(&node).unwrap();
    edited.push_str("nodename = \"edited-by-the-operator\"\n");
    std::fs::write(&node, &edited).unwrap();
    let v2 = next_version(&deb, work.path(), "0.1.0+t2", "# a new key, commented\n");
    let o = root.dpkg(&["--force-confold", "--install", &v2.to_string_lossy()]);
    ok(o, "dpkg --install v2 over the edited node.toml");
    assert_eq!(
        std::fs::read_to_string(&node).unwrap(),
        edited,
        "the operator's node.toml was replaced"
    );
    let dist = std::fs::read_to_string(root.path("etc/berth/node.toml.dpkg-dist")).unwrap();
    assert!(dist.ends_with("# a new key, commented\n"), "{dist}");
    let calls = root.systemctl_calls();
    assert!(
        calls.contains(&"try-restart svcd.service".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("enable") || c.starts_with("start")),
        "an upgrade enables or starts nothing: {calls:?}"
    );

    // An upgrade that does not change node.toml keeps the edit without asking (stdin is null:
    // a conffile prompt would fail the install).
    std::fs::remove_file(root.path("etc/berth/node.toml.dpkg-dist")).unwrap();
    let v3 = next_version(&v2, work.path(), "0.1.0+t3", "");
    ok(
        root.dpkg(&["--install", &v3.to_string_lossy()]),
        "dpkg --install v3",
    );
    assert_eq!(std::fs::read_to_string(&node).unwrap(), edited);
    assert!(!root.path("etc/berth/node.toml.dpkg-dist").exists());
    root.systemctl_calls();

    // Remove: the binaries go, the conffile stays, svcd is stopped (its services are not).
    ok(root.dpkg(&["--remove", "berth"]), "dpkg --remove");
    assert!(!root.path("usr/bin/svc").exists());
    assert!(!root.path("usr/share/man/man1/svc.1.gz").exists());
    assert!(node.exists(), "remove keeps the conffile");
    let calls = root.systemctl_calls();
    assert!(
        calls.contains(&"stop svcd.service".to_string()),
        "{calls:?}"
    );

    // Purge: the config goes; a state dir with content stays.
    std::fs::create_dir_all(root.path("var/lib/berth/web")).unwrap();
    std::fs::write(root.path("var/lib/berth/web/last_action.json"), "{}").unwrap();
    std::fs::write(root.path("etc/berth/token"), "secret\n").unwrap();
    let o = ok(root.dpkg(&["--purge", "berth"]), "dpkg --purge");
    assert!(
        !root.path("etc/berth").exists(),
        "purge leaves /etc/berth: {}",
        describe(&o)
    );
    assert!(root.path("var/lib/berth/web/last_action.json").exists());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/var/lib/berth is not empty"),
        "{}",
        describe(&o)
    );
    let status = root.dpkg(&["--status", "berth"]);
    assert!(
        !status.status.success() || stdout(&status).contains("not-installed"),
        "{}",
        describe(&status)
    );
}
