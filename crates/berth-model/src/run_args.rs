//! The options a container runs with: `run_args` (the `docker run` flags people use) and the
//! keywords that say the same, merged into one [`RunOptions`]. Pure parsing, no I/O.
//!
//! `run_args` is split as a shell would split it (never run through one) and read like the docker
//! CLI reads flags: `--flag value`, `--flag=value`, `-f value`, `-fvalue`, and combined short
//! flags (`-ti`, `-itd`, `-dp 80:80`). Every flag has a keyword of the same meaning
//! ([`CONTAINER_KEYWORDS`]); list keywords add to what `run_args` gives, and a single-valued
//! setting given both ways is an error. A flag berth does not map is a config error naming it.
//!
//! Each setting is one row of the `run_options!` table below: flag parsing, keyword reading,
//! `print config`, the log's run line and the create body's plain fields follow from the rows.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};
use toml::Value;

use crate::config::keywords::{Reader, is_hostname};
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

/// How a setting takes its values (the table's shapes): a flag without a value (`--tty`,
/// `--tty=false`); one value (a scalar keyword); repeatable (a list keyword): an item (or a
/// `KEY=VALUE` pair) per value, or several (`--expose 80-81`); a command (the entrypoint: the
/// flag is one word, the keyword a command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bool,
    One,
    Many,
    Range,
    Words,
}

/// One row of the table, as flag parsing, keyword reading and writing use it.
struct Row {
    key: &'static str,
    longs: &'static [&'static str],
    /// None or one.
    short: &'static [char],
    shape: Shape,
    /// Parse one value (a flag's argument, a keyword, an item of a list keyword) into the options.
    set: fn(&mut RunOptions, &str) -> Result<(), ArgError>,
    /// Its value in the options, in TOML (`None` for an unset one: TOML has no null).
    get: fn(&RunOptions) -> Option<Value>,
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

/// `parse` keeping the text.
fn typed<T>(parse: fn(&str) -> Result<T, ArgError>) -> impl Fn(&str) -> Result<Typed<T>, ArgError> {
    move |v| {
        let text = v.to_string();
        parse(v).map(|value| Typed { text, value })
    }
}

