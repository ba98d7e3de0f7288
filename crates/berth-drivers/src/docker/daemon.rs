//! A service's private dockerd: where it keeps its files, how it is started (detached, so it
//! outlives the CLI), found again (pidfile, socket), and shut down (TERM, bounded wait, KILL).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_model::config::Spec;
use berth_model::paths::MAX_SOCKET_PATH;
use berth_model::status::Status;
use bollard::query_parameters::ListContainersOptionsBuilder;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use super::api::{Api, PING, REQUEST};
use super::host::{self, ProcHandle};
use crate::{Ctx, DriverError};

/// How long a starting dockerd may take to answer (restoring containers left running by a
/// crash takes their stop timeout).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to exit after TERM before it is killed.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the daemon lock held by another berth process.
const LOCK_TIMEOUT: Duration = Duration::from_secs(90);
/// Poll interval.
const POLL: Duration = Duration::from_millis(20);
/// The longest path dockerd puts under its exec root: `containerd/containerd.sock.ttrpc`.
const EXEC_ROOT_SOCKET_SUFFIX: usize = "/containerd/containerd.sock.ttrpc".len();

/// The flags that keep several private daemons from colliding on one host.
pub const DEFAULT_FLAGS: &[&str] = &["--bridge=none", "--iptables=false", "--ip-masq=false"];

/// A service's private dockerd.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    /// The service.
    pub svc: String,
    /// `<var>/<svc>/docker.sock`.
    pub socket: PathBuf,
    /// `<var>/<svc>/docker.pid`.
    pub pidfile: PathBuf,
    /// `<run>/<svc>/docker`.
    pub exec_root: PathBuf,
    /// `docker_data_dir`, default `<var>/<svc>/docker`.
    pub data_root: PathBuf,
    /// `<var>/<svc>/dockerd.log`: the daemon's stdout and stderr.
    pub log: PathBuf,
    /// `<var>/<svc>/daemon.json`: the daemon's own config file (`{}` unless edited), so the
    /// host's `/etc/docker/daemon.json` does not leak in.
    pub config_file: PathBuf,
    /// `<var>/<svc>/docker.lock`: serialises starting and stopping the daemon.
    pub lock_file: PathBuf,
    /// `docker_daemon_args`.
    pub extra_args: Vec<String>,
}

/// What a look at the daemon found.
#[derive(Debug)]
pub(crate) enum Probe {
    /// It answers on its socket.
    Running(Api),
    /// Its process lives but does not answer (starting, or hung).
    Silent(i32),
    /// Not running.
    Down,
}

/// A container whose daemon is gone, still running under its containerd shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Orphan {
    /// The container id.
    pub id: String,
    /// The image it was created from, as named then.
    pub image: String,
    /// Its process (the shim's child), when found.
    pub process: Option<i32>,
    /// The shim's pid.
    pub shim: i32,
}

