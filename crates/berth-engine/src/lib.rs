//! berth's engine: the ordered walk over a service's resources.
//!
//! Start walks the start order (ip, vg, fs by depth, containers) after every selected resource
//! passed its precheck; a failure rolls back, in reverse, what this action started. Stop walks the
//! reverse order, keeps going past failures and reports them all. Every action holds the
//! service's lock. Host work goes through the [`Driver`] seam, so all of this is tested without root.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod args;
pub mod claims;
pub mod driver;
pub mod load;
pub mod lock;
pub mod recipe;
pub mod record;

use std::time::Duration;

use berth_model::claims::Claim;
use berth_model::config::ServiceConfig;
use berth_model::order::{Action, Selector, SelectorError, start_order, stop_order};
use berth_model::paths::Paths;
use berth_model::status::LogEntry;
use berth_model::{Rid, ServiceStatus, Status};
use tracing::{error, info, info_span, warn};

pub use driver::{Ctx, Driver, DriverError, Outcome, Prechecked};
pub use lock::{LockError, ServiceLock};

/// What an action may do, and how.
#[derive(Debug, Clone)]
pub struct ActionOptions {
    /// Which resources it touches.
    pub selector: Selector,
    /// Say what would be done, do nothing, take no lock.
    pub dry_run: bool,
    /// Leave what a failed start started up.
    pub disable_rollback: bool,
    /// Skip the ip conflict check; take over a VG tagged by another node.
    pub force: bool,
    /// How long to wait for another action's lock.
    pub waitlock: Duration,
}

impl Default for ActionOptions {
    fn default() -> Self {
        ActionOptions {
            selector: Selector::default(),
            dry_run: false,
            disable_rollback: false,
            force: false,
            waitlock: Duration::from_secs(60),
        }
    }
}

/// A resource's failure.
#[derive(Debug, thiserror::Error)]
#[error("{rid}: {source}")]
pub struct ResourceError {
    /// The resource.
    pub rid: Rid,
    /// What went wrong.
    #[source]
    pub source: DriverError,
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `--rid` / `--tags` do not fit the service.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A precheck refused the start: nothing was started.
    #[error("start refused, nothing was started: {0}")]
    Refused(ResourceError),
    /// A resource failed to start; what this action started was rolled back (unless disabled).
    #[error("start failed: {failed}{}", rollback_note(.rolled_back, .rollback_errors, *.rollback_disabled))]
    Start {
        /// The resource that failed.
        failed: ResourceError,
        /// What was stopped again.
        rolled_back: Vec<Rid>,
        /// Failures while rolling back.
        rollback_errors: Vec<ResourceError>,
        /// `--disable-rollback` was given.
        rollback_disabled: bool,
    },
    /// Some resources failed to stop (the others were stopped).
    #[error("stop failed: {}", join(.0))]
    Stop(Vec<ResourceError>),
    /// The start guard (a cluster's ownership) refused the start: nothing was touched.
    #[error("start refused, nothing was started: {0}")]
    Guard(String),
}

/// Asked once the service lock is held and before any resource is touched, whether a start may
/// go on: a cluster's ownership. The engine knows nothing of how it decides.
pub trait StartGuard: Sync + std::fmt::Debug {
    /// `Ok(fence)` to go on (the fencing token, when there is one); `Err(reason)` refuses.
    fn acquire(&self, svc: &ServiceConfig) -> Result<Option<i64>, String>;

    /// [`StartGuard::acquire`] for a start given `--force` or not (a cluster's DR rules let
    /// some starts go on only when forced).
    fn acquire_forced(&self, svc: &ServiceConfig, force: bool) -> Result<Option<i64>, String> {
        let _ = force;
        self.acquire(svc)
    }
}

