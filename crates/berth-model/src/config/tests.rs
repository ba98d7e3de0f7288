//! Parsing: good and bad files in both formats, and the core seed's own service file.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::order::start_order;

const SEED_ENV: &str = include_str!("../../../../etc/examples/docker.opensvc.com.env");
const EXAMPLE_TOML: &str = include_str!("../../../../etc/examples/web.toml");

fn toml(text: &str) -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::parse(Path::new("/etc/berth/services/web.toml"), text)
}

fn ini(text: &str) -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::parse(Path::new("/etc/berth/services/web.env"), text)
}

fn err(r: Result<ServiceConfig, ConfigError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn the_seed_service_file_parses() {
    let svc = ServiceConfig::parse(
        Path::new("/opt/opensvc/etc/docker.opensvc.com.env"),
        SEED_ENV,
    )
    .unwrap();
    assert_eq!(svc.name, "docker.opensvc.com");
    assert_eq!(svc.format, Format::Ini);
    assert!(svc.warnings.is_empty(), "{:?}", svc.warnings);
    let s = &svc.settings;
    assert_eq!(s.nodes, ["deb1.opensvc.com"]);
    assert_eq!(s.autostart_node.as_deref(), Some("deb1.opensvc.com"));
    assert_eq!(s.app.as_deref(), Some("OSVCLAB"));
    assert_eq!(s.env.as_deref(), Some("DEV"));
    assert_eq!(
        s.docker_data_dir.as_deref(),
        Some(Path::new("/opt/docker.opensvc.com/appdata"))
    );
    let order: Vec<String> = start_order(&svc).iter().map(|r| r.to_string()).collect();
    assert_eq!(order, ["ip#1", "vg#1", "fs#1", "fs#2", "container#1"]);
    let Spec::Fs(fs1) = &svc.resource("fs#1".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    let Spec::Fs(fs2) = &svc.resource("fs#2".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    // The seed writes mnt_opt for one and mnt_opts for the other.
    assert_eq!(fs1.mnt_opt.as_deref(), Some("rw"));
    assert_eq!(fs2.mnt_opt.as_deref(), Some("rw"));
    assert_eq!(fs2.dev, Path::new("/dev/mapper/vgdocker-lvdockerdata"));
    let Spec::Container(c) = &svc.resource("container#1".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    assert_eq!(c.run_image, "f66342b343ae");
    assert_eq!(c.run_command.as_deref(), Some(&["/bin/sh".to_string()][..]));
    assert_eq!(
        c.run.volumes[0].text,
        "/opt/docker.opensvc.com/vol1:/vol1:rw"
    );
    assert!(
        c.run.tty && c.run.interactive,
        "the seed's /bin/sh container needs -t -i"
    );
    let Spec::Ip(ip) = &svc.resource("ip#1".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    assert_eq!(
        (ip.ipname.as_str(), ip.ipdev.as_str(), ip.netmask),
        ("docker.opensvc.com", "eth0", None)
    );
}

#[test]
fn the_example_toml_parses() {
    let svc = toml(EXAMPLE_TOML).unwrap();
    assert_eq!(svc.resources.len(), 5);
    let r = svc.resource("container#1".parse().unwrap()).unwrap();
    assert!(r.common.monitor);
    assert_eq!(r.common.restart, 2);
    let Spec::Fs(fs) = &svc.resource("fs#1".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    assert_eq!(fs.mnt_opt.as_deref(), Some("rw,noatime"));
    let Spec::Ip(ip) = &svc.resource("ip#1".parse().unwrap()).unwrap().spec else {
        panic!()
    };
    assert_eq!(ip.netmask, Some(Prefix(24)));
}

#[test]
fn print_config_round_trips() {
    for (path, text) in [
        ("/x/docker.opensvc.com.env", SEED_ENV),
        ("/x/web.toml", EXAMPLE_TOML),
    ] {
        let svc = ServiceConfig::parse(Path::new(path), text).unwrap();
        let emitted = to_toml(&svc).unwrap();
        let again = ServiceConfig::parse(Path::new("/x/again.toml"), &emitted)
            .unwrap_or_else(|e| panic!("{e}\n{emitted}"));
        assert_eq!(
            format!("{:?}", again.settings),
            format!("{:?}", svc.settings)
        );
        assert_eq!(
            format!("{:?}", again.resources),
            format!("{:?}", svc.resources),
            "{emitted}"
        );
    }
}

#[test]
fn toml_unknown_key_names_file_line_section_key() {
    let e = err(toml(
        "[fs.1]\ndev = \"/dev/sdb\"\nmnt = \"/srv\"\ntype = \"ext4\"\nmnt_opst = \"rw\"\n",
    ));
    assert!(
        e.starts_with("/etc/berth/services/web.toml:5: [fs#1] mnt_opst: unknown key"),
        "{e}"
    );
    assert!(e.contains("mnt_opt"), "lists the known keys: {e}");
}

#[test]
fn toml_missing_mandatory_keys() {
    let cases = [
        (
            "[fs.1]\nmnt = \"/srv\"\ntype = \"ext4\"\n",
            "[fs#1] dev: missing mandatory key",
        ),
        (
            "[fs.1]\ndev = \"/dev/x\"\ntype = \"ext4\"\n",
            "[fs#1] mnt: missing mandatory key",
        ),
        (
            "[fs.1]\ndev = \"/dev/x\"\nmnt = \"/srv\"\n",
            "[fs#1] type: missing mandatory key",
        ),
        (
            "[ip.1]\nipname = \"192.0.2.1\"\n",
            "[ip#1] ipdev: missing mandatory key",
        ),
        (
            "[ip.1]\nipdev = \"eth0\"\n",
            "[ip#1] ipname: missing mandatory key",
        ),
        ("[vg.1]\n", "[vg#1] vgname: missing mandatory key"),
        (
            "[container.1]\nrun_command = \"sh\"\n",
            "[container#1] run_image: missing mandatory key",
        ),
    ];
    for (text, want) in cases {
        let e = err(toml(text));
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("/etc/berth/services/web.toml:1:"), "{e}");
    }
}

#[test]
fn bad_values_are_named() {
    let e = err(toml(
        "[fs.1]\ndev = \"/dev/x\"\nmnt = \"srv/web\"\ntype = \"ext4\"\n",
    ));
    assert!(
        e.contains(":3: [fs#1] mnt: bad value \"srv/web\": expected an absolute path"),
        "{e}"
    );
    let e = err(toml(
        "[ip.1]\nipdev = \"eth0\"\nipname = \"not an address!\"\n",
    ));
    assert!(
        e.contains(":3: [ip#1] ipname: bad value \"not an address!\""),
        "{e}"
    );
    let e = err(toml(
        "[ip.1]\nipdev = \"eth0\"\nipname = \"192.0.2.1\"\nnetmask = 33\n",
    ));
    assert!(e.contains("[ip#1] netmask"), "{e}");
    let e = err(toml(
        "[ip.1]\nipdev = \"eth0\"\nipname = \"192.0.2.1\"\nnetmask = \"255.0.255.0\"\n",
    ));
    assert!(e.contains("netmask: bad value \"255.0.255.0\""), "{e}");
    let e = err(toml(
        "[fs.1]\ndev = \"/dev/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\noptional = \"yes\"\n",
    ));
    assert!(
        e.contains(":5: [fs#1] optional: bad value \"yes\": expected true or false"),
        "{e}"
    );
    let e = err(toml(
        "[fs.1]\ndev = \"/dev/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\nrestart = -1\n",
    ));
    assert!(e.contains("restart: bad value \"-1\""), "{e}");
    let e = err(toml("[service]\ndocker_data_dir = \"relative\"\n"));
    assert!(
        e.contains(":2: [service] docker_data_dir: bad value"),
        "{e}"
    );
    let e = err(toml(
        "[container.1]\nrun_image = \"busybox\"\nrun_command = \"sh -c 'unterminated\"\n",
    ));
    assert!(e.contains("[container#1] run_command: bad value"), "{e}");
}

#[test]
fn duplicate_rids() {
    let e = err(toml(
        "[fs.1]\ndev = \"/dev/x\"\nmnt = \"/a\"\ntype = \"ext4\"\n[fs.01]\ndev = \"/dev/y\"\nmnt = \"/b\"\ntype = \"ext4\"\n",
    ));
    assert!(
        e.contains("duplicate resource id fs#1 (first defined on line 1)"),
        "{e}"
    );
    let e = err(ini(
        "[fs#1]\ndev = /dev/x\nmnt = /a\ntype = ext4\n\n[fs#1]\ndev = /dev/y\nmnt = /b\ntype = ext4\n",
    ));
    assert!(
        e.contains(":6: [fs#1] duplicate resource id fs#1 (first defined on line 1)"),
        "{e}"
    );
}

#[test]
fn toml_structure_errors() {
    let e = err(toml("[disk.1]\nname = \"x\"\n"));
    assert!(e.contains("[disk] unknown section"), "{e}");
    // A named rid is a real resource: its missing keys are errors.
    let e = err(toml("[fs.one]\ndev = \"/dev/x\"\n"));
    assert!(e.contains("[fs#one] mnt: missing mandatory key"), "{e}");
    let e = err(toml("[fs.\"a b\"]\ndev = \"/dev/x\"\n"));
    assert!(e.contains("[fs.a b]"), "{e}");
    let e = err(toml("[fs.1\n"));
    assert!(e.starts_with("/etc/berth/services/web.toml:1:"), "{e}");
    let e = err(toml("[service]\nnodes = [\"a\"]\n[service]\n"));
    assert!(e.starts_with("/etc/berth/services/web.toml:3:"), "{e}");
}

#[test]
fn toml_unknown_sections_hide_no_other_error() {
    let text = "[service]\nnodes = [\"n1\"]\nbogus = 1\n\n[containr.1]\nimage = \"x\"\n\n\
        [fs.1]\ndev = \"/dev/x\"\ntype = \"ext4\"\n[fs.\"a b\"]\nmnt = \"/srv\"\n\n[servce]\nnodes = []\n";
    let e = toml(text).unwrap_err();
    let all: Vec<String> = e.all().map(|e| e.to_string()).collect();
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(
        all[0].contains(":3: [service] bogus: unknown key"),
        "{all:?}"
    );
    assert!(
        all[1].contains(":5: [containr] unknown section")
            && all[1].ends_with("(did you mean [container.<n>]?)"),
        "{all:?}"
    );
    assert!(
        all[2].contains(":8: [fs#1] mnt: missing mandatory key"),
        "{all:?}"
    );
    assert!(
        all[3].contains(":11: [fs.a b] a resource table is named"),
        "{all:?}"
    );
    assert!(
        all[4].contains(":14: [servce] unknown section")
            && all[4].ends_with("(did you mean [service]?)"),
        "{all:?}"
    );
}

#[test]
fn a_type_that_is_not_a_string_is_refused_like_any_unknown_type() {
    let e = err(toml(
        "[service]\nnodes = [\"n1\"]\n[container.1]\ntype = 5\nimage = \"x\"\n",
    ));
    assert!(
        e.contains(":4: [container#1] type: type 5 is not supported (berth has: docker)"),
        "{e}"
    );
    let e = err(toml(
        "[ip.1]\ntype = true\nipname = \"10.0.0.1\"\nipdev = \"eth0\"\n",
    ));
    assert!(
        e.contains(":2: [ip#1] type: type true is not supported"),
        "{e}"
    );
}

#[test]
fn ini_unknown_keywords_and_sections_are_warnings() {
    let svc = ini("[DEFAULT]\nnodes = n1 n2\ncluster_type = failover\n\n[fs#1]\ndev = /dev/x\nmnt = /srv\ntype = ext4\nsnap = true\n\n[app#1]\ntype = forking\n").unwrap();
    assert_eq!(svc.settings.nodes, ["n1", "n2"]);
    let w: Vec<String> = svc.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "/etc/berth/services/web.env:9: [fs#1] snap: keyword not known to berth: ignored",
            "/etc/berth/services/web.env:11: [app#1] section ignored: berth does not run it (berth runs ip, vg, fs, container, sync, not app)",
        ]
    );
}

#[test]
fn ini_keys_are_case_insensitive_as_in_configparser() {
    let svc =
        ini("[DEFAULT]\nNodes = n1\n[fs#1]\nDev = /dev/x\nMNT = /srv\nType = ext4\n").unwrap();
    assert_eq!(svc.settings.nodes, ["n1"]);
    let Spec::Fs(fs) = &svc.resources[0].spec else {
        panic!()
    };
    assert_eq!(fs.mnt, Path::new("/srv"));
    // TOML keys stay exact: a typo in case is an unknown key there.
    let e = toml("[fs.1]\nDev = \"/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\n").unwrap_err();
    // (`Dev` is not `dev`, so `dev` is missing.)
    assert!(
        e.to_string()
            .contains(":1: [fs#1] dev: missing mandatory key"),
        "{e}"
    );
    assert!(e.to_string().contains(":2: [fs#1] Dev: unknown key"), "{e}");
}

#[test]
fn ini_syntax() {
    // Comments, `:` separators, continuation lines, yes/no booleans.
    let svc = ini("; comment\n[DEFAULT]\n# another\nnodes: n1\n  n2\n[fs#1]\ndev=/dev/x\nmnt = /srv\ntype = ext4\noptional = yes\n").unwrap();
    assert_eq!(svc.settings.nodes, ["n1", "n2"]);
    assert!(svc.resources[0].common.optional);
    let e = err(ini("nodes = n1\n"));
    assert!(e.contains(":1: a key before any [section] header"), "{e}");
    let e = err(ini("[fs#1]\njust words\n"));
    assert!(e.contains(":2: [fs#1] expected `key = value`"), "{e}");
    let e = err(ini("[fs#1\n"));
    assert!(e.contains("unterminated section header"), "{e}");
    let e = err(ini("[fs#1]\ndev = /a\ndev = /b\nmnt = /srv\ntype = ext4\n"));
    assert!(
        e.contains(":3: [fs#1] dev: key given twice (first on line 2)"),
        "{e}"
    );
    let e = err(ini(
        "[fs#1]\ndev = /a\nmnt = /srv\ntype = ext4\nmnt_opt = rw\nmnt_opts = ro\n",
    ));
    assert!(e.contains("mnt_opts"), "{e}");
}

#[test]
fn service_names_come_from_the_file() {
    let e = ServiceConfig::parse(Path::new("/x/bad name.toml"), "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad service name"), "{e}");
    let e = ServiceConfig::parse(Path::new("/x/web.yaml"), "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a service file name"), "{e}");
    assert_eq!(toml("").unwrap().resources.len(), 0);
}

#[test]
fn durations_and_ip_defaults() {
    let svc = toml("[ip.1]\nipdev = \"eth0\"\nipname = \"fe80::1\"\nnetmask = 64\nprobe_timeout = \"150ms\"\ngarp_count = 0\n").unwrap();
    let Spec::Ip(ip) = &svc.resources[0].spec else {
        panic!()
    };
    assert_eq!(ip.probe_timeout, Duration::from_millis(150));
    assert_eq!(ip.garp_count, 0);
    assert_eq!(ip.netmask, Some(Prefix(64)));
    let e = err(toml(
        "[fs.1]\ndev = \"/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\nstop_timeout = \"soon\"\n",
    ));
    assert!(e.contains("stop_timeout: bad value \"soon\""), "{e}");
}

#[test]
fn durations_too_large_are_refused_not_a_panic() {
    let fs = "[fs.1]\ndev = \"/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\n";
    for value in ["1e30", "\"99999999999999999999999h\""] {
        let e = err(toml(&format!("{fs}stop_timeout = {value}\n")));
        assert!(
            e.contains("web.toml:5: [fs#1] stop_timeout: bad value"),
            "{e}"
        );
    }
    let e = err(ini(
        "[fs#1]\ndev = /x\nmnt = /srv\ntype = ext4\nstop_timeout = 99999999999999999999999h\n",
    ));
    assert!(e.contains("stop_timeout: bad value"), "{e}");
}

/// A value as it may stand in an INI file: any character but a line end, control characters,
/// DEL, quotes, backslashes, comment and assignment characters often.
fn ini_value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ch = prop_oneof![
        (0u8..0x80).prop_map(char::from),
        Just('\x7f'),
        prop::sample::select(vec![
            '"', '\'', '\\', '#', ';', '=', ':', ' ', '\t', 'é', '\u{2028}'
        ]),
        any::<char>(),
    ];
    prop::collection::vec(
        ch.prop_filter("one line", |c| *c != '\n' && *c != '\r'),
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(1000))]

    /// Whatever an INI file holds, `print config` writes TOML that reads back to the same
    /// service (issue 9: a value with 0x7F came out unescaped and could not be read back).
    #[test]
    fn print_config_reads_back_any_value(
        app in ini_value(),
        image in ini_value(),
        command in ini_value(),
        mnt_opt in ini_value(),
        label in ini_value(),
        tags in ini_value(),
    ) {
        let text = format!(
            "[DEFAULT]\napp = {app}\n[container#1]\nrun_image = {image}\nrun_command = {command}\n\
             labels = {label}\ntags = {tags}\n[fs#1]\ndev = /dev/x\nmnt = /srv\ntype = ext4\n\
             mnt_opt = {mnt_opt}\n"
        );
        let Ok(svc) = ServiceConfig::parse(Path::new("/x/p.env"), &text) else {
            return Ok(());
        };
        let emitted = to_toml(&svc).unwrap();
        let again = ServiceConfig::parse(Path::new("/x/p.toml"), &emitted);
        proptest::prop_assert!(again.is_ok(), "{:?}\n{emitted}", again.err());
        let again = again.unwrap();
        proptest::prop_assert_eq!(format!("{:?}", again.settings), format!("{:?}", svc.settings));
        proptest::prop_assert_eq!(
            format!("{:?}", again.resources),
            format!("{:?}", svc.resources)
        );
    }
}

