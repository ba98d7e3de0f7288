//! How berth logs, in the two places an operator reads:
//! - the daemons (`svcd`, `berth-collector`) log to stderr, no colours, no targets; under systemd
//!   (`JOURNAL_STREAM` set) without timestamps, since journald stamps each line itself
//!   ([`init_daemon`]);
//! - each service's action log, `<var>/<svc>/actions.log` (rotated by size: `actions.log.1` to
//!   `.4`), which `svc SVC logs` prints: dated lines as the seed prints them, `YYYY-MM-DD
//!   HH:MM:SS LEVEL   SVC.RID   message` ([`format_line`], [`append`], [`files`]). `svc` writes
//!   there what its actions do (its own layer, in berth-cli), svcd what its actions do
//!   ([`DaemonActions`]), each line of svcd's starting with who acted (`svcd monitor: ...`).
//!
//! The engine wraps every resource step in a span carrying `svc` (and `rid`); an event's tag is
//! the innermost such span's, upper-cased like OpenSVC does ([`record_span`], [`event_tag`]).
//! svcd's actions run in a span that also carries `origin` (`svcd monitor`, `svcd http`...): only
//! events under such a span go to the file from svcd (its status checks and its own chatter do
//! not), with the origin heading the message.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// Install the daemon's log subscriber: the filter from the environment variable `var`
/// (`SVCD_LOG=debug`), else `default` (`info,hyper=warn`). With `actions` (svcd's var dir), the
/// events of svcd's actions go to the services' log files too ([`DaemonActions`]), whatever
/// that filter says: at `info` and above, from berth's crates.
pub fn init_daemon(var: &str, default: &str, actions: Option<&Path>) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        // Its report of a failed write is an `eprintln!`, which panics when stderr is a closed
        // pipe (`svcd 2>&1 | head -1`): a line that cannot be written is dropped (see `out`).
        .log_internal_errors(false);
    let fmt = if journald {
        fmt.without_time().boxed()
    } else {
        fmt.boxed()
    };
    let files = actions.map(|var_dir| {
        DaemonActions {
            var_dir: var_dir.to_path_buf(),
        }
        .with_filter(berth_targets())
    });
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(files)
        .try_init();
}

/// berth's own crates (`berth_engine`, `berth_drivers`, `berth_agent`, `svcd`...) at `info` and
/// above: what goes to a service's log file. Libraries' chatter (hyper, bollard) does not.
fn berth_targets() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_target("berth", Level::INFO)
        .with_target("svc", Level::INFO)
}

/// A service's log file: `<var>/<svc>/actions.log`.
pub const LOG_FILE: &str = "actions.log";
/// A log file is rotated before it grows past this size.
pub const LOG_MAX_BYTES: u64 = 1024 * 1024;
/// Rotated files kept: `actions.log.1` (the newest) to `actions.log.4`.
pub const LOG_KEEP: u32 = 4;

/// The rotated file `n` of `log` (`n` = 0: `log` itself).
fn rotated(log: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return log.to_path_buf();
    }
    let mut s = log.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Append `line` to `<dir>/actions.log`, rotating it first when the line would take it past
/// `max` bytes. Writers take the file's lock, so two processes (`svc` and `svcd`) neither
/// interleave a rotation nor lose one (a writer that waited on a file rotated meanwhile opens
/// the new one).
pub fn append(dir: &Path, line: &str, max: u64) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::create_dir_all(dir)?;
    let log = dir.join(LOG_FILE);
    let open = || {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log)
    };
    let mut file = open()?;
    for _ in 0..5 {
        file.lock()?;
        let meta = file.metadata()?;
        let current = std::fs::metadata(&log).ok();
        if current.is_some_and(|c| c.ino() == meta.ino() && c.dev() == meta.dev()) {
            break;
        }
        // Rotated while this waited for the lock.
        file = open()?;
    }
    let len = file.metadata()?.len();
    if len > 0 && len + line.len() as u64 + 1 > max {
        for n in (1..LOG_KEEP).rev() {
            match std::fs::rename(rotated(&log, n), rotated(&log, n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&log, rotated(&log, 1))?;
        // The old file stays locked until `file` drops: a waiting writer then sees it moved.
        let fresh = open()?;
        fresh.lock()?;
        drop(file);
        file = fresh;
    }
    file.write_all(format!("{line}\n").as_bytes())
}

/// The service's log files (`dir` is `<var>/<svc>`), oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let log = dir.join(LOG_FILE);
    (0..=LOG_KEEP)
        .rev()
        .map(|n| rotated(&log, n))
        .filter(|p| p.is_file())
        .collect()
}

/// Write a line to the service's log file only, tagged with the service (the command line of
/// an action).
pub fn note(var_dir: &Path, svc: &str, message: &str) {
    note_at(var_dir, svc, None, &Level::INFO, message);
}

