//! The seam behind the hook's effects on the system: every program it runs and every file of
//! /proc it reads or writes goes through one `Os`. Production uses the real one; a unit test
//! puts a recording fake (`system::fake`) in its place for the thread it runs on, and so checks
//! the order of every step and of every undo without root.

use std::cell::RefCell;
use std::io;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;

use crate::config::types::IfaceName;

pub(crate) struct Output {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) trait Os {
    /// Runs the program at `path` with a fixed, minimal environment, feeding it `input`.
    fn run(&self, path: &Path, args: &[&str], input: Option<&str>) -> io::Result<Output>;
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

/// The system itself.
struct Real;

/// The environment every program gets: nothing of the caller's (PATH, LD_PRELOAD) can change
/// which program runs or how.
const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

impl Os for Real {
    fn run(&self, path: &Path, args: &[&str], input: Option<&str>) -> io::Result<Output> {
        let mut child = Command::new(path)
            .args(args)
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("LC_ALL", "C")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            // A program that exits early closes its end; its exit status says why.
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output()?;
        log::debug!("{} {}", path.display(), out.status);
        Ok(Output {
            ok: out.status.success(),
            stdout: text(out.stdout),
            stderr: text(out.stderr),
        })
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
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
    use std::os::fd::AsRawFd;
    const SIOCGIFMTU: std::ffi::c_ulong = 0x8921;
    unsafe extern "C" {
        fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
    }
    // struct ifreq: the name (at most 15 bytes and a NUL; IfaceName guarantees it), then a
    // 24-byte union whose first member is the MTU.
    let mut ifreq = [0u8; 40];
    let name = iface.as_str().as_bytes();
    ifreq.get_mut(..name.len())?.copy_from_slice(name);
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    // SAFETY: `ifreq` is a live, writable buffer of the size the kernel reads and writes.
    let rc = unsafe { ioctl(sock.as_raw_fd(), SIOCGIFMTU, ifreq.as_mut_ptr()) };
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
