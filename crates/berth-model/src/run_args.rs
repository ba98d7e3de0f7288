//! The options a container runs with: `run_args` (the `docker run` flags people use) and the
//! keywords that say the same, merged into one [`RunOptions`]. Pure parsing, no I/O.
//!
//! `run_args` is split as a shell would split it (never run through one) and read like the docker
//! CLI reads flags: `--flag value`, `--flag=value`, `-f value`, `-fvalue`, and combined short
//! flags (`-ti`, `-itd`, `-dp 80:80`). Every flag has a keyword of the same meaning
//! ([`CONTAINER_KEYWORDS`]); list keywords add to what `run_args` gives, and a single-valued
//! setting given both ways is an error. A flag berth does not map is a config error naming it.
//!
//! Each setting is one row of the `run_options!` table below: its field, type and default, the
//! parser of its values (run once, at load: the fields hold typed values), its keyword and its
//! flags. Flag parsing, keyword reading, `print config`, the log's run line and the keyword list
//! follow from the rows; the docker driver maps the typed fields onto the create body.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};
use toml::Value;

use crate::config::keywords::Reader;
use crate::config::{ConfigError, ConfigErrorKind};

/// A `run_args` word or keyword value berth cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad value {value:?}: {expected}")]
pub struct ArgError {
    /// The word or value at fault.
    pub value: String,
    /// Why, or what was expected.
    pub expected: String,
}

/// How a setting takes its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A flag without a value (`--privileged`, `--tty=false`).
    Bool,
    /// Repeatable: each value adds items; the keyword is a list.
    Many,
    /// One value: the keyword is a scalar.
    One,
    /// A command: the flag is one word, the keyword a list (or a string split as a shell would).
    Words,
}

/// One row of the table: what flag parsing, keyword reading and writing need of a setting.
struct Row {
    key: &'static str,
    longs: &'static [&'static str],
    short: Option<char>,
    shape: Shape,
    /// Parse one value (a flag's argument, a keyword, an item of a list keyword) into the options.
    set: fn(&mut RunOptions, &str) -> Result<(), ArgError>,
    /// The values the options hold for it, as `print config` writes them.
    get: fn(&RunOptions) -> Vec<Value>,
}

/// A value parsed from `text`; serialised (hence the container's config digest) and written
/// back as that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed<T> {
    /// As written.
    pub text: String,
    /// As parsed.
    pub value: T,
}

impl<T> Serialize for Typed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<T> From<Typed<T>> for Value {
    fn from(t: Typed<T>) -> Value {
        Value::String(t.text)
    }
}

/// `parse` keeping the text.
fn typed<T>(parse: fn(&str) -> Result<T, ArgError>) -> impl Fn(&str) -> Result<Typed<T>, ArgError> {
    move |v| {
        Ok(Typed {
            value: parse(v)?,
            text: v.to_string(),
        })
    }
}

/// The values a field holds.
trait Vals {
    fn vals(&self) -> Vec<Value>;
}

impl Vals for bool {
    fn vals(&self) -> Vec<Value> {
        vec![Value::Boolean(*self)]
    }
}
impl<T: Clone + Into<Value>> Vals for Option<T> {
    fn vals(&self) -> Vec<Value> {
        self.iter().cloned().map(Into::into).collect()
    }
}
impl<T: Clone + Into<Value>> Vals for Vec<T> {
    fn vals(&self) -> Vec<Value> {
        self.iter().cloned().map(Into::into).collect()
    }
}
impl Vals for BTreeMap<String, String> {
    fn vals(&self) -> Vec<Value> {
        self.iter()
            .map(|(k, v)| format!("{k}={v}").into())
            .collect()
    }
}

/// A value as a flag's argument (the run line of the log).
fn arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Float(x) => x.to_string(),
        Value::Array(a) => a.iter().map(arg).collect::<Vec<_>>().join(" "),
        v => v.to_string(),
    }
}

