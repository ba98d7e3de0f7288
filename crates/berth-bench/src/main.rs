//! `berth-bench`: every case measured against its floor (the same host operations done directly)
//! in the same run, medians over several runs after a warm-up, printed as one Markdown table.
//! Needs root: it builds its own fixtures (loop images, network namespaces, LVM on a loop PV,
//! private dockerds) and removes them. Run it through `scripts/bench.sh` (release build).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth_testkit::{Netns, TempBerth, ext4_image, require_root, veth};

/// A benchmark case: fixtures, measurements, rows.
type Case = fn(&Plan, &mut Vec<Row>) -> Result<()>;

/// Runs of each case after the warm-up.
struct Plan {
    runs: usize,
}

/// The `lvm fullreport` berth's vg status runs (its VG and LV sub-reports, the others cut).
const FULLREPORT: &str = "lvm fullreport --reportformat json --configreport vg -o vg_name,vg_tags,lv_count \
     --configreport lv -o lv_name,lv_active_locally,lv_skip_activation --configreport pv -o pv_uuid \
     --configreport pvseg -o pvseg_start --configreport seg -o seg_start";

/// One row of the table.
struct Row {
    case: String,
    berth: Duration,
    floor: Option<Duration>,
    /// The median of the run-by-run ratios, when berth and its floor ran in turn
    /// ([`measure_pair`]); else the ratio of the medians is printed.
    ratio: Option<f64>,
    note: String,
}

/// Medians of two commands run in turn, and of their run-by-run ratios.
struct Pair {
    a: Duration,
    b: Duration,
    ratio: f64,
}

impl Row {
    /// A row of berth (`p.a`) against its floor (`p.b`), measured in turn.
    fn pair(case: &str, p: &Pair, note: &str) -> Row {
        Row {
            case: case.into(),
            berth: p.a,
            floor: Some(p.b),
            ratio: Some(p.ratio),
            note: note.into(),
        }
    }
}

/// Time `a` and `b` in turn (A B A B ...) `runs` times each after one warm-up of each, each
/// followed (untimed) by its reset: a drift of the machine's speed (other work starting or
/// ending) then weighs on both alike, and the median of the run-by-run ratios holds.
fn measure_pair(
    runs: usize,
    mut a: impl FnMut() -> Result<()>,
    mut reset_a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
    mut reset_b: impl FnMut() -> Result<()>,
) -> Result<Pair> {
    a()?;
    reset_a()?;
    b()?;
    reset_b()?;
    let (mut ta, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        a()?;
        let da = t.elapsed();
        reset_a()?;
        let t = Instant::now();
        b()?;
        let db = t.elapsed();
        reset_b()?;
        ta.push(da);
        tb.push(db);
        ratios.push(da.as_secs_f64() / db.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Pair {
        a: median(ta),
        b: median(tb),
        ratio: ratios[ratios.len() / 2],
    })
}

fn none() -> Result<()> {
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

fn sh(script: &str) -> Result<Output> {
    run(Command::new("sh").args(["-c", script]))
}

/// Time `f` `runs` times after one warm-up run; `reset` runs untimed after each.
fn measure(
    runs: usize,
    mut f: impl FnMut() -> Result<()>,
    mut reset: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    f()?;
    reset()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
        reset()?;
    }
    Ok(median(times))
}

/// The `svc` binary next to this one (both built by `cargo build --release`).
fn svc_bin() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let svc = me.with_file_name("svc");
    ensure!(
        svc.exists(),
        "{} not found: build with `cargo build --release -p berth-cli`",
        svc.display()
    );
    Ok(svc)
}

struct Env {
    t: TempBerth,
    svc: PathBuf,
}

