//! The daemons (`svcd`, `berth-collector`) as test processes: waiting for svcd's sd_notify
//! `READY=1` (it carries the address it listens on), plain HTTP/1.1 over std sockets, polling.
//! One copy for the agent's, the collector's and the rig's tests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Poll `f` every 20 ms for up to `limit`; the time it took, or `None`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    loop {
        if f() {
            return Some(t.elapsed());
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The socket svcd's sd_notify messages come to: `NOTIFY_SOCKET=<path>` in its environment.
#[derive(Debug)]
pub struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    /// Bind a fresh socket at `path` (an old one there is removed first).
    pub fn bind(path: &Path) -> Notify {
        let _ = std::fs::remove_file(path);
        let sock =
            UnixDatagram::bind(path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("socket timeout");
        Notify {
            sock,
            path: path.to_path_buf(),
        }
    }

    /// Where it is bound: the value of `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait (bounded: 30 s) for `READY=1` and return the address svcd says it listens on
    /// (`STATUS=... listening on ADDR`). `exited` says whether the daemon is gone (it then
    /// panics at once), `log` gives its log for the panic message; `what` names it there.
    pub fn wait_ready(
        &self,
        what: &str,
        mut exited: impl FnMut() -> Option<ExitStatus>,
        log: impl Fn() -> String,
    ) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                if msg.contains("READY=1") {
                    return msg
                        .split("listening on ")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                        .and_then(|a| a.parse().ok())
                        .unwrap_or_else(|| panic!("{what}: no address in READY message {msg:?}"));
                }
            }
            if let Some(st) = exited() {
                panic!("{what} exited before READY ({st}):\n{}", log());
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready after 30 s:\n{}",
                log()
            );
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    /// The status code.
    pub code: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body as sent (not de-chunked).
    pub body: Vec<u8>,
}

impl Resp {
    /// The first header field `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Parse a whole answer (head and body); panics when the head is incomplete.
    pub fn parse(buf: &[u8]) -> Resp {
        let text = String::from_utf8_lossy(buf);
        let (head, _) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let body = buf[head.len() + 4..].to_vec();
        let mut lines = head.lines();
        let status = lines.next().unwrap_or_default();
        let code = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status code in {status:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Resp {
            code,
            headers,
            body,
        }
    }
}

/// Send `raw` to `127.0.0.1:port` on a new connection and read the answer until the server
/// closes (60 s at the most).
pub fn raw_request(port: u16, raw: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    s.write_all(raw)
        .unwrap_or_else(|e| panic!("send to 127.0.0.1:{port}: {e}"));
    let mut buf = Vec::new();
    // The server may reset after answering a request it refused to read: keep what came.
    let _ = s.read_to_end(&mut buf);
    Resp::parse(&buf)
}

/// `METHOD path` to `127.0.0.1:port` (`Connection: close`) with `headers` and `body` (a POST
/// always says its length).
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    raw_request(port, &bytes)
}

/// `GET path` to `127.0.0.1:port` with `headers`.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Resp {
    http(port, "GET", path, headers, b"")
}
