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

use crate::bill::GroupBy;
use crate::store::now_ms;
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
        let tls = shared.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                // The handshake is bounded like a request head.
                Some(acceptor) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                    }
                }
            }
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

/// A chargeback answer as JSON, or its rows and total as CSV (the total's key is `total`).
fn chargeback_answer(body: Bytes, as_csv: bool) -> Resp {
    if !as_csv {
        return respond(StatusCode::OK, "application/json", body);
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut rows = v["rows"].as_array().cloned().unwrap_or_default();
    let mut total = v["total"].clone();
    total["key"] = serde_json::Value::String("total".into());
    rows.push(total);
    csv("chargeback", CHARGEBACK_COLUMNS, &rows)
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

/// The query string as a map (the last value of a key wins).
pub fn query(req_query: Option<&str>) -> HashMap<String, String> {
    // application/x-www-form-urlencoded: `+` is a space, `%XX` a byte, bad escapes kept.
    form_urlencoded::parse(req_query.unwrap_or("").as_bytes())
        .into_owned()
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
    gaps: Vec<crate::bill::Gap>,
}

/// The login page: one field, the read token; a good one is kept in a cookie.
pub const LOGIN_HTML: &str = include_str!("web/login.html");

/// The largest login form accepted.
const MAX_LOGIN_BODY: usize = 4096;

fn login_page(code: StatusCode, note: &str) -> Resp {
    let html = LOGIN_HTML.replace("{{note}}", note);
    respond(code, "text/html; charset=utf-8", Bytes::from(html))
}

/// `POST /login` with `token=...`: the cookie and a redirect to the page, or the form again.
async fn login(shared: &Shared, req: Request<Incoming>) -> Resp {
    use http_body_util::BodyExt as _;
    let Some(token) = &shared.token else {
        let mut r = respond(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        return r;
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return login_page(StatusCode::PAYLOAD_TOO_LARGE, "that form is too large"),
    };
    let form = query(Some(&String::from_utf8_lossy(&body)));
    let given = form.get("token").map(String::as_bytes).unwrap_or_default();
    if !token.matches(given.trim_ascii()) {
        tracing::warn!("login refused: wrong read token");
        return login_page(StatusCode::UNAUTHORIZED, "wrong token");
    }
    let secure = if shared.tls.is_some() { "; Secure" } else { "" };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        crate::auth::COOKIE,
        token.cookie_value()
    );
    let mut r = respond(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Whether the request may read: no token configured, or it presents the token.
fn allowed(shared: &Shared, req: &Request<Incoming>) -> bool {
    match &shared.token {
        None => true,
        Some(t) => crate::auth::presented(req.headers()).is_some_and(|p| t.matches(&p)),
    }
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    if *req.method() == Method::POST && path == "/login" {
        return login(shared, req).await;
    }
    // Liveness probes need no token: the answer says nothing of the fleet.
    if path != "/healthz" && !allowed(shared, &req) {
        if path == "/" || path == "/index.html" || !path.starts_with("/api") && path != "/metrics" {
            return login_page(StatusCode::UNAUTHORIZED, "");
        }
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "a read token is required: Authorization: Bearer <the token of read_token_file>",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if path == "/logout" {
        let mut r = respond(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        let clear = format!("{}=; Path=/; Max-Age=0", crate::auth::COOKIE);
        if let Ok(v) = HeaderValue::from_str(&clear) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
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
        ["api", "fleet"] => match Filter::of(&q) {
            None => cached(&req, &shared.view().fleet),
            Some(f) => {
                let fleet = shared.state().fleet(now_ms());
                json(&f.fleet(fleet))
            }
        },
        ["api", "nodes"] => match wants_csv(&q) {
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
            Ok(false) => cached(&req, &shared.view().nodes),
            Ok(true) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&shared.view().nodes.bytes).unwrap_or_default();
                let rows = v["nodes"].as_array().cloned().unwrap_or_default();
                csv("nodes", NODE_COLUMNS, &rows)
            }
        },
        ["api", "services"] => {
            let as_csv = match wants_csv(&q) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let filter = Filter::of(&q);
            if !as_csv && filter.is_none() {
                return cached(&req, &shared.view().services);
            }
            let answer = {
                let state = shared.state();
                let mut fleet = state.fleet(now_ms());
                if let Some(f) = &filter {
                    fleet = f.fleet(fleet);
                }
                serde_json::to_value(state.api_services(&fleet)).unwrap_or_default()
            };
            if !as_csv {
                return json(&answer);
            }
            let mut rows = Vec::new();
            for s in answer["services"].as_array().cloned().unwrap_or_default() {
                for (node, cell) in s["nodes"].as_object().cloned().unwrap_or_default() {
                    rows.push(serde_json::json!({
                        "name": s["name"], "app": s["app"], "env": s["env"],
                        "overall": s["overall"], "node": node, "avail": cell["avail"],
                        "node_overall": cell["overall"], "frozen": cell["frozen"],
                        "stale": cell["stale"], "target": cell["target"],
                    }));
                }
            }
            csv("services", SERVICE_COLUMNS, &rows)
        }
        ["api", "services", svc] => {
            // A path segment: `%XX` only (`+` is itself there).
            let svc = percent_encoding::percent_decode_str(svc)
                .decode_utf8_lossy()
                .into_owned();
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
            let as_csv = match wants_csv(&q) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
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
                Ok(Ok(events)) if as_csv => {
                    let rows: Vec<serde_json::Value> = events
                        .iter()
                        .map(|e| serde_json::to_value(e).unwrap_or_default())
                        .collect();
                    csv("events", EVENT_COLUMNS, &rows)
                }
                Ok(Ok(events)) => json(&Events { events }),
                Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        ["api", "alerts"] => {
            let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
                None => 100,
                Some(Ok(n)) => n.min(MAX_EVENTS),
                Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "bad limit"),
            };
            let as_csv = match wants_csv(&q) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let db_shared = shared.clone();
            let read = tokio::task::spawn_blocking(move || {
                let db = db_shared.reader.lock().unwrap_or_else(|p| p.into_inner());
                Ok::<_, crate::store::StoreError>((
                    db.deliveries(false, limit)?,
                    db.alert_states()?,
                ))
            })
            .await;
            let (deliveries, active) = match read {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            if as_csv {
                let rows: Vec<serde_json::Value> = deliveries
                    .iter()
                    .map(|d| serde_json::to_value(d).unwrap_or_default())
                    .collect();
                return csv("alerts", DELIVERY_COLUMNS, &rows);
            }
            let alerts: Vec<serde_json::Value> = shared
                .config
                .alerts
                .iter()
                .map(|a| {
                    let sink = match &a.sink {
                        berth_model::config::AlertSink::Webhook { .. } => "webhook",
                        berth_model::config::AlertSink::Command(_) => "command",
                    };
                    serde_json::json!({"name": a.name, "sink": sink,
                        "for_ms": crate::store::ms(a.hold), "retries": a.retries})
                })
                .collect();
            let active: Vec<serde_json::Value> = active
                .iter()
                .map(|a| {
                    serde_json::json!({"alert": a.rule, "subject": a.subject,
                        "since_ms": a.since_ms, "sent": a.fired, "status": a.status})
                })
                .collect();
            json(&serde_json::json!({"alerts": alerts, "active": active, "deliveries": deliveries}))
        }
        ["api", "chargeback"] => {
            let as_csv = match wants_csv(&q) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
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
                return chargeback_answer(body, as_csv);
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
            // A page per node or service: only its rows (and, for a node, its gaps).
            let only_node = q.get("node").filter(|v| !v.is_empty()).cloned();
            let only_service = q.get("service").filter(|v| !v.is_empty()).cloned();
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| only_node.as_ref().is_none_or(|n| *n == r.node))
                .filter(|r| only_service.as_ref().is_none_or(|s| *s == r.service))
                .collect();
            let gaps: Vec<_> = gaps
                .into_iter()
                .filter(|g| {
                    only_node
                        .as_ref()
                        .is_none_or(|n| *n == g.node || g.node == crate::bill::ALL_NODES)
                })
                .collect();
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
            drop(cache);
            chargeback_answer(body, as_csv)
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such path: {path}")),
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&text);
    }
}

/// A table as CSV: a header of `columns`, then one line per row (a missing field is empty).
pub fn to_csv(columns: &[&str], rows: &[serde_json::Value]) -> String {
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for r in rows {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, r.get(c).unwrap_or(&serde_json::Value::Null));
        }
        out.push_str("\r\n");
    }
    out
}

fn csv(name: &str, columns: &[&str], rows: &[serde_json::Value]) -> Resp {
    let mut r = respond(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        Bytes::from(to_csv(columns, rows)),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

fn wants_csv(q: &HashMap<String, String>) -> Result<bool, String> {
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(format!("bad format={other:?}: expected json or csv")),
    }
}

/// The columns of each table's CSV.
const NODE_COLUMNS: &[&str] = &[
    "name",
    "url",
    "hb",
    "reachable",
    "stale",
    "last_seen_ms",
    "last_poll_ms",
    "age_ms",
    "failures",
    "reason",
    "services",
];
const SERVICE_COLUMNS: &[&str] = &[
    "name",
    "app",
    "env",
    "overall",
    "node",
    "avail",
    "node_overall",
    "frozen",
    "stale",
    "target",
];
const DELIVERY_COLUMNS: &[&str] = &[
    "id", "at_ms", "alert", "subject", "kind", "status", "attempts", "state", "error", "done_ms",
];
const EVENT_COLUMNS: &[&str] = &["id", "at_ms", "node", "service", "resource", "old", "new"];
const CHARGEBACK_COLUMNS: &[&str] = &[
    "key",
    "billed_hours",
    "container_hours",
    "image_hours",
    "byte_hours",
    "unbilled_hours",
    "max_containers",
    "max_running",
    "max_images",
    "max_data_bytes",
    "samples",
    "cost",
];

/// The page's filters, also API parameters of `/api/services` and `/api/fleet`: `app`, `env`,
/// `q` (text in the service's name, app, env or a node's name) and `problems=1` (services not
/// `up`, or warn somewhere; nodes not answering).
#[derive(Debug, Default)]
pub struct Filter {
    app: Option<String>,
    env: Option<String>,
    q: Option<String>,
    problems: bool,
}

impl Filter {
    /// From the query string; `None` when nothing filters.
    pub fn of(q: &HashMap<String, String>) -> Option<Filter> {
        let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        let f = Filter {
            app: get("app"),
            env: get("env"),
            q: get("q").map(|s| s.to_lowercase()),
            problems: q.get("problems").is_some_and(|v| v == "1" || v == "true"),
        };
        (f.app.is_some() || f.env.is_some() || f.q.is_some() || f.problems).then_some(f)
    }

    fn service(&self, name: &str, s: &berth_model::fleet::FleetService) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| have.as_deref() == Some(w.as_str()))
        };
        let text = self.q.as_ref().is_none_or(|q| {
            name.to_lowercase().contains(q)
                || s.app.as_ref().is_some_and(|a| a.to_lowercase().contains(q))
                || s.env.as_ref().is_some_and(|e| e.to_lowercase().contains(q))
                || s.nodes.keys().any(|n| n.to_lowercase().contains(q))
        });
        // An operator's stop is not a problem: down everywhere, and stopped where it was asked.
        let stopped = s.status_word() == "down"
            && s.nodes.values().any(|c| c.target.is_some())
            && s.nodes
                .values()
                .all(|c| c.target.is_none_or(|t| t == berth_model::Status::Down));
        let problem = !self.problems
            || (s.status_word() != "up" && !stopped)
            || s.nodes.values().any(|c| {
                c.overall == berth_model::Status::Warn
                    || (c.avail == berth_model::Status::Down
                        && c.target == Some(berth_model::Status::Up))
            });
        eq(&self.app, &s.app) && eq(&self.env, &s.env) && text && problem
    }

    /// The fleet with only the services that pass, and the nodes they are on (with
    /// `problems`, the nodes not answering too; with `q`, the nodes whose name matches).
    pub fn fleet(&self, mut f: berth_model::fleet::Fleet) -> berth_model::fleet::Fleet {
        f.services.retain(|name, s| self.service(name, s));
        let used: std::collections::BTreeSet<String> = f
            .services
            .values()
            .flat_map(|s| s.nodes.keys().cloned())
            .collect();
        f.nodes.retain(|name, n| {
            used.contains(name)
                || (self.problems && n.hb != berth_model::Status::Up)
                || self
                    .q
                    .as_ref()
                    .is_some_and(|q| name.to_lowercase().contains(q))
        });
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        let rows = [
            serde_json::json!({"a": "x,y", "b": 1, "c": null}),
            serde_json::json!({"a": "say \"hi\"\nthere", "b": true, "c": ["n1", "n2"]}),
        ];
        let got = to_csv(&["a", "b", "c"], &rows);
        assert_eq!(
            got,
            "a,b,c\r\n\"x,y\",1,\r\n\"say \"\"hi\"\"\nthere\",true,n1 n2\r\n"
        );
    }

    #[test]
    fn filters() {
        use berth_model::Status::*;
        use berth_model::fleet::{Fleet, FleetCell, FleetNode, FleetService};
        let mut f = Fleet::default();
        f.nodes.insert("n1".into(), FleetNode::new(Up));
        f.nodes.insert("n2".into(), FleetNode::new(Down));
        f.nodes.insert("n3".into(), FleetNode::new(Up));
        let mut web = FleetService {
            app: Some("shop".into()),
            ..FleetService::default()
        };
        web.nodes.insert("n1".into(), FleetCell::new(Up, Up));
        let mut db = FleetService {
            app: Some("crm".into()),
            env: Some("PRD".into()),
            ..FleetService::default()
        };
        let mut failed = FleetCell::new(Down, Down);
        failed.target = Some(Up);
        db.nodes.insert("n3".into(), failed);
        f.services.insert("web".into(), web);
        f.services.insert("db".into(), db);
        let q = |s: &str| Filter::of(&query(Some(s)));
        assert!(q("by=app").is_none());
        let got = q("app=shop").unwrap().fleet(f.clone());
        assert_eq!(got.services.keys().collect::<Vec<_>>(), ["web"]);
        assert_eq!(got.nodes.keys().collect::<Vec<_>>(), ["n1"]);
        let got = q("problems=1").unwrap().fleet(f.clone());
        assert_eq!(got.services.keys().collect::<Vec<_>>(), ["db"]);
        assert_eq!(got.nodes.keys().collect::<Vec<_>>(), ["n2", "n3"]);
        let got = q("q=N3").unwrap().fleet(f.clone());
        assert_eq!(got.services.keys().collect::<Vec<_>>(), ["db"]);
        assert!(q("env=PRD&app=shop").unwrap().fleet(f).services.is_empty());
    }

    #[test]
    fn query_strings() {
        let q = query(Some("by=app&from=-10&x=a%20b+c&bad=%zz&e"));
        assert_eq!(q["by"], "app");
        assert_eq!(q["x"], "a b c");
        assert_eq!(q["bad"], "%zz");
        assert_eq!(q["e"], "");
        assert!(time_param(&q, "from").unwrap().unwrap() > 0);
        time_param(&q, "by").unwrap_err();
        let q = query(Some("a=%&b=a%2&c=1&c=2"));
        assert_eq!(q["a"], "%");
        assert_eq!(q["b"], "a%2");
        assert_eq!(q["c"], "2", "the last value of a key wins");
    }
}
