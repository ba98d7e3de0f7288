//! Reading service files from `<config>/services`.

use std::path::{Path, PathBuf};

use berth_model::config::{
    Checked, ConfigError, ConfigErrorKind, Format, LoadContext, MAX_SERVICE_FILE_BYTES, NodeConfig,
    ServiceConfig,
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

/// What a load on this node knows: its name as berth resolves it ([`nodename`]), for
/// `key@node` scoping and `{nodename}`. A name that cannot be told leaves it unknown (then only
/// a file that uses it fails, naming the reference).
pub fn load_context(paths: &Paths) -> LoadContext {
    let node = node_config(paths).ok();
    LoadContext {
        nodename: node.as_ref().and_then(|n| nodename(n).ok()),
        members: node
            .filter(|n| n.cluster.is_some())
            .and_then(|_| read_members(paths)),
    }
}

/// `<var>/cluster.members`: the cluster's members in join order, one a line, as svcd last saw
/// them in etcd (svcd rewrites it when they change; `nodes = "*"` resolves from it).
pub fn members_file(paths: &Paths) -> PathBuf {
    paths.var_dir.join("cluster.members")
}

/// The members [`members_file`] lists; `None` when it is missing, unreadable or empty.
pub fn read_members(paths: &Paths) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(members_file(paths)).ok()?;
    let members: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (!members.is_empty()).then_some(members)
}

/// Parse one service file, as no particular node sees it (see [`load_file_on`]).
pub fn load_file(path: &Path) -> Result<ServiceConfig, LoadError> {
    load_file_on(path, &LoadContext::default())
}

/// Parse one service file as node `load` sees it. It is read as bytes, and no further than
/// one byte past the size limit: a file that is not UTF-8 or too large is a config error (exit
/// 2) naming the file (and for bad bytes, the line and offset), not a read error. The error
/// carries every other error and warning of the file.
pub fn load_file_on(path: &Path, load: &LoadContext) -> Result<ServiceConfig, LoadError> {
    Ok(check_file(path, load)?.into_result()?)
}

/// Read one service file and report everything about it: the service when it has no error,
/// and every error and warning, each naming file, line, section and key (`validate config`).
/// `Err` only when the file cannot be read.
pub fn check_file(path: &Path, load: &LoadContext) -> Result<Checked, LoadError> {
    use std::io::Read as _;
    let read_err = |error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    // Sized for a usual service file: read in one call, not in growing steps from 32 bytes.
    let mut bytes = Vec::with_capacity(16 * 1024);
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
    Ok(ServiceConfig::check_bytes(path, &bytes, load))
}

/// The file of service `svc` in `<config>/services`, found but not read (`svc SVC edit config`
/// works on a file that does not load): exactly one of `.toml`, `.env`, `.conf`.
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
    pick_file(svc, dir, files)
}

/// The file of `svc` among its `files` (those of `<dir>/<svc>.toml`, `.env`, `.conf` that
/// exist, in that order): none or several are an error.
fn pick_file(svc: &str, dir: PathBuf, files: Vec<PathBuf>) -> Result<PathBuf, LoadError> {
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

/// Load service `svc` from `<config>/services`, as this node sees it ([`load_context`]).
pub fn load_service(paths: &Paths, svc: &str) -> Result<ServiceConfig, LoadError> {
    load_file_on(&service_file(paths, svc)?, &load_context(paths))
}

/// Everything about service `svc`'s file as this node sees it (see [`check_file`]).
pub fn check_service(paths: &Paths, svc: &str) -> Result<Checked, LoadError> {
    check_file(&service_file(paths, svc)?, &load_context(paths))
}

/// Every service file of `<config>/services` by service name (sorted), each name's files in
/// [`EXTENSIONS`] order: one listing of the directory, its entry types telling regular files
/// (a symlink is followed, an entry of unknown type looked at), no lookup per name.
fn service_files(paths: &Paths) -> Result<Vec<(String, Vec<PathBuf>)>, LoadError> {
    let dir = paths.services_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(LoadError::Read { path: dir, error }),
    };
    let mut found: std::collections::BTreeMap<String, Vec<(usize, PathBuf)>> =
        std::collections::BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|error| LoadError::Read {
            path: dir.clone(),
            error,
        })?;
        let path = entry.path();
        if Format::from_path(&path).is_none() {
            continue;
        }
        let Some(rank) = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| EXTENSIONS.iter().position(|x| *x == e))
        else {
            continue;
        };
        let regular = match entry.file_type() {
            Ok(t) if t.is_file() => true,
            Ok(t) if t.is_dir() => false,
            _ => path.is_file(),
        };
        if !regular {
            continue;
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            found
                .entry(stem.to_string())
                .or_default()
                .push((rank, path));
        }
    }
    Ok(found
        .into_iter()
        .map(|(name, mut files)| {
            files.sort();
            (name, files.into_iter().map(|(_, p)| p).collect())
        })
        .collect())
}