#[test]
fn all_digit_ipnames_are_not_host_names() {
    // RFC 1123 sec. 2.1: a host name is never all-numeric labels; 300.1.2.3 is a bad address.
    for name in ["300.1.2.3", "1.2.3", "12345", "1.2.3.4.5"] {
        let e = err(toml(&format!(
            "[ip.1]\nipdev = \"eth0\"\nipname = \"{name}\"\n"
        )));
        assert!(
            e.contains(&format!(":3: [ip#1] ipname: bad value \"{name}\"")),
            "{e}"
        );
        let e = err(ini(&format!("[ip#1]\nipdev = eth0\nipname = {name}\n")));
        assert!(e.contains(&format!("ipname: bad value \"{name}\"")), "{e}");
    }
    for name in ["3com.example", "a1.2.3", "web-1", "1.2.3.4", "host.0"] {
        toml(&format!("[ip.1]\nipdev = \"eth0\"\nipname = \"{name}\"\n")).unwrap();
    }
}

/// `[fs.N]` sections, `n` of them, in TOML or INI syntax.
fn many_fs(n: usize, ini: bool) -> String {
    let mut text = String::new();
    for i in 1..=n {
        if ini {
            text.push_str(&format!(
                "[fs#{i}]\ndev = /dev/vg/lv{i}\nmnt = /srv/m{i}\ntype = ext4\n"
            ));
        } else {
            text.push_str(&format!(
                "[fs.{i}]\ndev = \"/dev/vg/lv{i}\"\nmnt = \"/srv/m{i}\"\ntype = \"ext4\"\n"
            ));
        }
    }
    text
}

