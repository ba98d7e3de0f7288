//! Service configuration: the typed model, and its parsers for TOML service files and OpenSVC INI
//! files. Both formats go through one keyword layer ([`keywords`]), so a keyword means the same thing
//! in both and every error names the file, line, section and key.
//!
//! The pipeline, each module importing only those below it: `load` reads a file through
//! `tomlfile` or `ini` (to `raw` sections), `compat` (OpenSVC's spellings to berth's), then
//! `keywords` (the typed `service`, one module per resource kind in `kinds`: its spec, keywords
//! and reader), whose sections are read by `reader`.

mod alias;
mod collector;
pub mod compat;
pub mod edit;
mod emit;
pub(crate) mod error;
mod ini;
pub mod keywords;
pub mod kinds;
mod load;
mod node;
mod raw;
pub(crate) mod reader;
mod service;
mod stack;
mod tomlfile;
pub(crate) mod value;

#[cfg(test)]
mod tests;

pub use collector::{AlertConfig, AlertSink, CollectorConfig, CollectorNode, Rates, split_url};
pub use compat::LoadContext;
pub use emit::{to_toml, written};
pub use error::{ConfigError, ConfigErrorKind, ConfigWarning, Diagnostics};
pub use kinds::container::{ContainerSpec, PullPolicy, Registry, image_registry};
pub use kinds::fs::{FlagSpec, FsSpec};
pub use kinds::ip::{IpSpec, NetnsIp, NetnsMode, Prefix};
pub use kinds::sync::{Schedule, SyncSpec, SyncTarget};
pub use kinds::vg::VgSpec;
pub use load::{Checked, MAX_SERVICE_FILE_BYTES};
pub use node::{ClusterConfig, DockerNode, NodeConfig, SplitAction, SyncNode, TlsFiles};
pub use raw::{Format, Written};
pub use service::*;
pub use stack::{NetworkMode, link_target, needs_network, order_stack, start_dependencies};
