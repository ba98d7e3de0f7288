//! The HTTP endpoint (hyper, HTTP/1.1).
//!
//! Reads are served from the cached tree's pre-serialised bodies, with ETag / If-None-Match.
//! Actions need `Authorization: Bearer <token>`; they go to the service's worker, which runs them
//! through the engine (and so under the service lock the CLI takes too).
//!
//! Bounds: headers 16 KiB and 64 of them (431 beyond), bodies 64 KiB (413), the request head must
//! arrive within 5 s and a body within 10 s (the connection is closed, or 408), an answer that
//! makes no progress for [`WRITE_TIMEOUT`] (a client that stopped reading) closes the
//! connection, at most [`MAX_CONNECTIONS`] connections at once. When every slot is taken, a new
//! connection sheds the oldest idle one (no request in flight: never sent one, between requests,
//! or still sending its head), so a flood of idle or slow clients cannot starve `/healthz` and
//! `/status`; only when every slot has a request in flight does a new connection wait.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::settings::TokenState;
use crate::state::Shared;
use crate::tree;
use crate::worker::{ActionBody, ActionRequest, Msg, is_action};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest request head (request line and headers).
pub const MAX_HEADER: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Time allowed for a request head to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a request body to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time an answer may make no progress (the client does not read) before the connection closes.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection whose writes fail once they have made no progress for a while, so a client that
/// stops reading (its socket buffer full) cannot hold a connection slot forever.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write returned `Pending`: has it been stalled for too long?
    fn check_stall<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future as _;
        use std::task::Poll;
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client stopped reading its answers",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check_stall(cx, poll)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check_stall(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.check_stall(cx, poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

type Resp = Response<Full<Bytes>>;

/// One open connection, as the shedding sees it.
#[derive(Debug)]
struct Conn {
    /// Since when no request is in flight (accepted, or its last answer sent).
    idle_since: std::time::Instant,
    /// Requests in flight (0 or 1: HTTP/1 answers one at a time).
    busy: u32,
    /// Told to close the connection.
    shed: Arc<tokio::sync::Notify>,
}

/// The open connections, to find the oldest idle one when every slot is taken.
#[derive(Debug, Default)]
struct Conns {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, Conn>>,
}

impl Conns {
    fn table(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Conn>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection: its id and the signal that sheds it.
    fn add(&self) -> (u64, Arc<tokio::sync::Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let shed = Arc::new(tokio::sync::Notify::new());
        self.table().insert(
            id,
            Conn {
                idle_since: std::time::Instant::now(),
                busy: 0,
                shed: shed.clone(),
            },
        );
        (id, shed)
    }

    fn remove(&self, id: u64) {
        self.table().remove(&id);
    }

    /// A request begins on `id`; the guard marks it idle again when the answer is done (or the
    /// request is dropped).
    fn begin(self: &Arc<Self>, id: u64) -> Busy {
        if let Some(c) = self.table().get_mut(&id) {
            c.busy += 1;
        }
        Busy {
            conns: self.clone(),
            id,
        }
    }

    /// Close the connection idle for the longest time, if any. Returns whether one was.
    fn shed_oldest_idle(&self) -> bool {
        let mut table = self.table();
        let oldest = table
            .iter()
            .filter(|(_, c)| c.busy == 0)
            .min_by_key(|(_, c)| c.idle_since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| table.remove(&id)) {
            Some(c) => {
                c.shed.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A request in flight on a connection (see [`Conns::begin`]).
struct Busy {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(c) = self.conns.table().get_mut(&self.id) {
            c.busy = c.busy.saturating_sub(1);
            c.idle_since = std::time::Instant::now();
        }
    }
}

/// Descriptors svcd needs besides its connections (listener, inotify, logs, checks' children).
const OTHER_FILES: u64 = 256;

/// Raise the soft open-files limit to the hard one (bounded), so [`MAX_CONNECTIONS`] connections
/// fit: the usual soft limit is 1024, which the connections alone would reach (accept then fails
/// with EMFILE, and new clients wait in the backlog).
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let want = MAX_CONNECTIONS as u64 + OTHER_FILES;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let target = hard.min(want.max(soft).max(65536));
    if target > soft
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, target, hard)
    {
        tracing::warn!("cannot raise the open files limit from {soft} to {target}: {e}");
    }
    if target < want {
        tracing::warn!(
            "the open files limit ({target}) is below the {want} svcd needs for \
             {MAX_CONNECTIONS} connections: raise LimitNOFILE"
        );
    }
}

/// Connections the kernel queues for `accept` (the listen backlog). The default of 128 overflowed
/// under a burst of connections: the kernel then drops their SYNs, and clients retry after 1 s.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Listen on `addr` with [`LISTEN_BACKLOG`] (the kernel caps it at `net.core.somaxconn`).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serve HTTP on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    raise_open_files_limit();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEADER + MAX_BODY)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let conns = Arc::new(Conns::default());
    loop {
        // Accept first, then find a slot: a connection waiting in the backlog behind idle ones
        // is what starved the endpoint.
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: free a descriptor if an idle connection holds one,
                    // and back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    conns.shed_oldest_idle();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !conns.shed_oldest_idle() {
                    tracing::debug!("all {MAX_CONNECTIONS} connections busy: {peer} waits");
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        let tls = shared.tls().map(tokio_rustls::TlsAcceptor::from);
        let conns = conns.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (id, shed) = conns.add();
            let svc = {
                let conns = conns.clone();
                service_fn(move |req| {
                    let shared = shared.clone();
                    let busy = conns.begin(id);
                    async move {
                        let resp = handle(&shared, req, peer).await;
                        drop(busy);
                        Ok::<_, Infallible>(resp)
                    }
                })
            };
            let serve = async {
                match tls {
                    None => builder
                        .serve_connection(
                            TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT)),
                            svc,
                        )
                        .await
                        .map_err(|e| e.to_string()),
                    // The handshake is bounded like a request head.
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => builder
                                .serve_connection(
                                    TokioIo::new(WriteDeadline::new(s, WRITE_TIMEOUT)),
                                    svc,
                                )
                                .await
                                .map_err(|e| e.to_string()),
                            Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                            Err(_) => Err(format!(
                                "TLS handshake: none within {}s",
                                HEADER_TIMEOUT.as_secs()
                            )),
                        }
                    }
                }
            };
            tokio::select! {
                r = serve => {
                    if let Err(e) = r {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                }
                _ = shed.notified() => {
                    tracing::debug!("connection from {peer} shed: idle while every slot was taken");
                }
            }
            conns.remove(id);
        });
    }
}

