//! The keyword layer: every keyword berth knows, typed and validated the same way for TOML and INI.
//! A keyword left over after a section is read is unknown: an error in TOML, a warning in INI.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawEntry, RawFile, RawSection, RawValue, SectionKind};
use super::{
    Common, ConfigError, ConfigErrorKind, ConfigWarning, ContainerSpec, Format, FsSpec, IpSpec,
    MonitorAction, NetnsIp, NetnsMode, Orchestrate, Placement, Prefix, Resource, ServiceConfig,
    ServiceSettings, Spec, VgSpec,
};
use crate::rid::{Kind, Rid};
use crate::run_args::RunOptions;

/// Keywords every resource section takes.
pub const COMMON_KEYWORDS: &[&str] = &[
    "optional", "disable", "monitor", "restart", "tags", "subset", "standby",
];

/// Service keywords (`[service]` / `[DEFAULT]`).
pub const SERVICE_KEYWORDS: &[&str] = &[
    "nodes",
    "autostart_node",
    "app",
    "env",
    "service_type",
    "docker_data_dir",
    "docker_daemon_args",
    "docker_subnet",
    "orchestrate",
    "monitor_action",
    "placement",
];

/// Kind-specific keywords, mandatory ones first.
pub fn kind_keywords(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Ip => &[
            "ipname",
            "ipdev",
            "netmask",
            "gateway",
            "probe_timeout",
            "garp_count",
            "garp_interval",
            "type",
            "netns",
            "mode",
            "nsdev",
            "container_rid",
        ],
        Kind::Vg => &["vgname"],
        Kind::Fs => &["dev", "mnt", "type", "mnt_opt", "mnt_opts", "stop_timeout"],
        Kind::Container => crate::run_args::CONTAINER_KEYWORDS,
    }
}

/// A service name: what may stand in a file name, a container name and a socket path.
pub fn validate_service_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err("may hold only letters, digits, '.', '-' and '_'".to_string());
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err("must start with a letter or a digit".to_string());
    }
    Ok(())
}

/// Reads one section's keywords, remembering which were used.
pub(crate) struct Reader<'a> {
    file: &'a Path,
    format: Format,
    section: &'a RawSection,
    entries: HashMap<&'a str, &'a RawEntry>,
    used: BTreeSet<&'a str>,
}

impl<'a> Reader<'a> {
    fn new(file: &'a Path, format: Format, section: &'a RawSection) -> Result<Self, ConfigError> {
        let mut entries: HashMap<&str, &RawEntry> = HashMap::new();
        for e in &section.entries {
            if let Some(first) = entries.insert(e.key.as_str(), e) {
                return Err(ConfigError::at(
                    file,
                    Some(e.line),
                    Some(&section.name),
                    Some(&e.key),
                    ConfigErrorKind::Syntax(format!(
                        "key given twice (first on line {})",
                        first.line
                    )),
                ));
            }
        }
        Ok(Reader {
            file,
            format,
            section,
            entries,
            used: BTreeSet::new(),
        })
    }

    /// An error about `key` in this section.
    pub(crate) fn error(&self, key: &str, kind: ConfigErrorKind) -> ConfigError {
        let line = self
            .entries
            .get(key)
            .map(|e| e.line)
            .unwrap_or(self.section.line);
        ConfigError::at(
            self.file,
            Some(line),
            Some(&self.section.name),
            Some(key),
            kind,
        )
    }

    fn bad(&self, key: &str, value: &RawValue, expected: &str) -> ConfigError {
        self.error(
            key,
            ConfigErrorKind::BadValue {
                value: value.shown(),
                expected: expected.to_string(),
            },
        )
    }

    fn take(&mut self, key: &'a str) -> Option<&'a RawValue> {
        let e = self.entries.get(key)?;
        self.used.insert(key);
        Some(&e.value)
    }

    /// A string keyword.
    pub(crate) fn string(&mut self, key: &'a str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(key, v, "expected a string")),
        }
    }