/// The settings table, one row per setting:
/// `field: Type [= default], Shape(parser), ["long", ...] [short] [=> "Path/InBody"];`.
/// The struct and its defaults (`Default::default()` unless given), [`CONTAINER_KEYWORDS`] (the
/// field names), the rows and [`RunOptions::api_fields`] (the settings the create body takes as
/// they are, at their path in it) follow. The field order is the order of `print config`, of
/// the run line and of the JSON the container's config digest is taken from.
macro_rules! run_options {
    (@default) => {
        Default::default()
    };
    (@default $default:expr) => {
        $default
    };
    (@set Bool, $f:expr, $x:ident) => {
        $f = $x
    };
    (@set Range, $f:expr, $x:ident) => {
        $f.extend($x)
    };
    (@set Many, $f:expr, $x:ident) => {
        $f.extend([$x])
    };
    (@set $one_or_words:ident, $f:expr, $x:ident) => {
        $f = Some($x)
    };
    ($( $(#[$attr:meta])* $field:ident: $ty:ty $(= $default:expr)?, $shape:ident($parse:expr),
        [$($long:literal),+] $($short:literal)? $(=> $api:literal)?; )*) => {
        /// How a container is created. Defaults follow the core seed: a tty and an open stdin
        /// (so a `/bin/sh` container stays up), and an init process so a PID 1 that ignores
        /// TERM still stops.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct RunOptions {
            $( #[doc = concat!("`", stringify!($field), "`", $(" / `--", $long, "`",)+)]
            $(#[$attr])* pub $field: $ty, )*
        }

        impl Default for RunOptions {
            fn default() -> Self {
                RunOptions { $( $field: run_options!(@default $($default)?), )* }
            }
        }

        /// Container keywords (besides the common ones), mandatory first.
        pub const CONTAINER_KEYWORDS: &[&str] = &[
            "run_image", "type", "run_command", "run_args", "start_timeout", "stop_timeout",
            "netns", "start_requires",
            $( stringify!($field), )*
        ];

        const ROWS: &[Row] = &[ $( Row {
            key: stringify!($field),
            longs: &[$($long),+],
            short: &[$($short)?],
            shape: Shape::$shape,
            set: |o, v| ($parse)(v).map(|x| run_options!(@set $shape, o.$field, x)),
            get: |o| Value::try_from(&o.$field).ok(),
        }, )* ];

        impl RunOptions {
            /// The settings the create body takes as they are: their path in it
            /// (`HostConfig/Memory`) and their value.
            pub fn api_fields(&self) -> serde_json::Result<Vec<(&'static str, serde_json::Value)>> {
                Ok(vec![ $( $( ($api, serde_json::to_value(&self.$field)?), )? )* ])
            }
        }
    };
}

run_options! {
    /// (`KEY` alone: taken from berth's environment).
    env: Vec<String>, Many(env_item), ["env"] 'e';
    /// (read when the container is created).
    #[serde(rename = "env_files")]
    env_file: Vec<Typed<PathBuf>>,
        Many(typed(|v| absolute(v, "an absolute path to an env file").map(PathBuf::from))),
        ["env-file"];
    volumes: Vec<Typed<VolumeSpec>>, Many(typed(parse_volume)), ["volume"] 'v';
    ports: Vec<Typed<Vec<PublishedPort>>>, Many(typed(parse_publish)), ["publish"] 'p';
    /// (normalised to `80/tcp`, a range to its ports).
    expose: Vec<String>, Range(parse_expose), ["expose"];
    /// (bytes).
    memory: Option<i64>, One(parse_size), ["memory"] 'm' => "HostConfig/Memory";
    /// (bytes, -1: unlimited).
    memory_swap: Option<i64>, One(|v: &str| if v.trim() == "-1" { Ok(-1) } else { parse_size(v) }),
        ["memory-swap"] => "HostConfig/MemorySwap";
    /// (bytes).
    shm_size: Option<i64>, One(parse_size), ["shm-size"] => "HostConfig/ShmSize";
    cpus: Option<f64>,
        One(|v| number(v, f64::MIN_POSITIVE..=4096.0, "a number of CPUs such as 0.5 or 2")),
        ["cpus"];
    cpu_shares: Option<i64>, One(|v| number(v, 0..=262_144, "a CPU share weight such as 1024")),
        ["cpu-shares"] 'c' => "HostConfig/CpuShares";
    cpuset_cpus: Option<String>,
        One(|v| check(v, chars(v, |c| "0123456789,-".contains(c)), "a CPU list such as 0-2,4")),
        ["cpuset-cpus"] => "HostConfig/CpusetCpus";
    network: Option<String>, One(nonempty("a network (none, host, NAME...)")),
        ["network", "net"] => "HostConfig/NetworkMode";
    workdir: Option<String>, One(|v| absolute(v, "an absolute path in the container")),
        ["workdir"] 'w' => "WorkingDir";
    user: Option<String>, One(nonempty("a user[:group]")), ["user"] 'u' => "User";
    /// (the keyword is a command line, the flag one word; empty resets the image's).
    entrypoint: Option<Vec<String>>,
        Words(|v: &str| Ok(Vec::from_iter((!v.is_empty()).then(|| v.to_string())))),
        ["entrypoint"];
    volumes_from: Vec<String>, Many(nonempty("a container[:ro|rw]")), ["volumes-from"]
        => "HostConfig/VolumesFrom";
    /// (on a network of the service's, the endpoint's links: see the create body).
    links: Vec<String>, Many(nonempty("a container[:alias]")), ["link"];
    privileged: bool, Bool(on), ["privileged"] => "HostConfig/Privileged";
    read_only: bool, Bool(on), ["read-only"] => "HostConfig/ReadonlyRootfs";
    cap_add: Vec<String>, Many(capability), ["cap-add"] => "HostConfig/CapAdd";
    cap_drop: Vec<String>, Many(capability), ["cap-drop"] => "HostConfig/CapDrop";
    security_opt: Vec<String>, Many(nonempty("a security option")), ["security-opt"]
        => "HostConfig/SecurityOpt";
    /// (`HOST[:CONTAINER[:PERMS]]`).
    devices: Vec<Typed<Device>>, Many(typed(device)), ["device"];
    /// (`PATH[:OPTIONS]`).
    tmpfs: Vec<Typed<(String, String)>>, Many(typed(tmpfs)), ["tmpfs"];
    dns: Vec<String>, Many(|v| check(v, v.parse::<IpAddr>().is_ok(), "an IP address")), ["dns"]
        => "HostConfig/Dns";
    /// (`HOST:IP`).
    extra_hosts: Vec<String>, Many(add_host), ["add-host"] => "HostConfig/ExtraHosts";
    sysctls: BTreeMap<String, String>, Many(|v| pair(v, false)), ["sysctl"]
        => "HostConfig/Sysctls";
    group_add: Vec<String>, Many(nonempty("a group")), ["group-add"] => "HostConfig/GroupAdd";
    pid: Option<String>, One(nonempty("a pid mode (host, container:NAME)")), ["pid"]
        => "HostConfig/PidMode";
    ipc: Option<String>, One(nonempty("an ipc mode (private, host, shareable...)")), ["ipc"]
        => "HostConfig/IpcMode";
    /// (default true).
    init: bool = true, Bool(on), ["init"] => "HostConfig/Init";
    /// (default true).
    tty: bool = true, Bool(on), ["tty"] 't' => "Tty";
    /// (default true).
    interactive: bool = true, Bool(on), ["interactive"] 'i' => "OpenStdin";
    hostname: Option<String>, One(|v| check(v, is_hostname(v), "a host name")), ["hostname"] 'h'
        => "Hostname";
    /// (`KEY` alone: an empty value).
    labels: BTreeMap<String, String>, Many(|v| pair(v, true)), ["label"] 'l' => "Labels";
    /// : docker's own restart policy (berth's monitor is the usual way; `restart` is berth's
    /// restart count).
    restart_policy: Option<Typed<(String, Option<i64>)>>, One(typed(parse_restart)),
        ["restart"];
    stop_signal: Option<String>, One(nonempty("a signal (SIGTERM, 15...)")), ["stop-signal"]
        => "StopSignal";
    log_driver: Option<String>, One(nonempty("a log driver")), ["log-driver"]
        => "HostConfig/LogConfig/Type";
    log_opts: BTreeMap<String, String>, Many(|v| pair(v, false)), ["log-opt"]
        => "HostConfig/LogConfig/Config";
    /// : a healthcheck command run by `/bin/sh -c` in the container; a start waits for it to
    /// pass ("wait for container operational") before what depends on the container starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_cmd: Option<String>, One(nonempty("a command")), ["health-cmd"];
    /// (a duration: `1s`, `500ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_interval: Option<Typed<Duration>>, One(typed(health_duration)), ["health-interval"];
    /// (a duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_timeout: Option<Typed<Duration>>, One(typed(health_duration)), ["health-timeout"];
    /// (a duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_start_period: Option<Typed<Duration>>, One(typed(health_duration)),
        ["health-start-period"];
    /// (failures in a row before unhealthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    health_retries: Option<i64>, One(|v| number(v, 1..=1000, "a whole number from 1 to 1000")),
        ["health-retries"] => "Healthcheck/Retries";
}

/// A healthcheck duration: at least 1 ms (docker refuses less), as `500ms`, `2s`, `1m`.
fn health_duration(v: &str) -> Result<Duration, ArgError> {
    match crate::config::keywords::parse_duration(v) {
        Some(d) if d >= Duration::from_millis(1) => Ok(d),
        _ => Err(bad(
            v,
            "expected a duration of at least 1ms (500ms, 2s, 1m)",
        )),
    }
}

/// `-d`: accepted and ignored (berth always runs containers detached).
const DETACH: Row = Row {
    key: "",
    longs: &["detach"],
    short: &['d'],
    shape: Shape::Bool,
    set: |_, _| Ok(()),
    get: |_| None,
};

fn flags() -> impl Iterator<Item = &'static Row> {
    ROWS.iter().chain(std::iter::once(&DETACH))
}

/// The supported flags, for messages and docs: `-e/--env, --env-file, ...`.
pub fn supported_flags() -> String {
    let mut out = Vec::new();
    for row in flags() {
        for (i, long) in row.longs.iter().enumerate() {
            out.push(match row.short.first().filter(|_| i == 0) {
                Some(c) => format!("-{c}/--{long}"),
                None => format!("--{long}"),
            });
        }
    }
    out.join(", ")
}

fn unsupported(word: &str) -> ArgError {
    let name = word.split('=').next().unwrap_or(word);
    match name {
        "--name" => bad(name, "berth names the container <svc>.container.<n>"),
        "--rm" => bad(name, "berth keeps the container to report its status"),
        "-a" | "--attach" => bad(name, "berth runs containers detached"),
        _ => {
            let all = supported_flags();
            let why = format!("not a docker run flag berth supports (supported: {all})");
            bad(name, why)
        }
    }
}

fn bad(value: &str, expected: impl Into<String>) -> ArgError {
    ArgError {
        value: value.to_string(),
        expected: expected.into(),
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
        let mut it = words.iter().map(String::as_str);
        while let Some(word) = it.next() {
            // The flags of the word, with what follows each in it: `--f=value`, `-fvalue`.
            let mut found = Vec::new();
            if let Some(long) = word.strip_prefix("--") {
                let (name, inline) = long
                    .split_once('=')
                    .map_or((long, None), |(n, v)| (n, Some(v)));
                let row = flags().find(|r| r.longs.contains(&name));
                let row = row.ok_or_else(|| unsupported(word))?;
                found.push((row, format!("--{name}"), inline));
            } else if let Some(mut cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
                // Flags without a value, then maybe one taking a value that ends the cluster:
                // `-ti`, `-p80:80`, `-dp 80:80`, `-t=false`.
                while let Some(c) = cluster.chars().next() {
                    let row = flags().find(|r| r.short.contains(&c));
                    let row = row.ok_or_else(|| unsupported(&format!("-{c}")))?;
                    cluster = &cluster[c.len_utf8()..];
                    let inline = match cluster.strip_prefix('=') {
                        None if row.shape == Shape::Bool || cluster.is_empty() => None,
                        v => Some(v.unwrap_or(cluster)),
                    };
                    found.push((row, format!("-{c}"), inline));
                    if inline.is_some() {
                        break;
                    }
                }
            } else {
                let why = "run_args takes flags only: the image goes in run_image, the command in \
                           run_command";
                return Err(bad(word, why));
            }
            for (row, flag, inline) in found {
                let v = match (row.shape, inline) {
                    (Shape::Bool, None) => "true",
                    (Shape::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                        "true" | "1" => "true",
                        "false" | "0" => "false",
                        _ => {
                            return Err(bad(
                                &format!("{flag}={v}"),
                                "this flag takes true or false",
                            ));
                        }
                    },
                    (_, Some(v)) => v,
                    (_, None) => it
                        .next()
                        .ok_or_else(|| bad(&flag, "this flag takes a value"))?,
                };
                (row.set)(self, v)?;
                given.insert(row.key);
            }
        }
        Ok(given)
    }

    /// The settings that hold a value, with it, in table order (a map as its `KEY=VALUE`
    /// items); those true by default (`init`, `tty`, `interactive`) always.
    fn settings(&self) -> impl Iterator<Item = (&'static Row, Value)> {
        let defaults = RunOptions::default();
        ROWS.iter().filter_map(move |row| {
            let v = match (row.get)(self)? {
                Value::Table(t) => Value::from(Vec::from_iter(
                    t.into_iter().map(|(k, v)| format!("{k}={}", arg(&v))),
                )),
                v => v,
            };
            let unset = match &v {
                Value::Array(a) => a.is_empty() && row.shape != Shape::Words,
                Value::Boolean(b) => !b && (row.get)(&defaults) == Some(Value::Boolean(false)),
                _ => false,
            };
            (!unset).then_some((row, v))
        })
    }

    /// The keywords `print config` writes: [`Self::settings`]. They read back the same.
    pub fn keywords(&self) -> Vec<(&'static str, Value)> {
        self.settings().map(|(row, v)| (row.key, v)).collect()
    }

    /// The `docker run` flags that say the same as these options, for logs: every setting
    /// but `-t`, `-i` and `--init`, which the caller places itself (`run -t -i -d --name=...`).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (row, v) in self.settings() {
            let flag = row
                .short
                .first()
                .map_or(format!("--{}", row.longs[0]), |c| format!("-{c}"));
            match v {
                Value::Boolean(true) if !matches!(row.key, "init" | "tty" | "interactive") => {
                    a.push(format!("--{}", row.longs[0]));
                }
                Value::Boolean(_) => {}
                Value::Array(items) if row.shape != Shape::Words => {
                    a.extend(items.iter().flat_map(|i| [flag.clone(), arg(i)]));
                }
                v => a.extend([flag, arg(&v)]),
            }
        }
        a
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

/// Read `run_args` and the keywords of a container section into run options.
pub(crate) fn read(r: &mut Reader<'_>) -> Result<RunOptions, ConfigError> {
    let mut opts = RunOptions::default();
    let given = match r.words("run_args")? {
        Some(words) => (opts.apply_args(&words)).map_err(|e| config_error(r, "run_args", e))?,
        None => BTreeSet::new(),
    };
    for row in ROWS {
        let key = row.key;
        let (value, single) = match row.shape {
            // Absent: the two defaults differ; present: both give the value. Given both ways, a
            // flag is refused only when the two differ.
            Shape::Bool => {
                let (a, b) = (r.boolean(key, true)?, r.boolean(key, false)?);
                let differs = (row.get)(&opts) != Some(Value::Boolean(a));
                ((a == b).then(|| a.to_string()), differs)
            }
            Shape::One => (r.scalar(key)?, true),
            // The one command-line setting: the keyword is a command line, the flag one word.
            Shape::Words => match r.words(key)? {
                Some(words) if !given.contains(key) => {
                    opts.entrypoint = Some(words);
                    continue;
                }
                words => (words.map(|w| w.join(" ")), true),
            },
            _ => {
                for item in r.words(key)?.unwrap_or_default() {
                    (row.set)(&mut opts, &item).map_err(|e| config_error(r, key, e))?;
                }
                continue;
            }
        };
        let Some(value) = value else { continue };
        if single && given.contains(key) {
            let flags = Vec::from_iter(row.longs.iter().map(|l| format!("--{l}"))).join("/");
            let why = format!("also given in run_args ({flags}): give it one way only");
            return Err(config_error(r, key, bad(&value, why)));
        }
        (row.set)(&mut opts, &value).map_err(|e| config_error(r, key, e))?;
    }
    Ok(opts)
}

fn config_error(r: &Reader<'_>, key: &str, e: ArgError) -> ConfigError {
    let (value, expected) = (e.value, e.expected);
    r.error(key, ConfigErrorKind::BadValue { value, expected })
}

fn on(v: &str) -> Result<bool, ArgError> {
    Ok(v == "true")
}

/// `v` when `ok`; else an error saying what was expected.
fn check(v: &str, ok: bool, what: &str) -> Result<String, ArgError> {
    ok.then(|| v.to_string())
        .ok_or_else(|| bad(v, format!("expected {what}")))
}

/// Not empty, and every character `ok`.
fn chars(v: &str, ok: impl Fn(char) -> bool) -> bool {
    !v.is_empty() && v.chars().all(ok)
}

fn nonempty(what: &'static str) -> impl Fn(&str) -> Result<String, ArgError> {
    move |v| check(v, !v.trim().is_empty(), what)
}

fn absolute(v: &str, what: &str) -> Result<String, ArgError> {
    check(v, v.starts_with('/'), what)
}

fn number<T: std::str::FromStr + PartialOrd>(
    v: &str,
    range: RangeInclusive<T>,
    what: &str,
) -> Result<T, ArgError> {
    match v.trim().parse() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(bad(v, format!("expected {what}"))),
    }
}

