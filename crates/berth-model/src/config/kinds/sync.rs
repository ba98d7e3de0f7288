//! `[sync#N]` (`[sync.N]` in TOML): a data replication to other nodes, of type `rsync`. Its
//! spec, its keywords and their reader; the schedule's grammar.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::alias::Alias;
use crate::config::raw::RawValue;
use crate::config::reader::{Reader, Sink};
use crate::config::value::Dur;

/// The keywords of `[sync#N]`, mandatory ones first.
pub const KEYWORDS: &[&str] = &[
    "src",
    "target",
    "type",
    "dst",
    "dstfs",
    "schedule",
    "sync_max_delay",
    "exclude",
    "bwlimit",
    "timeout",
    "options",
];

/// The `type` values of `[sync#N]` berth runs; the first is the default. OpenSVC's others
/// (`dds`, `zfs`, `btrfs`, `symsrdfs`...) are refused at load, naming them.
pub(crate) const DRIVER_TYPES: &[&str] = &["rsync"];

/// The OpenSVC aliases of `[sync#N]`'s keywords: none, berth takes OpenSVC's names.
pub(crate) const ALIASES: &[Alias] = &[];

/// Where a sync sends: the service's other `nodes`, its `drpnodes`, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncTarget {
    /// The service's `nodes` but the sender.
    Nodes,
    /// The service's `drpnodes`.
    Drpnodes,
}

impl SyncTarget {
    /// Both, in the order a `sync update` sends.
    pub const ALL: [SyncTarget; 2] = [SyncTarget::Nodes, SyncTarget::Drpnodes];

    /// Its keyword value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncTarget::Nodes => "nodes",
            SyncTarget::Drpnodes => "drpnodes",
        }
    }

    /// The class of a word (`nodes`, `drpnodes`).
    pub fn parse(word: &str) -> Option<SyncTarget> {
        SyncTarget::ALL.into_iter().find(|t| t.as_str() == word)
    }
}

/// `schedule`: when svcd runs the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Schedule {
    /// `""`: only by hand.
    Manual,
    /// `@MIN`: every MIN minutes.
    Every(u32),
    /// `HH:MM-HH:MM@MIN`: every MIN minutes within the daily window (UTC minutes of the day;
    /// a window whose end is before its start spans midnight).
    Window {
        /// The window's first minute of the day.
        from: u32,
        /// The window's last minute of the day.
        to: u32,
        /// Minutes between runs.
        every: u32,
    },
}

impl Schedule {
    /// Parse `""`, `@60`, `22:00-06:00@120`.
    pub fn parse(s: &str) -> Option<Schedule> {
        let s = s.trim();
        if s.is_empty() {
            return Some(Schedule::Manual);
        }
        let (window, every) = s.split_once('@')?;
        let every: u32 = every.trim().parse().ok().filter(|m| *m > 0)?;
        let window = window.trim();
        if window.is_empty() {
            return Some(Schedule::Every(every));
        }
        let (from, to) = window.split_once('-')?;
        Some(Schedule::Window {
            from: minute_of_day(from)?,
            to: minute_of_day(to)?,
            every,
        })
    }

    /// The period between runs, none for a manual schedule.
    pub fn every(self) -> Option<Duration> {
        match self {
            Schedule::Manual => None,
            Schedule::Every(m) | Schedule::Window { every: m, .. } => {
                Some(Duration::from_secs(u64::from(m) * 60))
            }
        }
    }

    /// Whether minute `m` of the day (UTC) is within the schedule's window (always, for `@MIN`;
    /// never, for a manual one).
    pub fn in_window(self, m: u32) -> bool {
        match self {
            Schedule::Manual => false,
            Schedule::Every(_) => true,
            Schedule::Window { from, to, .. } if from <= to => (from..=to).contains(&m),
            Schedule::Window { from, to, .. } => m >= from || m <= to,
        }
    }

    /// Whether a scheduled run is due: in the window, and the last attempt (seconds since the
    /// epoch; none yet) at least a period ago.
    pub fn due(self, now: u64, last_attempt: Option<u64>) -> bool {
        let Some(every) = self.every() else {
            return false;
        };
        let minute = u32::try_from((now % 86_400) / 60).unwrap_or(0);
        self.in_window(minute) && last_attempt.is_none_or(|t| now >= t + every.as_secs())
    }
}

fn minute_of_day(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        match s {
            Schedule::Manual => String::new(),
            Schedule::Every(m) => format!("@{m}"),
            Schedule::Window { from, to, every } => format!(
                "{:02}:{:02}-{:02}:{:02}@{every}",
                from / 60,
                from % 60,
                to / 60,
                to % 60
            ),
        }
    }
}

