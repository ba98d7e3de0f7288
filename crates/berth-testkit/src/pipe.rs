//! Readers that go away early, for the binaries' closed-pipe tests (`svc print status | head -1`,
//! `svc web start 2>&1 | head -1`).

use std::io::Read as _;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `cmd` with its stdout into a pipe whose reader is already closed, as `cmd | true` once
/// `true` has exited: its first write to stdout fails with EPIPE. stderr is captured; with
/// `stderr_too` it goes into the closed pipe as well (`cmd 2>&1 | true`; `Output::stderr` is
/// empty then). A command still running after 60 s (a loop that does not see its reader gone)
/// is killed, and this panics.
pub fn into_closed_pipe(cmd: &mut Command, stderr_too: bool) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    if stderr_too {
        cmd.stderr(writer.try_clone().expect("dup the pipe"));
    } else {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    // The Command holds no pipe end past this call.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf);
            buf
        })
    });
    let status = wait_after_reader(&mut child, cmd);
    let stderr = stderr
        .map(|t| t.join().unwrap_or_default())
        .unwrap_or_default();
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

/// `cmd 2>&1 | head -1`: stdout and stderr into one pipe, whose first line is read before the
/// reader closes it; the command runs on to its end. That line and the exit status. A command
/// still running 60 s after the reader went away (`logs --follow` that does not see it gone) is
/// killed, and this panics.
pub fn head_1(cmd: &mut Command) -> (String, ExitStatus) {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(writer.try_clone().expect("dup the pipe"))
        .stdout(writer)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Only the child holds the write end now: a child that exits without a newline ends the read.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut line = Vec::new();
    let mut byte = [0u8];
    while reader.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    drop(reader);
    let status = wait_after_reader(&mut child, cmd);
    (String::from_utf8_lossy(&line).into_owned(), status)
}

/// Wait for `child` (run from `cmd`), whose reader went away; one still running 60 s later is
/// killed, and this panics.
fn wait_after_reader(child: &mut std::process::Child, cmd: &Command) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child
            .try_wait()
            .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"))
        {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still runs 60 s after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run into a closed pipe ended quietly: exit `code` (not killed by a signal, not a panic's
/// 101), and no panic said on stderr.
pub fn assert_quiet(o: &Output, code: i32, what: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {}",
        crate::describe(o)
    );
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: {}",
        crate::describe(o)
    );
}
