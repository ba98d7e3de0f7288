//! The options a container runs with: `run_args` (the `docker run` flags people use) and the
//! keywords that say the same, merged into one [`RunOptions`]. Pure parsing, no I/O.
//!
//! `run_args` is split as a shell would split it (never run through one) and read by clap as the
//! docker CLI reads it. Every flag has a keyword of the same meaning ([`CONTAINER_KEYWORDS`]); list
//! keywords add to what `run_args` gives, and a single-valued setting given both ways is an error.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::error::{ContextKind, ErrorKind};
use clap::{Arg, ArgAction, Command};
use serde::{Serialize, Serializer};
use toml::Value;

use crate::config::error::{ConfigError, ConfigErrorKind};
use crate::config::reader::Reader;
use crate::config::value::{is_hostname, parse_duration};

/// A value parsed, or the word at fault with what was expected (a [`ConfigErrorKind::BadValue`]).
pub type Parsed<T> = Result<T, ConfigErrorKind>;

/// How a setting takes its values: a flag without a value (`--tty`, `--tty=false`); one value;
/// an item (or `KEY=VALUE` pair) per value; several items per value (`--expose 80-81`); the
/// entrypoint (the flag is one word, the keyword a command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Bool,
    One,
    Many,
    Range,
    Words,
}

/// One row of the table: `set` parses one value (a flag's, a keyword's, an item of a list
/// keyword) into the options; `get` gives the setting in TOML (`None` when unset: no null there).
struct Row {
    key: &'static str,
    longs: &'static [&'static str],
    short: &'static [char],
    shape: Shape,
    set: fn(&mut RunOptions, &str) -> Parsed<()>,
    get: fn(&RunOptions) -> Option<Value>,
}

/// A value parsed from `text`, serialised (hence digested) and written back as that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed<T> {
    pub text: String,
    pub value: T,
}

impl<T> Serialize for Typed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `parse` keeping the text.
fn typed<T>(parse: fn(&str) -> Parsed<T>) -> impl Fn(&str) -> Parsed<Typed<T>> {
    move |v| {
        let text = v.to_string();
        parse(v).map(|value| Typed { text, value })
    }
}

