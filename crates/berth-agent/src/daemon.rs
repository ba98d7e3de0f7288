//! svcd's main loop: load, listen, check every service at start, tell systemd it is ready,
//! autostart, then tick, reload and react to changes until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_drivers::StatusReads;
use berth_model::paths::Paths;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{error, info, warn};

use crate::metrics::NodeProbe;
use crate::notify::notify_or_log;
use crate::settings::{Settings, SettingsError, TokenState};
use crate::state::{MAX_ACTIONS, Shared};
use crate::watch::Event;
use crate::worker::{self, Msg};
use crate::{http, watch as watcher};

/// Why svcd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `node.toml` or the token file is not acceptable.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The TLS certificate or key of node.toml cannot be used.
    #[error(transparent)]
    Tls(#[from] berth_tls::TlsError),
    /// The HTTP endpoint cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another svcd runs on the same var dir: two would act on the same services.
    #[error(
        "another svcd ({holder}) runs on the var dir {var_dir}: stop it first, or give this one \
         a var dir of its own (--var-dir)"
    )]
    Running {
        /// The var dir.
        var_dir: std::path::PathBuf,
        /// `pid N`, or `pid unknown` when its lock file holds none.
        holder: String,
    },
    /// A directory or signal handler could not be set up.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// Whether the operator's configuration is at fault (exit code 2).
    pub fn is_config(&self) -> bool {
        match self {
            StartError::Settings(e) => e.is_config(),
            StartError::Tls(_) => true,
            _ => false,
        }
    }
}

/// How long the first check of every service may take before svcd says it is ready anyway.
const FIRST_CHECK_WAIT: Duration = Duration::from_secs(20);
/// How long SIGTERM waits for running actions to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);
/// Config changes closer than this are read in one reload (editors write in several steps).
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(100);

/// Status checks running at once: two per CPU, between 2 and 16.
fn check_bound() -> usize {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cpus * 2).clamp(2, 16)
}

fn setup(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Setup { what, source }
}

/// Run svcd until SIGTERM or SIGINT. Services are left as they are when it returns.
pub async fn run(paths: Paths) -> Result<(), StartError> {
    let settings = Settings::load(&paths)?;
    if let Some(why) = settings.token.refusal(&settings.token_file) {
        warn!("{why}");
    }
    std::fs::create_dir_all(&paths.var_dir)
        .map_err(setup(format!("cannot create {}", paths.var_dir.display())))?;
    let _only_svcd = only_svcd(&paths)?;
    let addr = settings.listen;
    let listener = http::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let mut sigterm = signal(SignalKind::terminate()).map_err(setup("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(setup("SIGINT handler"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(setup("SIGHUP handler"))?;

    let interval = settings.monitor_interval;
    let acceptor = settings
        .tls
        .as_ref()
        .map(berth_tls::server_config)
        .transpose()?;
    let shared = Arc::new(Shared::new(paths, settings, check_bound()));
    shared.set_tls(acceptor);
    worker::reload_services(&shared);
    first_checks(&shared).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    // The local socket for `svc print status`; svcd runs without it if it cannot be made.
    let socket = shared.paths.agent_socket();
    let _socket_file = match crate::local::bind(&socket) {
        Ok((l, file)) => {
            tokio::spawn(crate::local::serve(l, shared.clone(), stop_rx.clone()));
            Some(file)
        }
        Err(e) => {
            warn!(
                "cannot listen on {}: {e} (svc print status checks by itself)",
                socket.display()
            );
            None
        }
    };
    tokio::spawn(crate::sync_schedule::run(shared.clone(), stop_rx.clone()));
    let server = tokio::spawn(http::serve(listener, shared.clone(), stop_rx));
    let (ev_tx, events) = mpsc::unbounded_channel();
    tokio::spawn(watcher::run(shared.clone(), ev_tx));
    let mut changes = Changes::new(events);

    if let Some(cfg) = shared.settings().cluster.clone() {
        tokio::spawn(crate::orchestrator::start(shared.clone(), cfg));
    }
    announce(&shared, local, interval);

    let mut tick = ticker(interval);
    let mut probe = NodeProbe::new();
    let mut reload_at: Option<Instant> = None;
    let why = loop {
        let reload_sleep = async {
            match reload_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = sighup.recv() => {
                info!("SIGHUP: reloading");
                reload(&shared, &mut tick);
            }
            _ = tick.tick() => {
                let reads = round_reads(&shared);
                for (_, tx) in shared.workers() {
                    let _ = tx.try_send(Msg::SharedCheck(reads.clone(), None));
                }
                shared.metrics.set_node(probe.sample());
            }
            ev = changes.next(&shared) => match ev {
                Event::Config => {
                    reload_at.get_or_insert_with(|| Instant::now() + RELOAD_DEBOUNCE);
                }
                Event::Service(name) => shared.poke(&name),
                Event::Overflow => {
                    warn!("inotify queue overflow: reloading and checking everything");
                    reload_at.get_or_insert_with(|| Instant::now() + RELOAD_DEBOUNCE);
                    for (name, _) in shared.workers() {
                        shared.poke(&name);
                    }
                }
            },
            _ = reload_sleep => {
                reload_at = None;
                reload(&shared, &mut tick);
            }
        }
    };
    info!("{why}: stopping svcd (services are left as they are)");
    shutdown(&shared, stop_tx, server).await;
    Ok(())
}

/// `<var>/svcd.lock`: held (flock) by the svcd running on the var dir, its pid inside.
fn only_svcd(paths: &Paths) -> Result<nix::fcntl::Flock<std::fs::File>, StartError> {
    use std::io::{Read, Seek, Write};
    let path = paths.var_dir.join("svcd.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(setup(format!("cannot open {}", path.display())))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            // Best effort: the pid only serves the message of a second svcd.
            let _ = lock.set_len(0);
            let _ = lock.seek(std::io::SeekFrom::Start(0));
            let _ = write!(lock, "{}", std::process::id());
            let _ = lock.flush();
            Ok(lock)
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_string(),
            };
            Err(StartError::Running {
                var_dir: paths.var_dir.clone(),
                holder,
            })
        }
        Err((_, errno)) => Err(StartError::Setup {
            what: format!("cannot lock {}", path.display()),
            source: std::io::Error::from(errno),
        }),
    }
}

