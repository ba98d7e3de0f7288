//! `print config`: a parsed service written back as berth TOML. For an OpenSVC INI file this is
//! its TOML equivalent, every default spelled out; parsing the output gives the same service.

use std::fmt::Write as _;
use std::time::Duration;

use super::{ContainerSpec, Resource, ServiceConfig, Spec};

fn q(s: &str) -> String {
    // TOML basic strings share JSON's escapes for everything berth writes.
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|i| q(i.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

fn dur(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        q(&format!("{}s", d.as_secs()))
    } else {
        q(&format!("{}ms", d.as_millis()))
    }
}

fn kv(out: &mut String, key: &str, value: impl AsRef<str>) {
    let _ = writeln!(out, "{key} = {}", value.as_ref());
}

fn common(out: &mut String, r: &Resource) {
    let c = &r.common;
    if c.optional {
        kv(out, "optional", "true");
    }
    if c.disable {
        kv(out, "disable", "true");
    }
    if c.monitor {
        kv(out, "monitor", "true");
    }
    if c.restart > 0 {
        kv(out, "restart", c.restart.to_string());
    }
    if !c.tags.is_empty() {
        kv(out, "tags", list(&c.tags.iter().collect::<Vec<_>>()));
    }
    if let Some(s) = &c.subset {
        kv(out, "subset", q(s));
    }
    if c.standby {
        kv(out, "standby", "true");
    }
}

fn container(out: &mut String, c: &ContainerSpec) {
    kv(out, "type", q("docker"));
    kv(out, "run_image", q(&c.run_image));
    if let Some(cmd) = &c.run_command {
        kv(out, "run_command", list(cmd));
    }
    crate::run_args::emit(out, &c.run);
    kv(out, "start_timeout", dur(c.start_timeout));
    kv(out, "stop_timeout", dur(c.stop_timeout));
}

/// The service as berth TOML.
pub fn to_toml(svc: &ServiceConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# service {} (from {})",
        svc.name,
        svc.source.display()
    );
    let s = &svc.settings;
    out.push_str("[service]\n");
    if !s.nodes.is_empty() {
        kv(&mut out, "nodes", list(&s.nodes));
    }
    if let Some(v) = &s.autostart_node {
        kv(&mut out, "autostart_node", q(v));
    }
    if let Some(v) = &s.app {
        kv(&mut out, "app", q(v));
    }
    if let Some(v) = &s.env {
        kv(&mut out, "env", q(v));
    }
    if let Some(v) = &s.docker_data_dir {
        kv(&mut out, "docker_data_dir", q(&v.to_string_lossy()));
    }
    if !s.docker_daemon_args.is_empty() {
        kv(&mut out, "docker_daemon_args", list(&s.docker_daemon_args));
    }
    if s.orchestrate != super::Orchestrate::No {
        let name = super::Orchestrate::CHOICES
            .iter()
            .find(|c| c.1 == s.orchestrate);
        kv(&mut out, "orchestrate", q(name.map_or("no", |c| c.0)));
    }
    if s.monitor_action != super::MonitorAction::None {
        let name = super::MonitorAction::CHOICES
            .iter()
            .find(|c| c.1 == s.monitor_action);
        kv(&mut out, "monitor_action", q(name.map_or("none", |c| c.0)));
    }
    for r in &svc.resources {
        let _ = writeln!(out, "\n[{}.{}]", r.rid.kind, r.rid.index);
        match &r.spec {
            Spec::Ip(ip) => {
                kv(&mut out, "ipname", q(&ip.ipname));
                kv(&mut out, "ipdev", q(&ip.ipdev));
                if let Some(p) = ip.netmask {
                    kv(&mut out, "netmask", p.0.to_string());
                }
                if let Some(g) = ip.gateway {
                    kv(&mut out, "gateway", q(&g.to_string()));
                }
                kv(&mut out, "probe_timeout", dur(ip.probe_timeout));
                kv(&mut out, "garp_count", ip.garp_count.to_string());
                kv(&mut out, "garp_interval", dur(ip.garp_interval));
            }
            Spec::Vg(vg) => kv(&mut out, "vgname", q(&vg.vgname)),
            Spec::Fs(fs) => {
                kv(&mut out, "dev", q(&fs.dev.to_string_lossy()));
                kv(&mut out, "mnt", q(&fs.mnt.to_string_lossy()));
                kv(&mut out, "type", q(&fs.fs_type));
                if let Some(o) = &fs.mnt_opt {
                    kv(&mut out, "mnt_opt", q(o));
                }
                kv(&mut out, "stop_timeout", dur(fs.stop_timeout));
            }
            Spec::Container(c) => container(&mut out, c),
        }
        common(&mut out, r);
    }
    out
}