/// The settings table, one row per setting:
/// `field: Type [= default], Shape(parser), ["long", ...] [short] [=> "Path/InBody"];`.
/// From it follow the struct and its defaults, [`CONTAINER_KEYWORDS`], the rows and
/// [`RunOptions::api_fields`]. The row order is that of `print config`, of the run line and of
/// the JSON the container's config digest is taken from.
macro_rules! run_options {
    (@default) => { Default::default() };
    (@default $default:expr) => { $default };
    (@set Bool, $f:expr, $x:ident) => { $f = $x };
    (@set Range, $f:expr, $x:ident) => { $f.extend($x) };
    (@set Many, $f:expr, $x:ident) => { $f.extend([$x]) };
    (@set $one_or_words:ident, $f:expr, $x:ident) => { $f = Some($x) };
    ($( $(#[$attr:meta])* $field:ident: $ty:ty $(= $default:expr)?, $shape:ident($parse:expr),
        [$($long:literal),+] $($short:literal)? $(=> $api:literal)?; )*) => {
        /// How a container is created. Defaults follow the core seed: a tty and an open stdin
        /// (a `/bin/sh` container stays up), and an init (a PID 1 that ignores TERM still stops).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct RunOptions {
            $( #[doc = concat!("`", stringify!($field), "`", $(" / `--", $long, "`",)+)]
            $( #[doc = concat!("(default ", stringify!($default), ")")] )?
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
            "netns", "start_requires", "image_pull_policy", "pull_timeout", "registry_creds",
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
            /// The settings the create body takes as they are, with their path in it.
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
    #[serde(rename = "env_files")] env_file: Vec<Typed<PathBuf>>,
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
    devices: Vec<Typed<(String, String, String)>>, Many(typed(device)), ["device"];
    tmpfs: Vec<Typed<(String, String)>>, Many(typed(tmpfs)), ["tmpfs"];
    dns: Vec<String>, Many(|v| check(v, v.parse::<IpAddr>().is_ok(), "an IP address")), ["dns"]
        => "HostConfig/Dns";
    extra_hosts: Vec<String>, Many(add_host), ["add-host"] => "HostConfig/ExtraHosts";
    sysctls: BTreeMap<String, String>, Many(|v| pair(v, false)), ["sysctl"]
        => "HostConfig/Sysctls";
    group_add: Vec<String>, Many(nonempty("a group")), ["group-add"] => "HostConfig/GroupAdd";
    pid: Option<String>, One(nonempty("a pid mode (host, container:NAME)")), ["pid"]
        => "HostConfig/PidMode";
    ipc: Option<String>, One(nonempty("an ipc mode (private, host, shareable...)")), ["ipc"]
        => "HostConfig/IpcMode";
    init: bool = true, Bool(on), ["init"] => "HostConfig/Init";
    tty: bool = true, Bool(on), ["tty"] 't' => "Tty";
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
    // The healthcheck (left out of the digest when unset): a start waits for it to pass ("wait
    // for container operational") before what depends on the container starts.
    /// : a command run by `/bin/sh -c` in the container.
    #[serde(skip_serializing_if = "Option::is_none")] health_cmd: Option<String>,
        One(nonempty("a command")), ["health-cmd"];
    /// (a duration: `1s`, `500ms`).
    #[serde(skip_serializing_if = "Option::is_none")] health_interval: Option<Typed<Duration>>,
        One(typed(health_duration)), ["health-interval"];
    #[serde(skip_serializing_if = "Option::is_none")] health_timeout: Option<Typed<Duration>>,
        One(typed(health_duration)), ["health-timeout"];
    #[serde(skip_serializing_if = "Option::is_none")]
    health_start_period: Option<Typed<Duration>>, One(typed(health_duration)),
        ["health-start-period"];
    /// (failures in a row before unhealthy).
    #[serde(skip_serializing_if = "Option::is_none")] health_retries: Option<i64>,
        One(|v| number(v, 1..=1000, "a whole number from 1 to 1000")), ["health-retries"]
        => "Healthcheck/Retries";
}

/// A healthcheck duration: at least 1 ms (docker refuses less), as `500ms`, `2s`, `1m`.
fn health_duration(v: &str) -> Parsed<Duration> {
    let d = parse_duration(v).filter(|d| *d >= Duration::from_millis(1));
    d.ok_or_else(|| bad(v, "expected a duration of at least 1ms (500ms, 2s, 1m)"))
}

/// A flag as clap reads it, as docker does: `--flag value`, `--flag=value`, `-f value`,
/// `-fvalue`, `-f=value`, clusters (`-ti`, `-dp 80:80`); a flag without a value takes `=false`.
fn flag(key: &'static str, longs: &'static [&'static str], short: &[char], shape: Shape) -> Arg {
    let arg = Arg::new(key).long(longs[0]).aliases(&longs[1..]);
    let arg = short.iter().fold(arg, |arg, c| arg.short(*c));
    let arg = arg.action(ArgAction::Append).allow_hyphen_values(true);
    match shape {
        Shape::Bool => (arg.num_args(0..=1).require_equals(true).ignore_case(true))
            .value_parser(["true", "false", "1", "0"])
            .default_missing_value("true"),
        _ => arg,
    }
}

thread_local! {
    /// The rows' flags, then `-d` (accepted and ignored: berth always runs containers detached).
    /// Kept, one per thread: building or cloning it costs more than a parse.
    static FLAGS: RefCell<Command> = RefCell::new(Command::new("run_args")
        .no_binary_name(true)
        .disable_help_flag(true)
        .args(ROWS.iter().map(|r| flag(r.key, r.longs, r.short, r.shape)))
        .arg(flag("detach", &["detach"], &['d'], Shape::Bool)));
}

/// The supported flags, for messages and docs: `-e/--env, --env-file, ...`.
pub fn supported_flags() -> String {
    let mut names = Vec::new();
    FLAGS.with_borrow(|flags| {
        for a in flags.get_arguments() {
            let short = a.get_short().map(|c| format!("-{c}/")).unwrap_or_default();
            names.push(format!("{short}--{}", a.get_long().unwrap_or_default()));
            let aliases = a.get_all_aliases().unwrap_or_default();
            names.extend(aliases.iter().map(|l| format!("--{l}")));
        }
    });
    names.join(", ")
}

/// What clap found wrong in `run_args`, as berth says it.
fn flag_error(e: &clap::Error) -> ConfigErrorKind {
    let arg = e.get(ContextKind::InvalidArg).map(ToString::to_string);
    let arg = arg.unwrap_or_default();
    if e.kind() != ErrorKind::UnknownArgument {
        // A flag without its value or with a bad one, named with its value: `--tty[=<tty>]`.
        let flag = arg.split([' ', '[']).next().unwrap_or_default();
        return match e.get(ContextKind::InvalidValue).map(ToString::to_string) {
            Some(v) if !v.is_empty() => {
                bad(&format!("{flag}={v}"), "this flag takes true or false")
            }
            _ => bad(flag, "this flag takes a value"),
        };
    }
    let why = match arg.as_str() {
        "--name" => "berth names the container <svc>.container.<n>".into(),
        "--rm" => "berth keeps the container to report its status".into(),
        "-a" | "--attach" => "berth runs containers detached".into(),
        w if w.starts_with('-') => {
            let all = supported_flags();
            format!("not a docker run flag berth supports (supported: {all})")
        }
        _ => "run_args takes flags only: the image goes in run_image, the command in run_command"
            .into(),
    };
    bad(&arg, why)
}

fn bad(value: &str, expected: impl Into<String>) -> ConfigErrorKind {
    let (value, expected) = (value.to_string(), expected.into());
    ConfigErrorKind::BadValue { value, expected }
}

impl RunOptions {
    /// Apply `run_args` words; returns the keywords of the settings they gave.
    fn apply_args(&mut self, words: &[String]) -> Parsed<BTreeSet<&'static str>> {
        let found = FLAGS.with_borrow_mut(|flags| flags.try_get_matches_from_mut(words));
        let found = found.map_err(|e| flag_error(&e))?;
        let mut given = BTreeSet::new();
        for row in ROWS {
            for v in found.get_raw(row.key).into_iter().flatten() {
                (row.set)(self, &v.to_string_lossy())?;
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
                Value::Table(t) => Value::Array(Vec::from_iter(
                    t.into_iter()
                        .map(|(k, v)| format!("{k}={}", arg(&v)).into()),
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
            let flag = match row.short {
                [c] => format!("-{c}"),
                _ => format!("--{}", row.longs[0]),
            };
            match v {
                Value::Boolean(b) if b && !matches!(row.key, "init" | "tty" | "interactive") => {
                    a.push(flag);
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
        Value::Array(a) => a.iter().map(arg).collect::<Vec<_>>().join(" "),
        v => v.to_string(),
    }
}

/// Read `run_args` and the keywords of a container section into run options.
pub(crate) fn read(r: &mut Reader<'_>) -> Result<RunOptions, ConfigError> {
    let mut opts = RunOptions::default();
    let given = match r.words("run_args")? {
        Some(words) => (opts.apply_args(&words)).map_err(|e| r.error("run_args", e))?,
        None => BTreeSet::new(),
    };
    for row in ROWS {
        let key = row.key;
        let (values, single) = match row.shape {
            // Absent: the two defaults differ; present: both give the value. Given both ways, a
            // flag is refused only when the two differ.
            Shape::Bool => {
                let (a, b) = (r.boolean(key, true)?, r.boolean(key, false)?);
                let differs = (row.get)(&opts) != Some(Value::Boolean(a));
                (Vec::from_iter((a == b).then(|| a.to_string())), differs)
            }
            Shape::One => (Vec::from_iter(r.scalar(key)?), true),
            // The keyword is a command line, the flag one word.
            Shape::Words => match r.words(key)? {
                Some(words) if !given.contains(key) => {
                    opts.entrypoint = Some(words);
                    continue;
                }
                words => (Vec::from_iter(words.map(|w| w.join(" "))), true),
            },
            _ => (r.words(key)?.unwrap_or_default(), false),
        };
        if let Some(value) = values.first().filter(|_| single && given.contains(key)) {
            let flags = Vec::from_iter(row.longs.iter().map(|l| format!("--{l}"))).join("/");
            let why = format!("also given in run_args ({flags}): give it one way only");
            return Err(r.error(key, bad(value, why)));
        }
        for v in &values {
            (row.set)(&mut opts, v).map_err(|e| r.error(key, e))?;
        }
    }
    Ok(opts)
}

/// A flag's (`true`, `false`, `1`, `0`: clap checked it) or a keyword's (`true`, `false`).
fn on(v: &str) -> Parsed<bool> {
    Ok(v.eq_ignore_ascii_case("true") || v == "1")
}

/// `v` when `ok`; else an error saying what was expected.
fn check(v: &str, ok: bool, what: &str) -> Parsed<String> {
    let e = || bad(v, format!("expected {what}"));
    ok.then(|| v.to_string()).ok_or_else(e)
}

/// Not empty, and every character `ok`.
fn chars(v: &str, ok: impl Fn(char) -> bool) -> bool {
    !v.is_empty() && v.chars().all(ok)
}

fn nonempty(what: &'static str) -> impl Fn(&str) -> Parsed<String> {
    move |v| check(v, !v.trim().is_empty(), what)
}

fn absolute(v: &str, what: &str) -> Parsed<String> {
    check(v, v.starts_with('/'), what)
}

fn number<T: FromStr + PartialOrd>(v: &str, r: RangeInclusive<T>, what: &str) -> Parsed<T> {
    let n = v.trim().parse().ok().filter(|n| r.contains(n));
    n.ok_or_else(|| bad(v, format!("expected {what}")))
}

fn env_item(v: &str) -> Parsed<String> {
    let key = v.split('=').next().unwrap_or("");
    let ok = !key.is_empty() && !key.chars().any(char::is_whitespace);
    check(v, ok, "KEY=VALUE (or KEY, taken from the environment)")
}

fn capability(v: &str) -> Parsed<String> {
    let ok = chars(v, |c| c.is_ascii_alphanumeric() || c == '_');
    check(v, ok, "a capability such as NET_ADMIN or ALL")
}

fn add_host(v: &str) -> Parsed<String> {
    let (host, ip) = v.split_once(['=', ':']).unwrap_or_default();
    let ok = !host.is_empty() && (ip == "host-gateway" || ip.parse::<IpAddr>().is_ok());
    check(v, ok, "HOST:IP").map(|_| format!("{host}:{ip}"))
}

/// `KEY=VALUE`, or (`bare`) `KEY` alone for an empty value.
fn pair(v: &str, bare: bool) -> Parsed<(String, String)> {
    let (k, x) = v.split_once('=').unwrap_or((if bare { v } else { "" }, ""));
    check(v, !k.is_empty(), "KEY=VALUE").map(|_| (k.to_string(), x.to_string()))
}

/// A `--tmpfs` value: the mount point and its options (may be empty).
fn tmpfs(v: &str) -> Parsed<(String, String)> {
    let (path, opts) = v.split_once(':').unwrap_or((v, ""));
    absolute(v, "an absolute path[:options]").map(|_| (path.to_string(), opts.to_string()))
}

/// A `--device` mapping: the host device, its path in the container (the host's when not
/// given) and the cgroup permissions (`rwm` when not given).
fn device(v: &str) -> Parsed<(String, String, String)> {
    let mut parts = v.split(':');
    let host = parts.next().unwrap_or_default();
    let (inner, perms) = (parts.next().unwrap_or(host), parts.next().unwrap_or("rwm"));
    let perms_ok = chars(perms, |c| "rwm".contains(c)) && parts.next().is_none();
    let ok = host.starts_with('/') && inner.starts_with('/') && perms_ok;
    check(v, ok, "HOST_DEVICE[:CONTAINER_PATH[:rwm]]")?;
    Ok((host.into(), inner.into(), perms.into()))
}

/// A size as docker reads it: `1024`, `512k`, `512m`, `1.5g`, `1gb` (powers of 1024).
#[allow(
    clippy::cast_possible_truncation,
    reason = "bytes is checked within 0..=i64::MAX: the cast drops the fraction"
)]
pub fn parse_size(s: &str) -> Parsed<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let unit = t.chars().last().and_then(|c| "kmgtp".find(c));
    let num = t[..t.len() - usize::from(unit.is_some())].trim();
    let scale = unit.map_or(1, |u| 1u64 << (10 * (u + 1)));
    let bytes = num.parse::<f64>().map(|x| x * scale as f64);
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

const VOLUME_EXPECTED: &str = "expected [SOURCE:]/CONTAINER_PATH[:MODE] (MODE: rw, ro, z, Z, \
                               nocopy, [r]shared, [r]slave, [r]private)";
const VOLUME_MODES: &str =
    "rw ro z Z nocopy shared rshared slave rslave private rprivate consistent cached delegated";

/// Parse and check a `-v` value.
pub fn parse_volume(v: &str) -> Parsed<VolumeSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let abs = |p: &str| p.starts_with('/');
    let src = |s: &str| abs(s) || chars(s, |c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let modes = Vec::from_iter(VOLUME_MODES.split(' '));
    let mode = |m: &&str| m.split(',').all(|m| modes.contains(&m));
    match parts[..] {
        [dst] if abs(dst) => Ok(VolumeSpec::Anonymous(dst.to_string())),
        [s, dst] | [s, dst, _] if src(s) && abs(dst) && parts.get(2).is_none_or(mode) => {
            Ok(VolumeSpec::Bind(v.to_string()))
        }
        _ => Err(bad(v, VOLUME_EXPECTED)),
    }
}

/// One published port: `HOST_IP:HOST_PORT -> CONTAINER_PORT/PROTO` (`80/tcp`); no address binds
/// them all, no host port lets docker pick one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
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

/// Parse a `-p` value as docker splits it: `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, the
/// container port last, the host port before it, the rest the address (IPv6 in brackets or
/// not); ports or equal-length ranges.
pub fn parse_publish(v: &str) -> Parsed<Vec<PublishedPort>> {
    let err = || bad(v, "expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]");
    let (rest, proto) = split_proto(v).ok_or_else(err)?;
    let mut parts = rest.rsplitn(3, ':');
    let (c0, c1) = parts.next().and_then(port_range).ok_or_else(err)?;
    let host = match parts.next().filter(|h| !h.is_empty()).map(port_range) {
        Some(Some((h0, h1))) if h1 - h0 == c1 - c0 => Some(h0),
        Some(_) => return Err(err()),
        None => None,
    };
    let ip = parts.next().map(|ip| ip.trim_matches(['[', ']']));
    if ip.is_some_and(|ip| ip.parse::<IpAddr>().is_err()) {
        return Err(err());
    }
    let port = |c| PublishedPort {
        host_ip: ip.map(str::to_string),
        host_port: host.map(|h| h + (c - c0)),
        container: format!("{c}/{proto}"),
    };
    Ok((c0..=c1).map(port).collect())
}

/// Parse an `--expose` value: `PORT[-PORT][/PROTO]`, into `80/tcp` items.
pub fn parse_expose(v: &str) -> Parsed<Vec<String>> {
    let err = || bad(v, "expected PORT[-PORT][/tcp|udp|sctp]");
    let (ports, proto) = split_proto(v).ok_or_else(err)?;
    let (a, b) = port_range(ports).ok_or_else(err)?;
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Parse a `--restart` value into docker's policy name and retry count.
pub fn parse_restart(v: &str) -> Parsed<(String, Option<i64>)> {
    let (name, count) = v.split_once(':').map_or((v, None), |(p, n)| (p, Some(n)));
    let count = count.map(|n| n.parse::<i64>().ok().filter(|n| *n >= 0));
    let ok = match count {
        None => matches!(name, "no" | "always" | "unless-stopped" | "on-failure"),
        Some(n) => name == "on-failure" && n.is_some(),
    };
    check(v, ok, "no, always, unless-stopped or on-failure[:N]")?;
    Ok((name.to_string(), count.flatten()))
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

    /// A bad value's parts.
    #[derive(Debug)]
    struct Bad {
        value: String,
        expected: String,
    }

    fn bad_of(e: ConfigErrorKind) -> Bad {
        match e {
            ConfigErrorKind::BadValue { value, expected } => Bad { value, expected },
            e => panic!("not a bad value: {e}"),
        }
    }

    /// Options from `run_args` words alone (defaults for the rest).
    fn from_args(words: &[String]) -> Result<RunOptions, Bad> {
        let mut o = RunOptions::default();
        o.apply_args(words).map_err(bad_of)?;
        Ok(o)
    }

    fn args(s: &str) -> Result<RunOptions, Bad> {
        from_args(&shell_words::split(s).unwrap())
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
        let o = args("--tty=FALSE --privileged=1 --init=0 -e=A=1 --memory-swap=-1").unwrap();
        assert!(!o.tty && o.privileged && !o.init);
        assert_eq!((o.env, o.memory_swap), (vec!["A=1".to_string()], Some(-1)));
        // A value may start with a dash, as docker takes it.
        assert_eq!(
            args("--entrypoint -x").unwrap().entrypoint,
            Some(vec!["-x".into()])
        );
    }

    #[test]
    fn flag_mistakes_are_named() {
        let e = args("-t=maybe").unwrap_err();
        assert_eq!(
            (e.value.as_str(), e.expected.as_str()),
            ("--tty=maybe", "this flag takes true or false")
        );
        let e = args("--tty maybe").unwrap_err();
        assert!(e.expected.contains("run_image"), "{e:?}");
        assert_eq!(e.value, "maybe");
        for (line, flag) in [("-e", "--env"), ("-ti -p", "--publish")] {
            let e = args(line).unwrap_err();
            assert_eq!(
                (e.value.as_str(), e.expected.as_str()),
                (flag, "this flag takes a value"),
                "{line}"
            );
        }
        assert!(args("--memory=").unwrap_err().expected.contains("a size"));
        assert_eq!(args("--frobnicate=3").unwrap_err().value, "--frobnicate");
        assert_eq!(args("-").unwrap_err().value, "-");
        assert!(
            args("-- busybox")
                .unwrap_err()
                .expected
                .contains("run_image")
        );
        // What docker does not take, berth does not either: no abbreviations, no help.
        assert_eq!(args("--priv").unwrap_err().value, "--priv");
        assert!(
            args("--help")
                .unwrap_err()
                .expected
                .contains("not a docker run flag")
        );
        assert!(args("-h").unwrap_err().expected.contains("takes a value"));
    }

    #[test]
    fn devices() {
        let d = device;
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(d("/dev/fuse").unwrap(), s("/dev/fuse", "/dev/fuse", "rwm"));
        assert_eq!(
            d("/dev/sda:/dev/xvda").unwrap(),
            s("/dev/sda", "/dev/xvda", "rwm")
        );
        assert_eq!(
            d("/dev/sda:/dev/xvda:r").unwrap(),
            s("/dev/sda", "/dev/xvda", "r")
        );
        for bad in [
            "",
            "sda",
            "/dev/sda:xvda",
            "/dev/sda:/dev/xvda:rx",
            "/a:/b:r:extra",
            "/a::r",
        ] {
            assert_eq!(bad_of(device(bad).unwrap_err()).value, bad);
        }
    }

    #[test]
    fn unsupported_flags_are_named() {
        let e = args("-v /a:/b --frobnicate 3").unwrap_err();
        assert_eq!(e.value, "--frobnicate");
        assert!(e.expected.contains("not a docker run flag"), "{e:?}");
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
            assert_eq!(bad_of(parse_size(bad).unwrap_err()).value, bad);
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
        // An IPv6 address without brackets, as docker splits it: the last two fields are ports.
        let p = parse_publish("::1:8080:80/udp").unwrap();
        assert_eq!(
            (p[0].host_ip.as_deref(), p[0].host_port),
            (Some("::1"), Some(8080))
        );
        for bad in [
            "8000-8002:80-81",
            "80/icmp",
            "a.b.c:80:80",
            "[::1]:80",
            "0",
            "1:2:3:80",
        ] {
            assert_eq!(bad_of(parse_publish(bad).unwrap_err()).value, bad);
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
        assert_eq!(
            bad_of(parse_restart("always:3").unwrap_err()).value,
            "always:3"
        );
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
        assert_eq!(from_args(&o.to_args()).unwrap(), o);
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
