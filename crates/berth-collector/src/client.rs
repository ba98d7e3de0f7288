//! One poll of one node: `GET /status` over HTTP or HTTPS (rustls, the node's certificate checked
//! against a CA file), with `If-None-Match`, a read token, a body size limit and a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_model::status::{NodeStatus, SCHEMA_VERSION};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a node could not be set up for polling (a bad CA or token file).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file {path}: {why}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The token file cannot be read.
    #[error("token file {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A URL that is not `http(s)://host[:port]`.
    #[error("node {node}: bad URL {url:?} (expected http://host:port or https://host:port)")]
    BadUrl {
        /// The node.
        node: String,
        /// Its URL.
        url: String,
    },
    /// An https URL without a CA file.
    #[error("node {node}: {url} is https but no `ca` is set (per node or at the top of the file)")]
    NoCa {
        /// The node.
        node: String,
        /// Its URL.
        url: String,
    },
}

/// Everything needed to poll one node, built once from its config.
#[derive(Clone)]
pub struct Target {
    /// The node name.
    pub name: String,
    /// Its URL (for messages).
    pub url: String,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    token: Option<HeaderValue>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

/// A rustls client config trusting only the certificates of `ca` (PEM).
pub fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, SetupError> {
    let bad = |why: String| SetupError::Ca {
        path: ca.to_path_buf(),
        why,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    for c in certs {
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Target {
    /// A target for `name` at `url` (already validated by the config parser).
    pub fn new(
        name: &str,
        url: &str,
        ca: Option<&Path>,
        token_file: Option<&Path>,
    ) -> Result<Target, SetupError> {
        let (tls, host, port) =
            berth_model::config::split_url(url).ok_or_else(|| SetupError::BadUrl {
                node: name.into(),
                url: url.into(),
            })?;
        let tls = if tls {
            let ca = ca.ok_or_else(|| SetupError::NoCa {
                node: name.into(),
                url: url.into(),
            })?;
            let sn = ServerName::try_from(host.clone()).map_err(|e| SetupError::Ca {
                path: ca.to_path_buf(),
                why: format!("bad server name {host:?}: {e}"),
            })?;
            Some((TlsConnector::from(tls_config(ca)?), sn))
        } else {
            None
        };
        let token = match token_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| SetupError::Token {
                    path: p.to_path_buf(),
                    source,
                })?;
                HeaderValue::from_str(&format!("Bearer {}", text.trim()))
                    .ok()
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
            }
            None => None,
        };
        Ok(Target {
            name: name.into(),
            url: url.into(),
            host,
            port,
            tls,
            token,
        })
    }
}

/// What one poll brought.
#[derive(Debug)]
pub enum Outcome {
    /// 304: nothing changed since `etag`.
    NotModified,
    /// A new status body.
    Status {
        /// Its ETag, for the next `If-None-Match`.
        etag: Option<String>,
        /// The tree.
        status: Box<NodeStatus>,
        /// The body's size.
        bytes: usize,
    },
    /// The node did not answer usefully: why.
    Failed(String),
}

/// Poll `target` once: `GET path` with `If-None-Match: etag`, the whole exchange within
/// `timeout`, a body of at most `max_body` bytes.
pub async fn poll(
    target: &Target,
    etag: Option<&str>,
    timeout: Duration,
    max_body: usize,
) -> Outcome {
    match tokio::time::timeout(timeout, poll_inner(target, etag, max_body)).await {
        Ok(Ok(o)) => o,
        Ok(Err(why)) => Outcome::Failed(why),
        Err(_) => Outcome::Failed(format!(
            "no complete answer within {}ms",
            timeout.as_millis()
        )),
    }
}

async fn poll_inner(
    target: &Target,
    etag: Option<&str>,
    max_body: usize,
) -> Result<Outcome, String> {
    let (code, headers, body) = get(target, "/status", etag, max_body).await?;
    match code {
        StatusCode::NOT_MODIFIED => Ok(Outcome::NotModified),
        StatusCode::OK => {
            let status: NodeStatus = serde_json::from_slice(&body)
                .map_err(|e| format!("bad status body ({} bytes): {e}", body.len()))?;
            if status.schema != SCHEMA_VERSION {
                return Err(format!(
                    "status schema {} (this collector reads {SCHEMA_VERSION})",
                    status.schema
                ));
            }
            if status.nodename != target.name {
                return Err(format!(
                    "the endpoint answers as node {:?}, not {:?}",
                    status.nodename, target.name
                ));
            }
            let etag = headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(Outcome::Status {
                etag,
                bytes: body.len(),
                status: Box::new(status),
            })
        }
        code => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(format!("HTTP {code}: {}", text.trim()))
        }
    }
}