    /// A keyword whose value is one of `choices` (by name, case-insensitive); `default` when absent.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        key: &'a str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(default);
        };
        let wanted = text.trim().to_ascii_lowercase();
        match choices.iter().find(|(name, _)| *name == wanted) {
            Some(&(_, v)) => Ok(v),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(self.bad(
                    key,
                    &RawValue::Str(text),
                    &format!("expected one of: {}", names.join(", ")),
                ))
            }
        }
    }

    /// A mandatory, non-empty string keyword.
    pub(crate) fn required(&mut self, key: &'a str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(s) => Err(self.bad(key, &RawValue::Str(s), "must not be empty")),
            None => Err(self.error(key, ConfigErrorKind::MissingKey)),
        }
    }

    /// A boolean keyword (INI: true/false, yes/no, on/off, 1/0).
    pub(crate) fn boolean(&mut self, key: &'a str, default: bool) -> Result<bool, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some(RawValue::Bool(b)) => Ok(*b),
            Some(v @ RawValue::Str(s)) if self.format == Format::Ini => {
                match s.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => Err(self.bad(key, v, "expected true or false")),
                }
            }
            Some(v) => Err(self.bad(key, v, "expected true or false")),
        }
    }

    /// A whole number keyword, between `min` and `max`.
    pub(crate) fn integer(
        &mut self,
        key: &'a str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let expected = format!("expected a whole number from {min} to {max}");
        let n = match self.take(key) {
            None => return Ok(None),
            Some(RawValue::Int(n)) => (*n, RawValue::Int(*n)),
            Some(v @ RawValue::Str(s)) if self.format == Format::Ini => match s.trim().parse() {
                Ok(n) => (n, v.clone()),
                Err(_) => return Err(self.bad(key, v, &expected)),
            },
            Some(v) => return Err(self.bad(key, v, &expected)),
        };
        if n.0 < min || n.0 > max {
            return Err(self.bad(key, &n.1, &expected));
        }
        Ok(Some(n.0))
    }

    /// A list of strings: a TOML array, or (INI, and TOML for convenience) a space-separated string.
    pub(crate) fn list(&mut self, key: &'a str) -> Result<Vec<String>, ConfigError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(RawValue::List(l)) => Ok(l.clone()),
            Some(RawValue::Str(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
            Some(v) => Err(self.bad(key, v, "expected a list of strings")),
        }
    }

    /// A list of words split as a shell would (quotes honoured), or a TOML array taken as is.
    pub(crate) fn words(&mut self, key: &'a str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::List(l)) => Ok(Some(l.clone())),
            Some(v @ RawValue::Str(s)) => shell_words::split(s)
                .map(Some)
                .map_err(|e| self.bad(key, v, &format!("cannot split it as a shell would: {e}"))),
            Some(v) => Err(self.bad(key, v, "expected a string or a list of strings")),
        }
    }

    /// A scalar (string, integer or float) as text, for keywords parsed further by the caller
    /// (`memory = "512m"` or `memory = 536870912`, `cpus = 1.5`).
    pub(crate) fn scalar(&mut self, key: &'a str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s.clone())),
            Some(RawValue::Int(n)) => Ok(Some(n.to_string())),
            Some(RawValue::Float(x)) => Ok(Some(x.to_string())),
            Some(v) => Err(self.bad(key, v, "expected a string or a number")),
        }
    }

    /// An absolute path.
    pub(crate) fn abs_path(&mut self, key: &'a str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        let p = PathBuf::from(&s);
        if !p.is_absolute() {
            return Err(self.bad(key, &RawValue::Str(s), "expected an absolute path"));
        }
        if p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(self.bad(key, &RawValue::Str(s), "'..' is not allowed in the path"));
        }
        Ok(Some(p))
    }

    /// A duration: a number of seconds (TOML integer / float), or a string `500ms`, `5s`, `2m`.
    pub(crate) fn duration(
        &mut self,
        key: &'a str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let expected = "expected a duration such as 500ms, 5s, 2m, or a number of seconds";
        match self.take(key) {
            None => Ok(default),
            Some(RawValue::Int(n)) if *n >= 0 => Ok(Duration::from_secs(n.unsigned_abs())),
            Some(v @ RawValue::Float(x)) => {
                Duration::try_from_secs_f64(*x).map_err(|_| self.bad(key, v, expected))
            }
            Some(v @ RawValue::Str(s)) => {
                parse_duration(s).ok_or_else(|| self.bad(key, v, expected))
            }
            Some(v) => Err(self.bad(key, v, expected)),
        }
    }

    /// Every key of the section not read so far.
    fn leftovers(&self) -> Vec<&'a RawEntry> {
        let mut left: Vec<&RawEntry> = self
            .section
            .entries
            .iter()
            .filter(|e| !self.used.contains(e.key.as_str()))
            .collect();
        left.sort_by_key(|e| e.line);
        left
    }

    /// Close the section: unknown keys are an error (TOML) or warnings (INI).
    fn finish(self, known: &[&str], warnings: &mut Vec<ConfigWarning>) -> Result<(), ConfigError> {
        for e in self.leftovers() {
            match self.format {
                Format::Toml => {
                    return Err(self.error(
                        &e.key,
                        ConfigErrorKind::UnknownKey {
                            known: known.join(", "),
                        },
                    ));
                }
                Format::Ini => warnings.push(ConfigWarning {
                    file: self.file.to_path_buf(),
                    line: e.line,
                    section: self.section.name.clone(),
                    key: Some(e.key.clone()),
                    message: "keyword not known to berth: ignored".to_string(),
                }),
            }
        }
        Ok(())
    }
}

