//! `svc SVC print resinfo` (each resource's keywords as berth reads them, with its status and
//! label now) and `svc SVC print devs` (the block devices the service's fs and vg resources
//! expose and use, found in sysfs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_model::config::{ServiceConfig, Spec};
use berth_model::status::ServiceStatus;
use serde::Serialize;

/// One `rid key value` row of `print resinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResInfo {
    pub rid: String,
    pub key: String,
    pub value: String,
}

/// A JSON value as one line of text: strings as they are, lists as words.
fn flat(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) if a.is_empty() => None,
        serde_json::Value::Array(a) => {
            Some(a.iter().filter_map(flat).collect::<Vec<_>>().join(" "))
        }
        serde_json::Value::Object(o) if o.is_empty() => None,
        other => Some(other.to_string()),
    }
}

/// Flatten `v` into `key` / `parent.key` rows.
fn rows(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    // A `Duration` serialises as `{secs, nanos}`: shown as `5s`, `1.5s`.
    if let serde_json::Value::Object(o) = v
        && o.len() == 2
        && let (Some(secs), Some(nanos)) = (
            o.get("secs").and_then(serde_json::Value::as_u64),
            o.get("nanos").and_then(serde_json::Value::as_u64),
        )
    {
        let d = std::time::Duration::from_secs(secs) + std::time::Duration::from_nanos(nanos);
        out.push((prefix.to_string(), format!("{}s", d.as_secs_f64())));
        return;
    }
    // The model's field name for the `type` keyword.
    let prefix = if prefix == "fs_type" { "type" } else { prefix };
    match v {
        serde_json::Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                rows(&key, v, out);
            }
        }
        other => {
            if let Some(s) = flat(other) {
                out.push((prefix.to_string(), s));
            }
        }
    }
}

/// The rows of `print resinfo`: per resource, `status` and `label` (from `st`), then the
/// keywords berth read, defaults included, common ones when not their default.
pub fn resinfo(svc: &ServiceConfig, st: &ServiceStatus) -> Vec<ResInfo> {
    let mut out = Vec::new();
    for r in &svc.resources {
        let rid = r.rid.to_string();
        let mut push = |key: &str, value: String| {
            out.push(ResInfo {
                rid: rid.clone(),
                key: key.to_string(),
                value,
            });
        };
        if let Some(rs) = st.resources.iter().find(|s| s.rid == r.rid) {
            push("status", rs.status.to_string());
            if !rs.label.is_empty() {
                push("label", rs.label.clone());
            }
        }
        let mut kv = Vec::new();
        if let Ok(v) = serde_json::to_value(&r.spec) {
            rows("", &v, &mut kv);
        }
        if let Ok(serde_json::Value::Object(common)) = serde_json::to_value(&r.common) {
            let defaults = serde_json::to_value(berth_model::config::Common::default()).ok();
            for (k, v) in common {
                if defaults.as_ref().and_then(|d| d.get(&k)) != Some(&v) {
                    rows(&k, &v, &mut kv);
                }
            }
        }
        for (k, v) in kv {
            if k != "kind" {
                push(&k, v);
            }
        }
    }
    out
}

/// Text form: `rid  key  value` columns under the service name.
pub fn render_resinfo(svc: &str, rows: &[ResInfo]) -> String {
    let w_rid = rows.iter().map(|r| r.rid.len()).max().unwrap_or(0);
    let w_key = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let mut s = format!("{svc}\n");
    for r in rows {
        s.push_str(&format!(
            "{:<w_rid$}  {:<w_key$}  {}\n",
            r.rid, r.key, r.value
        ));
    }
    s
}

/// One device of `print devs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dev {
    pub rid: String,
    /// `exposed`: what the resource makes (a VG's logical volumes); `sub`: what it uses directly
    /// (an fs's device, its loop device, a VG's physical volumes); `base`: the devices at the
    /// bottom of the stack.
    pub role: &'static str,
    pub dev: String,
}

const SYS_BLOCK: &str = "/sys/class/block";

/// The kernel's name of a block device node (`/dev/vgweb/root` -> `dm-0`).
fn kname(dev: &Path) -> Option<String> {
    let real = std::fs::canonicalize(dev).ok()?;
    let name = real.file_name()?.to_str()?.to_string();
    Path::new(SYS_BLOCK).join(&name).exists().then_some(name)
}

