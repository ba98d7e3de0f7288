//! The fencing watchdog: a small process svcd starts when it joins a cluster, which outlives
//! svcd. svcd writes `<var>/cluster.ack` at every lease renewal etcd acknowledged (the lease, the
//! renewal's send time on the monotonic clock, the TTL, its pid). Whenever that renewal is older
//! than two thirds of the TTL (svcd's own fencing point), the watchdog stops every service that
//! runs on this node, before the lease
//! can expire anywhere. So a node whose svcd died (or hangs) still fences itself: nothing runs
//! here once another node may take the services over.
//!
//! A restarted svcd resumes its lease (see `berth_cluster::lease`) and keeps writing the same
//! file: the watchdog then sees fresh renewals and does nothing. One watchdog per var dir (an
//! exclusive lock); it exits once svcd is gone and nothing is left running.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_engine::load::load_all;
use berth_engine::{ActionOptions, Engine};
use berth_model::Status;
use berth_model::order::Action;
use berth_model::paths::Paths;
use tracing::{error, info, warn};

/// The renewal record svcd writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The lease.
    pub lease: i64,
    /// The acknowledged renewal's send time, CLOCK_MONOTONIC nanoseconds.
    pub mono_ns: u64,
    /// The lease's TTL.
    pub ttl: Duration,
    /// svcd's pid.
    pub pid: u32,
}

/// `<var>/cluster.ack`.
pub fn ack_path(paths: &Paths) -> PathBuf {
    paths.var_dir.join("cluster.ack")
}

/// CLOCK_MONOTONIC now, in nanoseconds (the same clock across processes of one boot).
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    })
}

impl Ack {
    /// The file's text.
    pub fn encode(&self) -> String {
        format!(
            "{:x} {} {} {}\n",
            self.lease,
            self.mono_ns,
            self.ttl.as_millis(),
            self.pid
        )
    }

    /// Read back; `None` when malformed.
    pub fn decode(text: &str) -> Option<Ack> {
        let mut w = text.split_whitespace();
        Some(Ack {
            lease: i64::from_str_radix(w.next()?, 16).ok()?,
            mono_ns: w.next()?.parse().ok()?,
            ttl: Duration::from_millis(w.next()?.parse().ok()?),
            pid: w.next()?.parse().ok()?,
        })
    }

    /// Write it atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension(format!("ack.{}", std::process::id()));
        let mut f = File::create(&tmp)?;
        f.write_all(self.encode().as_bytes())?;
        std::fs::rename(&tmp, path)
    }

    /// How old the renewal is at `now_ns`.
    pub fn age(&self, now_ns: u64) -> Duration {
        Duration::from_nanos(now_ns.saturating_sub(self.mono_ns))
    }
}

/// What the watchdog does at a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The renewal is fresh (or there is none yet): nothing.
    Wait,
    /// The renewal is older than 2/3 of the TTL: stop the services now.
    Fence,
    /// Fenced already and svcd is gone: nothing more to watch.
    Exit,
}

/// The decision for `ack` at `now_ns`, given whether svcd lives and whether this lease was
/// already fenced.
pub fn decide(ack: Option<Ack>, now_ns: u64, svcd_alive: bool, fenced: Option<i64>) -> Decision {
    let Some(ack) = ack else {
        return if svcd_alive {
            Decision::Wait
        } else {
            Decision::Exit
        };
    };
    if ack.age(now_ns) < ack.ttl * 2 / 3 {
        return Decision::Wait;
    }
    if fenced == Some(ack.lease) {
        return if svcd_alive {
            Decision::Wait
        } else {
            Decision::Exit
        };
    }
    Decision::Fence
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0: does the process exist? A zombie counts as gone.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
}

/// Run the watchdog for `paths` until svcd is gone and nothing was left to stop. Returns at
/// once when another watchdog holds the var dir.
pub fn run(paths: &Paths, nodename: &str) {
    let lock_path = paths.var_dir.join("cluster.watchdog.lock");
    let Ok(lock) = File::create(&lock_path) else {
        error!("watchdog: cannot create {}", lock_path.display());
        return;
    };
    // Held until the watchdog returns.
    let Ok(_lock) = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
    else {
        return;
    };
    let _ = nix::unistd::setsid();
    info!(
        "watchdog for {} (node {nodename}) started",
        paths.var_dir.display()
    );
    let ack_file = ack_path(paths);
    let mut fenced: Option<i64> = None;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let ack = std::fs::read_to_string(&ack_file)
            .ok()
            .and_then(|t| Ack::decode(&t));
        let svcd_alive = ack.is_some_and(|a| alive(a.pid));
        match decide(ack, mono_ns(), svcd_alive, fenced) {
            Decision::Wait => {}
            Decision::Exit => {
                info!("watchdog: svcd is gone and nothing is left running: exiting");
                return;
            }
            Decision::Fence => {
                let Some(ack) = ack else { continue };
                let left = ack.ttl.saturating_sub(ack.age(mono_ns()));
                let why = format!(
                    "lease {:x} not renewed for {}ms (svcd pid {} {}): stopping this node's \
                     services before the lease can expire ({}ms left)",
                    ack.lease,
                    ack.age(mono_ns()).as_millis(),
                    ack.pid,
                    if svcd_alive { "alive" } else { "gone" },
                    left.as_millis()
                );
                error!("watchdog: {why}");
                fence(paths, nodename, left, &why);
                fenced = Some(ack.lease);
            }
        }
    }
}

