//! The options a container runs with: `run_args` (the `docker run` flags people use) and the
//! keywords that say the same, merged into one [`RunOptions`]. Pure parsing, no I/O.
//!
//! `run_args` is split as a shell would split it (never run through one) and read like the docker
//! CLI reads flags: `--flag value`, `--flag=value`, `-f value`, `-fvalue`, and combined short
//! flags (`-ti`, `-itd`, `-dp 80:80`). Every flag has a keyword of the same meaning
//! ([`CONTAINER_KEYWORDS`]); list keywords add to what `run_args` gives, and a single-valued
//! setting given both ways is an error. A flag berth does not map is a config error naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::keywords::Reader;
use crate::config::{ConfigError, ConfigErrorKind};

/// How a container is created. Defaults follow the core seed: a tty and an open stdin (so a
/// `/bin/sh` container stays up), and an init process so a PID 1 that ignores TERM still stops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOptions {
    /// `-e KEY=VALUE` (or `KEY`, taken from berth's environment) / `env`.
    pub env: Vec<String>,
    /// `--env-file PATH` / `env_file` (read when the container is created).
    pub env_files: Vec<PathBuf>,
    /// `-v [SRC:]DST[:MODE]` / `volumes`.
    pub volumes: Vec<String>,
    /// `-p [IP:][HOST:]CONTAINER[/PROTO]` / `ports`.
    pub ports: Vec<String>,
    /// `--expose PORT[/PROTO]` / `expose`, normalised to `80/tcp`.
    pub expose: Vec<String>,
    /// `-m` / `memory`, in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap` / `memory_swap`, in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// `--shm-size` / `shm_size`, in bytes.
    pub shm_size: Option<i64>,
    /// `--cpus` / `cpus`.
    pub cpus: Option<f64>,
    /// `-c` / `--cpu-shares` / `cpu_shares`.
    pub cpu_shares: Option<i64>,
    /// `--cpuset-cpus` / `cpuset_cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--net` / `--network` / `network`.
    pub network: Option<String>,
    /// `-w` / `--workdir` / `workdir`.
    pub workdir: Option<String>,
    /// `-u` / `--user` / `user`.
    pub user: Option<String>,
    /// `--entrypoint` / `entrypoint` (an empty list resets the image's entrypoint).
    pub entrypoint: Option<Vec<String>>,
    /// `--volumes-from` / `volumes_from`.
    pub volumes_from: Vec<String>,
    /// `--link NAME[:ALIAS]` / `links`.
    pub links: Vec<String>,
    /// `--privileged` / `privileged`.
    pub privileged: bool,
    /// `--read-only` / `read_only`.
    pub read_only: bool,
    /// `--cap-add` / `cap_add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop` / `cap_drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt` / `security_opt`.
    pub security_opt: Vec<String>,
    /// `--device HOST[:CONTAINER[:PERMS]]` / `devices`.
    pub devices: Vec<String>,
    /// `--tmpfs PATH[:OPTS]` / `tmpfs`.
    pub tmpfs: Vec<String>,
    /// `--dns` / `dns`.
    pub dns: Vec<String>,
    /// `--add-host HOST:IP` / `extra_hosts`.
    pub extra_hosts: Vec<String>,
    /// `--sysctl K=V` / `sysctls`.
    pub sysctls: BTreeMap<String, String>,
    /// `--group-add` / `group_add`.
    pub group_add: Vec<String>,
    /// `--pid` / `pid`.
    pub pid: Option<String>,
    /// `--ipc` / `ipc`.
    pub ipc: Option<String>,
    /// `--init` / `init` (default true).
    pub init: bool,
    /// `-t` / `--tty` / `tty` (default true).
    pub tty: bool,
    /// `-i` / `--interactive` / `interactive` (default true).
    pub interactive: bool,
    /// `-h` / `--hostname` / `hostname`.
    pub hostname: Option<String>,
    /// `-l K=V` / `--label` / `labels`.
    pub labels: BTreeMap<String, String>,
    /// `--restart` / `restart_policy`: docker's own restart policy (berth's monitor is the
    /// usual way; `restart` is berth's own restart count).
    pub restart_policy: Option<String>,
    /// `--stop-signal` / `stop_signal`.
    pub stop_signal: Option<String>,
    /// `--log-driver` / `log_driver`.
    pub log_driver: Option<String>,
    /// `--log-opt K=V` / `log_opts`.
    pub log_opts: BTreeMap<String, String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            env: Vec::new(),
            env_files: Vec::new(),
            volumes: Vec::new(),
            ports: Vec::new(),
            expose: Vec::new(),
            memory: None,
            memory_swap: None,
            shm_size: None,
            cpus: None,
            cpu_shares: None,
            cpuset_cpus: None,
            network: None,
            workdir: None,
            user: None,
            entrypoint: None,
            volumes_from: Vec::new(),
            links: Vec::new(),
            privileged: false,
            read_only: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            security_opt: Vec::new(),
            devices: Vec::new(),
            tmpfs: Vec::new(),
            dns: Vec::new(),
            extra_hosts: Vec::new(),
            sysctls: BTreeMap::new(),
            group_add: Vec::new(),
            pid: None,
            ipc: None,
            init: true,
            tty: true,
            interactive: true,
            hostname: None,
            labels: BTreeMap::new(),
            restart_policy: None,
            stop_signal: None,
            log_driver: None,
            log_opts: BTreeMap::new(),
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
    "env_file",
    "volumes",
    "ports",
    "expose",
    "memory",
    "memory_swap",
    "shm_size",
    "cpus",
    "cpu_shares",
    "cpuset_cpus",
    "network",
    "workdir",
    "user",
    "entrypoint",
    "volumes_from",
    "links",
    "privileged",
    "read_only",
    "cap_add",
    "cap_drop",
    "security_opt",
    "devices",
    "tmpfs",
    "dns",
    "extra_hosts",
    "sysctls",
    "group_add",
    "pid",
    "ipc",
    "init",
    "tty",
    "interactive",
    "hostname",
    "labels",
    "restart_policy",
    "stop_signal",
    "log_driver",
    "log_opts",
];

/// A `run_args` word or keyword value berth cannot take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The word or value at fault.
    pub value: String,
    /// Why, or what was expected.
    pub expected: String,
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad value {:?}: {}", self.value, self.expected)
    }
}