fn env_item(v: &str) -> Result<String, ArgError> {
    let key = v.split('=').next().unwrap_or("");
    let ok = !key.is_empty() && !key.chars().any(char::is_whitespace);
    check(v, ok, "KEY=VALUE (or KEY, taken from the environment)")
}

fn capability(v: &str) -> Result<String, ArgError> {
    let ok = chars(v, |c| c.is_ascii_alphanumeric() || c == '_');
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

/// `KEY=VALUE`, or (`bare`) `KEY` alone for an empty value.
fn pair(v: &str, bare: bool) -> Result<(String, String), ArgError> {
    match v.split_once('=').or(bare.then_some((v, ""))) {
        Some((k, x)) if !k.is_empty() => Ok((k.to_string(), x.to_string())),
        _ => Err(bad(v, "expected KEY=VALUE")),
    }
}

/// A `--tmpfs` value: the mount point and its options (may be empty).
fn tmpfs(v: &str) -> Result<(String, String), ArgError> {
    let (path, opts) = v.split_once(':').unwrap_or((v, ""));
    absolute(v, "an absolute path[:options]")?;
    Ok((path.to_string(), opts.to_string()))
}

/// A `--device` mapping: the host device, its path in the container (the host's when not
/// given) and the cgroup permissions (`rwm` when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: String,
    pub inner: String,
    pub perms: String,
}