/// `[sync#N]`: an rsync of `src` on the node running the service to `dst` on each target node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncSpec {
    /// What is sent (an absolute path; a trailing `/` sends its content, as rsync reads it).
    pub src: PathBuf,
    /// Where it goes on the target (default: `src`).
    pub dst: PathBuf,
    /// On the target, a mount point the sync refuses to write without (the DR copy's own fs).
    pub dstfs: Option<PathBuf>,
    /// The target classes, each once, `nodes` first.
    pub target: Vec<SyncTarget>,
    /// When svcd runs it.
    pub schedule: Schedule,
    /// The status warns when the last good sync to a target is older.
    pub sync_max_delay: Duration,
    /// rsync `--exclude` patterns.
    pub exclude: Vec<String>,
    /// rsync `--bwlimit`, in KiB/s.
    pub bwlimit: Option<u32>,
    /// The bound on one transfer (rsync is killed past it); also rsync's I/O `--timeout`.
    pub timeout: Option<Duration>,
    /// More rsync options, appended to berth's.
    pub options: Vec<String>,
}

pub(crate) fn read(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<SyncSpec> {
    let _ = r.string("type");
    let src = e.ok(r.abs_path("src").and_then(|p| {
        p.ok_or_else(|| r.error("src", crate::config::error::ConfigErrorKind::MissingKey))
    }));
    let dst = e.ok(r.abs_path("dst"));
    let dstfs = e.ok(r.abs_path("dstfs"));
    let target = e.ok(r.list("target").and_then(|words| {
        if words.is_empty() {
            return Err(r.error("target", crate::config::error::ConfigErrorKind::MissingKey));
        }
        let mut out = Vec::new();
        for w in &words {
            match SyncTarget::parse(w) {
                Some(t) if !out.contains(&t) => out.push(t),
                Some(_) => {}
                None => {
                    return Err(r.bad(
                        "target",
                        &RawValue::Str(w.clone()),
                        "expected nodes and/or drpnodes",
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }));
    let schedule = e.ok(r.string("schedule").and_then(|s| match s {
        None => Ok(Schedule::Manual),
        Some(s) => Schedule::parse(&s).ok_or_else(|| {
            r.bad(
                "schedule",
                &RawValue::Str(s),
                "expected \"@MIN\", \"HH:MM-HH:MM@MIN\" or \"\" (manual only)",
            )
        }),
    }));
    let sync_max_delay = e.ok(r.duration("sync_max_delay", Duration::from_secs(86_400)));
    let exclude = e.ok(r.list("exclude"));
    let bwlimit = e.ok(r
        .integer("bwlimit", 1, i64::from(u32::MAX))
        .map(|b| b.and_then(|b| u32::try_from(b).ok())));
    // 0 (the default) is no bound.
    let timeout = e.ok(r
        .duration("timeout", Duration::ZERO)
        .map(|d| (!d.is_zero()).then_some(d)));
    let options = e.ok(r.words("options").map(Option::unwrap_or_default));
    let src: PathBuf = src?;
    Some(SyncSpec {
        dst: dst?.unwrap_or_else(|| src.clone()),
        src,
        dstfs: dstfs?,
        target: target?,
        schedule: schedule?,
        sync_max_delay: sync_max_delay?,
        exclude: exclude?,
        bwlimit: bwlimit?,
        timeout: timeout?,
        options: options?,
    })
}

/// `[sync#N]` as `print config` writes it.
#[derive(Serialize)]
pub(crate) struct SyncView<'a> {
    #[serde(rename = "type")]
    typ: &'static str,
    src: String,
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dstfs: Option<String>,
    target: Vec<&'static str>,
    schedule: String,
    sync_max_delay: Dur,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    exclude: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    bwlimit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<Dur>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    options: &'a [String],
}

/// The `print config` view of a spec.
pub(crate) fn view(s: &SyncSpec) -> SyncView<'_> {
    SyncView {
        typ: DRIVER_TYPES[0],
        src: s.src.to_string_lossy().into_owned(),
        dst: s.dst.to_string_lossy().into_owned(),
        dstfs: s.dstfs.as_ref().map(|p| p.to_string_lossy().into_owned()),
        target: s.target.iter().map(|t| t.as_str()).collect(),
        schedule: s.schedule.into(),
        sync_max_delay: Dur(s.sync_max_delay),
        exclude: &s.exclude,
        bwlimit: s.bwlimit,
        timeout: s.timeout.map(Dur),
        options: &s.options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_print_back() {
        assert_eq!(Schedule::parse(""), Some(Schedule::Manual));
        assert_eq!(Schedule::parse("@60"), Some(Schedule::Every(60)));
        let w = Schedule::parse("22:00-06:30@120").unwrap();
        assert_eq!(
            w,
            Schedule::Window {
                from: 22 * 60,
                to: 6 * 60 + 30,
                every: 120
            }
        );
        assert_eq!(String::from(w), "22:00-06:30@120");
        for bad in ["60", "@0", "@x", "25:00-01:00@5", "22:00@5", "a-b@5"] {
            assert_eq!(Schedule::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_window_across_midnight_and_the_period_decide_a_run() {
        let w = Schedule::parse("22:00-02:00@60").unwrap();
        assert!(w.in_window(23 * 60));
        assert!(w.in_window(60));
        assert!(!w.in_window(12 * 60));
        let noon = 12 * 3600;
        assert!(!w.due(noon, None));
        let at23 = 23 * 3600;
        assert!(w.due(at23, None));
        assert!(!w.due(at23, Some(at23 - 59 * 60)));
        assert!(w.due(at23, Some(at23 - 3600)));
        assert!(!Schedule::Manual.due(at23, None));
    }
}