/// A row's setter and shape: `bool` (a flag), `one` (an `Option`), `many` (push into a `Vec`),
/// `range` (extend a `Vec`), `map` (`KEY=VALUE` into a map), `words` (the entrypoint).
macro_rules! row_of {
    (@set bool, $f:ident, $p:expr) => {
        |o, v| ($p)(v).map(|x| o.$f = x)
    };
    (@set many, $f:ident, $p:expr) => {
        |o, v| ($p)(v).map(|x| o.$f.push(x))
    };
    (@set range, $f:ident, $p:expr) => {
        |o, v| ($p)(v).map(|x| o.$f.extend(x))
    };
    (@set map, $f:ident, $p:expr) => {
        |o, v| ($p)(v).map(|(k, x)| o.$f.extend([(k, x)]))
    };
    (@set $one_or_words:ident, $f:ident, $p:expr) => {
        |o, v| ($p)(v).map(|x| o.$f = Some(x))
    };
    (@shape bool) => {
        Shape::Bool
    };
    (@shape one) => {
        Shape::One
    };
    (@shape words) => {
        Shape::Words
    };
    (@shape $many_range_or_map:ident) => {
        Shape::Many
    };
}

/// The settings table, one row per setting:
/// `field: Type = default, shape(parser), "keyword", ["long", ...], short;`. The struct, its
/// defaults, [`CONTAINER_KEYWORDS`] and the rows follow. The field order is the order of
/// `print config`, of the run line and of the JSON the container's config digest is taken from.
macro_rules! run_options {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty = $default:expr, $shape:ident($parse:expr),
        $key:literal, [$($long:literal),+], $short:expr; )*) => {
        /// How a container is created. Defaults follow the core seed: a tty and an open stdin
        /// (so a `/bin/sh` container stays up), and an init process so a PID 1 that ignores
        /// TERM still stops.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct RunOptions {
            $( #[doc = concat!("`", $key, "`", $(" / `--", $long, "`",)+)] $(#[$doc])*
            pub $field: $ty, )*
        }

        impl Default for RunOptions {
            fn default() -> Self {
                RunOptions { $( $field: $default, )* }
            }
        }

        /// Container keywords (besides the common ones), mandatory first.
        pub const CONTAINER_KEYWORDS: &[&str] = &[
            "run_image", "type", "run_command", "run_args", "start_timeout", "stop_timeout",
            "netns", "start_requires",
            $( $key, )*
        ];

        const ROWS: &[Row] = &[ $( Row {
            key: $key,
            longs: &[$($long),+],
            short: $short,
            shape: row_of!(@shape $shape),
            set: row_of!(@set $shape, $field, $parse),
            get: |o| o.$field.vals(),
        }, )* ];
    };
}

