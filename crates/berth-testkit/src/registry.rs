//! Fixtures of the private-registry tests (docs/registry.md): a network namespace with a
//! non-loopback interface of its own (docker trusts loopback registries without being told, so
//! the tests use another address), `svc` run inside it, the repository's image script, and the
//! node-wide registry CA directory a test must clean up.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Netns, TempBerth};

/// A network namespace holding a veth pair `rg0`/`rg1`, both up, and the address the test gives
/// its registry (on `rg0`, added by the test or by the service's ip resource): unique per test
/// process and fixture, since registry CAs are kept node-wide by `host:port`.
#[derive(Debug)]
pub struct RegistryNet {
    /// The namespace.
    pub ns: Netns,
    /// The registry's address (`10.X.Y.5`), not yet on any interface.
    pub addr: String,
}

impl RegistryNet {
    /// The namespace and its veth pair.
    pub fn new() -> RegistryNet {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = Netns::new("rg");
        ns.exec(
            "ip",
            &["link", "add", "rg0", "type", "veth", "peer", "name", "rg1"],
        );
        ns.exec("ip", &["link", "set", "rg0", "up"]);
        ns.exec("ip", &["link", "set", "rg1", "up"]);
        let n = std::process::id() * 8 + N.fetch_add(1, Ordering::Relaxed);
        // 10.100-149: clear of the 10.199.0.0/16 of the services' docker networks.
        let addr = format!("10.{}.{}.5", 100 + (n / 250) % 50, n % 250);
        RegistryNet { ns, addr }
    }

    /// Put the address on `rg0` (/24), for a test whose service has no ip resource.
    pub fn add_address(&self) {
        let cidr = format!("{}/24", self.addr);
        self.ns.exec("ip", &["addr", "add", &cidr, "dev", "rg0"]);
    }

    /// `svc_bin` with `t`'s dirs, run in the namespace (so are the dockerds it starts).
    pub fn svc(&self, t: &TempBerth, svc_bin: &str) -> Command {
        let mut c = self.ns.netns_command(svc_bin);
        c.env("BERTH_CONFIG_DIR", t.config_dir())
            .env("BERTH_VAR_DIR", t.var_dir())
            .env("BERTH_RUN_DIR", t.run_dir())
            .env("BERTH_NODENAME", "node1")
            .env("NO_COLOR", "1");
        c
    }

    /// `scripts/registry-image.sh SVC` in the namespace: the registry image, built from Debian's
    /// package, imported as `registry:2` into `svc`'s dockerd through `svc_bin`. The .deb is
    /// kept in `deb_dir` for the next run.
    pub fn import_registry_image(&self, t: &TempBerth, svc_bin: &str, svc: &str, deb_dir: &Path) {
        fetch_registry_deb(deb_dir);
        let mut c = self.ns.netns_command("bash");
        c.arg(registry_script())
            .arg(svc)
            .env("SVC", svc_bin)
            .env("BERTH_REGISTRY_DEB_DIR", deb_dir)
            .env("BERTH_CONFIG_DIR", t.config_dir())
            .env("BERTH_VAR_DIR", t.var_dir())
            .env("BERTH_RUN_DIR", t.run_dir())
            .env("BERTH_NODENAME", "node1");
        let out = c.output().expect("run scripts/registry-image.sh");
        assert!(out.status.success(), "{}", crate::describe(&out));
    }

    /// `curl -s ARGS...` in the namespace: its stdout.
    pub fn curl(&self, args: &[&str]) -> String {
        let out = self
            .ns
            .command("curl")
            .arg("-s")
            .args(args)
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (bounded) until `http://<addr>:<port>/v2/` answers.
    pub fn wait_registry(&self, port: u16) {
        let url = format!("http://{}:{port}/v2/", self.addr);
        for _ in 0..100 {
            let out = self
                .ns
                .command("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                .expect("run curl");
            if out.stdout == b"200" {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the registry on {url} does not answer");
    }
}

impl Default for RegistryNet {
    fn default() -> Self {
        Self::new()
    }
}

/// `scripts/registry-image.sh --fetch` outside any test namespace (they reach no mirror): the
/// registry .deb in `deb_dir`, downloaded once.
pub fn fetch_registry_deb(deb_dir: &Path) {
    let out = Command::new("bash")
        .arg(registry_script())
        .arg("--fetch")
        .env("BERTH_REGISTRY_DEB_DIR", deb_dir)
        .output()
        .expect("run scripts/registry-image.sh --fetch");
    assert!(out.status.success(), "{}", crate::describe(&out));
}

/// The repository's `scripts/registry-image.sh`.
pub fn registry_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/registry-image.sh")
}

/// `/etc/docker/certs.d/<host:port>`, which berth fills for a TLS registry (dockerd reads
/// registry CAs nowhere else): removed on drop. Panics when it exists already, so a test never
/// removes a CA it did not install.
#[derive(Debug)]
pub struct CertsDir(pub PathBuf);

impl CertsDir {
    /// The directory of `host_port`, which must not exist yet.
    pub fn new(host_port: &str) -> CertsDir {
        let dir = Path::new("/etc/docker/certs.d").join(host_port);
        assert!(
            !dir.exists(),
            "{} exists already: not this test's to use",
            dir.display()
        );
        CertsDir(dir)
    }
}

impl Drop for CertsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
