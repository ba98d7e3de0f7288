//! berth's service model: configuration (TOML and OpenSVC INI), resource ids, the start order and
//! selectors, and the status tree with its text renderer. No I/O: callers read files and pass text.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod action;
pub mod api;
pub mod claims;
pub mod config;
pub mod drp;
pub mod fleet;
pub mod order;
pub mod paths;
pub mod render;
pub mod rid;
pub mod run_args;
pub mod status;
pub mod sync;

pub use config::{ConfigError, ServiceConfig};
pub use fleet::{Fleet, FleetCell, FleetNode, FleetService, render_fleet};
pub use rid::{Kind, Rid};
pub use status::{NodeStatus, ResourceState, ResourceStatus, ServiceStatus, Status};
