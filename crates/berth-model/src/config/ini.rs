//! OpenSVC INI service files (`<svc>.env`, `<svc>.conf`), read as operators write them:
//! `[DEFAULT]` and `[<kind>#<n>]` sections, `key = value` (or `key: value`), `#` and `;` comments,
//! indented continuation lines. Sections of OpenSVC kinds berth does not run are warnings; a
//! section that is no OpenSVC kind at all (a typo: `[containr#1]`) is an error suggesting the
//! nearest kind.
//! A bad line is an error and reading goes on, so one read reports every bad line.

use std::path::Path;

use super::compat::{OPENSVC_KINDS, nearest};
use super::error::{ConfigError, ConfigErrorKind, ConfigWarning};
use super::raw::{RawEntry, RawFile, RawSection, RawValue, SectionKind};
use crate::rid::{Kind, Rid, RidError, split_rid};

pub(crate) fn parse(file: &Path, text: &str, errors: &mut Vec<ConfigError>) -> RawFile {
    let mut out = RawFile::default();
    // The section being read; `None` before the first header, or inside a skipped section.
    let mut current: Option<RawSection> = None;
    let mut skipping: Option<String> = None;
    for (i, raw_line) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let continuation = raw_line.starts_with([' ', '\t']);
        if continuation && !trimmed.starts_with('[') {
            if skipping.is_some() {
                continue;
            }
            match current.as_mut().and_then(|s| s.entries.last_mut()) {
                Some(RawEntry {
                    value: RawValue::Str(v),
                    ..
                }) => {
                    if !v.is_empty() {
                        v.push(' ');
                    }
                    v.push_str(trimmed);
                    continue;
                }
                _ => {
                    // An indented key line right after a header: read it as a key line.
                }
            }
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            if let Some(done) = current.take() {
                out.sections.push(done);
            }
            (current, skipping) = (None, None);
            match section(file, line, header, trimmed) {
                Ok(Ok(s)) => current = Some(s),
                Ok(Err(warning)) => {
                    skipping = Some(warning.section.clone());
                    out.warnings.push(warning);
                }
                Err(e) => {
                    skipping = Some(trimmed.to_string());
                    errors.push(e);
                }
            }
            continue;
        }
        if skipping.is_some() {
            continue;
        }
        let Some(section) = current.as_mut() else {
            errors.push(ConfigError::at(
                file,
                Some(line),
                None,
                None,
                ConfigErrorKind::Syntax("a key before any [section] header".to_string()),
            ));
            continue;
        };
        match entry(file, line, &section.name, trimmed) {
            Ok(entry) => section.entries.push(entry),
            Err(e) => errors.push(e),
        }
    }
    if let Some(done) = current.take() {
        out.sections.push(done);
    }
    out
}

/// A `[header]` line (`header` follows the `[`): the section it opens, or, for a kind berth does
/// not run, the warning that it is skipped.
fn section(
    file: &Path,
    line: usize,
    header: &str,
    trimmed: &str,
) -> Result<Result<RawSection, ConfigWarning>, ConfigError> {
    let name = header.strip_suffix(']').ok_or_else(|| {
        ConfigError::at(
            file,
            Some(line),
            None,
            None,
            ConfigErrorKind::Syntax(format!("unterminated section header {trimmed:?}")),
        )
    })?;
    let name = name.trim();
    let skipped = |why: String| {
        Ok(Err(ConfigWarning {
            file: file.to_path_buf(),
            line,
            section: name.to_string(),
            key: None,
            message: format!("section ignored: berth does not run it ({why})"),
        }))
    };
    let unknown = |why: String, suggestion: Option<String>| {
        ConfigError::at(
            file,
            Some(line),
            Some(name),
            None,
            ConfigErrorKind::UnknownIniSection { why, suggestion },
        )
    };
    let kind = match name {
        "DEFAULT" => SectionKind::Service,
        "env" => SectionKind::Env,
        _ => match name.split_once('#') {
            // OpenSVC's internal sync of the service's own files, not a data replication: berth
            // keeps the file in step itself (its row is `sync#i0`).
            Some(("sync", "i0")) => {
                return skipped(
                    "sync#i0 is OpenSVC's sync of the service's own files; berth keeps them in \
                     step by itself"
                        .to_string(),
                );
            }
            // A kind berth runs: a bad id is an error, never a resource lost with a warning.
            Some((kind, _)) if kind == "disk" || kind.parse::<Kind>().is_ok() => {
                let (_, id) = split_rid(name).map_err(|e| {
                    ConfigError::at(
                        file,
                        Some(line),
                        Some(name),
                        None,
                        ConfigErrorKind::Syntax(e.to_string()),
                    )
                })?;
                match kind.parse::<Kind>() {
                    Ok(kind) => SectionKind::Resource(Rid::with_id(kind, id)),
                    Err(_) => SectionKind::Disk(id),
                }
            }
            Some((kind, _)) if OPENSVC_KINDS.contains(&kind) => {
                return skipped(format!("berth runs {}, not {kind}", Kind::names(", ")));
            }
            Some((kind, id)) => {
                let known = OPENSVC_KINDS.into_iter().chain(Kind::ALL.map(Kind::as_str));
                return Err(unknown(
                    format!("{kind} is not an OpenSVC resource kind"),
                    nearest(kind, known).map(|k| format!("[{k}#{id}]")),
                ));
            }
            None => {
                let known = ["DEFAULT", "env"]
                    .into_iter()
                    .chain(OPENSVC_KINDS)
                    .chain(Kind::ALL.map(Kind::as_str));
                let suggestion = nearest(name, known).map(|k| match k {
                    "DEFAULT" | "env" => format!("[{k}]"),
                    _ => format!("[{k}#1]"),
                });
                return Err(unknown(
                    format!(
                        "not DEFAULT, env nor a resource id: {}",
                        RidError::Shape(name.to_string())
                    ),
                    suggestion,
                ));
            }
        },
    };
    Ok(Ok(RawSection {
        name: name.to_string(),
        kind,
        line,
        entries: Vec::new(),
        refused: false,
    }))
}

/// A `key = value` (or `key: value`) line of section `section`.
fn entry(file: &Path, line: usize, section: &str, trimmed: &str) -> Result<RawEntry, ConfigError> {
    let syntax = |msg: String| {
        ConfigError::at(
            file,
            Some(line),
            Some(section),
            None,
            ConfigErrorKind::Syntax(msg),
        )
    };
    let split = trimmed
        .find(['=', ':'])
        .ok_or_else(|| syntax(format!("expected `key = value`, found {trimmed:?}")))?;
    // Keys are case-insensitive, as Python's configparser (OpenSVC's reader) makes them.
    let key = trimmed[..split].trim().to_ascii_lowercase();
    let value = trimmed[split + 1..].trim().to_string();
    if key.is_empty() {
        return Err(syntax(format!("a value with no key: {trimmed:?}")));
    }
    Ok(RawEntry::new(key, RawValue::Str(value), line))
}
