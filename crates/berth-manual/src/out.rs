//! Output that a closed pipe does not break: `svc print status | head -1`,
//! `svc web start 2>&1 | head -1`.
//!
//! Rust starts programs with SIGPIPE ignored, so a write into a pipe whose reader is gone fails
//! with EPIPE, and `print!` / `eprintln!` panic on it ("failed printing to stdout: Broken
//! pipe"). berth's binaries write through [`out!`](crate::out!), [`outln!`](crate::outln!),
//! [`err!`](crate::err!) and [`errln!`](crate::errln!) instead (their crates deny clippy's
//! `print_stdout` and `print_stderr`, so a `print!` cannot come back):
//! - stdout: once its reader is gone ([`stdout_closed`]), what follows is dropped. A print command
//!   ends as it would have (exit 0); an action goes on to its end (its lines are in the
//!   service's log file) and exits with its own code. Any other write error (`> /dev/full`) is
//!   kept and said by [`finish`], which then makes the exit code 1.
//! - stderr: write errors are ignored: there is nowhere left to say them.
//!
//! SIGPIPE stays ignored on purpose: its default disposition would kill an action midway,
//! between two resources, when the reader of its output goes away.

use std::fmt;
use std::io::{self, Read, Write as _};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// stdout's reader is gone (a write failed with EPIPE).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error on stdout other than EPIPE.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// True once a write to stdout found its reader gone (or failed otherwise): what follows is
/// dropped, and a loop printing more (`--watch`) can stop.
pub fn stdout_closed() -> bool {
    !writable()
}

/// Whether stdout may still be written.
fn writable() -> bool {
    !STDOUT_CLOSED.load(Ordering::Relaxed)
        && STDOUT_ERROR.lock().map(|e| e.is_none()).unwrap_or(false)
}

/// Note the outcome of a write to stdout; true when it went through.
fn noted(result: io::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            false
        }
        Err(e) => {
            if let Ok(mut first) = STDOUT_ERROR.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
            false
        }
    }
}

/// Write `args` to stdout (what [`out!`](crate::out!) does); false when stdout is closed or
/// failed (see the module's doc).
pub fn print(args: fmt::Arguments<'_>) -> bool {
    writable() && noted(io::stdout().lock().write_fmt(args))
}

/// Write `bytes` to stdout, as [`print`].
pub fn write(bytes: &[u8]) -> bool {
    writable() && noted(io::stdout().lock().write_all(bytes))
}

/// Copy `reader` to stdout, as [`print`]: `Ok(false)` when stdout stopped taking it; the error
/// is a read error.
pub fn copy(reader: &mut impl Read) -> io::Result<bool> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if !write(&buf[..n]) {
            return Ok(false);
        }
    }
}

/// Write `args` to stderr (what [`err!`](crate::err!) does), ignoring errors.
pub fn eprint(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// The end of a program: flush stdout, say a write error other than EPIPE (`svc: cannot write
/// to stdout: No space left on device`) and turn a success into exit 1 then; otherwise `code`.
pub fn finish(program: &str, code: u8) -> ExitCode {
    ExitCode::from(status(program, code))
}

/// [`finish`]'s exit code, for `std::process::exit`.
pub fn status(program: &str, code: u8) -> u8 {
    if writable() {
        noted(io::stdout().lock().flush());
    }
    let failed = STDOUT_ERROR.lock().ok().and_then(|e| e.clone());
    match failed {
        Some(e) => {
            eprint(format_args!("{program}: cannot write to stdout: {e}\n"));
            if code == 0 { 1 } else { code }
        }
        None => code,
    }
}

/// `print!` that a closed stdout does not break (see [`out`](crate::out)).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = $crate::out::print(::std::format_args!($($arg)*));
    }};
}

/// `println!` that a closed stdout does not break (see [`out`](crate::out)).
#[macro_export]
macro_rules! outln {
    () => {{
        let _ = $crate::out::write(b"\n");
    }};
    ($($arg:tt)*) => {{
        let _ = $crate::out::print(::std::format_args!("{}\n", ::std::format_args!($($arg)*)));
    }};
}

/// `eprint!` that a closed stderr does not break (see [`out`](crate::out)).
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::out::eprint(::std::format_args!($($arg)*))
    };
}

/// `eprintln!` that a closed stderr does not break (see [`out`](crate::out)).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::out::eprint(::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}
