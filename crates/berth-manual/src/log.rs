//! How the daemons (`svcd`, `berth-collector`) log: to stderr, no colours, no targets; under
//! systemd (`JOURNAL_STREAM` set) without timestamps, since journald stamps each line itself.

use tracing_subscriber::EnvFilter;

/// Install the daemon's log subscriber: the filter from the environment variable `var`
/// (`SVCD_LOG=debug`), else `default` (`info,hyper=warn`).
pub fn init_daemon(var: &str, default: &str) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        // Its report of a failed write is an `eprintln!`, which panics when stderr is a closed
        // pipe (`svcd 2>&1 | head -1`): a line that cannot be written is dropped (see `out`).
        .log_internal_errors(false);
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