/// The names of every service in `<config>/services`, sorted. A missing directory is no service.
pub fn service_names(paths: &Paths) -> Result<Vec<String>, LoadError> {
    Ok(service_files(paths)?.into_iter().map(|(n, _)| n).collect())
}

/// A file of `<config>/services` berth does not read, and why (see [`ignored_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The file.
    pub path: PathBuf,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ignored: berth reads <svc>.{} only",
            self.path.display(),
            EXTENSIONS.join(", <svc>.")
        )
    }
}

/// The regular files of `<config>/services` that are no service file (`web.yaml`, `web.TOML`,
/// `web.toml.bak`), sorted: a service written there would silently not exist. Hidden files
/// (editors' swap files) are left out. A directory that cannot be listed has none.
pub fn ignored_files(paths: &Paths) -> Vec<Ignored> {
    let Ok(entries) = std::fs::read_dir(paths.services_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Ignored> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
                && p.is_file()
                && Format::from_path(p).is_none()
        })
        .map(|path| Ignored { path })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The directories of `<var>` whose service has no file any more (a deleted service's log,
/// records and docker data), sorted: berth never removes them by itself.
pub fn leftover_var_dirs(paths: &Paths) -> Result<Vec<PathBuf>, LoadError> {
    let names = service_names(paths)?;
    let Ok(entries) = std::fs::read_dir(&paths.var_dir) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && names.binary_search_by(|n| n.as_str().cmp(&name)).is_err()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// A service name and the service, or why it could not be loaded.
pub type Loaded = (String, Result<ServiceConfig, LoadError>);

/// Every service: each loaded, or the reason it could not be.
/// The directory is listed once (see `service_files`): as many lookups as [`load_service`] for
/// each name would make are saved.
pub fn load_all(paths: &Paths) -> Result<Vec<Loaded>, LoadError> {
    let dir = paths.services_dir();
    let load = load_context(paths);
    Ok(service_files(paths)?
        .into_iter()
        .map(|(name, files)| {
            let svc = berth_model::config::keywords::validate_service_name(&name)
                .map_err(|why| LoadError::BadName {
                    svc: name.clone(),
                    why,
                })
                .and_then(|()| pick_file(&name, dir.clone(), files))
                .and_then(|file| load_file_on(&file, &load));
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
    fn files_berth_does_not_read_and_leftover_var_dirs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        assert!(ignored_files(&p).is_empty(), "no services dir: nothing");
        let svcs = p.services_dir();
        std::fs::create_dir_all(&svcs).unwrap();
        for f in [
            "web.toml",
            "web.yaml",
            "db.TOML",
            "db.toml.bak",
            "README",
            ".web.toml.swp",
            "old.env",
        ] {
            std::fs::write(svcs.join(f), "").unwrap();
        }
        std::fs::create_dir(svcs.join("sub.toml")).unwrap();
        let ignored: Vec<String> = ignored_files(&p).iter().map(|i| i.to_string()).collect();
        let d = svcs.display();
        assert_eq!(
            ignored,
            [
                format!("{d}/README ignored: berth reads <svc>.toml, <svc>.env, <svc>.conf only"),
                format!("{d}/db.TOML ignored: berth reads <svc>.toml, <svc>.env, <svc>.conf only"),
                format!(
                    "{d}/db.toml.bak ignored: berth reads <svc>.toml, <svc>.env, <svc>.conf only"
                ),
                format!("{d}/web.yaml ignored: berth reads <svc>.toml, <svc>.env, <svc>.conf only"),
            ]
        );

        assert!(
            leftover_var_dirs(&p).unwrap().is_empty(),
            "no var dir: nothing"
        );
        for d in ["web", "gone", ".hidden", "db"] {
            std::fs::create_dir_all(p.var_dir.join(d)).unwrap();
        }
        std::fs::write(p.var_dir.join("cluster.lease"), "").unwrap();
        assert_eq!(
            leftover_var_dirs(&p).unwrap(),
            [p.var_dir.join("db"), p.var_dir.join("gone")],
            "db has only files berth does not read"
        );
    }

    /// `load_all` lists the directory once; its answers are `load_service`'s for every name:
    /// twins, a symlink to a file, a directory named like a file, a broken file.
    #[test]
    fn load_all_answers_as_load_service_does() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        let s = p.services_dir();
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("a.toml"), "[vg.1]\nvgname = \"v\"\n").unwrap();
        std::fs::write(s.join("twin.toml"), "[vg.1]\nvgname = \"v\"\n").unwrap();
        std::fs::write(s.join("twin.conf"), "[vg#1]\nvgname = v\n").unwrap();
        std::fs::write(dir.path().join("target.env"), "[vg#1]\nvgname = w\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target.env"), s.join("link.env")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone.toml"), s.join("dangling.toml")).unwrap();
        std::fs::create_dir(s.join("adir.toml")).unwrap();
        std::fs::write(s.join("broken.toml"), "[vg.1\n").unwrap();
        let all = load_all(&p).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "broken", "link", "twin"]);
        for (name, loaded) in &all {
            let one = load_service(&p, name);
            assert_eq!(
                loaded
                    .as_ref()
                    .map(|c| format!("{:?}", c.resources))
                    .map_err(|e| e.to_string()),
                one.as_ref()
                    .map(|c| format!("{:?}", c.resources))
                    .map_err(|e| e.to_string()),
                "{name}"
            );
        }
        let twin = all[3].1.as_ref().unwrap_err().to_string();
        assert!(
            twin.contains("twin.toml and") && twin.contains("twin.conf"),
            "{twin}"
        );
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
    fn a_load_sees_the_file_as_this_node() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::create_dir_all(p.services_dir()).unwrap();
        std::fs::write(p.node_config(), "nodename = \"n2\"\n").unwrap();
        // BERTH_NODENAME would win over node.toml; the test runs without it.
        assert!(std::env::var_os("BERTH_NODENAME").is_none());
        std::fs::write(
            p.services_dir().join("web.env"),
            "[DEFAULT]\nnodes = n1 n2\n[ip#1]\nipname = 192.0.2.1\nipdev = eth0\nipdev@n2 = eth2\n\
             [fs#1]\ndev = /dev/x\nmnt = /srv/{nodename}\ntype = ext4\n",
        )
        .unwrap();
        let svc = load_service(&p, "web").unwrap();
        let berth_model::config::Spec::Ip(ip) = &svc.resources[0].spec else {
            panic!()
        };
        assert_eq!(ip.ipdev, "eth2");
        let berth_model::config::Spec::Fs(fs) = &svc.resources[1].spec else {
            panic!()
        };
        assert_eq!(fs.mnt, Path::new("/srv/n2"));
        assert_eq!(
            load_all(&p).unwrap()[0].1.as_ref().unwrap().resources.len(),
            2
        );
        // check_service reports every problem; load_service's error carries them all.
        std::fs::write(
            p.services_dir().join("web.env"),
            "[fs#1]\ndev = /dev/x\nmnt = rel\ntype = ext4\nsnap = 1\n[container#1]\ntype = lxc\n",
        )
        .unwrap();
        let checked = check_service(&p, "web").unwrap();
        assert!(checked.service.is_none());
        assert_eq!(checked.diagnostics.errors.len(), 2, "{checked:?}");
        assert_eq!(checked.diagnostics.warnings.len(), 1, "{checked:?}");
        let err = load_service(&p, "web").unwrap_err();
        assert!(err.is_config());
        let text = err.to_string();
        assert!(text.contains(":3: [fs#1] mnt:"), "{text}");
        assert!(
            text.contains(":7: [container#1] type: type lxc is not supported (berth has: docker)"),
            "{text}"
        );
        assert!(
            text.contains("warning: ") && text.contains("snap"),
            "{text}"
        );
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
