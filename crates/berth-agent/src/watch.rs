//! Noticing changes made behind svcd's back: service files, `node.toml` and the token files
//! (reload: a token written, rotated or chmod-ed applies at once), and
//! `<var>/<svc>/last_action.json` and `<var>/<svc>/frozen` (the CLI ran an action, froze or
//! thawed: check that service now).
//!
//! inotify (through nix) on the config dir, `services/`, the var dir and each `<var>/<svc>`;
//! when inotify cannot be had (no instances left), or with `BERTH_SVCD_WATCH=poll`, a 200 ms
//! mtime poll of the same files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_engine::record;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::state::Shared;

/// A change svcd should react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `node.toml` or a service file changed: reload.
    Config,
    /// Something changed in `<var>/<svc>`: check that service.
    Service(String),
    /// Events were lost: reload and check everything.
    Overflow,
}

/// How often the fallback poll looks.
pub const POLL_PERIOD: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
enum Target {
    ConfigDir,
    /// A directory holding a token file, other than the config dir.
    TokenDir(PathBuf),
    ServicesDir,
    VarDir,
    SvcVar(String),
}

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

struct Watcher {
    fd: AsyncFd<Fd>,
    targets: HashMap<WatchDescriptor, Target>,
    paths: berth_model::paths::Paths,
    shared: Arc<Shared>,
}

const DIR_MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_ONLYDIR);

/// The config dir and token dirs also see a chmod: a token file made private (or public) counts.
const CONFIG_MASK: AddWatchFlags = DIR_MASK.union(AddWatchFlags::IN_ATTRIB);

/// The token files svcd reads now.
fn token_files(shared: &Shared) -> [PathBuf; 2] {
    let s = shared.settings();
    [s.token_file.clone(), s.read_token_file.clone()]
}

impl Watcher {
    fn add(&mut self, path: &Path, target: Target) {
        let mask = match target {
            Target::ConfigDir | Target::TokenDir(_) => CONFIG_MASK,
            Target::ServicesDir | Target::VarDir | Target::SvcVar(_) => DIR_MASK,
        };
        match self.fd.get_ref().0.add_watch(path, mask) {
            Ok(wd) => {
                self.targets.insert(wd, target);
            }
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => tracing::warn!("cannot watch {}: {e}", path.display()),
        }
    }

    /// Watch the directories of token files kept outside the config dir (`token_file` in
    /// node.toml), once each. (A token file in `services/` or the var dir, already watched for
    /// other things, is left to SIGHUP: one inotify watch per directory.)
    fn add_token_dirs(&mut self) {
        for file in token_files(&self.shared) {
            let Some(dir) = file.parent() else { continue };
            let known = dir == self.paths.config_dir
                || dir == self.paths.services_dir()
                || dir == self.paths.var_dir
                || self
                    .targets
                    .values()
                    .any(|t| matches!(t, Target::TokenDir(d) if d == dir));
            if !known {
                self.add(dir, Target::TokenDir(dir.to_path_buf()));
            }
        }
    }

    /// Whether `file` is one of the token files svcd reads now.
    fn is_token(&self, file: &Path) -> bool {
        token_files(&self.shared).iter().any(|t| t == file)
    }

    fn add_svc(&mut self, name: &str) {
        if name.starts_with('.') {
            return;
        }
        let dir = self.paths.service_var(name);
        self.add(&dir, Target::SvcVar(name.to_string()));
    }

    /// Events of one read, mapped.
    fn map(&mut self, events: Vec<nix::sys::inotify::InotifyEvent>) -> Vec<Event> {
        let mut out = Vec::new();
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                out.push(Event::Overflow);
                continue;
            }
            if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                self.targets.remove(&ev.wd);
                continue;
            }
            let Some(target) = self.targets.get(&ev.wd).cloned() else {
                continue;
            };
            let name = ev.name.as_deref().unwrap_or(OsStr::new(""));
            let name = name.to_string_lossy();
            let is_dir = ev.mask.contains(AddWatchFlags::IN_ISDIR);
            let appeared = ev
                .mask
                .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
            match target {
                Target::ConfigDir => {
                    if name == "services" && is_dir && appeared {
                        let dir = self.paths.services_dir();
                        self.add(&dir, Target::ServicesDir);
                        out.push(Event::Config);
                    } else if name == "node.toml"
                        || name == "services"
                        || self.is_token(&self.paths.config_dir.join(&*name))
                    {
                        out.push(Event::Config);
                    }
                }
                Target::TokenDir(dir) => {
                    if self.is_token(&dir.join(&*name)) {
                        out.push(Event::Config);
                    }
                }
                Target::ServicesDir => {
                    if !name.starts_with('.') && !is_dir {
                        out.push(Event::Config);
                    }
                }
                Target::VarDir => {
                    if is_dir && appeared {
                        self.add_svc(&name);
                        // The first action may have written its record before the watch was set.
                        out.push(Event::Service(name.to_string()));
                    }
                }
                Target::SvcVar(svc) => {
                    if name == record::FILE || name == "frozen" {
                        out.push(Event::Service(svc));
                    }
                }
            }
        }
        out.dedup();
        out
    }
}

