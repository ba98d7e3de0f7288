//! berth-collector: polls the `GET /status` endpoint of every node it is given, keeps the fleet's
//! current state, its history (events) and the docker chargeback in SQLite, and serves them as a
//! JSON API, Prometheus metrics and a web page.
//!
//! Threads: one tokio task per node polls it (bounded by a semaphore, with jitter and backoff)
//! and sends what it got to the recorder, one OS thread that owns the writing database
//! connection and the in-memory [`state::State`]; it writes each batch in one transaction and
//! publishes a [`View`] (pre-serialised bodies with ETags) at most every [`PUBLISH_EVERY`].
//! The HTTP server answers from that view, from the state (one service's trees), or from the
//! database through its own read connection (events, chargeback).

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod alerts;
pub mod api;
pub mod auth;
pub mod bill;
pub mod client;
pub mod state;
pub mod store;

use std::hash::{Hash as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_model::config::CollectorConfig;
use berth_model::status::Status;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{info, warn};

use crate::client::{Outcome, Target};
use crate::state::{State, Timing};
use crate::store::{Batch, Store, StoreError, now_ms};

/// The view is rebuilt at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// The view is rebuilt at least this often (the ages it shows).
const REPUBLISH_EVERY: Duration = Duration::from_secs(5);
/// The collector's last sign of life is written this often (a crash bills at most this much of
/// its downtime).
const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// Retention runs this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read token, the listen address, TLS or the database file's mode.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// A node's CA or token file.
    #[error(transparent)]
    Setup(#[from] client::SetupError),
    /// The recorder thread could not be started.
    #[error("cannot start the recorder thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A pre-serialised JSON answer and its ETag.
#[derive(Debug, Clone)]
pub struct Body {
    /// The JSON.
    pub bytes: Bytes,
    /// Its strong ETag (quoted).
    pub etag: String,
}

impl Body {
    fn json<T: serde::Serialize>(v: &T) -> Body {
        let bytes = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Body {
            etag: format!("\"{:016x}\"", h.finish()),
            bytes,
        }
    }
}

/// What the API serves without touching the state or the database.
#[derive(Debug)]
pub struct View {
    /// `/api/fleet`: the grid.
    pub fleet: Body,
    /// `/api/nodes`.
    pub nodes: Body,
    /// `/api/services`.
    pub services: Body,
    /// `/metrics`.
    pub metrics: String,
}

/// What the recorder and the HTTP server share.
#[derive(Debug)]
pub struct Shared {
    /// The fleet in memory.
    pub state: RwLock<State>,
    /// The last published view.
    pub view: RwLock<Arc<View>>,
    /// The database connection the API reads through.
    pub reader: Mutex<Store>,
    /// The settings.
    pub config: CollectorConfig,
    /// The last database write error, for `/healthz`.
    pub write_error: Mutex<Option<String>>,
    /// Recent `/api/chargeback` answers by query string (see [`api::CHARGEBACK_CACHE`]).
    pub chargeback_cache: Mutex<std::collections::HashMap<String, (Instant, Bytes)>>,
    /// The read token the API and page require (none: open, on loopback only).
    pub token: Option<auth::Token>,
    /// TLS for the API and page.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Shared {
    /// The current view.
    pub fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The state, for reading.
    pub fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn build_view(state: &State, now: i64) -> (View, berth_model::fleet::Fleet) {
    let fleet = state.fleet(now);
    let services = state.api_services(&fleet);
    let metrics = render_metrics(state, &fleet);
    let view = View {
        nodes: Body::json(&state.api_nodes(now)),
        services: Body::json(&services),
        fleet: Body::json(&fleet),
        metrics,
    };
    (view, fleet)
}

fn render_metrics(state: &State, fleet: &berth_model::fleet::Fleet) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (mut up, mut failing, mut stale, mut unknown) = (0, 0, 0, 0);
    for n in fleet.nodes.values() {
        match n.hb {
            Status::Up => up += 1,
            Status::Warn => failing += 1,
            Status::Down => stale += 1,
            _ => unknown += 1,
        }
    }
    out.push_str("# HELP berth_collector_nodes Nodes by state: up (answering), failing (last poll failed), stale (no good answer for stale_after), unknown (not polled yet).\n# TYPE berth_collector_nodes gauge\n");
    for (k, v) in [
        ("up", up),
        ("failing", failing),
        ("stale", stale),
        ("unknown", unknown),
    ] {
        let _ = writeln!(out, "berth_collector_nodes{{state=\"{k}\"}} {v}");
    }
    out.push_str("# HELP berth_collector_services Services by overall status merged over the fleet.\n# TYPE berth_collector_services gauge\n");
    for w in Status::ALL.iter().map(|s| s.as_str()).chain(["stale"]) {
        let n = fleet
            .services
            .values()
            .filter(|x| x.status_word() == w)
            .count();
        let _ = writeln!(out, "berth_collector_services{{overall=\"{w}\"}} {n}");
    }
    per_series(&mut out, state, fleet);
    out.push_str("# HELP berth_collector_polls_total Polls by result.\n# TYPE berth_collector_polls_total counter\n");
    for (k, v) in ["ok", "not_modified", "failed"].iter().zip(state.polls) {
        let _ = writeln!(out, "berth_collector_polls_total{{result=\"{k}\"}} {v}");
    }
    out
}

/// A label value with `\\`, `"` and newlines escaped (Prometheus text format).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One series per node and per service (and per service on a node), labelled to alert on; a
/// node or service that goes away leaves no series behind (the text is rebuilt each time).
fn per_series(out: &mut String, state: &State, fleet: &berth_model::fleet::Fleet) {
    use std::fmt::Write as _;
    out.push_str("# HELP berth_collector_node_up 1 when the node's last poll answered, else 0.\n# TYPE berth_collector_node_up gauge\n");
    for (name, n) in &fleet.nodes {
        let v = u8::from(n.hb == Status::Up);
        let _ = writeln!(
            out,
            "berth_collector_node_up{{node=\"{}\"}} {v}",
            label(name)
        );
    }
    out.push_str("# HELP berth_collector_node_stale 1 when the node had no good answer for stale_after.\n# TYPE berth_collector_node_stale gauge\n");
    for (name, n) in &fleet.nodes {
        let v = u8::from(n.hb == Status::Down);
        let _ = writeln!(
            out,
            "berth_collector_node_stale{{node=\"{}\"}} {v}",
            label(name)
        );
    }
    out.push_str("# HELP berth_collector_node_age_seconds Seconds since the node's last good answer.\n# TYPE berth_collector_node_age_seconds gauge\n");
    for (name, n) in &fleet.nodes {
        if let Some(age) = n.age_ms {
            let _ = writeln!(
                out,
                "berth_collector_node_age_seconds{{node=\"{}\"}} {:.3}",
                label(name),
                age as f64 / 1000.0
            );
        }
    }
    let svc_labels = |name: &str, s: &berth_model::fleet::FleetService| {
        format!(
            "service=\"{}\",app=\"{}\",env=\"{}\"",
            label(name),
            label(s.app.as_deref().unwrap_or("")),
            label(s.env.as_deref().unwrap_or(""))
        )
    };
    out.push_str("# HELP berth_collector_service_status 1 for the service's fleet-wide status (up, down, warn, stale...).\n# TYPE berth_collector_service_status gauge\n");
    for (name, s) in &fleet.services {
        let _ = writeln!(
            out,
            "berth_collector_service_status{{{},status=\"{}\"}} 1",
            svc_labels(name, s),
            s.status_word()
        );
    }
    out.push_str("# HELP berth_collector_service_instance_up 1 when the service is up on that node (its avail), else 0.\n# TYPE berth_collector_service_instance_up gauge\n");
    for (name, s) in &fleet.services {
        let l = svc_labels(name, s);
        for (node, c) in &s.nodes {
            let _ = writeln!(
                out,
                "berth_collector_service_instance_up{{{l},node=\"{}\"}} {}",
                label(node),
                u8::from(c.avail == Status::Up)
            );
        }
    }
    out.push_str("# HELP berth_collector_service_running_containers Running containers of the service on that node (its last figures).\n# TYPE berth_collector_service_running_containers gauge\n");
    for (node, n) in &state.nodes {
        let Some(status) = &n.row.status else {
            continue;
        };
        for s in &status.services {
            let (Some(cb), Some(fs)) = (&s.chargeback, fleet.services.get(&s.name)) else {
                continue;
            };
            let _ = writeln!(
                out,
                "berth_collector_service_running_containers{{{},node=\"{}\"}} {}",
                svc_labels(&s.name, fs),
                label(node),
                cb.running
            );
        }
    }
}

/// What a poller sends the recorder.
#[derive(Debug)]
enum Msg {
    Poll(String, Outcome, i64),
    /// A delivery attempt: id, attempts so far, result, whether it was the last.
    Delivered(i64, u32, Result<(), String>, bool),
}

/// A running collector: its address, and how to stop it.
#[derive(Debug)]
pub struct Running {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The shared state.
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    recorder: Option<std::thread::JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop polling and serving; the recorder writes what it has and the database is closed.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.server).await;
        if let Some(h) = self.recorder.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// Open the database, restore the state, start the pollers, the recorder and the HTTP server.
pub async fn start(config: CollectorConfig) -> Result<Running, StartError> {
    let token = config
        .read_token_file
        .as_deref()
        .map(auth::read_token)
        .transpose()?;
    auth::check_listen(config.listen, token.as_ref())?;
    let tls = config
        .tls
        .as_ref()
        .map(berth_tls::server_config)
        .transpose()
        .map_err(auth::AuthError::from)?;
    if let Some(mode) = auth::restrict_database(&config.database)? {
        warn!(
            "database {} was mode {mode:04o}: now 0600 (it holds every node's status and the fleet's history)",
            config.database.display()
        );
    }
    let mut writer = Store::open(&config.database)?;
    let reader = Store::open(&config.database)?;
    let targets = config
        .nodes
        .iter()
        .map(|n| Target::new(&n.name, &n.url, n.ca.as_deref(), n.token_file.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms();
    let timing = Timing {
        stale_after_ms: store::ms(config.stale_after),
        chargeback_period_ms: store::ms(config.chargeback_period),
    };
    let configured: Vec<(String, String)> = config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.url.clone()))
        .collect();
    if let Some(gap) = writer.recover(now)? {
        info!(
            "the collector was down for {}ms: not billed, listed as a gap",
            gap.to_ms.unwrap_or(now) - gap.from_ms
        );
    }
    let state = State::new(&configured, writer.load_nodes()?, timing, now);
    let engine = alerts::Engine::new(config.alerts.clone(), writer.alert_states()?);
    let pending = writer.deliveries(true, 100_000)?;
    let pruned = writer.prune(now.saturating_sub(store::ms(config.retention)))?;
    if pruned > 0 {
        info!("retention: deleted {pruned} old row(s)");
    }
    let (view, _) = build_view(&state, now);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    let shared = Arc::new(Shared {
        state: RwLock::new(state),
        view: RwLock::new(Arc::new(view)),
        reader: Mutex::new(reader),
        config: config.clone(),
        write_error: Mutex::new(None),
        chargeback_cache: Mutex::new(std::collections::HashMap::new()),
        token,
        tls,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel();
    let sem = Arc::new(Semaphore::new(config.concurrency));
    for t in targets {
        tokio::spawn(poll_loop(
            t,
            shared.clone(),
            sem.clone(),
            tx.clone(),
            stop_rx.clone(),
        ));
    }
    let (dtx, drx) = tokio::sync::mpsc::unbounded_channel();
    // Deliveries not done before a stop or crash are sent now (none is repeated once done).
    for d in pending {
        let _ = dtx.send(d);
    }
    tokio::spawn(dispatch(
        drx,
        config.alerts.clone(),
        tx.clone(),
        stop_rx.clone(),
    ));
    drop(tx);
    let rec_shared = shared.clone();
    let rec = Recorder {
        engine,
        deliveries: dtx,
    };
    let recorder = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || recorder(rec_shared, writer, rx, rec))
        .map_err(StartError::Thread)?;
    let server = tokio::spawn(api::serve(listener, shared.clone(), stop_rx));
    info!(
        "berth-collector {} on {}://{addr}: {} node(s) every {}ms, database {}{}",
        env!("CARGO_PKG_VERSION"),
        if shared.tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.nodes.len(),
        config.interval.as_millis(),
        config.database.display(),
        if shared.token.is_some() {
            ", read token required"
        } else {
            ""
        }
    );
    Ok(Running {
        addr,
        shared,
        stop: stop_tx,
        recorder: Some(recorder),
        server,
    })
}

/// `d` scaled by a random factor in [0.9, 1.1).
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// The wait after `failures` failed polls in a row: the interval, then doubling up to `max`.
pub fn backoff(interval: Duration, max: Duration, failures: u32) -> Duration {
    if failures <= 1 {
        return interval;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval.saturating_mul(factor).min(max.max(interval))
}

async fn poll_loop(
    target: Target,
    shared: Arc<Shared>,
    sem: Arc<Semaphore>,
    tx: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let cfg = &shared.config;
    // Spread the first polls over one interval, so 1000 nodes are not polled at once.
    let first = cfg.interval.mul_f64(fastrand::f64());
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.changed() => return,
    }
    let mut failures = 0u32;
    loop {
        let etag = shared.state().etag(&target.name);
        let outcome = tokio::select! {
            o = async {
                let _permit = sem.acquire().await;
                client::poll(&target, etag.as_deref(), cfg.timeout, cfg.max_body_bytes).await
            } => o,
            _ = stop.changed() => return,
        };
        if let Outcome::Failed(why) = &outcome {
            failures = failures.saturating_add(1);
            tracing::debug!("{}: {why}", target.name);
        } else {
            failures = 0;
        }
        if tx
            .send(Msg::Poll(target.name.clone(), outcome, now_ms()))
            .is_err()
        {
            return;
        }
        let wait = jittered(backoff(cfg.interval, cfg.max_backoff, failures));
        // A node whose port refuses connections is probed (a bare connect) every interval
        // while its polls back off: when it comes back it is polled at once, not after the
        // rest of a long backoff. One whose port accepts but answers badly just backs off.
        let probe = failures > 1 && !client::accepts(&target, cfg.timeout).await;
        let until = tokio::time::Instant::now() + wait;
        loop {
            let step = if probe {
                until.min(tokio::time::Instant::now() + jittered(cfg.interval))
            } else {
                until
            };
            tokio::select! {
                _ = tokio::time::sleep_until(step) => {}
                _ = stop.changed() => return,
            }
            if step >= until || client::accepts(&target, cfg.timeout).await {
                break;
            }
        }
    }
}

/// What the recorder thread owns besides the database.
struct Recorder {
    engine: alerts::Engine,
    /// New deliveries go to the dispatcher.
    deliveries: tokio::sync::mpsc::UnboundedSender<store::Delivery>,
}

/// The alerts' evaluation of `fleet`: state changes and new deliveries into `batch`.
fn evaluate(engine: &mut alerts::Engine, fleet: &berth_model::fleet::Fleet, batch: &mut Batch) {
    let now = now_ms();
    let ch = engine.evaluate(fleet, now);
    batch.alert_upsert.extend(ch.upsert);
    batch.alert_delete.extend(ch.delete);
    for n in ch.notices {
        info!("alert {}: {} {}: {}", n.alert, n.kind, n.subject, n.text);
        batch.deliveries.push(store::Delivery {
            id: 0,
            at_ms: n.at_ms,
            alert: n.alert.clone(),
            subject: n.subject.clone(),
            kind: n.kind.to_string(),
            status: n.status.clone(),
            body: serde_json::to_string(&n).unwrap_or_default(),
            attempts: 0,
            state: "pending".into(),
            error: None,
            done_ms: None,
        });
    }
}

fn recorder(shared: Arc<Shared>, mut store: Store, rx: mpsc::Receiver<Msg>, mut rec: Recorder) {
    let mut dirty = false;
    let mut published = Instant::now();
    let mut evaluated = Instant::now();
    let mut pruned = Instant::now();
    let mut alive = Instant::now();
    let retention_ms = store::ms(shared.config.retention);
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = Batch::default();
        {
            let mut state = shared.state.write().unwrap_or_else(|p| p.into_inner());
            for msg in first.into_iter().chain(rx.try_iter()) {
                match msg {
                    Msg::Poll(node, outcome, at) => {
                        dirty |= state.apply(&node, outcome, at, &mut batch);
                    }
                    Msg::Delivered(id, attempts, result, last) => {
                        let (st, err) = match result {
                            Ok(()) => ("delivered", None),
                            Err(e) if last => ("failed", Some(e)),
                            Err(e) => ("pending", Some(e)),
                        };
                        if let Some(e) = &err {
                            warn!("alert delivery {id}, attempt {attempts}: {e}");
                        }
                        let done = (st != "pending").then(now_ms);
                        batch.delivery_updates.push((id, attempts, st, err, done));
                    }
                }
            }
            dirty |= state.tick(now_ms(), &mut batch);
        }
        // The last sign of life: where a `collector down` gap starts if this process dies.
        if !batch.is_empty() || alive.elapsed() >= ALIVE_EVERY {
            batch.alive_ms = Some(now_ms());
            alive = Instant::now();
        }
        // A status change is published at once (before its events are written, so whoever
        // sees an event finds the grid already showing it); other changes at most every
        // PUBLISH_EVERY; ages move even when nothing else does: republish now and then.
        // Alerts are evaluated on what is published, and more often while one waits for
        // its `for`.
        let due = published.elapsed() >= REPUBLISH_EVERY;
        let publish_now =
            !batch.events.is_empty() || (dirty && published.elapsed() >= PUBLISH_EVERY) || due;
        if publish_now {
            let fleet = publish(&shared);
            dirty = false;
            published = Instant::now();
            if !rec.engine.is_empty() {
                evaluate(&mut rec.engine, &fleet, &mut batch);
                evaluated = Instant::now();
            }
        } else if rec.engine.waiting() && evaluated.elapsed() >= PUBLISH_EVERY {
            let fleet = shared.state().fleet(now_ms());
            evaluate(&mut rec.engine, &fleet, &mut batch);
            evaluated = Instant::now();
        }
        if !batch.is_empty() {
            let result = store.write(&mut batch);
            let mut err = shared.write_error.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => {
                    *err = None;
                    for d in batch.deliveries.drain(..) {
                        let _ = rec.deliveries.send(d);
                    }
                }
                Err(e) => {
                    warn!("{e}");
                    *err = Some(e.to_string());
                }
            }
            for e in &batch.events {
                info!(
                    "event: {} {} {} {} -> {}",
                    e.node,
                    e.service.as_deref().unwrap_or("-"),
                    e.resource.as_deref().unwrap_or("-"),
                    e.old.as_deref().unwrap_or("none"),
                    e.new.as_deref().unwrap_or("none")
                );
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            match store.prune(now_ms() - retention_ms) {
                Ok(n) if n > 0 => info!("retention: deleted {n} old row(s)"),
                Ok(_) => {}
                Err(e) => warn!("retention: {e}"),
            }
        }
    }
    // Stopping: the open chargeback rows end now.
    let mut batch = Batch::default();
    shared
        .state
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .close_all(now_ms(), &mut batch);
    if let Err(e) = store.write(&mut batch) {
        warn!("{e}");
    }
    publish(&shared);
}

/// Send each delivery to its alert's sink, retried with backoff; each attempt is reported to
/// the recorder (which stores it). Ends at stop (pending ones are sent after a restart).
async fn dispatch(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<store::Delivery>,
    rules: Vec<berth_model::config::AlertConfig>,
    tx: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let d = tokio::select! {
            d = rx.recv() => match d {
                Some(d) => d,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let Some(rule) = rules.iter().find(|r| r.name == d.alert).cloned() else {
            let _ = tx.send(Msg::Delivered(
                d.id,
                d.attempts,
                Err(format!("no alert named {:?} any more", d.alert)),
                true,
            ));
            continue;
        };
        tokio::spawn(send_one(d, rule, tx.clone(), stop.clone()));
    }
}

/// Time allowed for one delivery attempt.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

async fn send_one(
    d: store::Delivery,
    rule: berth_model::config::AlertConfig,
    tx: mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempts = d.attempts;
    loop {
        let result = tokio::select! {
            r = alerts::deliver(&rule.sink, d.body.as_bytes(), DELIVERY_TIMEOUT) => r,
            _ = stop.changed() => return,
        };
        attempts = attempts.saturating_add(1);
        let last = result.is_ok() || attempts > rule.retries;
        if tx
            .send(Msg::Delivered(d.id, attempts, result, last))
            .is_err()
            || last
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(alerts::retry_wait(attempts - 1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Publish a new view; returns the fleet it shows.
fn publish(shared: &Shared) -> berth_model::fleet::Fleet {
    let (view, fleet) = build_view(&shared.state(), now_ms());
    *shared.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
    fleet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(10);
        let max = Duration::from_secs(60);
        let got: Vec<u64> = (0..6).map(|f| backoff(i, max, f).as_secs()).collect();
        assert_eq!(got, [10, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(i, max, u32::MAX), max);
    }

    /// Per-node and per-service series with their labels; a node no longer configured leaves
    /// none behind.
    #[test]
    fn per_node_and_service_series() {
        use berth_model::status::{NodeStatus, ServiceStatus};
        let timing = Timing {
            stale_after_ms: 1000,
            chargeback_period_ms: 1000,
        };
        let cfg = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| ((*n).to_string(), "http://a:1".to_string()))
                .collect()
        };
        let mut st = State::new(&cfg(&["n1", "n\"2"]), vec![], timing, 0);
        let mut svc = ServiceStatus::from_resources("web".into(), vec![], false);
        svc.app = Some("shop".into());
        svc.avail = Status::Up;
        svc.overall = Status::Up;
        let status = NodeStatus {
            schema: 1,
            nodename: "n1".into(),
            services: vec![svc],
        };
        let out = client::Outcome::Status {
            etag: None,
            status: Box::new(status),
            bytes: 1,
        };
        st.apply("n1", out, 10, &mut Batch::default());
        let text = render_metrics(&st, &st.fleet(20));
        assert!(
            text.contains("berth_collector_node_up{node=\"n1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("berth_collector_node_up{node=\"n\\\"2\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "berth_collector_service_instance_up{service=\"web\",app=\"shop\",env=\"\",node=\"n1\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("berth_collector_service_status{service=\"web\",app=\"shop\",env=\"\",status=\"up\"} 1"),
            "{text}"
        );
        // n1 leaves the config: its series and its service's go with it.
        let st = State::new(&cfg(&["n\"2"]), vec![], timing, 0);
        let text = render_metrics(&st, &st.fleet(20));
        assert!(!text.contains("node=\"n1\""), "{text}");
        assert!(!text.contains("service=\"web\""), "{text}");
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(10)).as_millis();
            assert!((9000..11000).contains(&d), "{d}");
        }
    }
}
