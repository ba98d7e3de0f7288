//! The node's settings as svcd uses them: `node.toml`, the node name and the bearer token.

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_engine::load::{self, LoadError};
use berth_model::paths::Paths;

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `node.toml` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `node.toml` does not parse, or the node name cannot be told.
    #[error(transparent)]
    Node(#[from] LoadError),
    /// The token file can be read by anyone.
    #[error(
        "token file {path} is world-readable (mode {mode:04o}): anyone on this node could run \
         actions; fix it with `chmod 600 {path}`"
    )]
    WorldReadable {
        /// The token file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// svcd would listen beyond loopback with no read token: anyone could read the tree.
    #[error(
        "listen = {listen} is beyond loopback but there is no read token in {path}: write one \
         there (mode 0600) or listen on 127.0.0.1"
    )]
    OpenReads {
        /// The listen address.
        listen: std::net::SocketAddr,
        /// The read token file.
        path: PathBuf,
    },
}

impl SettingsError {
    /// Whether this is the operator's configuration at fault (exit code 2) rather than the host.
    pub fn is_config(&self) -> bool {
        match self {
            SettingsError::Read { .. } => false,
            SettingsError::Node(e) => e.is_config(),
            SettingsError::WorldReadable { .. } | SettingsError::OpenReads { .. } => true,
        }
    }
}

/// The bearer token actions must present. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token from its text (surrounding whitespace dropped); `None` when empty.
    pub fn new(text: &[u8]) -> Option<Token> {
        let trimmed = text.trim_ascii();
        (!trimmed.is_empty()).then(|| Token(trimmed.to_vec()))
    }

    /// Whether `presented` is this token. Takes the same time whatever the bytes are (only the
    /// length of the stored token decides how many bytes are compared).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let mut diff = u8::from(presented.len() != self.0.len());
        for (i, &want) in self.0.iter().enumerate() {
            let got = presented.get(i).copied().unwrap_or(!want);
            diff |= want ^ got;
        }
        std::hint::black_box(diff) == 0
    }
}

/// Read the token file: `None` when it does not exist or is empty (actions are then refused);
/// an error when it is world-readable.
pub fn read_token(path: &Path) -> Result<Option<Token>, SettingsError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SettingsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Err(SettingsError::WorldReadable {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Token::new(&text))
}

/// What a token file gave: a token, nothing, or a file svcd will not use (and why).
#[derive(Debug, Clone)]
pub enum TokenState {
    /// The file holds a token.
    Set(Token),
    /// The file does not exist or is empty.
    Missing,
    /// The file is not used: the reason, as [`SettingsError`] says it.
    Refused(String),
}

impl TokenState {
    /// The token, when there is one to check against.
    pub fn token(&self) -> Option<&Token> {
        match self {
            TokenState::Set(t) => Some(t),
            TokenState::Missing | TokenState::Refused(_) => None,
        }
    }

    /// Whether the file gave a token.
    pub fn is_set(&self) -> bool {
        matches!(self, TokenState::Set(_))
    }

    /// Why actions are refused, as the 401 answer and the log say it; `None` when there is a token.
    pub fn refusal(&self, path: &Path) -> Option<String> {
        match self {
            TokenState::Set(_) => None,
            TokenState::Missing => Some(format!(
                "no token in {}: actions are disabled until one is written there (mode 0600)",
                path.display()
            )),
            TokenState::Refused(why) => Some(format!("{why}; actions are refused until then")),
        }
    }

    fn read(path: &Path) -> TokenState {
        match read_token(path) {
            Ok(Some(t)) => TokenState::Set(t),
            Ok(None) => TokenState::Missing,
            Err(e) => TokenState::Refused(e.to_string()),
        }
    }
}

/// Everything svcd takes from `node.toml` and the environment, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub nodename: String,
    /// The HTTP endpoint.
    pub listen: std::net::SocketAddr,
    /// The address other nodes reach this one at (node.toml `address`, else `listen`'s host).
    pub address: String,
    /// The token file actually used.
    pub token_file: PathBuf,
    /// What the token file gave.
    pub token: TokenState,
    /// The period of the status checks.
    pub monitor_interval: Duration,
    /// The read token file actually used.
    pub read_token_file: PathBuf,
    /// What the read token file gave (`/status`, `/metrics`).
    pub read_token: TokenState,
    /// `[tls]` of node.toml: the endpoint serves HTTPS with these files.
    pub tls: Option<berth_model::config::TlsFiles>,
    /// `[cluster]`: the etcd cluster this node is part of.
    pub cluster: Option<berth_model::config::ClusterConfig>,
}

