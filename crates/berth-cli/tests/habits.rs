//! OpenSVC operators' command habits through the `svc` binary (issue 15 items 9 and 10): svc
//! called by a service's name, `-s SVC`, `get` / `set` / `unset` keeping the file's format,
//! `enable` / `disable`, `validate config`, `edit config`, `json_status`, `print resinfo` /
//! `devs`, `--subsets`, `--local`, `logs`. The last case mounts a real loop image (root); the
//! others need no root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use berth_testkit::{LoopVg, TempBerth, describe, ext4_image, mounted, require_root};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

const INI: &str = "\
; web, as OpenSVC wrote it
[DEFAULT]
nodes = node1 node2
app = WEB

# the data
[fs#1]
dev = /nonexistent/web.img
mnt: /srv/web
type = ext4
subset = data

[fs#2]
dev = /nonexistent/logs.img
mnt = /srv/logs
type = ext4
mnt_opt = rw,
    noatime
";

const TOML: &str = "\
# db: a TOML service
[service]
nodes = [\"node1\"]  # one node

[fs.1]
dev = \"/nonexistent/db.img\"
mnt = \"/srv/db\"   # the data
type = \"ext4\"
";

struct Case {
    t: TempBerth,
}

impl Case {
    fn new() -> Case {
        let t = TempBerth::new();
        t.write_service("web.env", INI);
        t.write_service("db.toml", TOML);
        Case { t }
    }
    fn svc(&self, args: &[&str]) -> Output {
        self.t.svc(SVC).args(args).output().expect("run svc")
    }
    fn file(&self, name: &str) -> PathBuf {
        self.t.config_dir().join("services").join(name)
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap()
    }
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", describe(o));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails(o: &Output, code: i32, says: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", describe(o));
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        err.contains(says) || out.contains(says),
        "expected {says:?}: {}",
        describe(o)
    );
}

#[test]
fn set_get_unset_keep_an_ini_file_ini_with_its_comments() {
    let c = Case::new();
    ok(&c.svc(&[
        "web",
        "set",
        "--kw",
        "fs#1.mnt=/srv/data",
        "--kw",
        "fs#2.mnt_opt=ro",
        "--kw",
        "nodes+=node3",
    ]));
    let want = INI
        .replace("mnt: /srv/web", "mnt: /srv/data")
        .replace("mnt_opt = rw,\n    noatime", "mnt_opt = ro")
        .replace("node1 node2", "node1 node2 node3");
    assert_eq!(c.read("web.env"), want);
    assert_eq!(
        ok(&c.svc(&["web", "get", "--kw", "fs#1.mnt", "--kw", "nodes"])),
        "/srv/data\nnode1 node2 node3\n"
    );
    // svcmgr's spelling.
    ok(&c.svc(&["web", "set", "--param", "app", "--value", "SHOP"]));
    assert_eq!(
        ok(&c.svc(&["web", "get", "--param", "DEFAULT.app"])),
        "SHOP\n"
    );
    ok(&c.svc(&["web", "unset", "--kw", "fs#2.mnt_opt"]));
    assert!(
        !c.read("web.env").contains("mnt_opt"),
        "{}",
        c.read("web.env")
    );
    fails(
        &c.svc(&["web", "get", "--kw", "fs#2.mnt_opt"]),
        1,
        "not set",
    );
    // print config reads what was written (INI stays INI; --eval: berth TOML).
    let cfg = ok(&c.svc(&["web", "print", "config"]));
    assert!(cfg.contains("mnt = /srv/data"), "{cfg}");
    let cfg = ok(&c.svc(&["web", "print", "config", "--eval"]));
    assert!(cfg.contains("mnt = \"/srv/data\""), "{cfg}");
}

#[test]
fn set_keeps_toml_comments_and_types() {
    let c = Case::new();
    ok(&c.svc(&[
        "db",
        "set",
        "--kw",
        "fs#1.mnt=/srv/db2",
        "--kw",
        "fs#1.restart=2",
        "--kw",
        "app=123",
    ]));
    let text = c.read("db.toml");
    assert!(text.contains("mnt = \"/srv/db2\"   # the data"), "{text}");
    assert!(text.contains("restart = 2\n"), "{text}");
    assert!(text.contains("app = \"123\""), "{text}");
    assert!(
        text.starts_with("# db: a TOML service\n[service]\n"),
        "{text}"
    );
}

#[test]
fn a_bad_set_leaves_the_file_as_it_was() {
    let c = Case::new();
    let before = std::fs::read(c.file("web.env")).unwrap();
    // A value the loader refuses.
    fails(
        &c.svc(&["web", "set", "--kw", "fs#1.mnt=relative/path"]),
        2,
        "expected an absolute path",
    );
    // A keyword berth would ignore (INI reads it with a warning): refused, named.
    fails(&c.svc(&["web", "set", "--kw", "fs#1.bogus=1"]), 2, "bogus");
    // Removing a mandatory keyword.
    fails(&c.svc(&["web", "unset", "--kw", "fs#1.dev"]), 2, "dev");
    // Not a keyword at all.
    fails(&c.svc(&["web", "set", "--kw", "fs#1.mnt"]), 2, "--kw");
    fails(&c.svc(&["web", "set"]), 2, "usage");
    assert_eq!(std::fs::read(c.file("web.env")).unwrap(), before);
    // No temporary file left next to it.
    let names: Vec<String> = std::fs::read_dir(c.t.config_dir().join("services"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // The file keeps its mode.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(c.file("db.toml"), std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&c.svc(&["db", "set", "--kw", "fs#1.mnt=/srv/x"]));
    let mode = std::fs::metadata(c.file("db.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn disable_and_enable_resources_or_the_whole_service() {
    let c = Case::new();
    ok(&c.svc(&["web", "disable", "--rid", "fs#2"]));
    assert!(
        c.read("web.env").contains("noatime\ndisable = true\n"),
        "{}",
        c.read("web.env")
    );
    let st = ok(&c.svc(&["--refresh", "web", "print", "status"]));
    let line = st.lines().find(|l| l.contains("fs#2")).unwrap();
    assert!(line.contains(".D.."), "{st}");
    let line = st.lines().find(|l| l.contains("fs#1")).unwrap();
    assert!(line.contains("...."), "{st}");
    // A disabled resource is skipped by actions.
    let out = c.svc(&["web", "startfs", "--rid", "fs#2"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("disabled: skipped"),
        "{}",
        describe(&out)
    );
    // Without --rid: every resource, as OpenSVC disables the whole service.
    ok(&c.svc(&["web", "disable"]));
    let st = ok(&c.svc(&["--refresh", "web", "print", "status"]));
    assert_eq!(st.matches(".D..").count(), 2, "{st}");
    ok(&c.svc(&["web", "enable", "--rid", "fs#1"]));
    ok(&c.svc(&["web", "enable"]));
    assert_eq!(c.read("web.env"), INI);
    fails(&c.svc(&["web", "disable", "--rid", "fs#9"]), 2, "fs#9");
}

#[test]
fn validate_config_lists_the_problems_and_exits_2() {
    let c = Case::new();
    let out = ok(&c.svc(&["web", "validate", "config"]));
    assert!(out.contains("web: ok (2 resources, 0 warnings)"), "{out}");
    c.t.write_service("bad.toml", "[fs.1]\ndev = \"/x.img\"\ntype = \"ext4\"\n");
    fails(&c.svc(&["bad", "validate", "config"]), 2, "mnt");
    // Every service: the good ones said ok, the bad one named; exit 2.
    let all = c.svc(&["validate", "config"]);
    fails(&all, 2, "bad: does not load");
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(
        text.contains("db: ok") && text.contains("web: ok"),
        "{text}"
    );
    fails(
        &c.svc(&["nosuch", "validate", "config"]),
        2,
        "no service nosuch",
    );
}

#[test]
fn edit_config_saves_a_copy_that_loads_and_refuses_one_that_does_not() {
    let c = Case::new();
    let edit = |editor: &str| {
        c.t.svc(SVC)
            .args(["db", "edit", "config"])
            .env("EDITOR", editor)
            .output()
            .unwrap()
    };
    let out = edit("sed -i s#/srv/db#/srv/edited#");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        c.read("db.toml"),
        TOML.replace("/srv/db\"", "/srv/edited\"")
    );
    // A broken edit: refused, the file unchanged, the edited copy kept and named.
    let before = c.read("db.toml");
    let out = edit("sed -i s#^mnt#mount#");
    fails(&out, 2, "the edited copy is kept at");
    assert_eq!(c.read("db.toml"), before);
    let err = String::from_utf8_lossy(&out.stderr);
    let kept = err
        .split("the edited copy is kept at ")
        .nth(1)
        .unwrap()
        .trim();
    let kept = Path::new(kept);
    assert!(
        std::fs::read_to_string(kept).unwrap().contains("mount ="),
        "{err}"
    );
    std::fs::remove_dir_all(kept.parent().unwrap()).unwrap();
    // An editor that fails: nothing written.
    fails(&edit("false"), 1, "is unchanged");
    assert_eq!(c.read("db.toml"), before);
    // No change: nothing written, exit 0.
    let out = edit("true");
    assert!(out.status.success(), "{}", describe(&out));
    // A file that does not load can still be edited (and so mended).
    c.t.write_service("db.toml", "[fs.1]\ndev = \"/x.img\"\ntype = \"ext4\"\n");
    let out = edit("sed -i '$a mnt = \"/srv/mended\"'");
    assert!(out.status.success(), "{}", describe(&out));
    ok(&c.svc(&["db", "validate", "config"]));
}

#[test]
fn svc_called_by_a_service_name_and_dash_s() {
    let c = Case::new();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("web");
    std::os::unix::fs::symlink(SVC, &link).unwrap();
    let run =
        |prog: &Path, args: &[&str]| c.t.svc(prog.to_str().unwrap()).args(args).output().unwrap();
    let direct = ok(&c.svc(&["web", "print", "config"]));
    assert_eq!(ok(&run(&link, &["print", "config"])), direct);
    assert_eq!(ok(&c.svc(&["-s", "web", "print", "config"])), direct);
    // The link's own name with -s naming it too is fine; another service is not.
    ok(&run(&link, &["-s", "web", "print", "config"]));
    fails(
        &run(&link, &["-s", "db", "print", "config"]),
        2,
        "-s names db",
    );
    // -s with several services: each in turn.
    let both = ok(&c.svc(&["-s", "web,db", "get", "--kw", "nodes"]));
    assert_eq!(both, "node1 node2\nnode1\n");
    // A link whose name is no service: refused, not a node-wide action.
    let stale = dir.path().join("gone.example.com");
    std::os::unix::fs::symlink(SVC, &stale).unwrap();
    fails(
        &run(&stale, &["print", "status"]),
        2,
        "no service gone.example.com",
    );
    // svc's own names, and copies named svc-something, stay svc.
    for name in ["svcmgr", "svc-0.1"] {
        let own = dir.path().join(name);
        std::os::unix::fs::symlink(SVC, &own).unwrap();
        assert_eq!(ok(&run(&own, &["web", "print", "config"])), direct);
    }
}

#[test]
fn json_status_resinfo_devs_subsets_and_local() {
    let c = Case::new();
    let a: serde_json::Value =
        serde_json::from_str(&ok(&c.svc(&["--refresh", "web", "json_status"]))).unwrap();
    let b: serde_json::Value = serde_json::from_str(&ok(&c.svc(&[
        "--refresh",
        "--format",
        "json",
        "web",
        "print",
        "status",
    ])))
    .unwrap();
    assert_eq!(a["name"], "web");
    assert_eq!(a["resources"], b["resources"]);
    let node: serde_json::Value =
        serde_json::from_str(&ok(&c.svc(&["--refresh", "json_status"]))).unwrap();
    assert_eq!(node["services"].as_array().unwrap().len(), 2);

    let info = ok(&c.svc(&["web", "print", "resinfo"]));
    assert!(info.starts_with("web\n"), "{info}");
    assert!(
        info.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["fs#1", "mnt", "/srv/web"]),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.starts_with("fs#2") && l.contains("status") && l.contains("down")),
        "{info}"
    );
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&c.svc(&["--format", "json", "web", "print", "resinfo"])))
            .unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "subset" && r["value"] == "data")
    );

    let devs = ok(&c.svc(&["web", "print", "devs"]));
    assert_eq!(
        devs,
        "web\nfs#1  sub      /nonexistent/web.img\nfs#2  sub      /nonexistent/logs.img\n"
    );

    // --subsets picks fs#1 only; --local is accepted.
    let out = c.svc(&[
        "web",
        "startfs",
        "--subsets",
        "data",
        "--local",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WEB.FS#1") && !err.contains("WEB.FS#2"),
        "{err}"
    );
    fails(
        &c.svc(&["web", "startfs", "--subsets", "nosuch", "--dry-run"]),
        2,
        "--subsets nosuch",
    );
    fails(&c.svc(&["web", "start", "--kw", "x=1"]), 2, "--kw");
}

