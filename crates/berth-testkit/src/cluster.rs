//! The multi-node test rig: several berth nodes, an etcd cluster and a shared LUN on one host.
//!
//! # Pieces
//! - [`Lan`]: a network namespace of its own holding a bridge `br0`, with a /24 chosen per lan
//!   (`10.X.Y.0/24`, from the pid and a counter). Everything else plugs into it with a veth.
//!   Never the host's namespace: the host's interfaces, addresses and routes are not touched.
//! - [`Etcd`]: 1 or 3 members of Debian's `etcd` (3.4), each in its own network namespace on the
//!   lan at host index `201 + i` (client port 2379, peer 2380), temp data dirs, started and killed
//!   by pid. A client namespace at index 250 runs `etcdctl` ([`Etcd::etcdctl`]).
//! - [`Node`]: one berth node. Its own network namespace (`eth0` on the lan at the index you give,
//!   1..=199), its own mount namespace (held by a `sleep` process; commands enter it with
//!   `setns`, never `ip netns exec`, which would give each command a throw-away one), its own
//!   cgroup v2 directory under `/sys/fs/cgroup/unified/` that holds every process of the node,
//!   its own config/var/run dirs ([`TempBerth`]) and `BERTH_NODENAME`. [`Node::spawn_svcd`]
//!   runs svcd in it and [`Node::wait_svcd_ready`] waits for its sd_notify `READY=1`.
//!   The test process itself stays in the host's namespaces and cannot reach the lan: it talks
//!   to the nodes through [`Node::command`] (`svc`, `curl`), [`Node::tcp_connect`] (a socket made
//!   in the node's namespace) or [`Etcd::etcdctl`].
//! - [`SharedLun`]: an ext4 loop image on the host; a loop device is global, so every node sees it
//!   as servers see a SAN LUN.
//! - [`Sampler`]: a thread that runs one probe per node every 100 ms and records a [`Timeline`]
//!   ("never up on two nodes" is `timeline.max_concurrent_up() <= 1`).
//!
//! # Faults
//! - [`Node::kill`]: the node's death. `cgroup.kill` kills every process of the node at once
//!   (svcd, dockerd, containers, holders, the mount namespace's holder), then the node's lan port
//!   goes down and every address but the node's own is removed from its namespace (a dead host
//!   answers nothing and holds no service address). [`Node::restart`] boots it again: a fresh
//!   mount namespace and cgroup, the same dirs and network namespace, the port up, no svcd.
//! - [`Node::cut`] / [`Node::heal`]: a partition (`ip link set down` of the node's port on the
//!   bridge, in the lan namespace); its processes keep running.
//! - [`Node::kill_svcd`]: SIGKILL to svcd alone.
//! - [`Etcd::kill_member`] / [`Etcd::restart_member`]: SIGKILL one member / start it again on
//!   its data dir.
//!
//! # Example
//! ```no_run
//! use berth_testkit::cluster::{Etcd, Lan, Node, Sampler};
//! let lan = Lan::new();
//! let etcd = Etcd::start(&lan, 1);
//! let mut n1 = Node::new(&lan, "n1", 1);
//! let mut n2 = Node::new(&lan, "n2", 2);
//! for n in [&n1, &n2] {
//!     n.write_node_toml(&format!(
//!         "[cluster]\nname = \"t\"\netcd = {:?}\nlease_ttl = \"3s\"\n",
//!         etcd.endpoints()
//!     ));
//! }
//! let svcd = "target/debug/svcd"; // env!("CARGO_BIN_EXE_svcd") in berth-agent's tests
//! n1.spawn_svcd(svcd);
//! n2.spawn_svcd(svcd);
//! let ip = lan.host(100);
//! let sampler = Sampler::start(vec![
//!     ("n1".to_string(), n1.addr_probe(ip)),
//!     ("n2".to_string(), n2.addr_probe(ip)),
//! ]);
//! // ... `n1.svc(SVC).args(["web", "switch", "--to", "n2"])` ...
//! let timeline = sampler.stop();
//! assert!(timeline.max_concurrent_up() <= 1, "{timeline}");
//! ```
//!
//! # Cleanup
//! Every fixture cleans up in `Drop`, also while a test panics (and then prints the end of each
//! node's svcd log and of each etcd member's log to stderr): a node kills its cgroup and
//! removes it, deletes its network namespace, detaches loop devices backed by files under its
//! dirs and removes the dirs; [`Etcd`] kills its members by pid; a [`Lan`] deletes its namespace
//! when the last clone (nodes and etcd hold one) goes. Names (namespaces `rg?<pid>x<n>`, cgroups
//! `berth-rig-<pid>-<n>-...`) carry the pid, so concurrent test binaries never collide; leftovers
//! of a test process that was itself SIGKILLed are removed by the next [`Lan::new`] of any test
//! (only names of this rig whose pid is dead).

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Netns, TempBerth, alive, detach_loops_under, ext4_image, run};

/// Where the rig makes its cgroups (cgroup v2, hybrid mount on these machines).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";

/// The first host index of the etcd members (member `i` is at `ETCD_INDEX + i`).
pub const ETCD_INDEX: u8 = 201;
/// The host index of the namespace `etcdctl` runs in.
pub const ETCD_CLIENT_INDEX: u8 = 250;

/// How long a node's processes may take to die after `cgroup.kill`.
const KILL_BOUND: Duration = Duration::from_secs(10);
/// How long an etcd cluster may take to become healthy.
const ETCD_HEALTHY_BOUND: Duration = Duration::from_secs(30);