impl std::error::Error for ArgError {}

/// One setting, reachable by a flag and a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setting {
    Env,
    EnvFile,
    Volume,
    Publish,
    Expose,
    Memory,
    MemorySwap,
    ShmSize,
    Cpus,
    CpuShares,
    CpusetCpus,
    Network,
    Workdir,
    User,
    Entrypoint,
    VolumesFrom,
    Link,
    Privileged,
    ReadOnly,
    CapAdd,
    CapDrop,
    SecurityOpt,
    Device,
    Tmpfs,
    Dns,
    AddHost,
    Sysctl,
    GroupAdd,
    Pid,
    Ipc,
    Init,
    Tty,
    Interactive,
    Hostname,
    Label,
    Restart,
    StopSignal,
    LogDriver,
    LogOpt,
    /// `-d`: accepted and ignored (berth always runs containers detached).
    Detach,
}

/// How a setting takes its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A flag without a value (`--privileged`, `--tty=false`).
    Bool,
    /// Repeatable: each flag adds one item; the keyword is a list.
    Many,
    /// One value: the keyword is a scalar.
    One,
}

/// Every keyword setting, in the order `print config` writes them.
const OPTS: &[Setting] = &[
    Setting::Env,
    Setting::EnvFile,
    Setting::Volume,
    Setting::Publish,
    Setting::Expose,
    Setting::Memory,
    Setting::MemorySwap,
    Setting::ShmSize,
    Setting::Cpus,
    Setting::CpuShares,
    Setting::CpusetCpus,
    Setting::Network,
    Setting::Workdir,
    Setting::User,
    Setting::Entrypoint,
    Setting::VolumesFrom,
    Setting::Link,
    Setting::Privileged,
    Setting::ReadOnly,
    Setting::CapAdd,
    Setting::CapDrop,
    Setting::SecurityOpt,
    Setting::Device,
    Setting::Tmpfs,
    Setting::Dns,
    Setting::AddHost,
    Setting::Sysctl,
    Setting::GroupAdd,
    Setting::Pid,
    Setting::Ipc,
    Setting::Init,
    Setting::Tty,
    Setting::Interactive,
    Setting::Hostname,
    Setting::Label,
    Setting::Restart,
    Setting::StopSignal,
    Setting::LogDriver,
    Setting::LogOpt,
];

impl Setting {
    fn shape(self) -> Shape {
        use Setting::*;
        match self {
            Privileged | ReadOnly | Init | Tty | Interactive | Detach => Shape::Bool,
            Env | EnvFile | Volume | Publish | Expose | VolumesFrom | Link | CapAdd | CapDrop
            | SecurityOpt | Device | Tmpfs | Dns | AddHost | Sysctl | GroupAdd | Label | LogOpt => {
                Shape::Many
            }
            Memory | MemorySwap | ShmSize | Cpus | CpuShares | CpusetCpus | Network | Workdir
            | User | Entrypoint | Pid | Ipc | Hostname | Restart | StopSignal | LogDriver => {
                Shape::One
            }
        }
    }

    /// The keyword that says the same as the flag.
    fn keyword(self) -> &'static str {
        use Setting::*;
        match self {
            Env => "env",
            EnvFile => "env_file",
            Volume => "volumes",
            Publish => "ports",
            Expose => "expose",
            Memory => "memory",
            MemorySwap => "memory_swap",
            ShmSize => "shm_size",
            Cpus => "cpus",
            CpuShares => "cpu_shares",
            CpusetCpus => "cpuset_cpus",
            Network => "network",
            Workdir => "workdir",
            User => "user",
            Entrypoint => "entrypoint",
            VolumesFrom => "volumes_from",
            Link => "links",
            Privileged => "privileged",
            ReadOnly => "read_only",
            CapAdd => "cap_add",
            CapDrop => "cap_drop",
            SecurityOpt => "security_opt",
            Device => "devices",
            Tmpfs => "tmpfs",
            Dns => "dns",
            AddHost => "extra_hosts",
            Sysctl => "sysctls",
            GroupAdd => "group_add",
            Pid => "pid",
            Ipc => "ipc",
            Init => "init",
            Tty => "tty",
            Interactive => "interactive",
            Hostname => "hostname",
            Label => "labels",
            Restart => "restart_policy",
            StopSignal => "stop_signal",
            LogDriver => "log_driver",
            LogOpt => "log_opts",
            Detach => "",
        }
    }
}

/// A `docker run` flag berth maps: its long name, its one-letter form, the setting.
struct Flag {
    long: &'static str,
    short: Option<char>,
    opt: Setting,
}

const fn flag(long: &'static str, short: Option<char>, opt: Setting) -> Flag {
    Flag { long, short, opt }
}

/// The `docker run` flags berth maps onto the API.
const FLAGS: &[Flag] = &[
    flag("env", Some('e'), Setting::Env),
    flag("env-file", None, Setting::EnvFile),
    flag("volume", Some('v'), Setting::Volume),
    flag("publish", Some('p'), Setting::Publish),
    flag("expose", None, Setting::Expose),
    flag("memory", Some('m'), Setting::Memory),
    flag("memory-swap", None, Setting::MemorySwap),
    flag("shm-size", None, Setting::ShmSize),
    flag("cpus", None, Setting::Cpus),
    flag("cpu-shares", Some('c'), Setting::CpuShares),
    flag("cpuset-cpus", None, Setting::CpusetCpus),
    flag("network", None, Setting::Network),
    flag("net", None, Setting::Network),
    flag("workdir", Some('w'), Setting::Workdir),
    flag("user", Some('u'), Setting::User),
    flag("entrypoint", None, Setting::Entrypoint),
    flag("volumes-from", None, Setting::VolumesFrom),
    flag("link", None, Setting::Link),
    flag("privileged", None, Setting::Privileged),
    flag("read-only", None, Setting::ReadOnly),
    flag("cap-add", None, Setting::CapAdd),
    flag("cap-drop", None, Setting::CapDrop),
    flag("security-opt", None, Setting::SecurityOpt),
    flag("device", None, Setting::Device),
    flag("tmpfs", None, Setting::Tmpfs),
    flag("dns", None, Setting::Dns),
    flag("add-host", None, Setting::AddHost),
    flag("sysctl", None, Setting::Sysctl),
    flag("group-add", None, Setting::GroupAdd),
    flag("pid", None, Setting::Pid),
    flag("ipc", None, Setting::Ipc),
    flag("init", None, Setting::Init),
    flag("tty", Some('t'), Setting::Tty),
    flag("interactive", Some('i'), Setting::Interactive),
    flag("detach", Some('d'), Setting::Detach),
    flag("hostname", Some('h'), Setting::Hostname),
    flag("label", Some('l'), Setting::Label),
    flag("restart", None, Setting::Restart),
    flag("stop-signal", None, Setting::StopSignal),
    flag("log-driver", None, Setting::LogDriver),
    flag("log-opt", None, Setting::LogOpt),
];

