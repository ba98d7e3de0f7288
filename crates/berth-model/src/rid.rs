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
    /// A data replication to other nodes (type rsync): never started nor stopped with the
    /// service, run by `sync` actions and svcd's schedule; its rows are the `sync` subtree.
    Sync,
}

impl Kind {
    /// Every kind, in start order.
    pub const ALL: [Kind; 5] = [Kind::Ip, Kind::Vg, Kind::Fs, Kind::Container, Kind::Sync];

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
            Kind::Sync => "sync",
        }
    }

    /// Position in the start order: ip, vg, fs, container.
    pub fn start_rank(self) -> u8 {
        match self {
            Kind::Ip => 0,
            Kind::Vg => 1,
            Kind::Fs => 2,
            Kind::Container => 3,
            Kind::Sync => 4,
        }
    }

    /// Whether the service's start and stop run it and `avail` merges it: every kind but
    /// `sync` (run by the `sync` actions; its rows merge into the `sync` subtree).
    pub fn runs_with_service(self) -> bool {
        self != Kind::Sync
    }

    /// Position in `print status`, as OpenSVC prints it: container, vg, fs, ip.
    pub fn display_rank(self) -> u8 {
        match self {
            Kind::Container => 0,
            Kind::Vg => 1,
            Kind::Fs => 2,
            Kind::Ip => 3,
            Kind::Sync => 4,
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

/// The longest name a named rid (`fs#app`) may have.
pub const MAX_RID_NAME: usize = 31;

/// A rid's name part (`app` in `fs#app`): 1 to [`MAX_RID_NAME`] letters, digits, `_` and `-`,
/// starting with a letter or digit and not all digits (those are indexes). Names are interned
/// (each distinct name is kept once for the life of the process), so a [`Rid`] stays small and
/// `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RidName(u32);

/// The interned names: `names[i]` is `RidName(i)`.
struct Names {
    names: Vec<&'static str>,
    index: std::collections::HashMap<&'static str, u32>,
}

fn names() -> std::sync::MutexGuard<'static, Names> {
    static NAMES: std::sync::OnceLock<std::sync::Mutex<Names>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            std::sync::Mutex::new(Names {
                names: Vec::new(),
                index: std::collections::HashMap::new(),
            })
        })
        .lock()
        // A panic while holding the lock cannot leave the table half-updated.
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RidName {
    /// The name, if `s` is one.
    pub fn new(s: &str) -> Option<RidName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_RID_NAME
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !s.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return None;
        }
        let mut t = names();
        if let Some(&i) = t.index.get(s) {
            return Some(RidName(i));
        }
        let i = u32::try_from(t.names.len()).ok()?;
        let name: &'static str = Box::leak(s.to_string().into_boxed_str());
        t.names.push(name);
        t.index.insert(name, i);
        Some(RidName(i))
    }

    /// The name as text.
    pub fn as_str(&self) -> &'static str {
        names()
            .names
            .get(self.0 as usize)
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Debug for RidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialOrd for RidName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RidName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.0 == other.0 {
            return std::cmp::Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

/// The largest index a rid takes (`fs#2147483647`).
pub const MAX_RID_INDEX: u32 = (1 << 31) - 1;

/// What follows the `#` of a rid: an index (`fs#1`) or a name (`fs#app`, OpenSVC's named
/// resources), packed in 32 bits (names are interned) so a [`Rid`] stays 8 bytes and `Copy`.
/// Indexes sort first, by value; names after them, by name (OpenSVC compares rids as strings
/// within a kind, where digits sort before letters; berth keeps `fs#2` before `fs#10`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RidId(u32);

const NAME_BIT: u32 = 1 << 31;

impl RidId {
    /// The id of index `n` (at most [`MAX_RID_INDEX`]; larger is cut to it).
    pub const fn index(n: u32) -> RidId {
        RidId(if n > MAX_RID_INDEX { MAX_RID_INDEX } else { n })
    }

    /// The id of a name.
    pub fn name(n: RidName) -> RidId {
        RidId(NAME_BIT | n.0)
    }

    /// The index, for a numbered id.
    pub fn as_index(self) -> Option<u32> {
        (self.0 & NAME_BIT == 0).then_some(self.0)
    }

    /// The name, for a named id.
    pub fn as_name(self) -> Option<RidName> {
        (self.0 & NAME_BIT != 0).then_some(RidName(self.0 & !NAME_BIT))
    }
}

impl fmt::Debug for RidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_index(), self.as_name()) {
            (Some(n), _) => write!(f, "Index({n})"),
            (_, Some(n)) => write!(f, "Name({n:?})"),
            _ => f.write_str("?"),
        }
    }
}

impl PartialOrd for RidId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RidId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.as_name(), other.as_name()) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Indexes (no name bit) before names, and by value among themselves.
            _ => self.0.cmp(&other.0),
        }
    }
}

