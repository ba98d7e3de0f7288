//! Sync resources on the cluster rig, for real: three nodes with their svcd and an sshd of the
//! test's own each (own host key, config, on the node's address), a real etcd, a primary LUN
//! shared by `nodes` (n1, n2) and a separate loop image mounted on the DR node n3; real rsync
//! over ssh with host keys checked. A full sync of tens of MiB then an incremental one,
//! compared file by file on the receiver; each refusal (non-owner sender, unmounted dstfs,
//! service up on the receiver, an older token, drp_active); a sync cut midway (the sender's
//! rsync killed) leaves the previous copy whole and is reported; a host key mismatch fails
//! with ssh's reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use berth_testkit::cluster::{Etcd, Lan, Node, SharedLun, wait_until};
use berth_testkit::describe;
use berth_testkit::sshd::{SshClient, Sshd};
use common::{PORT, SVCD, svc, svc_bin, svc_ok};

struct DrRig {
    // Dropped first: the sshds, then the nodes (their cgroups), then the LUNs and etcd.
    _sshds: Vec<Sshd>,
    nodes: Vec<Node>,
    client: SshClient,
    primary: SharedLun,
    dr: SharedLun,
    mnt: tempfile::TempDir,
    etcd: Etcd,
    _lan: Lan,
}