run_options! {
    /// (`KEY` alone: taken from berth's environment).
    env: Vec<String> = Vec::new(), many(env_item), "env", ["env"], Some('e');
    /// (read when the container is created).
    env_files: Vec<Typed<PathBuf>> = Vec::new(), many(typed(env_file)), "env_file", ["env-file"],
        None;
    volumes: Vec<Typed<VolumeSpec>> = Vec::new(), many(typed(parse_volume)), "volumes",
        ["volume"], Some('v');
    ports: Vec<Typed<Vec<PublishedPort>>> = Vec::new(), many(typed(parse_publish)), "ports",
        ["publish"], Some('p');
    /// (normalised to `80/tcp`, a range to its ports).
    expose: Vec<String> = Vec::new(), range(parse_expose), "expose", ["expose"], None;
    /// (bytes).
    memory: Option<i64> = None, one(parse_size), "memory", ["memory"], Some('m');
    /// (bytes, -1: unlimited).
    memory_swap: Option<i64> = None, one(|v: &str| if v.trim() == "-1" { Ok(-1) } else {
        parse_size(v) }), "memory_swap", ["memory-swap"], None;
    /// (bytes).
    shm_size: Option<i64> = None, one(parse_size), "shm_size", ["shm-size"], None;
    cpus: Option<f64> = None, one(cpus), "cpus", ["cpus"], None;
    cpu_shares: Option<i64> = None, one(cpu_shares), "cpu_shares", ["cpu-shares"], Some('c');
    cpuset_cpus: Option<String> = None, one(|v: &str| check(v, !v.is_empty() && v.chars().all(|c|
        c.is_ascii_digit() || c == ',' || c == '-'), "a CPU list such as 0-2,4")), "cpuset_cpus",
        ["cpuset-cpus"], None;
    network: Option<String> = None, one(|v| nonempty(v, "a network (none, host, NAME...)")),
        "network", ["network", "net"], None;
    workdir: Option<String> = None, one(|v: &str| check(v, v.starts_with('/'),
        "an absolute path in the container")), "workdir", ["workdir"], Some('w');
    user: Option<String> = None, one(|v| nonempty(v, "a user[:group]")), "user", ["user"],
        Some('u');
    /// (the keyword is a command line, the flag one word; empty resets the image's).
    entrypoint: Option<Vec<String>> = None, words(|v: &str| Ok::<_, ArgError>(if v.is_empty() {
        vec![] } else { vec![v.to_string()] })), "entrypoint", ["entrypoint"], None;
    volumes_from: Vec<String> = Vec::new(), many(|v| nonempty(v, "a container[:ro|rw]")),
        "volumes_from", ["volumes-from"], None;
    links: Vec<String> = Vec::new(), many(|v| nonempty(v, "a container[:alias]")), "links",
        ["link"], None;
    privileged: bool = false, bool(on), "privileged", ["privileged"], None;
    read_only: bool = false, bool(on), "read_only", ["read-only"], None;
    cap_add: Vec<String> = Vec::new(), many(capability), "cap_add", ["cap-add"], None;
    cap_drop: Vec<String> = Vec::new(), many(capability), "cap_drop", ["cap-drop"], None;
    security_opt: Vec<String> = Vec::new(), many(|v| nonempty(v, "a security option")),
        "security_opt", ["security-opt"], None;
    /// (`HOST[:CONTAINER[:PERMS]]`).
    devices: Vec<Typed<Device>> = Vec::new(), many(typed(device)), "devices", ["device"], None;
    /// (`PATH[:OPTIONS]`).
    tmpfs: Vec<Typed<(String, String)>> = Vec::new(), many(typed(tmpfs)), "tmpfs", ["tmpfs"],
        None;
    dns: Vec<String> = Vec::new(), many(|v: &str| check(v, v.parse::<IpAddr>().is_ok(),
        "an IP address")), "dns", ["dns"], None;
    /// (`HOST:IP`).
    extra_hosts: Vec<String> = Vec::new(), many(add_host), "extra_hosts", ["add-host"], None;
    sysctls: BTreeMap<String, String> = BTreeMap::new(), map(key_value), "sysctls", ["sysctl"],
        None;
    group_add: Vec<String> = Vec::new(), many(|v| nonempty(v, "a group")), "group_add",
        ["group-add"], None;
    pid: Option<String> = None, one(|v| nonempty(v, "a pid mode (host, container:NAME)")), "pid",
        ["pid"], None;
    ipc: Option<String> = None, one(|v| nonempty(v, "an ipc mode (private, host, shareable...)")),
        "ipc", ["ipc"], None;
    /// (default true).
    init: bool = true, bool(on), "init", ["init"], None;
    /// (default true).
    tty: bool = true, bool(on), "tty", ["tty"], Some('t');
    /// (default true).
    interactive: bool = true, bool(on), "interactive", ["interactive"], Some('i');
    hostname: Option<String> = None, one(hostname), "hostname", ["hostname"], Some('h');
    /// (`KEY` alone: an empty value).
    labels: BTreeMap<String, String> = BTreeMap::new(), map(label), "labels", ["label"], Some('l');
    /// : docker's own restart policy (berth's monitor is the usual way; `restart` is berth's
    /// restart count).
    restart_policy: Option<Typed<(String, Option<i64>)>> = None, one(typed(parse_restart)),
        "restart_policy", ["restart"], None;
    stop_signal: Option<String> = None, one(|v| nonempty(v, "a signal (SIGTERM, 15...)")),
        "stop_signal", ["stop-signal"], None;
    log_driver: Option<String> = None, one(|v| nonempty(v, "a log driver")), "log_driver",
        ["log-driver"], None;
    log_opts: BTreeMap<String, String> = BTreeMap::new(), map(key_value), "log_opts", ["log-opt"],
        None;
    /// : a healthcheck command run by `/bin/sh -c` in the container; a start waits for it to
    /// pass ("wait for container operational") before what depends on the container starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_cmd: Option<String> = None, one(|v| nonempty(v, "a command")), "health_cmd",
        ["health-cmd"], None;
    /// (a duration: `1s`, `500ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_interval: Option<Typed<Duration>> = None, one(typed(health_duration)),
        "health_interval", ["health-interval"], None;
    /// (a duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_timeout: Option<Typed<Duration>> = None, one(typed(health_duration)),
        "health_timeout", ["health-timeout"], None;
    /// (a duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_start_period: Option<Typed<Duration>> = None, one(typed(health_duration)),
        "health_start_period", ["health-start-period"], None;
    /// (failures in a row before unhealthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_retries: Option<i64> = None, one(health_retries), "health_retries",
        ["health-retries"], None;
}