fn respond(code: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON error answer: `{"error": "..."}`.
fn error(code: StatusCode, msg: &str) -> Resp {
    let body = berth_model::api::error_body(msg);
    respond(code, "application/json", Bytes::from(body))
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Whether `If-None-Match` names `etag` (or `*`); weak tags (`W/"..."`) match too.
fn not_modified(headers: &hyper::HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Whether `Accept-Encoding` takes gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("").to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && !refused
        })
}

/// A cached JSON body, gzip-compressed when the client accepts it (made once per change), or
/// 304 when the client has it (either form's ETag: the content is the same).
fn cached(shared: &Shared, req: &Request<Incoming>, body: &tree::Body) -> Resp {
    let gzip = if accepts_gzip(req.headers()) {
        body.gzip()
    } else {
        None
    };
    let etag = gzip.map_or(body.etag.as_str(), |g| g.etag.as_str());
    let tag = HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let known =
        not_modified(req.headers(), &body.etag) || not_modified(req.headers(), &body.gzip_etag());
    let mut r = if known {
        shared
            .metrics
            .http_not_modified
            .fetch_add(1, Ordering::Relaxed);
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if let Some(g) = gzip {
        let mut r = respond(StatusCode::OK, "application/json", g.bytes.clone());
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        respond(StatusCode::OK, "application/json", body.bytes.clone())
    };
    r.headers_mut().insert(header::ETAG, tag);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    shared.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    if read
        && matches!(
            parts.as_slice(),
            ["status"] | ["status", _] | ["metrics"] | ["cluster"]
        )
        && let Err(why) = read_authorized(shared, &req)
    {
        let mut r = error(StatusCode::UNAUTHORIZED, &why);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    match parts.as_slice() {
        ["healthz"] if read => respond(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        ["status"] if read => {
            let snap = shared.tree.snapshot();
            cached(shared, &req, &snap.node)
        }
        ["status", svc] if read => {
            let snap = shared.tree.snapshot();
            match snap.services.get(*svc) {
                Some(b) => cached(shared, &req, b),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("no service {svc} on this node"),
                ),
            }
        }
        ["metrics"] if read => {
            let nodename = shared.settings().nodename.clone();
            let text = shared.metrics.render(&nodename, &shared.tree.all());
            respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Bytes::from(text),
            )
        }
        ["cluster"] if read => match shared.cluster.get() {
            Some(c) => {
                let body = serde_json::to_vec_pretty(&c.report()).unwrap_or_default();
                respond(StatusCode::OK, "application/json", Bytes::from(body))
            }
            None => error(
                StatusCode::NOT_FOUND,
                "this node is in no cluster (no [cluster] in node.toml), or has not joined it yet",
            ),
        },
        ["healthz"] | ["status"] | ["status", _] | ["metrics"] | ["cluster"] => {
            method_not_allowed("GET, HEAD")
        }
        ["services", svc, "actions", action] => {
            if req.method() != Method::POST {
                return method_not_allowed("POST");
            }
            let (svc, action) = (svc.to_string(), action.to_string());
            action_request(shared, req, peer, svc, action).await
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 section 11.1).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(rest)
}

/// Reads need a bearer token when the node has a read token (always the case beyond loopback:
/// svcd refuses to start there without one): the read token or the action token. A read token
/// file svcd will not use (made world-readable while it runs) leaves only the action token.
fn read_authorized(shared: &Shared, req: &Request<Incoming>) -> Result<(), String> {
    let settings = shared.settings();
    if matches!(settings.read_token, TokenState::Missing) {
        return Ok(());
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .ok_or("reads need a bearer token on this node (Authorization: Bearer <read token>)")?
        .trim_ascii();
    let action = settings.token.token().is_some_and(|t| t.matches(presented));
    let read = settings
        .read_token
        .token()
        .is_some_and(|t| t.matches(presented));
    if read || action {
        Ok(())
    } else if let TokenState::Refused(why) = &settings.read_token {
        Err(format!("{why}; reads need the action token until then"))
    } else {
        Err("wrong token".to_string())
    }
}

/// Check `Authorization: Bearer <token>` against the node's token; the refusal says why.
fn authorized(shared: &Shared, req: &Request<Incoming>) -> Result<(), String> {
    let settings = shared.settings();
    let Some(token) = settings.token.token() else {
        return Err(settings
            .token
            .refusal(&settings.token_file)
            .unwrap_or_default());
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .ok_or("missing bearer token (Authorization: Bearer <token>)")?;
    if token.matches(presented.trim_ascii()) {
        Ok(())
    } else {
        Err("wrong token".to_string())
    }
}

async fn action_request(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    svc: String,
    action: String,
) -> Resp {
    if let Err(msg) = authorized(shared, &req) {
        shared
            .metrics
            .http_unauthorized
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!("refused {action} on {svc} from {peer}: {msg}");
        let mut r = error(StatusCode::UNAUTHORIZED, &msg);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"svcd\""),
        );
        return r;
    }
    let Some(worker) = shared.worker(&svc) else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no service {svc} on this node"),
        );
    };
    if !is_action(&action) {
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "unknown action {action:?} (start, stop, restart, freeze, thaw, startip, stopfs...)"
            ),
        );
    }
    let body = match read_body(req).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    tracing::info!("{action} on {svc} requested by {peer}");
    let (tx, rx) = oneshot::channel();
    if worker
        .send(Msg::Action(
            ActionRequest {
                action,
                body,
                origin: crate::worker::origin::HTTP,
                why: format!("requested by {peer}"),
            },
            tx,
        ))
        .await
        .is_err()
    {
        return error(StatusCode::NOT_FOUND, &format!("service {svc} was removed"));
    }
    match rx.await {
        Ok(reply) => {
            let code =
                StatusCode::from_u16(reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match serde_json::to_vec(&reply) {
                Ok(b) => respond(code, "application/json", Bytes::from(b)),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the action was dropped (svcd is stopping?)",
        ),
    }
}

/// An action's JSON body (empty: the defaults), bounded in size and in time; the error answer
/// otherwise.
async fn read_body(req: Request<Incoming>) -> Result<ActionBody, Resp> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await;
    let bytes = match collected {
        Err(_) => {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "the body took too long to arrive",
            ));
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            ));
        }
        Ok(Ok(b)) => b.to_bytes(),
    };
    if bytes.trim_ascii().is_empty() {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b""), None);
    }

    #[test]
    fn if_none_match_forms() {
        let mut h = hyper::HeaderMap::new();
        assert!(!not_modified(&h, "\"a\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"b\", W/\"a\""),
        );
        assert!(not_modified(&h, "\"a\""));
        assert!(!not_modified(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, "\"c\""));
    }

    #[test]
    fn accept_encoding_forms() {
        let mut h = hyper::HeaderMap::new();
        assert!(!accepts_gzip(&h));
        for (value, yes) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("*", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0, identity", false),
            ("br, deflate", false),
            ("identity", false),
        ] {
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&h), yes, "{value}");
        }
    }

    #[test]
    fn errors_are_json() {
        let r = error(StatusCode::NOT_FOUND, "no \"x\"");
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
