//! Reading one section's keywords: typed values, each error naming the file, line, section and
//! key, and the keywords left over (unknown in TOML, a warning in INI).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrorKind, ConfigWarning};
use super::raw::{Format, RawEntry, RawSection, RawValue};
use super::value::parse_duration;
use crate::rid::Kind;

/// Reads one section's keywords, remembering which were used.
pub(crate) struct Reader<'a> {
    pub(crate) file: &'a Path,
    pub(crate) format: Format,
    pub(crate) section: &'a RawSection,
    pub(crate) entries: HashMap<&'a str, &'a RawEntry>,
    pub(crate) used: BTreeSet<&'a str>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(
        file: &'a Path,
        format: Format,
        section: &'a RawSection,
        errors: &mut Vec<ConfigError>,
    ) -> Self {
        let mut entries: HashMap<&str, &RawEntry> = HashMap::new();
        for e in &section.entries {
            if let Some(first) = entries.get(e.key.as_str()) {
                errors.push(ConfigError::at(
                    file,
                    Some(e.line),
                    Some(&section.name),
                    Some(e.written()),
                    ConfigErrorKind::Syntax(format!(
                        "key given twice (first on line {})",
                        first.line
                    )),
                ));
                continue;
            }
            entries.insert(e.key.as_str(), e);
        }
        Reader {
            file,
            format,
            section,
            entries,
            used: BTreeSet::new(),
        }
    }

    /// An error about `key` in this section.
    pub(crate) fn error(&self, key: &str, kind: ConfigErrorKind) -> ConfigError {
        let (line, shown) = self
            .entries
            .get(key)
            .map_or((self.section.line, key), |e| (e.line, e.written()));
        ConfigError::at(
            self.file,
            Some(line),
            Some(&self.section.name),
            Some(shown),
            kind,
        )
    }

    /// A warning about `key` in this section.
    pub(crate) fn warning(&self, key: &str, message: &str) -> ConfigWarning {
        let (line, shown) = self
            .entries
            .get(key)
            .map_or((self.section.line, key), |e| (e.line, e.written()));
        ConfigWarning {
            file: self.file.to_path_buf(),
            line,
            section: self.section.name.clone(),
            key: Some(shown.to_string()),
            message: message.to_string(),
        }
    }

    pub(crate) fn bad(&self, key: &str, value: &RawValue, expected: &str) -> ConfigError {
        self.error(
            key,
            ConfigErrorKind::BadValue {
                value: value.shown(),
                expected: expected.to_string(),
            },
        )
    }

    pub(crate) fn take(&mut self, key: &'a str) -> Option<&'a RawValue> {
        let e = self.entries.get(key)?;
        self.used.insert(key);
        Some(&e.value)
    }

    /// A string keyword's value, without taking it (a kind's reader that picks its shape by
    /// `type`).
    pub(crate) fn peek_str(&self, key: &str) -> Option<String> {
        match &self.entries.get(key)?.value {
            RawValue::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A string keyword.
    pub(crate) fn string(&mut self, key: &'a str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(key, v, "expected a string")),
        }
    }

    /// A keyword whose value is one of `choices` (by name, case-insensitive); `default` when absent.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        key: &'a str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(text) = self.string(key)? else {
            return Ok(default);
        };
        let wanted = text.trim().to_ascii_lowercase();
        match choices.iter().find(|(name, _)| *name == wanted) {
            Some(&(_, v)) => Ok(v),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(self.bad(
                    key,
                    &RawValue::Str(text),
                    &format!("expected one of: {}", names.join(", ")),
                ))
            }
        }
    }

    /// A mandatory, non-empty string keyword.
    pub(crate) fn required(&mut self, key: &'a str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(s) => Err(self.bad(key, &RawValue::Str(s), "must not be empty")),
            None => Err(self.error(key, ConfigErrorKind::MissingKey)),
        }
    }

    /// A boolean keyword (INI: true/false, yes/no, on/off, 1/0).
    pub(crate) fn boolean(&mut self, key: &'a str, default: bool) -> Result<bool, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some(RawValue::Bool(b)) => Ok(*b),
            Some(v @ RawValue::Str(s)) if self.format == Format::Ini => {
                match s.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Ok(true),
                    "false" | "no" | "off" | "0" => Ok(false),
                    _ => Err(self.bad(key, v, "expected true or false")),
                }
            }
            Some(v) => Err(self.bad(key, v, "expected true or false")),
        }
    }

    /// A whole number keyword, between `min` and `max`.
    pub(crate) fn integer(
        &mut self,
        key: &'a str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, ConfigError> {
        let expected = format!("expected a whole number from {min} to {max}");
        let n = match self.take(key) {
            None => return Ok(None),
            Some(RawValue::Int(n)) => (*n, RawValue::Int(*n)),
            Some(v @ RawValue::Str(s)) if self.format == Format::Ini => match s.trim().parse() {
                Ok(n) => (n, v.clone()),
                Err(_) => return Err(self.bad(key, v, &expected)),
            },
            Some(v) => return Err(self.bad(key, v, &expected)),
        };
        if n.0 < min || n.0 > max {
            return Err(self.bad(key, &n.1, &expected));
        }
        Ok(Some(n.0))
    }

    /// A list of strings: a TOML array, or (INI, and TOML for convenience) a space-separated string.
    pub(crate) fn list(&mut self, key: &'a str) -> Result<Vec<String>, ConfigError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(RawValue::List(l)) => Ok(l.clone()),
            Some(RawValue::Str(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
            Some(v) => Err(self.bad(key, v, "expected a list of strings")),
        }
    }

    /// A list of words split as a shell would (quotes honoured), or a TOML array taken as is.
    pub(crate) fn words(&mut self, key: &'a str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::List(l)) => Ok(Some(l.clone())),
            Some(v @ RawValue::Str(s)) => shell_words::split(s)
                .map(Some)
                .map_err(|e| self.bad(key, v, &format!("cannot split it as a shell would: {e}"))),
            Some(v) => Err(self.bad(key, v, "expected a string or a list of strings")),
        }
    }

    /// A scalar (string, integer or float) as text, for keywords parsed further by the caller
    /// (`memory = "512m"` or `memory = 536870912`, `cpus = 1.5`).
    pub(crate) fn scalar(&mut self, key: &'a str) -> Result<Option<String>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s.clone())),
            Some(RawValue::Int(n)) => Ok(Some(n.to_string())),
            Some(RawValue::Float(x)) => Ok(Some(x.to_string())),
            Some(v) => Err(self.bad(key, v, "expected a string or a number")),
        }
    }

    /// An absolute path.
    pub(crate) fn abs_path(&mut self, key: &'a str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        let p = PathBuf::from(&s);
        if !p.is_absolute() {
            return Err(self.bad(key, &RawValue::Str(s), "expected an absolute path"));
        }
        if p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(self.bad(key, &RawValue::Str(s), "'..' is not allowed in the path"));
        }
        Ok(Some(p))
    }

    /// A duration: a number of seconds (TOML integer / float), or a string `500ms`, `5s`, `2m`.
    pub(crate) fn duration(
        &mut self,
        key: &'a str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let expected = "expected a duration such as 500ms, 5s, 2m, or a number of seconds";
        match self.take(key) {
            None => Ok(default),
            Some(RawValue::Int(n)) if *n >= 0 => Ok(Duration::from_secs(n.unsigned_abs())),
            Some(v @ RawValue::Float(x)) => {
                Duration::try_from_secs_f64(*x).map_err(|_| self.bad(key, v, expected))
            }
            Some(v @ RawValue::Str(s)) => {
                parse_duration(s).ok_or_else(|| self.bad(key, v, expected))
            }
            Some(v) => Err(self.bad(key, v, expected)),
        }
    }

    /// Every key of the section not read so far.
    pub(crate) fn leftovers(&self) -> Vec<&'a RawEntry> {
        let mut left: Vec<&RawEntry> = self
            .section
            .entries
            .iter()
            .filter(|e| !self.used.contains(e.key.as_str()))
            .collect();
        left.sort_by_key(|e| e.line);
        left
    }

    /// Close the section: keywords berth accepts and ignores are warnings naming them; unknown
    /// keys are errors (TOML) or warnings (INI).
    pub(crate) fn finish(
        self,
        known: &[&str],
        kind: Option<Kind>,
        errors: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigWarning>,
    ) {
        for e in self.leftovers() {
            let warn = |message: String| ConfigWarning {
                file: self.file.to_path_buf(),
                line: e.line,
                section: self.section.name.clone(),
                key: Some(e.written().to_string()),
                message,
            };
            if let Some(why) = ignored(kind, &e.key) {
                warnings.push(warn(format!("accepted and ignored: {why}")));
                continue;
            }
            match self.format {
                Format::Toml => errors.push(self.error(
                    &e.key,
                    ConfigErrorKind::UnknownKey {
                        known: known.join(", "),
                    },
                )),
                Format::Ini => {
                    warnings.push(warn("keyword not known to berth: ignored".to_string()))
                }
            }
        }
    }
}

