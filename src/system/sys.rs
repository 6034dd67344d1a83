//! The few C calls the hook makes itself, declared once: raw sockets for the kernel interfaces
//! no program offers cheaply (`sockdiag`, `xtables`), socket options (`state`'s namespace
//! cookie, `xtables`' tables), files opened relative to a directory already opened (`dir`),
//! and the allocator's settings (`keep_freed_memory`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) const AF_INET: i32 = 2;
pub(crate) const AF_INET6: i32 = 10;
pub(crate) const AF_NETLINK: i32 = 16;
pub(crate) const SOCK_RAW: i32 = 3;
const SOCK_CLOEXEC: i32 = 0o2_000_000;

unsafe extern "C" {
    fn socket(domain: i32, ty: i32, protocol: i32) -> i32;
    fn send(fd: i32, buf: *const u8, len: usize, flags: i32) -> isize;
    fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize;
    fn getsockopt(
        fd: i32,
        level: i32,
        name: i32,
        value: *mut std::ffi::c_void,
        len: *mut u32,
    ) -> i32;
    fn openat(dirfd: i32, path: *const std::ffi::c_char, flags: i32, ...) -> i32;
    fn mkdirat(dirfd: i32, path: *const std::ffi::c_char, mode: u32) -> i32;
    fn unlinkat(dirfd: i32, path: *const std::ffi::c_char, flags: i32) -> i32;
    fn renameat(
        olddirfd: i32,
        old: *const std::ffi::c_char,
        newdirfd: i32,
        new: *const std::ffi::c_char,
    ) -> i32;
    pub(crate) safe fn geteuid() -> u32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn connect(fd: i32, addr: *const std::ffi::c_void, len: u32) -> i32;
    fn poll(fds: *mut PollFd, n: std::ffi::c_ulong, timeout_ms: i32) -> i32;
    fn read(fd: i32, buf: *mut u8, len: usize) -> isize;
    fn kill(pid: i32, sig: i32) -> i32;
}

/// struct pollfd.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollFd {
    pub(crate) fd: i32,
    pub(crate) events: i16,
    pub(crate) revents: i16,
}

pub(crate) const POLLIN: i16 = 0x1;
pub(crate) const POLLOUT: i16 = 0x4;

/// poll(2) for at most `timeout` (rounded up to a millisecond); how many descriptors are
/// ready. An interrupted wait counts as none ready.
pub(crate) fn wait_ready(fds: &mut [PollFd], timeout: std::time::Duration) -> io::Result<usize> {
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: the slice is valid and writable for its length, as poll's array.
    let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as std::ffi::c_ulong, ms) };
    match check(n) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Makes reads and writes on `fd` return at once (WouldBlock) instead of waiting.
pub(crate) fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    let fd = fd.as_raw_fd();
    // SAFETY: plain fcntl calls on a descriptor the caller owns.
    let flags = check(unsafe { fcntl(fd, F_GETFL) })?;
    check(unsafe { fcntl(fd, F_SETFL, flags | flags::O_NONBLOCK) }).map(drop)
}

/// open(2)'s flags as Linux numbers them: arm, aarch64 and powerpc have their own O_DIRECTORY
/// and O_NOFOLLOW; the other architectures the hook is built for (x86_64, riscv64, s390x)
/// share these.
pub(crate) mod flags {
    pub(crate) const O_RDONLY: i32 = 0;
    pub(crate) const O_WRONLY: i32 = 0o1;
    pub(crate) const O_RDWR: i32 = 0o2;
    pub(crate) const O_CREAT: i32 = 0o100;
    pub(crate) const O_EXCL: i32 = 0o200;
    pub(crate) const O_NOCTTY: i32 = 0o400;
    pub(crate) const O_NONBLOCK: i32 = 0o4000;
    pub(crate) const O_CLOEXEC: i32 = 0o2_000_000;
    /// Whether this architecture numbers O_DIRECTORY and O_NOFOLLOW as arm does.
    const ARM_LIKE: bool = cfg!(any(
        target_arch = "arm",
        target_arch = "aarch64",
        target_arch = "powerpc",
        target_arch = "powerpc64"
    ));
    pub(crate) const O_DIRECTORY: i32 = if ARM_LIKE { 0o40_000 } else { 0o200_000 };
    pub(crate) const O_NOFOLLOW: i32 = if ARM_LIKE { 0o100_000 } else { 0o400_000 };
}

