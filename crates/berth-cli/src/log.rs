//! Action log lines as the seed prints them: `HH:MM:SS LEVEL   SVC.RID   message`.
//!
//! The engine wraps every resource step in a span carrying `svc` (and `rid`); this layer prints
//! each event with the innermost such tag, upper-cased like OpenSVC does.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The `SVC.RID` tag of a span.
#[derive(Debug, Clone)]
struct Tag(String);

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
}

/// `HH:MM:SS` in local time.
pub fn clock() -> String {
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
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
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
        let tag = match (v.svc, v.rid) {
            (Some(svc), Some(rid)) => format!("{svc}.{rid}"),
            (Some(svc), None) => svc,
            _ => return,
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Tag(tag.to_uppercase()));
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
            .map(|t| t.0)
            .unwrap_or_default();
        let mut msg = MessageVisitor::default();
        event.record(&mut msg);
        let line = format_line(
            &clock(),
            level,
            &tag,
            &format!("{}{}", msg.message, msg.extra),
            self.color,
        );
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
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
    fn clock_shape() {
        let c = clock();
        assert_eq!(c.len(), 8);
        assert_eq!(&c[2..3], ":");
    }
}