/// A healthcheck duration: at least 1 ms (docker refuses less), as `500ms`, `2s`, `1m`.
fn health_duration(v: &str) -> Result<Duration, ArgError> {
    match crate::config::keywords::parse_duration(v) {
        Some(d) if d >= Duration::from_millis(1) => Ok(d),
        _ => Err(bad(
            v,
            "expected a duration of at least 1ms such as 500ms, 2s, 1m",
        )),
    }
}

fn health_retries(v: &str) -> Result<i64, ArgError> {
    match v.trim().parse::<i64>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(bad(v, "expected a whole number from 1 to 1000")),
    }
}

/// `-d`: accepted and ignored (berth always runs containers detached).
const DETACH: Row = Row {
    key: "",
    longs: &["detach"],
    short: Some('d'),
    shape: Shape::Bool,
    set: |_, _| Ok(()),
    get: |_| Vec::new(),
};

fn flags() -> impl Iterator<Item = &'static Row> {
    ROWS.iter().chain(std::iter::once(&DETACH))
}

/// The supported flags, for messages and docs: `-e/--env, --env-file, ...`.
pub fn supported_flags() -> String {
    let mut out = Vec::new();
    for row in flags() {
        for (i, long) in row.longs.iter().enumerate() {
            out.push(match row.short.filter(|_| i == 0) {
                Some(c) => format!("-{c}/--{long}"),
                None => format!("--{long}"),
            });
        }
    }
    out.join(", ")
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
    bad(name, why)
}

fn bad(value: &str, expected: impl Into<String>) -> ArgError {
    ArgError {
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn parse_bool(flag: &str, v: &str) -> Result<&'static str, ArgError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok("true"),
        "false" | "0" => Ok("false"),
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

    /// Apply `run_args` words; returns the keywords of the settings they gave.
    fn apply_args(&mut self, words: &[String]) -> Result<BTreeSet<&'static str>, ArgError> {
        let mut given = BTreeSet::new();
        let mut it = words.iter();
        while let Some(word) = it.next() {
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                let row = flags()
                    .find(|r| r.longs.contains(&name))
                    .ok_or_else(|| unsupported(word))?;
                let v = match (row.shape, inline) {
                    (Shape::Bool, Some(v)) => parse_bool(&format!("--{name}"), v)?,
                    (Shape::Bool, None) => "true",
                    (_, Some(v)) => v,
                    (_, None) => it
                        .next()
                        .ok_or_else(|| bad(word, "this flag takes a value"))?,
                };
                (row.set)(self, v)?;
                given.insert(row.key);
            } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
                for (i, c) in cluster.char_indices() {
                    let row = flags()
                        .find(|r| r.short == Some(c))
                        .ok_or_else(|| unsupported(&format!("-{c}")))?;
                    given.insert(row.key);
                    let rest = &cluster[i + c.len_utf8()..];
                    if row.shape == Shape::Bool {
                        let inline = rest.strip_prefix('=');
                        let v = inline.map_or(Ok("true"), |v| parse_bool(&format!("-{c}"), v))?;
                        (row.set)(self, v)?;
                        if inline.is_some() {
                            break;
                        }
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
                    (row.set)(self, v)?;
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

    /// The keywords `print config` writes, in table order: every setting that holds a value,
    /// and those true by default (`init`, `tty`, `interactive`) always. They read back the same.
    pub fn keywords(&self) -> Vec<(&'static str, Value)> {
        let defaults = RunOptions::default();
        let mut out = Vec::new();
        for row in ROWS {
            let mut vals = (row.get)(self);
            let v = match row.shape {
                Shape::Bool if (row.get)(&defaults) == [Value::Boolean(true)] => vals.pop(),
                Shape::Bool => vals.pop().filter(|v| *v == Value::Boolean(true)),
                Shape::One | Shape::Words => vals.pop(),
                Shape::Many => (!vals.is_empty()).then_some(Value::Array(vals)),
            };
            out.extend(v.map(|v| (row.key, v)));
        }
        out
    }

    /// The `docker run` flags that say the same as these options, for logs: every setting
    /// but `-t`, `-i` and `--init`, which the caller places itself (`run -t -i -d --name=...`).
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        for (key, v) in self.keywords() {
            let Some(row) = ROWS.iter().find(|r| r.key == key) else {
                continue;
            };
            let flag = match row.short {
                Some(c) => format!("-{c}"),
                None => format!("--{}", row.longs[0]),
            };
            match v {
                Value::Boolean(true) if !matches!(key, "init" | "tty" | "interactive") => {
                    a.push(format!("--{}", row.longs[0]))
                }
                Value::Boolean(_) => {}
                Value::Array(items) if row.shape == Shape::Many => {
                    for i in &items {
                        a.extend([flag.clone(), arg(i)]);
                    }
                }
                v => a.extend([flag, arg(&v)]),
            }
        }
        a
    }
}

fn on(v: &str) -> Result<bool, ArgError> {
    Ok(v == "true")
}

/// `v` when `ok`; else an error saying what was expected.
fn check(v: &str, ok: bool, what: &str) -> Result<String, ArgError> {
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad(v, format!("expected {what}")))
    }
}