const AT_REMOVEDIR: i32 = 0x200;

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// The result of a call that returns -1 and sets errno on failure.
fn check(rc: i32) -> io::Result<i32> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// openat(2): `name` in the directory `dir` (one component: never a path), with `flags`; `mode`
/// for a file it creates.
pub(crate) fn open_at(
    dir: &impl AsRawFd,
    name: &str,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    let name = c_name(name)?;
    // SAFETY: the name is a live NUL-terminated string; the mode is passed as C's variadic
    // unsigned int.
    let fd = check(unsafe { openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) })?;
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// mkdirat(2).
pub(crate) fn mkdir_at(dir: &impl AsRawFd, name: &str, mode: u32) -> io::Result<()> {
    let name = c_name(name)?;
    // SAFETY: the name is a live NUL-terminated string.
    check(unsafe { mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// unlinkat(2): removes the entry itself (a link is not followed); a directory with `rmdir`.
pub(crate) fn unlink_at(dir: &impl AsRawFd, name: &str, rmdir: bool) -> io::Result<()> {
    let name = c_name(name)?;
    let flags = if rmdir { AT_REMOVEDIR } else { 0 };
    // SAFETY: the name is a live NUL-terminated string.
    check(unsafe { unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// renameat(2) within one directory.
pub(crate) fn rename_at(dir: &impl AsRawFd, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    let fd = dir.as_raw_fd();
    // SAFETY: both names are live NUL-terminated strings.
    check(unsafe { renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
}

/// Tells glibc's allocator to keep what the hook frees for its next allocations. By default it
/// maps each large block on its own, unmaps it when freed and grows the heap a little at a
/// time, so at 10,000 peers an `up` spent a tenth of its CPU or more on system calls and page
/// faults for memory it had a moment before. The hook lives for milliseconds; what it keeps is
/// the kernel's again at exit.
pub fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_TOP_PAD: i32 = -2;
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets allocator parameters, here before any thread exists. A
        // value it refuses leaves glibc's default, which is also correct.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
            mallopt(M_TOP_PAD, 16 << 20);
        }
    }
}

/// A raw socket, closed on exec; None where the kernel refuses one.
pub(crate) fn raw_socket(domain: i32, protocol: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a negative result is checked before the descriptor is owned.
    let raw = unsafe { socket(domain, SOCK_RAW | SOCK_CLOEXEC, protocol) };
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Sends `buf` as one message; whether all of it went.
pub(crate) fn send_all(fd: &impl AsRawFd, buf: &[u8]) -> bool {
    // SAFETY: the buffer is valid for its length.
    unsafe { send(fd.as_raw_fd(), buf.as_ptr(), buf.len(), 0) == buf.len() as isize }
}

/// Receives one message into `buf`: its length, or None on an error or an empty read.
pub(crate) fn recv_into(fd: &impl AsRawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: the buffer is valid and writable for its length.
    let n = unsafe { recv(fd.as_raw_fd(), buf.as_mut_ptr(), buf.len(), 0) };
    usize::try_from(n).ok().filter(|n| *n > 0)
}

/// read(2) on a non-blocking descriptor: what it read, or WouldBlock when nothing was there.
pub(crate) fn read_now(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid and writable for its length.
    let n = unsafe { read(fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// kill(2): sends `sig` to the process `pid` (never a group: `pid` must be positive).
pub(crate) fn signal(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall on a positive pid.
    check(unsafe { kill(pid, sig) }).map(drop)
}

/// getsockopt(2) into `buf`, which also carries the request where the option takes one; the
/// length the kernel wrote, or None.
pub(crate) fn get_option(
    fd: &impl AsRawFd,
    level: i32,
    name: i32,
    buf: &mut [u8],
) -> Option<usize> {
    let mut len = u32::try_from(buf.len()).ok()?;
    // SAFETY: the buffer is valid and writable for `len` bytes.
    let rc = unsafe {
        getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(len as usize)
}

/// Connects to the Unix stream socket at `path` without waiting: a daemon whose queue of
/// connections is full (it accepts none) is WouldBlock at once, not a connect(2) that never
/// returns. The stream stays non-blocking.
pub(crate) fn connect_unix_now(
    path: &std::path::Path,
) -> io::Result<std::os::unix::net::UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    const AF_UNIX: i32 = 1;
    const SOCK_STREAM: i32 = 1;
    const SOCK_NONBLOCK: i32 = flags::O_NONBLOCK;
    #[repr(C)]
    struct SockaddrUn {
        family: u16,
        path: [u8; 108],
    }
    let bytes = path.as_os_str().as_bytes();
    let mut addr = SockaddrUn {
        family: AF_UNIX as u16,
        path: [0; 108],
    };
    addr.path
        .get_mut(..bytes.len())
        .filter(|_| bytes.len() < 108)
        .ok_or(io::ErrorKind::InvalidInput)?
        .copy_from_slice(bytes);
    // SAFETY: plain syscall; a negative result is checked before the descriptor is owned.
    let raw = check(unsafe { socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = std::mem::size_of::<SockaddrUn>() as u32;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    check(unsafe { connect(fd.as_raw_fd(), (&raw const addr).cast(), len) })?;
    Ok(fd.into())
}
