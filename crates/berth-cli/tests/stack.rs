//! Multi-container services through the `svc` CLI, for real (root, real dockerd): a three-tier
//! stack (web -> app -> db) on the service's own network, its published port reached from a
//! peer namespace through the service address; two stacks on one node; a dependency whose
//! healthcheck never passes; what is refused; an OpenSVC v2 pod whose address lives in a
//! container's network namespace (`[ip#N] type = netns`).
//!
//! Every case runs `svc` inside a node namespace of its own (entered by `setns` only, so mounts
//! stay visible), so the private dockerd, its bridges and docker-proxy processes live there and
//! never in the host's namespace; a peer namespace joined by a veth plays the client. The
//! guards' Drops kill what a case started and delete its namespaces even when it fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use berth_testkit::{
    Netns, TempBerth, describe as text, ext4_image, output_with_stdin, procs, require_root, veth,
};

const SVC: &str = env!("CARGO_BIN_EXE_svc");

/// The busybox rootfs tar, made once per test binary and imported into each service's daemon.
fn image_tar() -> &'static [u8] {
    static TAR: OnceLock<(tempfile::TempDir, Vec<u8>)> = OnceLock::new();
    let (_, tar) = TAR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let tar = berth_testkit::busybox_tar(&dir.path().join("rootfs"));
        (dir, tar)
    });
    tar
}

/// A node namespace running `svc`, a peer namespace for clients, a veth between them: the node
/// end `n0` (10.77.0.1/24, or a port of bridge `br0` with `bridged`), the peer end 10.77.0.2/24.
struct Node {
    t: TempBerth,
    node: Netns,
    peer: Netns,
}

impl Node {
    fn new(bridged: bool) -> Node {
        require_root();
        let t = TempBerth::new();
        let node = Netns::new("stn");
        let peer = Netns::new("stp");
        veth(&node, "n0", &peer, "p0");
        if bridged {
            node.exec("ip", &["link", "add", "br0", "type", "bridge"]);
            node.exec("ip", &["link", "set", "n0", "master", "br0"]);
            node.exec("ip", &["link", "set", "br0", "up"]);
            node.exec("ip", &["addr", "add", "10.77.0.1/24", "dev", "br0"]);
        } else {
            node.exec("ip", &["addr", "add", "10.77.0.1/24", "dev", "n0"]);
        }
        peer.exec("ip", &["addr", "add", "10.77.0.2/24", "dev", "p0"]);
        Node { t, node, peer }
    }

    fn root(&self) -> String {
        self.t.root.path().display().to_string()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path(rel)
    }

    /// Write `services/<file>` with `@ROOT@` replaced.
    fn service(&self, file: &str, text: &str) {
        self.t
            .write_service(file, &text.replace("@ROOT@", &self.root()));
    }

