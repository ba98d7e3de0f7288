//! `services/<svc>.toml`: `[service]` and `[<kind>.<n>]` tables.

use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::compat::nearest;
use super::error::{ConfigError, ConfigErrorKind};
use super::raw::{Lines, RawEntry, RawFile, RawSection, RawValue, SectionKind, line_of};
use crate::rid::{Kind, Rid, RidId};

/// A TOML syntax (or serde) error of `file`, at the line its span points to.
pub(crate) fn syntax_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map(|s| line_of(text, s.start));
    ConfigError::at(
        file,
        line,
        None,
        None,
        ConfigErrorKind::Syntax(e.message().trim().to_string()),
    )
}

/// The file's sections. A syntax error stops the reading (`Err`); a section berth does not know,
/// or a resource table of a bad shape, goes to `errors` and the reading goes on, so one read
/// reports every such section along with the other errors of the file.
pub(crate) fn parse(
    file: &Path,
    text: &str,
    errors: &mut Vec<ConfigError>,
) -> Result<RawFile, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| syntax_error(file, text, &e))?;
    let mut out = RawFile::default();
    let lines = Lines::new(text);
    for (key, value) in doc.get_ref().iter() {
        let line = lines.line(key.span().start);
        let name: &str = key.get_ref();
        let bad_section = |section: &str| {
            let known = ["service", "env"]
                .into_iter()
                .chain(Kind::ALL.map(Kind::as_str));
            let suggestion = nearest(section, known).filter(|k| *k != section);
            ConfigError::at(
                file,
                Some(line),
                Some(section),
                None,
                ConfigErrorKind::UnknownSection {
                    suggestion: suggestion.map(|k| match k {
                        "service" | "env" => format!("[{k}]"),
                        _ => format!("[{k}.<n>]"),
                    }),
                },
            )
        };
        if name == "env" || name == "service" {
            let Some(table) = as_table(value) else {
                errors.push(bad_section(name));
                continue;
            };
            let kind = if name == "env" {
                SectionKind::Env
            } else {
                SectionKind::Service
            };
            out.sections
                .push(section(&lines, name.to_string(), kind, line, table));
            continue;
        }
        let (Ok(kind), Some(table)) = (name.parse::<Kind>(), as_table(value)) else {
            errors.push(bad_section(name));
            continue;
        };
        for (index, body) in table.iter() {
            let line = lines.line(index.span().start);
            let shown = format!("{name}.{}", index.get_ref());
            let Ok(id) = index.get_ref().parse::<RidId>() else {
                errors.push(ConfigError::at(
                    file,
                    Some(line),
                    Some(&shown),
                    None,
                    ConfigErrorKind::Syntax(format!(
                        "a resource table is named [{name}.<n>] with n a whole number, or \
                         [{name}.<name>] with a name of letters, digits, '_' and '-'"
                    )),
                ));
                continue;
            };
            let Some(body) = as_table(body) else {
                errors.push(ConfigError::at(
                    file,
                    Some(line),
                    Some(&shown),
                    None,
                    ConfigErrorKind::Syntax(format!("[{shown}] must be a table of keys")),
                ));
                continue;
            };
            let rid = Rid::with_id(kind, id);
            out.sections.push(section(
                &lines,
                rid.to_string(),
                SectionKind::Resource(rid),
                line,
                body,
            ));
        }
    }
    out.sections.sort_by_key(|s| s.line);
    Ok(out)
}

fn as_table<'a, 'i>(value: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

fn section(
    lines: &Lines,
    name: String,
    kind: SectionKind,
    line: usize,
    table: &DeTable<'_>,
) -> RawSection {
    let mut entries: Vec<RawEntry> = table
        .iter()
        .map(|(k, v)| {
            RawEntry::new(
                k.get_ref().to_string(),
                raw_value(v.get_ref()),
                lines.line(k.span().start),
            )
        })
        .collect();
    entries.sort_by_key(|e| e.line);
    RawSection {
        name,
        kind,
        line,
        entries,
        refused: false,
    }
}

fn raw_value(v: &DeValue<'_>) -> RawValue {
    match v {
        DeValue::String(s) => RawValue::Str(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => RawValue::Int(n),
                Err(_) => RawValue::Other(i.to_string()),
            }
        }
        DeValue::Float(x) => match x.as_str().replace('_', "").parse() {
            Ok(f) => RawValue::Float(f),
            Err(_) => RawValue::Other(x.to_string()),
        },
        DeValue::Boolean(b) => RawValue::Bool(*b),
        DeValue::Array(items) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(s) => Some(s.to_string()),
                    _ => None,
                })
                .collect();
            match strings {
                Some(l) => RawValue::List(l),
                None => RawValue::Other("an array of non-strings".to_string()),
            }
        }
        DeValue::Datetime(d) => RawValue::Other(d.to_string()),
        DeValue::Table(_) => RawValue::Other("a table".to_string()),
    }
}