/// Say svcd is ready (log, systemd) and ask every worker to autostart its service.
fn announce(shared: &Shared, local: std::net::SocketAddr, interval: Duration) {
    let count = shared.workers().len();
    let scheme = if shared.tls().is_some() {
        "https"
    } else {
        "http"
    };
    info!(
        "svcd {} ready on {scheme}://{local}: node {}, {count} service(s), checks every {}ms",
        env!("CARGO_PKG_VERSION"),
        shared.settings().nodename,
        interval.as_millis()
    );
    notify_or_log(&format!(
        "READY=1\nSTATUS={count} service(s), listening on {local}\nMAINPID={}",
        std::process::id()
    ));
    for (_, tx) in shared.workers() {
        // The worker may be busy; autostart must not hold up the main loop.
        tokio::spawn(async move {
            let _ = tx.send(Msg::Autostart).await;
        });
    }
}

/// Stop serving, end the workers, and wait (bounded) for the running actions.
async fn shutdown(
    shared: &Shared,
    stop_tx: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
) {
    notify_or_log("STOPPING=1");
    let _ = stop_tx.send(true);
    shared.clear_workers();
    let _ = server.await;
    let wait = shared.actions.acquire_many(MAX_ACTIONS);
    match tokio::time::timeout(SHUTDOWN_WAIT, wait).await {
        Ok(_) => info!("svcd stopped"),
        Err(_) => warn!(
            "actions still running after {}s: leaving them",
            SHUTDOWN_WAIT.as_secs()
        ),
    }
}

/// The changes svcd reacts to: the watcher's events; once the watcher ends, the poll's
/// ([`watcher::poll`]); once that ends too, none: `next` then waits forever, where receiving
/// from the closed channel again would return at once and spin the main loop.
#[derive(Debug)]
struct Changes {
    rx: Option<mpsc::UnboundedReceiver<Event>>,
    polling: bool,
}

impl Changes {
    fn new(rx: mpsc::UnboundedReceiver<Event>) -> Self {
        Changes {
            rx: Some(rx),
            polling: false,
        }
    }

    /// The next change. Cancel-safe (a `select!` branch): state changes only after a receive
    /// returned.
    async fn next(&mut self, shared: &Arc<Shared>) -> Event {
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return std::future::pending().await;
            };
            if let Some(ev) = rx.recv().await {
                return ev;
            }
            if self.polling {
                warn!("the config poll stopped: changes are seen at SIGHUP and each check");
                self.rx = None;
            } else {
                warn!(
                    "the config watcher stopped: polling the config and var dirs every {}ms",
                    watcher::POLL_PERIOD.as_millis()
                );
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(watcher::poll(shared.clone(), tx));
                self.rx = Some(rx);
                self.polling = true;
            }
        }
    }
}

fn ticker(period: Duration) -> Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// How long the host reads of a round of checks are shared: a check that starts later (queued
/// behind an action) reads afresh.
const ROUND_READS_FOR: Duration = Duration::from_secs(1);

