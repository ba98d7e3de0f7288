//! `svc print status` through svcd: when svcd runs, its cached tree is read over its local
//! socket (`<run>/svcd.sock`, see `berth_agent::local`) instead of checking every resource again,
//! as OpenSVC's CLI reads its daemon's data. It is used only when it is fresh:
//! - svcd checked within two monitor intervals (plus 2 s): it is not stuck;
//! - nothing that could change the answer happened since that check began: no action or
//!   freeze/thaw (each changes the service's var dir: `last_action.json` is renamed into it, the
//!   `frozen` flag made or removed), no edit of `node.toml`, the services dir or the service's file;
//! - no service shows an error (a broken file: the CLI's own path reports it and exits 2).
//!
//! Otherwise, and with `--refresh`, the CLI checks by itself. Any failure to reach svcd (no
//! socket, refused, a timeout, a bad answer) is the same: a real check.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_model::paths::Paths;

/// How long the CLI waits for svcd's answer before checking by itself.
const TIMEOUT: Duration = Duration::from_millis(500);

/// svcd's answer: the JSON body, and when the check behind it began.
#[derive(Debug)]
pub struct Fetched {
    /// `/status` or `/status/<svc>`, as svcd serves it.
    pub body: Vec<u8>,
    /// When svcd's check began.
    pub checked: SystemTime,
}

/// An answer: the code, the headers (lowercase names) and the body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 GET over the socket.
fn get(socket: &Path, path: &str) -> Option<Answer> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(TIMEOUT)).ok()?;
    s.set_write_timeout(Some(TIMEOUT)).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: svcd\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let code = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = buf[end + 4..].to_vec();
    let len: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    if len.is_some_and(|l| l != body.len()) {
        return None;
    }
    Some((code, headers, body))
}

fn header_ms(headers: &[(String, String)], name: &str) -> Option<u64> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

fn changed_since(path: &Path, t: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m > t)
}

/// File times come from the kernel's coarse clock (a tick, 1-10 ms, behind the real time):
/// a change is counted as "after the check" when it is less than this before it.
const MTIME_SLACK: Duration = Duration::from_millis(20);

/// Whether anything that could change the status of `names` happened since `checked`.
fn touched_since(paths: &Paths, names: &[String], checked: SystemTime) -> bool {
    let checked = checked.checked_sub(MTIME_SLACK).unwrap_or(checked);
    let services = paths.services_dir();
    if changed_since(&paths.node_config(), checked) || changed_since(&services, checked) {
        return true;
    }
    names.iter().any(|n| {
        changed_since(&paths.service_var(n), checked)
            || ["toml", "env", "conf"]
                .iter()
                .any(|ext| changed_since(&services.join(format!("{n}.{ext}")), checked))
    })
}

/// svcd's status of `svc` (every service: `None`), when svcd runs and its answer is fresh.
/// `names`: the services the answer must cover (freshness is checked for each).
pub fn fetch(paths: &Paths, svc: Option<&str>, names: &[String]) -> Option<Fetched> {
    let socket = paths.agent_socket();
    let path = match svc {
        Some(s) => format!("/status/{s}"),
        None => "/status".to_string(),
    };
    let (code, headers, body) = get(&socket, &path)?;
    if code != 200 {
        return None;
    }
    let checked =
        UNIX_EPOCH + Duration::from_millis(header_ms(&headers, berth_model::api::CHECKED_AT)?);
    let interval = Duration::from_millis(header_ms(&headers, berth_model::api::MONITOR_INTERVAL)?);
    let age = SystemTime::now()
        .duration_since(checked)
        .unwrap_or_default();
    if age > interval * 2 + Duration::from_secs(2) || touched_since(paths, names, checked) {
        return None;
    }
    Some(Fetched { body, checked })
}

/// The first line of a `print status` made from svcd's data.
pub fn header(f: &Fetched) -> String {
    let age = SystemTime::now()
        .duration_since(f.checked)
        .unwrap_or_default();
    format!(
        "# from svcd, checked {:.1}s ago (--refresh: check now)\n",
        age.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_socket_is_no_answer() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::under(d.path());
        assert!(fetch(&paths, None, &[]).is_none());
        // A socket file nobody listens on (a killed svcd): refused, no answer.
        std::fs::create_dir_all(&paths.run_dir).unwrap();
        drop(std::os::unix::net::UnixListener::bind(paths.agent_socket()).unwrap());
        assert!(fetch(&paths, Some("web"), &["web".to_string()]).is_none());
    }

    #[test]
    fn changes_after_the_check_are_seen() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::under(d.path());
        std::fs::create_dir_all(paths.services_dir()).unwrap();
        std::fs::create_dir_all(paths.service_var("web")).unwrap();
        let before = SystemTime::now() - Duration::from_secs(5);
        let names = ["web".to_string()];
        assert!(
            touched_since(&paths, &names, before),
            "the dirs were just made"
        );
        let now = SystemTime::now() + MTIME_SLACK + Duration::from_millis(1);
        assert!(!touched_since(&paths, &names, now));
    }
}