static SEQ: AtomicU32 = AtomicU32::new(0);

fn seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Run `cmd`, killing it when it has not finished within `bound`: `None` then. Its output is
/// read while it runs (a full pipe cannot stall it).
pub fn output_within(cmd: &mut Command, bound: Duration) -> Option<Output> {
    use std::io::Read as _;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + bound;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // A grandchild may hold the pipes open: do not wait for it for long.
                let wait = Duration::from_secs(5);
                return Some(Output {
                    status,
                    stdout: out.recv_timeout(wait).unwrap_or_default(),
                    stderr: err.recv_timeout(wait).unwrap_or_default(),
                });
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Poll `cond` every 50 ms until it holds; panic naming `what` when it still does not after
/// `bound`.
pub fn wait_until(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Arrange for `cmd`'s child to move itself into a cgroup (by writing `0` to the `cgroup.procs`
/// fd) and to `setns` into a network and a mount namespace, before it execs. The fds are opened
/// here, in the parent; the child keeps its working directory across the mount namespace switch.
fn enter(cmd: &mut Command, procs: Option<File>, net: Option<File>, mnt: Option<File>) {
    let mut cwd = vec![0u8; 4096];
    // SAFETY: between fork and exec the closure only calls async-signal-safe syscalls (write,
    // setns, getcwd into a buffer allocated before the fork, chdir) on fds opened before the
    // fork; the fds are moved in and stay open (close-on-exec) until the exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(f) = &procs
                && libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(f) = &net
                && libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(f) = &mnt {
                let have_cwd = !libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null();
                if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if have_cwd {
                    // A directory missing in the node's namespace leaves the child at its root.
                    libc::chdir(cwd.as_ptr().cast());
                }
            }
            Ok(())
        });
    }
}

/// A cgroup v2 directory of the rig: created empty, killed whole, removed on drop.
#[derive(Debug)]
struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    fn new(label: &str) -> Cgroup {
        let path = Path::new(CGROUP_ROOT).join(format!(
            "berth-rig-{}-{}-{label}",
            std::process::id(),
            seq()
        ));
        std::fs::create_dir(&path).unwrap_or_else(|e| {
            panic!(
                "cannot create the cgroup {}: {e} (cgroup v2 must be mounted at {CGROUP_ROOT})",
                path.display()
            )
        });
        Cgroup { path }
    }

    /// `cgroup.procs`, open for writing, for [`enter`].
    fn procs_file(&self) -> File {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
            .unwrap_or_else(|e| panic!("open {}/cgroup.procs: {e}", self.path.display()))
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kill every process at once and wait (bounded) until none is left.
    fn kill(&self) -> Result<(), String> {
        kill_cgroup_dir(&self.path)
    }
}

fn kill_cgroup_dir(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Ok(());
    }
    std::fs::write(path.join("cgroup.kill"), "1")
        .map_err(|e| format!("write {}/cgroup.kill: {e}", path.display()))?;
    let deadline = Instant::now() + KILL_BOUND;
    loop {
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: processes {:?} still alive {KILL_BOUND:?} after cgroup.kill",
                path.display(),
                procs.split_whitespace().collect::<Vec<_>>()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("berth-testkit: {e}");
        }
        // rmdir can fail with EBUSY for a moment after the last process went.
        for _ in 0..100 {
            match std::fs::remove_dir(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return,
            }
        }
        eprintln!(
            "berth-testkit: cannot remove the cgroup {}",
            self.path.display()
        );
    }
}

/// Remove what a test process of this rig left behind when it was itself killed: cgroups and
/// network namespaces whose names carry a pid that no longer lives. Run once per process.
fn sweep_leftovers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dead = |pid: &str| pid.parse::<i32>().is_ok_and(|p| !alive(p));
        if let Ok(entries) = std::fs::read_dir(CGROUP_ROOT) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let Some(rest) = name.strip_prefix("berth-rig-") else {
                    continue;
                };
                if rest.split('-').next().is_some_and(dead) {
                    let _ = kill_cgroup_dir(&e.path());
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let ours = ["rgl", "rgn", "rge", "rgc"]
                    .iter()
                    .find_map(|p| name.strip_prefix(p))
                    .and_then(|rest| rest.split_once('x'))
                    .is_some_and(|(pid, n)| dead(pid) && n.parse::<u32>().is_ok());
                if ours {
                    let _ = Command::new("ip").args(["netns", "delete", &name]).output();
                }
            }
        }
    });
}