/// The host reads the checks of one round (every service) share: one mount table, one netlink
/// dump, one LVM report of the services' VGs ([`berth_drivers::reads`]).
fn round_reads(shared: &Shared) -> Arc<StatusReads> {
    let configs = shared.configs();
    let interval = shared.settings().monitor_interval;
    Arc::new(
        StatusReads::within(ROUND_READS_FOR.min(interval / 2))
            .for_services(configs.iter().filter_map(|(_, c)| c.as_deref().ok())),
    )
}

/// Check every service once, waiting (boundedly) for all of them.
async fn first_checks(shared: &Arc<Shared>) {
    let mut waits = Vec::new();
    let reads = round_reads(shared);
    for (_, tx) in shared.workers() {
        let (done, wait) = oneshot::channel();
        if tx
            .send(Msg::SharedCheck(reads.clone(), Some(done)))
            .await
            .is_ok()
        {
            waits.push(wait);
        }
    }
    let all = async {
        for w in waits {
            let _ = w.await;
        }
    };
    if tokio::time::timeout(FIRST_CHECK_WAIT, all).await.is_err() {
        warn!(
            "some services were not checked within {}s: ready anyway",
            FIRST_CHECK_WAIT.as_secs()
        );
    }
}

/// Re-read `node.toml` and every service file.
fn reload(shared: &Arc<Shared>, tick: &mut Interval) {
    let old = shared.settings();
    match Settings::reload(&shared.paths) {
        Ok(new) => {
            if new.listen != old.listen {
                warn!(
                    "listen changed to {}: restart svcd to listen there (still on {})",
                    new.listen, old.listen
                );
            }
            if new.monitor_interval != old.monitor_interval {
                info!("checks every {}ms", new.monitor_interval.as_millis());
                *tick = ticker(new.monitor_interval);
            }
            if new.nodename != old.nodename {
                info!("node name is now {}", new.nodename);
            }
            match new.tls.as_ref().map(berth_tls::server_config).transpose() {
                Ok(acceptor) => {
                    if let Some(files) = &new.tls {
                        info!("TLS certificate read from {}", files.cert.display());
                    } else if old.tls.is_some() {
                        warn!("[tls] removed from node.toml: new connections are plain HTTP");
                    }
                    shared.set_tls(acceptor);
                }
                Err(e) => error!("{e}: keeping the previous certificate"),
            }
            log_token_change(
                "read token",
                &old.read_token,
                &new.read_token,
                &new.read_token_file,
                "reads are open (listening on loopback)",
            );
            log_token_change(
                "token",
                &old.token,
                &new.token,
                &new.token_file,
                "HTTP actions are refused",
            );
            shared.set_settings(new);
        }
        Err(e) => error!("{e}: keeping the previous node settings"),
    }
    worker::reload_services(shared);
}

/// Say what a reload did to a token: read (again: a rotation), gone, or refused and why.
fn log_token_change(
    what: &str,
    old: &TokenState,
    new: &TokenState,
    file: &std::path::Path,
    when_missing: &str,
) {
    match (old, new) {
        (TokenState::Set(a), TokenState::Set(b)) if a == b => {}
        (_, TokenState::Set(_)) => info!("{what} read from {}", file.display()),
        (TokenState::Missing, TokenState::Missing) => {}
        (_, TokenState::Missing) => warn!("no {what} in {}: {when_missing}", file.display()),
        (TokenState::Refused(a), TokenState::Refused(b)) if a == b => {}
        (_, TokenState::Refused(why)) => error!("{why}: the {what} is not used until then"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The watcher's channel has ended: `next` neither returns at once (the old busy loop,
    /// one warning per pass) nor goes deaf; the poll takes over and sees a new service file.
    #[tokio::test]
    async fn an_ended_watcher_falls_back_to_polling_without_spinning() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::create_dir_all(paths.services_dir()).unwrap();
        std::fs::create_dir_all(&paths.var_dir).unwrap();
        let settings = Settings::load(&paths).unwrap();
        let shared = Arc::new(Shared::new(paths.clone(), settings, 2));
        let (tx, rx) = mpsc::unbounded_channel::<Event>();
        drop(tx);
        let mut changes = Changes::new(rx);
        // Nothing changed: nothing comes (the closed channel used to answer None at once).
        let quiet = tokio::time::timeout(Duration::from_millis(600), changes.next(&shared)).await;
        assert!(quiet.is_err(), "an event out of nothing: {quiet:?}");
        assert!(changes.polling);
        std::fs::write(paths.services_dir().join("new.toml"), "").unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(10), changes.next(&shared))
            .await
            .expect("the poll reports the new file");
        assert_eq!(seen, Event::Config);
    }
}