impl Settings {
    /// Read `<config>/node.toml` (a missing file means every default), the node name
    /// (`BERTH_NODENAME`, then `nodename`, then the hostname) and the tokens. A token file that
    /// cannot be used (world-readable, unreadable) is an error: svcd does not start with one.
    pub fn load(paths: &Paths) -> Result<Settings, SettingsError> {
        let s = Settings::reload(paths)?;
        for (state, path) in [
            (&s.token, &s.token_file),
            (&s.read_token, &s.read_token_file),
        ] {
            if matches!(state, TokenState::Refused(_)) {
                // Read again for the typed error (the file may have been fixed meanwhile).
                read_token(path)?;
            }
        }
        Ok(s)
    }

    /// As [`Settings::load`], for a running svcd: a token file that cannot be used is not an
    /// error but a [`TokenState::Refused`], whose reason the 401 answers give.
    pub fn reload(paths: &Paths) -> Result<Settings, SettingsError> {
        let node = load::node_config(paths)?;
        let nodename = load::nodename(&node)?;
        let token_file = node.token_path(&paths.config_dir);
        let token = TokenState::read(&token_file);
        let read_token_file = node.read_token_path(&paths.config_dir);
        let read_token = TokenState::read(&read_token_file);
        if matches!(read_token, TokenState::Missing)
            && !node.listen.ip().is_loopback()
            && !node.open_reads
        {
            return Err(SettingsError::OpenReads {
                listen: node.listen,
                path: read_token_file,
            });
        }
        Ok(Settings {
            nodename,
            listen: node.listen,
            address: node.address(),
            token_file,
            token,
            monitor_interval: node.monitor_interval,
            read_token_file,
            read_token,
            tls: node.tls,
            cluster: node.cluster.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        let t = Token::new(b"  s3cret\n").unwrap();
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b"s3cret2"));
        assert!(!t.matches(b"S3cret"));
        assert!(!t.matches(b""));
        assert!(Token::new(b" \n").is_none());
        assert_eq!(format!("{t:?}"), "Token(..)");
    }

    #[test]
    fn world_readable_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        assert!(read_token(&p).unwrap().is_none());
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_token(&p).unwrap_err().to_string();
        assert!(err.contains("world-readable (mode 0644)"), "{err}");
        assert!(err.contains(&p.display().to_string()), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_token(&p).unwrap().unwrap().matches(b"abc"));
    }

    #[test]
    fn a_running_svcd_keeps_the_reason_a_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().to_path_buf(),
            var_dir: dir.path().join("var"),
            run_dir: dir.path().join("run"),
        };
        let file = dir.path().join("token");
        let s = Settings::reload(&paths).unwrap();
        let why = s.token.refusal(&file).unwrap();
        assert!(why.starts_with("no token in "), "{why}");
        std::fs::write(&file, "abc\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Settings::load(&paths).is_err(),
            "svcd does not start with it"
        );
        let s = Settings::reload(&paths).unwrap();
        assert!(s.token.token().is_none());
        let why = s.token.refusal(&file).unwrap();
        assert!(why.contains("world-readable (mode 0644)"), "{why}");
        assert!(why.contains(&file.display().to_string()), "{why}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Settings::reload(&paths).unwrap();
        assert!(s.token.is_set() && s.token.refusal(&file).is_none());
    }

    #[test]
    fn token_defaults_to_the_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().to_path_buf(),
            var_dir: dir.path().join("var"),
            run_dir: dir.path().join("run"),
        };
        let s = Settings::load(&paths).unwrap();
        assert_eq!(s.token_file, dir.path().join("token"));
        assert!(matches!(s.token, TokenState::Missing));
        std::fs::write(
            paths.node_config(),
            "token_file = \"/nonexistent/t\"\nmonitor_interval = \"500ms\"\n",
        )
        .unwrap();
        let s = Settings::load(&paths).unwrap();
        assert_eq!(s.token_file, Path::new("/nonexistent/t"));
        assert_eq!(s.monitor_interval, Duration::from_millis(500));
    }

    #[test]
    fn beyond_loopback_needs_a_read_token() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().to_path_buf(),
            var_dir: dir.path().join("var"),
            run_dir: dir.path().join("run"),
        };
        std::fs::write(paths.node_config(), "listen = \"0.0.0.0:1215\"\n").unwrap();
        let err = Settings::load(&paths).unwrap_err();
        assert!(err.is_config());
        let msg = err.to_string();
        assert!(
            msg.contains("0.0.0.0:1215") && msg.contains("read-token"),
            "{msg}"
        );
        let rt = dir.path().join("read-token");
        std::fs::write(&rt, "r3ad\n").unwrap();
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = Settings::load(&paths).unwrap();
        assert!(s.read_token.token().unwrap().matches(b"r3ad"));
    }
}