/// `500ms`, `5s`, `2m`, `1h`, `30d`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    // A value too large for a Duration is refused, not a panic.
    Duration::try_from_secs_f64(secs).ok()
}

/// A host name as RFC 1123 allows (for `ipname` given as a name). A name whose labels are all
/// digits is not one (RFC 1123 sec. 2.1: it would read as a dotted-decimal address), so
/// `300.1.2.3` is refused here rather than failing later in DNS.
pub(crate) fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s
            .split('.')
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An interface name as the kernel allows it.
fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// A netmask as a prefix length (`24`) or a dotted IPv4 mask (`255.255.255.0`).
pub fn parse_netmask(s: &str) -> Option<Prefix> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 128).then_some(Prefix(n));
    }
    ipnet::ipv4_mask_to_prefix(s.parse().ok()?).ok().map(Prefix)
}

fn read_common(r: &mut Reader<'_>) -> Result<Common, ConfigError> {
    Ok(Common {
        optional: r.boolean("optional", false)?,
        disable: r.boolean("disable", false)?,
        monitor: r.boolean("monitor", false)?,
        restart: r
            .integer("restart", 0, 1000)?
            .map_or(0, |n| u32::try_from(n).unwrap_or(1000)),
        tags: r.list("tags")?.into_iter().collect(),
        subset: r.string("subset")?,
        standby: r.boolean("standby", false)?,
    })
}