impl Env {
    fn new() -> Result<Env> {
        Ok(Env {
            t: TempBerth::new(),
            svc: svc_bin()?,
        })
    }
    /// Import a busybox-static rootfs as `busybox:latest` into `svc`'s private dockerd, through
    /// the passthrough (which starts the daemon).
    fn import_busybox(&self, svc: &str) -> Result<()> {
        use std::io::Write;
        let tar = berth_testkit::busybox_tar(&self.t.path("rootfs"));
        let mut child = self
            .t
            .svc(self.svc.to_str().context("utf-8")?)
            .args([svc, "docker", "import", "-", "busybox:latest"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        child.stdin.take().context("stdin")?.write_all(&tar)?;
        ensure!(child.wait()?.success(), "docker import into {svc} failed");
        Ok(())
    }

    fn svc(&self, args: &[&str]) -> Result<Output> {
        run(self
            .t
            .svc(self.svc.to_str().context("utf-8 path")?)
            .args(args))
    }
}

fn fs_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let env = Env::new()?;
    let img = env.t.path("fs.img");
    let mnt = env.t.path("mnt/fs");
    ext4_image(&img, 64);
    env.t.write_service(
        "f.toml",
        &format!(
            "[fs.1]\ndev = \"{}\"\nmnt = \"{}\"\ntype = \"ext4\"\n",
            img.display(),
            mnt.display()
        ),
    );
    let (i, m) = (img.display().to_string(), mnt.display().to_string());
    let mount = || {
        sh(&format!("d=$(losetup --find --show {i}) && e2fsck -p $d >/dev/null && mkdir -p {m} && mount -t ext4 $d {m}")).map(drop)
    };
    let umount = || {
        sh(&format!(
            "umount {m} && losetup -j {i} | cut -d: -f1 | xargs -r -n1 losetup -d"
        ))
        .map(drop)
    };
    let start = measure_pair(
        plan.runs,
        || env.svc(&["f", "start"]).map(drop),
        || env.svc(&["f", "stop"]).map(drop),
        mount,
        umount,
    )?;
    env.svc(&["f", "start"])?;
    // Each reset mounts the fs as the next run expects it: svc's stop gets svc's mount, the
    // shell's umount the shell's.
    let stop = measure_pair(
        plan.runs,
        || env.svc(&["f", "stop"]).map(drop),
        mount,
        umount,
        || env.svc(&["f", "start"]).map(drop),
    )?;
    env.svc(&["f", "stop"])?;
    rows.push(Row::pair(
        "fs start (loop image, e2fsck, mount)",
        &start,
        "floor: losetup + e2fsck -p + mount commands",
    ));
    rows.push(Row::pair(
        "fs stop",
        &stop,
        "floor: umount + losetup -d commands",
    ));

    // A holder that ignores TERM: berth's bounded TERM-then-KILL against a kill -9 + umount.
    let holder = |m: &Path| -> Result<std::process::Child> {
        let c = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
            .current_dir(m)
            .stdin(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(c)
    };
    let mut children = Vec::new();
    let held = measure(
        plan.runs.min(5),
        || {
            env.svc(&["f", "stop"])?;
            Ok(())
        },
        || {
            env.svc(&["f", "start"])?;
            children.push(holder(&mnt)?);
            Ok(())
        },
    );
    // The warm-up ran without a holder; measure() resets before each timed run.
    for mut c in children.drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = env.svc(&["f", "stop"]);
    let held = held?;
    rows.push(Row {
        case: "fs stop, holder ignoring TERM".into(),
        berth: held,
        floor: None,
        ratio: None,
        note: "TERM, grace (stop_timeout/5 = 1 s), KILL, umount".into(),
    });
    Ok(())
}

fn vg_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let env = Env::new()?;
    let img = env.t.path("pv.img");
    std::fs::File::create(&img)?.set_len(64 << 20)?;
    let dev = String::from_utf8(sh(&format!("losetup --find --show {}", img.display()))?.stdout)?
        .trim()
        .to_string();
    let vg = format!("bench{}", std::process::id());
    let cleanup = || {
        let _ = sh(&format!(
            "vgremove -f {vg} >/dev/null 2>&1; pvremove -f {dev} >/dev/null 2>&1; losetup -d {dev}"
        ));
    };
    let result = (|| -> Result<()> {
        sh(&format!("pvcreate -q {dev} && vgcreate -q {vg} {dev}"))?;
        env.t
            .write_service("v.toml", &format!("[vg.1]\nvgname = \"{vg}\"\n"));
        // svc makes its LVM system dir on first use.
        env.svc(&["v", "print", "status"])?;
        // The floors run LVM with the system dir svc made (the host's config plus use_aio=0),
        // so they count LVM commands, not configurations; the `vgs` rows show what the dir saves.
        let system_dir = env.t.run_dir().join("lvm");
        ensure!(
            system_dir.join("lvm.conf").exists(),
            "svc made no {}",
            system_dir.display()
        );
        let lvm = format!(
            "LVM_SUPPRESS_FD_WARNINGS=1 LVM_SYSTEM_DIR={}",
            system_dir.display()
        );
        let up = || {
            sh(&format!("{lvm} vgchange -q --addtag @node1 {vg} >/dev/null && {lvm} vgchange -q -a y {vg} >/dev/null")).map(drop)
        };
        let down = || {
            sh(&format!("{lvm} vgchange -q -a n {vg} >/dev/null && {lvm} vgchange -q --deltag @node1 {vg} >/dev/null")).map(drop)
        };
        let vgs = || {
            sh(&format!(
                "{lvm} vgs --reportformat json -o vg_name,vg_tags {vg} >/dev/null"
            ))
            .map(drop)
        };
        let start = measure_pair(
            plan.runs,
            || env.svc(&["v", "start"]).map(drop),
            || env.svc(&["v", "stop"]).map(drop),
            || {
                vgs()?;
                up()
            },
            down,
        )?;
        // What a start ran before the precheck's report was reused: the precheck's `vgs`, the
        // start's `lvm fullreport`, the two `vgchange`; against the floor, in the same run.
        let before = measure_pair(
            plan.runs,
            || {
                vgs()?;
                sh(&format!("{lvm} {FULLREPORT} {vg} >/dev/null"))?;
                up()
            },
            down,
            || {
                vgs()?;
                up()
            },
            down,
        )?;
        up()?;
        let stop = measure_pair(
            plan.runs,
            || env.svc(&["v", "stop"]).map(drop),
            || env.svc(&["v", "start"]).map(drop),
            || {
                vgs()?;
                down()
            },
            up,
        )?;
        down()?;
        let aio = measure_pair(
            plan.runs,
            vgs,
            none,
            || {
                sh(&format!("LVM_SUPPRESS_FD_WARNINGS=1 vgs --reportformat json -o vg_name,vg_tags {vg} >/dev/null")).map(drop)
            },
            none,
        )?;
        up()?;
        let status = measure_pair(
            plan.runs,
            || env.svc(&["v", "print", "status"]).map(drop),
            none,
            vgs,
            none,
        )?;
        down()?;
        // A VG with an LV (inactive: no device-mapper here): one fullreport against vgs + lvs.
        sh(&format!(
            "{lvm} lvcreate -q --driverloaded n -an -Zn -L 8M -n lv1 {vg} >/dev/null 2>&1"
        ))?;
        let with_lv = measure_pair(
            plan.runs,
            || env.svc(&["v", "print", "status"]).map(drop),
            none,
            || {
                sh(&format!("{lvm} vgs --reportformat json -o vg_name,vg_tags,lv_count {vg} >/dev/null && {lvm} lvs --reportformat json -o lv_name,lv_active_locally {vg} >/dev/null 2>&1")).map(drop)
            },
            none,
        )?;
        rows.push(Row::pair(
            "`svc v print status`, a vg with an LV",
            &with_lv,
            "one `lvm fullreport`; floor: `vgs` + `lvs` (berth's system dir)",
        ));
        rows.push(Row::pair(
            "`vgs` with berth's LVM_SYSTEM_DIR (use_aio = 0)",
            &aio,
            "floor: the same `vgs` with the host's /etc/lvm (its AIO teardown)",
        ));
        rows.push(Row::pair(
            "`svc v print status`, one vg, up",
            &status,
            "floor: one `vgs` with berth's system dir",
        ));
        rows.push(Row::pair(
            "vg start (VG without LV)",
            &start,
            "floor: vgs + vgchange --addtag + vgchange -a y (berth's system dir)",
        ));
        rows.push(Row::pair(
            "vg start's LVM commands before this change (vgs + fullreport + 2 vgchange)",
            &before,
            "the commands alone, as a shell runs them; floor: vgs + vgchange --addtag + vgchange -a y",
        ));
        rows.push(Row::pair(
            "vg stop",
            &stop,
            "floor: vgs + vgchange -a n + vgchange --deltag (berth's system dir)",
        ));
        Ok(())
    })();
    cleanup();
    result
}

/// `svc print status` of 10 services of ip + vg + fs each (10 VGs on loop PVs, untagged; the
/// fs not mounted; the addresses on eth0 of the namespace the caller entered) against the host
/// reads they share: one `lvm fullreport` of the 10 VGs, one address dump, one mount table.
fn many_vgs(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    const N: usize = 10;
    let env = Env::new()?;
    let mut devs = Vec::new();
    let base = format!("benchm{}x", std::process::id());
    let result = (|| -> Result<()> {
        for n in 0..N {
            let img = env.t.path(&format!("pv{n}.img"));
            std::fs::File::create(&img)?.set_len(16 << 20)?;
            let dev =
                String::from_utf8(sh(&format!("losetup --find --show {}", img.display()))?.stdout)?
                    .trim()
                    .to_string();
            devs.push(dev.clone());
            sh(&format!(
                "LVM_SUPPRESS_FD_WARNINGS=1 pvcreate -q {dev} >/dev/null && LVM_SUPPRESS_FD_WARNINGS=1 vgcreate -q {base}{n} {dev} >/dev/null"
            ))?;
            env.t.write_service(
                &format!("m{n:02}.toml"),
                &format!(
                    "[ip.1]\nipname = \"10.77.9.{}\"\nipdev = \"eth0\"\nnetmask = 24\n\
                     [vg.1]\nvgname = \"{base}{n}\"\n\
                     [fs.1]\ndev = \"/dev/{base}{n}/lv\"\nmnt = \"/srv/m{n}\"\ntype = \"ext4\"\n",
                    n + 1
                ),
            );
        }
        env.svc(&["print", "status"])?;
        let lvm = format!(
            "LVM_SUPPRESS_FD_WARNINGS=1 LVM_SYSTEM_DIR={}",
            env.t.run_dir().join("lvm").display()
        );
        let names: Vec<String> = (0..N).map(|n| format!("{base}{n}")).collect();
        let names = names.join(" ");
        let p = measure_pair(
            plan.runs,
            || env.svc(&["print", "status"]).map(drop),
            none,
            || {
                sh(&format!(
                    "{lvm} {FULLREPORT} {names} >/dev/null; ip -o addr show dev eth0 >/dev/null; cat /proc/self/mountinfo >/dev/null"
                ))
                .map(drop)
            },
            none,
        )?;
        rows.push(Row::pair(
            "`svc print status`, 10 services (ip + vg + fs each, 10 VGs)",
            &p,
            "floor: one `lvm fullreport` of the 10 VGs, `ip -o addr show dev eth0`, `cat /proc/self/mountinfo` (one sh)",
        ));
        Ok(())
    })();
    for (n, dev) in devs.iter().enumerate() {
        let _ = sh(&format!(
            "LVM_SUPPRESS_FD_WARNINGS=1 vgremove -f {base}{n} >/dev/null 2>&1; LVM_SUPPRESS_FD_WARNINGS=1 pvremove -f {dev} >/dev/null 2>&1; losetup -d {dev}"
        ));
    }
    result
}

/// Enter `ns` on this thread: every process spawned from here on runs inside it.
fn enter(ns: &Netns) -> Result<()> {
    let f = std::fs::File::open(ns.path())?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
    Ok(())
}

fn ip_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let node = Netns::new("bn");
    let peer = Netns::new("bp");
    veth(&node, "eth0", &peer, "eth1");
    node.exec("ip", &["addr", "add", "10.77.0.1/24", "dev", "eth0"]);
    peer.exec("ip", &["addr", "add", "10.77.0.2/24", "dev", "eth1"]);
    let host = std::fs::File::open("/proc/self/ns/net")?;
    enter(&node)?;
    let result = (|| -> Result<()> {
        let env = Env::new()?;
        env.t.write_service(
            "i.toml",
            "[ip.1]\nipname = \"10.77.0.10\"\nipdev = \"eth0\"\nnetmask = 24\ngarp_count = 0\n",
        );
        env.t.write_service(
            "p.toml",
            "[ip.1]\nipname = \"10.77.0.11\"\nipdev = \"eth0\"\nnetmask = 24\ngarp_count = 0\n",
        );
        let add = || {
            run(Command::new("ip").args(["addr", "add", "10.77.0.12/24", "dev", "eth0"])).map(drop)
        };
        let del = || {
            run(Command::new("ip").args(["addr", "del", "10.77.0.12/24", "dev", "eth0"])).map(drop)
        };
        let start_noprobe = measure_pair(
            plan.runs,
            || env.svc(&["i", "start", "--force"]).map(drop),
            || env.svc(&["i", "stop"]).map(drop),
            add,
            del,
        )?;
        env.svc(&["i", "start", "--force"])?;
        add()?;
        let stop = measure_pair(
            plan.runs,
            || env.svc(&["i", "stop"]).map(drop),
            || env.svc(&["i", "start", "--force"]).map(drop),
            del,
            add,
        )?;
        env.svc(&["i", "stop"])?;
        del()?;
        let start_probe = measure(
            plan.runs,
            || env.svc(&["p", "start"]).map(drop),
            || env.svc(&["p", "stop"]).map(drop),
        )?;
        rows.push(Row::pair(
            "ip start, no probe (--force, no gratuitous ARP)",
            &start_noprobe,
            "floor: `ip addr add` (one process + one netlink request)",
        ));
        rows.push(Row {
            case: "ip start with the ARP probe (300 ms)".into(),
            berth: start_probe,
            floor: Some(start_noprobe.b + Duration::from_millis(300)),
            ratio: None,
            note: "floor: ip addr add + the probe window".into(),
        });
        rows.push(Row::pair("ip stop", &stop, "floor: `ip addr del`"));

        // print status of 50 one-fs services (unmounted) against one read of the mount table.
        let fifty = Env::new()?;
        for n in 0..50 {
            fifty.t.write_service(
                &format!("f{n:02}.toml"),
                &format!(
                    "[fs.1]\ndev = \"/dev/nonexistent{n}\"\nmnt = \"/srv/f{n}\"\ntype = \"ext4\"\n"
                ),
            );
        }
        let t50 = measure_pair(
            plan.runs,
            || fifty.svc(&["print", "status"]).map(drop),
            none,
            || {
                run(Command::new("cat")
                    .arg("/proc/self/mountinfo")
                    .stdout(Stdio::null()))
                .map(drop)
            },
            none,
        )?;
        rows.push(Row::pair(
            "`svc print status`, 50 services (one fs each)",
            &t50,
            "floor: one read of the mount table (`cat /proc/self/mountinfo`)",
        ));
        many_vgs(plan, rows)?;

        // print status of 1000 services of cheap resources: an ip on the veth and an unmounted fs.
        let many = Env::new()?;
        for n in 0..1000 {
            many.t.write_service(
                &format!("s{n:04}.toml"),
                &format!(
                    "[ip.1]\nipname = \"10.77.{}.{}\"\nipdev = \"eth0\"\nnetmask = 16\n[fs.1]\ndev = \"/dev/nonexistent{n}\"\nmnt = \"/srv/b{n}\"\ntype = \"ext4\"\n",
                    1 + n / 250,
                    1 + n % 250
                ),
            );
        }
        let t1000 = measure(
            plan.runs.min(5),
            || many.svc(&["print", "status"]).map(drop),
            || Ok(()),
        )?;
        let json1000 = measure(
            plan.runs.min(5),
            || many.svc(&["--format", "json", "print", "status"]).map(drop),
            || Ok(()),
        )?;
        rows.push(Row {
            case: "`svc print status`, 1000 services (ip + fs each)".into(),
            berth: t1000,
            floor: None,
            ratio: None,
            note: "target <= 1 s".into(),
        });
        rows.push(Row {
            case: "`svc --format json print status`, 1000 services".into(),
            berth: json1000,
            floor: None,
            ratio: None,
            note: "target <= 1 s".into(),
        });
        Ok(())
    })();
    nix::sched::setns(host, nix::sched::CloneFlags::CLONE_NEWNET).context("setns back")?;
    result
}