/// A gzip body inflated, at most `max_body` bytes of it.
pub fn gunzip(body: &[u8], max_body: usize) -> Result<Bytes, String> {
    use std::io::Read as _;
    let mut out = Vec::new();
    let limit = u64::try_from(max_body)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| format!("bad gzip body ({} bytes): {e}", body.len()))?;
    if out.len() > max_body {
        return Err(format!("body larger than {max_body} bytes (inflated)"));
    }
    Ok(Bytes::from(out))
}

/// Whether the node's port accepts a connection within `timeout` (a cheap probe while its
/// polls back off: a node coming back is polled at once).
pub async fn accepts(target: &Target, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(
            timeout,
            TcpStream::connect((target.host.as_str(), target.port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// The system's CA bundle (Debian's `ca-certificates`), for https webhooks without `ca`.
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// POST `body` (JSON) to `url` (`http[s]://host[:port]/path`) on a fresh connection, all
/// within `timeout`; a 2xx answer is a success, anything else an error saying what came.
pub async fn post_json(
    url: &str,
    ca: Option<&Path>,
    body: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let (base, path) = match url.find("://").map(|i| i + 3) {
        Some(i) => match url[i..].find('/') {
            Some(j) => (&url[..i + j], &url[i + j..]),
            None => (url, "/"),
        },
        None => return Err(format!("bad webhook URL {url}")),
    };
    let ca = ca.unwrap_or(Path::new(SYSTEM_CA));
    let target = Target::new("webhook", base, Some(ca), None).map_err(|e| e.to_string())?;
    let body = Bytes::copy_from_slice(body);
    let go = async { post_exchange(target.connect().await?, &target, path, body).await };
    match tokio::time::timeout(timeout, go).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

async fn post_exchange(
    io: TokioIo<Box<dyn Stream>>,
    target: &Target,
    path: &str,
    body: Bytes,
) -> Result<(), String> {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, http_body_util::Full<Bytes>>(io)
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::post(path)
        .header(header::HOST, target.host_header())
        .header(header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let code = resp.status();
        let text = Limited::new(resp.into_body(), 4096)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        if code.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {code}: {text}"))
        }
    }
    .await;
    drop(sender);
    conn.abort();
    result
}

/// One GET on a fresh connection. Returns the status, headers and body (at most `max_body`).
pub async fn get(
    target: &Target,
    path: &str,
    etag: Option<&str>,
    max_body: usize,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    exchange(target.connect().await?, target, path, etag, max_body).await
}

/// A connection to a target, plain TCP or TLS over it: one type, so that each exchange is
/// written once for both.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl Target {
    /// The `Host` header: `host:port`, an IPv6 literal in brackets (`[fd00::1]:7777`).
    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connect to the target (TCP, no delay), then TLS when its URL is https.
    async fn connect(&self) -> Result<TokioIo<Box<dyn Stream>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect to {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            None => Box::new(tcp),
        };
        Ok(TokioIo::new(stream))
    }
}

async fn exchange(
    io: TokioIo<Box<dyn Stream>>,
    target: &Target,
    path: &str,
    etag: Option<&str>,
    max_body: usize,
) -> Result<(StatusCode, hyper::HeaderMap, Bytes), String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let mut req = Request::get(path).header(header::HOST, target.host_header());
    if let Some(tag) = etag {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    if let Some(tok) = &target.token {
        req = req.header(header::AUTHORIZATION, tok.clone());
    }
    req = req.header(header::ACCEPT_ENCODING, "gzip");
    let req = req
        .body(Empty::new())
        .map_err(|e| format!("request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("body larger than {max_body} bytes")
                } else {
                    format!("reading the body: {e}")
                }
            })?
            .to_bytes();
        let gzipped = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = if gzipped {
            gunzip(&body, max_body)?
        } else {
            body
        };
        Ok((parts.status, parts.headers, body))
    }
    .await;
    drop(sender);
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_brackets_an_ipv6_literal() {
        let v6 = Target::new("n1", "http://[fd00::1]:7777", None, None).unwrap();
        assert_eq!(v6.host_header(), "[fd00::1]:7777");
        let v4 = Target::new("n2", "http://10.0.0.2:7777", None, None).unwrap();
        assert_eq!(v4.host_header(), "10.0.0.2:7777");
    }

    #[test]
    fn gzip_bodies_inflate_within_the_limit() {
        use std::io::Write as _;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&[b'x'; 1000]).unwrap();
        let gz = z.finish().unwrap();
        assert_eq!(gunzip(&gz, 1000).unwrap().len(), 1000);
        let e = gunzip(&gz, 999).unwrap_err();
        assert!(e.contains("larger than 999"), "{e}");
        assert!(
            gunzip(b"nope", 10)
                .unwrap_err()
                .starts_with("bad gzip body")
        );
    }
}
