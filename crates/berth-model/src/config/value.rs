//! Value checks the keyword readers and `run_args` share: durations and host names; and how
//! `print config` writes a duration.

use std::time::Duration;

/// `500ms`, `5s`, `2m`, `1h`, `30d`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    // A value too large for a Duration is refused, not a panic.
    Duration::try_from_secs_f64(secs).ok()
}

/// A host name as RFC 1123 allows (for `ipname` given as a name). A name whose labels are all
/// digits is not one (RFC 1123 sec. 2.1: it would read as a dotted-decimal address), so
/// `300.1.2.3` is refused here rather than failing later in DNS.
pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s
            .split('.')
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A duration as the keywords take it, for `print config`: `"10s"`, `"500ms"`.
pub(crate) struct Dur(pub(crate) Duration);

impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            s.collect_str(&format_args!("{}s", self.0.as_secs()))
        } else {
            s.collect_str(&format_args!("{}ms", self.0.as_millis()))
        }
    }
}
