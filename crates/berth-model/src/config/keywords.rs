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

/// Keywords every resource section takes.
pub const COMMON_KEYWORDS: &[&str] = &[
    "optional", "disable", "monitor", "restart", "tags", "subset", "standby",
];

/// Service keywords (`[service]` / `[DEFAULT]`).
pub const SERVICE_KEYWORDS: &[&str] = &[
    "nodes",
    "drpnodes",
    "autostart_node",
    "app",
    "env",
    "id",
    "comment",
    "docker_data_dir",
    "docker_daemon_args",
    "docker_subnet",
    "docker_registries",
    "registry_ca",
    "registry_creds",
    "orchestrate",
    "monitor_action",
    "placement",
    "topology",
    "rollback",
    "priority",
];

/// Kind-specific keywords, mandatory ones first.
pub fn kind_keywords(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Ip => &[
            "ipname",
            "ipdev",
            "type",
            "netmask",
            "gateway",
            "probe_timeout",
            "garp_count",
            "garp_interval",
            "netns",
            "mode",
            "nsdev",
            "container_rid",
        ],
        Kind::Vg => &["vgname", "type"],
        Kind::Fs => &["dev", "mnt", "type", "mnt_opt", "stop_timeout"],
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
    fn new(
        file: &'a Path,
        format: Format,
        section: &'a RawSection,
        errors: &mut Vec<ConfigError>,
    ) -> Self {
        let mut entries: HashMap<&str, &RawEntry> = HashMap::new();
        for e in &section.entries {
            if let Some(first) = entries.get(e.key.as_str()) {
                errors.push(ConfigError::at(
                    file,
                    Some(e.line),
                    Some(&section.name),
                    Some(e.written()),
                    ConfigErrorKind::Syntax(format!(
                        "key given twice (first on line {})",
                        first.line
                    )),
                ));
                continue;
            }
            entries.insert(e.key.as_str(), e);
        }
        Reader {
            file,
            format,
            section,
            entries,
            used: BTreeSet::new(),
        }
    }

    /// An error about `key` in this section.
    pub(crate) fn error(&self, key: &str, kind: ConfigErrorKind) -> ConfigError {
        let (line, shown) = self
            .entries
            .get(key)
            .map_or((self.section.line, key), |e| (e.line, e.written()));
        ConfigError::at(
            self.file,
            Some(line),
            Some(&self.section.name),
            Some(shown),
            kind,
        )
    }

    /// A warning about `key` in this section.
    pub(crate) fn warning(&self, key: &str, message: &str) -> ConfigWarning {
        let (line, shown) = self
            .entries
            .get(key)
            .map_or((self.section.line, key), |e| (e.line, e.written()));
        ConfigWarning {
            file: self.file.to_path_buf(),
            line,
            section: self.section.name.clone(),
            key: Some(shown.to_string()),
            message: message.to_string(),
        }
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

    /// Close the section: keywords berth accepts and ignores are warnings naming them; unknown
    /// keys are errors (TOML) or warnings (INI).
    fn finish(
        self,
        known: &[&str],
        kind: Option<Kind>,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigWarning>,
    ) {
        for e in self.leftovers() {
            let warn = |message: String| ConfigWarning {
                file: self.file.to_path_buf(),
                line: e.line,
                section: self.section.name.clone(),
                key: Some(e.written().to_string()),
                message,
            };
            if let Some(why) = ignored(kind, &e.key) {
                warnings.push(warn(format!("accepted and ignored: {why}")));
                continue;
            }
            match self.format {
                Format::Toml => errors.push(self.error(
                    &e.key,
                    ConfigErrorKind::UnknownKey {
                        known: known.join(", "),
                    },
                )),
                Format::Ini => {
                    warnings.push(warn("keyword not known to berth: ignored".to_string()))
                }
            }
        }
    }
}

/// Keywords OpenSVC users write that berth accepts and does not act on, with the reason
/// (`kind` `None`: the service section).
pub fn ignored(kind: Option<Kind>, key: &str) -> Option<&'static str> {
    const TRIGGERS: &[&str] = &[
        "start",
        "stop",
        "provision",
        "unprovision",
        "run",
        "sync_nodes",
    ];
    if let Some(rest) = key
        .strip_prefix("blocking_pre_")
        .or_else(|| key.strip_prefix("blocking_post_"))
        .or_else(|| key.strip_prefix("pre_"))
        .or_else(|| key.strip_prefix("post_"))
        && TRIGGERS.contains(&rest)
    {
        return Some("berth runs no triggers");
    }
    let why = match (kind, key) {
        (None, "priority") => "berth starts each service on its own, with no priority among them",
        (None, "parallel") => "berth starts the resources of a service one at a time",
        (None, "create_pg")
        | (None, "pg_cpus")
        | (None, "pg_mems")
        | (None, "pg_cpu_shares")
        | (None, "pg_cpu_quota")
        | (None, "pg_mem_limit")
        | (None, "pg_vmem_limit")
        | (None, "pg_mem_oom_control")
        | (None, "pg_mem_swappiness")
        | (None, "pg_blkio_weight") => "berth makes no process groups (use the container limits)",
        (None, "flex_primary")
        | (None, "flex_min")
        | (None, "flex_max")
        | (None, "flex_target")
        | (None, "flex_min_nodes")
        | (None, "flex_max_nodes") => "berth runs failover services only",
        (None, "status_schedule")
        | (None, "comp_schedule")
        | (None, "resinfo_schedule")
        | (None, "monitor_schedule")
        | (None, "sync_schedule")
        | (None, "run_schedule")
        | (None, "push_schedule") => "svcd checks every service on its own schedule",
        (None, "provision")
        | (None, "unprovision")
        | (None, "provision_timeout")
        | (None, "unprovision_timeout") => "berth does not provision",
        (None, "stonith")
        | (None, "hard_affinity")
        | (None, "hard_anti_affinity")
        | (None, "soft_affinity")
        | (None, "soft_anti_affinity")
        | (None, "affinity")
        | (None, "anti_affinity")
        | (None, "parents")
        | (None, "children") => "berth places services by nodes order only",
        (None, _) => return None,
        (Some(_), "always_on") => {
            "berth has no always_on (deprecated by OpenSVC v2): use standby = true"
        }
        (Some(_), "shared") => "berth has no shared resources between services",
        (Some(_), "provision")
        | (Some(_), "unprovision")
        | (Some(_), "provision_requires")
        | (Some(_), "unprovision_requires") => "berth does not provision",
        (Some(_), "start_requires")
        | (Some(_), "stop_requires")
        | (Some(_), "sync_requires")
        | (Some(_), "run_requires") => "berth orders resources by kind only",
        (Some(_), "encap")
        | (Some(_), "restart_delay")
        | (Some(_), "no_preempt_abort")
        | (Some(_), "scsireserv")
        | (Some(_), "prkey")
        | (Some(_), "comment") => "berth does not use it",
        (Some(Kind::Fs), "vg") | (Some(Kind::Fs), "size") | (Some(Kind::Fs), "mkfs_opt") => {
            "berth does not provision: the filesystem must exist"
        }
        (Some(Kind::Fs), "stat_timeout")
        | (Some(Kind::Fs), "check_read")
        | (Some(Kind::Fs), "promote_rw")
        | (Some(Kind::Fs), "zone") => "berth does not use it",
        (Some(Kind::Vg), "pvs") | (Some(Kind::Vg), "options") => {
            "berth does not provision: the volume group must exist"
        }
        (Some(Kind::Container), "name") => "berth names the container <svc>.container.<rid id>",
        (Some(Kind::Container), "osvc_root_path")
        | (Some(Kind::Container), "guestos")
        | (Some(Kind::Container), "promote_rw")
        | (Some(Kind::Container), "log_outputs") => "berth does not use it",
        (Some(Kind::Ip), "check_carrier")
        | (Some(Kind::Ip), "alias")
        | (Some(Kind::Ip), "expose")
        | (Some(Kind::Ip), "network")
        | (Some(Kind::Ip), "provisioner") => "berth does not use it",
        _ => return None,
    };
    Some(why)
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

/// Collects the errors of one section, so one bad keyword does not hide the next.
pub(crate) struct Sink<'e>(pub(crate) &'e mut Vec<ConfigError>);

