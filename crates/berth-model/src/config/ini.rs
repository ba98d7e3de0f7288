//! OpenSVC INI service files (`<svc>.env`, `<svc>.conf`), read as operators write them:
//! `[DEFAULT]` and `[<kind>#<n>]` sections, `key = value` (or `key: value`), `#` and `;` comments,
//! indented continuation lines. Sections of kinds berth does not run are warnings, not errors.

use std::path::Path;

use super::raw::{RawEntry, RawFile, RawSection, RawValue, SectionKind};
use super::{ConfigError, ConfigErrorKind, ConfigWarning};
use crate::rid::Rid;

pub(crate) fn parse(file: &Path, text: &str) -> Result<RawFile, ConfigError> {
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
            if let Some(done) = current.take() {
                out.sections.push(done);
            }
            skipping = None;
            if name == "DEFAULT" {
                current = Some(RawSection {
                    name: "DEFAULT".into(),
                    kind: SectionKind::Service,
                    line,
                    entries: Vec::new(),
                });
                continue;
            }
            match name.parse::<Rid>() {
                Ok(rid) => {
                    current = Some(RawSection {
                        name: name.to_string(),
                        kind: SectionKind::Resource(rid),
                        line,
                        entries: Vec::new(),
                    })
                }
                Err(e) => {
                    out.warnings.push(ConfigWarning {
                        file: file.to_path_buf(),
                        line,
                        section: name.to_string(),
                        key: None,
                        message: format!("section ignored: berth does not run it ({e})"),
                    });
                    skipping = Some(name.to_string());
                }
            }
            continue;
        }
        if skipping.is_some() {
            continue;
        }
        let Some(section) = current.as_mut() else {
            return Err(ConfigError::at(
                file,
                Some(line),
                None,
                None,
                ConfigErrorKind::Syntax("a key before any [section] header".to_string()),
            ));
        };
        let split = trimmed.find(['=', ':']).ok_or_else(|| {
            ConfigError::at(
                file,
                Some(line),
                Some(&section.name),
                None,
                ConfigErrorKind::Syntax(format!("expected `key = value`, found {trimmed:?}")),
            )
        })?;
        // Keys are case-insensitive, as Python's configparser (OpenSVC's reader) makes them.
        let key = trimmed[..split].trim().to_ascii_lowercase();
        let value = trimmed[split + 1..].trim().to_string();
        if key.is_empty() {
            return Err(ConfigError::at(
                file,
                Some(line),
                Some(&section.name),
                None,
                ConfigErrorKind::Syntax(format!("a value with no key: {trimmed:?}")),
            ));
        }
        section.entries.push(RawEntry {
            key,
            value: RawValue::Str(value),
            line,
        });
    }
    if let Some(done) = current.take() {
        out.sections.push(done);
    }
    Ok(out)
}
