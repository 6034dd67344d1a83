//! The seam behind the hook's effects on the system: every program it runs and every file of
//! /proc it reads or writes goes through one `Os`. Production uses the real one; a unit test
//! puts a recording fake (`system::fake`) in its place for the thread it runs on, and so checks
//! the order of every step and of every undo without root.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::types::IfaceName;

use super::{sys, warm};

pub(crate) struct Output {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) trait Os {
    /// Runs the program at `path` with a fixed, minimal environment, feeding it `input`.
    fn run(&self, path: &Path, args: &[&str], input: Option<&str>) -> io::Result<Output>;
    /// Runs the programs at the same time (`run` each); their results in the same order. One
    /// after the other here; the real system runs them side by side.
    fn run_together(&self, jobs: &[Job<'_>]) -> Vec<io::Result<Output>> {
        jobs.iter()
            .map(|j| self.run(j.path, j.args, j.input))
            .collect()
    }
    fn is_file(&self, path: &Path) -> bool;
    fn exists(&self, path: &Path) -> bool;
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, text: &str) -> io::Result<()>;
    /// The names in a directory (none where it cannot be read).
    fn list(&self, dir: &Path) -> Vec<String>;
    /// The MTU of an interface of this network namespace.
    fn mtu(&self, iface: &IfaceName) -> Option<u32>;
    /// The generation of the namespace's nftables ruleset (`system::nftgen`).
    fn nft_generation(&self) -> Option<u32>;
    /// Asks a userspace WireGuard's socket for its peers (`system::uapi`); None for the
    /// kernel's WireGuard, which has no socket.
    fn uapi_ask(&self, iface: &IfaceName) -> Option<super::uapi::Asked>;
}

/// One program of `Os::run_together`.
pub(crate) struct Job<'a> {
    pub(crate) path: &'a Path,
    pub(crate) args: &'a [&'a str],
    pub(crate) input: Option<&'a str>,
}

/// The system itself.
struct Real;

/// How long a program the hook runs may take, all told, before it is killed and its step fails
/// (and is undone): `did not answer within 30 s`. A restore normally takes milliseconds, an nft
/// transaction at 10,000 peers 0.3 s; iptables-restore waits up to 10 s for the xtables lock
/// (`--wait 10`), and listing a host of 100,000 rules takes seconds. 30 s is far above all of
/// them, and still ends a hung program before an operator gives up on wg-quick.
pub(crate) const PROGRAM_DEADLINE: Duration = Duration::from_secs(30);

/// How much a program may print on each of its outputs: an `iptables-save` of a host with
/// 100,000 rules is about 20 MiB. More is a runaway, refused before it fills memory.
pub(crate) const OUTPUT_CAP: usize = 256 << 20;

/// Runs a program, feeding it `input` while reading what it prints (no pipe can fill up and
/// stall both), for at most `deadline`; kills it (by its PID: it is not reaped yet) when the
/// deadline passes or an output exceeds `cap`.
fn run_bounded(
    path: &Path,
    args: &[&str],
    input: Option<&str>,
    deadline: Duration,
    cap: usize,
) -> io::Result<Output> {
    let (mut child, input) = match waiting(path, args, input) {
        Some((child, text)) => {
            log::debug!("{} was started beforehand", path.display());
            (child, Some(text))
        }
        None => {
            let stdin = if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            };
            let child = warm::command(path, args, stdin).spawn()?;
            (child, input.map(Cow::Borrowed))
        }
    };
    let end = Instant::now() + deadline;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("did not answer within {} s", deadline.as_secs_f64()),
        )
    };
    let status = exchange(&mut child, input.unwrap_or_default().as_bytes(), end, cap)
        .and_then(|outputs| Ok((reap_by(&mut child, end)?.ok_or_else(timed_out)?, outputs)));
    let (status, (stdout, stderr)) = match status {
        Ok(done) => done,
        Err(e) => {
            // Killed and reaped; one that cannot even be reaped in a second (stuck in the
            // kernel) is left to init.
            let _ = child.kill();
            let _ = reap_by(&mut child, Instant::now() + Duration::from_secs(1));
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                timed_out()
            } else {
                e
            });
        }
    };
    log::debug!("{} {status}", path.display());
    Ok(Output {
        ok: status.success(),
        stdout: text(stdout),
        stderr: text(stderr),
    })
}

/// A program for `path args` the watcher keeps waiting (`system::warm`), and what to feed it:
/// `input`; for a plain `nft` command, the command itself, given to a waiting `nft -f -`.
fn waiting<'a>(
    path: &Path,
    args: &[&str],
    input: Option<&'a str>,
) -> Option<(Child, Cow<'a, str>)> {
    if let Some(text) = input {
        return Some((warm::take(path, args)?, Cow::Borrowed(text)));
    }
    if path.file_name()? != "nft" {
        return None;
    }
    let script = warm::nft_script(args)?;
    Some((warm::take(path, &["-f", "-"])?, Cow::Owned(script)))
}

