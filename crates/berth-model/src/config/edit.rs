//! Editing a service file in place, as `svc SVC set|unset|get --kw SECTION.KEY[=VALUE]` and
//! `enable|disable` do: only the keys named change, every other byte of the file stays (comments,
//! order, blank lines, the quoting of other values). TOML goes through `toml_edit`; an OpenSVC INI
//! file stays INI, edited line by line the way [`super::ini`] reads it. Every edit is checked by
//! parsing the result as the loader does ([`ServiceConfig::parse`]) before the caller writes it:
//! an edit that would leave a broken file is refused. No I/O here.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::compat::LoadContext;
use super::error::{ConfigError, ConfigErrorKind, ConfigWarning};
use super::raw::Format;
use super::service::ServiceConfig;

/// The service section's name on the command line (`DEFAULT.nodes`, or just `nodes`); TOML's
/// `service.nodes` is accepted too.
pub const SERVICE_SECTION: &str = "DEFAULT";

/// A keyword of a service file: `fs#1.mnt`, `DEFAULT.nodes` (or `nodes`), `ip#1.ipdev@n1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KwPath {
    /// `DEFAULT` for the service section, else the section as INI names it (`fs#1`, `env`).
    pub section: String,
    /// The key, with its `@node` scope if any.
    pub key: String,
}

impl fmt::Display for KwPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.section, self.key)
    }
}

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// A `--kw` that does not read as `SECTION.KEY[=VALUE]`.
    #[error("--kw {given:?}: {why}")]
    BadKeyword {
        /// As given.
        given: String,
        /// What is wrong with it.
        why: String,
    },
    /// The file cannot be edited: it does not parse even as plain TOML.
    #[error("{file}: cannot edit it, it is not valid TOML: {why}")]
    NotEditable {
        /// The file.
        file: String,
        /// The parser's message.
        why: String,
    },
    /// The edited file would not load: nothing is written.
    #[error("the edited file would not load (nothing written): {0}")]
    Invalid(ConfigError),
}

/// What to do to one keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `KEY=VALUE`: set it.
    Set(KwPath, String),
    /// `KEY+=WORD`: add a word to a list keyword (`tags+=db`), unless it is there.
    Append(KwPath, String),
    /// `KEY-=WORD`: remove a word from a list keyword.
    Remove(KwPath, String),
    /// Remove the key.
    Unset(KwPath),
}

impl Change {
    /// The keyword it changes.
    pub fn path(&self) -> &KwPath {
        match self {
            Change::Set(p, _) | Change::Append(p, _) | Change::Remove(p, _) | Change::Unset(p) => p,
        }
    }

    /// Parse `SECTION.KEY=VALUE`, `+=`, `-=`.
    pub fn parse_assignment(given: &str) -> Result<Change, EditError> {
        let bad = |why: &str| EditError::BadKeyword {
            given: given.to_string(),
            why: why.to_string(),
        };
        let Some(eq) = given.find('=') else {
            return Err(bad("expected SECTION.KEY=VALUE (or KEY+=WORD, KEY-=WORD)"));
        };
        let (lhs, value) = (&given[..eq], &given[eq + 1..]);
        if value.contains(['\n', '\r']) {
            return Err(bad("a value holds no newline"));
        }
        let (lhs, make): (&str, fn(KwPath, String) -> Change) =
            if let Some(l) = lhs.strip_suffix('+') {
                (l, Change::Append)
            } else if let Some(l) = lhs.strip_suffix('-') {
                (l, Change::Remove)
            } else {
                (lhs, Change::Set)
            };
        let path = lhs.parse::<KwPath>().map_err(|why| bad(&why))?;
        let value = value.trim().to_string();
        if !matches!(make(path.clone(), String::new()), Change::Set(..))
            && value.split_whitespace().count() != 1
        {
            return Err(bad("+= and -= take one word"));
        }
        Ok(make(path, value))
    }
}

impl FromStr for KwPath {
    type Err = String;

