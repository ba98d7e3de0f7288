//! OpenSVC's ways of writing a service file, turned into berth's before the keyword layer reads
//! it: keyword aliases (v1.8, v2, v3 names), `[disk#N] type = vg`, node scoping (`key@node`,
//! `key@nodes`, `key@drpnodes`, `key@encapnodes`), driver types berth does not have, and `{...}`
//! references. The meaning follows OpenSVC's keyword references (v2 `svcdict.py` and its drivers'
//! keyword tables, v3 om3 `core/object` and `drivers/*/manifest.go`); the code is berth's.
//!
//! The same file is on every node of a cluster: scoping and `{nodename}` are resolved for the node
//! the load runs on ([`LoadContext`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub use super::alias::Alias;
use super::alias::alias;
use super::error::{ConfigError, ConfigErrorKind, ConfigWarning, Diagnostics};
use super::keywords::{COMMON_KEYWORDS, SERVICE_KEYWORDS, kind_keywords};
use super::kinds::fs::FS_DRIVER_TYPES;
use super::kinds::{container, fs, ip, sync, vg};
use super::raw::{Format, RawEntry, RawFile, RawSection, RawValue, SectionKind};
pub use super::raw::{Written, WrittenSection};
use crate::rid::{Kind, Rid, RidId};

/// What a load knows of the node it runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadContext {
    /// This node's name as berth resolves it (`BERTH_NODENAME`, node.toml, the hostname); `None`
    /// where it is not known (then no `key@node` applies and `{nodename}` is an error).
    pub nodename: Option<String>,
    /// The cluster's members in the order they joined, as this node's svcd last saw them;
    /// `None` where not known (no cluster, or svcd never joined). `nodes = "*"` (or
    /// `{clusternodes}`) and `{clusternodes}` resolve from them.
    pub members: Option<Vec<String>>,
}

impl LoadContext {
    /// A load on node `nodename`.
    pub fn node(nodename: &str) -> Self {
        LoadContext {
            nodename: Some(nodename.to_string()),
            members: None,
        }
    }
}

/// Whether a `nodes` value stands for every member: `*` or `{clusternodes}`, alone.
fn means_members(v: &RawValue) -> bool {
    matches!(words(v).as_slice(), [w] if w == "*" || w == "{clusternodes}")
}

/// The aliases of the service section (`[DEFAULT]`); each kind's are its module's `ALIASES`
/// ([`aliases`]). `print config` writes the canonical names.
pub const ALIASES: &[Alias] = &[
    alias(
        None,
        "service_type",
        "env",
        "v1.8 name; v2 and v3 alias of env",
    ),
    alias(None, "container_data_dir", "docker_data_dir", "v2 name"),
    alias(
        None,
        "cluster_type",
        "topology",
        "v1.8 name; v2 and v3 alias",
    ),
    alias(None, "flex_min_nodes", "flex_min", "v2 name; v3 alias"),
    alias(None, "flex_max_nodes", "flex_max", "v2 name; v3 alias"),
];

/// The aliases of `kind`'s sections (`None`: the service section's).
pub fn aliases(kind: Option<Kind>) -> &'static [Alias] {
    match kind {
        None => ALIASES,
        Some(Kind::Ip) => ip::ALIASES,
        Some(Kind::Vg) => vg::ALIASES,
        Some(Kind::Fs) => fs::ALIASES,
        Some(Kind::Container) => container::ALIASES,
        Some(Kind::Sync) => sync::ALIASES,
    }
}

/// berth's name for `key` in a section of `kind`.
pub fn canonical(kind: Option<Kind>, key: &str) -> &str {
    aliases(kind)
        .iter()
        .find(|a| a.kind == kind && a.alias == key)
        .map_or(key, |a| a.canonical)
}

/// The `type` values berth runs, per kind. The first is the default when `type` is absent
/// (fs has no default: its `type` is the filesystem type, any but [`FS_DRIVER_TYPES`]).
/// Each kind's are its module's `DRIVER_TYPES`, read by the kind's reader.
pub fn driver_types(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Ip => ip::DRIVER_TYPES,
        Kind::Vg => vg::DRIVER_TYPES,
        Kind::Fs => fs::DRIVER_TYPES,
        Kind::Container => container::DRIVER_TYPES,
        Kind::Sync => sync::DRIVER_TYPES,
    }
}

/// Scope suffixes OpenSVC knows beside node names.
const SCOPE_WORDS: &[&str] = &[
    "nodes",
    "drpnodes",
    "encapnodes",
    "flex_primary",
    "drp_flex_primary",
];

/// Keywords that decide scoping, so cannot be scoped by themselves (`nodes@nodes`); the scopes
/// are decided by their unscoped values.
const UNSCOPABLE: &[&str] = &["nodes", "drpnodes", "encapnodes"];

/// OpenSVC's resource kinds, the `<kind>` of a service's `[<kind>#<n>]` sections (berth runs
/// some of them; a section of another one is a warning, of a kind outside this list an error).
pub const OPENSVC_KINDS: [&str; 14] = [
    "app",
    "certificate",
    "container",
    "disk",
    "expose",
    "fs",
    "ip",
    "route",
    "share",
    "subset",
    "sync",
    "task",
    "vhost",
    "volume",
];