impl DrRig {
    fn new(schedule: &str) -> DrRig {
        berth_testkit::require_root();
        let lan = Lan::new();
        let etcd = Etcd::start(&lan, 1);
        let primary = SharedLun::new(160);
        let dr = SharedLun::new(160);
        let mnt = tempfile::Builder::new()
            .prefix("rgds")
            .tempdir_in("/tmp")
            .unwrap();
        let client = SshClient::new();
        let mut nodes: Vec<Node> = ["n1", "n2", "n3"]
            .iter()
            .enumerate()
            .map(|(i, n)| Node::new(&lan, n, u8::try_from(i + 1).unwrap()))
            .collect();
        let eps: Vec<String> = etcd.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let ip = lan.host(100);
        let m = mnt.path().display().to_string();
        for node in &nodes {
            node.write_node_toml(&format!(
                "listen = \"{}:{PORT}\"\nmonitor_interval = \"1s\"\n\n[cluster]\nname = \"t\"\n\
                 etcd = [{}]\nlease_ttl = \"3s\"\nready_period = \"1s\"\n\n{}",
                node.addr(),
                eps.join(", "),
                client.node_toml()
            ));
            node.write_service(
                "web.toml",
                &format!(
                    "[service]\nnodes = [\"n1\", \"n2\"]\ndrpnodes = [\"n3\"]\n\n[ip.1]\n\
                     ipname = \"{ip}\"\nipdev = \"eth0\"\nnetmask = 24\nprobe_timeout = \"200ms\"\n\n\
                     [fs.1]\ndev = \"{}\"\nmnt = \"{m}\"\ntype = \"ext4\"\n\n\
                     [sync.1]\ntype = \"rsync\"\nsrc = \"{m}/\"\ndstfs = \"{m}\"\n\
                     target = [\"drpnodes\"]\nschedule = \"{schedule}\"\nexclude = [\"lost+found\"]\n\
                     [sync.2]\nsrc = \"{m}/\"\ndstfs = \"{m}\"\ntarget = [\"nodes\"]\n",
                    primary.dev().display()
                ),
            );
        }
        let bin_dir = svc_bin().parent().unwrap().to_path_buf();
        let mut sshds = Vec::new();
        for node in &nodes {
            let s = Sshd::start(node, &client, &[&bin_dir]);
            client.trust(&s);
            sshds.push(s);
        }
        for node in &mut nodes {
            node.spawn_svcd(SVCD);
            node.wait_svcd_ready();
        }
        DrRig {
            _sshds: sshds,
            nodes,
            client,
            primary,
            dr,
            mnt,
            etcd,
            _lan: lan,
        }
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name() == name).unwrap()
    }

    fn mnt(&self) -> &Path {
        self.mnt.path()
    }

    /// Mount the DR image on n3's mount point (its own copy, in its own namespace).
    fn mount_dr(&self) {
        let m = self.mnt().to_str().unwrap();
        self.node("n3")
            .run("mount", &[self.dr.dev().to_str().unwrap(), m]);
    }

    /// `sha256sum` of every file under the mount point on `node`, sorted, as `path  sum` lines
    /// (lost+found aside), with the symlinks' targets.
    fn tree(&self, node: &str) -> Vec<String> {
        let m = self.mnt().to_str().unwrap();
        let script = format!(
            "cd {m} && find . -path ./lost+found -prune -o -type f -print0 | sort -z | \
             xargs -0 -r sha256sum && find . -type l -printf '%p -> %l\\n' | sort"
        );
        let out = self.node(node).run("sh", &["-c", &script]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn records(&self) -> serde_json::Value {
        let p = self.node("n1").var_dir().join("web/sync/sync#1.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }
}

fn fails_with(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        describe(out)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(what), "{what:?} not in: {}", describe(out));
}

/// Write `n` files of `kib` KiB of random data under `dir/sub` on `node`.
fn random_files(node: &Node, dir: &Path, sub: &str, n: usize, kib: usize) {
    let script = format!(
        "mkdir -p {d}/{sub} && for i in $(seq 1 {n}); do \
         head -c {bytes} /dev/urandom > {d}/{sub}/f$i; done",
        d = dir.display(),
        bytes = kib * 1024
    );
    node.run("sh", &["-c", &script]);
}

#[test]
fn syncs_to_the_dr_node_refusals_a_cut_and_host_keys() {
    let rig = DrRig::new("");
    let m = rig.mnt().to_path_buf();
    let (n1, n2, n3) = (rig.node("n1"), rig.node("n2"), rig.node("n3"));
    svc_ok(n1, &["web", "start"]);
    // Tens of MiB: 24 files of 1 MiB, 200 small ones in nested dirs, a symlink.
    random_files(n1, &m, "big", 24, 1024);
    random_files(n1, &m, "small/a/b", 200, 4);
    n1.run("ln", &["-s", "big/f1", m.join("link").to_str().unwrap()]);

    // A node that does not run the service does not send.
    fails_with(
        &svc(n2, &["web", "sync", "update", "--rid", "sync#1"]),
        "owned by n1",
    );
    // Nothing mounted on n3's dstfs yet: refused there, the reason back on n1.
    let out = svc(n1, &["web", "syncupdate", "--rid", "sync#1"]);
    fails_with(&out, "is not a mount point on n3");
    let st = svc(n1, &["web", "sync", "status", "--rid", "sync#1"]);
    fails_with(&st, "is not a mount point on n3");

    rig.mount_dr();
    let out = svc_ok(n1, &["web", "sync", "update", "--rid", "sync#1"]);
    assert_eq!(rig.tree("n1"), rig.tree("n3"), "{}", describe(&out));
    assert!(rig.tree("n3").len() > 220);
    let full_bytes = rig.records()["n3"]["last_ok"]["bytes"].as_u64().unwrap();
    assert!(full_bytes > 24 << 20, "{full_bytes}");

    // Incremental: 3 files changed, one added, one removed.
    random_files(n1, &m, "big", 3, 1024);
    random_files(n1, &m, "new", 1, 64);
    n1.run("rm", &[m.join("small/a/b/f7").to_str().unwrap()]);
    svc_ok(n1, &["web", "sync", "update", "--rid", "sync#1"]);
    let synced = rig.tree("n1");
    assert_eq!(synced, rig.tree("n3"));
    let incr = rig.records()["n3"]["last_ok"]["bytes"].as_u64().unwrap();
    assert!(
        incr < full_bytes / 4,
        "incremental {incr} vs full {full_bytes}"
    );
    // sync full (checksums) sends little more.
    svc_ok(n1, &["web", "sync", "full", "--rid", "sync#1"]);
    assert_eq!(synced, rig.tree("n3"));

    // The rows: up on n1; n/a on n3, which says whom it receives from; recorded in etcd.
    let st = svc_ok(n1, &["web", "sync", "status", "--rid", "sync#1"]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("up"),
        "{}",
        describe(&st)
    );
    let st = svc(n3, &["web", "sync", "status", "--rid", "sync#1"]);
    assert!(!st.status.success());
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("n/a") && text.contains("receives from n1"),
        "{text}"
    );
    let out = rig
        .etcd
        .etcdctl()
        .args(["get", "--print-value-only", "/berth/t/sync/web/sync#1/n3"])
        .output()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["result"], "ok", "{rec}");
    let token = rec["token"].as_i64().unwrap();
    // print status: the row is under sync, avail untouched.
    let ps = svc_ok(n1, &["web", "print", "status", "--refresh"]);
    let text = String::from_utf8_lossy(&ps.stdout);
    assert!(
        text.contains("|- sync") && text.contains("sync#1"),
        "{text}"
    );
    let js = svc_ok(
        n1,
        &["web", "print", "status", "--refresh", "--format", "json"],
    );
    let js: serde_json::Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(js["avail"], "up", "{js}");

    // The other target class: n2 shares the LUN and has nothing mounted: refused there.
    fails_with(
        &svc(n1, &["web", "sync", "nodes", "--rid", "sync#2"]),
        "is not a mount point on n2",
    );

    // An older token than one n3 accepted (a newer owner sent since): refused.
    let received = n3.var_dir().join("web/sync/sync#1.received");
    let kept = std::fs::read(&received).unwrap();
    std::fs::write(
        &received,
        format!(
            "{{\"from\": \"n2\", \"token\": {}, \"time\": 1}}",
            token + 1000
        ),
    )
    .unwrap();
    fails_with(
        &svc(n1, &["web", "sync", "update", "--rid", "sync#1"]),
        &format!("token {token} of n1 is older than token {}", token + 1000),
    );
    std::fs::write(&received, kept).unwrap();

    // A drp_active mark on n3: refused.
    let mark = n3.var_dir().join("web/drp_active");
    std::fs::write(&mark, "{\"node\": \"n3\", \"time\": 1, \"token\": 0}").unwrap();
    fails_with(
        &svc(n1, &["web", "sync", "update", "--rid", "sync#1"]),
        "drp_active: the DR node n3",
    );
    std::fs::remove_file(&mark).unwrap();

    // The service (partly) up on the receiver: its address there. Refused.
    let ip = format!("{}/24", rig._lan.host(100));
    n3.run("ip", &["addr", "add", &ip, "dev", "eth0"]);
    fails_with(
        &svc(n1, &["web", "sync", "update", "--rid", "sync#1"]),
        "service web is warn on n3",
    );
    n3.run("ip", &["addr", "del", &ip, "dev", "eth0"]);
    // Nothing of the refusals touched the copy.
    assert_eq!(synced, rig.tree("n3"));

    // A sync cut midway: big changes, the sender's rsync killed while it sends.
    random_files(n1, &m, "big", 24, 1024);
    random_files(n1, &m, "huge", 8, 4096);
    let child = n1
        .svc(svc_bin().to_str().unwrap())
        .args(["web", "sync", "update", "--rid", "sync#1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut killed = None;
    wait_until(Duration::from_secs(20), "the sender's rsync", || {
        killed = n1.pids().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "rsync")
                && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| !c.contains("--server"))
        });
        killed.is_some()
    });
    // Hold the transfer midway: the receiver's rsync stopped (SIGSTOP) once it writes.
    let mut receiver = None;
    wait_until(Duration::from_secs(20), "the receiver's rsync", || {
        receiver = n3.pids().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "rsync")
                && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("--server"))
        });
        receiver.is_some()
    });
    std::thread::sleep(Duration::from_millis(200));
    let receiver = receiver.unwrap();
    // SAFETY: kill(2) on the rsync --server the test's own sync started in n3's cgroup.
    unsafe {
        libc::kill(receiver, libc::SIGSTOP);
    }
    // While it sends, the service's lock is free (a second sync gets past it without waiting)
    // and a second sync of the resource is refused, naming the first.
    fails_with(
        &svc(
            n1,
            &[
                "web",
                "sync",
                "update",
                "--rid",
                "sync#1",
                "--waitlock",
                "0",
            ],
        ),
        "a sync of sync#1 is running",
    );
    let pid = killed.unwrap();
    // SAFETY: kill(2) on the rsync the test's own svc started in the node's cgroup.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    fails_with(&out, "killed by signal 9");
    // SAFETY: as above; the receiver then sees its sender gone and ends.
    unsafe {
        libc::kill(receiver, libc::SIGCONT);
    }
    wait_until(
        Duration::from_secs(20),
        "the receiver's rsync to end",
        || !n3.pids().contains(&receiver),
    );
    let after = rig.tree("n3");
    // Every file on n3 is whole: either the previous copy's or the new source's.
    let now = rig.tree("n1");
    for line in &after {
        assert!(
            synced.contains(line) || now.contains(line),
            "{line}: neither the previous copy nor the source"
        );
    }
    let st = svc(n1, &["web", "sync", "status", "--rid", "sync#1"]);
    fails_with(&st, "killed by signal 9");
    // The next sync completes it.
    svc_ok(n1, &["web", "sync", "update", "--rid", "sync#1"]);
    assert_eq!(rig.tree("n1"), rig.tree("n3"));

    // A host key mismatch: ssh's own reason, nothing sent.
    let kh = rig.client.known_hosts();
    let good = std::fs::read_to_string(&kh).unwrap();
    let other = SshClient::new();
    let bogus: String = good
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{} ", n3.addr())) {
                format!("{} {}", n3.addr(), other.public().trim())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&kh, bogus + "\n").unwrap();
    random_files(n1, &m, "later", 1, 4);
    let out = svc(n1, &["web", "sync", "update", "--rid", "sync#1"]);
    fails_with(&out, "Host key verification failed");
    assert!(!rig.tree("n3").iter().any(|l| l.contains("./later/")));
    std::fs::write(&kh, good).unwrap();
}

