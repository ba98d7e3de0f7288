//! The shape both file formats are read into before the keyword layer types them.

use std::path::Path;

use serde::Serialize;

/// A value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    /// A string (every INI value is one).
    Str(String),
    /// A TOML integer.
    Int(i64),
    /// A TOML float.
    Float(f64),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array of strings.
    List(Vec<String>),
    /// A TOML value of a shape no keyword takes (table, datetime, mixed array).
    Other(String),
}

impl RawValue {
    /// The value as the user wrote it, for messages.
    pub(crate) fn shown(&self) -> String {
        match self {
            RawValue::Str(s) | RawValue::Other(s) => s.clone(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Float(x) => x.to_string(),
            RawValue::Bool(b) => b.to_string(),
            RawValue::List(l) => format!("{l:?}"),
        }
    }
}

/// One `key = value`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawEntry {
    pub key: String,
    pub value: RawValue,
    pub line: usize,
    /// The key as the file spells it, when the compatibility layer changed it (an alias such
    /// as `image`, a scoped key such as `ipdev@n1`): messages name it as written.
    pub shown: Option<String>,
}

impl RawEntry {
    /// A key as written.
    pub(crate) fn new(key: String, value: RawValue, line: usize) -> Self {
        RawEntry {
            key,
            value,
            line,
            shown: None,
        }
    }

    /// The key as the file spells it.
    pub(crate) fn written(&self) -> &str {
        self.shown.as_deref().unwrap_or(&self.key)
    }
}

/// What a section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// `[service]` / `[DEFAULT]`.
    Service,
    /// A resource section.
    Resource(crate::rid::Rid),
    /// OpenSVC's `[env]`: keys for `{env.KEY}` references, no resource.
    Env,
    /// OpenSVC v2/v3 `[disk#N]`: a vg resource when its `type` is `vg` or `lvm`, else refused.
    Disk(crate::rid::RidId),
}

/// One section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawSection {
    /// As it is named in messages: `service`, `DEFAULT`, `fs#1`.
    pub name: String,
    pub kind: SectionKind,
    pub line: usize,
    pub entries: Vec<RawEntry>,
    /// Refused as a whole (a driver type berth does not have): its keywords are not read.
    pub refused: bool,
}

/// A whole file: its sections, plus warnings the reader already has (INI sections berth skips).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawFile {
    pub sections: Vec<RawSection>,
    pub warnings: Vec<super::error::ConfigWarning>,
}

/// 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Line numbers of byte offsets in one text, each found in O(log n): the offsets of its
/// newlines, gathered once. (Counting newlines per key made TOML parsing quadratic.)
#[derive(Debug)]
pub(crate) struct Lines(Vec<usize>);

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// 1-based line of byte `offset`, as [`line_of`] counts it.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// The syntax a service file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// berth's own `services/<svc>.toml`.
    Toml,
    /// OpenSVC's `services/<svc>.env` or `.conf`.
    Ini,
}

impl Format {
    /// The format a service file name implies, if it is a service file at all.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "env" | "conf" => Some(Format::Ini),
            _ => None,
        }
    }
}

/// A section as written, with canonical key names and the values as they are (scoped keys and
/// references kept): what `print config` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrittenSection {
    /// The section name as written (`DEFAULT`, `fs#1`, `env`; TOML: `service`, `fs#1`).
    pub name: String,
    /// `(canonical key[@scope], value)`, in file order.
    pub(crate) entries: Vec<(String, RawValue)>,
}

/// The file as written, canonical names, in its own syntax.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    pub(crate) format: Option<Format>,
    pub(crate) sections: Vec<WrittenSection>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_agree_with_line_of() {
        let text = "a\n\nbc\nd";
        let lines = Lines::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(lines.line(offset), line_of(text, offset), "offset {offset}");
        }
    }
}