/// The daemon lock; released on drop.
#[derive(Debug)]
pub(crate) struct DaemonLock(#[allow(dead_code)] Flock<File>);

impl Daemon {
    /// The daemon of the service `ctx` runs for.
    pub(crate) fn new(ctx: &Ctx<'_>) -> Daemon {
        let svc = ctx.svc.name.clone();
        let p = ctx.paths;
        let var = p.service_var(&svc);
        Daemon {
            socket: p.docker_socket(&svc),
            pidfile: p.docker_pidfile(&svc),
            exec_root: p.docker_exec_root(&svc),
            data_root: ctx.svc.docker_data_dir(&p.var_dir),
            log: var.join("dockerd.log"),
            config_file: var.join("daemon.json"),
            lock_file: var.join("docker.lock"),
            extra_args: ctx.svc.settings.docker_daemon_args.clone(),
            svc,
        }
    }

    /// `unix://<socket>`, for `-H`.
    pub(crate) fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Refuse paths a unix socket address cannot hold.
    pub(crate) fn check_paths(&self) -> Result<(), DriverError> {
        let sock = self.socket.as_os_str().len();
        if sock > MAX_SOCKET_PATH {
            return Err(DriverError::Refused(format!(
                "docker socket path {} is {sock} bytes, more than the {MAX_SOCKET_PATH} a unix \
                 socket takes: use a shorter var dir",
                self.socket.display()
            )));
        }
        let exec = self.exec_root.as_os_str().len() + EXEC_ROOT_SOCKET_SUFFIX;
        if exec > MAX_SOCKET_PATH {
            return Err(DriverError::Refused(format!(
                "docker exec root {} is too long for the sockets dockerd puts under it \
                 ({exec} bytes, at most {MAX_SOCKET_PATH}): use a shorter run dir",
                self.exec_root.display()
            )));
        }
        Ok(())
    }

    /// The containerd namespace: `berth-<svc>` with separators containerd accepts.
    fn namespace(&self) -> String {
        let words: Vec<&str> = self
            .svc
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        format!("berth-{}", words.join("-"))
    }

    /// The dockerd command line (without the program name).
    pub(crate) fn args(&self) -> Vec<String> {
        let ns = self.namespace();
        let mut a: Vec<String> = vec![
            "-H".into(),
            self.host(),
            "--data-root".into(),
            self.data_root.display().to_string(),
            "--exec-root".into(),
            self.exec_root.display().to_string(),
            "-p".into(),
            self.pidfile.display().to_string(),
            "--config-file".into(),
            self.config_file.display().to_string(),
        ];
        a.extend(DEFAULT_FLAGS.iter().map(|s| s.to_string()));
        // Only matters when dockerd uses a system containerd instead of its own.
        a.push(format!("--containerd-namespace={ns}"));
        a.push(format!("--containerd-plugins-namespace={ns}-plugins"));
        a.extend(self.extra_args.iter().cloned());
        a
    }

    /// A client for the socket (no request sent).
    pub(crate) fn api(&self) -> Result<Api, DriverError> {
        Api::new(&self.socket)
    }

    /// The pid of the daemon: the pidfile's when that process is this service's dockerd
    /// ([`Daemon::is_ours`]) and not younger than the pidfile, else a dockerd started for this
    /// service found in `/proc`: one whose pidfile was removed by hand, or one still starting
    /// (it has written neither its pidfile nor its socket yet, and a second one must not be
    /// spawned beside it). A pidfile naming any other process is stale: never ours to signal.
    pub(crate) fn pid(&self) -> Option<i32> {
        if let Some(pid) = self.pidfile_pid()
            && host::proc_of(pid).is_some_and(|p| self.is_ours(&p) && self.pidfile_not_older(&p))
        {
            return Some(pid);
        }
        host::all_procs()
            .into_iter()
            .find(|p| self.is_ours(p))
            .map(|p| p.pid)
    }

    /// Whether `p` is this service's dockerd: a live `dockerd` whose command line names this
    /// daemon's socket (`-H unix://SOCK`) or pidfile (`-p PIDFILE`). After a reboot a pidfile
    /// may hold the pid of anything, another service's dockerd included.
    pub(crate) fn is_ours(&self, p: &host::Proc) -> bool {
        if p.comm != "dockerd" || matches!(p.state, 'Z' | 'X' | 'x') {
            return false;
        }
        let host = self.host();
        let pidfile = self.pidfile.display().to_string();
        let words = host::cmdline(p.pid);
        let pair = |w: &[String]| {
            (matches!(w[0].as_str(), "-H" | "--host") && w[1] == host)
                || (matches!(w[0].as_str(), "-p" | "--pidfile") && w[1] == pidfile)
        };
        let joined = |w: &String| {
            w.split_once('=').is_some_and(|(flag, v)| {
                (matches!(flag, "-H" | "--host") && v == host)
                    || (matches!(flag, "-p" | "--pidfile") && v == pidfile)
            })
        };
        words.windows(2).any(pair) || words.iter().any(joined)
    }

    /// Whether the pidfile is not older than `p`: dockerd writes it after it starts, so a
    /// process started after the file was written (a reused pid) did not write it. Two seconds
    /// of slack for the boot time's whole seconds and clock ticks.
    fn pidfile_not_older(&self, p: &host::Proc) -> bool {
        let Ok(written) = std::fs::metadata(&self.pidfile).and_then(|m| m.modified()) else {
            return false;
        };
        match started_at(p) {
            Some(started) => written + Duration::from_secs(2) >= started,
            None => true,
        }
    }

    fn pidfile_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the daemon runs, answers, or neither. Sends at most one ping.
    pub(crate) fn probe(&self) -> Result<Probe, DriverError> {
        self.check_paths()?;
        if self.socket.exists() {
            let api = self.api()?;
            if api.ping(PING) {
                return Ok(Probe::Running(api));
            }
        }
        Ok(match self.pid() {
            Some(pid) => Probe::Silent(pid),
            None => Probe::Down,
        })
    }

    /// Take the daemon lock, waiting for another berth process that holds it (bounded).
    pub(crate) fn lock(&self) -> Result<DaemonLock, DriverError> {
        if let Some(dir) = self.lock_file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
        }
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.lock_file)
                .map_err(|e| DriverError::io(format!("open {}", self.lock_file.display()), e))
        };
        let started = Instant::now();
        let mut file = open()?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(DaemonLock(l)),
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if started.elapsed() < LOCK_TIMEOUT => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(DriverError::Timeout {
                        what: format!(
                            "waiting for the docker daemon lock {}",
                            self.lock_file.display()
                        ),
                        secs: LOCK_TIMEOUT.as_secs_f64(),
                    });
                }
                Err((_, e)) => {
                    return Err(DriverError::io(
                        format!("lock {}", self.lock_file.display()),
                        std::io::Error::from(e),
                    ));
                }
            }
        }
    }

    /// A running, answering daemon: the one found, or a new one started now when allowed by the
    /// fs holding the data root. Returns whether this call started it.
    pub(crate) fn ensure(&self, ctx: &Ctx<'_>) -> Result<(Api, bool), DriverError> {
        self.check_paths()?;
        if let Probe::Running(api) = self.probe()? {
            return Ok((api, false));
        }
        let _lock = self.lock()?;
        match self.probe()? {
            Probe::Running(api) => Ok((api, false)),
            Probe::Silent(pid) => {
                // Starting (another berth process, maybe killed since) or hung: give it the
                // start bound. Never a second daemon beside it: it would find the pidfile.
                info!(
                    "docker daemon pid {pid} of {} is starting or does not answer: wait up to {}s                      for it",
                    self.svc,
                    START_TIMEOUT.as_secs()
                );
                let started = Instant::now();
                let mut api = None;
                while started.elapsed() < START_TIMEOUT {
                    if !host::alive(pid) {
                        break;
                    }
                    if let Some(api) = self.answering(&mut api, PING)? {
                        return Ok((api, false));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(DriverError::Refused(format!(
                    "docker daemon pid {pid} of {} does not answer on {} (see {})",
                    self.svc,
                    self.socket.display(),
                    self.log.display()
                )))
            }
            Probe::Down => {
                check_data_fs(ctx, &self.data_root)?;
                self.clean_stale()?;
                super::registry::prepare(ctx, &self.config_file)?;
                let api = self.spawn()?;
                Ok((api, true))
            }
        }
    }

    /// Remove what a dead daemon left: its pidfile, its socket, its data root bind mount.
    pub(crate) fn clean_stale(&self) -> Result<bool, DriverError> {
        let mut cleaned = false;
        if let Some(pid) = self.pidfile_pid() {
            // Never signalled: a live pid here is not this service's daemon (see `pid`).
            let why = if host::alive(pid) {
                "is not this service's docker daemon: left alone"
            } else {
                "is not running"
            };
            info!(
                "remove stale docker pidfile {} (pid {pid} {why})",
                self.pidfile.display()
            );
            remove(&self.pidfile)?;
            cleaned = true;
        } else if self.pidfile.exists() {
            remove(&self.pidfile)?;
        }
        if self.socket.exists() {
            info!("remove stale docker socket {}", self.socket.display());
            remove(&self.socket)?;
            cleaned = true;
        }
        if self.clean_containerd()? {
            cleaned = true;
        }
        if host::drop_self_bind(&self.data_root)? {
            info!(
                "umount {} (a bind mount left by a dead docker daemon)",
                self.data_root.display()
            );
            cleaned = true;
        }
        Ok(cleaned)
    }

    /// The containerd of a dead dockerd: it dies with its dockerd, but not at once, and its
    /// pidfile (a zombie's pid, where nothing reaps orphans) would make the next dockerd wait
    /// for it instead of starting its own. Returns whether one was still running.
    fn clean_containerd(&self) -> Result<bool, DriverError> {
        let state = self.exec_root.join("containerd");
        let pidfile = state.join("containerd.pid");
        let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            return Ok(false);
        };
        let state = state.to_string_lossy().into_owned();
        let ours = host::proc_of(pid).is_some_and(|p| p.comm == "containerd")
            && host::cmdline(pid).iter().any(|w| w.contains(&state));
        let handle = if ours {
            open_handle(pid, |p| p.comm == "containerd")?
        } else {
            None
        };
        let killed = handle.is_some();
        if let Some(h) = handle {
            info!("kill containerd pid {pid}, left by a dead docker daemon");
            signal(&h, Signal::SIGKILL)?;
            wait_gone(&[h], Duration::from_secs(5));
        }
        remove(&pidfile)?;
        Ok(killed)
    }

    /// containerd shims left running by a daemon that died: they keep containers (and their
    /// mounts) alive until a daemon on this exec root cleans them up.
    pub(crate) fn leftover_shims(&self) -> Vec<i32> {
        let address = self.exec_root.join("containerd/containerd.sock");
        let address = address.to_string_lossy();
        host::all_procs()
            .into_iter()
            .filter(|p| p.comm.starts_with("containerd-shim"))
            .filter(|p| {
                host::cmdline(p.pid)
                    .windows(2)
                    .any(|w| w[0] == "-address" && w[1] == address)
            })
            .map(|p| p.pid)
            .collect()
    }

    /// The container of `svc`'s resource `rid` still running without its daemon (dockerd was
    /// killed; its shim keeps the container alive): found by a leftover shim of this exec root
    /// whose container (`-id`) carries this service's and rid's berth labels in the data root.
    pub(crate) fn orphan_container(&self, rid: &str) -> Option<Orphan> {
        self.leftover_shims().into_iter().find_map(|shim| {
            let words = host::cmdline(shim);
            let id = words
                .windows(2)
                .find(|w| w[0] == "-id")
                .map(|w| w[1].clone())?;
            let config = self
                .data_root
                .join("containers")
                .join(&id)
                .join("config.v2.json");
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&config).ok()?).ok()?;
            let labels = &v["Config"]["Labels"];
            let ours = labels[super::container::SERVICE_LABEL].as_str() == Some(self.svc.as_str())
                && labels[super::container::RID_LABEL].as_str() == Some(rid);
            ours.then(|| Orphan {
                image: v["Config"]["Image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                process: host::children(shim).first().map(|p| p.pid),
                shim,
                id,
            })
        })
    }

    /// Start dockerd detached (own session, stdio to the log file) and wait until it answers.
    fn spawn(&self) -> Result<Api, DriverError> {
        for dir in [
            self.socket.parent().unwrap_or(Path::new("/")),
            &self.exec_root,
            &self.data_root,
        ] {
            std::fs::create_dir_all(dir)
                .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
        }
        if !self.config_file.exists() {
            std::fs::write(&self.config_file, "{}\n")
                .map_err(|e| DriverError::io(format!("write {}", self.config_file.display()), e))?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| DriverError::io(format!("open {}", self.log.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log
            .try_clone()
            .map_err(|e| DriverError::io(format!("open {}", self.log.display()), e))?;
        let args = self.args();
        info!("dockerd {}", args.join(" "));
        let mut cmd = Command::new("dockerd");
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env_remove("DOCKER_HOST")
            .env_remove("NOTIFY_SOCKET");
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it runs in
        // the forked child before exec, so dockerd gets its own session and no terminal.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| DriverError::io("run dockerd (is docker.io installed?)", e))?;
        let mut api = None;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(DriverError::Command {
                    command: format!("dockerd -H {}", self.host()),
                    code: status.code().unwrap_or(-1),
                    output: self.log_tail(log_start),
                });
            }
            match self.answering(&mut api, Duration::from_millis(500)) {
                Ok(Some(api)) => {
                    reap(child);
                    return Ok(api);
                }
                Ok(None) => {}
                Err(e) => {
                    // Do not leave a daemon behind that nothing tracks.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DriverError::Timeout {
                    what: format!(
                        "docker daemon to answer on {} ({})",
                        self.socket.display(),
                        self.log_tail(log_start)
                    ),
                    secs: START_TIMEOUT.as_secs_f64(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The client, once the socket exists and the daemon answers a ping within `limit`. The
    /// client is made once (`slot`) and handed out when the daemon answers.
    fn answering(
        &self,
        slot: &mut Option<Api>,
        limit: Duration,
    ) -> Result<Option<Api>, DriverError> {
        if !self.socket.exists() {
            return Ok(None);
        }
        if slot.is_none() {
            *slot = Some(self.api()?);
        }
        if slot.as_ref().is_some_and(|a| a.ping(limit)) {
            return Ok(slot.take());
        }
        Ok(None)
    }

    /// The last meaningful lines the daemon logged since `from`.
    fn log_tail(&self, from: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(from));
            let _ = f.take(64 * 1024).read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let fatal: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("level=fatal") || l.contains("failed to start daemon"))
            .collect();
        let pick = if fatal.is_empty() {
            &lines[lines.len().saturating_sub(3)..]
        } else {
            &fatal[..]
        };
        if pick.is_empty() {
            format!("nothing logged in {}", self.log.display())
        } else {
            pick.join(" | ")
        }
    }

    /// Shut the daemon down when it runs no container. Returns whether it did.
    pub(crate) fn shutdown_if_idle(&self, api: &Api) -> Result<bool, DriverError> {
        let _lock = self.lock()?;
        let running = api
            .run(
                REQUEST,
                api.docker
                    .list_containers(Some(ListContainersOptionsBuilder::new().all(false).build())),
            )
            .map_err(|e| e.into_driver(format!("list the containers of {}", self.host())))?;
        if !running.is_empty() {
            return Ok(false);
        }
        // The service's network (and its bridge) goes with the last container.
        super::network::remove(api, &berth_model::config::docker_network_of(&self.svc))?;
        info!("no more container handled by docker daemon. shut it down");
        self.terminate()?;
        Ok(true)
    }

    /// TERM the daemon, wait (bounded), KILL it if needed, wait for its containerd, then
    /// remove what it left (pidfile, socket, data root bind).
    pub(crate) fn terminate(&self) -> Result<(), DriverError> {
        // Handles, not pids: the waits below last seconds, long enough for a pid to be reused
        // by another process once ours exited, and a KILL by pid would then hit that one.
        let daemon = match self.pid() {
            Some(pid) => open_handle(pid, |p| self.is_ours(p))?,
            None => None,
        };
        if let Some(daemon) = daemon {
            let pid = daemon.pid();
            let mut kids = Vec::new();
            for k in host::children(pid) {
                if let Some(h) = open_handle(k.pid, |p| p.ppid == pid && p.start == k.start)? {
                    kids.push(h);
                }
            }
            signal(&daemon, Signal::SIGTERM)?;
            let daemon = [daemon];
            if !wait_gone(&daemon, STOP_TIMEOUT) {
                warn!(
                    "docker daemon pid {pid} did not exit within {}s: kill it",
                    STOP_TIMEOUT.as_secs()
                );
                signal(&daemon[0], Signal::SIGKILL)?;
                if !wait_gone(&daemon, Duration::from_secs(5)) {
                    return Err(DriverError::Timeout {
                        what: format!("docker daemon pid {pid} to die after SIGKILL"),
                        secs: 5.0,
                    });
                }
            }
            // Its own containerd exits with it; make sure, as it holds files on the data root.
            if !wait_gone(&kids, Duration::from_secs(10)) {
                for k in &kids {
                    let _ = signal(k, Signal::SIGKILL);
                }
                wait_gone(&kids, Duration::from_secs(5));
            }
        }
        for p in [&self.pidfile, &self.socket] {
            if p.exists() {
                remove(p)?;
            }
        }
        if host::drop_self_bind(&self.data_root)? {
            info!("umount {}", self.data_root.display());
        }
        Ok(())
    }
}

/// When `p` started, from its start time in clock ticks after boot (`/proc/stat` btime).
fn started_at(p: &host::Proc) -> Option<std::time::SystemTime> {
    let btime = procfs::boot_time_secs().ok()?;
    let ticks = Some(procfs::ticks_per_second()).filter(|t| *t > 0)?;
    let since_boot = Duration::from_millis(p.start.checked_mul(1000)? / ticks);
    Some(std::time::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

/// Reap the daemon when it exits, so it leaves no zombie behind in a long-lived process.
fn reap(mut child: Child) {
    let spawned = std::thread::Builder::new()
        .name("dockerd-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = spawned {
        warn!("cannot start a thread to reap dockerd: {e}");
    }
}

/// A handle on `pid` when `is_it` holds for it; `None` when it is gone.
fn open_handle(
    pid: i32,
    is_it: impl Fn(&host::Proc) -> bool,
) -> Result<Option<ProcHandle>, DriverError> {
    ProcHandle::open(pid, is_it).map_err(|e| DriverError::io(format!("pidfd_open {pid}"), e))
}

fn signal(p: &ProcHandle, sig: Signal) -> Result<(), DriverError> {
    p.signal(sig).map_err(|e| {
        DriverError::io(
            format!(
                "kill -{} {}",
                sig.as_str().trim_start_matches("SIG"),
                p.pid()
            ),
            e,
        )
    })
}

/// Wait until none of `procs` runs; false on timeout.
fn wait_gone(procs: &[ProcHandle], limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if procs.iter().all(ProcHandle::exited) {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn remove(p: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io(format!("rm {}", p.display()), e)),
    }
}

/// Refuse to start the daemon while the fs resource holding the data root is down: dockerd
/// would write into the empty mount point. The holder is the deepest enabled fs resource whose
/// mount point is a prefix of the data root.
pub(crate) fn check_data_fs(ctx: &Ctx<'_>, data_root: &Path) -> Result<(), DriverError> {
    let holder = ctx
        .svc
        .resources
        .iter()
        .filter(|r| !r.common.disable)
        .filter_map(|r| match &r.spec {
            Spec::Fs(fs) if data_root.starts_with(&fs.mnt) => Some((r.rid, fs)),
            _ => None,
        })
        .max_by_key(|(_, fs)| fs.depth());
    let Some((rid, fs)) = holder else {
        return Ok(());
    };
    let state = crate::fs::status(fs);
    if matches!(state.status, Status::Up | Status::StdbyUp) {
        return Ok(());
    }
    Err(DriverError::Refused(format!(
        "docker data dir {} is on {rid} ({}), which is {}: start it first (svc {} startfs)",
        data_root.display(),
        state.label,
        state.status,
        ctx.svc.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::ServiceConfig;
    use berth_model::paths::Paths;

    fn daemon(svc: &str, var: &str, run: &str) -> Daemon {
        let cfg = ServiceConfig::parse(
            Path::new(&format!("/etc/berth/services/{svc}.toml")),
            "[service]\ndocker_daemon_args = \"--debug --storage-driver=vfs\"\n\
             [container.1]\nrun_image = \"busybox\"\n",
        )
        .unwrap();
        let paths = Paths {
            config_dir: "/etc/berth".into(),
            var_dir: var.into(),
            run_dir: run.into(),
        };
        let ctx = Ctx {
            svc: &cfg,
            nodename: "n1",
            paths: &paths,
            force: false,
            fence: None,
            prechecked: None,
        };
        Daemon::new(&ctx)
    }

    #[test]
    fn command_line() {
        let d = daemon("web", "/var/lib/berth", "/run/berth");
        assert_eq!(
            d.args().join(" "),
            "-H unix:///var/lib/berth/web/docker.sock --data-root /var/lib/berth/web/docker \
             --exec-root /run/berth/web/docker -p /var/lib/berth/web/docker.pid \
             --config-file /var/lib/berth/web/daemon.json --bridge=none --iptables=false \
             --ip-masq=false --containerd-namespace=berth-web \
             --containerd-plugins-namespace=berth-web-plugins --debug --storage-driver=vfs"
        );
        d.check_paths().unwrap();
    }

    #[test]
    fn namespaces_are_valid_for_containerd() {
        let d = daemon("docker.opensvc.com", "/v", "/r");
        assert_eq!(d.namespace(), "berth-docker-opensvc-com");
        let d = daemon("a..b_", "/v", "/r");
        assert_eq!(d.namespace(), "berth-a-b");
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let long = format!("/{}", "v".repeat(100));
        let e = daemon("web", &long, "/r")
            .check_paths()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("docker socket path") && e.contains("unix socket"),
            "{e}"
        );
        let long = format!("/{}", "r".repeat(70));
        let e = daemon("web", "/v", &long)
            .check_paths()
            .unwrap_err()
            .to_string();
        assert!(e.contains("exec root"), "{e}");
    }
}