/// The candidate nearest to `word`, when it is near enough to be a typo of it (an edit distance
/// of at most a third of the longer word, and at least one); of two as near, the one sharing
/// the longer start (Jaro-Winkler).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let c_lower = c.to_ascii_lowercase();
            let distance = strsim::damerau_levenshtein(&lower, &c_lower);
            (distance, strsim::jaro_winkler(&lower, &c_lower), c)
        })
        .filter(|(d, _, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

fn section_kind(s: &RawSection) -> Option<Option<Kind>> {
    match s.kind {
        SectionKind::Service => Some(None),
        SectionKind::Resource(rid) => Some(Some(rid.kind)),
        SectionKind::Disk(_) => Some(Some(Kind::Vg)),
        SectionKind::Env => None,
    }
}

/// The list a raw value holds (`nodes = n1 n2`).
fn words(v: &RawValue) -> Vec<String> {
    match v {
        RawValue::List(l) => l.clone(),
        RawValue::Str(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

struct Ctx<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
}

impl Ctx<'_> {
    fn error(&mut self, line: usize, section: &str, key: Option<&str>, kind: ConfigErrorKind) {
        self.diags.errors.push(ConfigError::at(
            self.file,
            Some(line),
            Some(section),
            key,
            kind,
        ));
    }

    fn warn(&mut self, line: usize, section: &str, key: Option<&str>, message: String) {
        self.diags.warnings.push(ConfigWarning {
            file: self.file.to_path_buf(),
            line,
            section: section.to_string(),
            key: key.map(str::to_string),
            message,
        });
    }
}

/// Turn OpenSVC's ways into berth's, in place; every problem goes to `diags`. Returns the file
/// as written with canonical names (for `print config`).
pub(crate) fn prepare(
    file: &Path,
    format: Format,
    svc: &str,
    raw: &mut RawFile,
    load: &LoadContext,
    diags: &mut Diagnostics,
) -> Written {
    let mut cx = Ctx { file, diags };
    let node = load.nodename.as_deref();
    // `nodes = "*"` / `{clusternodes}`: the members, for scoping, `{#nodes}` and the keyword
    // (unknown members leave it as written: the keyword layer refuses it, saying why).
    // `print config` shows it as written.
    let mut as_written: HashMap<usize, RawValue> = HashMap::new();
    if let Some(members) = &load.members {
        for e in raw
            .sections
            .iter_mut()
            .filter(|s| s.kind == SectionKind::Service)
            .flat_map(|s| s.entries.iter_mut())
            .filter(|e| e.key == "nodes" && means_members(&e.value))
        {
            as_written.insert(e.line, e.value.clone());
            e.value = RawValue::List(members.clone());
        }
    }
    // The node lists scoping depends on, as written (they are not scopable).
    let list = |key: &str| -> Vec<String> {
        raw.sections
            .iter()
            .filter(|s| s.kind == SectionKind::Service)
            .flat_map(|s| s.entries.iter().filter(|e| e.key == key))
            .flat_map(|e| words(&e.value))
            .collect()
    };
    let (nodes, drpnodes, encapnodes) = (list("nodes"), list("drpnodes"), list("encapnodes"));
    let mut written = Written {
        format: Some(format),
        sections: Vec::new(),
    };
    for section in &mut raw.sections {
        let kind = section_kind(section);
        let is_service = section.kind == SectionKind::Service;
        let mut shown = WrittenSection {
            name: section.name.clone(),
            entries: Vec::new(),
        };
        // (canonical base, scope) of each entry; the chosen entry per base.
        let mut chosen: BTreeMap<String, (u8, RawEntry)> = BTreeMap::new();
        let mut seen: HashMap<String, (usize, String, RawValue)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        for e in section.entries.drain(..) {
            let (base, scope) = match e.key.split_once('@') {
                Some((b, s)) => (b.to_string(), Some(s.to_string())),
                None => (e.key.clone(), None),
            };
            let canon = match kind {
                Some(k) => canonical(k, &base).to_string(),
                None => base.clone(),
            };
            let full = match &scope {
                Some(s) => format!("{canon}@{s}"),
                None => canon.clone(),
            };
            let shown_value = match as_written.get(&e.line) {
                Some(v) if is_service && e.key == "nodes" => v.clone(),
                _ => e.value.clone(),
            };
            shown.entries.push((full.clone(), shown_value));
            // The same keyword twice, by two names or the same one.
            if let Some((first_line, first_key, first_value)) = seen.get(&full) {
                let why = if first_key == &e.key {
                    format!("key given twice (first on line {first_line})")
                } else if *first_value == e.value {
                    // Two names of one keyword saying the same: harmless.
                    cx.warn(
                        e.line,
                        &section.name,
                        Some(&e.key),
                        format!(
                            "{} and {} are one keyword (line {first_line}): this one is not needed",
                            e.key, first_key
                        ),
                    );
                    continue;
                } else {
                    format!(
                        "{} and {first_key} (line {first_line}) are one keyword, and they disagree ({:?} and {:?})",
                        e.key,
                        first_value.shown(),
                        e.value.shown()
                    )
                };
                cx.error(
                    e.line,
                    &section.name,
                    Some(&e.key),
                    ConfigErrorKind::Syntax(why),
                );
                continue;
            }
            seen.insert(full.clone(), (e.line, e.key.clone(), e.value.clone()));
            let rank = match scope.as_deref() {
                None => 5,
                Some(s) if UNSCOPABLE.contains(&canon.as_str()) && s == canon => {
                    cx.error(
                        e.line,
                        &section.name,
                        Some(&e.key),
                        ConfigErrorKind::Syntax(format!(
                            "{canon} cannot be scoped by itself (@{s})"
                        )),
                    );
                    continue;
                }
                Some(s) if Some(s) == node => 0,
                Some("nodes") => {
                    if node.is_some_and(|n| nodes.iter().any(|x| x == n)) {
                        1
                    } else {
                        continue;
                    }
                }
                Some("drpnodes") => {
                    if node.is_some_and(|n| drpnodes.iter().any(|x| x == n)) {
                        2
                    } else {
                        continue;
                    }
                }
                Some("encapnodes") => {
                    if node.is_some_and(|n| encapnodes.iter().any(|x| x == n)) {
                        3
                    } else {
                        continue;
                    }
                }
                Some(s) if SCOPE_WORDS.contains(&s) => {
                    cx.warn(
                        e.line,
                        &section.name,
                        Some(&e.key),
                        format!(
                            "scope @{s} is not known to berth (flex services are not): ignored"
                        ),
                    );
                    continue;
                }
                Some(s) => {
                    if s.is_empty() {
                        cx.error(
                            e.line,
                            &section.name,
                            Some(&e.key),
                            ConfigErrorKind::Syntax("an empty scope after '@'".to_string()),
                        );
                    } else if !nodes.is_empty()
                        && !nodes
                            .iter()
                            .chain(&drpnodes)
                            .chain(&encapnodes)
                            .any(|x| x == s)
                    {
                        cx.warn(
                            e.line,
                            &section.name,
                            Some(&e.key),
                            format!("scoped to node {s}, which is not in nodes, drpnodes nor encapnodes: never used"),
                        );
                    }
                    continue;
                }
            };
            if !chosen.contains_key(&canon) {
                order.push(canon.clone());
            }
            let better = chosen.get(&canon).is_none_or(|(r, _)| rank < *r);
            if better {
                let mut e = e;
                if e.key != canon {
                    e.shown = Some(e.key.clone());
                }
                e.key = canon.clone();
                chosen.insert(canon, (rank, e));
            }
        }
        let mut entries: Vec<RawEntry> = order
            .into_iter()
            .filter_map(|k| chosen.remove(&k).map(|(_, e)| e))
            .collect();
        entries.sort_by_key(|e| e.line);
        section.entries = entries;
        written.sections.push(shown);
    }
    for section in &mut raw.sections {
        check_type(&mut cx, section);
    }
    references(&mut cx, svc, node, load.members.as_deref(), raw);
    written
}

/// `type` of a resource section: one berth has, or an error naming what it has. A `[disk#N]`
/// becomes `vg#N` when its type is `vg` or `lvm`.
fn check_type(cx: &mut Ctx<'_>, section: &mut RawSection) {
    let kind = match section.kind {
        SectionKind::Resource(rid) => rid.kind,
        SectionKind::Disk(_) => Kind::Vg,
        SectionKind::Service | SectionKind::Env => return,
    };
    let typ = section.entries.iter().position(|e| e.key == "type");
    let supported = driver_types(kind);
    // A `type` that is not a string (`type = 5` in TOML) is no type berth has either.
    let given = typ.map(|i| match &section.entries[i].value {
        RawValue::Str(s) => (i, s.trim().to_ascii_lowercase()),
        other => (i, other.shown()),
    });
    let line = typ.map_or(section.line, |i| section.entries[i].line);
    let mut refused = false;
    let mut refuse = |cx: &mut Ctx<'_>, typ: &str, supported: &str| {
        refused = true;
        cx.error(
            line,
            &section.name,
            Some("type"),
            ConfigErrorKind::UnsupportedType {
                typ: typ.to_string(),
                supported: supported.to_string(),
            },
        );
    };
    match kind {
        Kind::Fs => {
            if let Some((_, t)) = &given
                && FS_DRIVER_TYPES.contains(&t.as_str())
            {
                refuse(cx, t, "mountable filesystem types: ext4, xfs...");
            }
        }
        _ => match (&section.kind, given) {
            (SectionKind::Disk(_), None) => {
                refused = true;
                cx.error(
                    section.line,
                    &section.name,
                    Some("type"),
                    ConfigErrorKind::UnsupportedType {
                        typ: "(none given)".to_string(),
                        supported: "vg, lvm".to_string(),
                    },
                );
            }
            (_, None) => {}
            (_, Some((_, t))) => {
                // The kind's reader takes `type` too, for the kinds with more than one type.
                if !supported.contains(&t.as_str()) {
                    refuse(cx, &t, &supported.join(", "));
                }
            }
        },
    }
    section.refused = refused;
    if let SectionKind::Disk(id) = section.kind {
        section.kind = SectionKind::Resource(Rid::with_id(Kind::Vg, id));
    }
}

/// The value of a reference-free evaluation: text, or a list (for `{#nodes}`, `{nodes[0]}`).
type Lookup = HashMap<(String, String), (usize, RawValue)>;

struct Refs<'a> {
    svc: &'a str,
    node: Option<&'a str>,
    members: Option<&'a [String]>,
    values: &'a Lookup,
    /// Section name -> its kind (for aliases of referenced keys) and rid id.
    sections: &'a HashMap<String, (Option<Kind>, Option<RidId>)>,
    done: HashMap<(String, String), Result<String, String>>,
}

/// Evaluate every `{...}` reference of every value, as OpenSVC does: hardcoded names
/// (`{nodename}`, `{svcname}`...), `{env.KEY}`, `{KEY}` (this section's, then `[DEFAULT]`'s),
/// `{section.KEY}` (`{fs#1.mnt}`), with `#` (length) and `[i]` (item), and the `upper:`,
/// `lower:`, `capitalize:`, `uri_ip:` modifiers. An unknown or circular reference is an error.
fn references(
    cx: &mut Ctx<'_>,
    svc: &str,
    node: Option<&str>,
    members: Option<&[String]>,
    raw: &mut RawFile,
) {
    let mut values: Lookup = HashMap::new();
    let mut sections = HashMap::new();
    for s in &raw.sections {
        let (kind, id) = match s.kind {
            SectionKind::Service => (None, None),
            SectionKind::Env => (None, None),
            SectionKind::Resource(rid) => (Some(rid.kind), Some(rid.id)),
            SectionKind::Disk(id) => (Some(Kind::Vg), Some(id)),
        };
        let name = if s.kind == SectionKind::Service {
            "DEFAULT".to_string()
        } else {
            s.name.clone()
        };
        sections.insert(name.clone(), (kind, id));
        if let SectionKind::Resource(rid) = s.kind {
            // `vg#1` for a `[disk#1]`, `fs#1` for TOML's `[fs.1]`.
            sections.insert(rid.to_string(), (kind, id));
        }
        for e in &s.entries {
            values.insert((name.clone(), e.key.clone()), (e.line, e.value.clone()));
            if let SectionKind::Resource(rid) = s.kind {
                values.insert((rid.to_string(), e.key.clone()), (e.line, e.value.clone()));
            }
        }
    }
    let mut refs = Refs {
        svc,
        node,
        members,
        values: &values,
        sections: &sections,
        done: HashMap::new(),
    };
    // `[env]` keys are evaluated when referenced, not on their own: a key only a section berth
    // skips uses (`{svcmgr}` for a task) does not refuse the file.
    // Sections refused already are not evaluated; nor are keywords berth does not read.
    for s in raw
        .sections
        .iter_mut()
        .filter(|s| s.kind != SectionKind::Env && !s.refused)
    {
        let here = if s.kind == SectionKind::Service {
            "DEFAULT".to_string()
        } else {
            s.name.clone()
        };
        let read: &[&str] = match s.kind {
            SectionKind::Service => SERVICE_KEYWORDS,
            SectionKind::Resource(rid) => kind_keywords(rid.kind),
            _ => &[],
        };
        let mut failed = false;
        for e in s.entries.iter_mut().filter(|e| {
            read.contains(&e.key.as_str())
                || (s.kind != SectionKind::Service && COMMON_KEYWORDS.contains(&e.key.as_str()))
        }) {
            let mut stack = vec![(here.clone(), e.key.clone())];
            let result = match &e.value {
                RawValue::Str(v) => refs.expand(v, &here, &mut stack).map(RawValue::Str),
                RawValue::List(items) => items
                    .iter()
                    .map(|v| refs.expand(v, &here, &mut stack))
                    .collect::<Result<Vec<_>, _>>()
                    .map(RawValue::List),
                _ => continue,
            };
            match result {
                Ok(v) => e.value = v,
                Err((reference, why)) => {
                    failed = true;
                    let key = e.written().to_string();
                    cx.error(
                        e.line,
                        &s.name,
                        Some(&key),
                        ConfigErrorKind::Reference { reference, why },
                    );
                }
            }
        }
        // Its values are not what the file means: a resource is not typed (no second error
        // per value); the service section loses those keys only (it has no mandatory one).
        if failed && s.kind == SectionKind::Service {
            let name = s.name.clone();
            s.entries.retain(|e| !has_ref_error(cx.diags, &name, e));
        } else {
            s.refused |= failed;
        }
    }
}

/// Whether a reference error was recorded for entry `e` (of the service section).
fn has_ref_error(diags: &Diagnostics, section: &str, e: &RawEntry) -> bool {
    diags.errors.iter().any(|err| {
        err.line == Some(e.line)
            && err.section.as_deref() == Some(section)
            && matches!(err.kind, ConfigErrorKind::Reference { .. })
    })
}

/// Where a `{` starts a reference in `s`: the byte range of its content. A `{` right after `$`
/// is a shell's `${VAR}`, not a reference.
fn next_ref(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'{' && (i == 0 || b[i - 1] != b'$') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_#.[]:/-".contains(&b[j])) {
                j += 1;
            }
            if j < b.len()
                && b[j] == b'}'
                && j > start
                && (b[start].is_ascii_alphanumeric() || b[start] == b'_' || b[start] == b'#')
            {
                return Some((start, j));
            }
        }
        i += 1;
    }
    None
}