fn nonempty(v: &str, what: &str) -> Result<String, ArgError> {
    check(v, !v.trim().is_empty(), what)
}

fn env_item(v: &str) -> Result<String, ArgError> {
    let key = v.split('=').next().unwrap_or("");
    let ok = !key.is_empty() && !key.chars().any(char::is_whitespace);
    check(v, ok, "KEY=VALUE (or KEY, taken from the environment)")
}

fn env_file(v: &str) -> Result<PathBuf, ArgError> {
    let ok = v.starts_with('/');
    check(v, ok, "an absolute path to an env file").map(PathBuf::from)
}

fn cpus(v: &str) -> Result<f64, ArgError> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 4096.0 => Ok(x),
        _ => Err(bad(v, "expected a number of CPUs such as 0.5 or 2")),
    }
}

fn cpu_shares(v: &str) -> Result<i64, ArgError> {
    match v.trim().parse::<i64>() {
        Ok(n) if (0..=262_144).contains(&n) => Ok(n),
        _ => Err(bad(v, "expected a CPU share weight such as 1024")),
    }
}

fn capability(v: &str) -> Result<String, ArgError> {
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    check(v, ok, "a capability such as NET_ADMIN or ALL")
}

fn add_host(v: &str) -> Result<String, ArgError> {
    match v.split_once(['=', ':']) {
        Some((host, ip))
            if !host.is_empty() && (ip == "host-gateway" || ip.parse::<IpAddr>().is_ok()) =>
        {
            Ok(format!("{host}:{ip}"))
        }
        _ => Err(bad(v, "expected HOST:IP")),
    }
}

fn key_value(v: &str) -> Result<(String, String), ArgError> {
    match v.split_once('=') {
        Some((k, x)) if !k.is_empty() => Ok((k.to_string(), x.to_string())),
        _ => Err(bad(v, "expected KEY=VALUE")),
    }
}

/// A label may be `KEY` alone (an empty value).
fn label(v: &str) -> Result<(String, String), ArgError> {
    let (k, x) = v.split_once('=').unwrap_or((v, ""));
    check(v, !k.is_empty(), "KEY=VALUE")?;
    Ok((k.to_string(), x.to_string()))
}

fn hostname(v: &str) -> Result<String, ArgError> {
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = !v.is_empty() && v.len() <= 253 && v.split('.').all(label_ok);
    check(v, ok, "a host name")
}

/// A `--device` mapping: the host device, its path in the container (the host's when not
/// given) and the cgroup permissions (`rwm` when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The host device.
    pub host: String,
    /// Its path in the container.
    pub inner: String,
    /// `r`, `w`, `m`.
    pub perms: String,
}

