//! Resource ids (`fs#1`) and resource kinds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kinds of resource berth knows. A closed set: a new kind is one variant here,
/// one keyword table in `config::keywords` and one driver module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An IP address on an interface.
    Ip,
    /// An LVM volume group.
    Vg,
    /// A mounted filesystem.
    Fs,
    /// A container (type docker), run by the service's private dockerd.
    Container,
}

impl Kind {
    /// Every kind, in start order.
    pub const ALL: [Kind; 4] = [Kind::Ip, Kind::Vg, Kind::Fs, Kind::Container];

    /// Every kind's name, in start order: `ip, vg, fs, container` (for messages and help).
    pub fn names(sep: &str) -> String {
        Kind::ALL.map(Kind::as_str).join(sep)
    }

    /// The name used in rids, section names and partial actions (`startfs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ip => "ip",
            Kind::Vg => "vg",
            Kind::Fs => "fs",
            Kind::Container => "container",
        }
    }

    /// Position in the start order: ip, vg, fs, container.
    pub fn start_rank(self) -> u8 {
        match self {
            Kind::Ip => 0,
            Kind::Vg => 1,
            Kind::Fs => 2,
            Kind::Container => 3,
        }
    }

    /// Position in `print status`, as OpenSVC prints it: container, vg, fs, ip.
    pub fn display_rank(self) -> u8 {
        match self {
            Kind::Container => 0,
            Kind::Vg => 1,
            Kind::Fs => 2,
            Kind::Ip => 3,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that berth does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resource kind {0:?} (expected one of {kinds})", kinds = Kind::names(", "))]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// A resource id: `<kind>#<index>`, for example `fs#1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rid {
    /// The resource kind.
    pub kind: Kind,
    /// The index the service file gives it.
    pub index: u32,
}

impl Rid {
    /// A rid of `kind` with `index`.
    pub fn new(kind: Kind, index: u32) -> Self {
        Rid { kind, index }
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind, self.index)
    }
}

/// Why a string is not a rid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RidError {
    /// No `#` between kind and index.
    #[error("{0:?} is not a resource id (expected <kind>#<n>, e.g. fs#1)")]
    Shape(String),
    /// The kind part is not known.
    #[error("{0:?}: {1}")]
    Kind(String, UnknownKind),
    /// The index part is not a number.
    #[error("{0:?}: the index must be a whole number >= 0")]
    Index(String),
}

impl FromStr for Rid {
    type Err = RidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, index) = s
            .split_once('#')
            .ok_or_else(|| RidError::Shape(s.to_string()))?;
        let kind = kind.parse().map_err(|e| RidError::Kind(s.to_string(), e))?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RidError::Index(s.to_string()));
        }
        let index = index.parse().map_err(|_| RidError::Index(s.to_string()))?;
        Ok(Rid { kind, index })
    }
}

impl Serialize for Rid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["ip#1", "vg#0", "fs#12", "container#3"] {
            let rid: Rid = s.parse().unwrap();
            assert_eq!(rid.to_string(), s);
        }
    }

    #[test]
    fn bad_rids_are_refused() {
        assert!(matches!("fs1".parse::<Rid>(), Err(RidError::Shape(_))));
        assert!(matches!("disk#1".parse::<Rid>(), Err(RidError::Kind(..))));
        assert!(matches!("fs#".parse::<Rid>(), Err(RidError::Index(_))));
        assert!(matches!("fs#-1".parse::<Rid>(), Err(RidError::Index(_))));
        assert!(matches!("fs#x".parse::<Rid>(), Err(RidError::Index(_))));
    }

    #[test]
    fn order_ranks() {
        let mut kinds = Kind::ALL;
        kinds.sort_by_key(|k| k.display_rank());
        assert_eq!(kinds, [Kind::Container, Kind::Vg, Kind::Fs, Kind::Ip]);
    }
}
