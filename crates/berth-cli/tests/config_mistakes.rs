//! Config mistakes that used to pass silently (issue 23 items 4 and 10), through the `svc`
//! binary: an INI section of no OpenSVC kind, a TOML file's every error at once, files berth does
//! not read, a container `type = 5`, deleted services' var dirs, what `set` changed, `-=` on an
//! absent key. No root, no host change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_testkit::{TempBerth, describe};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

fn svc(t: &TempBerth, args: &[&str]) -> Output {
    t.svc(SVC).args(args).output().expect("run svc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str = "[service]\nnodes = [\"node1\"]\n[fs.1]\ndev = \"/nonexistent/web.img\"\n\
                    mnt = \"/srv/web\"\ntype = \"ext4\"\n";

#[test]
fn an_ini_section_of_no_opensvc_kind_is_an_error_naming_the_nearest() {
    let t = TempBerth::new();
    t.write_service(
        "web.env",
        "[DEFAULT]\nnodes = node1\n\n[containr#1]\ntype = docker\nimage = busybox\n\n\
         [app#1]\nscript = /bin/true\n",
    );
    let o = svc(&t, &["web", "validate", "config"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "web.env:4: [containr#1] unknown section: containr is not an OpenSVC resource kind \
             (did you mean [container#1]?)"
        ),
        "{}",
        describe(&o)
    );
    // A real OpenSVC kind berth does not run stays a warning, shown with the error.
    assert!(
        out.contains("warning: ") && out.contains("[app#1] section ignored"),
        "{}",
        describe(&o)
    );
    let o = svc(&t, &["validate", "config"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        stdout(&o).contains("web: does not load"),
        "{}",
        describe(&o)
    );

    // Mended: the app section alone is a warning, exit 0.
    t.write_service(
        "web.env",
        "[DEFAULT]\nnodes = node1\n\n[app#1]\nscript = /bin/true\n",
    );
    let o = svc(&t, &["web", "validate", "config"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        stdout(&o).contains("web: ok (0 resources, 1 warnings)"),
        "{}",
        describe(&o)
    );
}

#[test]
fn a_toml_file_reports_every_error_at_once() {
    let t = TempBerth::new();
    t.write_service(
        "web.toml",
        "[service]\nnodes = [\"node1\"]\n\n[containr.1]\nimage = \"x\"\n\n[fs.1]\ndev = \"/x.img\"\n",
    );
    let o = svc(&t, &["web", "validate", "config"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for want in [
        "web.toml:4: [containr] unknown section",
        "(did you mean [container.<n>]?)",
        "web.toml:7: [fs#1] mnt: missing mandatory key",
        "web.toml:7: [fs#1] type: missing mandatory key",
    ] {
        assert!(all.contains(want), "{want:?} missing: {}", describe(&o));
    }
}

#[test]
fn a_container_type_that_is_a_number_is_refused() {
    let t = TempBerth::new();
    t.write_service(
        "web.toml",
        "[service]\nnodes = [\"node1\"]\n[container.1]\ntype = 5\nimage = \"busybox\"\n",
    );
    for args in [
        &["web", "print", "config"][..],
        &["web", "validate", "config"][..],
    ] {
        let o = svc(&t, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            all.contains("[container#1] type: type 5 is not supported (berth has: docker)"),
            "{args:?}: {}",
            describe(&o)
        );
    }
}

#[test]
fn files_berth_does_not_read_are_named_as_ignored() {
    let t = TempBerth::new();
    t.write_service("web.toml", GOOD);
    for f in ["app.yaml", "db.TOML", "web.toml.bak"] {
        t.write_service(f, GOOD);
    }
    t.write_service(".web.toml.swp", "editor state");
    let dir = t.config_dir().join("services");
    let o = svc(&t, &["validate", "config"]);
    assert!(o.status.success(), "a warning only: {}", describe(&o));
    let out = stdout(&o);
    for f in ["app.yaml", "db.TOML", "web.toml.bak"] {
        let want = format!(
            "warning: {}/{f} ignored: berth reads <svc>.toml, <svc>.env, <svc>.conf only",
            dir.display()
        );
        assert!(out.contains(&want), "{want:?}: {}", describe(&o));
    }
    assert!(!out.contains(".swp"), "{}", describe(&o));
    assert!(out.contains("web: ok"), "{}", describe(&o));

    let o = svc(&t, &["print", "status"]);
    assert!(o.status.success(), "{}", describe(&o));
    let err = stderr(&o);
    for f in ["app.yaml", "db.TOML", "web.toml.bak"] {
        assert!(
            err.contains(&format!("{}/{f} ignored", dir.display())),
            "{f}: {}",
            describe(&o)
        );
    }
    assert!(stdout(&o).contains("web"), "{}", describe(&o));
}

#[test]
fn a_deleted_services_var_dir_is_named_by_validate_config() {
    let t = TempBerth::new();
    t.write_service("web.toml", GOOD);
    std::fs::create_dir_all(t.var_dir().join("web")).unwrap();
    std::fs::create_dir_all(t.var_dir().join("gone")).unwrap();
    std::fs::write(t.var_dir().join("gone/web.log"), "old lines\n").unwrap();
    let o = svc(&t, &["validate", "config"]);
    assert!(o.status.success(), "{}", describe(&o));
    let gone = t.var_dir().join("gone");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "note: {} belongs to no service file",
            gone.display()
        )) && out.contains(&format!("`rm -r {}`", gone.display())),
        "{}",
        describe(&o)
    );
    assert!(
        !out.contains(&format!("{}/web ", t.var_dir().display())),
        "{}",
        describe(&o)
    );
    // One service's validation says nothing of the others.
    let o = svc(&t, &["web", "validate", "config"]);
    assert!(!stdout(&o).contains("note:"), "{}", describe(&o));
}

#[test]
fn set_says_what_changed_and_minus_equal_on_an_absent_key_writes_nothing() {
    let t = TempBerth::new();
    let file = t.write_service("web.toml", GOOD);
    let o = svc(
        &t,
        &[
            "web",
            "set",
            "--kw",
            "fs#1.mnt=/srv/data",
            "--kw",
            "fs#1.tags+=db",
        ],
    );
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        stdout(&o),
        "fs#1.mnt = /srv/data (was /srv/web)\nfs#1.tags = db (was not set)\n",
        "{}",
        describe(&o)
    );
    let o = svc(&t, &["web", "unset", "--kw", "fs#1.tags"]);
    assert_eq!(stdout(&o), "fs#1.tags unset (was db)\n", "{}", describe(&o));

    let before = std::fs::read_to_string(&file).unwrap();
    let o = svc(&t, &["web", "set", "--kw", "fs#1.tags-=old"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "no `tags = []`"
    );
    assert_eq!(
        stdout(&o),
        format!("{}: nothing changed\n", file.display()),
        "{}",
        describe(&o)
    );
}

/// Without a cluster, `create --config FILE` checks the file and writes it (refused when the
/// service has one, or when FILE does not load); `delete` removes the file of a service that is
/// down and reports its var dir, left in place.
#[test]
fn create_and_delete_without_a_cluster() {
    let t = TempBerth::new();
    let src = t.path("web-src.toml");
    std::fs::write(&src, GOOD).unwrap();
    let bad = t.path("bad.toml");
    std::fs::write(&bad, "[service]\nnodes = 3\n").unwrap();
    let o = svc(&t, &["web", "create", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        stderr(&o).contains("refused, nothing written"),
        "{}",
        describe(&o)
    );
    assert!(!t.config_dir().join("services/web.toml").exists());
    let o = svc(&t, &["web", "create"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let o = svc(&t, &["web", "create", "--config", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(t.config_dir().join("services/web.toml")).unwrap(),
        GOOD
    );
    let o = svc(&t, &["web", "create", "--config", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains("web exists already"),
        "{}",
        describe(&o)
    );

    // Down (its image does not exist): deleted; its var dir is reported, not removed.
    std::fs::create_dir_all(t.var_dir().join("web")).unwrap();
    std::fs::write(t.var_dir().join("web/keep"), "x").unwrap();
    let o = svc(&t, &["web", "delete"]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(!t.config_dir().join("services/web.toml").exists());
    assert!(
        stdout(&o).contains("is left (the service's log"),
        "{}",
        describe(&o)
    );
    assert!(t.var_dir().join("web/keep").exists());
    let o = svc(&t, &["web", "delete"]);
    assert_ne!(o.status.code(), Some(0), "{}", describe(&o));
}