/// `[ip#N] type`: `host` (the default: the node's interface) or `netns` (OpenSVC v2; `docker`
/// is its old name): the address in a container's network namespace.
fn read_ip_netns(r: &mut Reader<'_>) -> Result<Option<NetnsIp>, ConfigError> {
    let ty = r.string("type")?;
    match ty.as_deref().map(str::trim) {
        None | Some("host") => {
            for key in ["netns", "mode", "nsdev", "container_rid"] {
                if r.entries.contains_key(key) {
                    return Err(r.bad(
                        key,
                        &RawValue::Str(key.to_string()),
                        "only an ip of type netns takes it (the address would go on the node's \
                         interface, not in the container)",
                    ));
                }
            }
            Ok(None)
        }
        Some("netns" | "docker") => {
            let text = match (r.string("netns")?, r.string("container_rid")?) {
                (Some(a), _) | (None, Some(a)) => a,
                (None, None) => return Err(r.error("netns", ConfigErrorKind::MissingKey)),
            };
            let container = match text.trim().parse::<Rid>() {
                Ok(rid) if rid.kind == Kind::Container => rid,
                _ => {
                    return Err(r.bad(
                        "netns",
                        &RawValue::Str(text),
                        "expected the rid of a container of the service (container#0)",
                    ));
                }
            };
            let mode = match r.string("mode")? {
                None => None,
                Some(m) => match NetnsMode::CHOICES
                    .iter()
                    .find(|(n, _)| *n == m.trim().to_ascii_lowercase())
                {
                    Some(&(_, mode)) => Some(mode),
                    None => {
                        return Err(r.bad(
                            "mode",
                            &RawValue::Str(m),
                            "berth makes netns interfaces in mode bridge or macvlan \
                             (dedicated, ipvlan-l2, ipvlan-l3 and ovs are not supported)",
                        ));
                    }
                },
            };
            let nsdev = r.string("nsdev")?;
            if let Some(d) = &nsdev
                && !is_ifname(d)
            {
                return Err(r.bad(
                    "nsdev",
                    &RawValue::Str(d.clone()),
                    "expected an interface name",
                ));
            }
            Ok(Some(NetnsIp {
                container,
                mode,
                nsdev,
            }))
        }
        Some(other) => Err(r.bad(
            "type",
            &RawValue::Str(other.to_string()),
            "ip type is not supported (berth has: host, netns)",
        )),
    }
}

fn read_ip(r: &mut Reader<'_>) -> Result<IpSpec, ConfigError> {
    let netns = read_ip_netns(r)?;
    let ipname = r.required("ipname")?;
    if ipname.parse::<IpAddr>().is_err() && !is_hostname(&ipname) {
        return Err(r.bad(
            "ipname",
            &RawValue::Str(ipname),
            "expected an IPv4 or IPv6 address, or a host name (a name is not all digits)",
        ));
    }
    let ipdev = r.required("ipdev")?;
    if !is_ifname(&ipdev) {
        return Err(r.bad("ipdev", &RawValue::Str(ipdev), "expected an interface name"));
    }
    let netmask = match r.take("netmask") {
        None => None,
        Some(v @ RawValue::Int(n)) => match u8::try_from(*n) {
            Ok(n) if n <= 128 => Some(Prefix(n)),
            _ => {
                return Err(r.bad(
                    "netmask",
                    v,
                    "expected a prefix length (0-128) or a dotted mask",
                ));
            }
        },
        Some(v @ RawValue::Str(s)) => Some(parse_netmask(s).ok_or_else(|| {
            r.bad(
                "netmask",
                v,
                "expected a prefix length (0-128) or a dotted mask",
            )
        })?),
        Some(v) => {
            return Err(r.bad(
                "netmask",
                v,
                "expected a prefix length (0-128) or a dotted mask",
            ));
        }
    };
    if let (Some(Prefix(p)), Ok(IpAddr::V4(_))) = (netmask, ipname.parse::<IpAddr>())
        && p > 32
    {
        return Err(r.bad(
            "netmask",
            &RawValue::Int(i64::from(p)),
            "an IPv4 prefix is at most 32",
        ));
    }
    let gateway = match r.string("gateway")? {
        None => None,
        Some(g) => Some(g.parse().map_err(|_| {
            r.bad(
                "gateway",
                &RawValue::Str(g.clone()),
                "expected an IP address",
            )
        })?),
    };
    Ok(IpSpec {
        ipname,
        ipdev,
        netmask,
        gateway,
        probe_timeout: r.duration("probe_timeout", Duration::from_millis(300))?,
        garp_count: r
            .integer("garp_count", 0, 100)?
            .map_or(3, |n| u32::try_from(n).unwrap_or(100)),
        garp_interval: r.duration("garp_interval", Duration::from_millis(100))?,
        netns,
    })
}