/// Root: a real fs on a loop image. `print devs` names the loop device, `logs` shows the
/// actions' lines and outcomes (not the dry runs), a disabled fs is not mounted by a start.
#[test]
fn logs_devs_and_disable_on_a_real_fs() {
    require_root();
    let t = TempBerth::new();
    let img = t.path("data.img");
    ext4_image(&img, 16);
    let mnt = t.path("mnt");
    t.write_service(
        "web.conf",
        &format!(
            "[DEFAULT]\nnodes = node1\n\n[fs#1]\ndev = {}\nmnt = {}\ntype = ext4\n",
            img.display(),
            mnt.display()
        ),
    );
    let svc = |args: &[&str]| t.svc(SVC).args(args).output().unwrap();
    assert!(ok(&svc(&["web", "logs"])).is_empty());
    ok(&svc(&["web", "start", "--dry-run"]));
    assert!(
        ok(&svc(&["web", "logs"])).is_empty(),
        "a dry run is no history"
    );
    ok(&svc(&["web", "start"]));
    assert!(mounted(&mnt));
    let devs = ok(&svc(&["web", "print", "devs"]));
    let lines: Vec<Vec<&str>> = devs
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["fs#1", "sub", img.to_str().unwrap()], "{devs}");
    assert_eq!(lines[1][1], "sub", "{devs}");
    assert!(lines[1][2].starts_with("/dev/loop"), "{devs}");
    assert_eq!(lines[2], ["fs#1", "base", lines[1][2]], "{devs}");
    ok(&svc(&["web", "stop"]));
    assert!(!mounted(&mnt));
    let logs = ok(&svc(&["web", "logs"]));
    let mount = logs
        .lines()
        .position(|l| l.contains("WEB.FS#1") && l.contains("mount -t ext4"));
    let head = logs
        .lines()
        .position(|l| l.contains("svc web start") && !l.contains("done"));
    let done = logs.lines().position(|l| l.contains("svc web start: done"));
    let umount = logs.lines().position(|l| l.contains("umount"));
    assert!(
        head < mount && mount < done && done < umount && head.is_some(),
        "{logs}"
    );
    // Dated lines (a command's output may follow a line on lines of its own).
    assert!(
        logs.lines()
            .filter(|l| l.contains(" INFO "))
            .all(|l| l.as_bytes().get(4) == Some(&b'-') && l.as_bytes().get(10) == Some(&b' ')),
        "{logs}"
    );
    ok(&svc(&["web", "disable", "--rid", "fs#1"]));
    ok(&svc(&["web", "start"]));
    assert!(!mounted(&mnt), "a disabled fs is not mounted");
}