fn join(errors: &[ResourceError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn rollback_note(rolled_back: &[Rid], errors: &[ResourceError], disabled: bool) -> String {
    let mut s = String::new();
    if disabled {
        s.push_str(" (rollback disabled: what started is left up)");
    } else if !rolled_back.is_empty() {
        let rids: Vec<String> = rolled_back.iter().map(|r| r.to_string()).collect();
        s.push_str(&format!(" (rolled back: {})", rids.join(", ")));
    }
    if !errors.is_empty() {
        s.push_str(&format!("; rollback failed: {}", join(errors)));
    }
    s
}

/// What a successful action did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionReport {
    /// Resources whose state changed.
    pub changed: Vec<Rid>,
    /// Resources already in the wanted state.
    pub unchanged: Vec<Rid>,
}

/// The engine for one node: a driver, the paths and the node name.
#[derive(Debug)]
pub struct Engine<'a, D: Driver> {
    driver: &'a D,
    paths: &'a Paths,
    nodename: &'a str,
    guard: Option<&'a dyn StartGuard>,
    /// The fencing token the guard gave the running action.
    fence: std::cell::Cell<Option<i64>>,
}

impl<'a, D: Driver> Engine<'a, D> {
    /// An engine over `driver`.
    pub fn new(driver: &'a D, paths: &'a Paths, nodename: &'a str) -> Self {
        Engine {
            driver,
            paths,
            nodename,
            guard: None,
            fence: std::cell::Cell::new(None),
        }
    }