fn read_fs(r: &mut Reader<'_>) -> Result<FsSpec, ConfigError> {
    let dev = r.required("dev")?;
    let mnt = r
        .abs_path("mnt")?
        .ok_or_else(|| r.error("mnt", ConfigErrorKind::MissingKey))?;
    if mnt == Path::new("/") {
        return Err(r.bad(
            "mnt",
            &RawValue::Str("/".into()),
            "berth will not mount over /",
        ));
    }
    let fs_type = r.required("type")?;
    let mnt_opt = match (r.string("mnt_opt")?, r.string("mnt_opts")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(r.error(
                "mnt_opts",
                ConfigErrorKind::BadValue {
                    value: b,
                    expected: format!(
                        "mnt_opt and mnt_opts are one keyword, and mnt_opt says {a:?}"
                    ),
                },
            ));
        }
        (a, b) => a.or(b),
    };
    Ok(FsSpec {
        dev: PathBuf::from(dev),
        mnt,
        fs_type,
        mnt_opt,
        stop_timeout: r.duration("stop_timeout", Duration::from_secs(5))?,
    })
}

fn read_container(r: &mut Reader<'_>) -> Result<ContainerSpec, ConfigError> {
    match r.string("type")?.as_deref() {
        None | Some("docker") => {}
        Some(other) => {
            return Err(r.bad(
                "type",
                &RawValue::Str(other.to_string()),
                "berth runs containers of type docker only",
            ));
        }
    }
    let run_image = r.required("run_image")?;
    let run_command = r.words("run_command")?;
    let run: RunOptions = crate::run_args::read(r)?;
    let netns = match r.string("netns")? {
        None => None,
        Some(t) => match t.trim().parse::<Rid>() {
            Ok(rid) if rid.kind == Kind::Container => Some(rid),
            _ => {
                return Err(r.bad(
                    "netns",
                    &RawValue::Str(t),
                    "expected the rid of another container of the service (container#0)",
                ));
            }
        },
    };
    let mut start_requires = Vec::new();
    for item in r.list("start_requires")? {
        // OpenSVC writes `rid(state,...)`; berth requires the resource up.
        let (rid_text, states) = match item.split_once('(') {
            Some((rid, rest)) => (rid, Some(rest.trim_end_matches(')'))),
            None => (item.as_str(), None),
        };
        if let Some(states) = states
            && states.split(',').any(|s| s.trim() != "up")
        {
            return Err(r.bad(
                "start_requires",
                &RawValue::Str(item.clone()),
                "berth takes the state up only: <rid> or <rid>(up)",
            ));
        }
        match rid_text.trim().parse::<Rid>() {
            Ok(rid) => start_requires.push(rid),
            Err(_) => {
                return Err(r.bad(
                    "start_requires",
                    &RawValue::Str(item.clone()),
                    "expected resource ids of the service (container#1 fs#1(up))",
                ));
            }
        }
    }
    Ok(ContainerSpec {
        run_image,
        run_command,
        run,
        start_timeout: r.duration("start_timeout", Duration::from_secs(30))?,
        stop_timeout: r.duration("stop_timeout", Duration::from_secs(10))?,
        netns,
        start_requires,
    })
}