/// The devices under a block device (`slaves/`), recursively, bottom ones only.
fn bases(name: &str, seen: &mut BTreeSet<String>) -> Vec<String> {
    if !seen.insert(name.to_string()) {
        return Vec::new();
    }
    let dir = Path::new(SYS_BLOCK).join(name).join("slaves");
    let mut under: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    under.sort();
    if under.is_empty() {
        return vec![name.to_string()];
    }
    under.iter().flat_map(|u| bases(u, seen)).collect()
}

fn dev_path(name: &str) -> String {
    format!("/dev/{name}")
}

/// The devices of the service's fs and vg resources, as the host has them now (a VG's PVs from
/// `pvs`: an LVM failure is logged and leaves them out).
pub fn devs(ctx: &berth_drivers::Ctx<'_>) -> Vec<Dev> {
    let svc = ctx.svc;
    let mut out = Vec::new();
    for r in &svc.resources {
        let rid = r.rid.to_string();
        let mut push = |role, dev: String| {
            let d = Dev {
                rid: rid.clone(),
                role,
                dev,
            };
            if !out.contains(&d) {
                out.push(d);
            }
        };
        let mut stack: Vec<String> = Vec::new();
        match &r.spec {
            Spec::Fs(fs) => {
                push("sub", fs.dev.display().to_string());
                if fs.dev.is_file() {
                    for lo in berth_drivers::fs::loopdev::backed_by(&fs.dev) {
                        push("sub", lo.path.display().to_string());
                        stack.extend(
                            lo.path
                                .file_name()
                                .and_then(|n| n.to_str())
                                .map(String::from),
                        );
                    }
                } else if let Some(k) = kname(&fs.dev) {
                    stack.push(k);
                }
            }
            Spec::Vg(vg) => {
                match berth_drivers::vg::pvs(ctx, vg) {
                    Ok(pvs) => {
                        for pv in pvs {
                            push("sub", pv.display().to_string());
                            stack.extend(kname(&pv));
                        }
                    }
                    Err(e) => tracing::warn!("{rid}: cannot list the physical volumes: {e}"),
                }
                let dir = PathBuf::from("/dev").join(&vg.vgname);
                let mut lvs: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                lvs.sort();
                for lv in lvs {
                    if kname(&lv).is_none() {
                        continue;
                    }
                    push("exposed", lv.display().to_string());
                }
            }
            _ => continue,
        }
        let mut seen = BTreeSet::new();
        for k in stack {
            for b in bases(&k, &mut seen) {
                push("base", dev_path(&b));
            }
        }
    }
    out
}

/// Text form: `rid  role  device`.
pub fn render_devs(svc: &str, devs: &[Dev]) -> String {
    let w_rid = devs.iter().map(|d| d.rid.len()).max().unwrap_or(0);
    let mut s = format!("{svc}\n");
    for d in devs {
        s.push_str(&format!("{:<w_rid$}  {:<7}  {}\n", d.rid, d.role, d.dev));
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn resinfo_rows_are_the_keywords_as_read() {
        let svc = ServiceConfig::parse(
            Path::new("/x/web.toml"),
            "[fs.1]\ndev = \"/x.img\"\nmnt = \"/srv/x\"\ntype = \"ext4\"\ndisable = true\n\
             tags = [\"a\", \"b\"]\n[vg.1]\nvgname = \"v\"\n",
        )
        .unwrap();
        let st = ServiceStatus::broken("web".to_string(), "x".to_string());
        let rows = resinfo(&svc, &st);
        let find = |rid: &str, key: &str| {
            rows.iter()
                .find(|r| r.rid == rid && r.key == key)
                .map(|r| r.value.clone())
        };
        assert_eq!(find("fs#1", "mnt").as_deref(), Some("/srv/x"));
        assert_eq!(find("fs#1", "disable").as_deref(), Some("true"));
        assert_eq!(find("fs#1", "tags").as_deref(), Some("a b"));
        assert_eq!(find("vg#1", "vgname").as_deref(), Some("v"));
        assert_eq!(find("fs#1", "type").as_deref(), Some("ext4"));
        assert_eq!(find("fs#1", "stop_timeout").as_deref(), Some("5s"));
        // Common keywords at their default are left out.
        assert_eq!(find("vg#1", "optional"), None);
        let text = render_resinfo("web", &rows);
        assert!(text.starts_with("web\nfs#1  "), "{text}");
    }
}