/// Write a line to the service's log file only, tagged `SVC` or `SVC.RID`, at `level`. A log
/// that cannot be written (no permission on the var dir) is no reason to stop an action.
pub fn note_at(var_dir: &Path, svc: &str, rid: Option<&str>, level: &Level, message: &str) {
    let tag = match rid {
        Some(rid) => format!("{svc}.{rid}"),
        None => svc.to_string(),
    };
    let tag = Tag {
        tag: tag.to_uppercase(),
        svc: svc.to_string(),
    };
    to_file(var_dir, &tag, level, message);
}

/// Write `message`, dated, to the log file of `tag`'s service under `var_dir`. A log that
/// cannot be written (no permission on the var dir) is no reason to stop an action or a daemon.
pub fn to_file(var_dir: &Path, tag: &Tag, level: &Level, message: &str) {
    let line = format_line(&date_clock(), level, &tag.tag, message, false);
    let _ = append(&var_dir.join(&tag.svc), &line, LOG_MAX_BYTES);
}

/// `HH:MM:SS` in local time.
pub fn clock() -> String {
    local_time(false)
}

/// `YYYY-MM-DD HH:MM:SS` in local time, for the log file.
pub fn date_clock() -> String {
    local_time(true)
}

fn local_time(date: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| libc::time_t::try_from(d.as_secs()).ok())
        .unwrap_or(0);
    // SAFETY: `tm` is plain data; localtime_r only writes into it and reads `now`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the thread-safe variant.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        return "??:??:??".to_string();
    }
    let time = format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
    if date {
        format!(
            "{:04}-{:02}-{:02} {time}",
            i64::from(tm.tm_year) + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        )
    } else {
        time
    }
}

/// Format one line: `HH:MM:SS LEVEL   TAG   message`.
pub fn format_line(time: &str, level: &Level, tag: &str, message: &str, color: bool) -> String {
    let word = match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    };
    let word = format!("{word:<7}");
    let word = match (*level, color) {
        (Level::ERROR, true) => format!("\x1b[31m{word}\x1b[0m"),
        (Level::WARN, true) => format!("\x1b[33m{word}\x1b[0m"),
        _ => word,
    };
    if tag.is_empty() {
        format!("{time} {word} {message}")
    } else {
        format!("{time} {word} {tag:<26} {message}")
    }
}

/// The `SVC.RID` tag of a span (upper-cased) and its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// `WEB.FS#1`, `WEB`.
    pub tag: String,
    /// `web`: the service whose log file the line goes to.
    pub svc: String,
}

/// Who acted, from a span's `origin` field (`svcd monitor`).
#[derive(Debug, Clone)]
struct Origin(String);

#[derive(Default)]
struct TagVisitor {
    svc: Option<String>,
    rid: Option<String>,
    origin: Option<String>,
}

impl TagVisitor {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "svc" => self.svc = Some(value),
            "rid" => self.rid = Some(value),
            "origin" => self.origin = Some(value),
            _ => {}
        }
    }
}

impl Visit for TagVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_string());
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    extra: String,
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value}", field.name());
        }
    }
}

/// Keep a new span's tag (`svc`, `rid`) and origin, for [`event_tag`] and its events. One layer
/// of a subscriber calls this from its `on_new_span`.
pub fn record_span<S>(attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut v = TagVisitor::default();
    attrs.record(&mut v);
    let tag = match (v.svc, v.rid) {
        (Some(svc), Some(rid)) => Some(Tag {
            tag: format!("{svc}.{rid}").to_uppercase(),
            svc,
        }),
        (Some(svc), None) => Some(Tag {
            tag: svc.to_uppercase(),
            svc,
        }),
        _ => None,
    };
    if tag.is_none() && v.origin.is_none() {
        return;
    }
    if let Some(span) = ctx.span(id) {
        let mut ext = span.extensions_mut();
        if let Some(tag) = tag {
            ext.insert(tag);
        }
        if let Some(origin) = v.origin {
            ext.insert(Origin(origin));
        }
    }
}

/// The tag of the innermost span of `event` that has one.
pub fn event_tag<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Tag>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope(event).and_then(|scope| {
        scope
            .from_root()
            .filter_map(|s| s.extensions().get::<Tag>().cloned())
            .last()
    })
}

/// Who acted: the origin of the innermost span of `event` that has one.
fn event_origin<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope(event).and_then(|scope| {
        scope
            .from_root()
            .filter_map(|s| s.extensions().get::<Origin>().map(|o| o.0.clone()))
            .last()
    })
}

/// The message of `event`, its other fields after it (` key=value`).
pub fn event_message(event: &Event<'_>) -> String {
    let mut msg = MessageVisitor::default();
    event.record(&mut msg);
    format!("{}{}", msg.message, msg.extra)
}

/// svcd's layer: each event of its actions (under a span with an `origin`) that is tagged with
/// a service goes, dated, to `<var>/<svc>/actions.log`, as `svc`'s lines do, its message headed
/// by the origin: `2026-12-01 03:02:11 INFO    WEB.FS#1                   svcd monitor: mount
/// /dev/loop3 /srv/web`.
#[derive(Debug)]
pub struct DaemonActions {
    /// The var dir.
    pub var_dir: PathBuf,
}

