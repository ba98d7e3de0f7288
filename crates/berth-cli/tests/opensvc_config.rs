//! OpenSVC service files through `svc`: `print config` (berth's keyword names, the file's own
//! syntax), `print config --eval` (this node's values), and a broken file refused with every
//! error and warning at once, exit 2. No root needed: nothing is started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_testkit::{TempBerth, describe};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

const WEB: &str = "\
[DEFAULT]
nodes = node1 node2
service_type = PRD
container_data_dir = /srv/{name}/docker

[env]
port = 8080

[ip#1]
name = 192.0.2.10
dev = eth0
dev@node2 = eth2
netmask = 24

[disk#1]
type = lvm
name = vg{name}

[fs#app]
dev = /dev/{disk#1.name}/lvapp
mnt = /srv/{name}
type = ext4

[container#db]
image = busybox
command = /bin/sh -c 'echo {nodename} {env.port}'
";

fn svc(t: &TempBerth, node: &str, args: &[&str]) -> Output {
    t.svc(SVC)
        .env("BERTH_NODENAME", node)
        .args(args)
        .output()
        .expect("run svc")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", describe(o));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn print_config_shows_berths_names_and_eval_this_nodes_values() {
    let t = TempBerth::new();
    t.write_service("web.env", WEB);
    let shown = stdout(&svc(&t, "node1", &["web", "print", "config"]));
    for line in [
        "[DEFAULT]\nnodes = node1 node2\nenv = PRD\ndocker_data_dir = /srv/{name}/docker\n",
        "[ip#1]\nipname = 192.0.2.10\nipdev = eth0\nipdev@node2 = eth2\nnetmask = 24\n",
        "[disk#1]\ntype = lvm\nvgname = vg{name}\n",
        "[container#db]\nrun_image = busybox\nrun_command = /bin/sh -c 'echo {nodename} {env.port}'\n",
    ] {
        assert!(shown.contains(line), "{line:?} not in:\n{shown}");
    }
    let eval = stdout(&svc(&t, "node2", &["web", "print", "config", "--eval"]));
    for line in [
        "env = \"PRD\"",
        "docker_data_dir = \"/srv/web/docker\"",
        "[ip.1]\nipname = \"192.0.2.10\"\nipdev = \"eth2\"",
        "[vg.1]\nvgname = \"vgweb\"",
        "[fs.app]\ndev = \"/dev/vgweb/lvapp\"\nmnt = \"/srv/web\"",
        "[container.db]",
        "run_command = [\"/bin/sh\", \"-c\", \"echo node2 8080\"]",
    ] {
        assert!(eval.contains(line), "{line:?} not in:\n{eval}");
    }
    // The evaluated form is itself a service file berth reads back the same.
    t.write_service("copy.toml", &eval);
    let again = stdout(&svc(&t, "node2", &["copy", "print", "config", "--eval"]));
    assert_eq!(
        again.lines().skip(1).collect::<Vec<_>>(),
        eval.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn a_broken_file_is_refused_with_every_error_and_warning() {
    let t = TempBerth::new();
    let file = t.write_service(
        "web.env",
        "[DEFAULT]\nnodes = node1\nfoo = bar\n\n[fs#1]\ndev = /dev/x\nmnt = relative\ntype = ext4\n\n\
         [container#1]\ntype = oci\nimage = busybox\n\n[container#2]\nimage = busybox\ncommand = {nope}\n",
    );
    let o = svc(&t, "node1", &["web", "print", "config"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let f = file.display();
    for line in [
        format!("{f}:7: [fs#1] mnt: bad value \"relative\": expected an absolute path"),
        format!("{f}:11: [container#1] type: type oci is not supported (berth has: docker)"),
        format!("{f}:16: [container#2] command: reference {{nope}}: not a name berth knows"),
        format!("warning: {f}:3: [DEFAULT] foo: keyword not known to berth: ignored"),
    ] {
        assert!(err.contains(&line), "{line:?} not in:\n{err}");
    }
}
