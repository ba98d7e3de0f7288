//! Action log lines as the seed prints them: `HH:MM:SS LEVEL   SVC.RID   message`.
//!
//! The engine wraps every resource step in a span carrying `svc` (and `rid`); this layer prints
//! each event with the innermost such tag, upper-cased like OpenSVC does. The lines of a service
//! also go, dated, to its log file `<var>/<svc>/actions.log` (rotated by size: `actions.log.1` to
//! `.4`), which `svc SVC logs` prints.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The `SVC.RID` tag of a span, and its service.
#[derive(Debug, Clone)]
struct Tag(String, String);

#[derive(Default)]
struct TagVisitor {
    svc: Option<String>,
    rid: Option<String>,
}

impl Visit for TagVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "svc" => self.svc = Some(format!("{value:?}")),
            "rid" => self.rid = Some(format!("{value:?}")),
            _ => {}
        }
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

/// Prints action logs to stderr.
#[derive(Debug)]
pub struct ActionLog {
    /// The most verbose level printed.
    pub max: Level,
    /// Colour the level word.
    pub color: bool,
    /// The var dir: each service's lines go to its `actions.log` there too.
    pub var_dir: Option<PathBuf>,
}

/// Whether lines go to the services' log files (not during a `--dry-run`).
static TO_FILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Stop (or resume) writing to the services' log files: a dry run is no part of their history.
pub fn set_file_logging(on: bool) {
    TO_FILE.store(on, std::sync::atomic::Ordering::Relaxed);
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
/// `max` bytes. Writers take the file's lock, so two processes neither interleave a rotation
/// nor lose one (a writer that waited on a file rotated meanwhile opens the new one).
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
    if file.metadata()?.len() > 0 && file.metadata()?.len() + line.len() as u64 + 1 > max {
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

/// The service's log files, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let log = dir.join(LOG_FILE);
    (0..=LOG_KEEP)
        .rev()
        .map(|n| rotated(&log, n))
        .filter(|p| p.is_file())
        .collect()
}

/// Write a line to the service's log file only (the command line of an action).
pub fn note(var_dir: &Path, svc: &str, message: &str) {
    let line = format_line(
        &date_clock(),
        &Level::INFO,
        &svc.to_uppercase(),
        message,
        false,
    );
    let _ = append(&var_dir.join(svc), &line, LOG_MAX_BYTES);
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

impl<S> Layer<S> for ActionLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut v = TagVisitor::default();
        attrs.record(&mut v);
        let (tag, svc) = match (v.svc, v.rid) {
            (Some(svc), Some(rid)) => (format!("{svc}.{rid}"), svc),
            (Some(svc), None) => (svc.clone(), svc),
            _ => return,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Tag(tag.to_uppercase(), svc));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = event.metadata().level();
        if *level > self.max {
            return;
        }
        // Libraries' own chatter (hyper, bollard...) only when debugging.
        let target = event.metadata().target();
        if !target.starts_with("berth") && !target.starts_with("svc") && self.max < Level::DEBUG {
            return;
        }
        let tag = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .from_root()
                    .filter_map(|s| s.extensions().get::<Tag>().cloned())
                    .last()
            })
            .unwrap_or(Tag(String::new(), String::new()));
        let mut msg = MessageVisitor::default();
        event.record(&mut msg);
        let message = format!("{}{}", msg.message, msg.extra);
        let line = format_line(&clock(), level, &tag.0, &message, self.color);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
        if let Some(var) = &self.var_dir
            && !tag.1.is_empty()
            && TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
        {
            // A log that cannot be written (no permission on the var dir) does not stop svc.
            let line = format_line(&date_clock(), level, &tag.0, &message, false);
            let _ = append(&var.join(&tag.1), &line, LOG_MAX_BYTES);
        }
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