/// The supported flags, for messages and docs: `-e/--env, --env-file, ...`.
pub fn supported_flags() -> String {
    FLAGS
        .iter()
        .map(|f| match f.short {
            Some(c) => format!("-{c}/--{}", f.long),
            None => format!("--{}", f.long),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unsupported(word: &str) -> ArgError {
    let name = word.split('=').next().unwrap_or(word);
    let why = match name {
        "--name" => "berth names the container <svc>.container.<n>".to_string(),
        "--rm" => "berth keeps the container to report its status".to_string(),
        "-a" | "--attach" => "berth runs containers detached".to_string(),
        _ => format!(
            "not a docker run flag berth supports (supported: {})",
            supported_flags()
        ),
    };
    ArgError {
        value: name.to_string(),
        expected: why,
    }
}

fn bad(value: &str, expected: impl Into<String>) -> ArgError {
    ArgError {
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn parse_bool(flag: &str, v: &str) -> Result<bool, ArgError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(&format!("{flag}={v}"), "this flag takes true or false")),
    }
}

impl RunOptions {
    /// Options from `run_args` words alone (defaults for the rest).
    pub fn from_args(words: &[String]) -> Result<RunOptions, ArgError> {
        let mut o = RunOptions::default();
        o.apply_args(words)?;
        Ok(o)
    }

    /// Apply `run_args` words; returns the settings they gave.
    fn apply_args(&mut self, words: &[String]) -> Result<BTreeSet<Setting>, ArgError> {
        let mut given = BTreeSet::new();
        let mut it = words.iter();
        while let Some(word) = it.next() {
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let f = FLAGS
                    .iter()
                    .find(|f| f.long == name)
                    .ok_or_else(|| unsupported(word))?;
                match f.opt.shape() {
                    Shape::Bool => {
                        let b = match inline {
                            Some(v) => parse_bool(&format!("--{name}"), v)?,
                            None => true,
                        };
                        self.set_bool(f.opt, b);
                    }
                    _ => {
                        let v = match inline {
                            Some(v) => v,
                            None => it
                                .next()
                                .ok_or_else(|| bad(word, "this flag takes a value"))?,
                        };
                        self.apply_value(f.opt, v, true)?;
                    }
                }
                given.insert(f.opt);
            } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
                for (i, c) in cluster.char_indices() {
                    let f = FLAGS
                        .iter()
                        .find(|f| f.short == Some(c))
                        .ok_or_else(|| unsupported(&format!("-{c}")))?;
                    given.insert(f.opt);
                    let rest = &cluster[i + c.len_utf8()..];
                    if f.opt.shape() == Shape::Bool {
                        if let Some(v) = rest.strip_prefix('=') {
                            self.set_bool(f.opt, parse_bool(&format!("-{c}"), v)?);
                            break;
                        }
                        self.set_bool(f.opt, true);
                        continue;
                    }
                    // A flag taking a value ends the cluster: `-p80:80`, `-dp 80:80`.
                    let v = if rest.is_empty() {
                        it.next()
                            .map(String::as_str)
                            .ok_or_else(|| bad(&format!("-{c}"), "this flag takes a value"))?
                    } else {
                        rest.strip_prefix('=').unwrap_or(rest)
                    };
                    self.apply_value(f.opt, v, true)?;
                    break;
                }
            } else {
                return Err(bad(
                    word,
                    "run_args takes flags only: the image goes in run_image, the command in \
                     run_command",
                ));
            }
        }
        Ok(given)
    }

    fn set_bool(&mut self, opt: Setting, b: bool) {
        match opt {
            Setting::Privileged => self.privileged = b,
            Setting::ReadOnly => self.read_only = b,
            Setting::Init => self.init = b,
            Setting::Tty => self.tty = b,
            Setting::Interactive => self.interactive = b,
            _ => {}
        }
    }

    fn get_bool(&self, opt: Setting) -> bool {
        match opt {
            Setting::Privileged => self.privileged,
            Setting::ReadOnly => self.read_only,
            Setting::Init => self.init,
            Setting::Tty => self.tty,
            Setting::Interactive => self.interactive,
            _ => false,
        }
    }

    /// Validate and store one value of a setting. `from_flag`: the `--entrypoint` flag takes
    /// one word, the `entrypoint` keyword a command line.
    fn apply_value(&mut self, opt: Setting, v: &str, from_flag: bool) -> Result<(), ArgError> {
        let nonempty = |v: &str, what: &str| -> Result<String, ArgError> {
            if v.trim().is_empty() {
                Err(bad(v, format!("expected {what}")))
            } else {
                Ok(v.to_string())
            }
        };
        match opt {
            Setting::Env => {
                let key = v.split('=').next().unwrap_or("");
                if key.is_empty() || key.chars().any(char::is_whitespace) {
                    return Err(bad(
                        v,
                        "expected KEY=VALUE (or KEY, taken from the environment)",
                    ));
                }
                self.env.push(v.to_string());
            }
            Setting::EnvFile => {
                let p = PathBuf::from(v);
                if !p.is_absolute() {
                    return Err(bad(v, "expected an absolute path to an env file"));
                }
                self.env_files.push(p);
            }
            Setting::Volume => {
                parse_volume(v)?;
                self.volumes.push(v.to_string());
            }
            Setting::Publish => {
                parse_publish(v)?;
                self.ports.push(v.to_string());
            }
            Setting::Expose => self.expose.extend(parse_expose(v)?),
            Setting::Memory => self.memory = Some(parse_size(v)?),
            Setting::MemorySwap => {
                self.memory_swap = Some(if v.trim() == "-1" { -1 } else { parse_size(v)? })
            }
            Setting::ShmSize => self.shm_size = Some(parse_size(v)?),
            Setting::Cpus => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 && x <= 4096.0 => self.cpus = Some(x),
                _ => return Err(bad(v, "expected a number of CPUs such as 0.5 or 2")),
            },
            Setting::CpuShares => match v.trim().parse::<i64>() {
                Ok(n) if (0..=262_144).contains(&n) => self.cpu_shares = Some(n),
                _ => return Err(bad(v, "expected a CPU share weight such as 1024")),
            },
            Setting::CpusetCpus => {
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
                {
                    return Err(bad(v, "expected a CPU list such as 0-2,4"));
                }
                self.cpuset_cpus = Some(v.to_string());
            }
            Setting::Network => {
                self.network = Some(nonempty(v, "a network (none, host, NAME...)")?)
            }
            Setting::Workdir => {
                if !v.starts_with('/') {
                    return Err(bad(v, "expected an absolute path in the container"));
                }
                self.workdir = Some(v.to_string());
            }
            Setting::User => self.user = Some(nonempty(v, "a user[:group]")?),
            Setting::Entrypoint => {
                self.entrypoint = Some(if v.is_empty() {
                    Vec::new()
                } else if from_flag {
                    vec![v.to_string()]
                } else {
                    shell_words::split(v)
                        .map_err(|e| bad(v, format!("cannot split it as a shell would: {e}")))?
                });
            }
            Setting::VolumesFrom => self.volumes_from.push(nonempty(v, "a container[:ro|rw]")?),
            Setting::Link => self.links.push(nonempty(v, "a container[:alias]")?),
            Setting::CapAdd | Setting::CapDrop => {
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad(v, "expected a capability such as NET_ADMIN or ALL"));
                }
                if opt == Setting::CapAdd {
                    self.cap_add.push(v.to_string());
                } else {
                    self.cap_drop.push(v.to_string());
                }
            }
            Setting::SecurityOpt => self.security_opt.push(nonempty(v, "a security option")?),
            Setting::Device => {
                let mut parts = v.split(':');
                let host = parts.next().unwrap_or("");
                let inner = parts.next();
                let perms = parts.next();
                if !host.starts_with('/')
                    || inner.is_some_and(|c| !c.starts_with('/'))
                    || perms.is_some_and(|p| {
                        p.is_empty() || !p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
                    })
                    || parts.next().is_some()
                {
                    return Err(bad(v, "expected HOST_DEVICE[:CONTAINER_PATH[:rwm]]"));
                }
                self.devices.push(v.to_string());
            }
            Setting::Tmpfs => {
                if !v.starts_with('/') {
                    return Err(bad(v, "expected an absolute path[:options]"));
                }
                self.tmpfs.push(v.to_string());
            }
            Setting::Dns => {
                if v.parse::<IpAddr>().is_err() {
                    return Err(bad(v, "expected an IP address"));
                }
                self.dns.push(v.to_string());
            }
            Setting::AddHost => {
                let (host, ip) = v
                    .split_once(['=', ':'])
                    .ok_or_else(|| bad(v, "expected HOST:IP"))?;
                if host.is_empty() || (ip != "host-gateway" && ip.parse::<IpAddr>().is_err()) {
                    return Err(bad(v, "expected HOST:IP"));
                }
                self.extra_hosts.push(format!("{host}:{ip}"));
            }
            Setting::Sysctl | Setting::LogOpt => {
                let (k, val) = v
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| bad(v, "expected KEY=VALUE"))?;
                let map = if opt == Setting::Sysctl {
                    &mut self.sysctls
                } else {
                    &mut self.log_opts
                };
                map.insert(k.to_string(), val.to_string());
            }
            Setting::Label => {
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                if k.is_empty() {
                    return Err(bad(v, "expected KEY=VALUE"));
                }
                self.labels.insert(k.to_string(), val.to_string());
            }
            Setting::GroupAdd => self.group_add.push(nonempty(v, "a group")?),
            Setting::Pid => self.pid = Some(nonempty(v, "a pid mode (host, container:NAME)")?),
            Setting::Ipc => {
                self.ipc = Some(nonempty(v, "an ipc mode (private, host, shareable...)")?)
            }
            Setting::Hostname => {
                let ok = !v.is_empty()
                    && v.len() <= 253
                    && v.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !ok {
                    return Err(bad(v, "expected a host name"));
                }
                self.hostname = Some(v.to_string());
            }
            Setting::Restart => {
                parse_restart(v)?;
                self.restart_policy = Some(v.to_string());
            }
            Setting::StopSignal => {
                self.stop_signal = Some(nonempty(v, "a signal (SIGTERM, 15...)")?)
            }
            Setting::LogDriver => self.log_driver = Some(nonempty(v, "a log driver")?),
            Setting::Privileged
            | Setting::ReadOnly
            | Setting::Init
            | Setting::Tty
            | Setting::Interactive
            | Setting::Detach => {}
        }
        Ok(())
    }
}

