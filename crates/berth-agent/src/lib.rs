//! `svcd`, berth's agent daemon: it keeps the status tree of every service of the node fresh
//! (periodic checks, and right after every action, the CLI's included), restarts monitored
//! resources that fail, starts the autostart services, and serves the tree and actions over HTTP.
//!
//! Layout: [`daemon`] is the main loop; one [`worker`] task per service serialises that service's
//! checks, actions and restarts; [`tree`] caches the serialised status; [`http`] serves it;
//! [`watch`] notices changes made behind svcd's back; [`settings`], [`metrics`] and [`notify`]
//! are the small parts.

// The binaries' output goes through berth_manual::out (a closed pipe does not panic it).
#![cfg_attr(not(test), deny(clippy::print_stdout, clippy::print_stderr))]

pub mod cluster;
pub mod daemon;
pub mod files;
pub mod flex;
pub mod http;
pub mod local;
pub mod mailbox;
pub mod metrics;
pub mod notify;
pub mod orchestrator;
pub mod settings;
pub mod state;
pub mod sync_schedule;
pub mod tree;
pub mod watch;
pub mod watchdog;
pub mod worker;

pub use daemon::{StartError, run};
