//! The local socket, `<run>/svcd.sock` (mode 0600): `GET /status` and `GET /status/<svc>` over
//! HTTP/1.1, for `svc print status`. The same cached bodies as the TCP endpoint, plus two headers
//! that let the CLI tell whether they are fresh enough to show:
//! - `X-Berth-Checked-At`: when the check behind the body began (the oldest one for `/status`),
//!   milliseconds since the epoch;
//! - `X-Berth-Monitor-Interval`: the check period, milliseconds.
//!
//! No token: only root (the socket's owner) can connect. Nothing else is served here.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::state::Shared;

use berth_model::api::{CHECKED_AT, MONITOR_INTERVAL};

/// Removes the socket file when svcd stops.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds `path` (a stale socket left by a killed svcd is replaced), mode 0600.
pub fn bind(path: &Path) -> std::io::Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, SocketFile(path.to_path_buf())))
}

fn answer(code: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return answer(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
    }
    let path = req.uri().path().trim_start_matches('/');
    let (name, body) = match path.split_once('/') {
        None if path == "status" => (None, Some(shared.tree.snapshot().node.bytes.clone())),
        Some(("status", svc)) => (
            Some(svc),
            shared
                .tree
                .snapshot()
                .services
                .get(svc)
                .map(|b| b.bytes.clone()),
        ),
        _ => (None, None),
    };
    let Some(body) = body else {
        return answer(StatusCode::NOT_FOUND, Bytes::new());
    };
    // Read after the body: the body is at least as fresh as the time it names.
    let checked = shared.tree.checked(name);
    let mut r = answer(StatusCode::OK, body);
    if let Some(ms) = checked
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis().to_string())
        && let Ok(v) = HeaderValue::from_str(&ms)
    {
        r.headers_mut().insert(CHECKED_AT, v);
    }
    let interval = shared.settings().monitor_interval.as_millis().to_string();
    if let Ok(v) = HeaderValue::from_str(&interval) {
        r.headers_mut().insert(MONITOR_INTERVAL, v);
    }
    r
}

/// Serves the local socket until `stop` turns true.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!("local socket: {e}");
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &req)) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            // A client that hangs is dropped: the CLI asks once and reads at once.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), conn).await;
        });
    }
}