impl<S> Layer<S> for DaemonActions
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        record_span(attrs, id, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(origin) = event_origin(event, &ctx) else {
            return;
        };
        let Some(tag) = event_tag(event, &ctx) else {
            return;
        };
        let message = format!("{origin}: {}", event_message(event));
        to_file(&self.var_dir, &tag, event.metadata().level(), &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_the_seed() {
        // "06:36:40 INFO    DOCKER.OPENSVC.COM.VG#1    vgchange --addtag @deb1.opensvc.com vgdocker"
        assert_eq!(
            format_line(
                "06:36:40",
                &Level::INFO,
                "DOCKER.OPENSVC.COM.VG#1",
                "vgchange -a y vgdocker",
                false
            ),
            "06:36:40 INFO    DOCKER.OPENSVC.COM.VG#1    vgchange -a y vgdocker"
        );
        // A tag longer than the column pushes the message, with one space, as in the seed.
        assert_eq!(
            format_line(
                "07:17:58",
                &Level::INFO,
                "DOCKER.OPENSVC.COM.CONTAINER#1",
                "wait for container up status",
                false
            ),
            "07:17:58 INFO    DOCKER.OPENSVC.COM.CONTAINER#1 wait for container up status"
        );
        assert_eq!(
            format_line("07:17:58", &Level::WARN, "WEB", "x", false),
            "07:17:58 WARNING WEB                        x"
        );
    }

    #[test]
    fn the_log_file_rotates_by_size_and_keeps_four_old_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("web");
        // Lines of 9 bytes and a newline, files of at most 35 bytes: 3 lines a file.
        for i in 0..20 {
            append(&dir, &format!("line {i:04}"), 35).unwrap();
        }
        let all = files(&dir);
        let names: Vec<String> = all
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "actions.log.4",
                "actions.log.3",
                "actions.log.2",
                "actions.log.1",
                "actions.log"
            ]
        );
        let text: String = all
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        let lines: Vec<&str> = text.lines().collect();
        // The 14 newest lines (2 in the current file, 3 in each old one), in order: the
        // older files were dropped.
        let want: Vec<String> = (6..20).map(|i| format!("line {i:04}")).collect();
        assert_eq!(lines, want);
        for p in &all {
            assert!(std::fs::metadata(p).unwrap().len() <= 35, "{}", p.display());
        }
    }

    /// svcd's layer writes what happens under an `origin` span, tagged by the innermost
    /// `svc`/`rid` span, headed by the origin; events without an origin (status checks,
    /// svcd's own lines) or without a service, and libraries' events, stay out of the file.
    #[test]
    fn daemon_actions_go_to_the_service_file_with_their_origin() {
        let d = tempfile::tempdir().unwrap();
        let layer = DaemonActions {
            var_dir: d.path().to_path_buf(),
        }
        .with_filter(berth_targets());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("svcd starting: no service");
            {
                let _s = tracing::info_span!("resource", svc = "web", rid = "fs#1").entered();
                tracing::info!("a status check: not an action");
            }
            let _s = tracing::info_span!("service", svc = "web", origin = "svcd monitor").entered();
            tracing::warn!("fs#1 is down: restart 1 of 2");
            {
                let _r = tracing::info_span!("resource", svc = "web", rid = "fs#1").entered();
                tracing::info!(code = 0, "mount /dev/loop3 /srv/web");
                tracing::debug!("not at info");
                tracing::info!(target: "hyper", "not berth's");
            }
        });
        let text = std::fs::read_to_string(d.path().join("web").join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| &l[20..]).collect();
        assert_eq!(
            lines,
            [
                "WARNING WEB                        svcd monitor: fs#1 is down: restart 1 of 2",
                "INFO    WEB.FS#1                   svcd monitor: mount /dev/loop3 /srv/web code=0",
            ],
            "{text}"
        );
        assert_eq!(files(d.path()).len(), 0, "nothing without a service");
    }

    #[test]
    fn notes_are_tagged_by_service_and_rid() {
        let d = tempfile::tempdir().unwrap();
        note(d.path(), "web", "svc web start");
        note_at(
            d.path(),
            "web",
            Some("fs#1"),
            &Level::WARN,
            "svcd monitor: down",
        );
        let text = std::fs::read_to_string(d.path().join("web").join(LOG_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| &l[20..]).collect();
        assert_eq!(
            lines,
            [
                "INFO    WEB                        svc web start",
                "WARNING WEB.FS#1                   svcd monitor: down",
            ]
        );
    }

    #[test]
    fn date_clock_shape() {
        let c = date_clock();
        assert_eq!(c.len(), 19, "{c}");
        assert_eq!(&c[4..5], "-");
        assert_eq!(&c[10..11], " ");
    }

    #[test]
    fn clock_shape() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
    }
}