impl RunOptions {
    /// The `docker run` flags that say the same as these options, for logs: every setting
    /// but `-t`, `-i` and `--init`, which the caller places itself (`run -t -i -d --name=...`).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut many = |flag: &str, items: &mut dyn Iterator<Item = String>| {
            for i in items {
                a.push(flag.to_string());
                a.push(i);
            }
        };
        let map = |m: &BTreeMap<String, String>| -> Vec<String> {
            m.iter().map(|(k, v)| format!("{k}={v}")).collect()
        };
        many("-e", &mut self.env.iter().cloned());
        many(
            "--env-file",
            &mut self.env_files.iter().map(|p| p.display().to_string()),
        );
        many("-v", &mut self.volumes.iter().cloned());
        many("-p", &mut self.ports.iter().cloned());
        many("--expose", &mut self.expose.iter().cloned());
        let one = [
            ("-m", self.memory.map(|n| n.to_string())),
            ("--memory-swap", self.memory_swap.map(|n| n.to_string())),
            ("--shm-size", self.shm_size.map(|n| n.to_string())),
            ("--cpus", self.cpus.map(|x| x.to_string())),
            ("--cpu-shares", self.cpu_shares.map(|n| n.to_string())),
            ("--cpuset-cpus", self.cpuset_cpus.clone()),
            ("--network", self.network.clone()),
            ("-w", self.workdir.clone()),
            ("-u", self.user.clone()),
            (
                "--entrypoint",
                self.entrypoint.as_ref().map(|e| e.join(" ")),
            ),
            ("-h", self.hostname.clone()),
            ("--pid", self.pid.clone()),
            ("--ipc", self.ipc.clone()),
            ("--restart", self.restart_policy.clone()),
            ("--stop-signal", self.stop_signal.clone()),
            ("--log-driver", self.log_driver.clone()),
        ];
        for (flag, v) in one {
            if let Some(v) = v {
                many(flag, &mut std::iter::once(v));
            }
        }
        many("--volumes-from", &mut self.volumes_from.iter().cloned());
        many("--link", &mut self.links.iter().cloned());
        many("--cap-add", &mut self.cap_add.iter().cloned());
        many("--cap-drop", &mut self.cap_drop.iter().cloned());
        many("--security-opt", &mut self.security_opt.iter().cloned());
        many("--device", &mut self.devices.iter().cloned());
        many("--tmpfs", &mut self.tmpfs.iter().cloned());
        many("--dns", &mut self.dns.iter().cloned());
        many("--add-host", &mut self.extra_hosts.iter().cloned());
        many("--sysctl", &mut map(&self.sysctls).into_iter());
        many("--group-add", &mut self.group_add.iter().cloned());
        many("-l", &mut map(&self.labels).into_iter());
        many("--log-opt", &mut map(&self.log_opts).into_iter());
        if self.privileged {
            a.push("--privileged".into());
        }
        if self.read_only {
            a.push("--read-only".into());
        }
        a
    }
}

