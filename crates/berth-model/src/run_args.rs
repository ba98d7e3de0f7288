//! The options a container runs with: `run_args` (docker run flags) and the TOML keywords that say
//! the same, merged into one [`RunOptions`]. Pure parsing, no I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

/// How a container is created. Defaults follow the core seed: a tty and an open stdin (so a
/// `/bin/sh` container stays up), and an init process so a PID 1 that ignores TERM still stops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOptions {
    /// `-e KEY=VALUE` / `env`.
    pub env: Vec<String>,
    /// `--env-file PATH` (read when the container is created).
    pub env_files: Vec<PathBuf>,
    /// `-v SRC:DST[:MODE]` / `volumes`.
    pub volumes: Vec<String>,
    /// `-p [IP:]HOST:CONTAINER[/PROTO]` / `ports`.
    pub ports: Vec<String>,
    /// `-m` / `memory`, in bytes.
    pub memory: Option<i64>,
    /// `--cpus` / `cpus`.
    pub cpus: Option<f64>,
    /// `--net` / `--network` / `network`.
    pub network: Option<String>,
    /// `-w` / `workdir`.
    pub workdir: Option<String>,
    /// `-u` / `user`.
    pub user: Option<String>,
    /// `--entrypoint` / `entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `--volumes-from`.
    pub volumes_from: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    pub links: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--init` / `init` (default true).
    pub init: bool,
    /// `-t` / `tty` (default true).
    pub tty: bool,
    /// `-i` / `interactive` (default true).
    pub interactive: bool,
    /// `--hostname` / `hostname`.
    pub hostname: Option<String>,
    /// `--label K=V` / `labels`.
    pub labels: BTreeMap<String, String>,
    /// `--restart` (docker's own restart policy; berth's monitor is the usual way).
    pub restart: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            env: Vec::new(),
            env_files: Vec::new(),
            volumes: Vec::new(),
            ports: Vec::new(),
            memory: None,
            cpus: None,
            network: None,
            workdir: None,
            user: None,
            entrypoint: None,
            volumes_from: Vec::new(),
            links: Vec::new(),
            privileged: false,
            cap_add: Vec::new(),
            init: true,
            tty: true,
            interactive: true,
            hostname: None,
            labels: BTreeMap::new(),
            restart: None,
        }
    }
}

/// Container keywords (besides the common ones), mandatory first.
pub const CONTAINER_KEYWORDS: &[&str] = &[
    "run_image",
    "type",
    "run_command",
    "run_args",
    "start_timeout",
    "stop_timeout",
    "env",
    "volumes",
    "ports",
    "init",
    "tty",
    "interactive",
];

/// Read `run_args` and the TOML keywords of a container section into run options.
pub(crate) fn read(
    r: &mut crate::config::keywords::Reader<'_>,
) -> Result<RunOptions, crate::config::ConfigError> {
    let mut opts = RunOptions::default();
    if let Some(words) = r.words("run_args")? {
        let mut it = words.into_iter();
        while let Some(flag) = it.next() {
            let mut value = |name: &str| {
                it.next().ok_or_else(|| {
                    r.error(
                        "run_args",
                        crate::config::ConfigErrorKind::BadValue {
                            value: name.to_string(),
                            expected: "this flag takes a value".to_string(),
                        },
                    )
                })
            };
            match flag.as_str() {
                "-v" | "--volume" => opts.volumes.push(value(&flag)?),
                "-e" | "--env" => opts.env.push(value(&flag)?),
                "-d" | "--detach" => {}
                "-t" | "--tty" => opts.tty = true,
                "-i" | "--interactive" => opts.interactive = true,
                other => {
                    return Err(r.error(
                        "run_args",
                        crate::config::ConfigErrorKind::BadValue {
                            value: other.to_string(),
                            expected: "a docker run flag berth supports".to_string(),
                        },
                    ));
                }
            }
        }
    }
    opts.env.extend(r.list("env")?);
    opts.volumes.extend(r.list("volumes")?);
    opts.ports.extend(r.list("ports")?);
    opts.init = r.boolean("init", opts.init)?;
    opts.tty = r.boolean("tty", opts.tty)?;
    opts.interactive = r.boolean("interactive", opts.interactive)?;
    Ok(opts)
}

/// Write run options as TOML keywords (for `print config`); defaults are written too.
pub(crate) fn emit(out: &mut String, o: &RunOptions) {
    use std::fmt::Write as _;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |l: &[String]| {
        format!(
            "[{}]",
            l.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        )
    };
    if !o.env.is_empty() {
        let _ = writeln!(out, "env = {}", list(&o.env));
    }
    if !o.volumes.is_empty() {
        let _ = writeln!(out, "volumes = {}", list(&o.volumes));
    }
    if !o.ports.is_empty() {
        let _ = writeln!(out, "ports = {}", list(&o.ports));
    }
    let _ = writeln!(
        out,
        "init = {}\ntty = {}\ninteractive = {}",
        o.init, o.tty, o.interactive
    );
}