/// svcd runs a due schedule by itself (here every minute: the first run comes within svcd's
/// 10 s look), and its metrics give the last good sync's age and bytes.
#[test]
fn svcd_runs_the_schedule_and_exports_the_last_good_sync() {
    let rig = DrRig::new("@1");
    let m = rig.mnt().to_path_buf();
    let n1 = rig.node("n1");
    rig.mount_dr();
    // The data is on the LUN before the service starts (and before any scheduled run).
    let (lun, mnt) = (rig.primary.dev().to_str().unwrap(), m.to_str().unwrap());
    n1.run("mount", &[lun, mnt]);
    random_files(n1, &m, "data", 8, 256);
    n1.run("umount", &[mnt]);
    svc_ok(n1, &["web", "start"]);
    let records = n1.var_dir().join("web/sync/sync#1.json");
    wait_until(Duration::from_secs(60), "a scheduled sync to n3", || {
        std::fs::read(&records)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["n3"]["last_ok"].is_object())
    });
    assert_eq!(rig.tree("n1"), rig.tree("n3"));
    let log = String::from_utf8_lossy(&svc_ok(n1, &["web", "logs"]).stdout).into_owned();
    assert!(log.contains("scheduled sync done"), "{log}");
    wait_until(Duration::from_secs(20), "the sync gauges", || {
        common::get_text(n1, "/metrics").is_some_and(|t| {
            t.contains("berth_sync_last_ok_bytes{service=\"web\",rid=\"sync#1\",target=\"n3\"}")
                && t.contains("berth_sync_last_ok_age_seconds{")
        })
    });
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The benchmark of docs/benchmarks.md (run by hand: `--ignored --nocapture`): a full and an
/// incremental sync of a realistic tree by `svc web sync update`, next to plain rsync over ssh
/// of the same tree with the same flags and ssh options, median of 3.
#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn bench_sync_against_plain_rsync() {
    let rig = DrRig::new("");
    let m = rig.mnt().to_path_buf();
    let (n1, n3) = (rig.node("n1"), rig.node("n3"));
    rig.mount_dr();
    svc_ok(n1, &["web", "start"]);
    // About 100 MiB: 100 files of 512 KiB, 1400 of 36 KiB in 14 directories.
    random_files(n1, &m, "media", 100, 512);
    for d in 0..14 {
        random_files(n1, &m, &format!("docs/d{d}"), 100, 36);
    }
    let mnt = m.to_str().unwrap();
    let ssh = format!(
        "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 -o \
         UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i {}",
        rig.client.known_hosts().display(),
        rig.client.key().display()
    );
    let dst = format!("root@{}:{mnt}/", n3.addr());
    let plain = || {
        let t = std::time::Instant::now();
        n1.run(
            "rsync",
            &[
                "-HAXpogDtrlvx",
                "--delete",
                "--force",
                "--stats",
                "--exclude=lost+found",
                "-e",
                &ssh,
                &format!("{mnt}/"),
                &dst,
            ],
        );
        t.elapsed().as_secs_f64()
    };
    let berth = || {
        let t = std::time::Instant::now();
        svc_ok(n1, &["web", "sync", "update", "--rid", "sync#1"]);
        t.elapsed().as_secs_f64()
    };
    let wipe = || {
        n3.run(
            "sh",
            &[
                "-c",
                &format!(
                    "find {mnt} -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {{}} +"
                ),
            ],
        );
    };
    let touch10 = || random_files(n1, &m, "docs/d0", 10, 36);
    let (mut bf, mut pf, mut bi, mut pi, mut bn, mut pn) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        wipe();
        bf.push(berth());
        touch10();
        bi.push(berth());
        bn.push(berth());
        wipe();
        pf.push(plain());
        touch10();
        pi.push(plain());
        pn.push(plain());
    }
    assert_eq!(rig.tree("n1"), rig.tree("n3"));
    let bytes = rig.records()["n3"]["last_ok"]["bytes"].as_u64().unwrap();
    eprintln!(
        "BENCH full: berth {:.2}s plain {:.2}s | 10 files changed: berth {:.2}s plain {:.2}s | \
         no change: berth {:.2}s plain {:.2}s | last bytes {bytes}",
        median(bf),
        median(pf),
        median(bi),
        median(pi),
        median(bn),
        median(pn)
    );
}