#[test]
fn large_files_parse_and_keep_their_line_numbers() {
    // 40,000 sections (about 2.4 MB, under the size limit) took minutes when every key's line
    // was found by rescanning the text (16,000 took 15.8 s); line numbers must still be right.
    let n = 40_000;
    for ini_syntax in [false, true] {
        let mut text = many_fs(n, ini_syntax);
        text.push_str(if ini_syntax {
            "[fs#0]\ndev = /x\nmnt = relative\ntype = ext4\n"
        } else {
            "[fs.0]\ndev = \"/x\"\nmnt = \"relative\"\ntype = \"ext4\"\n"
        });
        assert!((text.len() as u64) < MAX_SERVICE_FILE_BYTES);
        let started = std::time::Instant::now();
        let e = err(if ini_syntax { ini(&text) } else { toml(&text) });
        eprintln!("{n} sections, ini {ini_syntax}: {:?}", started.elapsed());
        let bad_line = 4 * n + 3;
        assert!(
            e.contains(&format!(":{bad_line}: [fs#0] mnt: bad value")),
            "{e}"
        );
        let good = &text[..text.rfind("[fs").unwrap()];
        let svc = if ini_syntax { ini(good) } else { toml(good) }.unwrap();
        assert_eq!(svc.resources.len(), n);
    }
}

