//! One lock per service: `<var>/<svc>/lock`, an flock held for the whole action, with the holder's
//! pid written inside so a waiting action can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or created.
    #[error("cannot open lock file {path}: {error}")]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The OS error (in the message, not a source: printed once).
        error: std::io::Error,
    },
    /// The lock file may not be opened or created: the caller is not root.
    #[error("this action needs root (cannot open the lock file {path}: permission denied)")]
    NeedsRoot {
        /// The lock file.
        path: PathBuf,
    },
    /// Another action held the lock for longer than we were allowed to wait.
    #[error(
        "service {svc} is locked by {holder} (another action is running); gave up after {waited:.1}s \
         (see --waitlock)"
    )]
    Busy {
        /// The service.
        svc: String,
        /// `pid N`, or `an unknown process` when the file holds no pid.
        holder: String,
        /// How long we waited, in seconds.
        waited: f64,
    },
    /// flock failed for another reason.
    #[error("cannot lock {path}: {error}")]
    Flock {
        /// The lock file.
        path: PathBuf,
        /// The OS error (in the message, not a source: printed once).
        error: Errno,
    },
}

/// A held service lock; released when dropped.
#[derive(Debug)]
pub struct ServiceLock {
    _flock: Flock<File>,
}

fn holder(path: &Path) -> String {
    let mut s = String::new();
    let pid = File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .ok()
        .and_then(|_| s.trim().parse::<u32>().ok());
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "an unknown process".to_string(),
    }
}

/// Why `path` could not be opened or created.
fn open_error(path: &Path, error: std::io::Error) -> LockError {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        LockError::NeedsRoot {
            path: path.to_path_buf(),
        }
    } else {
        LockError::Open {
            path: path.to_path_buf(),
            error,
        }
    }
}

impl ServiceLock {
    /// Take the lock of `svc` at `path`, waiting up to `wait`.
    pub fn acquire(svc: &str, path: &Path, wait: Duration) -> Result<ServiceLock, LockError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_error(path, e))?;
        }
        let start = Instant::now();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let mut announced = false;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut lock) => {
                    // Best effort: the pid only helps a waiter's message.
                    let _ = lock.set_len(0);
                    let _ = lock.seek(SeekFrom::Start(0));
                    let _ = write!(lock, "{}", std::process::id());
                    let _ = lock.flush();
                    return Ok(ServiceLock { _flock: lock });
                }
                Err((f, Errno::EWOULDBLOCK)) => {
                    file = f;
                    let waited = start.elapsed();
                    if waited >= wait {
                        return Err(LockError::Busy {
                            svc: svc.to_string(),
                            holder: holder(path),
                            waited: waited.as_secs_f64(),
                        });
                    }
                    if !announced {
                        tracing::info!("waiting for the lock held by {}", holder(path));
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(wait - waited));
                }
                Err((_, errno)) => {
                    return Err(LockError::Flock {
                        path: path.to_path_buf(),
                        error: errno,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web/lock");
        let held = ServiceLock::acquire("web", &path, Duration::ZERO).unwrap();
        // flock locks belong to the open file description: a second open in this process conflicts.
        let err = ServiceLock::acquire("web", &path, Duration::from_millis(100)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.starts_with("service web is locked by"), "{msg}");
        drop(held);
        ServiceLock::acquire("web", &path, Duration::ZERO).unwrap();
    }

    #[test]
    fn waiter_gets_the_lock_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = ServiceLock::acquire("web", &path, Duration::ZERO).unwrap();
        let p2 = path.clone();
        let waiter = std::thread::spawn(move || {
            let t = Instant::now();
            ServiceLock::acquire("web", &p2, Duration::from_secs(10)).map(|_| t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        drop(held);
        let waited = waiter.join().unwrap().unwrap();
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
    }
}
