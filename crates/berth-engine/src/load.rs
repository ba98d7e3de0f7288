//! Reading service files from `<config>/services`.

use std::path::{Path, PathBuf};

use berth_model::config::{
    ConfigError, ConfigErrorKind, Format, MAX_SERVICE_FILE_BYTES, NodeConfig, ServiceConfig,
};
use berth_model::paths::Paths;

/// Why a service could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file for this service.
    #[error("no service {svc}: none of {dir}/{svc}.toml, .env, .conf exists")]
    NotFound {
        /// The service.
        svc: String,
        /// The services directory.
        dir: PathBuf,
    },
    /// The name cannot be a service's (`../x`, `a/b`, empty...): no file is looked for.
    #[error("bad service name {svc:?}: {why}")]
    BadName {
        /// The name as given.
        svc: String,
        /// Why it is refused.
        why: String,
    },
    /// More than one file for one service.
    #[error("service {svc} is defined twice: {} (keep one)", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" and "))]
    Ambiguous {
        /// The service.
        svc: String,
        /// The files.
        files: Vec<PathBuf>,
    },
    /// A file could not be read. The OS error is part of the message and not a `source`,
    /// so a printed chain (`{:#}`) says it once.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file does not parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node name is not set and the hostname cannot be read.
    #[error("cannot tell the node name: {0} (set BERTH_NODENAME or nodename in node.toml)")]
    Nodename(String),
}

impl LoadError {
    /// Whether this is a config problem (exit code 2) rather than a host one.
    pub fn is_config(&self) -> bool {
        !matches!(self, LoadError::Read { .. } | LoadError::Nodename(_))
    }
}

const EXTENSIONS: [&str; 3] = ["toml", "env", "conf"];

/// `<config>/node.toml`; a missing file is every default.
pub fn node_config(paths: &Paths) -> Result<NodeConfig, LoadError> {
    let file = paths.node_config();
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(NodeConfig::parse(&file, &text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NodeConfig::default()),
        Err(error) => Err(LoadError::Read { path: file, error }),
    }
}

/// This node's name: `BERTH_NODENAME`, else `nodename` in node.toml, else the hostname.
pub fn nodename(node: &NodeConfig) -> Result<String, LoadError> {
    if let Some(n) = std::env::var_os("BERTH_NODENAME").filter(|n| !n.is_empty()) {
        return n
            .into_string()
            .map_err(|_| LoadError::Nodename("BERTH_NODENAME is not valid UTF-8".into()));
    }
    if let Some(n) = &node.nodename {
        return Ok(n.clone());
    }
    nix::unistd::gethostname()
        .map_err(|e| LoadError::Nodename(format!("cannot read the hostname: {e}")))?
        .into_string()
        .map_err(|_| LoadError::Nodename("the hostname is not valid UTF-8".into()))
}

/// Parse one service file. It is read as bytes, and no further than one byte past the size
/// limit: a file that is not UTF-8 or too large is a config error (exit 2) naming the file
/// (and for bad bytes, the line and offset), not a read error.
pub fn load_file(path: &Path) -> Result<ServiceConfig, LoadError> {
    use std::io::Read as _;
    let read_err = |error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_SERVICE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SERVICE_FILE_BYTES {
        return Err(ConfigError::file(
            path,
            ConfigErrorKind::TooLarge {
                bytes: bytes.len() as u64,
                limit: MAX_SERVICE_FILE_BYTES,
            },
        )
        .into());
    }
    Ok(ServiceConfig::parse_bytes(path, &bytes)?)
}

/// Load service `svc` from `<config>/services`.
pub fn load_service(paths: &Paths, svc: &str) -> Result<ServiceConfig, LoadError> {
    load_file(&service_file(paths, svc)?)
}