    /// The same engine, asking `guard` before every start.
    pub fn with_guard(mut self, guard: &'a dyn StartGuard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// What the drivers see of an action on `svc` (service-wide driver calls, such as the
    /// docker chargeback, take it too).
    pub fn context<'s>(&'s self, svc: &'s ServiceConfig) -> Ctx<'s> {
        self.ctx(svc, false)
    }

    fn ctx<'s>(&'s self, svc: &'s ServiceConfig, force: bool) -> Ctx<'s> {
        Ctx {
            svc,
            nodename: self.nodename,
            paths: self.paths,
            force,
            fence: self.fence.get(),
            prechecked: None,
        }
    }

    fn lock(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<Option<ServiceLock>, ActionError> {
        if opts.dry_run {
            return Ok(None);
        }
        Ok(Some(ServiceLock::acquire(
            &svc.name,
            &self.paths.lock_file(&svc.name),
            opts.waitlock,
        )?))
    }

    /// The selected, enabled resources in start order.
    fn selected(&self, svc: &ServiceConfig, opts: &ActionOptions) -> Result<Vec<Rid>, ActionError> {
        opts.selector.check(svc)?;
        let mut out = Vec::new();
        for rid in start_order(svc) {
            let Some(res) = svc.resource(rid) else {
                continue;
            };
            if !opts.selector.matches(res) {
                continue;
            }
            if res.common.disable {
                let _s = info_span!("resource", svc = %svc.name, rid = %rid).entered();
                info!("disabled: skipped");
                continue;
            }
            out.push(rid);
        }
        Ok(out)
    }

    /// The status of every resource of `svc`, merged. Takes no lock; changes nothing.
    pub fn status(&self, svc: &ServiceConfig) -> ServiceStatus {
        let ctx = self.ctx(svc, false);
        let ledger = claims::Ledger::read(self.paths, &svc.name);
        let states = svc
            .resources
            .iter()
            .map(|res| {
                let mut st = self.driver.status(&ctx, res);
                // Asked of what is up, or down with a warning (the fs driver's other
                // filesystem on the mount point): a down resource is nobody's business.
                let warned = st
                    .log
                    .iter()
                    .any(|l| l.level >= berth_model::status::Level::Warn);
                if (st.status != Status::Down || warned)
                    && let Some(claim) = Claim::of(res)
                    && let Some((other, rid)) = ledger.foreign(res.rid, &claim)
                {
                    // Brought up by another service: not this one's.
                    st.status = Status::Down;
                    st.log.push(LogEntry::warn(format!(
                        "{claim} is held by service {other} ({rid}), not by this service"
                    )));
                }
                (res.rid, st)
            })
            .collect();
        let frozen = self.paths.frozen_flag(&svc.name).exists();
        ServiceStatus::build(svc, states, frozen)
    }

    /// Run `action` (start, stop or restart) on the selected resources.
    pub fn run(
        &self,
        svc: &ServiceConfig,
        action: Action,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        match action {
            Action::Start => self.start(svc, opts),
            Action::Stop => self.stop(svc, opts),
            Action::Restart => self.restart(svc, opts),
        }
    }

    /// Start the selected resources in order.
    pub fn start(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        self.run_action(svc, opts, "start", |e| e.start_locked(svc, opts))
    }

    /// Run `f` under the service lock and record its result in `<var>/<svc>/last_action.json`
    /// (not for dry runs), where the agent and operators find what the last action did.
    pub fn run_action(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
        name: &str,
        f: impl FnOnce(&Self) -> Result<ActionReport, ActionError>,
    ) -> Result<ActionReport, ActionError> {
        let lock = self.lock(svc, opts)?;
        self.recorded(svc, opts, name, lock, f)
    }

    /// Start, as [`Engine::start`], but only when `still_wanted()`, asked once the lock is held,
    /// says so; `Ok(None)` when it does not (nothing done, nothing recorded). The agent's monitor
    /// restarts through it: an operator's action that ended just before the lock was taken
    /// (seen in `last_action.json`) then wins over the restart.
    pub fn start_if(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
        still_wanted: impl FnOnce() -> bool,
    ) -> Result<Option<ActionReport>, ActionError> {
        let lock = self.lock(svc, opts)?;
        if !still_wanted() {
            return Ok(None);
        }
        self.recorded(svc, opts, "start", lock, |e| e.start_locked(svc, opts))
            .map(Some)
    }

    /// Run `f` (the lock, if any, is held by the caller) and record its result.
    fn recorded(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
        name: &str,
        _lock: Option<ServiceLock>,
        f: impl FnOnce(&Self) -> Result<ActionReport, ActionError>,
    ) -> Result<ActionReport, ActionError> {
        let started = std::time::Instant::now();
        let started_ms = record::now_ms();
        self.fence.set(None);
        let result = f(self);
        if !opts.dry_run {
            let rec = record::ActionRecord {
                action: name.to_string(),
                started_ms,
                duration: started.elapsed().as_secs_f64(),
                ok: result.is_ok(),
                error: result.as_ref().err().map(|e| e.to_string()),
                pid: std::process::id(),
                fence: self.fence.get(),
                partial: !opts.selector.is_all(),
            };
            let dir = self.paths.service_var(&svc.name);
            if let Err(e) = record::write(&dir, &rec) {
                warn!("cannot record the action in {}: {e}", dir.display());
            }
        }
        result
    }

    fn start_locked(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        let rids = self.selected(svc, opts)?;
        let mut skipped = Vec::new();
        for &rid in &rids {
            let Some(res) = svc.resource(rid) else {
                continue;
            };
            let Some(claim) = Claim::of(res) else {
                continue;
            };
            let Some((other, their)) = claims::holder(self.paths, &svc.name, &claim) else {
                continue;
            };
            let _s = info_span!("resource", svc = %svc.name, rid = %rid).entered();
            let why = format!("{claim} is held by service {other} ({their})");
            if opts.force {
                warn!("--force: {why}: starting anyway");
                continue;
            }
            let source =
                DriverError::Refused(format!("{why}: stop it there first (svc {other} stop)"));
            if res.common.optional {
                warn!("{source} (optional resource: not started)");
                skipped.push(rid);
                continue;
            }
            error!("{source}");
            return Err(ActionError::Refused(ResourceError { rid, source }));
        }
        if let Some(guard) = self.guard
            && !opts.dry_run
        {
            match guard.acquire_forced(svc, opts.force) {
                Ok(fence) => self.fence.set(fence),
                Err(why) => {
                    error!("{why}");
                    return Err(ActionError::Guard(why));
                }
            }
        }
        let nodes = &svc.settings.nodes;
        let here = |list: &[String]| list.iter().any(|n| n == self.nodename);
        // A DR node (drpnodes) starts it by an operator's DR start, or its standby resources.
        if self.guard.is_none()
            && !nodes.is_empty()
            && !here(nodes)
            && !here(&svc.settings.drpnodes)
        {
            // In a cluster the guard refuses it; on a single node the operator decides.
            warn!(
                "this node ({}) is not in the service's nodes ({}): starting it here anyway",
                self.nodename,
                nodes.join(", ")
            );
        }
        let prechecked = Prechecked::default();
        let ctx = Ctx {
            prechecked: Some(&prechecked),
            ..self.ctx(svc, opts.force)
        };
        if opts.dry_run {
            for rid in &rids {
                let _s = info_span!("resource", svc = %svc.name, rid = %rid).entered();
                info!("would start");
            }
            return Ok(ActionReport::default());
        }
        for &rid in &rids {
            let Some(res) = svc.resource(rid) else {
                continue;
            };
            if skipped.contains(&rid) {
                continue;
            }
            let _s = info_span!("resource", svc = %svc.name, rid = %rid).entered();
            if let Err(source) = self.driver.precheck(&ctx, res) {
                if res.common.optional {
                    // OpenSVC's `optional`: its failures never fail the service's action.
                    warn!("{source} (optional resource: not started)");
                    skipped.push(rid);
                    continue;
                }
                error!("{source}");
                return Err(ActionError::Refused(ResourceError { rid, source }));
            }
        }
        let mut report = ActionReport::default();
        for &rid in &rids {
            let Some(res) = svc.resource(rid) else {
                continue;
            };
            if skipped.contains(&rid) {
                continue;
            }
            let span = info_span!("resource", svc = %svc.name, rid = %rid);
            let result = span.in_scope(|| self.driver.start(&ctx, res));
            if result.is_ok() {
                span.in_scope(|| self.claim(svc, res));
            }
            if !matches!(result, Ok(Outcome::AlreadyDone)) {
                // The host changed (or may have: a failed start): what the prechecks read is
                // not what a start would read now.
                prechecked.clear();
            }
            match result {
                Ok(Outcome::Changed) => report.changed.push(rid),
                Ok(Outcome::AlreadyDone) => report.unchanged.push(rid),
                Err(source) if res.common.optional => {
                    span.in_scope(|| warn!("{source} (optional resource: the start goes on)"));
                }
                Err(source) => {
                    span.in_scope(|| error!("{source}"));
                    let failed = ResourceError { rid, source };
                    if opts.disable_rollback {
                        warn!(
                            "rollback disabled: leaving {} resource(s) up",
                            report.changed.len()
                        );
                        return Err(ActionError::Start {
                            failed,
                            rolled_back: Vec::new(),
                            rollback_errors: Vec::new(),
                            rollback_disabled: true,
                        });
                    }
                    let (rolled_back, rollback_errors) = self.rollback(&ctx, &report.changed);
                    return Err(ActionError::Start {
                        failed,
                        rolled_back,
                        rollback_errors,
                        rollback_disabled: false,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Record that `res` of `svc` is up: its claim is now this service's.
    fn claim(&self, svc: &ServiceConfig, res: &berth_model::config::Resource) {
        if let Some(claim) = Claim::of(res)
            && let Err(e) = claims::add(self.paths, &svc.name, res.rid, claim)
        {
            warn!("{e}");
        }
    }

    /// Record that `res` of `svc` is down: it holds its claim no more.
    fn release(&self, svc: &ServiceConfig, res: &berth_model::config::Resource) {
        if Claim::of(res).is_some()
            && let Err(e) = claims::remove(self.paths, &svc.name, res.rid)
        {
            warn!("{e}");
        }
    }

    /// Stop, in reverse, what a failed start started.
    fn rollback(&self, ctx: &Ctx<'_>, started: &[Rid]) -> (Vec<Rid>, Vec<ResourceError>) {
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for &rid in started.iter().rev() {
            let Some(res) = ctx.svc.resource(rid) else {
                continue;
            };
            let _s = info_span!("resource", svc = %ctx.svc.name, rid = %rid).entered();
            info!("rollback");
            match self.driver.stop(ctx, res) {
                Ok(_) => {
                    self.release(ctx.svc, res);
                    done.push(rid);
                }
                Err(source) => {
                    error!("rollback: {source}");
                    errors.push(ResourceError { rid, source });
                }
            }
        }
        (done, errors)
    }

    /// Stop the selected resources in reverse order; keeps going past failures.
    pub fn stop(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        self.run_action(svc, opts, "stop", |e| e.stop_locked(svc, opts))
    }

    fn stop_locked(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        let ctx = self.ctx(svc, opts.force);
        let mut rids = self.selected(svc, opts)?;
        rids.reverse();
        let ledger = claims::Ledger::read(self.paths, &svc.name);
        debug_assert!(rids.iter().all(|r| stop_order(svc).contains(r)));
        let mut report = ActionReport::default();
        let mut errors = Vec::new();
        for rid in rids {
            let Some(res) = svc.resource(rid) else {
                continue;
            };
            let _s = info_span!("resource", svc = %svc.name, rid = %rid).entered();
            if opts.dry_run {
                info!("would stop");
                continue;
            }
            if res.common.is_standby() && !opts.force {
                info!("standby resource: left up (use --force to stop it)");
                continue;
            }
            if let Some(claim) = Claim::of(res)
                && let Some((other, their)) = ledger.foreign(rid, &claim)
            {
                info!(
                    "{claim} is held by service {other} ({their}), not by this service: left alone"
                );
                report.unchanged.push(rid);
                continue;
            }
            match self.driver.stop(&ctx, res) {
                Ok(outcome) => {
                    self.release(svc, res);
                    match outcome {
                        Outcome::Changed => report.changed.push(rid),
                        Outcome::AlreadyDone => report.unchanged.push(rid),
                    }
                }
                Err(source) => {
                    error!("{source}");
                    errors.push(ResourceError { rid, source });
                }
            }
        }
        if errors.is_empty() {
            Ok(report)
        } else {
            Err(ActionError::Stop(errors))
        }
    }

    /// Stop then start, under one lock.
    pub fn restart(
        &self,
        svc: &ServiceConfig,
        opts: &ActionOptions,
    ) -> Result<ActionReport, ActionError> {
        self.run_action(svc, opts, "restart", |e| {
            let stopped = e.stop_locked(svc, opts)?;
            let mut started = e.start_locked(svc, opts)?;
            started.changed.extend(stopped.changed);
            Ok(started)
        })
    }
}

/// Freeze (`true`) or thaw a service: the flag `<var>/<svc>/frozen` tells the agent's monitor
/// to leave it alone. Both are idempotent.
pub fn set_frozen(paths: &Paths, svc: &str, frozen: bool) -> Result<(), FreezeError> {
    let flag = paths.frozen_flag(svc);
    let fail = |error| FreezeError {
        path: flag.clone(),
        error,
    };
    if frozen {
        if let Some(dir) = flag.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        std::fs::write(&flag, b"").map_err(fail)
    } else {
        match std::fs::remove_file(&flag) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
            _ => Ok(()),
        }
    }
}

/// The frozen flag could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("{}cannot change the frozen flag {path}: {error}", needs_root(.error))]
pub struct FreezeError {
    /// The flag file.
    pub path: std::path::PathBuf,
    /// The OS error (in the message, not a source: printed once).
    pub error: std::io::Error,
}

/// `this action needs root: ` for a permission denied.
fn needs_root(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        "this action needs root: "
    } else {
        ""
    }
}

/// Whether a status counts as up for `svc <svc> status` (exit code 0).
pub fn is_up(status: Status) -> bool {
    matches!(status, Status::Up | Status::StdbyUp)
}

#[cfg(test)]
mod tests;