/// `ip -n NS args...`, panicking on failure.
fn ip_in(ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

#[derive(Debug)]
struct LanInner {
    ns: Netns,
    net: [u8; 3],
    /// Network namespace name -> its port on the bridge.
    ports: Mutex<HashMap<String, String>>,
    used: Mutex<Vec<u8>>,
    next_port: AtomicU32,
}

/// A lan: a bridge `br0` in a network namespace of its own, and a /24 of its own. Cheap to
/// clone (the clones share it); the namespace goes with the last clone.
#[derive(Debug, Clone)]
pub struct Lan {
    inner: Arc<LanInner>,
}

impl Default for Lan {
    fn default() -> Self {
        Self::new()
    }
}

impl Lan {
    /// A new lan with `br0` up, on `10.X.Y.0/24` (X and Y from the pid and a counter).
    pub fn new() -> Lan {
        crate::require_root();
        sweep_leftovers();
        let n = u64::from(std::process::id()) * 7 + u64::from(seq());
        let net = [10, 100 + ((n >> 8) % 150) as u8, (n & 0xff) as u8];
        let ns = Netns::new("rgl");
        ip_in(&ns.name, &["link", "add", "br0", "type", "bridge"]);
        ip_in(&ns.name, &["link", "set", "br0", "up"]);
        Lan {
            inner: Arc::new(LanInner {
                ns,
                net,
                ports: Mutex::new(HashMap::new()),
                used: Mutex::new(Vec::new()),
                next_port: AtomicU32::new(0),
            }),
        }
    }

    /// The lan's namespace (the bridge's).
    pub fn netns(&self) -> &Netns {
        &self.inner.ns
    }

    /// The address `.index` of the lan's /24 (free for services from 100 to 199 unless a node
    /// took it).
    pub fn host(&self, index: u8) -> Ipv4Addr {
        let [a, b, c] = self.inner.net;
        Ipv4Addr::new(a, b, c, index)
    }

    /// The lan's prefix length (24).
    pub fn prefix_len(&self) -> u8 {
        24
    }

    /// Plug `ns` into the lan: a veth pair `ifname` in `ns` <-> a port on `br0`, both up, and
    /// `.host_index/24` on `ifname`. Returns that address.
    pub fn attach(&self, ns: &Netns, ifname: &str, host_index: u8) -> Ipv4Addr {
        assert!(
            (1..=254).contains(&host_index),
            "host index {host_index} is not a host of a /24"
        );
        {
            let mut used = self.inner.used.lock().expect("lan lock");
            assert!(
                !used.contains(&host_index),
                "host index {host_index} is already used on this lan"
            );
            used.push(host_index);
        }
        let lan = &self.inner.ns.name;
        let port = format!("p{}", self.inner.next_port.fetch_add(1, Ordering::Relaxed));
        ip_in(
            lan,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", ifname, "netns", &ns.name,
            ],
        );
        ip_in(lan, &["link", "set", &port, "master", "br0", "up"]);
        ip_in(&ns.name, &["link", "set", ifname, "up"]);
        let addr = self.host(host_index);
        ip_in(
            &ns.name,
            &["addr", "add", &format!("{addr}/24"), "dev", ifname],
        );
        self.inner
            .ports
            .lock()
            .expect("lan lock")
            .insert(ns.name.clone(), port);
        addr
    }

    fn port_of(&self, ns_name: &str) -> String {
        self.inner
            .ports
            .lock()
            .expect("lan lock")
            .get(ns_name)
            .cloned()
            .unwrap_or_else(|| panic!("namespace {ns_name} is not attached to this lan"))
    }

    fn set_port(&self, ns_name: &str, state: &str) {
        let port = self.port_of(ns_name);
        ip_in(&self.inner.ns.name, &["link", "set", &port, state]);
    }

    /// Partition `ns` from the lan: its port on the bridge goes down.
    pub fn cut(&self, ns: &Netns) {
        self.set_port(&ns.name, "down");
    }

    /// End the partition of `ns`: its port goes up again.
    pub fn heal(&self, ns: &Netns) {
        self.set_port(&ns.name, "up");
    }
}

#[derive(Debug)]
struct Member {
    ns: Netns,
    addr: Ipv4Addr,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The running member's cgroup (for the leftover sweep; it is killed by pid).
    cgroup: Option<Cgroup>,
}

impl Member {
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }
    fn endpoint(&self) -> String {
        format!("http://{}:2379", self.addr)
    }
}

/// An etcd cluster on a lan: each member in its own network namespace, killed by pid.
#[derive(Debug)]
pub struct Etcd {
    lan: Lan,
    members: Vec<Member>,
    client: Netns,
    token: String,
}

impl Etcd {
    /// Start `members` members (1 or 3) and wait (bounded) until every one is healthy.
    pub fn start(lan: &Lan, members: usize) -> Etcd {
        assert!(
            members == 1 || members == 3,
            "an etcd of 1 or 3 members, not {members}"
        );
        let client = Netns::new("rgc");
        lan.attach(&client, "eth0", ETCD_CLIENT_INDEX);
        let mut list = Vec::new();
        for i in 0..members {
            let ns = Netns::new("rge");
            let addr = lan.attach(
                &ns,
                "eth0",
                ETCD_INDEX + u8::try_from(i).expect("a few members"),
            );
            let dir = tempfile::Builder::new()
                .prefix("rgetcd")
                .tempdir_in("/tmp")
                .expect("etcd temp dir");
            list.push(Member {
                ns,
                addr,
                dir,
                child: None,
                cgroup: None,
            });
        }
        let mut etcd = Etcd {
            lan: lan.clone(),
            members: list,
            client,
            token: format!("berth-rig-{}-{}", std::process::id(), seq()),
        };
        for i in 0..members {
            etcd.spawn_member(i);
        }
        etcd.wait_healthy();
        etcd
    }