fn device(v: &str) -> Result<Device, ArgError> {
    let mut parts = v.split(':');
    let (host, inner, perms) = (parts.next().unwrap_or(""), parts.next(), parts.next());
    let perms_ok = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if !host.starts_with('/')
        || inner.is_some_and(|c| !c.starts_with('/'))
        || perms.is_some_and(|p| !perms_ok(p))
        || parts.next().is_some()
    {
        return Err(bad(v, "expected HOST_DEVICE[:CONTAINER_PATH[:rwm]]"));
    }
    Ok(Device {
        host: host.to_string(),
        inner: inner.unwrap_or(host).to_string(),
        perms: perms.unwrap_or("rwm").to_string(),
    })
}

/// A `--tmpfs` value: the mount point and its options (may be empty).
fn tmpfs(v: &str) -> Result<(String, String), ArgError> {
    let (path, opts) = v.split_once(':').unwrap_or((v, ""));
    check(v, v.starts_with('/'), "an absolute path[:options]")?;
    Ok((path.to_string(), opts.to_string()))
}

/// A size as docker reads it: `1024`, `512k`, `512m`, `1.5g`, `1gb` (powers of 1024).
#[allow(
    clippy::cast_possible_truncation,
    reason = "bytes is checked finite and within 0..=i64::MAX: the cast drops the fraction"
)]
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

const VOLUME_MODES: &[&str] = &[
    "rw",
    "ro",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
];

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
            let mode_ok = parts
                .get(2)
                .is_none_or(|m| !m.is_empty() && m.split(',').all(|o| VOLUME_MODES.contains(&o)));
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
    for row in ROWS {
        let key = row.key;
        let value = match row.shape {
            Shape::Bool => {
                // Absent: the two defaults differ; present: both give the value.
                let (a, b) = (r.boolean(key, true)?, r.boolean(key, false)?);
                if a != b {
                    continue;
                }
                if given.contains(key) && (row.get)(&opts) != [Value::Boolean(a)] {
                    return Err(to_config(r, key, both(row, &a.to_string())));
                }
                a.to_string()
            }
            Shape::Many => {
                for item in r.words(key)?.unwrap_or_default() {
                    (row.set)(&mut opts, &item).map_err(|e| to_config(r, key, e))?;
                }
                continue;
            }
            Shape::Words => {
                if let Some(words) = r.words(key)? {
                    if given.contains(key) {
                        return Err(to_config(r, key, both(row, &words.join(" "))));
                    }
                    // The one command-line setting; its flag takes one word.
                    opts.entrypoint = Some(words);
                }
                continue;
            }
            Shape::One => match r.scalar(key)? {
                Some(v) if given.contains(key) => return Err(to_config(r, key, both(row, &v))),
                Some(v) => v,
                None => continue,
            },
        };
        (row.set)(&mut opts, &value).map_err(|e| to_config(r, key, e))?;
    }
    Ok(opts)
}