/// Root: `print devs` of a VG lists its physical volume (from `pvs`), and that loop device as
/// the base. (This kernel has no device-mapper: the VG has no active LV to show as `exposed`.)
#[test]
fn print_devs_lists_a_vgs_physical_volume() {
    require_root();
    let vg = LoopVg::new();
    let t = TempBerth::new();
    t.write_service("data.toml", &format!("[vg.1]\nvgname = \"{}\"\n", vg.name));
    let out = ok(&t.svc(SVC).args(["data", "print", "devs"]).output().unwrap());
    assert_eq!(
        out,
        format!(
            "data\nvg#1  sub      {dev}\nvg#1  base     {dev}\n",
            dev = vg.dev
        )
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&t
        .svc(SVC)
        .args(["--format", "json", "data", "print", "devs"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(json[0]["role"], "sub");
    assert_eq!(json[0]["dev"], vg.dev.as_str());
}

#[test]
fn an_option_the_action_does_not_take_is_refused_naming_it() {
    let c = Case::new();
    // Accepted before, exit 0, `--to` silently ignored (issue 22).
    fails(
        &c.svc(&["web", "start", "--to", "n2"]),
        2,
        "start does not take --to",
    );
    fails(
        &c.svc(&["db", "print", "config", "--eval", "--follow"]),
        2,
        "print config does not take --follow",
    );
    fails(
        &c.svc(&["db", "freeze", "--rid", "fs#1", "--force"]),
        2,
        "freeze does not take --rid, --force",
    );
    // An option the action takes is taken.
    ok(&c.svc(&["db", "print", "config", "--eval"]));
}

#[test]
fn svcmgr_habits_help_and_options_before_the_action() {
    let c = Case::new();
    // `svc web --help`: the service actions, exit 0 (it said "unknown action", exit 2).
    let help = ok(&c.svc(&["web", "--help"]));
    for a in [
        "start|stop ",
        "restart ",
        "startfs",
        "freeze|thaw",
        "switch --to NODE",
    ] {
        assert!(help.contains(a), "{a} not in:\n{help}");
    }
    // Options before the action, as svcmgr takes them.
    assert_eq!(
        ok(&c.svc(&["-s", "web", "--kw", "nodes", "get"])),
        "node1 node2\n"
    );
    let dry = c.svc(&["-s", "web", "--rid", "fs#1", "startfs", "--dry-run"]);
    assert!(dry.status.success(), "{}", describe(&dry));
    let said = String::from_utf8_lossy(&dry.stderr);
    assert!(
        said.contains("WEB.FS#1") && !said.contains("WEB.FS#2"),
        "{}",
        describe(&dry)
    );
    fails(
        &c.svc(&["-s", "web", "--rid", "fs#1", "start", "--to", "n2"]),
        2,
        "start does not take --to",
    );
    // `svc mon` on a node in no cluster: the grid of this node alone.
    let grid = ok(&c.svc(&["mon"]));
    assert!(grid.lines().any(|l| l.starts_with("Nodes")), "{grid}");
    for svc in ["db", "web"] {
        assert!(
            grid.lines()
                .any(|l| l.split_whitespace().next() == Some(svc)),
            "{svc} not in:\n{grid}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&c.svc(&["mon", "--format", "json"]))).unwrap();
    assert_eq!(
        json["services"]["web"]["nodes"].as_object().unwrap().len(),
        1
    );
    // `svcmon`, a link the package ships, is `svc mon`.
    let dir = tempfile::tempdir().unwrap();
    let svcmon = dir.path().join("svcmon");
    std::os::unix::fs::symlink(SVC, &svcmon).unwrap();
    let out = c.t.svc(svcmon.to_str().unwrap()).output().unwrap();
    assert_eq!(ok(&out), grid);
}

#[test]
fn a_service_named_like_a_command_is_reached_with_dash_s_or_a_link() {
    let c = Case::new();
    for name in ["mon", "print", "json_status"] {
        c.t.write_service(&format!("{name}.toml"), TOML);
    }
    let direct = ok(&c.svc(&["db", "print", "config"]));
    // -s NAME always means the service.
    for name in ["mon", "print", "json_status"] {
        assert_eq!(
            ok(&c.svc(&["-s", name, "print", "config"])),
            direct,
            "{name}"
        );
    }
    // `svc -s print status` is the service's status (down: exit 1), not every service.
    let st = c.svc(&["-s", "print", "status"]);
    assert_eq!(st.status.code(), Some(1), "{}", describe(&st));
    assert_eq!(String::from_utf8_lossy(&st.stdout), "down\n");
    // A link named after it too.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("mon");
    std::os::unix::fs::symlink(SVC, &link).unwrap();
    let out =
        c.t.svc(link.to_str().unwrap())
            .args(["print", "config"])
            .output();
    assert_eq!(ok(&out.unwrap()), direct);
    // The plain form is the node's command, and says how to reach the service.
    fails(&c.svc(&["mon", "start"]), 2, "svc -s mon start");
    fails(
        &c.svc(&["print", "config"]),
        2,
        "to act on the service print: svc -s print config",
    );
}