    /// `fs#1.mnt`, `DEFAULT.nodes`, `service.nodes`, `env.KEY`, or a bare `nodes` (the service
    /// section). The section ends at the first `.` when what precedes it names a section (holds a
    /// `#`, or is `DEFAULT`, `service` or `env`): `nodes@n1.example.com` is a service key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (section, key) = match s.split_once('.') {
            Some((head, key))
                if head.contains('#') || matches!(head, "DEFAULT" | "service" | "env") =>
            {
                let head = if head == "service" {
                    SERVICE_SECTION
                } else {
                    head
                };
                (head.to_string(), key.to_string())
            }
            _ => (SERVICE_SECTION.to_string(), s.to_string()),
        };
        if key.is_empty() {
            return Err("no key after the section".to_string());
        }
        if let Some(c) = key
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, '=' | ':' | '[' | ']' | '#' | ';' | '"'))
        {
            return Err(format!("a key holds no {c:?}"));
        }
        if let Some((kind, name)) = section.split_once('#')
            && (kind.is_empty() || name.is_empty() || section.contains(char::is_whitespace))
        {
            return Err(format!("bad resource id {section:?} (expected KIND#N)"));
        }
        Ok(KwPath { section, key })
    }
}

/// The result of a checked edit.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The new text of the file.
    pub text: String,
    /// Whether it differs from the old one.
    pub changed: bool,
    /// The service as the new text loads.
    pub service: ServiceConfig,
    /// Warnings the new text has that the old did not (a key INI accepts but berth ignores:
    /// `set` refuses them).
    pub new_warnings: Vec<ConfigWarning>,
}

/// The value of `path` as written in the file (a TOML list as its words joined by spaces, as
/// INI writes lists), or `None` when the file does not set it.
pub fn get(source: &Path, text: &str, path: &KwPath) -> Result<Option<String>, EditError> {
    Ok(Doc::parse(source, text)?.get(path))
}

/// Apply `changes` to `text` (the file `source`) and check the result loads. TOML values are
/// typed as written (`true`, `24`, `["a"]`, `"quoted"`), else strings; when the result does not
/// load, the values typed that way are tried as strings too (`app=123`), before giving up with
/// the first attempt's error.
pub fn apply(source: &Path, text: &str, changes: &[Change]) -> Result<Edited, EditError> {
    apply_on(source, text, changes, &LoadContext::default())
}