impl Sink<'_> {
    /// The value, or `None` with the error recorded.
    pub(crate) fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
}

fn read_common(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Common {
    Common {
        optional: e.ok(r.boolean("optional", false)).unwrap_or_default(),
        disable: e.ok(r.boolean("disable", false)).unwrap_or_default(),
        monitor: e.ok(r.boolean("monitor", false)).unwrap_or_default(),
        restart: e
            .ok(r.integer("restart", 0, 1000))
            .flatten()
            .map_or(0, |n| u32::try_from(n).unwrap_or(1000)),
        tags: e
            .ok(r.list("tags"))
            .unwrap_or_default()
            .into_iter()
            .collect(),
        subset: e.ok(r.string("subset")).flatten(),
        standby: e.ok(r.boolean("standby", false)).unwrap_or_default(),
    }
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

fn ipname(r: &mut Reader<'_>) -> Result<String, ConfigError> {
    let ipname = r.required("ipname")?;
    if ipname.parse::<IpAddr>().is_err() && !is_hostname(&ipname) {
        return Err(r.bad(
            "ipname",
            &RawValue::Str(ipname),
            "expected an IPv4 or IPv6 address, or a host name (a name is not all digits)",
        ));
    }
    Ok(ipname)
}

fn netmask(r: &mut Reader<'_>, ipname: Option<&str>) -> Result<Option<Prefix>, ConfigError> {
    let expected = "expected a prefix length (0-128) or a dotted mask";
    let netmask = match r.take("netmask") {
        None => None,
        Some(v @ RawValue::Int(n)) => match u8::try_from(*n) {
            Ok(n) if n <= 128 => Some(Prefix(n)),
            _ => return Err(r.bad("netmask", v, expected)),
        },
        Some(v @ RawValue::Str(s)) => {
            Some(parse_netmask(s).ok_or_else(|| r.bad("netmask", v, expected))?)
        }
        Some(v) => return Err(r.bad("netmask", v, expected)),
    };
    if let (Some(Prefix(p)), Some(Ok(IpAddr::V4(_)))) = (netmask, ipname.map(str::parse::<IpAddr>))
        && p > 32
    {
        return Err(r.bad(
            "netmask",
            &RawValue::Int(i64::from(p)),
            "an IPv4 prefix is at most 32",
        ));
    }
    Ok(netmask)
}

fn read_ip(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<IpSpec> {
    // `type` is checked against `compat::driver_types` before; this reads host or netns.
    let netns = e.ok(read_ip_netns(r));
    let ipname = e.ok(ipname(r));
    let ipdev = e.ok(r.required("ipdev").and_then(|d| {
        if is_ifname(&d) {
            Ok(d)
        } else {
            Err(r.bad("ipdev", &RawValue::Str(d), "expected an interface name"))
        }
    }));
    let netmask = e.ok(netmask(r, ipname.as_deref()));
    let gateway = e.ok(r.string("gateway").and_then(|g| match g {
        None => Ok(None),
        Some(g) => g.parse().map(Some).map_err(|_| {
            r.bad(
                "gateway",
                &RawValue::Str(g.clone()),
                "expected an IP address",
            )
        }),
    }));
    let probe_timeout = e.ok(r.duration("probe_timeout", Duration::from_millis(300)));
    let garp_count = e.ok(r.integer("garp_count", 0, 100));
    let garp_interval = e.ok(r.duration("garp_interval", Duration::from_millis(100)));
    Some(IpSpec {
        ipname: ipname?,
        ipdev: ipdev?,
        netmask: netmask?,
        gateway: gateway?,
        probe_timeout: probe_timeout?,
        garp_count: garp_count?.map_or(3, |n| u32::try_from(n).unwrap_or(100)),
        garp_interval: garp_interval?,
        netns: netns?,
    })
}

fn read_fs(r: &mut Reader<'_>, e: &mut Sink<'_>) -> Option<FsSpec> {
    let dev = e.ok(r.required("dev"));
    let mnt = e.ok(r.abs_path("mnt").and_then(|m| match m {
        None => Err(r.error("mnt", ConfigErrorKind::MissingKey)),
        Some(m) if m == Path::new("/") => Err(r.bad(
            "mnt",
            &RawValue::Str("/".into()),
            "berth will not mount over /",
        )),
        Some(m) => Ok(m),
    }));
    let fs_type = e.ok(r.required("type"));
    // `mnt_opts` (the seed's other spelling) is folded into `mnt_opt` by the compat layer.
    let mnt_opt = e.ok(r.string("mnt_opt"));
    let stop_timeout = e.ok(r.duration("stop_timeout", Duration::from_secs(5)));
    Some(FsSpec {
        dev: PathBuf::from(dev?),
        mnt: mnt?,
        fs_type: fs_type?,
        mnt_opt: mnt_opt?,
        stop_timeout: stop_timeout?,
    })
}

/// A container's `netns`: another container's namespace, or OpenSVC's `host` (the node's).
enum Netns {
    Container(Rid),
    Host,
}

fn container_links(r: &mut Reader<'_>) -> Result<(Option<Netns>, Vec<Rid>), ConfigError> {
    let netns = match r.string("netns")? {
        None => None,
        Some(t) if t.trim() == "host" => Some(Netns::Host),
        Some(t) => match t.trim().parse::<Rid>() {
            Ok(rid) if rid.kind == Kind::Container => Some(Netns::Container(rid)),
            _ => {
                return Err(r.bad(
                    "netns",
                    &RawValue::Str(t),
                    "expected host or the rid of another container of the service (container#0)",
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
    Ok((netns, start_requires))
}

fn read_container(
    r: &mut Reader<'_>,
    e: &mut Sink<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<ContainerSpec> {
    // `type` is checked against `compat::driver_types` before: docker.
    let _ = r.string("type");
    // OpenSVC's `detach` and `rm`: berth always runs detached and keeps the container.
    if e.ok(r.boolean("detach", true)) == Some(false) {
        warnings.push(r.warning(
            "detach",
            "accepted and ignored: berth always runs containers detached",
        ));
    }
    if e.ok(r.boolean("rm", false)) == Some(true) {
        warnings.push(r.warning(
            "rm",
            "accepted and ignored: berth keeps the stopped container to report its status \
             (and creates it again when its configuration changes)",
        ));
    }
    let run_image = e.ok(r.required("run_image"));
    let run_command = e.ok(r.words("run_command"));
    let run = e.ok(crate::run_args::read(r));
    let start_timeout = e.ok(r.duration("start_timeout", Duration::from_secs(30)));
    let stop_timeout = e.ok(r.duration("stop_timeout", Duration::from_secs(10)));
    let links = e.ok(container_links(r));
    let image_pull_policy = e.ok(r.choice(
        "image_pull_policy",
        super::PullPolicy::CHOICES,
        super::PullPolicy::Once,
    ));
    let pull_timeout = e.ok(r.duration("pull_timeout", Duration::from_secs(120)));
    let registry_creds = e.ok(registry_creds(r, warnings));
    let (netns, start_requires) = links?;
    let mut run = run?;
    let netns = match netns {
        // `netns = host` is OpenSVC's spelling of `--net host`.
        Some(Netns::Host) => match run.network.as_deref() {
            None | Some("host") => {
                run.network = Some("host".into());
                None
            }
            Some(other) => {
                e.0.push(r.bad(
                    "netns",
                    &RawValue::Str("host".into()),
                    &format!("the node's namespace, while network = {other}: give one of them"),
                ));
                return None;
            }
        },
        Some(Netns::Container(rid)) => Some(rid),
        None => None,
    };
    Some(ContainerSpec {
        run_image: run_image?,
        run_command: run_command?,
        run,
        start_timeout: start_timeout?,
        stop_timeout: stop_timeout?,
        netns,
        start_requires,
        image_pull_policy: image_pull_policy?,
        pull_timeout: pull_timeout?,
        registry_creds: registry_creds?,
    })
}

/// `registry_creds`: the path of a docker config.json. OpenSVC's names a secret object instead:
/// in an INI file a value that is not a path is a warning, and ignored.
fn registry_creds(
    r: &mut Reader<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<PathBuf>, ConfigError> {
    if r.format == Format::Ini
        && let Some(RawValue::Str(v)) = r.entries.get("registry_creds").map(|e| &e.value)
        && !v.trim_start().starts_with('/')
    {
        let _ = r.take("registry_creds");
        warnings.push(r.warning(
            "registry_creds",
            "accepted and ignored: OpenSVC's names a secret object; berth takes the path of a \
             docker config.json",
        ));
        return Ok(None);
    }
    r.abs_path("registry_creds")
}

/// `docker_registries`: `host:port` or `https://host:port` entries.
fn registries(r: &mut Reader<'_>) -> Result<Vec<super::Registry>, ConfigError> {
    let mut out: Vec<super::Registry> = Vec::new();
    for text in r.list("docker_registries")? {
        let reg = super::Registry::parse(&text)
            .map_err(|why| r.bad("docker_registries", &RawValue::Str(text.clone()), &why))?;
        if !out.contains(&reg) {
            out.push(reg);
        }
    }
    Ok(out)
}

fn read_service(
    r: &mut Reader<'_>,
    e: &mut Sink<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> ServiceSettings {
    // `service_type` and `container_data_dir` are folded into `env` and `docker_data_dir`
    // by the compat layer.
    let topology = e.ok(r.choice("topology", &[("failover", true), ("flex", false)], true));
    if topology == Some(false) {
        e.0.push(r.bad(
            "topology",
            &RawValue::Str("flex".into()),
            "berth runs failover services only (one node at a time): flex is not supported yet",
        ));
    }
    if e.ok(r.boolean("rollback", true)) == Some(false) {
        warnings.push(r.warning(
            "rollback",
            "accepted and ignored: berth always stops what a failed start started",
        ));
    }
    if let Some(Some(_)) = e.ok(r.integer("priority", 0, 100_000)) {
        warnings.push(r.warning(
            "priority",
            "accepted and ignored: berth starts each service on its own",
        ));
    }
    let nodes = e.ok(r.list("nodes").and_then(|nodes| {
        match nodes.iter().find(|n| n.contains(['*', '?', '[', '{'])) {
            Some(all) if nodes.len() == 1 && (all == "*" || all == "{clusternodes}") => Err(r.bad(
                "nodes",
                &RawValue::Str(all.clone()),
                "stands for the cluster's members, which this load does not know (no \
                     [cluster] in node.toml, or svcd has not joined yet): list the nodes",
            )),
            Some(glob) => Err(r.bad(
                "nodes",
                &RawValue::Str(glob.clone()),
                "berth takes node names, \"*\" (every member of the cluster) or \
                 {clusternodes}, not patterns: list the nodes",
            )),
            None => Ok(nodes),
        }
    }));
    ServiceSettings {
        nodes: nodes.unwrap_or_default(),
        drpnodes: e.ok(r.list("drpnodes")).unwrap_or_default(),
        autostart_node: e.ok(r.string("autostart_node")).flatten(),
        app: e.ok(r.string("app")).flatten(),
        env: e.ok(r.string("env")).flatten(),
        id: e.ok(r.string("id")).flatten(),
        comment: e.ok(r.string("comment")).flatten(),
        docker_data_dir: e.ok(r.abs_path("docker_data_dir")).flatten(),
        docker_daemon_args: e
            .ok(r.words("docker_daemon_args"))
            .flatten()
            .unwrap_or_default(),
        docker_subnet: e
            .ok(r.string("docker_subnet").and_then(|t| match t {
                None => Ok(None),
                Some(t) => crate::config::stack::parse_subnet(&t)
                    .map(Some)
                    .map_err(|why| r.bad("docker_subnet", &RawValue::Str(t.clone()), &why)),
            }))
            .flatten(),
        docker_registries: e.ok(registries(r)).unwrap_or_default(),
        registry_ca: e.ok(r.abs_path("registry_ca")).flatten(),
        registry_creds: e.ok(registry_creds(r, warnings)).flatten(),
        orchestrate: e
            .ok(r.choice("orchestrate", Orchestrate::CHOICES, Orchestrate::No))
            .unwrap_or_default(),
        monitor_action: e
            .ok(r.choice(
                "monitor_action",
                MonitorAction::CHOICES,
                MonitorAction::None,
            ))
            .unwrap_or_default(),
        placement: e
            .ok(r.choice("placement", Placement::CHOICES, Placement::NodesOrder))
            .unwrap_or_default(),
    }
}

/// Type and validate a raw file into a service; every problem goes to `diags`. `None` when
/// there was any error.
pub(crate) fn build(
    name: String,
    file: &Path,
    format: Format,
    raw: RawFile,
    written: super::compat::Written,
    diags: &mut super::Diagnostics,
) -> Option<ServiceConfig> {
    let mut settings = None;
    let mut resources: Vec<Resource> = Vec::new();
    let mut first_line: HashMap<Rid, (usize, String)> = HashMap::new();
    for section in raw.sections.iter().filter(|s| !s.refused) {
        let super::Diagnostics { errors, warnings } = &mut *diags;
        let mut r = Reader::new(file, format, section, errors);
        match section.kind {
            SectionKind::Env => {
                // Keys for `{env.KEY}` references (already evaluated): nothing to type.
                for e in &section.entries {
                    r.used.insert(e.key.as_str());
                }
            }
            SectionKind::Service => {
                if settings.is_some() {
                    errors.push(ConfigError::at(
                        file,
                        Some(section.line),
                        Some(&section.name),
                        None,
                        ConfigErrorKind::Syntax("the service section is given twice".to_string()),
                    ));
                    continue;
                }
                let mut sink = Sink(&mut *errors);
                settings = Some(read_service(&mut r, &mut sink, warnings));
                r.finish(SERVICE_KEYWORDS, None, errors, warnings);
            }
            SectionKind::Disk(_) => {
                // Turned into vg sections (or refused) by the compat layer.
            }
            SectionKind::Resource(rid) => {
                if let Some((first, first_name)) = first_line.get(&rid) {
                    errors.push(ConfigError::at(
                        file,
                        Some(section.line),
                        Some(&section.name),
                        None,
                        ConfigErrorKind::DuplicateRid {
                            rid: if *first_name == section.name {
                                rid.to_string()
                            } else {
                                format!("{rid} ([{first_name}] is {rid} too)")
                            },
                            first_line: *first,
                        },
                    ));
                    continue;
                }
                first_line.insert(rid, (section.line, section.name.clone()));
                let mut sink = Sink(&mut *errors);
                let common = read_common(&mut r, &mut sink);
                let spec = match rid.kind {
                    Kind::Ip => read_ip(&mut r, &mut sink).map(Spec::Ip),
                    Kind::Vg => {
                        let _ = r.string("type");
                        sink.ok(r.required("vgname"))
                            .map(|vgname| Spec::Vg(VgSpec { vgname }))
                    }
                    Kind::Fs => read_fs(&mut r, &mut sink).map(Spec::Fs),
                    Kind::Container => read_container(&mut r, &mut sink, warnings)
                        .map(|c| Spec::Container(Box::new(c))),
                };
                let known: Vec<&str> = kind_keywords(rid.kind)
                    .iter()
                    .chain(COMMON_KEYWORDS)
                    .copied()
                    .collect();
                r.finish(&known, Some(rid.kind), errors, warnings);
                if let Some(spec) = spec {
                    resources.push(Resource { rid, common, spec });
                }
            }
        }
    }
    let svc = ServiceConfig {
        name,
        source: file.to_path_buf(),
        format,
        settings: settings.unwrap_or_default(),
        resources,
        warnings: Vec::new(),
        written,
    };
    if let Err(e) = super::stack::check(&svc, &raw.sections) {
        diags.errors.push(e);
    }
    if !diags.errors.is_empty() {
        return None;
    }
    Some(svc)
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