fn read_service(r: &mut Reader<'_>) -> Result<ServiceSettings, ConfigError> {
    let env = match (r.string("env")?, r.string("service_type")?) {
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    Ok(ServiceSettings {
        nodes: r.list("nodes")?,
        autostart_node: r.string("autostart_node")?,
        app: r.string("app")?,
        env,
        docker_data_dir: r.abs_path("docker_data_dir")?,
        docker_daemon_args: r.words("docker_daemon_args")?.unwrap_or_default(),
        docker_subnet: match r.string("docker_subnet")? {
            None => None,
            Some(t) => Some(
                crate::config::stack::parse_subnet(&t)
                    .map_err(|why| r.bad("docker_subnet", &RawValue::Str(t.clone()), &why))?,
            ),
        },
        orchestrate: r.choice("orchestrate", Orchestrate::CHOICES, Orchestrate::No)?,
        monitor_action: r.choice(
            "monitor_action",
            MonitorAction::CHOICES,
            MonitorAction::None,
        )?,
        placement: r.choice("placement", Placement::CHOICES, Placement::NodesOrder)?,
    })
}

/// Type and validate a raw file into a service.
pub(crate) fn build(
    name: String,
    file: &Path,
    format: Format,
    raw: RawFile,
) -> Result<ServiceConfig, ConfigError> {
    let mut warnings = raw.warnings;
    let mut settings = None;
    let mut resources: Vec<Resource> = Vec::new();
    let mut first_line: HashMap<Rid, usize> = HashMap::new();
    for section in &raw.sections {
        let mut r = Reader::new(file, format, section)?;
        match section.kind {
            SectionKind::Service => {
                if settings.is_some() {
                    return Err(ConfigError::at(
                        file,
                        Some(section.line),
                        Some(&section.name),
                        None,
                        ConfigErrorKind::Syntax("the service section is given twice".to_string()),
                    ));
                }
                settings = Some(read_service(&mut r)?);
                r.finish(SERVICE_KEYWORDS, &mut warnings)?;
            }
            SectionKind::Resource(rid) => {
                if let Some(first) = first_line.insert(rid, section.line) {
                    return Err(ConfigError::at(
                        file,
                        Some(section.line),
                        Some(&section.name),
                        None,
                        ConfigErrorKind::DuplicateRid {
                            rid: rid.to_string(),
                            first_line: first,
                        },
                    ));
                }
                let common = read_common(&mut r)?;
                let spec = match rid.kind {
                    Kind::Ip => Spec::Ip(read_ip(&mut r)?),
                    Kind::Vg => Spec::Vg(VgSpec {
                        vgname: r.required("vgname")?,
                    }),
                    Kind::Fs => Spec::Fs(read_fs(&mut r)?),
                    Kind::Container => Spec::Container(Box::new(read_container(&mut r)?)),
                };
                let known: Vec<&str> = kind_keywords(rid.kind)
                    .iter()
                    .chain(COMMON_KEYWORDS)
                    .copied()
                    .collect();
                r.finish(&known, &mut warnings)?;
                resources.push(Resource { rid, common, spec });
            }
        }
    }
    let svc = ServiceConfig {
        name,
        source: file.to_path_buf(),
        format,
        settings: settings.unwrap_or_default(),
        resources,
        warnings,
    };
    super::stack::check(&svc, &raw.sections)?;
    Ok(svc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5 parsecs"), None);
        // Too large for a Duration: refused, not a panic.
        assert_eq!(parse_duration("99999999999999999999999h"), None);
        assert_eq!(parse_duration(&"9".repeat(400)), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("24"), Some(Prefix(24)));
        assert_eq!(parse_netmask("255.255.255.224"), Some(Prefix(27)));
        assert_eq!(parse_netmask("255.255.255.255"), Some(Prefix(32)));
        assert_eq!(parse_netmask("0.0.0.0"), Some(Prefix(0)));
        assert_eq!(parse_netmask("255.0.255.0"), None);
        assert_eq!(parse_netmask("129"), None);
    }

    #[test]
    fn service_names() {
        assert_eq!(validate_service_name("docker.opensvc.com"), Ok(()));
        assert_eq!(validate_service_name("web_1-a"), Ok(()));
        let why = |name: &str| validate_service_name(name).unwrap_err();
        assert_eq!(why(".hidden"), "must start with a letter or a digit");
        assert!(why("a b").contains("only letters"), "{}", why("a b"));
        assert_eq!(why(""), "must be 1 to 64 characters");
    }
}
