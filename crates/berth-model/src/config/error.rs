//! Config errors and warnings: each names the file, and where known the line, section and key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What is wrong with a service file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file does not parse.
    #[error("{0}")]
    Syntax(String),
    /// A key berth does not know (TOML files).
    #[error("unknown key (known keys here: {known})")]
    UnknownKey {
        /// The keys the section takes.
        known: String,
    },
    /// A section berth does not know (TOML files).
    #[error(
        "unknown section (expected [service], [env] or [<kind>.<n>] with kind {}){}",
        crate::Kind::names(", "),
        did_you_mean(.suggestion.as_deref())
    )]
    UnknownSection {
        /// The nearest name berth knows, when the section looks like a typo of it.
        suggestion: Option<String>,
    },
    /// An INI section that is neither `DEFAULT`, `env` nor `<kind>#<n>` of an OpenSVC kind: a
    /// typo, never a resource quietly lost. (OpenSVC kinds berth does not run are warnings.)
    #[error("unknown section: {why}{}", did_you_mean(.suggestion.as_deref()))]
    UnknownIniSection {
        /// What is wrong with the name.
        why: String,
        /// The nearest name OpenSVC knows, when the section looks like a typo of it.
        suggestion: Option<String>,
    },
    /// A mandatory key is absent.
    #[error("missing mandatory key")]
    MissingKey,
    /// A value of the wrong type or shape.
    #[error("bad value {value:?}: {expected}")]
    BadValue {
        /// The value as written.
        value: String,
        /// What was expected instead.
        expected: String,
    },
    /// Two sections for one rid.
    #[error("duplicate resource id {rid} (first defined on line {first_line})")]
    DuplicateRid {
        /// The rid.
        rid: String,
        /// Where it was first defined.
        first_line: usize,
    },
    /// The file is not UTF-8; the error's line is the line of the first bad byte.
    #[error("not valid UTF-8: byte 0x{byte:02x} at byte offset {offset}")]
    NotUtf8 {
        /// The first byte that is not part of a UTF-8 sequence.
        byte: u8,
        /// Its offset from the start of the file.
        offset: usize,
    },
    /// The file is larger than a service file may be.
    #[error("the file is {bytes} bytes or more, over the {limit}-byte limit of a service file")]
    TooLarge {
        /// Its size (at least; a file is not read past the limit).
        bytes: u64,
        /// [`crate::config::MAX_SERVICE_FILE_BYTES`].
        limit: u64,
    },
    /// A driver type berth does not have (`[container#1] type = oci`).
    #[error("type {typ} is not supported (berth has: {supported})")]
    UnsupportedType {
        /// The type as written.
        typ: String,
        /// The types berth has for this kind.
        supported: String,
    },
    /// A `{...}` reference that cannot be evaluated: unknown, circular, or not set.
    #[error("reference {{{reference}}}: {why}")]
    Reference {
        /// The reference, without its braces.
        reference: String,
        /// Why it cannot be evaluated.
        why: String,
    },
    /// A resource a flex service cannot have (a `vg`).
    #[error("a {kind} cannot be part of a flex service (topology = flex): {why}")]
    NotInFlex {
        /// The resource's kind.
        kind: String,
        /// Why.
        why: String,
    },
    /// The file name does not make a service name.
    #[error("bad service name {name:?}: {why}")]
    BadServiceName {
        /// The name.
        name: String,
        /// Why.
        why: String,
    },
}

/// ` (did you mean X?)`, or nothing.
fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

/// A service file error (boxed: errors are rare, results are everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<ConfigErrorDetail>);

/// Where a service file error is, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrorDetail {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The section (`fs#1`, `service`, `DEFAULT`), when known.
    pub section: Option<String>,
    /// The key, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
    /// The other errors of the same file, in line order (a load reports them all).
    pub also: Vec<ConfigError>,
    /// The warnings of the same file: an error never hides them.
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigError {
    /// An error about the file as a whole.
    pub fn file(file: &Path, kind: ConfigErrorKind) -> Self {
        Self::at(file, None, None, None, kind)
    }

    /// An error at a place in the file.
    pub fn at(
        file: &Path,
        line: Option<usize>,
        section: Option<&str>,
        key: Option<&str>,
        kind: ConfigErrorKind,
    ) -> Self {
        ConfigError(Box::new(ConfigErrorDetail {
            file: file.to_path_buf(),
            line,
            section: section.map(str::to_string),
            key: key.map(str::to_string),
            kind,
            also: Vec::new(),
            warnings: Vec::new(),
        }))
    }

    /// The first of `diagnostics`' errors carrying the others and every warning; `None` when
    /// there is no error.
    pub fn from_diagnostics(diagnostics: Diagnostics) -> Option<ConfigError> {
        let mut errors = diagnostics.errors.into_iter();
        let mut first = errors.next()?;
        first.0.also.extend(errors);
        first.0.warnings = diagnostics.warnings;
        Some(first)
    }

    /// Every error of the file: this one, then the others.
    pub fn all(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.0.also.iter())
    }
}

/// Every problem one read of a service file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// The errors, in line order: any makes the file unusable.
    pub errors: Vec<ConfigError>,
    /// The warnings, in line order: things berth read and does not act on.
    pub warnings: Vec<ConfigWarning>,
}

impl Diagnostics {
    /// Sort both lists by line (a file-wide problem first), keeping the order of equal lines.
    pub fn sort(&mut self) {
        self.errors.sort_by_key(|e| e.line.unwrap_or(0));
        self.warnings.sort_by_key(|w| w.line);
    }
}

fn place(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    line: Option<usize>,
    section: Option<&str>,
    key: Option<&str>,
) -> fmt::Result {
    write!(f, "{}", file.display())?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
    }
    f.write_str(":")?;
    if let Some(section) = section {
        write!(f, " [{section}]")?;
    }
    if let Some(key) = key {
        write!(f, " {key}:")?;
    }
    Ok(())
}

impl std::ops::Deref for ConfigError {
    type Target = ConfigErrorDetail;
    fn deref(&self) -> &ConfigErrorDetail {
        &self.0
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        place(
            f,
            &self.file,
            self.line,
            self.section.as_deref(),
            self.key.as_deref(),
        )?;
        write!(f, " {}", self.kind)?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        for w in &self.warnings {
            write!(f, "\nwarning: {w}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Something in an INI file berth read but does not act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigWarning {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line.
    pub line: usize,
    /// The section.
    pub section: String,
    /// The key, or none for a whole section.
    pub key: Option<String>,
    /// What berth does with it.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        place(
            f,
            &self.file,
            Some(self.line),
            Some(&self.section),
            self.key.as_deref(),
        )?;
        write!(f, " {}", self.message)
    }
}