type RefError = (String, String);

impl Refs<'_> {
    /// `s` with its references evaluated; `stack` holds the keywords being evaluated.
    fn expand(
        &mut self,
        s: &str,
        here: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, RefError> {
        let mut out = String::new();
        let mut at = 0;
        while let Some((start, end)) = next_ref(s, at) {
            out.push_str(&s[at..start - 1]);
            let reference = &s[start..end];
            out.push_str(&self.one(reference, here, stack)?);
            at = end + 1;
        }
        out.push_str(&s[at..]);
        Ok(out)
    }

    fn one(
        &mut self,
        reference: &str,
        here: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, RefError> {
        let fail = |why: String| (reference.to_string(), why);
        let mut r = reference;
        let mut item = None;
        if let Some(open) = r.find('[')
            && r.ends_with(']')
        {
            let index = &r[open + 1..r.len() - 1];
            item = Some(
                index
                    .parse::<usize>()
                    .map_err(|_| fail(format!("[{index}] is not an item number")))?,
            );
            r = &r[..open];
        }
        let length = r.starts_with('#');
        if length {
            r = &r[1..];
        }
        let mut modifier: Option<fn(&str) -> String> = None;
        if let Some((m, rest)) = r.split_once(':')
            && !rest.contains(':')
        {
            modifier = Some(match m {
                "upper" => |v: &str| v.to_uppercase(),
                "lower" => |v: &str| v.to_lowercase(),
                "capitalize" => |v: &str| {
                    let mut c = v.chars();
                    c.next().map_or_else(String::new, |f| {
                        f.to_uppercase()
                            .chain(c.flat_map(char::to_lowercase))
                            .collect()
                    })
                },
                "uri_ip" => |v: &str| {
                    if v.contains(':') {
                        format!("[{v}]")
                    } else {
                        v.to_string()
                    }
                },
                _ => return Err(fail(format!("modifier {m}: is not known to berth"))),
            });
            r = rest;
        }
        let value = self.value(r, here, stack).map_err(&fail)?;
        let value = if length || item.is_some() {
            let items: Vec<&str> = value.split_whitespace().collect();
            if length {
                items.len().to_string()
            } else {
                let i = item.unwrap_or_default();
                items
                    .get(i)
                    .map(|s| s.to_string())
                    .ok_or_else(|| fail(format!("has {} items, no item {i}", items.len())))?
            }
        } else {
            value
        };
        Ok(match modifier {
            Some(m) => m(&value),
            None => value,
        })
    }

    /// The text a reference name (no modifier, no `#`, no `[i]`) stands for.
    fn value(
        &mut self,
        r: &str,
        here: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, String> {
        let id = self.sections.get(here).and_then(|(_, id)| *id);
        match r {
            "nodename" => {
                return self
                    .node
                    .map(str::to_string)
                    .ok_or_else(|| "the node name is not known to this load".to_string());
            }
            "clusternodes" => {
                return self.members.map(|m| m.join(" ")).ok_or_else(|| {
                    "the cluster's members are not known to this load (no [cluster], or svcd has \
                     not joined yet)"
                        .to_string()
                });
            }
            "short_nodename" => {
                return self
                    .node
                    .map(|n| n.split('.').next().unwrap_or(n).to_string())
                    .ok_or_else(|| "the node name is not known to this load".to_string());
            }
            "name" | "svcname" | "path" | "svcpath" => return Ok(self.svc.to_string()),
            "short_name" | "short_svcname" => {
                return Ok(self.svc.split('.').next().unwrap_or(self.svc).to_string());
            }
            "namespace" => return Ok("root".to_string()),
            "kind" => return Ok("svc".to_string()),
            "rid" if here != "DEFAULT" && here != "env" => return Ok(here.to_string()),
            "rindex" => {
                if let Some(id) = id {
                    return Ok(id.to_string());
                }
            }
            _ => {}
        }
        let (section, key) = match r.rsplit_once('.') {
            Some((s, k)) => (s.to_string(), k.to_string()),
            None => {
                // This section's keyword, then [DEFAULT]'s.
                let key = r.to_string();
                let local = (here.to_string(), self.canonical_in(here, &key));
                if here != "DEFAULT" && self.values.contains_key(&local) {
                    return self.resolve(local, stack);
                }
                ("DEFAULT".to_string(), key)
            }
        };
        if section.is_empty() || key.is_empty() {
            return Err("a reference names a section and a keyword: {fs#1.mnt}".to_string());
        }
        if section != "DEFAULT" && section != "env" && !self.sections.contains_key(&section) {
            return Err(match section.split_once('#') {
                Some((kind, _)) if kind.parse::<Kind>().is_err() && kind != "disk" => format!(
                    "berth does not run [{kind}#...] sections, so [{section}] has no values"
                ),
                _ => {
                    format!("no section [{section}] in this file, and no such name known to berth")
                }
            });
        }
        let key = if section == "env" {
            key.to_ascii_lowercase()
        } else {
            self.canonical_in(&section, &key)
        };
        let target = (section.clone(), key.clone());
        if !self.values.contains_key(&target) {
            return Err(if section == "DEFAULT" && !r.contains('.') {
                if here == "DEFAULT" {
                    "not a name berth knows, nor a keyword set in [DEFAULT]".to_string()
                } else {
                    format!("not a name berth knows, nor a keyword set in [{here}] or [DEFAULT]")
                }
            } else {
                format!("[{section}] does not set {key}")
            });
        }
        self.resolve(target, stack)
    }

    fn canonical_in(&self, section: &str, key: &str) -> String {
        match self.sections.get(section) {
            Some((Some(kind), _)) => canonical(Some(*kind), key).to_string(),
            Some((None, _)) if section == "DEFAULT" => canonical(None, key).to_string(),
            _ => key.to_string(),
        }
    }

    /// The evaluated value of `target` (a section and a canonical key that is set).
    fn resolve(
        &mut self,
        target: (String, String),
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, String> {
        if let Some(done) = self.done.get(&target) {
            return done.clone();
        }
        if stack.contains(&target) {
            let chain: Vec<String> = stack
                .iter()
                .chain(std::iter::once(&target))
                .map(|(s, k)| format!("{s}.{k}"))
                .collect();
            return Err(format!("circular: {}", chain.join(" -> ")));
        }
        let Some((_, value)) = self.values.get(&target) else {
            return Err(format!("[{}] does not set {}", target.0, target.1));
        };
        let text = match value {
            RawValue::List(l) => l.join(" "),
            v => v.shown(),
        };
        stack.push(target.clone());
        let section = target.0.clone();
        let result = self
            .expand(&text, &section, stack)
            .map_err(|(r, why)| format!("{{{r}}} in {}.{}: {why}", target.0, target.1));
        stack.pop();
        self.done.insert(target, result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::emit::written;
    use crate::config::load::Checked;
    use crate::config::service::{ServiceConfig, Spec};
    use crate::order::start_order;

    const FILE: &str = "/etc/berth/services/web.env";

    fn on(node: Option<&str>, text: &str) -> Checked {
        let load = LoadContext {
            nodename: node.map(str::to_string),
            members: None,
        };
        ServiceConfig::check(Path::new(FILE), text, &load)
    }

    fn ok(node: Option<&str>, text: &str) -> ServiceConfig {
        let c = on(node, text);
        match c.service {
            Some(s) => s,
            None => panic!("{:?}", c.diagnostics),
        }
    }

    fn errors(node: Option<&str>, text: &str) -> Vec<String> {
        let c = on(node, text);
        assert!(c.service.is_none(), "loaded: {text}");
        c.diagnostics.errors.iter().map(|e| e.to_string()).collect()
    }

    fn warnings(svc: &ServiceConfig) -> Vec<String> {
        svc.warnings.iter().map(|w| w.to_string()).collect()
    }

    fn container(svc: &ServiceConfig) -> &crate::config::kinds::container::ContainerSpec {
        match &svc.resources[0].spec {
            Spec::Container(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn ip(svc: &ServiceConfig) -> &crate::config::kinds::ip::IpSpec {
        match &svc.resources[0].spec {
            Spec::Ip(i) => i,
            other => panic!("{other:?}"),
        }
    }

    fn fs(svc: &ServiceConfig) -> &crate::config::kinds::fs::FsSpec {
        match &svc.resources[0].spec {
            Spec::Fs(f) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nodes_star_and_clusternodes_resolve_from_the_members() {
        let members = vec!["n2".to_string(), "n1".to_string(), "n3".to_string()];
        let load = LoadContext {
            nodename: Some("n1".to_string()),
            members: Some(members.clone()),
        };
        let text = "[DEFAULT]\nnodes = *\n\n[container#1]\nimage = busybox\n\
                    command = echo {#nodes} {clusternodes}\n";
        let c = ServiceConfig::check(Path::new(FILE), text, &load);
        let svc = c.service.expect("loads");
        assert_eq!(svc.settings.nodes, members);
        let shown = written(&svc);
        assert!(shown.contains("nodes = *"), "{shown}");
        let text = "[DEFAULT]\nnodes = {clusternodes}\nnodes@n1 = n1\n";
        let c = ServiceConfig::check(Path::new(FILE), text, &load);
        assert_eq!(c.service.expect("loads").settings.nodes, ["n1"]);
        let toml = Path::new("/etc/berth/services/web.toml");
        let c = ServiceConfig::check(toml, "[service]\nnodes = \"*\"\n", &load);
        assert_eq!(c.service.expect("loads").settings.nodes, members);
        let c = ServiceConfig::check(toml, "[service]\nnodes = [\"*\"]\n", &load);
        assert_eq!(c.service.expect("loads").settings.nodes, members);
        // Without members: refused, saying why; a pattern is refused too.
        let e = errors(Some("n1"), "[DEFAULT]\nnodes = {clusternodes}\n");
        assert!(e[0].contains("the cluster's members"), "{e:?}");
        let e = errors(Some("n1"), "[DEFAULT]\nnodes = n*\n");
        assert!(e[0].contains("not patterns"), "{e:?}");
        let e = errors(
            None,
            "[container#1]\nimage = x\ncommand = echo {clusternodes}\n",
        );
        assert!(e[0].contains("members are not known"), "{e:?}");
    }

    #[test]
    fn flex_services_with_opensvc_names_and_defaults() {
        use crate::config::service::{Flex, Topology};
        let members = vec!["n1".to_string(), "n2".to_string(), "n3".to_string()];
        let load = LoadContext {
            nodename: Some("n1".to_string()),
            members: Some(members),
        };
        let check = |text: &str| ServiceConfig::check(Path::new(FILE), text, &load);
        // v1.8/v2 names, nodes from the members: flex_max defaults to their number, the target
        // to flex_min.
        let svc = check("[DEFAULT]\nnodes = *\ncluster_type = flex\nflex_min_nodes = 2\n")
            .service
            .expect("loads");
        assert_eq!(
            svc.settings.topology,
            Topology::Flex(Flex {
                min: 2,
                max: 3,
                target: 2
            })
        );
        let shown = written(&svc);
        assert!(shown.contains("topology = flex\nflex_min = 2"), "{shown}");
        // v3 names.
        let svc =
            check("[DEFAULT]\nnodes = n1 n2 n3\ntopology = flex\nflex_max = 2\nflex_target = 2\n")
                .service
                .expect("loads");
        assert_eq!(
            svc.settings.flex(),
            Some(Flex {
                min: 1,
                max: 2,
                target: 2
            })
        );
        // Defaults: 1 up, at most one per node.
        let svc = ok(Some("n1"), "[DEFAULT]\nnodes = n1 n2\ntopology = flex\n");
        assert_eq!(
            svc.settings.flex(),
            Some(Flex {
                min: 1,
                max: 2,
                target: 1
            })
        );
        // On a failover service the counts are warnings.
        let svc = ok(Some("n1"), "[DEFAULT]\nnodes = n1 n2\nflex_max_nodes = 2\n");
        assert_eq!(svc.settings.topology, Topology::Failover);
        assert!(
            warnings(&svc)[0]
                .contains("flex_max_nodes: accepted and ignored: the service is not flex"),
            "{:?}",
            warnings(&svc)
        );
    }

    #[test]
    fn fs_type_flag_is_a_flag() {
        let svc = ok(
            Some("n1"),
            "[DEFAULT]\nnodes = n1\n\n[fs#flag]\ntype = flag\n\n[container#1]\nimage = x\n",
        );
        assert!(matches!(svc.resources[0].spec, Spec::Flag(_)), "{svc:?}");
        assert!(warnings(&svc).is_empty(), "{:?}", warnings(&svc));
        let shown = crate::config::to_toml(&svc).unwrap();
        assert!(shown.contains("[fs.flag]\ntype = \"flag\"\n"), "{shown}");
        // TOML too, in any case.
        let c = ServiceConfig::check(
            Path::new("/etc/berth/services/web.toml"),
            "[fs.1]\ntype = \"Flag\"\n",
            &LoadContext::node("n1"),
        );
        assert!(matches!(
            c.service.expect("loads").resources[0].spec,
            Spec::Flag(_)
        ));
    }

    #[test]
    fn bad_flex_counts_and_a_vg_in_a_flex_service_are_refused() {
        let flex = "[DEFAULT]\nnodes = n1 n2 n3\ntopology = flex\n";
        for (extra, want) in [
            (
                "flex_max = 4\n",
                "flex_max: bad value \"4\": more than the service's 3 nodes (one instance per node)",
            ),
            (
                "flex_max = 0\n",
                "flex_max: bad value \"0\": a flex service runs at least one instance",
            ),
            (
                "flex_min = 3\nflex_max = 2\n",
                "flex_min: bad value \"3\": more than flex_max (2)",
            ),
            (
                "flex_min = 2\nflex_target = 1\n",
                "flex_target: bad value \"1\": outside [flex_min, flex_max] = [2, 3]",
            ),
            (
                "flex_target = 4\n",
                "flex_target: bad value \"4\": outside [flex_min, flex_max] = [1, 3]",
            ),
            (
                "flex_min = -1\n",
                "flex_min: bad value \"-1\": expected a whole number",
            ),
        ] {
            let e = errors(Some("n1"), &format!("{flex}{extra}"));
            assert!(e.len() == 1 && e[0].contains(want), "{extra}: {e:?}");
        }
        let e = errors(
            Some("n1"),
            &format!("{flex}\n[disk#1]\ntype = vg\nname = vgweb\n"),
        );
        assert_eq!(
            e,
            [format!(
                "{FILE}:5: [disk#1] a vg cannot be part of a flex service (topology = flex): a \
                 volume group is active on one node at a time"
            )]
        );
    }

    #[test]
    fn container_aliases_of_v2_and_v3() {
        let svc = ok(
            None,
            "[container#1]\ntype = docker\nimage = busybox\ncommand = sleep 10\n\
             environment = A=1 \"B=two words\"\nvolume_mounts = /srv:/srv:ro\n\
             sysctl = net.ipv4.ip_forward=1\npidns = host\nipcns = host\n",
        );
        assert!(warnings(&svc).is_empty(), "{:?}", warnings(&svc));
        let c = container(&svc);
        assert_eq!(c.run_image, "busybox");
        assert_eq!(c.run_command.as_deref().unwrap(), ["sleep", "10"]);
        let env: Vec<&str> = c.run.env.iter().map(String::as_str).collect();
        assert_eq!(env, ["A=1", "B=two words"]);
        assert_eq!(c.run.volumes[0].text, "/srv:/srv:ro");
        let shown = written(&svc);
        assert!(shown.contains("run_image = busybox"), "{shown}");
        assert!(shown.contains("run_command = sleep 10"), "{shown}");
        assert!(!shown.contains("\nimage ="), "{shown}");
    }

    #[test]
    fn service_aliases() {
        let svc = ok(
            None,
            "[DEFAULT]\nservice_type = PRD\ncontainer_data_dir = /srv/docker\ncluster_type = failover\n",
        );
        assert_eq!(svc.settings.env.as_deref(), Some("PRD"));
        assert_eq!(
            svc.settings.docker_data_dir.as_deref(),
            Some(Path::new("/srv/docker"))
        );
        assert!(warnings(&svc).is_empty(), "{:?}", warnings(&svc));
        let shown = written(&svc);
        assert!(
            shown.contains("env = PRD\ndocker_data_dir = /srv/docker\ntopology = failover"),
            "{shown}"
        );
    }

    #[test]
    fn ip_and_fs_aliases() {
        let svc = ok(
            None,
            "[ip#1]\nname = 192.0.2.10\ndev = eth0\nnetmask = 24\n",
        );
        assert_eq!(
            (ip(&svc).ipname.as_str(), ip(&svc).ipdev.as_str()),
            ("192.0.2.10", "eth0")
        );
        let svc = ok(
            None,
            "[fs#1]\ndev = /dev/x\nmnt = /srv\ntype = ext4\nmnt_opts = rw\n",
        );
        assert_eq!(fs(&svc).mnt_opt.as_deref(), Some("rw"));
        // The same keyword by two names: equal is a warning, different an error.
        let svc = ok(
            None,
            "[fs#1]\ndev = /dev/x\nmnt = /srv\ntype = ext4\nmnt_opt = rw\nmnt_opts = rw\n",
        );
        assert!(
            warnings(&svc)[0].contains("one keyword"),
            "{:?}",
            warnings(&svc)
        );
        let e = errors(None, "[container#1]\nimage = a\nrun_image = b\n");
        assert!(e[0].contains(":3: [container#1] run_image: run_image and image (line 2) are one keyword, and they disagree"), "{e:?}");
    }

    #[test]
    fn disk_sections_of_type_vg_or_lvm_are_vgs() {
        for t in ["vg", "lvm", "LVM"] {
            let svc = ok(None, &format!("[disk#1]\ntype = {t}\nname = vgdata\n"));
            assert_eq!(svc.resources[0].rid.to_string(), "vg#1");
            let Spec::Vg(vg) = &svc.resources[0].spec else {
                panic!()
            };
            assert_eq!(vg.vgname, "vgdata");
            assert!(warnings(&svc).is_empty(), "{:?}", warnings(&svc));
        }
        let svc = ok(None, "[disk#1]\ntype = vg\nvgname = vgdata\n");
        assert_eq!(svc.resources[0].rid.to_string(), "vg#1");
        let e = errors(None, "[disk#1]\ntype = drbd\nres = r0\n");
        assert_eq!(
            e,
            [format!(
                "{FILE}:2: [disk#1] type: type drbd is not supported (berth has: vg, lvm)"
            )]
        );
        let e = errors(None, "[disk#1]\nname = vgdata\n");
        assert!(
            e[0].contains("[disk#1] type: type (none given) is not supported (berth has: vg, lvm)"),
            "{e:?}"
        );
        // [disk#1] and [vg#1] are one rid.
        let e = errors(None, "[vg#1]\nvgname = a\n[disk#1]\ntype = vg\nname = b\n");
        assert!(e[0].contains("duplicate resource id vg#1"), "{e:?}");
    }

    #[test]
    fn driver_types_berth_lacks_are_refused() {
        for t in ["oci", "lxc", "kvm", "podman"] {
            let e = errors(None, &format!("[container#1]\ntype = {t}\nimage = x\n"));
            assert_eq!(
                e,
                [format!(
                    "{FILE}:2: [container#1] type: type {t} is not supported (berth has: docker)"
                )]
            );
        }
        for t in ["zfs", "directory"] {
            let e = errors(None, &format!("[fs#1]\ntype = {t}\ndev = d\nmnt = /srv\n"));
            assert!(
                e[0].contains(&format!("[fs#1] type: type {t} is not supported")),
                "{e:?}"
            );
        }
        for t in ["cni", "crossbow", "amazon"] {
            let e = errors(
                None,
                &format!("[ip#1]\ntype = {t}\nipname = 192.0.2.1\nipdev = eth0\n"),
            );
            assert_eq!(
                e,
                [format!(
                    "{FILE}:2: [ip#1] type: type {t} is not supported (berth has: host, netns, docker)"
                )]
            );
        }
        let svc = ok(
            None,
            "[ip#1]\ntype = host\nipname = 192.0.2.1\nipdev = eth0\n",
        );
        assert!(warnings(&svc).is_empty(), "{:?}", warnings(&svc));
    }

    const SCOPED: &str = "[DEFAULT]\nnodes = n1 n2\ndrpnodes = d1\n\n[ip#1]\nipname = 192.0.2.10\n\
        ipdev = eth0\nipdev@n2 = eth2\nipdev@drpnodes = eth9\nnetmask@nodes = 24\nnetmask = 16\n";

    #[test]
    fn scoping_takes_node_then_nodes_then_drpnodes_then_unscoped() {
        let got = |node: Option<&str>| {
            let svc = ok(node, SCOPED);
            let i = ip(&svc).clone();
            (i.ipdev, i.netmask.map(|p| p.0))
        };
        assert_eq!(got(Some("n1")), ("eth0".into(), Some(24)));
        assert_eq!(got(Some("n2")), ("eth2".into(), Some(24)));
        assert_eq!(got(Some("d1")), ("eth9".into(), Some(16)));
        assert_eq!(got(Some("other")), ("eth0".into(), Some(16)));
        assert_eq!(got(None), ("eth0".into(), Some(16)));
        // print config keeps the scopes; --eval shows this node's values.
        let svc = ok(Some("n2"), SCOPED);
        let shown = written(&svc);
        assert!(
            shown.contains("ipdev@n2 = eth2\nipdev@drpnodes = eth9"),
            "{shown}"
        );
        let eval = crate::config::emit::to_toml(&svc).unwrap();
        assert!(eval.contains("ipdev = \"eth2\""), "{eval}");
        assert_eq!(svc.settings.drpnodes, ["d1"]);
    }

    #[test]
    fn scoping_errors_and_warnings() {
        let e = errors(Some("n1"), "[DEFAULT]\nnodes@nodes = n1\n");
        assert!(
            e[0].contains("[DEFAULT] nodes@nodes: nodes cannot be scoped by itself"),
            "{e:?}"
        );
        // `nodes` scoped by a node: that node's list.
        let svc = ok(Some("n1"), "[DEFAULT]\nnodes = n1 n2\nnodes@n1 = n1\n");
        assert_eq!(svc.settings.nodes, ["n1"]);
        let svc = ok(
            Some("n1"),
            "[DEFAULT]\nnodes = n1 n2\n[ip#1]\nipname = 192.0.2.1\nipdev = eth0\nipdev@n3 = eth3\n",
        );
        assert!(
            warnings(&svc)[0].contains("ipdev@n3: scoped to node n3, which is not in nodes"),
            "{:?}",
            warnings(&svc)
        );
        // An alias scoped: one keyword.
        let svc = ok(Some("n1"), "[container#1]\nimage = a\nimage@n1 = b\n");
        assert_eq!(container(&svc).run_image, "b");
        // TOML takes scoped keys too (quoted).
        let svc = ServiceConfig::parse_on(
            Path::new("/etc/berth/services/web.toml"),
            "[ip.1]\nipname = \"192.0.2.1\"\nipdev = \"eth0\"\n\"ipdev@n1\" = \"eth1\"\n",
            &LoadContext::node("n1"),
        )
        .unwrap();
        assert_eq!(ip(&svc).ipdev, "eth1");
        assert!(
            written(&svc).contains("\"ipdev@n1\" = \"eth1\""),
            "{}",
            written(&svc)
        );
    }

    const REFS: &str = "[DEFAULT]\nnodes = n1 n2\napp = shop\n\n[env]\nport = 8080\nroot = /srv/{name}\n\n\
        [fs#1]\ndev = /dev/vg/{svcname}\nmnt = {env.root}/data\ntype = ext4\n\n\
        [container#1]\nimage = busybox\ncommand = echo {nodename} {short_nodename} {namespace} {app} {#nodes} {nodes[1]} {upper:app} ${HOME} {rid} {rindex}\n\
        volume_mounts = {fs#1.mnt}:/data\n";

    #[test]
    fn references_are_evaluated() {
        let svc = ok(Some("n1.example.com"), REFS);
        let Spec::Fs(f) = &svc.resources[0].spec else {
            panic!()
        };
        assert_eq!(f.dev, Path::new("/dev/vg/web"));
        assert_eq!(f.mnt, Path::new("/srv/web/data"));
        let Spec::Container(c) = &svc.resources[1].spec else {
            panic!()
        };
        assert_eq!(
            c.run_command.as_deref().unwrap(),
            [
                "echo",
                "n1.example.com",
                "n1",
                "root",
                "shop",
                "2",
                "n2",
                "SHOP",
                "${HOME}",
                "container#1",
                "1"
            ]
        );
        assert_eq!(c.run.volumes[0].text, "/srv/web/data:/data");
        // print config keeps the references.
        assert!(
            written(&svc).contains("mnt = {env.root}/data"),
            "{}",
            written(&svc)
        );
        // A reference to an alias names the same keyword.
        let svc = ok(
            None,
            "[ip#1]\nipname = 192.0.2.1\nipdev = eth0\n[container#1]\nimage = x\ncommand = {ip#1.name} {ip#1.ipdev}\n",
        );
        let Spec::Container(c) = &svc.resources[1].spec else {
            panic!()
        };
        assert_eq!(c.run_command.as_deref().unwrap(), ["192.0.2.1", "eth0"]);
    }

    #[test]
    fn bad_references_are_errors_naming_them() {
        let e = errors(
            None,
            "[fs#1]\ndev = /dev/x\nmnt = /srv/{nodename}\ntype = ext4\n",
        );
        assert_eq!(
            e,
            [format!(
                "{FILE}:3: [fs#1] mnt: reference {{nodename}}: the node name is not known to this load"
            )]
        );
        let e = errors(None, "[fs#1]\ndev = /dev/{nope}\nmnt = /srv\ntype = ext4\n");
        assert!(
            e[0].contains("[fs#1] dev: reference {nope}: not a name berth knows"),
            "{e:?}"
        );
        let e = errors(None, "[fs#1]\ndev = {fs#2.dev}\nmnt = /srv\ntype = ext4\n");
        assert!(
            e[0].contains("reference {fs#2.dev}: no section [fs#2]"),
            "{e:?}"
        );
        let e = errors(
            None,
            "[fs#1]\ndev = {fs#1.mnt_opt}\nmnt = /srv\ntype = ext4\n",
        );
        assert!(
            e[0].contains("reference {fs#1.mnt_opt}: [fs#1] does not set mnt_opt"),
            "{e:?}"
        );
        let e = errors(
            None,
            "[env]\na = {env.b}\nb = {env.a}\n[fs#1]\ndev = {env.a}\nmnt = /srv\ntype = ext4\n",
        );
        assert!(
            e.iter().any(|e| e.contains("[fs#1] dev: reference {env.a}")
                && e.contains("circular: fs#1.dev -> env.a -> env.b -> env.a")),
            "{e:?}"
        );
        let e = errors(None, "[fs#1]\ndev = {mnt}\nmnt = {dev}\ntype = ext4\n");
        assert!(e[0].contains("circular"), "{e:?}");
    }

    #[test]
    fn ini_sections_of_no_opensvc_kind_are_errors_naming_the_nearest() {
        let text = "[DEFAULT]\nnodes = n1\n\n[containr#1]\ntype = docker\nimage = x\n\n\
            [app#1]\nscript = x\n[task#1]\ncommand = x\n[DEFAUT]\nfoo = 1\n[zzzz#2]\na = b\n";
        let c = on(None, text);
        assert!(
            c.service.is_none(),
            "a typo of a kind is never a resource lost quietly"
        );
        let errors: Vec<String> = c.diagnostics.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains(
                ":4: [containr#1] unknown section: containr is not an OpenSVC resource kind \
                 (did you mean [container#1]?)"
            ),
            "{errors:?}"
        );
        assert!(
            errors[1].contains(":12: [DEFAUT] unknown section: not DEFAULT, env nor a resource id")
                && errors[1].ends_with("(did you mean [DEFAULT]?)"),
            "{errors:?}"
        );
        assert!(
            errors[2].contains(":14: [zzzz#2] unknown section: zzzz is not an OpenSVC")
                && !errors[2].contains("did you mean"),
            "{errors:?}"
        );
        // OpenSVC kinds berth does not run stay warnings.
        let warnings: Vec<String> = c
            .diagnostics
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains(":8: [app#1] section ignored"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains(":10: [task#1] section ignored"),
            "{warnings:?}"
        );
    }

    #[test]
    fn nearest_is_a_typo_or_nothing() {
        assert_eq!(nearest("containr", OPENSVC_KINDS), Some("container"));
        assert_eq!(nearest("Fs", OPENSVC_KINDS), Some("fs"));
        assert_eq!(nearest("ipp", OPENSVC_KINDS), Some("ip"));
        assert_eq!(nearest("volumes", OPENSVC_KINDS), Some("volume"));
        assert_eq!(nearest("database", OPENSVC_KINDS), None);
        assert_eq!(nearest("x", OPENSVC_KINDS), None);
    }

    #[test]
    fn every_problem_of_a_file_at_once() {
        let text = "[DEFAULT]\nnodes = n1\norchestrate = sometimes\nfoo = 1\n\n\
            [fs#1]\ndev = /dev/x\nmnt = relative\ntype = ext4\nsnap = yes\n\n\
            [container#1]\ntype = oci\nimage = x\n\n[container#db]\nrun_image = y\nrestart = many\n\n[app#1]\nscript = x\n";
        let c = on(None, text);
        assert!(c.service.is_none());
        let errors: Vec<String> = c.diagnostics.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].contains(":3: [DEFAULT] orchestrate: bad value"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains(":8: [fs#1] mnt: bad value \"relative\""),
            "{errors:?}"
        );
        assert!(
            errors[2].contains(":13: [container#1] type: type oci is not supported"),
            "{errors:?}"
        );
        assert!(
            errors[3].contains(":18: [container#db] restart: bad value"),
            "{errors:?}"
        );
        let warnings: Vec<String> = c
            .diagnostics
            .warnings
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains(":4: [DEFAULT] foo: keyword not known"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains(":10: [fs#1] snap: keyword not known"),
            "{warnings:?}"
        );
        assert!(
            warnings[2].contains(":20: [app#1] section ignored"),
            "{warnings:?}"
        );
        // The error a plain parse returns carries them all.
        let e = ServiceConfig::parse(Path::new(FILE), text).unwrap_err();
        assert_eq!(e.all().count(), 4);
        assert_eq!(e.warnings.len(), 3);
        let shown = e.to_string();
        assert!(
            shown.contains("\nwarning: ") && shown.contains("[container#db] restart"),
            "{shown}"
        );
    }

    #[test]
    fn named_rids_are_resources_in_kind_order() {
        let svc = ok(
            None,
            "[container#db]\nimage = postgres\n[container#2]\nimage = a\n[container#app]\nimage = b\n\
             [fs#data]\ndev = /dev/x\nmnt = /srv\ntype = ext4\n[fs#1]\ndev = /dev/y\nmnt = /srv/web\ntype = ext4\n",
        );
        let order: Vec<String> = start_order(&svc).iter().map(|r| r.to_string()).collect();
        assert_eq!(
            order,
            [
                "fs#data",
                "fs#1",
                "container#2",
                "container#app",
                "container#db"
            ]
        );
        let db: Rid = "container#db".parse().unwrap();
        assert_eq!(
            crate::config::kinds::container::ContainerSpec::container_name("web", db.id),
            "web.container.db"
        );
        let e = errors(None, "[container#a.b]\nimage = x\n");
        assert!(
            e[0].contains("[container#a.b]") && e[0].contains("after the '#'"),
            "{e:?}"
        );
    }

    #[test]
    fn service_and_resource_keywords_users_write() {
        let svc = ok(
            None,
            "[DEFAULT]\nnodes = n1\nid = 7c0b\ncomment = the shop\ntopology = failover\n\
             orchestrate = ha\nmonitor_action = freezestop\nplacement = nodes order\nrollback = false\npriority = 10\n\n\
             [fs#1]\ndev = /dev/x\nmnt = /srv\ntype = ext4\nvg = vgdata\nsize = 10g\nalways_on = n1\nshared = true\nprovision = false\npre_start = /bin/true\n",
        );
        assert_eq!(svc.settings.id.as_deref(), Some("7c0b"));
        assert_eq!(svc.settings.comment.as_deref(), Some("the shop"));
        assert_eq!(svc.resources[0].common.always_on, ["n1"]);
        let w = warnings(&svc);
        assert!(!w.iter().any(|w| w.contains("always_on")), "{w:?}");
        for key in [
            "rollback",
            "priority",
            "vg",
            "size",
            "shared",
            "provision",
            "pre_start",
        ] {
            assert!(
                w.iter()
                    .any(|w| w.contains(&format!(" {key}: accepted and ignored"))),
                "{key}: {w:?}"
            );
        }
        let e = errors(None, "[DEFAULT]\ntopology = flexible\n");
        assert!(
            e[0].contains(
                "[DEFAULT] topology: bad value \"flexible\": expected one of: failover, flex"
            ),
            "{e:?}"
        );
        let e = errors(None, "[DEFAULT]\nmonitor_action = reboot\n");
        assert!(
            e[0].contains("expected one of: none, switch, freezestop"),
            "{e:?}"
        );
        let svc = ok(None, "[container#1]\nimage = x\nrm = true\n");
        assert!(
            warnings(&svc)[0].contains("rm: accepted and ignored: berth keeps"),
            "{:?}",
            warnings(&svc)
        );
        let e = errors(None, "[DEFAULT]\nnodes = *\n");
        assert!(e[0].contains("[DEFAULT] nodes: bad value \"*\""), "{e:?}");
        assert!(e[0].contains("the cluster's members"), "{e:?}");
        // An [env] key is evaluated when referenced only.
        let svc = ok(
            None,
            "[env]\ncmd = {svcmgr} print\nroot = /srv\n[fs#1]\ndev = /dev/x\nmnt = {env.root}\ntype = ext4\n",
        );
        assert_eq!(fs(&svc).mnt, Path::new("/srv"));
        let e = errors(
            None,
            "[fs#1]\ndev = {volume#1.name}\nmnt = /srv\ntype = ext4\n",
        );
        assert!(
            e[0].contains("berth does not run [volume#...] sections"),
            "{e:?}"
        );
    }
}