/// Feeds `input` to the child and reads its stdout and stderr until both are closed, by
/// `end`: what it printed, or WouldBlock when the time ran out.
fn exchange(
    child: &mut Child,
    input: &[u8],
    end: Instant,
    cap: usize,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let file = |fd: OwnedFd| File::from(fd);
    let mut stdin = child.stdin.take().map(OwnedFd::from).map(file);
    let mut outs = [
        child.stdout.take().map(OwnedFd::from).map(file),
        child.stderr.take().map(OwnedFd::from).map(file),
    ];
    for fd in outs.iter().flatten() {
        sys::set_nonblocking(fd)?;
    }
    if let Some(s) = &stdin {
        sys::set_nonblocking(s)?;
    }
    let mut read = [Vec::new(), Vec::new()];
    let mut fed = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while outs.iter().any(Option::is_some) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut fds: Vec<sys::PollFd> = Vec::with_capacity(3);
        let watch = |fd: i32, events| sys::PollFd {
            fd,
            events,
            revents: 0,
        };
        fds.push(watch(
            stdin.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            sys::POLLOUT,
        ));
        for o in &outs {
            fds.push(watch(
                o.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                sys::POLLIN,
            ));
        }
        if sys::wait_ready(&mut fds, left)? == 0 {
            continue;
        }
        if fds[0].revents != 0
            && let Some(s) = &mut stdin
        {
            match s.write(&input[fed..]) {
                Ok(n) => fed += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A program that exits early closes its end; its exit status says why.
                Err(_) => fed = input.len(),
            }
            if fed == input.len() {
                stdin = None;
            }
        }
        for (i, out) in outs.iter_mut().enumerate() {
            let Some(pipe) = out.as_mut().filter(|_| fds[i + 1].revents != 0) else {
                continue;
            };
            match pipe.read(&mut buf) {
                Ok(0) => *out = None,
                Ok(n) if read[i].len() + n > cap => {
                    return Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        format!("printed more than {} MiB: a runaway, not read", cap >> 20),
                    ));
                }
                Ok(n) => read[i].extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    let [stdout, stderr] = read;
    Ok((stdout, stderr))
}