impl fmt::Display for RidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_index(), self.as_name()) {
            (Some(n), _) => write!(f, "{n}"),
            (_, Some(n)) => f.write_str(n.as_str()),
            _ => Ok(()),
        }
    }
}

impl FromStr for RidId {
    type Err = ();
    /// A whole number (up to [`MAX_RID_INDEX`]) is an index, else a name as [`RidName::new`]
    /// allows.
    fn from_str(s: &str) -> Result<Self, ()> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return match s.parse::<u32>() {
                Ok(n) if n <= MAX_RID_INDEX => Ok(RidId(n)),
                _ => Err(()),
            };
        }
        RidName::new(s).map(RidId::name).ok_or(())
    }
}

/// A resource id: `<kind>#<index>` or `<kind>#<name>`, for example `fs#1`, `container#db`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rid {
    /// The resource kind.
    pub kind: Kind,
    /// The index or name the service file gives it.
    pub id: RidId,
}

impl Rid {
    /// A rid of `kind` with `index` (at most [`MAX_RID_INDEX`]).
    pub const fn new(kind: Kind, index: u32) -> Self {
        Rid {
            kind,
            id: RidId::index(index),
        }
    }

    /// A rid of `kind` with `id`.
    pub fn with_id(kind: Kind, id: RidId) -> Self {
        Rid { kind, id }
    }

    /// The index, for a numbered rid.
    pub fn index(&self) -> Option<u32> {
        self.id.as_index()
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.kind, self.id)
    }
}

/// Why a string is not a rid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RidError {
    /// No `#` between kind and index.
    #[error("{0:?} is not a resource id (expected <kind>#<n> or <kind>#<name>, e.g. fs#1, fs#app)")]
    Shape(String),
    /// The kind part is not known.
    #[error("{0:?}: {1}")]
    Kind(String, UnknownKind),
    /// The part after `#` is neither a number nor a name.
    #[error(
        "{0:?}: after the '#' comes a whole number from 0 to 2147483647, or a name of 1 to {MAX_RID_NAME} letters, digits, '_' and '-' starting with a letter or digit"
    )]
    Index(String),
}

/// Split `kind#id` and read the id; the kind is left as text (OpenSVC kinds berth maps, such as
/// `disk`, are not [`Kind`]s).
pub fn split_rid(s: &str) -> Result<(&str, RidId), RidError> {
    let (kind, id) = s
        .split_once('#')
        .ok_or_else(|| RidError::Shape(s.to_string()))?;
    let id = id.parse().map_err(|()| RidError::Index(s.to_string()))?;
    Ok((kind, id))
}

impl FromStr for Rid {
    type Err = RidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, _) = s
            .split_once('#')
            .ok_or_else(|| RidError::Shape(s.to_string()))?;
        let kind = kind.parse().map_err(|e| RidError::Kind(s.to_string(), e))?;
        let (_, id) = split_rid(s)?;
        Ok(Rid { kind, id })
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
        assert!(matches!("fs#x y".parse::<Rid>(), Err(RidError::Index(_))));
        assert!(matches!("fs#-a".parse::<Rid>(), Err(RidError::Index(_))));
        assert!(matches!("fs#a.b".parse::<Rid>(), Err(RidError::Index(_))));
        let long = format!("fs#{}", "a".repeat(MAX_RID_NAME + 1));
        assert!(matches!(long.parse::<Rid>(), Err(RidError::Index(_))));
    }

    #[test]
    fn named_rids_round_trip_and_sort_after_indexes() {
        for s in ["fs#app", "container#db", "ip#front-1", "vg#data_2", "fs#1a"] {
            let rid: Rid = s.parse().unwrap();
            assert_eq!(rid.to_string(), s);
            assert_eq!(rid.index(), None);
        }
        let mut rids: Vec<Rid> = ["fs#db", "fs#10", "fs#app", "fs#2", "ip#1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        rids.sort();
        let shown: Vec<String> = rids.iter().map(Rid::to_string).collect();
        assert_eq!(shown, ["ip#1", "fs#2", "fs#10", "fs#app", "fs#db"]);
        assert_eq!("fs#007".parse::<Rid>().unwrap().index(), Some(7));
        assert!(matches!(
            "fs#2147483648".parse::<Rid>(),
            Err(RidError::Index(_))
        ));
        assert_eq!(std::mem::size_of::<Rid>(), 8);
    }

    #[test]
    fn order_ranks() {
        let mut kinds = Kind::ALL;
        kinds.sort_by_key(|k| k.display_rank());
        assert_eq!(
            kinds,
            [Kind::Container, Kind::Vg, Kind::Fs, Kind::Ip, Kind::Sync]
        );
    }
}
