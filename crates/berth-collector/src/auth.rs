//! The collector's own API and page: the read token (`read_token_file`), the login cookie of the
//! page, the listen address it allows, and the modes of its files. Its TLS is svcd's
//! (`berth_tls::server_config`).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The cookie the page's login sets.
pub const COOKIE: &str = "berth_collector_token";

/// Why the collector's own API cannot be served as configured.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file could not be read.
    #[error("read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The token file is readable by others than its owner.
    #[error(
        "read token file {path} is mode {mode:04o}: anyone who can read it can read the whole fleet; make it readable by its owner only (chmod 600 {path})"
    )]
    Mode {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The token file holds no token.
    #[error("read token file {0} is empty")]
    Empty(PathBuf),
    /// A listen address beyond loopback without a token.
    #[error(
        "listen = \"{0}\" is beyond loopback and no read_token_file is set: anyone on the network could read the fleet; set read_token_file (or listen on 127.0.0.1)"
    )]
    OpenListen(SocketAddr),
    /// The database file's mode could not be restricted.
    #[error("database {path} is mode {mode:04o} and cannot be made 0600: {source}")]
    DbMode {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be created.
    #[error("cannot create database {path}: {source}")]
    DbCreate {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key.
    #[error(transparent)]
    Tls(#[from] berth_tls::TlsError),
}

/// A read token, compared in constant time.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token of a file's text: surrounding blanks and newlines are not part of it.
    pub fn new(text: &[u8]) -> Option<Token> {
        let t = text.trim_ascii();
        (!t.is_empty()).then(|| Token(t.to_vec()))
    }

    /// Whether `presented` is this token (constant time in the presented length).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mut diff = u8::from(presented.len() != self.0.len());
        for (i, b) in presented.iter().enumerate() {
            diff |= b ^ self.0.get(i).copied().unwrap_or(0);
        }
        std::hint::black_box(diff) == 0
    }

    /// The token as a cookie value (`%XX` for every byte a cookie may not hold).
    pub fn cookie_value(&self) -> String {
        encode(&self.0)
    }
}

/// The bytes a cookie value keeps as they are: letters, digits, `-`, `_`, `.`, `~`.
const COOKIE_KEEPS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `%XX` for every byte but letters, digits, `-`, `_`, `.`, `~`.
pub fn encode(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, COOKIE_KEEPS).to_string()
}

/// Read the token of `read_token_file`: it must be readable by its owner only.
pub fn read_token(path: &Path) -> Result<Token, AuthError> {
    let read = |source| AuthError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(AuthError::Mode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read(path).map_err(read)?;
    Token::new(&text).ok_or_else(|| AuthError::Empty(path.to_path_buf()))
}

/// The collector serves beyond loopback only with a read token (like svcd).
pub fn check_listen(listen: SocketAddr, token: Option<&Token>) -> Result<(), AuthError> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(AuthError::OpenListen(listen));
    }
    Ok(())
}

/// Make the database file mode 0600 (it holds every node's status and the fleet's history):
/// created so when missing; an existing one readable by others is restricted, and its former
/// mode returned so the caller can say so. SQLite gives the `-wal` and `-shm` files the
/// database's mode.
pub fn restrict_database(path: &Path) -> Result<Option<u32>, AuthError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AuthError::DbCreate {
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuthError::DbCreate {
            path: path.to_path_buf(),
            source,
        })?;
    let mut was = None;
    for p in [
        path.to_path_buf(),
        PathBuf::from(format!("{}-wal", path.display())),
        PathBuf::from(format!("{}-shm", path.display())),
    ] {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(
                |source| AuthError::DbMode {
                    path: p.clone(),
                    mode,
                    source,
                },
            )?;
            if p == path {
                was = Some(mode);
            }
        }
    }
    Ok(was)
}

/// The token a request presents: `Authorization: Bearer T`, else the login cookie.
pub fn presented(headers: &hyper::HeaderMap) -> Option<Vec<u8>> {
    if let Some(t) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    {
        return Some(t.trim_ascii().to_vec());
    }
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| percent_encoding::percent_decode_str(v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_cookies() {
        let t = Token::new(b"  s3cret; x\n").unwrap();
        assert!(t.matches(b"s3cret; x"));
        assert!(!t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cret; y"));
        assert!(Token::new(b" \n").is_none());
        assert_eq!(t.cookie_value(), "s3cret%3B%20x");
        let mut h = hyper::HeaderMap::new();
        h.insert(
            hyper::header::COOKIE,
            format!("a=b; {COOKIE}={}", t.cookie_value())
                .parse()
                .unwrap(),
        );
        assert!(t.matches(&presented(&h).unwrap()));
        h.insert(
            hyper::header::AUTHORIZATION,
            "Bearer other".parse().unwrap(),
        );
        assert_eq!(presented(&h).unwrap(), b"other");
    }

    #[test]
    fn files_and_listen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_token(&p).unwrap_err().to_string();
        assert!(e.contains("mode 0640") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_token(&p).unwrap().matches(b"abc"));
        let e = read_token(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("No such file"), "{e}");
        let open: SocketAddr = "0.0.0.0:1216".parse().unwrap();
        let e = check_listen(open, None).unwrap_err().to_string();
        assert!(e.contains("beyond loopback"), "{e}");
        check_listen(open, Some(&Token::new(b"x").unwrap())).unwrap();
        check_listen("127.0.0.1:1".parse().unwrap(), None).unwrap();
        // The database: created 0600; an existing 0644 one is restricted and its mode told.
        let db = dir.path().join("sub/c.db");
        assert_eq!(restrict_database(&db).unwrap(), None);
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(restrict_database(&db).unwrap(), Some(0o644));
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }
}