fn device(v: &str) -> Result<Device, ArgError> {
    let (host, inner, perms) = match v.split(':').collect::<Vec<_>>()[..] {
        [host] => (host, host, "rwm"),
        [host, inner] => (host, inner, "rwm"),
        [host, inner, perms] => (host, inner, perms),
        _ => ("", "", ""),
    };
    let ok = host.starts_with('/') && inner.starts_with('/') && chars(perms, |c| "rwm".contains(c));
    check(v, ok, "HOST_DEVICE[:CONTAINER_PATH[:rwm]]")?;
    let [host, inner, perms] = [host, inner, perms].map(String::from);
    Ok(Device { host, inner, perms })
}

/// A size as docker reads it: `1024`, `512k`, `512m`, `1.5g`, `1gb` (powers of 1024).
#[allow(
    clippy::cast_possible_truncation,
    reason = "bytes is checked within 0..=i64::MAX: the cast drops the fraction"
)]
pub fn parse_size(s: &str) -> Result<i64, ArgError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let unit = "kmgtp"
        .find(t.chars().last().unwrap_or(' '))
        .map_or(0, |i| i + 1);
    let num = t[..t.len() - usize::from(unit > 0)].trim();
    let bytes = num.parse::<f64>().map(|x| x * (1u64 << (10 * unit)) as f64);
    let digits = chars(num, |c| c.is_ascii_digit() || c == '.');
    let ok = digits && bytes.as_ref().is_ok_and(|b| *b <= i64::MAX as f64);
    check(s, ok, "a size such as 512m, 1g or a number of bytes")?;
    Ok(bytes.unwrap_or_default() as i64)
}

