//! A private registry service relocated in the cluster rig (issue 27): Debian's registry binary
//! (scripts/registry-image.sh) runs in the service's private dockerd, whose data root and the
//! registry's data are on the service's fs (a shared LUN), published on the service address.
//! An image pushed while it runs on n1 is pulled, after `switch --to n2`, by a service on n1
//! that lacks it: through the same address, from the same data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use berth_testkit::cluster::SharedLun;
use berth_testkit::{busybox_tar, describe, output_with_stdin};
use common::{Rig, Spec, svc, svc_bin, svc_ok};

#[test]
fn a_switched_registry_keeps_its_images_and_its_address() {
    let rig = Rig::new(Spec {
        services: 0,
        ..Spec::default()
    });
    let (n1, n2) = (rig.node("n1"), rig.node("n2"));
    let ip = rig.lan.host(150);
    let lun = SharedLun::new(256);
    let mnt = tempfile::Builder::new()
        .prefix("rgreg")
        .tempdir_in("/tmp")
        .unwrap();
    let mnt = mnt.path().display().to_string();
    let base = format!(
        "[service]\nnodes = [\"n1\", \"n2\"]\ndocker_data_dir = \"{mnt}/docker\"\n\
         [ip.1]\nipname = \"{ip}\"\nipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n\
         [fs.1]\ndev = \"{}\"\nmnt = \"{mnt}\"\ntype = \"ext4\"\n",
        lun.dev().display()
    );
    let container = format!(
        "[container.1]\nrun_image = \"registry:2\"\nports = [\"{ip}:5000:5000\"]\n\
         volumes = [\"{mnt}/data:/var/lib/registry\"]\n"
    );
    let image = format!("{ip}:5000/app:1");
    let consumer = format!(
        "[service]\nnodes = [\"n1\", \"n2\"]\ndocker_registries = [\"{ip}:5000\"]\n\
         [container.1]\nrun_image = \"{image}\"\nrun_command = [\"sleep\", \"3600\"]\n"
    );
    for n in [n1, n2] {
        n.write_service("registry.toml", &format!("{base}{container}"));
        n.write_service("build.toml", &consumer);
        n.write_service("app.toml", &consumer);
    }

    // The registry's image goes on its fs, with the data root of its dockerd.
    let deb = Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-deb");
    berth_testkit::registry::fetch_registry_deb(&deb);
    svc_ok(n1, &["registry", "start", "--rid", "ip#1,fs#1"]);
    let out = n1
        .command("bash")
        .arg(berth_testkit::registry::registry_script())
        .arg("registry")
        .env("SVC", svc_bin())
        .env("BERTH_REGISTRY_DEB_DIR", &deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    svc_ok(n1, &["registry", "start"]);
    let catalog = |n: &berth_testkit::cluster::Node| {
        let url = format!("http://{ip}:5000/v2/_catalog");
        let out = n.run_any(
            "curl",
            &[
                "-sS",
                "--retry",
                "20",
                "--retry-all-errors",
                "--retry-delay",
                "1",
                &url,
            ],
        );
        assert!(
            out.status.success(),
            "curl {url} on {}: {}",
            n.name(),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(catalog(n1), "{\"repositories\":[]}");

    // Pushed from n1's build service while the registry runs on n1.
    let rootfs = tempfile::tempdir().unwrap();
    let tar = busybox_tar(&rootfs.path().join("r"));
    let out = output_with_stdin(
        n1.svc(svc_bin().to_str().unwrap())
            .args(["build", "docker", "import", "-", &image]),
        &tar,
    );
    assert!(out.status.success(), "{}", describe(&out));
    svc_ok(n1, &["build", "docker", "push", &image]);
    svc_ok(n1, &["build", "stop"]);

    // The registry moves to n2: same address, same data.
    let out = svc(n1, &["registry", "switch", "--to", "n2", "--timeout", "60"]);
    assert!(out.status.success(), "{}\n{}", describe(&out), rig.logs());
    assert!(n2.has_addr(ip) && !n1.has_addr(ip));
    assert_eq!(catalog(n1), "{\"repositories\":[\"app\"]}");

    // A service on n1 that lacks the image pulls it from the registry now on n2.
    let out = svc_ok(n1, &["app", "start"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pulled image {image} in ")), "{err}");
    svc_ok(n1, &["app", "stop"]);
    svc_ok(n2, &["registry", "stop"]);
}