/// Stop every service that is not down here, fast (no graceful waits).
fn fence(paths: &Paths, nodename: &str, left: Duration, why: &str) {
    let all = match load_all(paths) {
        Ok(all) => all,
        Err(e) => {
            error!("watchdog: {e}");
            return;
        }
    };
    let engine = Engine::new(&berth_drivers::HOST, paths, nodename);
    for (name, loaded) in all {
        let Ok(cfg) = loaded else { continue };
        let st = engine.status(&cfg);
        // Standby resources alone are no run of the service (a stop leaves them up anyway).
        if matches!(
            st.avail,
            Status::Down | Status::NotApplicable | Status::StdbyUp | Status::StdbyDown
        ) {
            continue;
        }
        let fast = cfg.fast_stop();
        let opts = ActionOptions {
            waitlock: left.max(Duration::from_millis(200)),
            ..ActionOptions::default()
        };
        let origin = crate::worker::origin::WATCHDOG;
        crate::worker::note(
            paths,
            &name,
            None,
            tracing::Level::WARN,
            origin,
            &format!("stop on {nodename} (self-fencing): {why}"),
        );
        let _s = tracing::info_span!("service", svc = %name, origin = origin).entered();
        match engine.run(&fast, Action::Stop, &opts) {
            Ok(_) => {
                warn!("watchdog: {name} stopped (self-fencing)");
                crate::worker::note(
                    paths,
                    &name,
                    None,
                    tracing::Level::INFO,
                    origin,
                    "stop done",
                );
            }
            Err(e) => {
                error!("watchdog: {name}: stop failed: {e}");
                crate::worker::note(
                    paths,
                    &name,
                    None,
                    tracing::Level::ERROR,
                    origin,
                    &format!("stop failed: {e}"),
                );
            }
        }
    }
}

/// Start the watchdog for this svcd: `<svcd> --fence-watchdog` with the same directories, in a
/// session of its own so it outlives svcd. Its lines go to `<var>/watchdog.log`.
pub fn spawn(paths: &Paths) {
    let Ok(exe) = std::env::current_exe() else {
        error!("cannot find svcd's own executable: no fencing watchdog");
        return;
    };
    let log = paths.var_dir.join("watchdog.log");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--fence-watchdog")
        .arg("--config-dir")
        .arg(&paths.config_dir)
        .arg("--var-dir")
        .arg(&paths.var_dir)
        .arg("--run-dir")
        .arg(&paths.run_dir)
        .stdin(std::process::Stdio::null())
        .env_remove("NOTIFY_SOCKET");
    if let Ok(f) = out {
        if let Ok(f2) = f.as_fd().try_clone_to_owned() {
            cmd.stdout(File::from(f2));
        }
        cmd.stderr(f);
    }
    match cmd.spawn() {
        Ok(child) => info!("fencing watchdog pid {}", child.id()),
        Err(e) => error!("cannot start the fencing watchdog: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(age_ms: u64, lease: i64) -> (Option<Ack>, u64) {
        let now = 100_000_000_000;
        (
            Some(Ack {
                lease,
                mono_ns: now - age_ms * 1_000_000,
                ttl: Duration::from_secs(4),
                pid: 1,
            }),
            now,
        )
    }

    #[test]
    fn fences_past_half_the_ttl_once_per_lease() {
        let (a, now) = ack(1000, 7);
        assert_eq!(decide(a, now, true, None), Decision::Wait);
        let (a, now) = ack(2700, 7);
        assert_eq!(decide(a, now, true, None), Decision::Fence);
        assert_eq!(decide(a, now, false, None), Decision::Fence);
        assert_eq!(decide(a, now, true, Some(7)), Decision::Wait);
        assert_eq!(decide(a, now, false, Some(7)), Decision::Exit);
        // A new lease (svcd rejoined) that goes stale is fenced again.
        let (a, now) = ack(2700, 8);
        assert_eq!(decide(a, now, true, Some(7)), Decision::Fence);
        assert_eq!(decide(None, now, true, None), Decision::Wait);
        assert_eq!(decide(None, now, false, None), Decision::Exit);
    }

    #[test]
    fn ack_round_trip() {
        let a = Ack {
            lease: 0x65ba_a231,
            mono_ns: 123_456_789,
            ttl: Duration::from_secs(3),
            pid: 42,
        };
        assert_eq!(Ack::decode(&a.encode()), Some(a));
        assert_eq!(Ack::decode("zz 1 2 3"), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.ack");
        a.write(&p).unwrap();
        assert_eq!(Ack::decode(&std::fs::read_to_string(&p).unwrap()), Some(a));
    }
}
