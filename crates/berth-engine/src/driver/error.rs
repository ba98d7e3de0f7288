//! Driver errors: each names the resource's value at fault (device, mount point, address...).

use std::path::PathBuf;

/// A driver failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A host call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the value at fault.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command exited with a failure.
    #[error("{command} failed (exit code {code}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// What it printed, trimmed.
        output: String,
    },
    /// A device or file that must exist does not.
    #[error("{what} {path} does not exist")]
    Missing {
        /// What it is ("device", "mount point"...).
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Refused, with the reason (a conflicting address, a foreign VG tag, a busy mount...).
    #[error("{0}")]
    Refused(String),
    /// The docker daemon refused or failed a request.
    #[error("{what}: {message}")]
    Docker {
        /// What was asked, naming the container or image.
        what: String,
        /// What the daemon answered.
        message: String,
    },
    /// Did not finish in time.
    #[error("{what} did not finish within {secs:.1}s")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound, in seconds.
        secs: f64,
    },
}

impl DriverError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            what: what.into(),
            source,
        }
    }
}