#[test]
fn files_over_the_size_limit_are_refused() {
    let mut text = many_fs(1, false);
    text.push_str(&"#".repeat(usize::try_from(MAX_SERVICE_FILE_BYTES).unwrap()));
    let e = err(toml(&text));
    assert!(
        e.starts_with("/etc/berth/services/web.toml: the file is ")
            && e.contains(&format!("over the {MAX_SERVICE_FILE_BYTES}-byte limit")),
        "{e}"
    );
    let e = ServiceConfig::parse_bytes(Path::new("/x/web.env"), text.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(e.contains("limit of a service file"), "{e}");
}

#[test]
fn non_utf8_files_name_the_line_and_offset() {
    let bytes = b"[fs.1]\ndev = \"/dev/x\"\nmnt = \"/srv\xff\"\ntype = \"ext4\"\n";
    let e =
        ServiceConfig::parse_bytes(Path::new("/etc/berth/services/web.toml"), bytes).unwrap_err();
    assert_eq!(e.line, Some(3));
    assert_eq!(
        e.to_string(),
        "/etc/berth/services/web.toml:3: not valid UTF-8: byte 0xff at byte offset 33"
    );
    let ok = ServiceConfig::parse_bytes(
        Path::new("/etc/berth/services/web.env"),
        "[DEFAULT]\napp = caf\u{e9}\n".as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.settings.app.as_deref(), Some("caf\u{e9}"));
}

#[test]
fn registry_keywords_in_both_syntaxes() {
    use super::{PullPolicy, Registry};
    let svc = toml(
        "[service]\ndocker_registries = [\"10.0.0.5:5000\", \"https://reg.example:443\"]\n\
         registry_ca = \"/etc/berth/reg-ca.pem\"\nregistry_creds = \"/etc/berth/creds/a.json\"\n\
         [container.1]\nrun_image = \"10.0.0.5:5000/app:1\"\nimage_pull_policy = \"always\"\n\
         pull_timeout = \"30s\"\nregistry_creds = \"/etc/berth/creds/b.json\"\n",
    )
    .unwrap();
    let s = &svc.settings;
    assert_eq!(
        s.docker_registries,
        [
            Registry {
                host: "10.0.0.5:5000".into(),
                tls: false
            },
            Registry {
                host: "reg.example:443".into(),
                tls: true
            }
        ]
    );
    assert_eq!(
        s.registry_ca.as_deref(),
        Some(Path::new("/etc/berth/reg-ca.pem"))
    );
    let Spec::Container(c) = &svc.resources[0].spec else {
        panic!("not a container");
    };
    assert_eq!(c.image_pull_policy, PullPolicy::Always);
    assert_eq!(c.pull_timeout, std::time::Duration::from_secs(30));
    assert_eq!(
        c.registry_creds.as_deref(),
        Some(Path::new("/etc/berth/creds/b.json"))
    );
    // The INI twin reads the same.
    let twin = ini(
        "[DEFAULT]\ndocker_registries = 10.0.0.5:5000 https://reg.example:443\n\
         registry_ca = /etc/berth/reg-ca.pem\nregistry_creds = /etc/berth/creds/a.json\n\
         [container#1]\ntype = docker\nrun_image = 10.0.0.5:5000/app:1\n\
         image_pull_policy = always\npull_timeout = 30s\nregistry_creds = /etc/berth/creds/b.json\n",
    )
    .unwrap();
    assert_eq!(twin.settings.docker_registries, s.docker_registries);
    let Spec::Container(t) = &twin.resources[0].spec else {
        panic!("not a container");
    };
    assert_eq!(**t, **c);
    // The defaults, and what is refused.
    let plain = toml("[container.1]\nrun_image = \"busybox\"\n").unwrap();
    let Spec::Container(c) = &plain.resources[0].spec else {
        panic!("not a container");
    };
    assert_eq!(c.image_pull_policy, PullPolicy::Once);
    assert_eq!(c.pull_timeout, std::time::Duration::from_secs(120));
    let e = err(toml("[service]\ndocker_registries = [\"reg:port\"]\n"));
    assert!(
        e.contains("docker_registries") && e.contains("not a port number"),
        "{e}"
    );
    let e = err(toml(
        "[container.1]\nrun_image = \"b\"\nimage_pull_policy = \"never\"\n",
    ));
    assert!(e.contains("expected one of: once, always"), "{e}");
    let e = err(toml(
        "[container.1]\nrun_image = \"b\"\nregistry_creds = \"creds.json\"\n",
    ));
    assert!(
        e.contains("registry_creds") && e.contains("absolute"),
        "{e}"
    );
}

#[test]
fn registries_parse_and_images_name_theirs() {
    use super::{Registry, image_registry};
    assert_eq!(
        Registry::parse("https://10.0.0.5:5000/")
            .unwrap()
            .to_string(),
        "https://10.0.0.5:5000"
    );
    assert_eq!(Registry::parse("http://reg").unwrap().to_string(), "reg");
    let e = Registry::parse("https://").unwrap_err();
    assert!(e.contains("not a host name"), "{e}");
    let e = Registry::parse("a b:5000").unwrap_err();
    assert!(e.contains("not a host name"), "{e}");
    assert_eq!(image_registry("10.0.0.5:5000/app:1"), Some("10.0.0.5:5000"));
    assert_eq!(image_registry("reg.example/team/app"), Some("reg.example"));
    assert_eq!(image_registry("localhost/app"), Some("localhost"));
    assert_eq!(image_registry("library/busybox"), None);
    assert_eq!(image_registry("busybox:1"), None);
}

#[test]
fn fast_stop_drops_the_graceful_waits() {
    let cfg = toml(
        "[fs.1]\ndev = \"/dev/sdb\"\nmnt = \"/srv\"\ntype = \"ext4\"\nstop_timeout = \"30s\"\n\n\
         [container.1]\nrun_image = \"busybox\"\nstop_timeout = \"60s\"\n",
    )
    .unwrap();
    let fast = cfg.fast_stop();
    let mut seen = 0;
    for r in &fast.resources {
        match &r.spec {
            Spec::Fs(f) => assert_eq!(f.stop_timeout, Duration::from_secs(1)),
            Spec::Container(c) => assert_eq!(c.stop_timeout, Duration::ZERO),
            Spec::Ip(_) | Spec::Vg(_) | Spec::Sync(_) | Spec::Flag(_) => continue,
        }
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn always_on_makes_a_standby_resource_on_the_nodes_it_names() {
    let text = "[service]\nnodes = [\"n1\", \"n2\"]\ndrpnodes = [\"n3\"]\n\n\
                [fs.1]\ndev = \"/dev/x\"\nmnt = \"/srv\"\ntype = \"ext4\"\nalways_on = [\"drpnodes\"]\n\n\
                [fs.2]\ndev = \"/dev/y\"\nmnt = \"/srv2\"\ntype = \"ext4\"\nalways_on = [\"nodes\", \"n9\"]\n";
    let on = |node: &str| {
        ServiceConfig::parse_on(Path::new("web.toml"), text, &LoadContext::node(node)).unwrap()
    };
    let standby = |svc: &ServiceConfig| -> Vec<bool> {
        svc.resources
            .iter()
            .map(|r| r.common.is_standby())
            .collect()
    };
    assert_eq!(standby(&on("n3")), [true, false]);
    assert_eq!(standby(&on("n1")), [false, true]);
    assert_eq!(standby(&on("n9")), [false, true]);
    // No node known: nothing is standby; the list is kept as written (print config).
    let svc = toml(text).unwrap();
    assert_eq!(standby(&svc), [false, false]);
    assert_eq!(svc.resources[0].common.always_on, ["drpnodes"]);
    let shown = written(&on("n3"));
    assert!(shown.contains("always_on = [\"drpnodes\"]"), "{shown}");
    // OpenSVC's INI spelling: words.
    let ini_text = "[DEFAULT]\nnodes = n1 n2\ndrpnodes = n3\n\n[fs#1]\ndev = /dev/x\nmnt = /srv\n\
                    type = ext4\nalways_on = drpnodes\n";
    let svc =
        ServiceConfig::parse_on(Path::new("web.env"), ini_text, &LoadContext::node("n3")).unwrap();
    assert!(svc.resources[0].common.is_standby());
    assert!(svc.warnings.is_empty(), "{:?}", svc.warnings);
}

#[test]
fn a_sync_section_reads_in_both_syntaxes_and_other_types_are_refused() {
    let cfg = toml(
        "[service]\nnodes = [\"n1\", \"n2\"]\ndrpnodes = [\"n3\"]\n\n\
         [sync.1]\ntype = \"rsync\"\nsrc = \"/srv/web/\"\ndstfs = \"/srv/web\"\n\
         target = [\"drpnodes\", \"nodes\"]\nschedule = \"@60\"\nexclude = [\"cache/\"]\n\
         bwlimit = 20000\ntimeout = \"1h\"\noptions = [\"--sparse\"]\n",
    )
    .unwrap();
    let Spec::Sync(s) = &cfg.resources[0].spec else {
        panic!("not a sync: {:?}", cfg.resources[0]);
    };
    assert_eq!(s.dst, std::path::Path::new("/srv/web/"));
    assert_eq!(
        s.target,
        [
            crate::config::SyncTarget::Nodes,
            crate::config::SyncTarget::Drpnodes
        ]
    );
    assert_eq!(s.schedule, crate::config::Schedule::Every(60));
    assert_eq!(s.sync_max_delay, Duration::from_secs(86_400));
    assert_eq!(s.bwlimit, Some(20000));
    assert_eq!(s.timeout, Some(Duration::from_secs(3600)));
    // Never in the start order.
    assert!(crate::order::start_order(&cfg).is_empty());
    let ini = ini(
        "[DEFAULT]\nnodes = n1 n2\ndrpnodes = n3\n\n[sync#1]\ntype = rsync\nsrc = /srv/web/\n\
         dst = /srv/copy/\ntarget = drpnodes\nschedule = 22:00-06:00@120\n",
    )
    .unwrap();
    let Spec::Sync(s) = &ini.resources[0].spec else {
        panic!("not a sync");
    };
    assert_eq!(s.dst, std::path::Path::new("/srv/copy/"));
    for typ in ["dds", "zfs", "btrfs"] {
        let e = toml(&format!(
            "[sync.1]\ntype = \"{typ}\"\nsrc = \"/a\"\ntarget = [\"nodes\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains(typ) && e.contains("rsync"), "{e}");
    }
    let e = toml("[sync.1]\nsrc = \"/a\"\n").unwrap_err().to_string();
    assert!(e.contains("target"), "{e}");
    let e = toml("[sync.1]\nsrc = \"/a\"\ntarget = [\"elsewhere\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("elsewhere"), "{e}");
    let e = toml("[sync.1]\nsrc = \"/a\"\ntarget = \"nodes\"\nschedule = \"hourly\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("hourly"), "{e}");
}