fn both(row: &Row, v: &str) -> ArgError {
    let flags: Vec<String> = row.longs.iter().map(|l| format!("--{l}")).collect();
    bad(
        v,
        format!(
            "also given in run_args ({}): give it one way only",
            flags.join("/")
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ServiceConfig;
    use crate::config::Spec;

    /// Typed values as they were written.
    fn texts<T>(v: &[Typed<T>]) -> Vec<String> {
        v.iter().map(|t| t.text.clone()).collect()
    }

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
        assert_eq!(texts(&o.volumes), ["/opt/docker.opensvc.com/vol1:/vol1:rw"]);
        assert_eq!(
            o.volumes[0].value,
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
        assert_eq!(texts(&o.volumes), ["/opt/docker.opensvc.com/vol1:/vol1:rw"]);
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
        assert_eq!(texts(&o.ports), ["8080:80", "127.0.0.1:8443:443/tcp"]);
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
        assert_eq!(
            o.restart_policy.as_ref().map(|r| r.text.as_str()),
            Some("on-failure:3")
        );
        assert_eq!(o.volumes_from, ["data"]);
        assert_eq!(o.links, ["db:db"]);
        assert_eq!(o.env_files[0].value, PathBuf::from("/etc/web.env"));
    }

    #[test]
    fn value_ends_a_cluster() {
        let o = args("-dp 80:80 -tip8080:8080").unwrap();
        assert_eq!(texts(&o.ports), ["80:80", "8080:8080"]);
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
        for bad in ["-1", "1x", ""] {
            assert_eq!(parse_size(bad).unwrap_err().value, bad);
        }
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
        for bad in ["8000-8002:80-81", "80/icmp", "a.b.c:80:80"] {
            assert_eq!(parse_publish(bad).unwrap_err().value, bad);
        }
        assert_eq!(parse_expose("80-81/udp").unwrap(), ["80/udp", "81/udp"]);
    }

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("always").unwrap(), ("always".into(), None));
        assert_eq!(
            parse_restart("on-failure:5").unwrap(),
            ("on-failure".into(), Some(5))
        );
        assert_eq!(parse_restart("always:3").unwrap_err().value, "always:3");
    }

    #[test]
    fn keywords_say_the_same() {
        let o = toml(
            "env = [\"A=1\", \"B=two words\"]\nvolumes = [\"/srv/vol1:/vol1:rw\"]\n\
             ports = [\"8080:80\"]\nmemory = \"256m\"\ncpus = 0.5\nnetwork = \"front\"\n\
             workdir = \"/srv\"\nuser = \"nobody\"\nentrypoint = \"/bin/sh -c\"\n\
             privileged = true\ncap_add = [\"SYS_ADMIN\"]\ninit = false\ntty = false\n\
             interactive = false\nhostname = \"web\"\nlabels = [\"tier=front\"]\n\
             restart_policy = \"always\"\nmemory_swap = 1073741824\n",
        )
        .unwrap();
        assert_eq!(o.env, ["A=1", "B=two words"]);
        assert_eq!(texts(&o.volumes), ["/srv/vol1:/vol1:rw"]);
        assert_eq!(o.memory, Some(256 << 20));
        assert_eq!(o.memory_swap, Some(1 << 30));
        assert_eq!(o.cpus, Some(0.5));
        assert_eq!(
            o.entrypoint,
            Some(vec!["/bin/sh".to_string(), "-c".to_string()])
        );
        assert!(o.privileged && !o.init && !o.tty && !o.interactive);
        assert_eq!(o.labels.get("tier").map(String::as_str), Some("front"));
        assert_eq!(
            o.restart_policy.as_ref().map(|r| r.text.as_str()),
            Some("always")
        );
    }

    #[test]
    fn keywords_and_run_args_merge() {
        let o = toml("run_args = \"-e A=1 -v /a:/a -t\"\nenv = [\"B=2\"]\ntty = true\n").unwrap();
        assert_eq!(o.env, ["A=1", "B=2"]);
        assert_eq!(texts(&o.volumes), ["/a:/a"]);
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
             --cpuset-cpus 0-1 --net front -w /w -u u --entrypoint '' --volumes-from v --link container#2:l \
             --read-only --cap-drop ALL --security-opt no-new-privileges --device /dev/fuse \
             --tmpfs /run:size=1m --dns 9.9.9.9 --add-host db:10.0.0.1 --sysctl net.core.somaxconn=1024 \
             --group-add audio --pid host --ipc private --init=false -h h --label k=v \
             --restart unless-stopped --stop-signal SIGINT --log-driver json-file --log-opt max-size=1m \
             --health-cmd 'wget -q localhost' --health-interval 1s --health-timeout 500ms \
             --health-start-period 2s --health-retries 3\"\n[container.2]\nrun_image = \"b\"\n",
        )
        .unwrap();
        assert_eq!(o.health_cmd.as_deref(), Some("wget -q localhost"));
        assert_eq!(
            o.health_timeout.as_ref().map(|t| t.value),
            Some(std::time::Duration::from_millis(500))
        );
        let mut text = "[container.1]\nrun_image = \"busybox\"\n".to_string();
        for (k, v) in o.keywords() {
            text.push_str(&format!("{k} = {}\n", toml::Value::try_from(v).unwrap()));
        }
        text.push_str("[container.2]\nrun_image = \"b\"\n");
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
        for row in ROWS {
            assert!(
                CONTAINER_KEYWORDS.contains(&row.key),
                "--{} has no keyword",
                row.longs[0]
            );
        }
        assert_eq!(ROWS.iter().map(|r| r.longs.len()).sum::<usize>() + 1, 46);
        assert!(supported_flags().starts_with("-e/--env, --env-file, -v/--volume"));
        assert!(supported_flags().contains("--network, --net, -w/--workdir"));
    }
}