    /// `svc ARGS` inside the node namespace, with the case's dirs.
    fn svc_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.node.netns_command(SVC);
        let std = self.t.svc(SVC);
        for (k, v) in std.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.args(args);
        c
    }

    fn svc(&self, args: &[&str]) -> Output {
        self.svc_cmd(args).output().expect("run svc")
    }

    /// `svc ARGS`, which must succeed: its stdout, then its stderr (the log).
    fn ok(&self, args: &[&str]) -> String {
        let o = self.svc(args);
        assert_eq!(o.status.code(), Some(0), "svc {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    }

    /// Import the busybox image as `bb` into the daemon of `svc` (which starts it).
    fn import(&self, svc: &str) {
        let o = output_with_stdin(
            &mut self.svc_cmd(&[svc, "docker", "import", "-", "bb"]),
            image_tar(),
        );
        assert!(o.status.success(), "import: {}", text(&o));
    }

    /// `wget -O - URL` from the peer namespace, bounded by `timeout` (busybox's own `wget -T`
    /// segfaults here).
    /// `fetch` until it succeeds, for at most 15 s: docker calls a container running once its
    /// process exists, which can be before the server in it listens (a busy host shows it).
    fn fetch_served(&self, url: &str) -> Output {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let o = self.fetch(url);
            if o.status.success() || std::time::Instant::now() >= deadline {
                return o;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    fn fetch(&self, url: &str) -> Output {
        self.peer
            .command("timeout")
            .args(["10", "busybox", "wget", "-q", "-O", "-", url])
            .output()
            .expect("run wget")
    }

    /// Processes of this case: under its root (dockerd, containerd, shims, containers started
    /// with its volumes), or in its node namespace (docker-proxy).
    fn leftovers(&self) -> Vec<String> {
        let root = self.root();
        let node_ns = std::fs::metadata(self.node.path()).map(|m| m.ino()).ok();
        procs()
            .into_iter()
            .filter(|p| {
                let in_node = std::fs::metadata(format!("/proc/{}/ns/net", p.pid))
                    .map(|m| Some(m.ino()) == node_ns)
                    .unwrap_or(false);
                in_node || p.words.iter().any(|w| w.contains(&root))
            })
            .map(|p| format!("{} ({}) {}", p.pid, p.comm, p.words.join(" ")))
            .collect()
    }

    /// Interfaces of the node namespace other than the fixture's.
    fn extra_links(&self) -> Vec<String> {
        let out = self.node.exec("ip", &["-o", "link", "show"]);
        berth_drivers::ip::netns::link_names(&String::from_utf8_lossy(&out.stdout))
            .into_iter()
            .filter(|d| !["lo", "n0", "br0"].contains(&d.as_str()))
            .collect()
    }

    /// What a failed request needs looked at: listeners and addresses of the node, containers.
    fn diag(&self, svc: &str) -> String {
        let ss = self.node.exec("ss", &["-ltnp"]);
        let ps = self.svc(&[svc, "docker", "ps", "-a"]);
        let logs = self.svc(&[svc, "docker", "logs", &format!("{svc}.container.3")]);
        format!(
            "{}\n{}\n{}\n{}",
            String::from_utf8_lossy(&ss.stdout),
            self.node_addrs(),
            text(&ps),
            text(&logs)
        )
    }

    fn node_addrs(&self) -> String {
        String::from_utf8_lossy(&self.node.exec("ip", &["-o", "addr", "show"]).stdout).into_owned()
    }
}

/// The CGI scripts of the web and app tiers, under `<root>/www` and `<root>/app`.
fn write_tiers(root: &Path) {
    let script = |dir: &str, body: &str| {
        let d = root.join(dir).join("cgi-bin");
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("q");
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho 'Content-Type: text/plain'\necho\n{body}\n"),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .args(["755", p.to_str().unwrap()])
            .status()
            .unwrap();
    };
    // The web tier asks the app tier by its link alias; the app tier asks the db by its alias,
    // from the URL its environment gives it.
    script("www", "wget -q -O - http://app:8000/cgi-bin/q");
    script(
        "app",
        "echo \"app on $TIER got: $(wget -q -O - \"$DB_URL\")\"",
    );
}

/// A three-tier service: db (serves a row from its volume on the service's fs), app (reaches the
/// db by name), web (reaches the app, publishes port 8080 on the service address).
fn stack(name: &str, ip: &str) -> String {
    format!(
        r#"
[service]
nodes = ["node1"]

[ip.1]
ipname = "{ip}"
ipdev = "n0"
netmask = 24

[fs.1]
dev = "@ROOT@/{name}.img"
mnt = "@ROOT@/{name}"
type = "ext4"

[container.1]
run_image = "bb"
run_command = ["sh", "-c", "echo 'row 42 of {name}' > /data/index.html && exec httpd -f -p 5432 -h /data"]
volumes = ["@ROOT@/{name}/db:/data"]
env = ["TIER=db"]
memory = "64m"
health_cmd = "wget -q -O /dev/null http://127.0.0.1:5432/"
health_interval = "200ms"
health_retries = 50
stop_timeout = "2s"

[container.2]
run_image = "bb"
run_command = ["httpd", "-f", "-p", "8000", "-h", "/app"]
volumes = ["@ROOT@/app:/app:ro"]
env = ["TIER=app", "DB_URL=http://db:5432/"]
links = ["container#1:db"]
start_requires = ["container#1"]
memory = "64m"
stop_timeout = "2s"

[container.3]
run_image = "bb"
run_command = ["httpd", "-f", "-p", "80", "-h", "/www"]
volumes = ["@ROOT@/www:/www:ro"]
ports = ["{ip}:8080:80"]
links = ["{name}.container.2:app"]
start_requires = ["container#2"]
memory = "64m"
stop_timeout = "2s"
"#
    )
}

/// Set a stack up: its fs image, its scripts, its image imported.
fn prepare(n: &Node, name: &str, ip: &str) {
    ext4_image(&n.path(&format!("{name}.img")), 64);
    write_tiers(n.t.root.path());
    n.service(&format!("{name}.toml"), &stack(name, ip));
    n.import(name);
}

/// The subnet of the service's docker network.
fn subnet(n: &Node, name: &str) -> String {
    n.ok(&[
        name,
        "docker",
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        &format!("berth-{name}"),
    ])
    .trim()
    .to_string()
}

/// What is left once every stack is stopped: nothing.
fn assert_clean(n: &Node, ips: &[&str]) {
    // A process that is exiting (its parent, the daemon, just went) is given a moment to go.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut left = n.leftovers();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = n.leftovers();
    }
    assert!(left.is_empty(), "processes left: {left:#?}");
    let links = n.extra_links();
    assert!(links.is_empty(), "interfaces left (a bridge?): {links:?}");
    let addrs = n.node_addrs();
    for ip in ips {
        assert!(!addrs.contains(&format!("{ip}/")), "{ip} left:\n{addrs}");
    }
}

#[test]
fn a_three_tier_stack_serves_the_db_through_the_published_port() {
    let n = Node::new(false);
    prepare(&n, "stack", "10.77.0.10");
    let out = n.ok(&["stack", "start"]);
    assert!(out.contains("wait for container operational"), "{out}");
    assert!(
        out.contains("docker network create --subnet 10.199."),
        "{out}"
    );

    let o = n.fetch_served("http://10.77.0.10:8080/cgi-bin/q");
    assert!(
        o.status.success(),
        "wget: {}\n{}",
        text(&o),
        n.diag("stack")
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "app on app got: row 42 of stack"
    );
    // The db's volume is on the service's fs.
    let row = std::fs::read_to_string(n.path("stack/db/index.html")).unwrap();
    assert_eq!(row.trim(), "row 42 of stack");
    let mem = n.ok(&[
        "stack",
        "docker",
        "inspect",
        "-f",
        "{{.HostConfig.Memory}}",
        "stack.container.1",
    ]);
    assert!(mem.contains("67108864"), "{mem}");

    // The status shows each container's network and published ports; JSON carries them.
    let tree = n.ok(&["stack", "print", "status"]);
    let net = subnet(&n, "stack");
    let prefix = net.trim_end_matches(".0/24");
    assert!(
        tree.contains(&format!("# network berth-stack {prefix}."))
            && tree.contains("ports 10.77.0.10:8080->80/tcp"),
        "{tree}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&n.ok(&["--format", "json", "stack", "print", "status"])).unwrap();
    let c3 = json["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rid"] == "container#3"))
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(c3["network"]["name"], "berth-stack", "{c3}");
    assert_eq!(c3["network"]["ports"][0], "10.77.0.10:8080->80/tcp", "{c3}");

    let out = n.ok(&["stack", "stop"]);
    // Stopped in reverse: the web tier first, the db last.
    let stop_of = |rid: &str| {
        out.lines()
            .position(|l| l.contains(rid) && l.contains(" stop "))
            .unwrap_or_else(|| panic!("no stop of {rid} in {out}"))
    };
    assert!(stop_of("CONTAINER#3") < stop_of("CONTAINER#2"), "{out}");
    assert!(stop_of("CONTAINER#2") < stop_of("CONTAINER#1"), "{out}");
    assert!(out.contains("docker network rm berth-stack"), "{out}");
    assert_clean(&n, &["10.77.0.10"]);
    assert!(n.fetch("http://10.77.0.10:8080/cgi-bin/q").status.code() != Some(0));
}

#[test]
fn two_stacks_on_one_node_take_different_subnets() {
    let n = Node::new(false);
    prepare(&n, "one", "10.77.0.11");
    prepare(&n, "two", "10.77.0.12");
    n.ok(&["one", "start"]);
    n.ok(&["two", "start"]);
    let (a, b) = (subnet(&n, "one"), subnet(&n, "two"));
    assert!(
        a.starts_with("10.199.") && b.starts_with("10.199."),
        "{a} {b}"
    );
    assert_ne!(a, b, "two services on one subnet");
    for (ip, name) in [("10.77.0.11", "one"), ("10.77.0.12", "two")] {
        let o = n.fetch_served(&format!("http://{ip}:8080/cgi-bin/q"));
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("app on app got: row 42 of {name}")
        );
    }
    n.ok(&["one", "stop"]);
    // The other stack is untouched by the first one's stop.
    assert!(
        n.fetch_served("http://10.77.0.12:8080/cgi-bin/q")
            .status
            .success()
    );
    n.ok(&["two", "stop"]);
    assert_clean(&n, &["10.77.0.11", "10.77.0.12"]);
}

