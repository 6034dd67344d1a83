//! What the hook prints, written so that no output error can interrupt it. `wg-quick up wg0 2>&1
//! | head` closes the pipe after ten lines; the next write fails with EPIPE (Rust's runtime
//! ignores SIGPIPE), and `println!`/`eprintln!` would panic there, in the middle of a change,
//! before its undo could run. Every line of the hook goes through these macros instead, which
//! drop a failed write: a change (`up`, `down`, `check --repair`, `release`, `confirm`, a
//! rollback) always finishes or unwinds, whoever reads its output. What a read-only command
//! (`status`, `plan`, `check`) prints to a closed pipe is lost, and it exits with its own status,
//! as if it had been read. The log (`-v`, `RUST_LOG`) is env_logger's, which ignores a failed
//! write the same way.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by a watcher that runs detached, with no journal to take its standard error.
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

/// From now on, what goes to standard error goes to syslog (`/dev/log`) instead, a line a
/// message, as `wgfw-hook[PID]` of facility daemon. Where no syslog listens, it is lost, as
/// on a closed pipe.
pub(crate) fn stderr_to_syslog() {
    TO_SYSLOG.store(true, Ordering::Relaxed);
}

/// Writes to standard output, ignoring an error (a closed pipe, a full disk).
pub fn to_stdout(args: fmt::Arguments<'_>) {
    let _ = write_to(&mut io::stdout().lock(), args);
}

/// Writes to standard error, ignoring an error.
pub fn to_stderr(args: fmt::Arguments<'_>) {
    if TO_SYSLOG.load(Ordering::Relaxed) {
        syslog(&args.to_string());
        return;
    }
    let _ = write_to(&mut io::stderr().lock(), args);
}

fn syslog(text: &str) {
    /// daemon (3) * 8 + notice (5).
    const PRI: u8 = 29;
    const MAX: usize = 2000;
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    // A syslog that reads nothing must not stop the watcher.
    let _ = sock.set_nonblocking(true);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut msg = format!("<{PRI}>wgfw-hook[{}]: {line}", std::process::id());
        if msg.len() > MAX {
            let mut end = MAX;
            while !msg.is_char_boundary(end) {
                end -= 1;
            }
            msg.truncate(end);
        }
        let _ = sock.send_to(msg.as_bytes(), "/dev/log");
    }
}

/// A line in one write: stderr is unbuffered, and `write_fmt` writes each piece of the format
/// apart, so two processes sharing a journal stream (`up` and its watcher under systemd) would
/// cut each other's lines in two.
fn write_to(w: &mut impl Write, args: fmt::Arguments<'_>) -> io::Result<()> {
    w.write_all(args.to_string().as_bytes())?;
    w.flush()
}

/// `print!` that no output error can interrupt.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::to_stdout(format_args!($($arg)*)) };
}

/// `println!` that no output error can interrupt.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::to_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that no output error can interrupt.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::to_stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe whose reader is gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_failed_write_is_an_error_not_a_panic() {
        let e = write_to(&mut Closed, format_args!("[#] nft -f -\n")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let mut ok = Vec::new();
        write_to(&mut ok, format_args!("{}\n", format_args!("a {}", 1))).unwrap();
        assert_eq!(ok, b"a 1\n");
    }
}
