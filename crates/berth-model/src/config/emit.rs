//! `print config`: a parsed service written back as berth TOML. For an OpenSVC INI file this is
//! its TOML equivalent, every default spelled out; parsing the output gives the same service.
//!
//! Each section is a view of the model serialised with serde + toml (which quotes and escapes
//! every value as TOML wants it); the sections are written in file order under a comment naming
//! the source.

use serde::Serialize;

use super::kinds::{container, fs, ip, sync, vg};
use super::raw::Format;
use super::service::{Common, MonitorAction, Orchestrate, Resource, ServiceConfig, Spec};

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct ServiceView<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    nodes: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    drpnodes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    autostart_node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_data_dir: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    docker_daemon_args: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_subnet: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    docker_registries: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry_creds: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    orchestrate: Option<Orchestrate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitor_action: Option<MonitorAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topology: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flex_min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flex_max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flex_target: Option<u32>,
}

#[derive(Serialize)]
struct CommonView<'a> {
    #[serde(skip_serializing_if = "is_false")]
    optional: bool,
    #[serde(skip_serializing_if = "is_false")]
    disable: bool,
    #[serde(skip_serializing_if = "is_false")]
    monitor: bool,
    #[serde(skip_serializing_if = "is_zero")]
    restart: u32,
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    tags: &'a std::collections::BTreeSet<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subset: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    standby: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    always_on: &'a [String],
}

#[derive(Serialize)]
#[serde(untagged)]
enum SpecView<'a> {
    Ip(ip::IpView<'a>),
    Vg(vg::VgView<'a>),
    Fs(fs::FsView<'a>),
    Flag(fs::FlagView),
    Container(container::ContainerView<'a>),
    Sync(sync::SyncView<'a>),
}

#[derive(Serialize)]
struct ResourceView<'a> {
    #[serde(flatten)]
    spec: SpecView<'a>,
    #[serde(flatten)]
    common: CommonView<'a>,
}

fn common(c: &Common) -> CommonView<'_> {
    CommonView {
        optional: c.optional,
        disable: c.disable,
        monitor: c.monitor,
        restart: c.restart,
        tags: &c.tags,
        subset: c.subset.as_deref(),
        standby: c.standby,
        always_on: &c.always_on,
    }
}

fn resource(r: &Resource) -> ResourceView<'_> {
    let spec = match &r.spec {
        Spec::Ip(s) => SpecView::Ip(ip::view(s)),
        Spec::Vg(s) => SpecView::Vg(vg::view(s)),
        Spec::Fs(s) => SpecView::Fs(fs::view(s)),
        Spec::Flag(s) => SpecView::Flag(fs::flag_view(s)),
        Spec::Container(s) => SpecView::Container(container::view(s)),
        Spec::Sync(s) => SpecView::Sync(sync::view(s)),
    };
    ResourceView {
        spec,
        common: common(&r.common),
    }
}

/// A TOML key: bare when it can be, else quoted (`"ipdev@n1"`).
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// `print config`: the file as written, in its own syntax (INI stays INI), with berth's
/// canonical keyword names; scoped keys and `{...}` references are kept as they are.
pub fn written(svc: &ServiceConfig) -> String {
    use super::raw::RawValue;
    let mut out = String::new();
    let ini = svc.format == Format::Ini;
    for (i, section) in svc.written.sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if ini {
            out.push_str(&format!("[{}]\n", section.name));
        } else {
            let header = match section.name.split_once('#') {
                Some((kind, id)) => format!("{kind}.{}", toml_key(id)),
                None => toml_key(&section.name),
            };
            out.push_str(&format!("[{header}]\n"));
        }
        for (key, value) in &section.entries {
            if ini {
                out.push_str(&format!("{key} = {}\n", value.shown()));
                continue;
            }
            let v = match value {
                RawValue::Str(s) | RawValue::Other(s) => toml::Value::String(s.clone()),
                RawValue::Int(n) => toml::Value::Integer(*n),
                RawValue::Float(x) => toml::Value::Float(*x),
                RawValue::Bool(b) => toml::Value::Boolean(*b),
                RawValue::List(l) => {
                    toml::Value::Array(l.iter().cloned().map(toml::Value::String).collect())
                }
            };
            out.push_str(&format!("{} = {v}\n", toml_key(key)));
        }
    }
    out
}

/// `print config --eval`: the service as berth TOML, as this node evaluates it (scopes chosen,
/// references replaced, every default spelled out).
pub fn to_toml(svc: &ServiceConfig) -> Result<String, toml::ser::Error> {
    let s = &svc.settings;
    let settings = ServiceView {
        nodes: &s.nodes,
        drpnodes: &s.drpnodes,
        id: s.id.as_deref(),
        comment: s.comment.as_deref(),
        autostart_node: s.autostart_node.as_deref(),
        app: s.app.as_deref(),
        env: s.env.as_deref(),
        docker_data_dir: s
            .docker_data_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        docker_daemon_args: &s.docker_daemon_args,
        docker_subnet: s.docker_subnet.map(|n| n.to_string()),
        docker_registries: s.docker_registries.iter().map(|r| r.to_string()).collect(),
        registry_ca: s.registry_ca.as_ref().map(|p| p.display().to_string()),
        registry_creds: s.registry_creds.as_ref().map(|p| p.display().to_string()),
        orchestrate: (s.orchestrate != Orchestrate::No).then_some(s.orchestrate),
        monitor_action: (s.monitor_action != MonitorAction::None).then_some(s.monitor_action),
        topology: s.topology.is_flex().then_some(s.topology.name()),
        flex_min: s.flex().map(|f| f.min),
        flex_max: s.flex().map(|f| f.max),
        flex_target: s.flex().map(|f| f.target),
    };
    let mut out = format!(
        "# service {} (from {})\n[service]\n",
        svc.name,
        svc.source.display()
    );
    out.push_str(&toml::to_string(&settings)?);
    for r in &svc.resources {
        out.push_str(&format!("\n[{}.{}]\n", r.rid.kind, r.rid.id));
        out.push_str(&toml::to_string(&resource(r))?);
    }
    Ok(out)
}
