//! Reading a service file: the bytes to the raw sections (`tomlfile`, `ini`), OpenSVC's
//! spellings to berth's (`compat`), the raw sections to the typed service (`keywords`).

use std::path::Path;

use super::compat::{self, LoadContext};
use super::error::{ConfigError, ConfigErrorKind, Diagnostics};
use super::raw::Format;
use super::service::ServiceConfig;
use super::{ini, keywords, tomlfile};

/// What one read of a service file found: the service when there was no error, and every
/// error and warning (each naming file, line, section and key), in line order. What
/// `svc validate config` reports.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The service, when the file has no error.
    pub service: Option<ServiceConfig>,
    /// Every error and warning.
    pub diagnostics: Diagnostics,
}

impl Checked {
    /// The service, or the first error carrying the others and the warnings.
    pub fn into_result(self) -> Result<ServiceConfig, ConfigError> {
        match (
            self.service,
            ConfigError::from_diagnostics(self.diagnostics),
        ) {
            (_, Some(e)) => Err(e),
            (Some(s), None) => Ok(s),
            (None, None) => Err(ConfigError::file(
                Path::new(""),
                ConfigErrorKind::Syntax("no service and no error: a berth bug".to_string()),
            )),
        }
    }
}

/// The largest service file berth reads: 4 MiB, about 60,000 resources. Larger is refused
/// with a clear error rather than parsed (a 10 MB file is a mistake, not a service).
pub const MAX_SERVICE_FILE_BYTES: u64 = 4 * 1024 * 1024;

impl ServiceConfig {
    /// Parse the bytes of a service file read from `source`: refused past
    /// [`MAX_SERVICE_FILE_BYTES`], and when not UTF-8 (naming the line and byte offset of the
    /// first bad byte). No node is known: see [`ServiceConfig::check_bytes`].
    pub fn parse_bytes(source: &Path, bytes: &[u8]) -> Result<ServiceConfig, ConfigError> {
        Self::check_bytes(source, bytes, &LoadContext::default()).into_result()
    }

    /// Parse `text` read from `source`; the service name is the file stem. Refused past
    /// [`MAX_SERVICE_FILE_BYTES`]. No node is known (no `key@node` applies, `{nodename}` is an
    /// error): loads on a node use [`ServiceConfig::parse_on`].
    pub fn parse(source: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
        Self::check(source, text, &LoadContext::default()).into_result()
    }

    /// Parse `text` as node `load` sees it (scoping, `{nodename}`).
    pub fn parse_on(
        source: &Path,
        text: &str,
        load: &LoadContext,
    ) -> Result<ServiceConfig, ConfigError> {
        Self::check(source, text, load).into_result()
    }

    /// [`ServiceConfig::check`] of bytes: not UTF-8 is an error naming the line and offset.
    pub fn check_bytes(source: &Path, bytes: &[u8], load: &LoadContext) -> Checked {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::check(source, text, load),
            Err(e) => {
                let offset = e.valid_up_to();
                let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
                Checked {
                    service: None,
                    diagnostics: Diagnostics {
                        errors: vec![ConfigError::at(
                            source,
                            Some(line),
                            None,
                            None,
                            ConfigErrorKind::NotUtf8 {
                                byte: bytes.get(offset).copied().unwrap_or(0),
                                offset,
                            },
                        )],
                        warnings: Vec::new(),
                    },
                }
            }
        }
    }

    /// Read `text` from `source` as node `load` sees it, and report every error and warning
    /// at once (a bad keyword does not hide the next, nor warnings an error).
    pub fn check(source: &Path, text: &str, load: &LoadContext) -> Checked {
        let fail = |e: ConfigError| Checked {
            service: None,
            diagnostics: Diagnostics {
                errors: vec![e],
                warnings: Vec::new(),
            },
        };
        if text.len() as u64 > MAX_SERVICE_FILE_BYTES {
            return fail(ConfigError::file(
                source,
                ConfigErrorKind::TooLarge {
                    bytes: text.len() as u64,
                    limit: MAX_SERVICE_FILE_BYTES,
                },
            ));
        }
        let Some(format) = Format::from_path(source) else {
            return fail(ConfigError::file(
                source,
                ConfigErrorKind::Syntax(
                    "not a service file name (expected <svc>.toml, <svc>.env or <svc>.conf)"
                        .to_string(),
                ),
            ));
        };
        let Some(name) = source.file_stem().and_then(|s| s.to_str()) else {
            return fail(ConfigError::file(
                source,
                ConfigErrorKind::Syntax("the file name is not valid UTF-8".to_string()),
            ));
        };
        let name = name.to_string();
        if let Err(why) = keywords::validate_service_name(&name) {
            return fail(ConfigError::file(
                source,
                ConfigErrorKind::BadServiceName { name, why },
            ));
        }
        let mut diagnostics = Diagnostics::default();
        let mut raw = match format {
            Format::Toml => match tomlfile::parse(source, text, &mut diagnostics.errors) {
                Ok(raw) => raw,
                Err(e) => return fail(e),
            },
            Format::Ini => ini::parse(source, text, &mut diagnostics.errors),
        };
        diagnostics.warnings.append(&mut raw.warnings);
        let written = compat::prepare(source, format, &name, &mut raw, load, &mut diagnostics);
        let mut service = keywords::build(name, source, format, raw, written, &mut diagnostics);
        if let (Some(s), Some(node)) = (service.as_mut(), load.nodename.as_deref()) {
            let settings = &s.settings;
            for r in &mut s.resources {
                r.common.always_on_here = super::service::always_on_names(
                    &r.common.always_on,
                    node,
                    &settings.nodes,
                    &settings.drpnodes,
                );
            }
        }
        diagnostics.sort();
        if let Some(s) = service.as_mut() {
            s.warnings = diagnostics.warnings.clone();
        }
        Checked {
            service,
            diagnostics,
        }
    }
}
