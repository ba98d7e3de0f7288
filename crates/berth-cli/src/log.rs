//! Action log lines as the seed prints them: `HH:MM:SS LEVEL   SVC.RID   message`.
//!
//! The engine wraps every resource step in a span carrying `svc` (and `rid`); this layer prints
//! each event with the innermost such tag, upper-cased like OpenSVC does. The lines of a service
//! also go, dated, to its log file `<var>/<svc>/actions.log` (rotated by size: `actions.log.1` to
//! `.4`), which `svc SVC logs` prints. The tags, the line format and the file (its lock and
//! rotation) are `berth_manual::log`'s, shared with svcd, which writes its actions there too.

use std::io::Write as _;
use std::path::PathBuf;

use berth_manual::log::{clock, event_message, event_tag, format_line, record_span, to_file};
pub use berth_manual::log::{files, note};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

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

impl<S> Layer<S> for ActionLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        record_span(attrs, id, &ctx);
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
        let tag = event_tag(event, &ctx);
        let message = event_message(event);
        let shown = tag.as_ref().map_or("", |t| t.tag.as_str());
        let line = format_line(&clock(), level, shown, &message, self.color);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
        if let Some(var) = &self.var_dir
            && let Some(tag) = &tag
            && TO_FILE.load(std::sync::atomic::Ordering::Relaxed)
        {
            to_file(var, tag, level, &message);
        }
    }
}

/// `svc SVC logs --follow`: print the service's log files (`dir` is `<var>/<svc>`) as `logs`
/// does, then the lines appended to `actions.log` as they come, by `svc` or svcd, across its
/// rotations (a file renamed to `.1` is read to its end, then the new one from its start).
///
/// It waits on inotify (the service's dir: a write, a create, a rename) and on stdout itself:
/// a pipe whose reader went away says so (POLLERR), so `svc web logs -f | head -1` ends, quietly
/// (exit 0), even when nothing more is written. It also looks every second, which covers a
/// service dir that does not exist yet and a host out of inotify instances. It ends otherwise
/// only by a signal (SIGINT, SIGTERM: their default disposition). `Err`: a file that cannot be
/// read.
pub fn follow(dir: &std::path::Path) -> Result<(), String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd as _;

    let log = dir.join(berth_manual::log::LOG_FILE);
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
    let mask = AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF;
    let mut watching = false;
    let watch = |watching: &mut bool| {
        if !*watching && let Some(fd) = &inotify {
            *watching = fd.add_watch(dir, mask).is_ok();
        }
    };
    watch(&mut watching);
    // The rotated files, oldest first, then the current one, which is followed.
    let mut current: Option<Followed> = None;
    for f in files(dir) {
        if f == log {
            current = Followed::open(&log)?;
            continue;
        }
        let mut file =
            std::fs::File::open(&f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        if !copy_out(&mut file, &f)? {
            return Ok(());
        }
    }
    loop {
        if let Some(cur) = &mut current {
            // Renamed away (rotated) or removed: what was written to it before that is all it
            // will get (writers rotate under its lock), so read it to its end, then the new one.
            let moved = !cur.is_at(&log);
            if !cur.copy_new()? {
                return Ok(());
            }
            if moved {
                current = None;
            }
        }
        if current.is_none() {
            current = Followed::open(&log)?;
            if let Some(cur) = &mut current
                && !cur.copy_new()?
            {
                return Ok(());
            }
            // The service's dir may have appeared.
            watch(&mut watching);
        }
        let stdout = std::io::stdout();
        let mut fds = vec![PollFd::new(stdout.as_fd(), PollFlags::empty())];
        if watching && let Some(fd) = &inotify {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("cannot wait for new lines: {e}")),
        }
        let gone = PollFlags::POLLERR | PollFlags::POLLHUP;
        if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
            // Its reader went away: nobody reads any more.
            return Ok(());
        }
        drop(fds);
        if let Some(fd) = &inotify {
            // Drain the events: each wake-up reads whatever is new, whichever event woke it.
            while fd.read_events().is_ok_and(|evs| !evs.is_empty()) {}
        }
    }
}

/// Copy `file` to stdout; false when stdout stopped taking it.
fn copy_out(file: &mut std::fs::File, path: &std::path::Path) -> Result<bool, String> {
    berth_manual::out::copy(file).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The followed `actions.log`: its open file (read from where the last read stopped) and its
/// identity, to tell when it was rotated.
struct Followed {
    file: std::fs::File,
    path: PathBuf,
    ino: (u64, u64),
}

impl Followed {
    /// Open `path`; `None` when it does not exist (yet).
    fn open(path: &std::path::Path) -> Result<Option<Followed>, String> {
        use std::os::unix::fs::MetadataExt as _;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Some(Followed {
            file,
            path: path.to_path_buf(),
            ino: (meta.dev(), meta.ino()),
        }))
    }

    /// Whether `path` is still this file.
    fn is_at(&self, path: &std::path::Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == self.ino)
    }

    /// Print what was appended since the last read (all of it after a truncation); false when
    /// stdout stopped taking it.
    fn copy_new(&mut self) -> Result<bool, String> {
        use std::io::Seek as _;
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if self.file.stream_position().is_ok_and(|pos| pos > len) {
            // Truncated (`: > actions.log`): read it again from its start.
            let _ = self.file.rewind();
        }
        copy_out(&mut self.file, &self.path)
    }
}
