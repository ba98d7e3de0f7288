//! The shape both file formats are read into before the keyword layer types them.

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
}

/// What a section is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    /// `[service]` / `[DEFAULT]`.
    Service,
    /// A resource section.
    Resource(crate::rid::Rid),
}

/// One section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawSection {
    /// As it is named in messages: `service`, `DEFAULT`, `fs#1`.
    pub name: String,
    pub kind: SectionKind,
    pub line: usize,
    pub entries: Vec<RawEntry>,
}

/// A whole file: its sections, plus warnings the reader already has (INI sections berth skips).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawFile {
    pub sections: Vec<RawSection>,
    pub warnings: Vec<super::ConfigWarning>,
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
