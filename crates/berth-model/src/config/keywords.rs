//! The keyword layer: every keyword berth knows, typed and validated the same way for TOML and INI.
//! A keyword left over after a section is read is unknown: an error in TOML, a warning in INI.

use std::collections::HashMap;
use std::path::Path;

use super::error::{ConfigError, ConfigErrorKind, ConfigWarning, Diagnostics};
use super::kinds::container::Registry;
pub use super::kinds::ip::parse_netmask;
use super::kinds::{container, fs, ip, sync, vg};
use super::raw::{Format, RawFile, RawValue, SectionKind, Written};
pub use super::reader::ignored;
pub(crate) use super::reader::{Reader, Sink};
use super::service::{
    Common, Flex, MonitorAction, Orchestrate, Placement, Resource, ServiceConfig, ServiceSettings,
    Spec, Topology,
};
pub use super::value::parse_duration;
use crate::rid::{Kind, Rid};

/// Keywords every resource section takes.
pub const COMMON_KEYWORDS: &[&str] = &[
    "optional",
    "disable",
    "monitor",
    "restart",
    "tags",
    "subset",
    "standby",
    "always_on",
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
    "flex_min",
    "flex_max",
    "flex_target",
    "rollback",
    "priority",
];

/// Kind-specific keywords, mandatory ones first.
pub fn kind_keywords(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Ip => ip::KEYWORDS,
        Kind::Vg => vg::KEYWORDS,
        Kind::Fs => fs::KEYWORDS,
        Kind::Container => container::KEYWORDS,
        Kind::Sync => sync::KEYWORDS,
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
        always_on: e.ok(r.list("always_on")).unwrap_or_default(),
        always_on_here: false,
    }
}

/// `docker_registries`: `host:port` or `https://host:port` entries.
fn registries(r: &mut Reader<'_>) -> Result<Vec<Registry>, ConfigError> {
    let mut out: Vec<Registry> = Vec::new();
    for text in r.list("docker_registries")? {
        let reg = Registry::parse(&text)
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
    let flex = e
        .ok(r.choice("topology", &[("failover", false), ("flex", true)], false))
        .unwrap_or_default();
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
    let nodes = nodes.unwrap_or_default();
    let topology = flex_counts(r, e, warnings, flex, nodes.len());
    ServiceSettings {
        topology,
        nodes,
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
                Some(t) => super::stack::parse_subnet(&t)
                    .map(Some)
                    .map_err(|why| r.bad("docker_subnet", &RawValue::Str(t.clone()), &why)),
            }))
            .flatten(),
        docker_registries: e.ok(registries(r)).unwrap_or_default(),
        registry_ca: e.ok(r.abs_path("registry_ca")).flatten(),
        registry_creds: e.ok(container::registry_creds(r, warnings)).flatten(),
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

/// `flex_min`, `flex_max`, `flex_target` of a flex service (`n_nodes`: how many `nodes` it
/// has, members resolved), checked `min <= target <= max <= nodes`; on a failover service
/// they are warnings (OpenSVC ignores them there too).
fn flex_counts(
    r: &mut Reader<'_>,
    e: &mut Sink<'_>,
    warnings: &mut Vec<ConfigWarning>,
    flex: bool,
    n_nodes: usize,
) -> Topology {
    const MAX: i64 = 10_000;
    let mut count = |key| {
        e.ok(r.integer(key, 0, MAX))
            .flatten()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let (min, max, target) = (count("flex_min"), count("flex_max"), count("flex_target"));
    if !flex {
        for (key, v) in [
            ("flex_min", min),
            ("flex_max", max),
            ("flex_target", target),
        ] {
            if v.is_some() {
                warnings.push(r.warning(
                    key,
                    "accepted and ignored: the service is not flex (topology = failover)",
                ));
            }
        }
        return Topology::Failover;
    }
    let nodes = u32::try_from(n_nodes.max(1)).unwrap_or(u32::MAX);
    let min = min.unwrap_or(1);
    let max = max.unwrap_or(nodes);
    let target = target.unwrap_or(min);
    let bad = |key: &str, v: u32, why: String| r.bad(key, &RawValue::Int(i64::from(v)), &why);
    if max == 0 {
        e.0.push(bad(
            "flex_max",
            max,
            "a flex service runs at least one instance".into(),
        ));
    } else if n_nodes > 0 && max > nodes {
        e.0.push(bad(
            "flex_max",
            max,
            format!("more than the service's {nodes} nodes (one instance per node)"),
        ));
    } else if min > max {
        e.0.push(bad("flex_min", min, format!("more than flex_max ({max})")));
    } else if target < min || target > max {
        e.0.push(bad(
            "flex_target",
            target,
            format!("outside [flex_min, flex_max] = [{min}, {max}]"),
        ));
    }
    Topology::Flex(Flex { min, max, target })
}

/// Type and validate a raw file into a service; every problem goes to `diags`. `None` when
/// there was any error.
pub(crate) fn build(
    name: String,
    file: &Path,
    format: Format,
    raw: RawFile,
    written: Written,
    diags: &mut Diagnostics,
) -> Option<ServiceConfig> {
    let mut settings = None;
    let mut resources: Vec<Resource> = Vec::new();
    let mut first_line: HashMap<Rid, (usize, String)> = HashMap::new();
    for section in raw.sections.iter().filter(|s| !s.refused) {
        let Diagnostics { errors, warnings } = &mut *diags;
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
                    Kind::Ip => ip::read(&mut r, &mut sink).map(Spec::Ip),
                    Kind::Vg => vg::read(&mut r, &mut sink).map(Spec::Vg),
                    Kind::Fs => fs::read(&mut r, &mut sink).map(|f| match f {
                        fs::FsRead::Mounted(s) => Spec::Fs(s),
                        fs::FsRead::Flag(s) => Spec::Flag(s),
                    }),
                    Kind::Container => container::read(&mut r, &mut sink, warnings)
                        .map(|c| Spec::Container(Box::new(c))),
                    Kind::Sync => sync::read(&mut r, &mut sink).map(Spec::Sync),
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
    // A VG is active on one node at a time: it cannot belong to a flex service.
    if settings.as_ref().is_some_and(|s| s.topology.is_flex()) {
        for r in resources.iter().filter(|r| r.rid.kind == Kind::Vg) {
            let (line, section) = first_line.get(&r.rid).cloned().unwrap_or_default();
            diags.errors.push(ConfigError::at(
                file,
                Some(line),
                Some(&section),
                None,
                ConfigErrorKind::NotInFlex {
                    kind: r.rid.kind.to_string(),
                    why: "a volume group is active on one node at a time".to_string(),
                },
            ));
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
    use crate::config::kinds::ip::Prefix;
    use std::time::Duration;

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