/// One HTTP/1.0 request to a docker socket; returns the status code and the body.
fn docker_api(sock: &Path, method: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("connect {}", sock.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("bad HTTP answer")?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// A service of one fs (the docker data root) and one container (`sleep`, init as PID 1).
fn docker_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let env = Env::new()?;
    let img = env.t.path("dd.img");
    let data = env.t.path("srv/appdata");
    ext4_image(&img, 256);
    env.t.write_service(
        "d.toml",
        &format!(
            "[service]\ndocker_data_dir = \"{d}\"\n[fs.1]\ndev = \"{i}\"\nmnt = \"{d}\"\ntype = \"ext4\"\n\
             [container.1]\nrun_image = \"busybox:latest\"\nrun_command = \"sleep 1000000\"\n",
            d = data.display(),
            i = img.display()
        ),
    );
    env.svc(&["d", "startfs"])?;
    let result = (|| -> Result<()> {
        env.import_busybox("d")?;
        env.svc(&["d", "stopcontainer"])?; // the import started the daemon: stop it
        let start = measure(
            plan.runs.min(5),
            || env.svc(&["d", "startcontainer"]).map(drop),
            || env.svc(&["d", "stopcontainer"]).map(drop),
        )?;
        env.svc(&["d", "startcontainer"])?;
        let stop = measure(
            plan.runs.min(5),
            || env.svc(&["d", "stopcontainer"]).map(drop),
            || env.svc(&["d", "startcontainer"]).map(drop),
        )?;
        env.svc(&["d", "stopcontainer"])?;

        // The floor: the same dockerd command line, first answer to /_ping, start the same
        // container over the API and wait until it runs; stop it, TERM dockerd, wait for its exit.
        let var = env.t.var_dir().join("d");
        let sock = var.join("docker.sock");
        let exec_root = env.t.run_dir().join("d/docker");
        let pidfile = var.join("docker.pid");
        let spawn_dockerd = || -> Result<std::process::Child> {
            Ok(Command::new("dockerd")
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .arg("--data-root")
                .arg(&data)
                .arg("--exec-root")
                .arg(&exec_root)
                .arg("-p")
                .arg(&pidfile)
                .arg("--config-file")
                .arg(var.join("daemon.json"))
                .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
                .args([
                    "--containerd-namespace=berth-d",
                    "--containerd-plugins-namespace=berth-d-plugins",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?)
        };
        let wait_ping = || -> Result<()> {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(30) {
                if matches!(docker_api(&sock, "GET", "/_ping"), Ok((200, _))) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            bail!("dockerd did not answer within 30 s")
        };
        let name = "d.container.1";
        let mut daemon: Option<std::process::Child> = None;
        let floor_up = |daemon: &mut Option<std::process::Child>| -> Result<()> {
            *daemon = Some(spawn_dockerd()?);
            wait_ping()?;
            let (code, body) = docker_api(&sock, "POST", &format!("/containers/{name}/start"))?;
            ensure!(code == 204 || code == 304, "start: {code} {body}");
            loop {
                let (_, body) = docker_api(&sock, "GET", &format!("/containers/{name}/json"))?;
                if body.contains("\"Running\":true") {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        let floor_down = |daemon: &mut Option<std::process::Child>| -> Result<()> {
            let (code, body) = docker_api(&sock, "POST", &format!("/containers/{name}/stop?t=10"))?;
            ensure!(code == 204 || code == 304, "stop: {code} {body}");
            if let Some(mut d) = daemon.take() {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(d.id())?),
                    nix::sys::signal::Signal::SIGTERM,
                )?;
                d.wait()?;
            }
            Ok(())
        };
        let cell = std::cell::RefCell::new(&mut daemon);
        let floor_start = measure(
            plan.runs.min(5),
            || floor_up(&mut cell.borrow_mut()),
            || floor_down(&mut cell.borrow_mut()),
        )?;
        floor_up(&mut cell.borrow_mut())?;
        let floor_stop = measure(
            plan.runs.min(5),
            || floor_down(&mut cell.borrow_mut()),
            || floor_up(&mut cell.borrow_mut()),
        )?;
        rows.push(Row {
            case: "docker: dockerd + 1 container start".into(),
            berth: start,
            floor: Some(floor_start),
            ratio: None,
            note: "floor: dockerd to first /_ping + container start over the API".into(),
        });
        rows.push(Row {
            case: "docker: container + dockerd stop".into(),
            berth: stop,
            floor: Some(floor_stop),
            ratio: None,
            note: "floor: container stop over the API + dockerd TERM to exit".into(),
        });
        Ok(())
    })();
    let _ = env.svc(&["d", "stop"]);
    result
}

/// `svc web print status` while svcd runs (its tree over the local socket) and its floor, a
/// `curl` of the same answer; svcd is started here and killed after.
fn via_svcd(env: &Env, plan: &Plan) -> Result<(Duration, Duration)> {
    let svcd = env.svc.with_file_name("svcd");
    ensure!(
        svcd.exists(),
        "{} not found: build -p berth-agent",
        svcd.display()
    );
    std::fs::write(
        env.t.config_dir().join("node.toml"),
        "listen = \"127.0.0.1:0\"\nmonitor_interval = \"1h\"\n",
    )?;
    let mut child = Command::new(&svcd)
        .env("BERTH_CONFIG_DIR", env.t.config_dir())
        .env("BERTH_VAR_DIR", env.t.var_dir())
        .env("BERTH_RUN_DIR", env.t.run_dir())
        .env("BERTH_NODENAME", "node1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start svcd")?;
    let socket = env.t.run_dir().join("svcd.sock");
    let result = (|| -> Result<(Duration, Duration)> {
        let began = Instant::now();
        loop {
            let out = env.svc(&["web", "print", "status"])?;
            if String::from_utf8_lossy(&out.stdout).starts_with("# from svcd") {
                break;
            }
            ensure!(
                began.elapsed() < Duration::from_secs(30),
                "svcd's tree not served after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let berth = measure(
            plan.runs,
            || env.svc(&["web", "print", "status"]).map(drop),
            || Ok(()),
        )?;
        let url = "http://svcd/status/web".to_string();
        let floor = measure(
            plan.runs,
            || {
                run(Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", "--unix-socket"])
                    .arg(&socket)
                    .arg(&url))
                .map(drop)
            },
            || Ok(()),
        )?;
        Ok((berth, floor))
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(env.t.config_dir().join("node.toml"));
    result
}

/// `svc SVC print status` (a cold process) of a service of ip + vg + fs + container, all up and
/// all down.
fn print_status_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let node = Netns::new("bs");
    let peer = Netns::new("bq");
    veth(&node, "eth0", &peer, "eth1");
    node.exec("ip", &["addr", "add", "10.78.0.1/24", "dev", "eth0"]);
    let host = std::fs::File::open("/proc/self/ns/net")?;
    enter(&node)?;
    let result = print_status_in_ns(plan, rows);
    nix::sched::setns(host, nix::sched::CloneFlags::CLONE_NEWNET).context("setns back")?;
    result
}

/// [`print_status_case`] inside the node namespace.
fn print_status_in_ns(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let env = Env::new()?;
    let pv = env.t.path("pv.img");
    std::fs::File::create(&pv)?.set_len(64 << 20)?;
    let dev = String::from_utf8(sh(&format!("losetup --find --show {}", pv.display()))?.stdout)?
        .trim()
        .to_string();
    let vg = format!("benchps{}", std::process::id());
    let result = (|| -> Result<()> {
        sh(&format!("pvcreate -q {dev} && vgcreate -q {vg} {dev}"))?;
        let img = env.t.path("fs.img");
        let data = env.t.path("srv/appdata");
        ext4_image(&img, 256);
        env.t.write_service(
            "web.toml",
            &format!(
                "[service]\ndocker_data_dir = \"{d}\"\n[ip.1]\nipname = \"10.78.0.10\"\nipdev = \"eth0\"\nnetmask = 24\n\
                 [vg.1]\nvgname = \"{vg}\"\n[fs.1]\ndev = \"{i}\"\nmnt = \"{d}\"\ntype = \"ext4\"\n\
                 [container.1]\nrun_image = \"busybox:latest\"\nrun_command = \"sleep 1000000\"\n",
                d = data.display(),
                i = img.display()
            ),
        );
        let down = measure(
            plan.runs,
            || env.svc(&["web", "print", "status"]).map(drop),
            || Ok(()),
        )?;
        env.svc(&["web", "startfs"])?;
        env.import_busybox("web")?;
        env.svc(&["web", "start"])?;
        let st = env.svc(&["web", "print", "status"])?;
        let text = String::from_utf8_lossy(&st.stdout).to_string();
        ensure!(
            text.contains("overall                   up"),
            "not all up:\n{text}"
        );
        let up = measure(
            plan.runs,
            || env.svc(&["web", "print", "status"]).map(drop),
            || Ok(()),
        )?;
        let json_up = measure(
            plan.runs,
            || {
                env.svc(&["--format", "json", "web", "print", "status"])
                    .map(drop)
            },
            || Ok(()),
        )?;
        let agent = via_svcd(&env, plan)?;
        // ip + vg + fs (the same resources, no container) against the host reads an operator
        // would make: the LVM report, the device's addresses, the mount table.
        env.t.write_service(
            "ivf.toml",
            &format!(
                "[ip.1]\nipname = \"10.78.0.10\"\nipdev = \"eth0\"\nnetmask = 24\n\
                 [vg.1]\nvgname = \"{vg}\"\n[fs.1]\ndev = \"{i}\"\nmnt = \"{d}\"\ntype = \"ext4\"\n",
                d = data.display(),
                i = img.display()
            ),
        );
        let lvm = format!(
            "LVM_SUPPRESS_FD_WARNINGS=1 LVM_SYSTEM_DIR={}",
            env.t.run_dir().join("lvm").display()
        );
        let report = format!("{lvm} {FULLREPORT}");
        let ivf = measure_pair(
            plan.runs,
            || env.svc(&["ivf", "print", "status"]).map(drop),
            none,
            || {
                sh(&format!(
                    "{report} {vg} >/dev/null; ip -o addr show dev eth0 >/dev/null; cat /proc/self/mountinfo >/dev/null"
                ))
                .map(drop)
            },
            none,
        )?;
        let ivf_lvm = measure_pair(
            plan.runs,
            || env.svc(&["ivf", "print", "status"]).map(drop),
            none,
            || {
                let mut words = FULLREPORT.split_whitespace();
                let mut cmd = Command::new(words.next().unwrap_or("lvm"));
                cmd.args(words)
                    .arg(&vg)
                    .env("LVM_SUPPRESS_FD_WARNINGS", "1")
                    .env("LVM_SYSTEM_DIR", env.t.run_dir().join("lvm"));
                run(&mut cmd).map(drop)
            },
            none,
        )?;
        rows.push(Row::pair(
            "`svc ivf print status`, ip+vg+fs all up",
            &ivf,
            "floor: `lvm fullreport VG`, `ip -o addr show dev eth0`, `cat /proc/self/mountinfo` (one sh)",
        ));
        rows.push(Row::pair(
            "`svc ivf print status`, ip+vg+fs all up, against its LVM command",
            &ivf_lvm,
            "floor: the one `lvm fullreport VG` berth runs (its system dir); target <= 20 ms",
        ));
        rows.push(Row {
            case: "`svc web print status`, ip+vg+fs+container all down".into(),
            berth: down,
            floor: None,
            ratio: None,
            note: "cold process; target <= 20 ms".into(),
        });
        rows.push(Row {
            case: "`svc web print status`, ip+vg+fs+container all up".into(),
            berth: up,
            floor: None,
            ratio: None,
            note: "cold process; target <= 20 ms".into(),
        });
        rows.push(Row {
            case: "`svc --format json web print status`, all up".into(),
            berth: json_up,
            floor: None,
            ratio: None,
            note: "adds the chargeback (sizes the data root)".into(),
        });
        rows.push(Row {
            case: "`svc web print status` through svcd (its cached tree), all up".into(),
            berth: agent.0,
            floor: Some(agent.1),
            ratio: None,
            note: "floor: `curl --unix-socket <run>/svcd.sock .../status/web`; target <= 5 ms"
                .into(),
        });
        Ok(())
    })();
    let _ = env.svc(&["web", "stop"]);
    let _ = sh(&format!(
        "vgremove -f {vg} >/dev/null 2>&1; pvremove -f {dev} >/dev/null 2>&1; losetup -d {dev}"
    ));
    result
}

/// A private registry (Debian's binary, scripts/registry-image.sh) in a namespace of its own, a
/// 1-layer busybox image pushed to it, and a service that lacks it: the pull of its start (the
/// time berth logs) against `docker pull` of the same image on the same dockerd, in turn; and
/// the whole start (pull, create, start) with the dockerd already running.
fn registry_case(plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    use berth_testkit::registry::{RegistryNet, fetch_registry_deb};
    let env = Env::new()?;
    let net = RegistryNet::new();
    net.add_address();
    let addr = net.addr.clone();
    let svc = env.svc.to_str().context("utf-8 path")?.to_string();
    let in_ns = |args: &[&str]| run(net.svc(&env.t, &svc).args(args));
    let image = format!("{addr}:5000/app:1");
    let consumer = format!(
        "[service]\ndocker_registries = [\"{addr}:5000\"]\n[container.1]\nrun_image = \"{image}\"\n\
         run_command = \"sleep 1000000\"\n"
    );
    env.t.write_service(
        "reg.toml",
        &format!(
            "[container.1]\nrun_image = \"registry:2\"\nports = [\"{addr}:5000:5000\"]\n\
             volumes = [\"{}:/var/lib/registry\"]\n",
            env.t.path("regdata").display()
        ),
    );
    env.t.write_service("build.toml", &consumer);
    env.t.write_service("app.toml", &consumer);
    let deb = env.t.path("deb");
    fetch_registry_deb(&deb);
    let result = (|| -> Result<()> {
        net.import_registry_image(&env.t, &svc, "reg", &deb);
        in_ns(&["reg", "start"])?;
        net.wait_registry(5000);
        let tar = berth_testkit::busybox_tar(&env.t.path("rootfs"));
        let out = berth_testkit::output_with_stdin(
            net.svc(&env.t, &svc)
                .args(["build", "docker", "import", "-", &image]),
            &tar,
        );
        ensure!(
            out.status.success(),
            "import: {}",
            berth_testkit::describe(&out)
        );
        in_ns(&["build", "docker", "push", &image])?;
        in_ns(&["build", "stop"])?;
        // The app's dockerd runs from here on: each run removes the container and the image.
        let app_docker = |args: &[&str]| {
            let mut all = vec!["app", "docker"];
            all.extend_from_slice(args);
            in_ns(&all).map(drop)
        };
        let forget = || {
            let _ = net
                .svc(&env.t, &svc)
                .args(["app", "docker", "rm", "-f", "app.container.1"])
                .output();
            app_docker(&["rmi", &image])
        };
        in_ns(&["app", "start"])?;
        forget()?;
        let logged = std::cell::RefCell::new(Vec::new());
        let pull = measure_pair(
            plan.runs.min(5),
            || {
                let out = in_ns(&["app", "start"])?;
                let err = String::from_utf8_lossy(&out.stderr);
                let secs = err
                    .split(&format!("pulled image {image} in "))
                    .nth(1)
                    .and_then(|r| r.split('s').next())
                    .context("no pull time in the start's log")?;
                logged
                    .borrow_mut()
                    .push(Duration::from_secs_f64(secs.trim().parse()?));
                Ok(())
            },
            forget,
            || {
                // The docker CLI alone, on the same dockerd (no svc around it).
                let sock = env.t.var_dir().join("app/docker.sock");
                run(net
                    .ns
                    .netns_command("docker")
                    .arg("-H")
                    .arg(format!("unix://{}", sock.display()))
                    .args(["pull", "-q", &image]))
                .map(drop)
            },
            || app_docker(&["rmi", &image]),
        )?;
        let whole = measure(
            plan.runs.min(5),
            || in_ns(&["app", "start"]).map(drop),
            forget,
        )?;
        rows.push(Row::pair(
            "registry: `svc app start` lacking its image, dockerd running",
            &pull,
            "pull + create + start; floor: `docker -H <app's socket> pull IMAGE` (the pull alone, same dockerd)",
        ));
        rows.push(Row {
            case: "registry: the pull alone, as the start logs it".into(),
            // The warm-up run left out.
            berth: median(logged.take().split_off(1)),
            floor: Some(pull.b),
            ratio: None,
            note: "floor: `docker -H <app's socket> pull IMAGE`, the same run".into(),
        });
        rows.push(Row {
            case: "registry: `svc app start` lacking its image (again, alone)".into(),
            berth: whole,
            floor: None,
            ratio: None,
            note: "1-layer busybox image, 2.2 MB, over a veth address".into(),
        });
        Ok(())
    })();
    for s in ["app", "build", "reg"] {
        let _ = net.svc(&env.t, &svc).args([s, "stop"]).output();
    }
    result
}

fn main() -> Result<()> {
    require_root();
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("--runs N")?
        .unwrap_or(11);
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let plan = Plan { runs };
    let mut rows = Vec::new();
    let cases: [(&str, Case); 6] = [
        ("print status", print_status_case),
        ("fs", fs_case),
        ("vg", vg_case),
        ("ip", ip_case),
        ("docker", docker_case),
        ("registry", registry_case),
    ];
    // `--case NAME`: that case alone.
    let only = std::env::args().skip_while(|a| a != "--case").nth(1);
    let mut failed = Vec::new();
    for (name, case) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        eprintln!("berth-bench: {name}...");
        if let Err(e) = case(&plan, &mut rows) {
            eprintln!("berth-bench: case {name} failed: {e:#}");
            failed.push(name);
        }
    }
    println!("| case | berth median | floor median (same run) | ratio | note |");
    println!("| --- | --- | --- | --- | --- |");
    for r in &rows {
        let (floor, ratio) = match r.floor {
            Some(f) => (
                ms(f),
                format!(
                    "{:.2}",
                    r.ratio
                        .unwrap_or_else(|| r.berth.as_secs_f64() / f.as_secs_f64())
                ),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            r.case,
            ms(r.berth),
            floor,
            ratio,
            r.note
        );
    }
    println!(
        "\nmedian of {runs} runs after one warm-up; berth runs are `svc` processes (release build); \
         rows with a floor ran berth and the floor in turn, their ratio is the median of the \
         run-by-run ratios"
    );
    ensure!(failed.is_empty(), "cases failed: {}", failed.join(", "));
    Ok(())
}