/// A size as docker reads it: `1024`, `512k`, `512m`, `1.5g`, `1gb` (powers of 1024).
pub fn parse_size(s: &str) -> Result<i64, ArgError> {
    let expected = "expected a size such as 512m, 1g or a number of bytes";
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        Some('p') => (&t[..t.len() - 1], 1 << 50),
        _ => (t, 1),
    };
    let num = num.trim();
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad(s, expected));
    }
    let x: f64 = num.parse().map_err(|_| bad(s, expected))?;
    let bytes = x * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(bad(s, expected));
    }
    Ok(bytes as i64)
}

/// A volume: `-v DST` (anonymous) or `-v SRC:DST[:MODE]` (a host path or a named volume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    /// An anonymous volume at this container path.
    Anonymous(String),
    /// A bind (or named volume), as docker's `Binds` takes it: `SRC:DST[:MODE]`.
    Bind(String),
}

/// Parse and check a `-v` value.
pub fn parse_volume(v: &str) -> Result<VolumeSpec, ArgError> {
    let expected = "expected [SOURCE:]/CONTAINER_PATH[:MODE] (MODE: rw, ro, z, Z, nocopy, \
                    [r]shared, [r]slave, [r]private)";
    let parts: Vec<&str> = v.split(':').collect();
    let abs = |p: &str| p.starts_with('/');
    match parts.as_slice() {
        [dst] if abs(dst) => Ok(VolumeSpec::Anonymous(dst.to_string())),
        [src, dst] | [src, dst, _] if !src.is_empty() && abs(dst) => {
            let src_ok = abs(src)
                || src
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            let mode_ok = parts.get(2).is_none_or(|m| {
                !m.is_empty()
                    && m.split(',').all(|o| {
                        matches!(
                            o,
                            "rw" | "ro"
                                | "z"
                                | "Z"
                                | "nocopy"
                                | "shared"
                                | "rshared"
                                | "slave"
                                | "rslave"
                                | "private"
                                | "rprivate"
                                | "consistent"
                                | "cached"
                                | "delegated"
                        )
                    })
            });
            if src_ok && mode_ok {
                Ok(VolumeSpec::Bind(v.to_string()))
            } else {
                Err(bad(v, expected))
            }
        }
        _ => Err(bad(v, expected)),
    }
}

/// One published port: `HOST_IP:HOST_PORT -> CONTAINER_PORT/PROTO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The host address to bind, or all.
    pub host_ip: Option<String>,
    /// The host port, or one picked by docker.
    pub host_port: Option<u16>,
    /// The container port with its protocol: `80/tcp`.
    pub container: String,
}

fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = s.parse().ok()?;
            (p, p)
        }
    };
    (a > 0 && a <= b).then_some((a, b))
}

fn split_proto(s: &str) -> Option<(&str, &str)> {
    match s.rsplit_once('/') {
        Some((p, proto)) if matches!(proto, "tcp" | "udp" | "sctp") => Some((p, proto)),
        Some(_) => None,
        None => Some((s, "tcp")),
    }
}

/// Parse a `-p` value: `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, ports or equal-length ranges,
/// an IPv6 address in brackets.
pub fn parse_publish(v: &str) -> Result<Vec<PublishedPort>, ArgError> {
    let err = || {
        bad(
            v,
            "expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], ports or ranges",
        )
    };
    let (rest, proto) = split_proto(v).ok_or_else(err)?;
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once(']').ok_or_else(err)?;
        (Some(ip), after.strip_prefix(':').ok_or_else(err)?)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => rest
                .split_once(':')
                .map(|(a, b)| (Some(a), b))
                .ok_or_else(err)?,
            _ => return Err(err()),
        }
    };
    if let Some(ip) = ip
        && ip.parse::<IpAddr>().is_err()
    {
        return Err(err());
    }
    let (host, inner) = match rest.split_once(':') {
        Some((h, c)) => (Some(h).filter(|h| !h.is_empty()), c),
        None => (None, rest),
    };
    let (c0, c1) = parse_port_range(inner).ok_or_else(err)?;
    let host = match host {
        Some(h) => {
            let (h0, h1) = parse_port_range(h).ok_or_else(err)?;
            if h1 - h0 != c1 - c0 {
                return Err(err());
            }
            Some(h0)
        }
        None => None,
    };
    Ok((c0..=c1)
        .map(|c| PublishedPort {
            host_ip: ip.map(str::to_string),
            host_port: host.map(|h| h + (c - c0)),
            container: format!("{c}/{proto}"),
        })
        .collect())
}