/// A volume: `-v DST` (anonymous) or `-v SRC:DST[:MODE]` (a host path or a named volume, as
/// docker's `Binds` takes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    Anonymous(String),
    Bind(String),
}

const VOLUME_MODES: &str =
    "rw ro z Z nocopy shared rshared slave rslave private rprivate consistent cached delegated";

/// Parse and check a `-v` value.
pub fn parse_volume(v: &str) -> Result<VolumeSpec, ArgError> {
    let parts: Vec<&str> = v.split(':').collect();
    let abs = |p: &str| p.starts_with('/');
    let src = |s: &str| abs(s) || chars(s, |c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let modes = VOLUME_MODES.split(' ').collect::<Vec<_>>();
    let mode = |m: &&str| m.split(',').all(|m| modes.contains(&m));
    match parts[..] {
        [dst] if abs(dst) => Ok(VolumeSpec::Anonymous(dst.to_string())),
        [s, dst] | [s, dst, _] if src(s) && abs(dst) && parts.get(2).is_none_or(mode) => {
            Ok(VolumeSpec::Bind(v.to_string()))
        }
        _ => Err(bad(
            v,
            "expected [SOURCE:]/CONTAINER_PATH[:MODE] (MODE: rw, ro, z, Z, nocopy, \
             [r]shared, [r]slave, [r]private)",
        )),
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

/// `PORT` or `PORT-PORT`, as the first and last port.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
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
    let err = || bad(v, "expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]");
    let (rest, proto) = split_proto(v).ok_or_else(err)?;
    let (ip, ports) = match rest.strip_prefix('[').and_then(|r| r.split_once("]:")) {
        Some((ip, ports)) => (Some(ip), ports),
        None => match rest.split_once(':') {
            Some((ip, ports)) if ports.contains(':') => (Some(ip), ports),
            _ => (None, rest),
        },
    };
    let (host, inner) = ports
        .split_once(':')
        .map_or((None, ports), |(h, c)| (Some(h), c));
    let (c0, c1) = port_range(inner).ok_or_else(err)?;
    let host = match host.filter(|h| !h.is_empty()).map(port_range) {
        Some(Some((h0, h1))) if h1 - h0 == c1 - c0 => Some(h0),
        Some(_) => return Err(err()),
        None => None,
    };
    if ip.is_some_and(|ip| ip.parse::<IpAddr>().is_err()) {
        return Err(err());
    }
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
    let (a, b) = port_range(ports).ok_or_else(err)?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Parse a `--restart` value into docker's policy name and retry count.
pub fn parse_restart(v: &str) -> Result<(String, Option<i64>), ArgError> {
    let err = || bad(v, "expected no, always, unless-stopped or on-failure[:N]");
    match v.split_once(':') {
        None if matches!(v, "no" | "always" | "unless-stopped" | "on-failure") => {
            Ok((v.to_string(), None))
        }
        Some(("on-failure", n)) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(("on-failure".to_string(), Some(n))),
            _ => Err(err()),
        },
        _ => Err(err()),
    }
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
        assert_eq!(o.env_file[0].value, PathBuf::from("/etc/web.env"));
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
