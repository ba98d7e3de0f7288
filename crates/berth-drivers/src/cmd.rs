//! Running a host command within a bound.
//!
//! `Command::output` waits for the command and for the end of its output with no limit: an LVM
//! command waiting on a lock, or stuck on a dead device, would hang the action forever, and a
//! grandchild that inherited the pipes would too. [`run`] reads the pipes while it waits, stops
//! reading once the command exited, and at the bound kills the command's process group.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::DriverError;

/// How long one wait for output or exit lasts before the bound is checked again.
const SLICE: Duration = Duration::from_millis(50);
/// How long a killed command may take to die before it is left to a reaper thread.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What a command printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Output {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// An open pipe of the child and what was read from it.
struct Pipe<R> {
    reader: Option<R>,
    buf: Vec<u8>,
}

impl<R: Read + AsFd> Pipe<R> {
    /// Read what is there after `poll` said so; EOF or an error closes the pipe.
    fn read_ready(&mut self) {
        let Some(r) = self.reader.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 8192];
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => self.reader = None,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Wait up to `limit` for output on the open pipes, and read what came.
fn pump(out: &mut Pipe<ChildStdout>, err: &mut Pipe<ChildStderr>, limit: Duration) {
    let timeout = PollTimeout::try_from(limit).unwrap_or(PollTimeout::MAX);
    let ready = {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
        if let Some(r) = &out.reader {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if let Some(r) = &err.reader {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            // Both pipes are closed: the command is exiting. Come back soon to reap it (a
            // full slice here would add up to 50 ms to every command).
            std::thread::sleep(limit.min(Duration::from_millis(1)));
            return;
        }
        if poll(&mut fds, timeout).is_err() {
            return;
        }
        fds.iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect::<Vec<bool>>()
    };
    let mut ready = ready.into_iter();
    if out.reader.is_some() && ready.next() == Some(true) {
        out.read_ready();
    }
    if err.reader.is_some() && ready.next() == Some(true) {
        err.read_ready();
    }
}

/// Kill the child's process group, wait briefly for the child, and leave it to a reaper thread
/// when it does not die (a process stuck in the kernel, on a dead device, ignores KILL).
fn kill_group(mut child: Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    let until = Instant::now() + KILL_WAIT;
    while Instant::now() < until {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::thread::Builder::new()
        .name("berth-reaper".into())
        .spawn(move || {
            let _ = child.wait();
        });
}

/// Run `cmd` (stdin from `/dev/null`, in its own process group), collecting its output, within
/// `bound`. `line` names it in errors. Past the bound, its process group is killed and the
/// error is a [`DriverError::Timeout`]. A non-zero exit is not an error here.
pub(crate) fn run(cmd: &mut Command, line: &str, bound: Duration) -> Result<Output, DriverError> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| DriverError::io(format!("run {line}"), e))?;
    let mut out = Pipe {
        reader: child.stdout.take(),
        buf: Vec::new(),
    };
    let mut err = Pipe {
        reader: child.stderr.take(),
        buf: Vec::new(),
    };
    loop {
        let left = bound.saturating_sub(started.elapsed());
        pump(&mut out, &mut err, left.min(SLICE));
        match child.try_wait() {
            Ok(Some(status)) => {
                // Take what is already written, without waiting for a grandchild that may
                // hold the pipes open.
                for _ in 0..64 {
                    let before = out.buf.len() + err.buf.len();
                    pump(&mut out, &mut err, Duration::ZERO);
                    if out.buf.len() + err.buf.len() == before {
                        break;
                    }
                }
                return Ok(Output {
                    status,
                    stdout: out.buf,
                    stderr: err.buf,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(DriverError::io(format!("wait for {line}"), e)),
        }
        if started.elapsed() >= bound {
            kill_group(child);
            return Err(DriverError::Timeout {
                what: line.to_string(),
                secs: bound.as_secs_f64(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_output_and_status() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            "sh",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn large_output_is_not_lost() {
        let out = run(
            Command::new("sh").args(["-c", "head -c 300000 /dev/zero"]),
            "head",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout.len(), 300_000);
        assert!(out.status.success());
    }

    #[test]
    fn a_hung_command_is_killed_at_the_bound() {
        let began = Instant::now();
        let e = run(
            Command::new("sh").args(["-c", "sleep 30"]),
            "sleep 30",
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(10), "{e}");
        assert_eq!(e.to_string(), "sleep 30 did not finish within 0.3s");
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_block() {
        // `Command::output` would wait the 30 s for the backgrounded sleep to close stdout.
        let began = Instant::now();
        let out = run(
            Command::new("sh").args(["-c", "sleep 30 & echo $!"]),
            "sh",
            Duration::from_secs(20),
        )
        .unwrap();
        let elapsed = began.elapsed();
        let sleeper: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let _ = nix::sys::signal::kill(Pid::from_raw(sleeper), Signal::SIGKILL);
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        assert!(out.status.success());
    }

    #[test]
    fn a_missing_program_is_named() {
        let e = run(
            &mut Command::new("/nonexistent/berth-prog"),
            "berth-prog -x",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("run berth-prog -x: "), "{e}");
    }
}