/// Parse an `--expose` value: `PORT[-PORT][/PROTO]`, into `80/tcp` items.
pub fn parse_expose(v: &str) -> Result<Vec<String>, ArgError> {
    let err = || bad(v, "expected PORT[-PORT][/tcp|udp|sctp]");
    let (ports, proto) = split_proto(v).ok_or_else(err)?;
    let (a, b) = parse_port_range(ports).ok_or_else(err)?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Parse a `--restart` value into docker's policy name and retry count.
pub fn parse_restart(v: &str) -> Result<(String, Option<i64>), ArgError> {
    let err = || bad(v, "expected no, always, unless-stopped or on-failure[:N]");
    match v.split_once(':') {
        None if matches!(v, "no" | "always" | "unless-stopped" | "on-failure") => {
            Ok((v.to_string(), None))
        }
        Some(("on-failure", n)) => {
            let n: i64 = n.parse().map_err(|_| err())?;
            if n < 0 {
                return Err(err());
            }
            Ok(("on-failure".to_string(), Some(n)))
        }
        _ => Err(err()),
    }
}

/// Read `run_args` and the keywords of a container section into run options.
pub(crate) fn read(r: &mut Reader<'_>) -> Result<RunOptions, ConfigError> {
    let to_config = |r: &Reader<'_>, key: &str, e: ArgError| {
        r.error(
            key,
            ConfigErrorKind::BadValue {
                value: e.value,
                expected: e.expected,
            },
        )
    };
    let mut opts = RunOptions::default();
    let mut given = BTreeSet::new();
    if let Some(words) = r.words("run_args")? {
        given = opts
            .apply_args(&words)
            .map_err(|e| to_config(r, "run_args", e))?;
    }
    for &opt in OPTS {
        let key = opt.keyword();
        match opt.shape() {
            Shape::Bool => {
                // Absent: the two defaults differ; present: both give the value.
                let (a, b) = (r.boolean(key, true)?, r.boolean(key, false)?);
                if a != b {
                    continue;
                }
                if given.contains(&opt) && opts.get_bool(opt) != a {
                    return Err(to_config(r, key, both(opt, &a.to_string())));
                }
                opts.set_bool(opt, a);
            }
            Shape::Many => {
                for item in r.words(key)?.unwrap_or_default() {
                    opts.apply_value(opt, &item, false)
                        .map_err(|e| to_config(r, key, e))?;
                }
            }
            Shape::One if opt == Setting::Entrypoint => {
                if let Some(words) = r.words(key)? {
                    if given.contains(&opt) {
                        return Err(to_config(r, key, both(opt, &words.join(" "))));
                    }
                    opts.entrypoint = Some(words);
                }
            }
            Shape::One => {
                if let Some(v) = r.scalar(key)? {
                    if given.contains(&opt) {
                        return Err(to_config(r, key, both(opt, &v)));
                    }
                    opts.apply_value(opt, &v, false)
                        .map_err(|e| to_config(r, key, e))?;
                }
            }
        }
    }
    Ok(opts)
}

fn both(opt: Setting, v: &str) -> ArgError {
    let flags: Vec<String> = FLAGS
        .iter()
        .filter(|f| f.opt == opt)
        .map(|f| format!("--{}", f.long))
        .collect();
    bad(
        v,
        format!(
            "also given in run_args ({}): give it one way only",
            flags.join("/")
        ),
    )
}