/// [`apply`], the result checked as node `load` reads it (`key@node` scopes, `{nodename}`).
pub fn apply_on(
    source: &Path,
    text: &str,
    changes: &[Change],
    load: &LoadContext,
) -> Result<Edited, EditError> {
    let before: BTreeSet<(String, Option<String>, String)> =
        ServiceConfig::parse_on(source, text, load)
            .map(|s| s.warnings.iter().map(warning_key).collect())
            .unwrap_or_default();
    let format = Doc::parse(source, text)?.format();
    // The changes whose value may be typed otherwise than as a string (TOML only).
    let flexible: Vec<usize> = match format {
        Format::Ini => Vec::new(),
        Format::Toml => changes
            .iter()
            .enumerate()
            .filter(
                |(_, c)| matches!(c, Change::Set(_, v) if typed(v).is_some_and(|t| !t.is_str())),
            )
            .map(|(i, _)| i)
            .collect(),
    };
    let mut first_error = None;
    for as_strings in typings(flexible.len()) {
        let mut doc = Doc::parse(source, text)?;
        for (i, change) in changes.iter().enumerate() {
            let force_string = flexible
                .iter()
                .position(|&f| f == i)
                .is_some_and(|n| as_strings.contains(&n));
            doc.apply(change, force_string);
        }
        let new = doc.render();
        match ServiceConfig::parse_on(source, &new, load) {
            Ok(service) => {
                let new_warnings = service
                    .warnings
                    .iter()
                    .filter(|w| !before.contains(&warning_key(w)))
                    .cloned()
                    .collect();
                return Ok(Edited {
                    changed: new != text,
                    text: new,
                    service,
                    new_warnings,
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(EditError::Invalid(first_error.unwrap_or_else(|| {
        ConfigError::file(
            source,
            ConfigErrorKind::Syntax("no edit to check".to_string()),
        )
    })))
}

/// A warning without its line (an edit moves lines).
fn warning_key(w: &ConfigWarning) -> (String, Option<String>, String) {
    (w.section.clone(), w.key.clone(), w.message.clone())
}

/// Which of `n` flexible values to write as strings, attempt by attempt: none first, then one,
/// two... (every combination while `n <= 4`; beyond, none then all).
fn typings(n: usize) -> Vec<BTreeSet<usize>> {
    if n > 4 {
        return vec![BTreeSet::new(), (0..n).collect()];
    }
    let mut all: Vec<BTreeSet<usize>> = (0u32..(1 << n))
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect();
    all.sort_by_key(BTreeSet::len);
    all
}

/// `v` as a TOML value literal, if it is one (a datetime is left a string).
fn typed(v: &str) -> Option<toml_edit::Value> {
    match v.parse::<toml_edit::Value>() {
        Ok(toml_edit::Value::Datetime(_)) | Err(_) => None,
        Ok(t) => Some(t),
    }
}

/// A service file being edited.
enum Doc {
    Toml(toml_edit::DocumentMut),
    Ini(IniDoc),
}

impl Doc {
    fn parse(source: &Path, text: &str) -> Result<Doc, EditError> {
        match Format::from_path(source) {
            Some(Format::Ini) => Ok(Doc::Ini(IniDoc::new(text))),
            _ => text
                .parse::<toml_edit::DocumentMut>()
                .map(Doc::Toml)
                .map_err(|e| EditError::NotEditable {
                    file: source.display().to_string(),
                    why: e.message().trim().to_string(),
                }),
        }
    }

    fn format(&self) -> Format {
        match self {
            Doc::Toml(_) => Format::Toml,
            Doc::Ini(_) => Format::Ini,
        }
    }

    fn render(&self) -> String {
        match self {
            Doc::Toml(d) => d.to_string(),
            Doc::Ini(d) => d.render(),
        }
    }

    fn get(&self, path: &KwPath) -> Option<String> {
        match self {
            Doc::Ini(d) => d.get(path),
            Doc::Toml(d) => {
                let table = toml_table(d.as_table(), path)?;
                let value = table.get(&path.key)?.as_value()?;
                Some(shown(value))
            }
        }
    }

    fn apply(&mut self, change: &Change, force_string: bool) {
        // Removing a word from a key the file does not set leaves the file as it is (never an
        // empty `tags = []`, nor a new section).
        if let Change::Remove(p, _) = change
            && self.get(p).is_none()
        {
            return;
        }
        match self {
            Doc::Ini(d) => {
                let new = match change {
                    Change::Set(_, v) => Some(v.clone()),
                    Change::Unset(_) => None,
                    Change::Append(p, w) | Change::Remove(p, w) => {
                        let mut words: Vec<String> = d
                            .get(p)
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                        edit_words(&mut words, change, w);
                        Some(words.join(" "))
                    }
                };
                match new {
                    Some(v) => d.set(change.path(), &v),
                    None => d.unset(change.path()),
                }
            }
            Doc::Toml(d) => toml_apply(d, change, force_string),
        }
    }
}

fn edit_words(words: &mut Vec<String>, change: &Change, w: &str) {
    match change {
        Change::Append(..) if !words.iter().any(|x| x == w) => words.push(w.to_string()),
        Change::Remove(..) => words.retain(|x| x != w),
        _ => {}
    }
}

/// A TOML value as `get` prints it: a string as is, a list of strings as words.
fn shown(value: &toml_edit::Value) -> String {
    match value {
        toml_edit::Value::String(s) => s.value().clone(),
        toml_edit::Value::Array(a) if a.iter().all(toml_edit::Value::is_str) => a
            .iter()
            .filter_map(toml_edit::Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string().trim().to_string(),
    }
}

/// The table names a section has in TOML: `service`, `fs` `1`, `env`.
fn toml_names(section: &str) -> Vec<&str> {
    if section == SERVICE_SECTION {
        return vec!["service"];
    }
    match section.split_once('#') {
        Some((kind, index)) => vec![kind, index],
        None => vec![section],
    }
}

fn toml_table<'a>(
    root: &'a toml_edit::Table,
    path: &KwPath,
) -> Option<&'a dyn toml_edit::TableLike> {
    let mut table: &dyn toml_edit::TableLike = root;
    for name in toml_names(&path.section) {
        table = table.get(name)?.as_table_like()?;
    }
    Some(table)
}

fn toml_apply(doc: &mut toml_edit::DocumentMut, change: &Change, force_string: bool) {
    let path = change.path();
    let names = toml_names(&path.section);
    if let Change::Unset(_) = change {
        let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
        for name in names {
            let Some(t) = table.get_mut(name).and_then(|i| i.as_table_like_mut()) else {
                return;
            };
            table = t;
        }
        table.remove(&path.key);
        return;
    }
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    let depth = names.len();
    for (i, name) in names.into_iter().enumerate() {
        let missing = table
            .get(name)
            .is_none_or(|it| it.as_table_like().is_none());
        if missing {
            let mut t = toml_edit::Table::new();
            // `[fs.1]`, not `[fs]` then `[fs.1]`.
            t.set_implicit(i + 1 < depth);
            table.insert(name, toml_edit::Item::Table(t));
            if table.get(name).is_none() {
                // Inside an inline table (`fs = { 1 = { ... } }`), only values go.
                let inline = toml_edit::Value::InlineTable(toml_edit::InlineTable::new());
                table.insert(name, toml_edit::Item::Value(inline));
            }
        }
        let Some(t) = table.get_mut(name).and_then(|it| it.as_table_like_mut()) else {
            return;
        };
        table = t;
    }
    let old = table.get(&path.key).and_then(|i| i.as_value()).cloned();
    let mut new = match change {
        Change::Set(_, v) => match typed(v) {
            // Keep the type the file already has for this key when the value fits it.
            Some(t)
                if !force_string && !old.as_ref().is_some_and(|o| o.is_str() && !t.is_str()) =>
            {
                t
            }
            // A list the file has as an array stays an array: `nodes=n1 n2`, split as a shell
            // would (`run_command=sh -c "a b"`).
            _ if !force_string && old.as_ref().is_some_and(toml_edit::Value::is_array) => {
                let words = shell_words::split(v)
                    .unwrap_or_else(|_| v.split_whitespace().map(str::to_string).collect());
                toml_edit::Value::Array(words.into_iter().collect())
            }
            _ => toml_edit::Value::from(v.as_str()),
        },
        Change::Append(_, w) | Change::Remove(_, w) => match &old {
            Some(toml_edit::Value::String(s)) => {
                let mut words: Vec<String> =
                    s.value().split_whitespace().map(str::to_string).collect();
                edit_words(&mut words, change, w);
                toml_edit::Value::from(words.join(" "))
            }
            Some(toml_edit::Value::Array(a)) => {
                let mut words: Vec<String> = a
                    .iter()
                    .filter_map(toml_edit::Value::as_str)
                    .map(str::to_string)
                    .collect();
                edit_words(&mut words, change, w);
                toml_edit::Value::Array(words.into_iter().collect())
            }
            _ => {
                let mut words = Vec::new();
                edit_words(&mut words, change, w);
                toml_edit::Value::Array(words.into_iter().collect())
            }
        },
        Change::Unset(_) => return,
    };
    if let Some(old) = &old {
        // A comment after the old value stays after the new one.
        *new.decor_mut() = old.decor().clone();
    }
    table.insert(&path.key, toml_edit::Item::Value(new));
}

/// An INI file as lines, edited the way `ini::parse` reads it: a section runs from its header to
/// the next; an entry is its `key = value` line and the indented continuation lines after it.
struct IniDoc {
    lines: Vec<String>,
    /// The file ended with a newline.
    final_newline: bool,
}

/// One `key = value` of a section, with its continuation lines.
struct IniEntry {
    key: String,
    line: usize,
    continuations: Vec<usize>,
}

impl IniDoc {
    fn new(text: &str) -> IniDoc {
        let final_newline = text.ends_with('\n') || text.is_empty();
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').map(str::to_string).collect()
        };
        IniDoc {
            lines,
            final_newline,
        }
    }

    fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if self.final_newline && !self.lines.is_empty() {
            s.push('\n');
        }
        s
    }

    fn is_skipped(line: &str) -> bool {
        let t = line.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with(';')
    }

    fn header(line: &str) -> Option<&str> {
        let t = line.trim();
        if Self::is_skipped(line) {
            return None;
        }
        let inner = t.strip_prefix('[')?;
        Some(inner.strip_suffix(']').unwrap_or(inner).trim())
    }

    /// The line range of section `name`: its header, and the index after its last line.
    fn section(&self, name: &str) -> Option<(usize, usize)> {
        let start = self
            .lines
            .iter()
            .position(|l| Self::header(l) == Some(name))?;
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| Self::header(l).is_some())
            .map_or(self.lines.len(), |i| start + 1 + i);
        Some((start, end))
    }

    fn entries(&self, (start, end): (usize, usize)) -> Vec<IniEntry> {
        let mut out: Vec<IniEntry> = Vec::new();
        for i in start + 1..end {
            let l = &self.lines[i];
            if Self::is_skipped(l) {
                continue;
            }
            if l.starts_with([' ', '\t'])
                && let Some(last) = out.last_mut()
            {
                last.continuations.push(i);
                continue;
            }
            let t = l.trim();
            let key = t
                .find(['=', ':'])
                .map_or(t, |split| &t[..split])
                .trim()
                .to_ascii_lowercase();
            out.push(IniEntry {
                key,
                line: i,
                continuations: Vec::new(),
            });
        }
        out
    }

    fn entry(&self, path: &KwPath) -> Option<IniEntry> {
        let range = self.section(&path.section)?;
        let key = path.key.to_ascii_lowercase();
        self.entries(range).into_iter().find(|e| e.key == key)
    }

    fn get(&self, path: &KwPath) -> Option<String> {
        let e = self.entry(path)?;
        let line = self.lines[e.line].trim();
        let mut value = line
            .find(['=', ':'])
            .map_or("", |split| &line[split + 1..])
            .trim()
            .to_string();
        for c in e.continuations {
            let t = self.lines[c].trim();
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(t);
        }
        Some(value)
    }

    fn set(&mut self, path: &KwPath, value: &str) {
        if let Some(e) = self.entry(path) {
            let old = &self.lines[e.line];
            let cr = if old.ends_with('\r') { "\r" } else { "" };
            let new = match old.find(['=', ':']) {
                Some(split) => {
                    let after = &old[split + 1..];
                    let gap = &after[..after.len() - after.trim_start().len()];
                    let gap = if gap.is_empty() || gap.contains('\r') {
                        " "
                    } else {
                        gap
                    };
                    format!("{}{gap}{value}{cr}", &old[..=split])
                }
                None => format!("{} = {value}{cr}", old.trim_end()),
            };
            self.lines[e.line] = new;
            for c in e.continuations.into_iter().rev() {
                self.lines.remove(c);
            }
            return;
        }
        let line = format!("{} = {value}", path.key);
        if let Some(range) = self.section(&path.section) {
            let after = self.entries(range).last().map_or(range.0, |e| {
                e.continuations.last().copied().unwrap_or(e.line)
            });
            self.lines.insert(after + 1, line);
            return;
        }
        let header = format!("[{}]", path.section);
        let first_header = self.lines.iter().position(|l| Self::header(l).is_some());
        match first_header {
            // DEFAULT goes first, as OpenSVC writes it.
            Some(at) if path.section == SERVICE_SECTION => {
                self.lines.splice(at..at, [header, line, String::new()]);
            }
            _ => {
                if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    self.lines.push(String::new());
                }
                self.lines.push(header);
                self.lines.push(line);
                self.final_newline = true;
            }
        }
    }

    fn unset(&mut self, path: &KwPath) {
        if let Some(e) = self.entry(path) {
            for c in e.continuations.into_iter().rev() {
                self.lines.remove(c);
            }
            self.lines.remove(e.line);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn kw(s: &str) -> KwPath {
        s.parse().unwrap()
    }

    fn set(s: &str) -> Change {
        Change::parse_assignment(s).unwrap()
    }

    const TOML: &str = "\
# web: the demo service
[service]
nodes = [\"n1\", \"n2\"]  # preferred first

[fs.1]
dev = \"/srv/web.img\"
mnt = \"/srv/web\"   # the data
type = \"ext4\"

[ip.1]
ipdev = \"eth0\"
ipname = \"192.0.2.10\"
netmask = 24
";

    const INI: &str = "\
; web, as OpenSVC wrote it
[DEFAULT]
nodes = n1 n2
app = WEB

# the data
[fs#1]
dev = /srv/web.img
mnt: /srv/web
type = ext4
mnt_opt = rw,
    noatime

[ip#1]
ipdev = eth0
ipname = 192.0.2.10
";

    fn toml_path() -> PathBuf {
        PathBuf::from("/etc/berth/services/web.toml")
    }
    fn ini_path() -> PathBuf {
        PathBuf::from("/etc/berth/services/web.env")
    }

    #[test]
    fn keyword_paths() {
        assert_eq!(
            kw("fs#1.mnt"),
            KwPath {
                section: "fs#1".into(),
                key: "mnt".into()
            }
        );
        assert_eq!(kw("nodes").section, "DEFAULT");
        assert_eq!(kw("service.nodes").section, "DEFAULT");
        assert_eq!(kw("DEFAULT.nodes").key, "nodes");
        // A scope with dots is part of the key, not a section.
        assert_eq!(
            kw("nodes@n1.example.com"),
            KwPath {
                section: "DEFAULT".into(),
                key: "nodes@n1.example.com".into()
            }
        );
        assert_eq!(kw("ip#1.ipdev@n1.example.com").key, "ipdev@n1.example.com");
        assert_eq!(kw("fs#app.mnt").section, "fs#app");
        for bad in ["fs#1.", "fs#1.a b", "#1.mnt", "fs#.mnt"] {
            assert!(bad.parse::<KwPath>().is_err(), "{bad}");
        }
        assert_eq!(
            set("fs#1.mnt=/srv"),
            Change::Set(kw("fs#1.mnt"), "/srv".into())
        );
        assert_eq!(
            set("fs#1.tags+=db"),
            Change::Append(kw("fs#1.tags"), "db".into())
        );
        assert_eq!(
            set("fs#1.tags-=db"),
            Change::Remove(kw("fs#1.tags"), "db".into())
        );
        Change::parse_assignment("fs#1.mnt").unwrap_err();
        Change::parse_assignment("fs#1.tags+=a b").unwrap_err();
    }

    #[test]
    fn toml_set_keeps_comments_order_and_types() {
        let e = apply(
            &toml_path(),
            TOML,
            &[
                set("fs#1.mnt=/srv/data"),
                set("ip#1.netmask=16"),
                set("fs#1.disable=true"),
            ],
        )
        .unwrap();
        assert!(e.changed);
        assert_eq!(
            e.text,
            TOML.replace(
                "mnt = \"/srv/web\"   # the data",
                "mnt = \"/srv/data\"   # the data"
            )
            .replace("netmask = 24", "netmask = 16")
            .replace("type = \"ext4\"\n", "type = \"ext4\"\ndisable = true\n")
        );
        assert_eq!(
            get(&toml_path(), &e.text, &kw("fs#1.mnt"))
                .unwrap()
                .unwrap(),
            "/srv/data"
        );
        assert_eq!(
            get(&toml_path(), &e.text, &kw("nodes")).unwrap().unwrap(),
            "n1 n2"
        );
        assert_eq!(
            get(&toml_path(), &e.text, &kw("ip#1.netmask"))
                .unwrap()
                .unwrap(),
            "16"
        );
        assert_eq!(
            get(&toml_path(), &e.text, &kw("ip#1.gateway")).unwrap(),
            None
        );
        assert!(e.service.resources.iter().any(|r| r.common.disable));
    }

    #[test]
    fn toml_values_that_look_typed_fall_back_to_strings() {
        // `app` is a string: 123 is written "123"; `restart` a number, kept a number.
        let e = apply(&toml_path(), TOML, &[set("app=123"), set("fs#1.restart=2")]).unwrap();
        assert!(e.text.contains("app = \"123\""), "{}", e.text);
        assert!(e.text.contains("restart = 2"), "{}", e.text);
        // Lists: words, one at a time.
        let e = apply(&toml_path(), TOML, &[set("nodes+=n3"), set("nodes-=n1")]).unwrap();
        assert!(
            e.text
                .contains("nodes = [\"n2\", \"n3\"]  # preferred first"),
            "{}",
            e.text
        );
    }

    #[test]
    fn removing_a_word_from_an_absent_key_changes_nothing() {
        for (path, text) in [(toml_path(), TOML), (ini_path(), INI)] {
            let e = apply(&path, text, &[set("fs#1.tags-=old")]).unwrap();
            assert!(!e.changed, "{}: {}", path.display(), e.text);
            assert_eq!(e.text, text);
            let e = apply(&path, text, &[set("fs#9.tags-=old")]).unwrap();
            assert!(!e.changed, "no new section: {}", e.text);
            // Present: the word goes (and the key stays, possibly empty, as written).
            let e = apply(&path, text, &[set("fs#1.tags+=a"), set("fs#1.tags+=b")]).unwrap();
            let e = apply(&path, &e.text, &[set("fs#1.tags-=a")]).unwrap();
            assert_eq!(get(&path, &e.text, &kw("fs#1.tags")).unwrap().unwrap(), "b");
        }
    }

    #[test]
    fn toml_arrays_stay_arrays_and_inline_tables_take_keys() {
        let e = apply(&toml_path(), TOML, &[set("nodes=n1 n3")]).unwrap();
        assert!(
            e.text
                .contains("nodes = [\"n1\", \"n3\"]  # preferred first"),
            "{}",
            e.text
        );
        let text = "[vg]\n1 = { vgname = \"a\" }\n";
        let e = apply(
            &toml_path(),
            text,
            &[set("vg#1.vgname=b"), set("vg#2.vgname=c")],
        )
        .unwrap();
        assert_eq!(e.service.resources.len(), 2, "{}", e.text);
        assert_eq!(
            get(&toml_path(), &e.text, &kw("vg#2.vgname"))
                .unwrap()
                .unwrap(),
            "c"
        );
        assert_eq!(
            get(&toml_path(), &e.text, &kw("vg#1.vgname"))
                .unwrap()
                .unwrap(),
            "b"
        );
    }

    #[test]
    fn toml_new_resource_and_unset() {
        let e = apply(
            &toml_path(),
            TOML,
            &[
                set("fs#2.dev=/srv/b.img"),
                set("fs#2.mnt=/srv/b"),
                set("fs#2.type=ext4"),
            ],
        )
        .unwrap();
        // The new table goes after its kind's others, `[fs.2]` (no `[fs]`).
        assert_eq!(
            e.text,
            TOML.replace(
                "[ip.1]",
                "[fs.2]\ndev = \"/srv/b.img\"\nmnt = \"/srv/b\"\ntype = \"ext4\"\n\n[ip.1]"
            )
        );
        assert_eq!(e.service.resources.len(), 3);
        let e = apply(&toml_path(), TOML, &[Change::Unset(kw("ip#1.netmask"))]).unwrap();
        assert_eq!(e.text, TOML.replace("netmask = 24\n", ""));
        // Unsetting what is not there changes nothing.
        let e = apply(&toml_path(), TOML, &[Change::Unset(kw("ip#1.gateway"))]).unwrap();
        assert!(!e.changed);
    }

    #[test]
    fn a_broken_result_is_refused_with_the_loader_error() {
        let err = apply(&toml_path(), TOML, &[set("ip#1.netmask=abc")]).unwrap_err();
        assert!(err.to_string().contains("netmask"), "{err}");
        let err = apply(&toml_path(), TOML, &[Change::Unset(kw("fs#1.mnt"))]).unwrap_err();
        assert!(matches!(err, EditError::Invalid(_)), "{err}");
        let err = apply(&toml_path(), TOML, &[set("fs#1.bogus=1")]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        // A new section berth has no kind for.
        let err = apply(&toml_path(), TOML, &[set("nosuch#1.x=1")]).unwrap_err();
        assert!(matches!(err, EditError::Invalid(_)), "{err}");
        // A file that is not TOML at all cannot be edited.
        let err = apply(&toml_path(), "[fs.1\n", &[set("fs#1.mnt=/x")]).unwrap_err();
        assert!(matches!(err, EditError::NotEditable { .. }), "{err}");
    }

    #[test]
    fn ini_stays_ini_with_comments_and_continuations() {
        let e = apply(
            &ini_path(),
            INI,
            &[
                set("fs#1.mnt=/srv/data"),
                set("fs#1.mnt_opt=ro"),
                set("ip#1.netmask=24"),
            ],
        )
        .unwrap();
        assert_eq!(
            e.text,
            INI.replace("mnt: /srv/web", "mnt: /srv/data")
                .replace("mnt_opt = rw,\n    noatime", "mnt_opt = ro")
                .replace(
                    "ipname = 192.0.2.10\n",
                    "ipname = 192.0.2.10\nnetmask = 24\n"
                )
        );
        assert_eq!(
            get(&ini_path(), INI, &kw("fs#1.mnt_opt")).unwrap().unwrap(),
            "rw, noatime"
        );
        assert_eq!(
            get(&ini_path(), INI, &kw("nodes")).unwrap().unwrap(),
            "n1 n2"
        );
        // Keys are case-insensitive, as the reader makes them.
        assert_eq!(
            get(&ini_path(), INI, &kw("fs#1.MNT")).unwrap().unwrap(),
            "/srv/web"
        );
        let e = apply(
            &ini_path(),
            INI,
            &[Change::Unset(kw("fs#1.mnt_opt")), set("nodes+=n3")],
        )
        .unwrap();
        assert_eq!(
            e.text,
            INI.replace("mnt_opt = rw,\n    noatime\n", "")
                .replace("n1 n2", "n1 n2 n3")
        );
    }

    #[test]
    fn ini_new_sections() {
        let e = apply(
            &ini_path(),
            INI,
            &[
                set("fs#2.dev=/b.img"),
                set("fs#2.mnt=/srv/b"),
                set("fs#2.type=ext4"),
            ],
        )
        .unwrap();
        assert!(e.text.starts_with(INI), "{}", e.text);
        assert!(
            e.text
                .ends_with("\n[fs#2]\ndev = /b.img\nmnt = /srv/b\ntype = ext4\n"),
            "{}",
            e.text
        );
        // A missing DEFAULT goes before the first section.
        let text = "# x\n[vg#1]\nvgname = v\n";
        let e = apply(&ini_path(), text, &[set("app=X")]).unwrap();
        assert_eq!(e.text, "# x\n[DEFAULT]\napp = X\n\n[vg#1]\nvgname = v\n");
    }

    #[test]
    fn ini_unknown_keys_are_new_warnings() {
        let e = apply(&ini_path(), INI, &[set("fs#1.bogus=1")]).unwrap();
        assert_eq!(e.new_warnings.len(), 1, "{:?}", e.new_warnings);
        assert_eq!(e.new_warnings[0].key.as_deref(), Some("bogus"));
        let e = apply(&ini_path(), INI, &[set("fs#1.mnt=/x")]).unwrap();
        assert!(e.new_warnings.is_empty());
    }
}