/// Keywords OpenSVC users write that berth accepts and does not act on, with the reason
/// (`kind` `None`: the service section).
pub fn ignored(kind: Option<Kind>, key: &str) -> Option<&'static str> {
    const TRIGGERS: &[&str] = &[
        "start",
        "stop",
        "provision",
        "unprovision",
        "run",
        "sync_nodes",
    ];
    if let Some(rest) = key
        .strip_prefix("blocking_pre_")
        .or_else(|| key.strip_prefix("blocking_post_"))
        .or_else(|| key.strip_prefix("pre_"))
        .or_else(|| key.strip_prefix("post_"))
        && TRIGGERS.contains(&rest)
    {
        return Some("berth runs no triggers");
    }
    let why = match (kind, key) {
        (None, "priority") => "berth starts each service on its own, with no priority among them",
        (None, "parallel") => "berth starts the resources of a service one at a time",
        (None, "create_pg")
        | (None, "pg_cpus")
        | (None, "pg_mems")
        | (None, "pg_cpu_shares")
        | (None, "pg_cpu_quota")
        | (None, "pg_mem_limit")
        | (None, "pg_vmem_limit")
        | (None, "pg_mem_oom_control")
        | (None, "pg_mem_swappiness")
        | (None, "pg_blkio_weight") => "berth makes no process groups (use the container limits)",
        (None, "flex_primary") => "berth gives a flex service's instances no primary",
        (None, "status_schedule")
        | (None, "comp_schedule")
        | (None, "resinfo_schedule")
        | (None, "monitor_schedule")
        | (None, "sync_schedule")
        | (None, "run_schedule")
        | (None, "push_schedule") => "svcd checks every service on its own schedule",
        (None, "provision")
        | (None, "unprovision")
        | (None, "provision_timeout")
        | (None, "unprovision_timeout") => "berth does not provision",
        (None, "stonith")
        | (None, "hard_affinity")
        | (None, "hard_anti_affinity")
        | (None, "soft_affinity")
        | (None, "soft_anti_affinity")
        | (None, "affinity")
        | (None, "anti_affinity")
        | (None, "parents")
        | (None, "children") => "berth places services by nodes order only",
        (None, _) => return None,
        (Some(_), "shared") => "berth has no shared resources between services",
        (Some(_), "provision")
        | (Some(_), "unprovision")
        | (Some(_), "provision_requires")
        | (Some(_), "unprovision_requires") => "berth does not provision",
        (Some(_), "start_requires")
        | (Some(_), "stop_requires")
        | (Some(_), "sync_requires")
        | (Some(_), "run_requires") => "berth orders resources by kind only",
        (Some(_), "encap")
        | (Some(_), "restart_delay")
        | (Some(_), "no_preempt_abort")
        | (Some(_), "scsireserv")
        | (Some(_), "prkey")
        | (Some(_), "comment") => "berth does not use it",
        (Some(Kind::Fs), "vg") | (Some(Kind::Fs), "size") | (Some(Kind::Fs), "mkfs_opt") => {
            "berth does not provision: the filesystem must exist"
        }
        (Some(Kind::Fs), "stat_timeout")
        | (Some(Kind::Fs), "check_read")
        | (Some(Kind::Fs), "promote_rw")
        | (Some(Kind::Fs), "zone") => "berth does not use it",
        (Some(Kind::Vg), "pvs") | (Some(Kind::Vg), "options") => {
            "berth does not provision: the volume group must exist"
        }
        (Some(Kind::Container), "name") => "berth names the container <svc>.container.<rid id>",
        (Some(Kind::Container), "osvc_root_path")
        | (Some(Kind::Container), "guestos")
        | (Some(Kind::Container), "promote_rw")
        | (Some(Kind::Container), "log_outputs") => "berth does not use it",
        (Some(Kind::Ip), "check_carrier")
        | (Some(Kind::Ip), "alias")
        | (Some(Kind::Ip), "expose")
        | (Some(Kind::Ip), "network")
        | (Some(Kind::Ip), "provisioner") => "berth does not use it",
        _ => return None,
    };
    Some(why)
}

/// Collects the errors of one section, so one bad keyword does not hide the next.
pub(crate) struct Sink<'e>(pub(crate) &'e mut Vec<ConfigError>);

impl Sink<'_> {
    /// The value, or `None` with the error recorded.
    pub(crate) fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
}