/// Write run options as keywords (for `print config`); `init`, `tty` and `interactive` are
/// written even at their defaults. Parsing the output gives the same options.
pub(crate) fn emit(out: &mut String, o: &RunOptions) {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let list = |l: &mut dyn Iterator<Item = String>| {
        format!("[{}]", l.map(|s| q(&s)).collect::<Vec<_>>().join(", "))
    };
    let strs = |l: &[String]| list(&mut l.iter().cloned());
    let map = |m: &BTreeMap<String, String>| list(&mut m.iter().map(|(k, v)| format!("{k}={v}")));
    for &opt in OPTS {
        let value: Option<String> = match opt {
            Setting::Env => (!o.env.is_empty()).then(|| strs(&o.env)),
            Setting::EnvFile => (!o.env_files.is_empty())
                .then(|| list(&mut o.env_files.iter().map(|p| p.to_string_lossy().into_owned()))),
            Setting::Volume => (!o.volumes.is_empty()).then(|| strs(&o.volumes)),
            Setting::Publish => (!o.ports.is_empty()).then(|| strs(&o.ports)),
            Setting::Expose => (!o.expose.is_empty()).then(|| strs(&o.expose)),
            Setting::Memory => o.memory.map(|n| n.to_string()),
            Setting::MemorySwap => o.memory_swap.map(|n| n.to_string()),
            Setting::ShmSize => o.shm_size.map(|n| n.to_string()),
            Setting::Cpus => o.cpus.map(|x| x.to_string()),
            Setting::CpuShares => o.cpu_shares.map(|n| n.to_string()),
            Setting::CpusetCpus => o.cpuset_cpus.as_deref().map(q),
            Setting::Network => o.network.as_deref().map(q),
            Setting::Workdir => o.workdir.as_deref().map(q),
            Setting::User => o.user.as_deref().map(q),
            Setting::Entrypoint => o.entrypoint.as_deref().map(strs),
            Setting::VolumesFrom => (!o.volumes_from.is_empty()).then(|| strs(&o.volumes_from)),
            Setting::Link => (!o.links.is_empty()).then(|| strs(&o.links)),
            Setting::Privileged => o.privileged.then(|| "true".to_string()),
            Setting::ReadOnly => o.read_only.then(|| "true".to_string()),
            Setting::CapAdd => (!o.cap_add.is_empty()).then(|| strs(&o.cap_add)),
            Setting::CapDrop => (!o.cap_drop.is_empty()).then(|| strs(&o.cap_drop)),
            Setting::SecurityOpt => (!o.security_opt.is_empty()).then(|| strs(&o.security_opt)),
            Setting::Device => (!o.devices.is_empty()).then(|| strs(&o.devices)),
            Setting::Tmpfs => (!o.tmpfs.is_empty()).then(|| strs(&o.tmpfs)),
            Setting::Dns => (!o.dns.is_empty()).then(|| strs(&o.dns)),
            Setting::AddHost => (!o.extra_hosts.is_empty()).then(|| strs(&o.extra_hosts)),
            Setting::Sysctl => (!o.sysctls.is_empty()).then(|| map(&o.sysctls)),
            Setting::GroupAdd => (!o.group_add.is_empty()).then(|| strs(&o.group_add)),
            Setting::Pid => o.pid.as_deref().map(q),
            Setting::Ipc => o.ipc.as_deref().map(q),
            Setting::Init => Some(o.init.to_string()),
            Setting::Tty => Some(o.tty.to_string()),
            Setting::Interactive => Some(o.interactive.to_string()),
            Setting::Hostname => o.hostname.as_deref().map(q),
            Setting::Label => (!o.labels.is_empty()).then(|| map(&o.labels)),
            Setting::Restart => o.restart_policy.as_deref().map(q),
            Setting::StopSignal => o.stop_signal.as_deref().map(q),
            Setting::LogDriver => o.log_driver.as_deref().map(q),
            Setting::LogOpt => (!o.log_opts.is_empty()).then(|| map(&o.log_opts)),
            Setting::Detach => None,
        };
        if let Some(v) = value {
            let _ = writeln!(out, "{} = {v}", opt.keyword());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ServiceConfig;
    use crate::config::Spec;

    fn args(s: &str) -> Result<RunOptions, ArgError> {
        RunOptions::from_args(&shell_words::split(s).unwrap())
    }

    fn container(file: &str, text: &str) -> Result<RunOptions, String> {
        let svc = ServiceConfig::parse(Path::new(file), text).map_err(|e| e.to_string())?;
        match &svc.resources[0].spec {
            Spec::Container(c) => Ok(c.run.clone()),
            _ => panic!("not a container"),
        }
    }

    fn toml(body: &str) -> Result<RunOptions, String> {
        container(
            "/etc/berth/services/web.toml",
            &format!("[container.1]\nrun_image = \"busybox\"\n{body}"),
        )
    }

    #[test]
    fn the_seeds_volume() {
        let o = args("-v /opt/docker.opensvc.com/vol1:/vol1:rw").unwrap();
        assert_eq!(o.volumes, ["/opt/docker.opensvc.com/vol1:/vol1:rw"]);
        assert_eq!(
            parse_volume(&o.volumes[0]).unwrap(),
            VolumeSpec::Bind("/opt/docker.opensvc.com/vol1:/vol1:rw".into())
        );
        // The seed's defaults: a tty, an open stdin, and berth's init.
        assert!(o.tty && o.interactive && o.init);
    }

    #[test]
    fn the_seeds_ini_file() {
        let o = container(
            "/etc/berth/services/docker.opensvc.com.env",
            "[container#1]\ntype = docker\nrun_image = f66342b343ae\nrun_command = /bin/sh\n\
             run_args = -v /opt/docker.opensvc.com/vol1:/vol1:rw\n",
        )
        .unwrap();
        assert_eq!(o.volumes, ["/opt/docker.opensvc.com/vol1:/vol1:rw"]);
    }

    #[test]
    fn both_flag_forms_and_clusters() {
        let o = args(
            "-itd -e A=1 --env=B=2 -eC=3 -p 8080:80 --publish=127.0.0.1:8443:443/tcp -m 512m \
             --cpus 1.5 --net=none -w /srv -u 1000:1000 --entrypoint /bin/sh --privileged \
             --cap-add NET_ADMIN --init -h web1 --label a=b -l c --restart on-failure:3 \
             --volumes-from data --link db:db --env-file /etc/web.env",
        )
        .unwrap();
        assert_eq!(o.env, ["A=1", "B=2", "C=3"]);
        assert_eq!(o.ports, ["8080:80", "127.0.0.1:8443:443/tcp"]);
        assert_eq!(o.memory, Some(512 << 20));
        assert_eq!(o.cpus, Some(1.5));
        assert_eq!(o.network.as_deref(), Some("none"));
        assert_eq!(o.workdir.as_deref(), Some("/srv"));
        assert_eq!(o.user.as_deref(), Some("1000:1000"));
        assert_eq!(o.entrypoint, Some(vec!["/bin/sh".to_string()]));
        assert!(o.privileged && o.init && o.tty && o.interactive);
        assert_eq!(o.cap_add, ["NET_ADMIN"]);
        assert_eq!(o.hostname.as_deref(), Some("web1"));
        assert_eq!(o.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(o.labels.get("c").map(String::as_str), Some(""));
        assert_eq!(o.restart_policy.as_deref(), Some("on-failure:3"));
        assert_eq!(o.volumes_from, ["data"]);
        assert_eq!(o.links, ["db:db"]);
        assert_eq!(o.env_files, [PathBuf::from("/etc/web.env")]);
    }

    #[test]
    fn value_ends_a_cluster() {
        let o = args("-dp 80:80 -tip8080:8080").unwrap();
        assert_eq!(o.ports, ["80:80", "8080:8080"]);
        let o = args("-ti --tty=false -i=false").unwrap();
        assert!(!o.tty && !o.interactive);
    }

    #[test]
    fn unsupported_flags_are_named() {
        let e = args("-v /a:/b --frobnicate 3").unwrap_err();
        assert_eq!(e.value, "--frobnicate");
        assert!(e.expected.contains("not a docker run flag"), "{e}");
        assert_eq!(args("--name=x").unwrap_err().value, "--name");
        assert!(args("--rm").unwrap_err().expected.contains("keeps"));
        assert_eq!(args("-tz").unwrap_err().value, "-z");
        assert!(args("busybox").unwrap_err().expected.contains("run_image"));
        assert!(args("-v").unwrap_err().expected.contains("takes a value"));
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(args("-m lots").unwrap_err().value, "lots");
        assert_eq!(args("-v vol1").unwrap_err().value, "vol1");
        assert_eq!(args("-v /a:/b:rx").unwrap_err().value, "/a:/b:rx");
        assert_eq!(args("-p 99999:80").unwrap_err().value, "99999:80");
        assert_eq!(args("--cpus 0").unwrap_err().value, "0");
        assert_eq!(args("--restart sometimes").unwrap_err().value, "sometimes");
        assert_eq!(args("-w rel").unwrap_err().value, "rel");
        assert_eq!(args("--dns nameserver").unwrap_err().value, "nameserver");
        assert_eq!(
            args("--privileged=maybe").unwrap_err().value,
            "--privileged=maybe"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1x").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(args("--memory-swap -1").unwrap().memory_swap, Some(-1));
    }

    #[test]
    fn ports() {
        let p = parse_publish("80").unwrap();
        assert_eq!(
            p,
            [PublishedPort {
                host_ip: None,
                host_port: None,
                container: "80/tcp".into()
            }]
        );
        let p = parse_publish("127.0.0.1::53/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!((p[0].host_port, p[0].container.as_str()), (None, "53/udp"));
        let p = parse_publish("[::1]:8080:80").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        assert_eq!(p[0].host_port, Some(8080));
        let p = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].host_port, p[1].container.as_str()),
            (Some(8001), "81/tcp")
        );
        assert!(parse_publish("8000-8002:80-81").is_err());
        assert!(parse_publish("80/icmp").is_err());
        assert!(parse_publish("a.b.c:80:80").is_err());
        assert_eq!(parse_expose("80-81/udp").unwrap(), ["80/udp", "81/udp"]);
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("always").unwrap(), ("always".into(), None));
        assert_eq!(
            parse_restart("on-failure:5").unwrap(),
            ("on-failure".into(), Some(5))
        );
        assert!(parse_restart("always:3").is_err());
    }

    #[test]
    fn keywords_say_the_same() {
        let o = toml(
            "env = [\"A=1\", \"B=two words\"]\nvolumes = [\"/srv/vol1:/vol1:rw\"]\n\
             ports = [\"8080:80\"]\nmemory = \"256m\"\ncpus = 0.5\nnetwork = \"none\"\n\
             workdir = \"/srv\"\nuser = \"nobody\"\nentrypoint = \"/bin/sh -c\"\n\
             privileged = true\ncap_add = [\"SYS_ADMIN\"]\ninit = false\ntty = false\n\
             interactive = false\nhostname = \"web\"\nlabels = [\"tier=front\"]\n\
             restart_policy = \"always\"\nmemory_swap = 1073741824\n",
        )
        .unwrap();
        assert_eq!(o.env, ["A=1", "B=two words"]);
        assert_eq!(o.volumes, ["/srv/vol1:/vol1:rw"]);
        assert_eq!(o.memory, Some(256 << 20));
        assert_eq!(o.memory_swap, Some(1 << 30));
        assert_eq!(o.cpus, Some(0.5));
        assert_eq!(
            o.entrypoint,
            Some(vec!["/bin/sh".to_string(), "-c".to_string()])
        );
        assert!(o.privileged && !o.init && !o.tty && !o.interactive);
        assert_eq!(o.labels.get("tier").map(String::as_str), Some("front"));
        assert_eq!(o.restart_policy.as_deref(), Some("always"));
    }

    #[test]
    fn keywords_and_run_args_merge() {
        let o = toml("run_args = \"-e A=1 -v /a:/a -t\"\nenv = [\"B=2\"]\ntty = true\n").unwrap();
        assert_eq!(o.env, ["A=1", "B=2"]);
        assert_eq!(o.volumes, ["/a:/a"]);
        let e = toml("run_args = \"-m 1g\"\nmemory = \"2g\"\n").unwrap_err();
        assert!(e.contains("[container#1] memory:"), "{e}");
        assert!(e.contains("also given in run_args (--memory)"), "{e}");
        let e = toml("run_args = \"--tty=false\"\ntty = true\n").unwrap_err();
        assert!(e.contains("also given in run_args"), "{e}");
    }

    #[test]
    fn config_errors_name_the_flag_and_place() {
        let e = toml("run_args = \"-v /a:/a --frobnicate\"\n").unwrap_err();
        assert!(
            e.starts_with(
                "/etc/berth/services/web.toml:3: [container#1] run_args: bad value \"--frobnicate\""
            ),
            "{e}"
        );
        let e = toml("memory = \"lots\"\n").unwrap_err();
        assert!(
            e.contains(":3: [container#1] memory: bad value \"lots\""),
            "{e}"
        );
        let e = toml("ports = [\"80\", \"x\"]\n").unwrap_err();
        assert!(e.contains("ports: bad value \"x\""), "{e}");
        let e = toml("cpus = true\n").unwrap_err();
        assert!(e.contains("cpus: bad value"), "{e}");
    }

    #[test]
    fn emit_reads_back_the_same() {
        let o = toml(
            "run_args = \"-ti -e A=1 --env-file /e.env -v /x -v data:/data:ro -p 1.2.3.4:80:80/udp \
             --expose 81 -m 1.5g --memory-swap -1 --shm-size 64m --cpus 2 -c 512 \
             --cpuset-cpus 0-1 --net none -w /w -u u --entrypoint '' --volumes-from v --link l \
             --read-only --cap-drop ALL --security-opt no-new-privileges --device /dev/fuse \
             --tmpfs /run:size=1m --dns 9.9.9.9 --add-host db:10.0.0.1 --sysctl net.core.somaxconn=1024 \
             --group-add audio --pid host --ipc private --init=false -h h --label k=v \
             --restart unless-stopped --stop-signal SIGINT --log-driver json-file --log-opt max-size=1m\"\n",
        )
        .unwrap();
        let mut text = "[container.1]\nrun_image = \"busybox\"\n".to_string();
        emit(&mut text, &o);
        let again = container("/etc/berth/services/web.toml", &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again, o, "{text}");
        assert_eq!(o.entrypoint, Some(vec![]));
        assert_eq!(o.expose, ["81/tcp"]);
    }

    #[test]
    fn to_args_reads_back_the_same() {
        let o = args(
            "-e A=1 -v /a:/b -p 80:80 -m 64m --cpus 0.5 -w /w -u u -h h -l k=v --privileged \
             --cap-add NET_ADMIN --restart always --sysctl a.b=1 --read-only --dns 1.1.1.1",
        )
        .unwrap();
        assert_eq!(RunOptions::from_args(&o.to_args()).unwrap(), o);
        assert!(RunOptions::default().to_args().is_empty());
    }

    #[test]
    fn every_flag_has_a_keyword() {
        for f in FLAGS {
            if f.opt != Setting::Detach {
                assert!(
                    CONTAINER_KEYWORDS.contains(&f.opt.keyword()),
                    "--{} has no keyword",
                    f.long
                );
            }
        }
        for &opt in OPTS {
            assert!(CONTAINER_KEYWORDS.contains(&opt.keyword()));
        }
    }
}