#[test]
fn a_dependency_that_never_gets_healthy_fails_the_start_and_names_both() {
    let n = Node::new(false);
    n.service(
        "dep.toml",
        r#"
[container.1]
run_image = "bb"
run_command = ["sleep", "100000"]
health_cmd = "false"
health_interval = "200ms"
health_retries = 2
start_timeout = "20s"
stop_timeout = "2s"

[container.2]
run_image = "bb"
run_command = ["sleep", "100000"]
start_requires = ["container#1(up)"]
stop_timeout = "2s"
"#,
    );
    n.import("dep");
    let o = n.svc(&["dep", "start"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("wait for container operational"), "{out}");
    assert!(
        out.contains(
            "its healthcheck reports it unhealthy; container#2 requires container#1 \
                       (start_requires): not started"
        ),
        "{out}"
    );
    assert!(out.contains("stop container dep.container.1"), "{out}");
    assert!(
        !out.contains("--name=dep.container.2"),
        "the dependent was created: {out}"
    );
    // Nothing runs; the daemon (started by the import, not by the start) goes with a stop.
    let ps = n.ok(&["dep", "docker", "ps", "-q"]);
    assert!(ps.trim().is_empty(), "{ps}");
    n.ok(&["dep", "stop"]);
    assert_clean(&n, &[]);
}

#[test]
fn what_cannot_work_is_refused_with_the_reason() {
    let n = Node::new(false);
    // At load: every command refuses the file.
    for (file, body, why) in [
        (
            "p.toml",
            "[container.1]\nrun_image = \"bb\"\nnetwork = \"none\"\nports = [\"8080:80\"]\n",
            "[container#1] ports: bad value \"8080:80\": a container in network = none has no \
             network to publish a port from",
        ),
        (
            "l.toml",
            "[container.1]\nrun_image = \"bb\"\n[container.2]\nrun_image = \"bb\"\n\
             links = [\"web.container.1:db\"]\n",
            "[container#2] links: bad value \"web.container.1:db\": links name containers of \
             this service only",
        ),
        (
            "n.conf",
            "[container#1]\nrun_image = bb\nnetwork = host\n[ip#1]\ntype = netns\n\
             netns = container#1\nipname = 10.77.0.30\nipdev = n0\n",
            "[ip#1] netns: bad value \"container#1\": container#1 has no network namespace of \
             its own (network = host)",
        ),
    ] {
        n.service(file, body);
        let svc = file.split('.').next().unwrap();
        let o = n.svc(&[svc, "start"]);
        assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains(why), "{file}: {}", text(&o));
    }
    // At start (the routes are the node's): a subnet over the node's own network.
    n.service(
        "s.toml",
        "[service]\ndocker_subnet = \"10.77.0.0/24\"\n[container.1]\nrun_image = \"bb\"\n\
         run_command = [\"sleep\", \"100000\"]\n[container.2]\nrun_image = \"bb\"\n\
         run_command = [\"sleep\", \"100000\"]\n",
    );
    n.import("s");
    let o = n.svc(&["s", "start"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "docker_subnet 10.77.0.0/24 of service s overlaps the route 10.77.0.0/24 dev n0 of \
             this node: choose another subnet"
        ),
        "{}",
        text(&o)
    );
    // The import started the daemon: the start leaves it up, the stop takes it down.
    n.ok(&["s", "stop"]);
    assert_clean(&n, &[]);
}