    fn spawn_member(&mut self, i: usize) {
        let cluster = self
            .members
            .iter()
            .enumerate()
            .map(|(j, m)| format!("m{j}=http://{}:2380", m.addr))
            .collect::<Vec<_>>()
            .join(",");
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "etcd member {i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.log_path())
            .expect("etcd log file");
        let ip = m.addr;
        let mut cmd = Command::new("etcd");
        cmd.args([
            "--name",
            &format!("m{i}"),
            "--data-dir",
            m.data_dir().to_str().expect("utf-8 path"),
            "--listen-client-urls",
            &format!("http://{ip}:2379,http://127.0.0.1:2379"),
            "--advertise-client-urls",
            &format!("http://{ip}:2379"),
            "--listen-peer-urls",
            &format!("http://{ip}:2380"),
            "--initial-advertise-peer-urls",
            &format!("http://{ip}:2380"),
            "--initial-cluster",
            &cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            &self.token,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            // Keep the last 1000 revisions (checked every 5 minutes): without compaction etcd
            // keeps every revision of every rewritten key until its 2 GiB quota is full.
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1000",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log fd"))
        .stderr(log);
        let net = File::open(m.ns.path()).expect("open the member's netns");
        let cgroup = Cgroup::new(&format!("etcd{i}"));
        enter(&mut cmd, Some(cgroup.procs_file()), Some(net), None);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run etcd: {e} (package etcd-server, scripts/deps.sh installs it)")
        });
        m.child = Some(child);
        m.cgroup = Some(cgroup);
    }

    /// The client URLs of every member, on the lan (`http://IP:2379`), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].endpoint()
    }

    /// How many members the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Never: a cluster has 1 or 3 members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The pid of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The indices of the members that run.
    pub fn live_members(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect()
    }

    fn live_endpoints(&self) -> String {
        self.live_members()
            .into_iter()
            .map(|i| self.endpoint(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcdctl` (v3 API) against every member's endpoint (`ETCDCTL_ENDPOINTS`), run in a
    /// namespace of its own on the lan, with a 1 s dial timeout and a 3 s command timeout.
    pub fn etcdctl(&self) -> Command {
        let mut cmd = self.client.netns_command("etcdctl");
        etcdctl_env(&mut cmd, &self.endpoints().join(","));
        cmd
    }

    /// `etcdctl` as [`Etcd::etcdctl`], against the given endpoints only (`ETCDCTL_ENDPOINTS`:
    /// do not add `--endpoints`, etcdctl refuses both).
    pub fn etcdctl_at(&self, endpoints: &[String]) -> Command {
        let mut cmd = self.client.netns_command("etcdctl");
        etcdctl_env(&mut cmd, &endpoints.join(","));
        cmd
    }

    /// `etcdctl` run inside `node` (its netns, mount namespace and cgroup), against every
    /// member's endpoint: what that node can reach.
    pub fn etcdctl_from(&self, node: &Node) -> Command {
        let mut cmd = node.command("etcdctl");
        etcdctl_env(&mut cmd, &self.endpoints().join(","));
        cmd
    }

    /// Wait (bounded) until every running member answers `endpoint health`; panic with the
    /// members' logs otherwise.
    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + ETCD_HEALTHY_BOUND;
        let mut last = String::new();
        while Instant::now() < deadline {
            let mut cmd = self.client.netns_command("etcdctl");
            etcdctl_env(&mut cmd, &self.live_endpoints());
            cmd.args(["endpoint", "health"]);
            match output_within(&mut cmd, Duration::from_secs(10)) {
                Some(o) if o.status.success() => return,
                Some(o) => last = crate::describe(&o),
                None => last = "etcdctl endpoint health did not finish in 10 s".to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "etcd not healthy after {ETCD_HEALTHY_BOUND:?}: {last}\n{}",
            self.logs()
        );
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.members.len())
            .map(|i| format!("--- etcd member {i} ---\n{}", self.member_log(i)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Member `i`'s log (its stderr).
    pub fn member_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.members[i].log_path()).unwrap_or_default()
    }

    /// SIGKILL member `i` by pid and reap it.
    pub fn kill_member(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("etcd member {i} is not running"));
        let _ = child.kill();
        let _ = child.wait();
        self.members[i].cgroup = None;
    }

    /// Start member `i` again on its data dir; wait until the running members are healthy.
    pub fn restart_member(&mut self, i: usize) {
        self.spawn_member(i);
        self.wait_healthy();
    }

    /// The index of the leader, as the running members report it (`None` when none answers or
    /// none is leader).
    pub fn leader(&self) -> Option<usize> {
        let mut cmd = self.client.netns_command("etcdctl");
        etcdctl_env(&mut cmd, &self.live_endpoints());
        cmd.args(["endpoint", "status", "-w", "json"]);
        let out = output_within(&mut cmd, Duration::from_secs(10))?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.iter().find_map(|e| {
            let st = e.get("Status")?;
            let me = st.get("header")?.get("member_id")?.as_u64()?;
            let leader = st.get("leader")?.as_u64()?;
            if me != leader {
                return None;
            }
            let ep = e.get("Endpoint")?.as_str()?;
            self.members.iter().position(|m| m.endpoint() == ep)
        })
    }

    /// The lan the cluster is on.
    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// Member `i`'s network namespace (to cut it from the lan with [`Lan::cut`]).
    pub fn member_netns(&self, i: usize) -> &Netns {
        &self.members[i].ns
    }
}

fn etcdctl_env(cmd: &mut Command, endpoints: &str) {
    cmd.env("ETCDCTL_API", "3")
        .env("ETCDCTL_ENDPOINTS", endpoints)
        .env("ETCDCTL_DIAL_TIMEOUT", "1s")
        .env("ETCDCTL_COMMAND_TIMEOUT", "3s");
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.members.len() {
                eprintln!(
                    "--- etcd member {i} (last 20 lines) ---\n{}",
                    tail(&self.member_log(i), 20)
                );
            }
        }
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            m.cgroup = None;
        }
    }
}

/// Mount points a node's fresh mount namespace drops at birth: other tests' mounts (their temp
/// dirs, their network namespaces' bind mounts) that a private copy would otherwise keep alive
/// and busy after those tests unmount them in the host's namespace.
fn foreign_mounts() -> Vec<CString> {
    const DROP_UNDER: [&str; 6] = [
        "/tmp/",
        "/var/tmp/",
        "/run/netns/",
        "/run/berth/",
        "/var/lib/berth/",
        "/run/docker/",
    ];
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(decode_mountinfo)
        .filter(|m| DROP_UNDER.iter().any(|p| m.starts_with(p)))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.matches('/').count()));
    points
        .into_iter()
        .filter_map(|m| CString::new(m).ok())
        .collect()
}

/// Decode mountinfo's octal escapes (`\040` for a space, ...).
fn decode_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points and sources of a mountinfo text, decoded.
fn mounts_of(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let source = l.split(" - ").nth(1)?.split(' ').nth(1)?;
            Some((decode_mountinfo(point), decode_mountinfo(source)))
        })
        .collect()
}

/// A probe of a [`Sampler`]: whether the thing watched is up on one node now.
pub type Probe = Box<dyn FnMut() -> bool + Send>;

/// Whether `ip` is on an interface of the network namespace `ns` (read with `ip -o addr`).
fn ns_has_addr(ns: &str, ip: Ipv4Addr) -> bool {
    let Ok(out) = Command::new("ip")
        .args(["-n", ns, "-o", "-4", "addr", "show"])
        .output()
    else {
        return false;
    };
    let want = format!("inet {ip}/");
    String::from_utf8_lossy(&out.stdout).contains(&want)
}

fn holder_has_mount(holder: &Mutex<Option<u32>>, what: &Path) -> bool {
    let Some(pid) = *holder.lock().expect("holder lock") else {
        return false;
    };
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return false;
    };
    let what = what.to_string_lossy();
    mounts_of(&text)
        .iter()
        .any(|(point, source)| *point == what || *source == what)
}

/// One berth node of the rig. See the [module](self) docs.
#[derive(Debug)]
pub struct Node {
    name: String,
    lan: Lan,
    // Dropped in this order: the cgroup (every process) first, then the namespace and dirs.
    cgroup: Option<Cgroup>,
    holder: Option<Child>,
    holder_pid: Arc<Mutex<Option<u32>>>,
    svcd: Option<Child>,
    /// The socket svcd sends its sd_notify messages to (bound at spawn).
    notify: Option<crate::daemon::Notify>,
    netns: Netns,
    addr: Ipv4Addr,
    dirs: TempBerth,
}

impl Node {
    /// A node named `name` on `lan` at `.index` (1..=199), booted (mount namespace and cgroup
    /// ready), no svcd yet.
    pub fn new(lan: &Lan, name: &str, index: u8) -> Node {
        assert!(
            (1..ETCD_INDEX).contains(&index),
            "node index {index}: use 1..={}",
            ETCD_INDEX - 1
        );
        let netns = Netns::new("rgn");
        let addr = lan.attach(&netns, "eth0", index);
        let mut node = Node {
            name: name.to_string(),
            lan: lan.clone(),
            cgroup: None,
            holder: None,
            holder_pid: Arc::new(Mutex::new(None)),
            svcd: None,
            notify: None,
            netns,
            addr,
            dirs: TempBerth::new(),
        };
        node.boot();
        node
    }

    /// A fresh cgroup and mount namespace (held by a `sleep` in the cgroup and netns).
    fn boot(&mut self) {
        let cgroup = Cgroup::new(&self.name);
        let mut cmd = Command::new("sleep");
        cmd.arg("infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        enter(
            &mut cmd,
            Some(cgroup.procs_file()),
            Some(File::open(self.netns.path()).expect("open the node's netns")),
            None,
        );
        let foreign = foreign_mounts();
        // SAFETY: after the fork the closure only calls unshare, mount and umount2 (syscalls)
        // on C strings built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                for m in &foreign {
                    libc::umount2(m.as_ptr(), libc::MNT_DETACH);
                }
                Ok(())
            });
        }
        let holder = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {}'s namespace holder: {e}", self.name));
        *self.holder_pid.lock().expect("holder lock") = Some(holder.id());
        self.holder = Some(holder);
        self.cgroup = Some(cgroup);
    }

    /// The node's name (`BERTH_NODENAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's own address on the lan.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The pid of the process holding the node's mount namespace (`None` while dead).
    pub fn holder_pid(&self) -> Option<u32> {
        *self.holder_pid.lock().expect("holder lock")
    }

    /// The node's cgroup directory (`None` while dead).
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(|c| c.path.as_path())
    }

    /// The pids in the node's cgroup.
    pub fn pids(&self) -> Vec<i32> {
        self.cgroup.as_ref().map(Cgroup::pids).unwrap_or_default()
    }

    /// The node's config dir (`BERTH_CONFIG_DIR`; `services/` is in it).
    pub fn config_dir(&self) -> PathBuf {
        self.dirs.config_dir()
    }

    /// The node's var dir (`BERTH_VAR_DIR`).
    pub fn var_dir(&self) -> PathBuf {
        self.dirs.var_dir()
    }

    /// The node's run dir (`BERTH_RUN_DIR`).
    pub fn run_dir(&self) -> PathBuf {
        self.dirs.run_dir()
    }

    /// A path under the node's temp root (for mount points and images).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dirs.path(rel)
    }

    /// Write `node.toml` in the config dir.
    pub fn write_node_toml(&self, text: &str) -> PathBuf {
        let p = self.config_dir().join("node.toml");
        // The node listens in the test's own network namespace: reads need no token there.
        let text = format!("open_reads = true\n{text}");
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Write `services/<file>` in the config dir.
    pub fn write_service(&self, file: &str, text: &str) -> PathBuf {
        self.dirs.write_service(file, text)
    }

    /// A command that runs inside the node: in its cgroup, network and mount namespaces, with
    /// `BERTH_NODENAME`, `BERTH_CONFIG_DIR`, `BERTH_VAR_DIR`, `BERTH_RUN_DIR` and `NO_COLOR`.
    /// Panics when the node is dead (after [`Node::kill`], before [`Node::restart`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let (Some(cgroup), Some(pid)) = (&self.cgroup, self.holder_pid()) else {
            panic!("node {} is dead: restart() it first", self.name);
        };
        let mnt = File::open(format!("/proc/{pid}/ns/mnt"))
            .unwrap_or_else(|e| panic!("node {}'s mount namespace: {e}", self.name));
        let net = File::open(self.netns.path()).expect("open the node's netns");
        let mut cmd = Command::new(program);
        cmd.env("BERTH_NODENAME", &self.name)
            .env("BERTH_CONFIG_DIR", self.config_dir())
            .env("BERTH_VAR_DIR", self.var_dir())
            .env("BERTH_RUN_DIR", self.run_dir())
            .env("NO_COLOR", "1");
        enter(&mut cmd, Some(cgroup.procs_file()), Some(net), Some(mnt));
        cmd
    }

    /// `svc` (the binary at `svc_bin`) inside the node.
    pub fn svc(&self, svc_bin: &str) -> Command {
        self.command(svc_bin)
    }

    /// Run a command inside the node and return its output whatever the exit code.
    pub fn run_any(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} on node {}: {e}", self.name))
    }

    /// Run a command inside the node, panicking with its output when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.run_any(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} on node {}: {}",
            self.name,
            crate::describe(&out)
        );
        out
    }

    fn svcd_log_path(&self) -> PathBuf {
        self.dirs.path("svcd.log")
    }

    /// Start svcd (the binary at `svcd_bin`) inside the node, stdout and stderr appended to
    /// the node's svcd log ([`Node::svcd_log`]), `NOTIFY_SOCKET` set to a socket of the rig
    /// ([`Node::wait_svcd_ready`]). svcd reads node.toml from the node's config dir: write it
    /// first ([`Node::write_node_toml`]; `listen = "<addr>:PORT"` makes svcd reachable from
    /// the other nodes).
    pub fn spawn_svcd(&mut self, svcd_bin: &str) {
        assert!(
            self.svcd.is_none(),
            "node {}: svcd is already running",
            self.name
        );
        let notify = crate::daemon::Notify::bind(&self.dirs.path("notify.sock"));
        let sock_path = notify.path().to_path_buf();
        self.notify = Some(notify);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.svcd_log_path())
            .expect("svcd log file");
        let child = self
            .command(svcd_bin)
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {svcd_bin} on node {}: {e}", self.name));
        self.svcd = Some(child);
    }

    /// Wait (bounded: 30 s) for svcd's `READY=1` and return the address it says it listens on
    /// (`STATUS=... listening on ADDR`). Panics with svcd's log when it exits first or is late.
    pub fn wait_svcd_ready(&mut self) -> std::net::SocketAddr {
        let notify = self.notify.take();
        let notify = notify.unwrap_or_else(|| panic!("node {}: spawn_svcd first", self.name));
        let what = format!("node {}: svcd", self.name);
        let log = self.svcd_log_path();
        let addr = notify.wait_ready(
            &what,
            || self.svcd_exited(),
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        self.notify = Some(notify);
        addr
    }

    /// A TCP connection made from inside the node's network namespace (the test process lives
    /// in the host's and cannot reach the lan itself): a helper thread `setns`es, connects
    /// (bounded by `timeout`) and hands the socket back; it then works from any thread.
    pub fn tcp_connect(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        let ns = File::open(self.netns.path())?;
        std::thread::spawn(move || {
            // SAFETY: setns on an fd we own, in this short-lived thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::net::TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
    }

    /// svcd's pid, while it runs.
    pub fn svcd_pid(&self) -> Option<u32> {
        self.svcd.as_ref().map(Child::id)
    }

    /// Whether the svcd this node started has exited (reaps it then).
    pub fn svcd_exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.svcd.as_mut()?.try_wait().ok()??;
        self.svcd = None;
        Some(status)
    }

    /// Everything svcd wrote so far (all its runs on this node).
    pub fn svcd_log(&self) -> String {
        std::fs::read_to_string(self.svcd_log_path()).unwrap_or_default()
    }

    /// SIGKILL svcd only (its children, dockerd and the rest, live on) and reap it.
    pub fn kill_svcd(&mut self) {
        self.notify = None;
        if let Some(mut c) = self.svcd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node dies: every process of its cgroup is killed at once (panics if they are not
    /// all gone within 10 s), the mount namespace goes with its holder, the node's lan port goes
    /// down and every address but its own leaves its namespace (a dead host answers nothing and
    /// holds no service address). [`Node::restart`] boots it again.
    pub fn kill(&mut self) {
        if let Err(e) = self.die() {
            panic!("node {}: {e}", self.name);
        }
    }

    fn die(&mut self) -> Result<(), String> {
        let killed = self.cgroup.as_ref().map(Cgroup::kill).unwrap_or(Ok(()));
        for c in [self.holder.take(), self.svcd.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        *self.holder_pid.lock().expect("holder lock") = None;
        self.notify = None;
        killed?;
        self.cgroup = None;
        let port = self.lan.port_of(&self.netns.name);
        let _ = Command::new("ip")
            .args(["-n", &self.lan.netns().name, "link", "set", &port, "down"])
            .output();
        self.drop_foreign_addrs();
        Ok(())
    }

    /// Remove every address of the node's namespace but its own and loopback's.
    fn drop_foreign_addrs(&self) {
        let Ok(out) = Command::new("ip")
            .args(["-n", &self.netns.name, "-o", "addr", "show"])
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "2: eth0    inet 10.1.2.3/24 brd ... scope global eth0 ..."
            let w: Vec<&str> = line.split_whitespace().collect();
            let (Some(dev), Some(cidr)) = (w.get(1), w.get(3)) else {
                continue;
            };
            let dev = dev.split('@').next().unwrap_or(dev);
            let own = *cidr == format!("{}/24", self.addr)
                || *cidr == "127.0.0.1/8"
                || *cidr == "::1/128"
                || cidr.starts_with("fe80:");
            if !own {
                let _ = Command::new("ip")
                    .args(["-n", &self.netns.name, "addr", "del", cidr, "dev", dev])
                    .output();
            }
        }
    }

    /// Boot the node again after [`Node::kill`] (kills it first if it lives): a fresh cgroup
    /// and mount namespace, the same dirs, network namespace and address, its lan port up. svcd
    /// is not started.
    pub fn restart(&mut self) {
        if self.cgroup.is_some() {
            self.kill();
        }
        self.boot();
        self.lan.heal(&self.netns);
    }

    /// Partition the node from the lan (its processes keep running).
    pub fn cut(&self) {
        self.lan.cut(&self.netns);
    }

    /// End the node's partition.
    pub fn heal(&self) {
        self.lan.heal(&self.netns);
    }

    /// Whether `ip` is on an interface of the node's network namespace.
    pub fn has_addr(&self, ip: Ipv4Addr) -> bool {
        ns_has_addr(&self.netns.name, ip)
    }

    /// Whether something is mounted in the node's mount namespace with `what` as its mount
    /// point or source (a device path such as `/dev/loop3`). `false` while the node is dead.
    pub fn has_mount(&self, what: &Path) -> bool {
        holder_has_mount(&self.holder_pid, what)
    }

    /// A [`Sampler`] probe for [`Node::has_addr`].
    pub fn addr_probe(&self, ip: Ipv4Addr) -> Probe {
        let ns = self.netns.name.clone();
        Box::new(move || ns_has_addr(&ns, ip))
    }

    /// A [`Sampler`] probe: "the service is up here" as either its address or its mount.
    pub fn ip_or_mount_probe(&self, ip: Ipv4Addr, what: &Path) -> Probe {
        let mut addr = self.addr_probe(ip);
        let mut mount = self.mount_probe(what);
        Box::new(move || addr() | mount())
    }

    /// A [`Sampler`] probe: `path` (a file the node's services write, such as an
    /// `[fs#N] type = flag` marker) exists while the node lives. A dead node runs nothing,
    /// whatever its disk says; follows the node across restarts.
    pub fn file_probe(&self, path: &Path) -> Probe {
        let holder = Arc::clone(&self.holder_pid);
        let path = path.to_path_buf();
        Box::new(move || holder.lock().is_ok_and(|h| h.is_some()) && path.exists())
    }

    /// A [`Sampler`] probe for [`Node::has_mount`]; follows the node across restarts.
    pub fn mount_probe(&self, what: &Path) -> Probe {
        let holder = Arc::clone(&self.holder_pid);
        let what = what.to_path_buf();
        Box::new(move || holder_has_mount(&holder, &what))
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.svcd_log();
            if !log.is_empty() {
                eprintln!(
                    "--- node {}: svcd log (last 200 lines) ---\n{}",
                    self.name,
                    tail(&log, 200)
                );
            }
        }
        if let Err(e) = self.die() {
            eprintln!("berth-testkit: node {}: {e}", self.name);
        }
        // The cgroup, the netns and the dirs (with their loop devices) go with their fields.
    }
}

/// An ext4 loop image on the host, seen by every node as a shared SAN LUN. Detached on drop.
#[derive(Debug)]
pub struct SharedLun {
    dir: tempfile::TempDir,
    dev: PathBuf,
}

impl SharedLun {
    /// A `mib` MiB ext4 image on a loop device.
    pub fn new(mib: u64) -> SharedLun {
        crate::require_root();
        let dir = tempfile::Builder::new()
            .prefix("rglun")
            .tempdir_in("/tmp")
            .expect("LUN temp dir");
        let img = dir.path().join("lun.img");
        ext4_image(&img, mib);
        let out = run(
            "losetup",
            &["-f", "--show", img.to_str().expect("utf-8 path")],
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        SharedLun { dir, dev }
    }

    /// The loop device (`/dev/loopN`).
    pub fn dev(&self) -> &Path {
        &self.dev
    }

    /// The image file behind it.
    pub fn image(&self) -> PathBuf {
        self.dir.path().join("lun.img")
    }
}

impl Drop for SharedLun {
    fn drop(&mut self) {
        detach_loops_under(self.dir.path());
    }
}

/// One sample of a [`Timeline`]: when, and which nodes were up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Since the sampler started.
    pub at: Duration,
    /// One per probe, in the order given to [`Sampler::start`].
    pub up: Vec<bool>,
}

/// What a [`Sampler`] saw. `Display` prints the changes only.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The probes' names.
    pub names: Vec<String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// The most probes up in one sample (0 without samples).
    pub fn max_concurrent_up(&self) -> usize {
        self.samples
            .iter()
            .map(|s| s.up.iter().filter(|u| **u).count())
            .max()
            .unwrap_or(0)
    }

    /// The samples where more than one probe was up.
    pub fn overlaps(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.up.iter().filter(|u| **u).count() > 1)
            .collect()
    }

    /// The first time probe `name` was seen up, if ever.
    pub fn first_up(&self, name: &str) -> Option<Duration> {
        let i = self.names.iter().position(|n| n == name)?;
        self.samples.iter().find(|s| s.up[i]).map(|s| s.at)
    }

    /// The first time probe `name` was seen up at or after `at` (a mark taken with
    /// [`Sampler::elapsed`], e.g. the instant a node was killed).
    pub fn first_up_after(&self, name: &str, at: Duration) -> Option<Duration> {
        let i = self.names.iter().position(|n| n == name)?;
        self.samples
            .iter()
            .find(|s| s.at >= at && s.up[i])
            .map(|s| s.at)
    }

    /// Whether probe `name` was up in the last sample.
    pub fn last_up(&self, name: &str) -> bool {
        let Some(i) = self.names.iter().position(|n| n == name) else {
            return false;
        };
        self.samples.last().is_some_and(|s| s.up[i])
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "timeline: {} samples, at most {} up at once",
            self.samples.len(),
            self.max_concurrent_up()
        )?;
        let mut prev: Option<&Vec<bool>> = None;
        for s in &self.samples {
            if prev == Some(&s.up) {
                continue;
            }
            prev = Some(&s.up);
            write!(f, "  {:>8.3}s", s.at.as_secs_f64())?;
            for (n, u) in self.names.iter().zip(&s.up) {
                write!(f, " {n}={}", if *u { "up" } else { "down" })?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Samples one probe per node every 100 ms in a thread of its own until [`Sampler::stop`].
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU32>,
    t0: Instant,
    thread: Option<std::thread::JoinHandle<Timeline>>,
}

impl Sampler {
    /// The sampling period.
    pub const PERIOD: Duration = Duration::from_millis(100);

    /// Start sampling `probes` (name, probe) now.
    pub fn start(probes: Vec<(String, Probe)>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let taken = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&taken);
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            let (names, mut probes): (Vec<String>, Vec<Probe>) = probes.into_iter().unzip();
            let mut samples = Vec::new();
            let mut next = t0;
            loop {
                let at = t0.elapsed();
                let up = probes.iter_mut().map(|p| p()).collect();
                samples.push(Sample { at, up });
                count.fetch_add(1, Ordering::Relaxed);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                next += Self::PERIOD;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            Timeline { names, samples }
        });
        Sampler {
            stop,
            taken,
            t0,
            thread: Some(thread),
        }
    }

    /// The time since the sampler started, on the timeline's clock (to mark an event, such as
    /// a kill, and find what followed it with [`Timeline::first_up_after`]).
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// How many samples were taken so far.
    pub fn taken(&self) -> u32 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Wait until `n` more samples were taken after this call began (each of them started
    /// after it), so that a state the test holds now is surely sampled. Bounded: panics after
    /// 30 s.
    pub fn wait_samples(&self, n: u32) {
        // The sample in progress may have started before the call: skip it.
        let target = self.taken() + n + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.taken() < target {
            assert!(
                Instant::now() < deadline,
                "the sampler took no sample in 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stop (after one last sample) and return the timeline.
    pub fn stop(mut self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("sampler thread")
            .join()
            .expect("a sampler probe panicked")
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(decode_mountinfo("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(decode_mountinfo("/x\\134y"), "/x\\y");
        assert_eq!(decode_mountinfo("/plain"), "/plain");
        assert_eq!(decode_mountinfo("/end\\04"), "/end\\04");
    }

    #[test]
    fn mountinfo_lines_give_point_and_source() {
        let text = "36 35 98:0 / /mnt/a\\040b rw,noatime master:1 - ext4 /dev/loop3 rw\n\
                    37 35 0:1 / /proc rw - proc proc rw\n";
        assert_eq!(
            mounts_of(text),
            vec![
                ("/mnt/a b".to_string(), "/dev/loop3".to_string()),
                ("/proc".to_string(), "proc".to_string())
            ]
        );
    }

    #[test]
    fn timeline_counts_overlaps_and_prints_changes() {
        let s = |ms, up: [bool; 2]| Sample {
            at: Duration::from_millis(ms),
            up: up.to_vec(),
        };
        let t = Timeline {
            names: vec!["n1".into(), "n2".into()],
            samples: vec![
                s(0, [true, false]),
                s(100, [true, false]),
                s(200, [true, true]),
                s(300, [false, true]),
            ],
        };
        assert_eq!(t.max_concurrent_up(), 2);
        assert_eq!(t.overlaps().len(), 1);
        assert_eq!(t.first_up("n2"), Some(Duration::from_millis(200)));
        assert!(t.last_up("n2") && !t.last_up("n1"));
        let text = t.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("0.200s n1=up n2=up"), "{text}");
        let empty = Timeline {
            names: vec![],
            samples: vec![],
        };
        assert_eq!(empty.max_concurrent_up(), 0);
    }
}