/// Waits for the child to end, until `end`: its status, or None when it is still running.
fn reap_by(child: &mut Child, end: Instant) -> io::Result<Option<ExitStatus>> {
    // It has closed its outputs: nearly always it has ended, or is about to.
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= end {
            return Ok(None);
        }
        std::thread::sleep(pause.min(end.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The environment every program gets: nothing of the caller's (PATH, LD_PRELOAD) can change
/// which program runs or how.
pub(crate) const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

impl Os for Real {
    fn run(&self, path: &Path, args: &[&str], input: Option<&str>) -> io::Result<Output> {
        run_bounded(path, args, input, PROGRAM_DEADLINE, OUTPUT_CAP)
    }

    /// Each program but the first from a thread of its own, for as long as it runs; a thread
    /// that cannot be made runs its program here, after the others.
    fn run_together(&self, jobs: &[Job<'_>]) -> Vec<io::Result<Output>> {
        let run = |j: &Job<'_>| run_bounded(j.path, j.args, j.input, PROGRAM_DEADLINE, OUTPUT_CAP);
        let Some((first, rest)) = jobs.split_first() else {
            return Vec::new();
        };
        std::thread::scope(|scope| {
            let started: Vec<_> = rest
                .iter()
                .map(|j| {
                    std::thread::Builder::new()
                        .stack_size(64 << 10)
                        .spawn_scoped(scope, move || run(j))
                })
                .collect();
            let mut out = vec![run(first)];
            for (j, t) in rest.iter().zip(started) {
                out.push(match t {
                    Ok(t) => t.join().unwrap_or_else(|_| {
                        Err(io::Error::other("the thread running it ended early"))
                    }),
                    Err(_) => run(j),
                });
            }
            out
        })
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    /// Regular files only (a FIFO planted where a configuration file belongs would hang the
    /// read), at most `OUTPUT_CAP` bytes.
    fn read(&self, path: &Path) -> io::Result<String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(sys::flags::O_NONBLOCK | sys::flags::O_NOCTTY)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let mut text = String::new();
        file.take(OUTPUT_CAP as u64).read_to_string(&mut text)?;
        Ok(text)
    }

    fn write(&self, path: &Path, text: &str) -> io::Result<()> {
        std::fs::write(path, text)
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mtu(&self, iface: &IfaceName) -> Option<u32> {
        ioctl_mtu(iface)
    }

    fn nft_generation(&self) -> Option<u32> {
        super::nftgen::generation()
    }

    fn uapi_ask(&self, iface: &IfaceName) -> Option<super::uapi::Asked> {
        super::uapi::ask(iface)
    }
}

/// SIOCGIFMTU itself.
fn ioctl_mtu(iface: &IfaceName) -> Option<u32> {
    const SIOCGIFMTU: std::ffi::c_ulong = 0x8921;
    ifreq_int(iface.as_str(), SIOCGIFMTU)
}

/// The interface's index (SIOCGIFINDEX), in the caller's network namespace.
pub(crate) fn ifindex(iface: &str) -> Option<u32> {
    const SIOCGIFINDEX: std::ffi::c_ulong = 0x8933;
    ifreq_int(iface, SIOCGIFINDEX)
}

/// An ifreq ioctl whose answer is the int that starts the request's union.
fn ifreq_int(iface: &str, request: std::ffi::c_ulong) -> Option<u32> {
    unsafe extern "C" {
        fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
    }
    // struct ifreq: the name (at most 15 bytes and a NUL), then a 24-byte union.
    let mut ifreq = [0u8; 40];
    let name = iface.as_bytes();
    if name.len() > 15 {
        return None;
    }
    ifreq.get_mut(..name.len())?.copy_from_slice(name);
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    // SAFETY: `ifreq` is a live, writable buffer of the size the kernel reads and writes.
    let rc = unsafe { ioctl(sock.as_raw_fd(), request, ifreq.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    u32::try_from(i32::from_ne_bytes(ifreq[16..20].try_into().ok()?)).ok()
}

/// A program's output as text, without a copy unless it is not UTF-8 (an `iptables-save` of a
/// large host is megabytes).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Os>>> = const { RefCell::new(None) };
}

/// The system, as this thread sees it.
pub(crate) fn os() -> Rc<dyn Os> {
    CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or_else(|| Rc::new(Real))
}

/// Puts `os` in the system's place for this thread until the returned guard is dropped.
#[cfg(test)]
pub(crate) fn replace(os: Rc<dyn Os>) -> Replaced {
    CURRENT.with(|c| *c.borrow_mut() = Some(os));
    Replaced
}

#[cfg(test)]
pub(crate) struct Replaced;

#[cfg(test)]
impl Drop for Replaced {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(prog: &str, args: &[&str], input: Option<&str>, secs: f64) -> io::Result<Output> {
        let deadline = Duration::from_secs_f64(secs);
        run_bounded(Path::new(prog), args, input, deadline, 1 << 20)
    }

    #[test]
    fn a_fifo_or_a_directory_is_refused_not_waited_for() {
        let dir = std::env::temp_dir().join(format!("wgfw-os-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("90-planted.conf");
        assert!(
            run("/usr/bin/mkfifo", &[fifo.to_str().unwrap()], None, 10.0)
                .unwrap()
                .ok
        );
        assert!(Real.read(&fifo).is_err());
        assert!(Real.read(&dir).is_err());
        std::fs::write(dir.join("ok.conf"), "a = 1\n").unwrap();
        assert_eq!(Real.read(&dir.join("ok.conf")).unwrap(), "a = 1\n");
        assert!(Real.read(Path::new("/proc/self/stat")).unwrap().len() > 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn input_and_output_flow_at_once_and_both_outputs_are_read() {
        // Larger than a pipe's buffer both ways: feeding all before reading would stall.
        let big = "0123456789abcdef\n".repeat(50_000);
        let out = run("/bin/cat", &[], Some(&big), 30.0).unwrap();
        assert!(out.ok && out.stdout == big);
        // A program that never reads its input ends all the same.
        assert!(run("/bin/true", &[], Some(&big), 30.0).unwrap().ok);
        let out = run(
            "/bin/sh",
            &["-c", "echo out; echo err >&2; exit 3"],
            None,
            30.0,
        )
        .unwrap();
        assert_eq!(
            (out.ok, &*out.stdout, &*out.stderr),
            (false, "out\n", "err\n")
        );
    }

    #[test]
    fn a_program_that_does_not_answer_is_killed_at_its_deadline() {
        let started = Instant::now();
        let e = run("/bin/sleep", &["20"], Some("x"), 0.3).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(e.to_string(), "did not answer within 0.3 s");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Also one that has closed its outputs but goes on.
        let e = run(
            "/bin/sh",
            &["-c", "exec >&- 2>&-; exec sleep 20"],
            None,
            0.3,
        );
        assert_eq!(e.err().unwrap().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_program_that_prints_without_end_is_stopped_at_the_cap() {
        let started = Instant::now();
        let e = run("/usr/bin/yes", &[], None, 30.0).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(
            e.to_string(),
            "printed more than 1 MiB: a runaway, not read"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