/// OpenSVC v2's pod: container#0 holds the namespace, the service address goes in it
/// (`[ip#0] type = netns`, a veth port of the node's bridge), container#1 shares it.
const POD: &str = "[DEFAULT]
nodes = node1

[container#0]
type = docker
run_image = bb
run_command = sleep 100000
stop_timeout = 2s

[ip#0]
type = netns
netns = container#0
ipname = 10.77.0.20
ipdev = br0
netmask = 24

[container#1]
type = docker
run_image = bb
netns = container#0
run_command = httpd -f -p 80 -h /www
run_args = -v @ROOT@/www:/www:ro
stop_timeout = 2s
";

/// Start the pod on `ipdev` (mode chosen by the device: a bridge, or a macvlan on the veth),
/// reach it from the peer, stop it, and check nothing is left.
fn pod_case(bridged: bool, ipdev: &str, mode: &str) {
    let n = Node::new(bridged);
    std::fs::create_dir_all(n.path("www")).unwrap();
    std::fs::write(n.path("www/index.html"), "hello from the pod\n").unwrap();
    n.service(
        "pod.conf",
        &POD.replace("ipdev = br0", &format!("ipdev = {ipdev}")),
    );
    n.import("pod");
    let out = n.ok(&["pod", "start"]);
    assert!(out.contains(&format!("{mode} mode")), "{out}");
    let o = n.fetch_served("http://10.77.0.20/");
    assert!(o.status.success(), "wget: {}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from the pod\n");
    // The address is in the container's namespace, never on the node.
    assert!(
        !n.node_addrs().contains("10.77.0.20/"),
        "{}",
        n.node_addrs()
    );
    let inside = n.ok(&[
        "pod",
        "docker",
        "exec",
        "pod.container.1",
        "ip",
        "-o",
        "addr",
    ]);
    assert!(inside.contains("inet 10.77.0.20/24"), "{inside}");
    let tree = n.ok(&["pod", "print", "status"]);
    assert!(
        tree.contains(&format!("netns 10.77.0.20/24 {ipdev}@container#0")),
        "{tree}"
    );
    let line = tree
        .lines()
        .find(|l| l.contains("ip#0"))
        .unwrap_or_else(|| panic!("{tree}"));
    assert!(line.contains(" up "), "{tree}");
    assert!(tree.contains("network container:pod.container.0"), "{tree}");

    n.ok(&["pod", "stop"]);
    assert_clean(&n, &["10.77.0.20"]);
}

#[test]
fn a_netns_ip_serves_the_pod_from_inside_its_namespace() {
    pod_case(true, "br0", "bridge");
}

#[test]
fn a_netns_ip_on_a_macvlan_serves_the_pod_too() {
    pod_case(false, "n0", "macvlan");
}
