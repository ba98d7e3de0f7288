//! The private registry (issue 27, docs/registry.md) through the `svc` CLI (root): Debian's
//! registry binary imported by scripts/registry-image.sh, run as a berth service in a network
//! namespace of the test's own, on a non-loopback address there (docker trusts loopback
//! registries without being told), and services whose private dockerds push to it and pull from
//! it. Every `svc` runs inside that namespace, so do the dockerds it starts. TempBerth's Drop kills
//! what a case started, the namespace goes after it, and `CertsDir` removes the registry CA berth
//! installed in /etc/docker/certs.d.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use berth_testkit::registry::{CertsDir, RegistryNet};
use berth_testkit::{TempBerth, busybox_rootfs, describe, output_with_stdin, require_root};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

/// Where the registry .deb is kept between runs.
fn deb_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-deb")
}

/// Field order: the dockerds die (TempBerth) before their namespace goes.
struct Case {
    t: TempBerth,
    net: RegistryNet,
}

impl Case {
    fn new() -> Case {
        require_root();
        Case {
            t: TempBerth::new(),
            net: RegistryNet::new(),
        }
    }

    fn svc(&self, args: &[&str]) -> Output {
        self.net
            .svc(&self.t, SVC)
            .args(args)
            .output()
            .expect("run svc")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.svc(args);
        assert_eq!(o.status.code(), Some(0), "svc {args:?}: {}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `svc ARGS` that must fail: its stderr and how long it took.
    fn fails(&self, args: &[&str]) -> (String, Duration) {
        let began = Instant::now();
        let o = self.svc(args);
        let took = began.elapsed();
        assert_eq!(o.status.code(), Some(1), "svc {args:?}: {}", describe(&o));
        (String::from_utf8_lossy(&o.stderr).into_owned(), took)
    }

    fn write(&self, file: &str, text: &str) {
        let text = text
            .replace("@ADDR@", &self.net.addr)
            .replace("@ROOT@", &self.t.root.path().display().to_string());
        self.t.write_service(file, &text);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path(rel)
    }

    /// Import a busybox rootfs (plus `/marker` holding `marker`) as `image` through `svc`.
    fn import(&self, svc: &str, image: &str, marker: &str) {
        let dir = self.path(&format!("rootfs-{marker}"));
        busybox_rootfs(&dir);
        std::fs::write(dir.join("marker"), marker).unwrap();
        let tar = berth_testkit::run("tar", &["-C", dir.to_str().unwrap(), "-c", "."]).stdout;
        let o = output_with_stdin(
            self.net
                .svc(&self.t, SVC)
                .args([svc, "docker", "import", "-", image]),
            &tar,
        );
        assert!(o.status.success(), "import {image}: {}", describe(&o));
    }
}

/// The ```sh blocks of docs/registry.md, in order.
fn page_script() -> String {
    let page = include_str!("../../../docs/registry.md");
    let mut out = String::new();
    let mut inside = false;
    for line in page.lines() {
        if inside && line == "```" {
            inside = false;
            continue;
        }
        if line == "```sh" {
            inside = true;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// docs/registry.md, every command block as written (its address, interface and directories
/// replaced by the test's own), run by bash in the test's namespace: the registry service built
/// from Debian's package, a push from one service's dockerd, a service that lacks the image
/// pulling it, then the registry again with TLS and a password, its catalog kept, and a service
/// pulling with its CA and credentials. Then a service without the credentials, and one whose
/// credentials file others may read, are refused.
#[test]
fn the_registry_page_runs() {
    let c = Case::new();
    let addr = c.net.addr.clone();
    let certs = CertsDir::new(&format!("{addr}:5000"));
    let root = c.t.root.path().display().to_string();
    let script = page_script()
        .replace("10.0.0.5", &addr)
        .replace("\"eth0\"", "\"rg0\"")
        .replace("/etc/berth", &c.t.config_dir().display().to_string())
        .replace("/srv/", &format!("{root}/srv/"))
        .replace("/tmp/rootfs", &format!("{root}/rootfs"));
    std::fs::create_dir_all(c.path("srv")).unwrap();
    berth_testkit::registry::fetch_registry_deb(&deb_dir());
    // `svc` as the page spells it: this build's binary first in PATH.
    let bin = c.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(SVC, bin.join("svc")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = c
        .net
        .svc(&c.t, "bash")
        .args(["-euxo", "pipefail", "-c", &script])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env("PATH", path)
        .env("BERTH_REGISTRY_DEB_DIR", deb_dir())
        .output()
        .expect("run the page");
    let text = describe(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The empty catalog, the pushed image, and the same after the TLS restart.
    assert!(stdout.contains("{\"repositories\":[]}"), "{text}");
    assert_eq!(
        stdout.matches("{\"repositories\":[\"app\"]}").count(),
        2,
        "{text}"
    );
    assert!(
        stdout.contains(&format!("pulled image {addr}:5000/app:1 in ")),
        "{text}"
    );
    assert!(certs.0.join("ca.crt").exists(), "no CA installed: {text}");

    // No credentials: refused by the registry, and said so.
    let conf = c.t.config_dir().display().to_string();
    c.write(
        "nocreds.toml",
        &format!(
            "[service]\nnodes = [\"node1\"]\ndocker_registries = [\"https://@ADDR@:5000\"]\n\
             registry_ca = \"{conf}/registry-ca.pem\"\n[container.1]\n\
             run_image = \"@ADDR@:5000/app:1\"\nrun_command = [\"sleep\", \"3600\"]\n"
        ),
    );
    let (e, _) = c.fails(&["nocreds", "start"]);
    assert!(
        e.contains(&format!(
            "pull image {addr}:5000/app:1 from registry {addr}:5000"
        )) && e.contains("no basic auth credentials")
            && e.contains("authentication"),
        "{e}"
    );
    // Credentials others may read: refused before any pull.
    let loose = c.path("loose.json");
    std::fs::copy(c.t.config_dir().join("creds/registry.json"), &loose).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.write(
        "loose.toml",
        &format!(
            "[service]\nnodes = [\"node1\"]\ndocker_registries = [\"https://@ADDR@:5000\"]\n\
             registry_ca = \"{conf}/registry-ca.pem\"\nregistry_creds = \"{}\"\n\
             [container.1]\nrun_image = \"@ADDR@:5000/app:1\"\n",
            loose.display()
        ),
    );
    let (e, _) = c.fails(&["loose", "start"]);
    assert!(
        e.contains("is readable by everyone") && e.contains("chmod 600"),
        "{e}"
    );
    for s in ["app", "registry"] {
        c.ok(&[s, "stop"]);
    }
}

/// Plain HTTP: `always` picks up a new push under the same tag; a missing image, an unanswering
/// registry and a stopped one fail the start within `pull_timeout`, naming the image and the
/// registry's answer, and leave no dockerd behind; the catalog survives the registry's stop and
/// start.
#[test]
fn pulls_follow_pushes_and_fail_within_pull_timeout() {
    let c = Case::new();
    c.net.add_address();
    let addr = c.net.addr.clone();
    std::fs::create_dir_all(c.path("regdata")).unwrap();
    c.write(
        "registry.toml",
        "[service]\nnodes = [\"node1\"]\n[container.1]\nrun_image = \"registry:2\"\n\
         ports = [\"@ADDR@:5000:5000\"]\nvolumes = [\"@ROOT@/regdata:/var/lib/registry\"]\n",
    );
    let consumer = |image: &str, extra: &str| {
        format!(
            "[service]\nnodes = [\"node1\"]\ndocker_registries = [\"@ADDR@:5000\", \"@ADDR@:5001\"]\n\
             [container.1]\nrun_image = \"{image}\"\nrun_command = [\"sleep\", \"3600\"]\n{extra}"
        )
    };
    c.write("build.toml", &consumer("@ADDR@:5000/app:1", ""));
    c.write(
        "app.toml",
        &consumer(
            "@ADDR@:5000/app:1",
            "image_pull_policy = \"always\"\npull_timeout = \"20s\"\n",
        ),
    );
    c.net
        .import_registry_image(&c.t, SVC, "registry", &deb_dir());
    c.ok(&["registry", "start"]);
    c.net.wait_registry(5000);
    let image = format!("{addr}:5000/app:1");
    c.import("build", &image, "one");
    c.ok(&["build", "docker", "push", &image]);

    c.ok(&["app", "start"]);
    let cat = |c: &Case| c.ok(&["app", "docker", "exec", "app.container.1", "cat", "/marker"]);
    assert_eq!(cat(&c), "one");
    let log = std::fs::read_to_string(c.t.var_dir().join("app/actions.log")).unwrap();
    assert!(log.contains(&format!("pulled image {image} in ")), "{log}");

    // A new push under the same tag reaches `always` at its next start.
    c.import("build", &image, "two");
    c.ok(&["build", "docker", "push", &image]);
    c.ok(&["app", "stop"]);
    c.ok(&["app", "start"]);
    assert_eq!(cat(&c), "two");
    c.ok(&["app", "stop"]);

    // An image the registry does not have.
    c.write(
        "missing.toml",
        &consumer("@ADDR@:5000/nope:1", "pull_timeout = \"20s\"\n"),
    );
    let (e, took) = c.fails(&["missing", "start"]);
    assert!(
        e.contains(&format!(
            "pull image {addr}:5000/nope:1 from registry {addr}:5000"
        )) && e.contains("not found"),
        "{e}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}: {e}");
    assert_no_dockerd(&c, "missing");

    // A registry that takes the connection and never answers: the pull is stopped at its bound.
    let listener = {
        let _in = c.net.ns.enter();
        std::net::TcpListener::bind((addr.as_str(), 5001)).expect("bind the silent registry")
    };
    c.write(
        "silent.toml",
        &consumer("@ADDR@:5001/app:1", "pull_timeout = \"3s\"\n"),
    );
    let (e, took) = c.fails(&["silent", "start"]);
    assert!(
        e.contains(&format!(
            "pull image {addr}:5001/app:1 from registry {addr}:5001"
        )) && e.contains("did not finish within 3.0s"),
        "{e}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}: {e}");
    assert_no_dockerd(&c, "silent");
    drop(listener);

    // The registry stopped: refused at once, the start rolled back.
    c.ok(&["registry", "stop"]);
    let (e, took) = c.fails(&["app", "start"]);
    assert!(
        e.contains(&format!("pull image {image} from registry {addr}:5000"))
            && e.contains("connection refused"),
        "{e}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}: {e}");
    assert_no_dockerd(&c, "app");

    // Its data was kept: the catalog after a new start still has the image.
    c.ok(&["registry", "start"]);
    c.net.wait_registry(5000);
    let catalog = c.net.curl(&[&format!("http://{addr}:5000/v2/_catalog")]);
    assert_eq!(catalog.trim(), "{\"repositories\":[\"app\"]}");
    for s in ["registry", "build"] {
        c.ok(&[s, "stop"]);
    }
}

/// No dockerd of `svc` runs: a failed start stopped the one it started.
fn assert_no_dockerd(c: &Case, svc: &str) {
    let sock = c.t.var_dir().join(svc).join("docker.sock");
    assert!(
        berth_testkit::dockerds_on(&sock).is_empty(),
        "the dockerd of {svc} still runs"
    );
}
