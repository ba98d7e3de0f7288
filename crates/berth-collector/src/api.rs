//! The collector's HTTP server: the JSON API, `/metrics`, `/healthz` and the web page.
//! See docs/collector.md for every path.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::store::{GroupBy, now_ms};
use crate::{Body, Shared};

/// The web page: plain HTML, CSS and JS in one file, no build step, nothing fetched from outside.
pub const INDEX_HTML: &str = include_str!("web/index.html");

/// Most connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Time allowed for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A chargeback answer is reused for one poll interval, at most this long, for the same query
/// string: integrating a day of samples of a large fleet costs tens of ms, and the web page asks
/// every few seconds.
pub const CHARGEBACK_CACHE: Duration = Duration::from_secs(10);

/// Most events one answer holds.
pub const MAX_EVENTS: usize = 1000;

type Resp = Response<Full<Bytes>>;

/// Serve until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn respond(code: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A JSON error answer: `{"error": "..."}`.
fn error(code: StatusCode, msg: &str) -> Resp {
    let body = berth_model::api::error_body(msg);
    respond(code, "application/json", Bytes::from(body))
}

fn json<T: Serialize>(v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(b) => respond(StatusCode::OK, "application/json", Bytes::from(b)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A pre-serialised body, or 304 when `If-None-Match` names its ETag.
fn cached(req: &Request<Incoming>, body: &Body) -> Resp {
    let hit = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == body.etag);
    let mut r = if hit {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        respond(StatusCode::OK, "application/json", body.bytes.clone())
    };
    if let Ok(tag) = HeaderValue::from_str(&body.etag) {
        r.headers_mut().insert(header::ETAG, tag);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `%XX` and `+` decoded; invalid escapes are kept as they are.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as a map (the last value of a key wins).
pub fn query(req_query: Option<&str>) -> HashMap<String, String> {
    req_query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A millisecond time parameter: a number of ms since the epoch, or a negative number of ms
/// before now (`-3600000` is an hour ago).
fn time_param(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => Ok(Some(now_ms() + n)),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!(
                "bad {key}={v:?}: expected milliseconds since the epoch, or negative ms before now"
            )),
        },
    }
}

#[derive(Serialize)]
struct Events {
    events: Vec<crate::store::Event>,
}

#[derive(Serialize)]
struct ChargebackAnswer<'a> {
    by: &'static str,
    from_ms: i64,
    to_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<&'a str>,
    rows: Vec<crate::store::ChargebackRow>,
    total: crate::store::ChargebackRow,
    gaps: Vec<crate::store::Gap>,
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path().to_string();
    let q = query(req.uri().query());
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [""] | ["index.html"] => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(INDEX_HTML.as_bytes()),
        ),
        ["healthz"] => {
            let err = shared
                .write_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match err {
                None => respond(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
                Some(e) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    Bytes::from(format!("database: {e}\n")),
                ),
            }
        }
        ["metrics"] => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(shared.view().metrics.clone()),
        ),
        ["api", "fleet"] => cached(&req, &shared.view().fleet),
        ["api", "nodes"] => cached(&req, &shared.view().nodes),
        ["api", "services"] => cached(&req, &shared.view().services),
        ["api", "services", svc] => {
            let svc = decode(svc);
            let state = shared.state.read().unwrap_or_else(|p| p.into_inner());
            match state.api_service(&svc) {
                Some(d) => json(&d),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("no node reports a service {svc}"),
                ),
            }
        }
        ["api", "events"] => {
            let since = match time_param(&q, "since") {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) => n.min(MAX_EVENTS),
                Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "bad limit"),
            };
            let node = q.get("node").cloned().filter(|v| !v.is_empty());
            let service = q.get("service").cloned().filter(|v| !v.is_empty());
            let shared = shared.clone();
            let rows = tokio::task::spawn_blocking(move || {
                let db = shared.reader.lock().unwrap_or_else(|p| p.into_inner());
                db.events(since, node.as_deref(), service.as_deref(), limit)
            })
            .await;
            match rows {
                Ok(Ok(events)) => json(&Events { events }),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        ["api", "chargeback"] => {
            let key = req.uri().query().unwrap_or("").to_string();
            let ttl = shared.config.interval.min(CHARGEBACK_CACHE);
            if let Some(body) = shared
                .chargeback_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .filter(|(at, _)| at.elapsed() < ttl)
                .map(|(_, b)| b.clone())
            {
                return respond(StatusCode::OK, "application/json", body);
            }
            let by_word = q.get("by").map_or("app", String::as_str);
            let Some(by) = GroupBy::parse(by_word) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("bad by={by_word:?}: expected app, service, env or node"),
                );
            };
            let now = now_ms();
            let (from, to) = match (time_param(&q, "from"), time_param(&q, "to")) {
                (Ok(f), Ok(t)) => (f.unwrap_or(now - 86_400_000), t.unwrap_or(now)),
                (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let db_shared = shared.clone();
            let read = tokio::task::spawn_blocking(move || {
                let db = db_shared.reader.lock().unwrap_or_else(|p| p.into_inner());
                Ok::<_, crate::store::StoreError>((
                    db.bill_rows(from, to, now)?,
                    db.gaps(from, to)?,
                ))
            })
            .await;
            let (rows, gaps) = match read {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            let rates = shared.config.rates.as_ref();
            let rows = crate::bill::integrate(&rows, &gaps, by, from, to, now, rates);
            let mut total = crate::store::ChargebackRow::default();
            for r in &rows {
                total.add(r);
            }
            let answer = ChargebackAnswer {
                by: by.word(),
                from_ms: from,
                to_ms: to,
                currency: rates.and_then(|r| r.currency.as_deref()),
                rows,
                total,
                gaps,
            };
            let body = match serde_json::to_vec(&answer) {
                Ok(b) => Bytes::from(b),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            let mut cache = shared
                .chargeback_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            cache.insert(key, (std::time::Instant::now(), body.clone()));
            respond(StatusCode::OK, "application/json", body)
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        let q = query(Some("by=app&from=-10&x=a%20b+c&bad=%zz&e"));
        assert_eq!(q["by"], "app");
        assert_eq!(q["x"], "a b c");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["e"], "");
        assert!(time_param(&q, "from").unwrap().unwrap() > 0);
        time_param(&q, "by").unwrap_err();
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("a%2"), "a%2");
    }
}
