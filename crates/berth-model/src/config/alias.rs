//! A keyword alias row: the type of `compat`'s service aliases and of each kind module's
//! `ALIASES` (a leaf, so the kind modules can name it without importing `compat`).

use crate::rid::Kind;

/// One keyword alias: `alias` in a section of `kind` (`None`: `[DEFAULT]`) is `canonical`.
#[derive(Debug, Clone, Copy)]
pub struct Alias {
    /// The section kind; `None` for the service section.
    pub kind: Option<Kind>,
    /// The name OpenSVC also accepts.
    pub alias: &'static str,
    /// berth's name.
    pub canonical: &'static str,
    /// Where the alias comes from.
    pub origin: &'static str,
}

pub(crate) const fn alias(
    kind: Option<Kind>,
    alias: &'static str,
    canonical: &'static str,
    origin: &'static str,
) -> Alias {
    Alias {
        kind,
        alias,
        canonical,
        origin,
    }
}