/// Watch the config and var dirs, sending what changed to `tx`, until `tx` closes.
pub async fn run(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Event>) {
    let paths = shared.paths.clone();
    if std::env::var_os("BERTH_SVCD_WATCH").is_some_and(|v| v == "poll") {
        tracing::info!(
            "BERTH_SVCD_WATCH=poll: polling every {}ms",
            POLL_PERIOD.as_millis()
        );
        return poll(shared, tx).await;
    }
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(std::io::Error::from)
        .and_then(|i| {
            // SAFETY: `Fd` owns the inotify descriptor: it stays open, and is the same one, for
            // as long as the `AsyncFd` that owns the `Fd` lives.
            unsafe { AsyncFd::register_with_interest(Fd(i), tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
        });
    let fd = match inotify {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(
                "inotify unavailable ({e}): polling the config and var dirs every {}ms",
                POLL_PERIOD.as_millis()
            );
            return poll(shared, tx).await;
        }
    };
    let mut w = Watcher {
        fd,
        targets: HashMap::new(),
        paths: paths.clone(),
        shared: shared.clone(),
    };
    w.add(&paths.config_dir, Target::ConfigDir);
    w.add_token_dirs();
    w.add(&paths.services_dir(), Target::ServicesDir);
    w.add(&paths.var_dir, Target::VarDir);
    if let Ok(entries) = std::fs::read_dir(&paths.var_dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                w.add_svc(&e.file_name().to_string_lossy());
            }
        }
    }
    loop {
        let mut guard = tokio::select! {
            g = w.fd.readable() => match g {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!("inotify: {e}");
                    return;
                }
            },
            _ = tx.closed() => return,
        };
        match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
            Ok(Ok(events)) => {
                for ev in w.map(events) {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                // node.toml may name a token file in another directory now.
                w.add_token_dirs();
            }
            Ok(Err(e)) => {
                tracing::error!("inotify read: {e}");
                tokio::time::sleep(POLL_PERIOD).await;
            }
            Err(_would_block) => {}
        }
    }
}

/// A file's identity for the poll: modification time, length and mode (a chmod of a token
/// file counts).
type Stamp = (SystemTime, u64, u32);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.permissions().mode()))
}

/// The fallback: look at the files every [`POLL_PERIOD`].
pub(crate) async fn poll(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Event>) {
    let paths = shared.paths.clone();
    let config_stamp = |paths: &berth_model::paths::Paths| -> Vec<(PathBuf, Option<Stamp>)> {
        let mut files = vec![paths.node_config(), paths.services_dir()];
        files.extend(token_files(&shared));
        if let Ok(entries) = std::fs::read_dir(paths.services_dir()) {
            files.extend(entries.flatten().map(|e| e.path()));
        }
        files.sort();
        files
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect()
    };
    let mut last_config = config_stamp(&paths);
    let mut last_svc: HashMap<String, (Option<Stamp>, bool)> = HashMap::new();
    let mut tick = tokio::time::interval(POLL_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = tx.closed() => return,
        }
        let now = config_stamp(&paths);
        if now != last_config {
            last_config = now;
            if tx.send(Event::Config).is_err() {
                return;
            }
        }
        for (name, _) in shared.workers() {
            let dir = paths.service_var(&name);
            let cur = (
                stamp(&dir.join(record::FILE)),
                paths.frozen_flag(&name).exists(),
            );
            let prev = last_svc.insert(name.clone(), cur);
            if prev.is_some_and(|p| p != cur) && tx.send(Event::Service(name)).is_err() {
                return;
            }
        }
    }
}