/// The file of service `svc` in `<config>/services`, found but not read (`svc SVC edit config`
/// works on a file that does not load).
pub fn service_file(paths: &Paths, svc: &str) -> Result<PathBuf, LoadError> {
    // The name becomes a path: `../../x` must not read a file outside the services dir.
    berth_model::config::keywords::validate_service_name(svc).map_err(|why| {
        LoadError::BadName {
            svc: svc.to_string(),
            why,
        }
    })?;
    let dir = paths.services_dir();
    let files: Vec<PathBuf> = EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{svc}.{ext}")))
        .filter(|p| p.is_file())
        .collect();
    match files.as_slice() {
        [] => Err(LoadError::NotFound {
            svc: svc.to_string(),
            dir,
        }),
        [one] => Ok(one.clone()),
        _ => Err(LoadError::Ambiguous {
            svc: svc.to_string(),
            files,
        }),
    }
}

/// The names of every service in `<config>/services`, sorted. A missing directory is no service.
pub fn service_names(paths: &Paths) -> Result<Vec<String>, LoadError> {
    let dir = paths.services_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(LoadError::Read { path: dir, error }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| LoadError::Read {
            path: dir.clone(),
            error,
        })?;
        let path = entry.path();
        if Format::from_path(&path).is_none() || !path.is_file() {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            names.push(stem.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// A service name and the service, or why it could not be loaded.
pub type Loaded = (String, Result<ServiceConfig, LoadError>);

/// Every service: each loaded, or the reason it could not be.
pub fn load_all(paths: &Paths) -> Result<Vec<Loaded>, LoadError> {
    Ok(service_names(paths)?
        .into_iter()
        .map(|name| {
            let svc = load_service(paths, &name);
            (name, svc)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> Paths {
        Paths {
            config_dir: dir.to_path_buf(),
            var_dir: dir.join("var"),
            run_dir: dir.join("run"),
        }
    }

    #[test]
    fn finds_toml_and_ini_and_refuses_twins() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert!(service_names(&p).unwrap().is_empty());
        std::fs::create_dir_all(p.services_dir()).unwrap();
        std::fs::write(p.services_dir().join("a.toml"), "[vg.1]\nvgname = \"v\"\n").unwrap();
        std::fs::write(p.services_dir().join("b.env"), "[vg#1]\nvgname = v\n").unwrap();
        std::fs::write(p.services_dir().join("README.md"), "not a service").unwrap();
        assert_eq!(service_names(&p).unwrap(), ["a", "b"]);
        assert_eq!(load_service(&p, "b").unwrap().resources.len(), 1);
        assert!(matches!(
            load_service(&p, "c"),
            Err(LoadError::NotFound { .. })
        ));
        // A name that walks out of the services dir is refused before any file is read.
        std::fs::write(dir.path().join("evil.toml"), "[vg.1]\nvgname = \"v\"\n").unwrap();
        let err = load_service(&p, "../evil").unwrap_err();
        assert!(matches!(err, LoadError::BadName { .. }), "{err}");
        assert!(err.is_config());
        std::fs::write(p.services_dir().join("a.conf"), "[vg#1]\nvgname = v\n").unwrap();
        let err = load_service(&p, "a").unwrap_err();
        assert!(matches!(err, LoadError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("a.toml and"), "{err}");
    }

    #[test]
    fn non_utf8_and_oversized_files_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::create_dir_all(p.services_dir()).unwrap();
        let bad = p.services_dir().join("bad.env");
        std::fs::write(&bad, b"[DEFAULT]\napp = caf\xe9\n").unwrap();
        let err = load_service(&p, "bad").unwrap_err();
        assert!(err.is_config(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2: not valid UTF-8: byte 0xe9 at byte offset 19",
                bad.display()
            )
        );
        let big = p.services_dir().join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_SERVICE_FILE_BYTES * 3).unwrap();
        let err = load_service(&p, "big").unwrap_err();
        assert!(err.is_config(), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the file is {} bytes or more, over the {MAX_SERVICE_FILE_BYTES}-byte limit of a service file",
                big.display(),
                MAX_SERVICE_FILE_BYTES + 1
            )
        );
    }
}
