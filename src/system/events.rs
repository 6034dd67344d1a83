//! What `watch` waits on, in one poll(2): the kernel's nf_tables notifications (every commit
//! to the namespace's ruleset, by anyone: nft, iptables-nft, firewalld, ufw, Docker), its link
//! notifications (rtnetlink: an interface made, changed or deleted), files written or replaced
//! in the directories of its configuration (inotify), and the signals that steer the watcher
//! (SIGHUP: reconcile now; SIGTERM, SIGINT: stop), read from a signalfd so that none
//! interrupts a change half way.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::system::sys::{self, POLLIN, PollFd};

const NETLINK_ROUTE: i32 = 0;
const NETLINK_NETFILTER: i32 = 12;
/// NFNLGRP_NFTABLES; RTNLGRP_LINK, _IPV4_IFADDR, _IPV4_ROUTE, _IPV6_IFADDR, _IPV6_ROUTE.
const GROUP_NFTABLES: u32 = 7;
const GROUPS_NETWORK: [u32; 5] = [1, 5, 7, 9, 11];
/// (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN: the end of every committed batch.
const NEWGEN: u16 = (10 << 8) | 15;
const NFTA_GEN_ID: u16 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFLA_IFNAME: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Reads per wake: a burst of notifications beyond this is taken as "changed" all the same.
const MAX_READS: usize = 256;

pub(crate) const SIGHUP: i32 = 1;
pub(crate) const SIGINT: i32 = 2;
pub(crate) const SIGTERM: i32 = 15;

/// What woke the watcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Commits to the ruleset, by generation. Empty: some were lost (the socket overran), so
    /// whatever happened is unknown.
    Ruleset(Vec<u32>),
    /// An interface by this name was made or changed (`gone`: false) or deleted.
    Link {
        name: String,
        gone: bool,
    },
    /// An address of the interface with this index was added or removed.
    Address(u32),
    /// A default route (the WAN) was added or removed.
    DefaultRoute,
    Signal(i32),
    /// A file of this name in a watched directory was written, replaced or removed.
    File(String),
}

pub(crate) struct Events {
    ruleset: Option<OwnedFd>,
    links: Option<OwnedFd>,
    signals: OwnedFd,
    files: Option<OwnedFd>,
}

unsafe extern "C" {
    fn bind(fd: i32, addr: *const std::ffi::c_void, len: u32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
    fn sigemptyset(set: *mut SigSet) -> i32;
    fn sigaddset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn signalfd(fd: i32, mask: *const SigSet, flags: i32) -> i32;
    fn inotify_init1(flags: i32) -> i32;
    fn inotify_add_watch(fd: i32, path: *const std::ffi::c_char, mask: u32) -> i32;
}

/// sigset_t: 1024 bits in glibc and musl alike.
#[repr(C)]
struct SigSet([u64; 16]);

impl Events {
    /// Subscribes to both kinds of notification and takes over the steering signals. A kernel
    /// that refuses a subscription leaves that kind out (the caller polls instead); the
    /// signals are required.
    pub(crate) fn open(dirs: &[&std::path::Path]) -> io::Result<Events> {
        Ok(Events {
            ruleset: subscribe(NETLINK_NETFILTER, &[GROUP_NFTABLES]),
            links: subscribe(NETLINK_ROUTE, &GROUPS_NETWORK),
            signals: signal_fd(&[SIGHUP, SIGINT, SIGTERM])?,
            files: watch_dirs(dirs),
        })
    }

    /// Whether the kernel tells of ruleset commits (nf_tables is there).
    pub(crate) fn sees_ruleset(&self) -> bool {
        self.ruleset.is_some()
    }

    /// Waits at most `timeout` for anything; returns all that is ready, in no particular order
    /// (none when the time ran out).
    pub(crate) fn wait(&mut self, timeout: Duration) -> io::Result<Vec<Event>> {
        let mut fds = vec![PollFd {
            fd: self.signals.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        }];
        for s in [&self.ruleset, &self.links, &self.files]
            .into_iter()
            .flatten()
        {
            fds.push(PollFd {
                fd: s.as_raw_fd(),
                events: POLLIN,
                revents: 0,
            });
        }
        if sys::wait_ready(&mut fds, timeout)? == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        if fds[0].revents != 0 {
            out.extend(read_signals(&self.signals));
        }
        if let Some(fd) = &self.ruleset
            && fds.iter().any(|p| p.fd == fd.as_raw_fd() && p.revents != 0)
        {
            out.push(Event::Ruleset(drain(fd, |m, gens: &mut Vec<u32>| {
                gens.extend(generation_of(m))
            })?));
        }
        if let Some(fd) = &self.links
            && fds.iter().any(|p| p.fd == fd.as_raw_fd() && p.revents != 0)
        {
            out.extend(drain(fd, |m, found: &mut Vec<Event>| {
                found.extend(network_event(m))
            })?);
        }
        if let Some(fd) = &self.files
            && fds.iter().any(|p| p.fd == fd.as_raw_fd() && p.revents != 0)
        {
            out.extend(read_files(fd).into_iter().map(Event::File));
        }
        Ok(out)
    }
}

/// An inotify descriptor watching `dirs` for files written, moved in or out, made or removed
/// (an editor saves by renaming); None where none of them can be watched.
fn watch_dirs(dirs: &[&std::path::Path]) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    const IN_CLOSE_WRITE: u32 = 0x8;
    const IN_MOVED_FROM: u32 = 0x40;
    const IN_MOVED_TO: u32 = 0x80;
    const IN_CREATE: u32 = 0x100;
    const IN_DELETE: u32 = 0x200;
    const IN_ONLYDIR: u32 = 0x0100_0000;
    const IN_DONT_FOLLOW: u32 = 0x0200_0000;
    let mask = IN_CLOSE_WRITE
        | IN_MOVED_FROM
        | IN_MOVED_TO
        | IN_CREATE
        | IN_DELETE
        | IN_ONLYDIR
        | IN_DONT_FOLLOW;
    // SAFETY: plain syscall; a negative result is checked before the descriptor is owned.
    let raw = unsafe { inotify_init1(sys::flags::O_NONBLOCK | sys::flags::O_CLOEXEC) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut any = false;
    for d in dirs {
        let Ok(path) = std::ffi::CString::new(d.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: `path` is a live NUL-terminated string.
        any |= unsafe { inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } >= 0;
    }
    any.then_some(fd)
}

/// The names in the inotify events queued (struct inotify_event: wd, mask, cookie, len, then
/// the name padded with NULs).
fn read_files(fd: &OwnedFd) -> Vec<String> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    for _ in 0..MAX_READS {
        let Ok(n) = sys::read_now(fd, &mut buf) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.extend(inotify_names(&buf[..n]));
    }
    out
}

fn inotify_names(buf: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().expect("4 bytes")) as usize;
        let Some(name) = buf.get(off + 16..off + 16 + len) else {
            break;
        };
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        if !name.is_empty() {
            out.push(String::from_utf8_lossy(name).into_owned());
        }
        off += 16 + len;
    }
    out
}

/// A netlink socket bound to these multicast groups; None where the kernel refuses it.
fn subscribe(protocol: i32, groups: &[u32]) -> Option<OwnedFd> {
    const SOL_NETLINK: i32 = 270;
    const NETLINK_ADD_MEMBERSHIP: i32 = 1;
    let fd = sys::raw_socket(sys::AF_NETLINK, protocol)?;
    // sockaddr_nl: family, pad, port id 0 (the kernel picks one), no groups yet.
    let mut addr = [0u8; 12];
    addr[0..2].copy_from_slice(&(sys::AF_NETLINK as u16).to_ne_bytes());
    // SAFETY: `addr` is a valid sockaddr_nl of its length; each group a valid int for the
    // option.
    let ok = unsafe {
        bind(fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) == 0
            && groups.iter().all(|group| {
                setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    NETLINK_ADD_MEMBERSHIP,
                    (&raw const *group).cast(),
                    4,
                ) == 0
            })
    };
    if !ok {
        return None;
    }
    sys::set_nonblocking(&fd).ok()?;
    Some(fd)
}

/// Blocks `signals` for the process and returns a descriptor that reads them.
fn signal_fd(signals: &[i32]) -> io::Result<OwnedFd> {
    const SIG_BLOCK: i32 = 0;
    const SFD_NONBLOCK: i32 = sys::flags::O_NONBLOCK;
    const SFD_CLOEXEC: i32 = sys::flags::O_CLOEXEC;
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a valid sigset_t; the calls only fill it, block its signals for this
    // (single-threaded) process and make a descriptor for them.
    let fd = unsafe {
        sigemptyset(&mut set);
        for s in signals {
            sigaddset(&mut set, *s);
        }
        if sigprocmask(SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn read_signals(fd: &OwnedFd) -> Vec<Event> {
    // struct signalfd_siginfo: 128 bytes, ssi_signo first.
    let mut buf = [0u8; 128];
    let mut out = Vec::new();
    for _ in 0..MAX_READS {
        let Ok(n) = sys::read_now(fd, &mut buf) else {
            break;
        };
        if n >= 4 {
            let signo = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes"));
            out.push(Event::Signal(signo as i32));
        }
    }
    out
}

/// Reads what is queued on a netlink socket, message by message, into `T` with `each`. An
/// overrun (ENOBUFS: the kernel dropped notifications) gives an empty `T`: the caller then
/// knows only that something happened.
fn drain<T: Default>(fd: &OwnedFd, each: impl Fn(&[u8], &mut T)) -> io::Result<T> {
    const ENOBUFS: i32 = 105;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = T::default();
    for _ in 0..MAX_READS {
        match sys::read_now(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                for m in messages(&buf[..n]) {
                    each(m, &mut out);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => return Ok(T::default()),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The netlink messages of one read.
fn messages(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        out.push(&buf[off..off + len]);
        off += (len + 3) & !3;
    }
    out
}

fn msg_type(m: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(m.get(4..6)?.try_into().ok()?))
}

/// The attributes after a message's fixed header of `head` bytes: (type, payload).
fn attributes(m: &[u8], head: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 16 + head;
    while off + 4 <= m.len() {
        let len = usize::from(u16::from_ne_bytes([m[off], m[off + 1]]));
        let kind = u16::from_ne_bytes([m[off + 2], m[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || off + len > m.len() {
            break;
        }
        out.push((kind, &m[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// The generation a NEWGEN notification announces.
fn generation_of(m: &[u8]) -> Option<u32> {
    if msg_type(m)? != NEWGEN {
        return None;
    }
    // nfgenmsg: 4 bytes.
    attributes(m, 4)
        .into_iter()
        .find(|(k, v)| *k == NFTA_GEN_ID && v.len() >= 4)
        .map(|(_, v)| u32::from_be_bytes(v[..4].try_into().expect("4 bytes")))
}

/// What an rtnetlink notification says, where it concerns the watcher.
fn network_event(m: &[u8]) -> Option<Event> {
    match msg_type(m)? {
        RTM_NEWLINK | RTM_DELLINK => link_of(m).map(|(name, gone)| Event::Link { name, gone }),
        // ifaddrmsg: family, prefix length, flags, scope, then the index (4 bytes).
        RTM_NEWADDR | RTM_DELADDR => Some(Event::Address(u32::from_ne_bytes(
            m.get(20..24)?.try_into().ok()?,
        ))),
        // rtmsg: family, then the destination's prefix length (0: a default route), and at
        // byte 4 its table: only the main table's count.
        RTM_NEWROUTE | RTM_DELROUTE => {
            const RT_TABLE_MAIN: u8 = 254;
            (*m.get(17)? == 0 && *m.get(20)? == RT_TABLE_MAIN).then_some(Event::DefaultRoute)
        }
        _ => None,
    }
}

/// The interface a link notification is about, and whether it was deleted.
fn link_of(m: &[u8]) -> Option<(String, bool)> {
    let gone = match msg_type(m)? {
        RTM_NEWLINK => false,
        RTM_DELLINK => true,
        _ => return None,
    };
    // ifinfomsg: 16 bytes.
    let (_, name) = attributes(m, 16)
        .into_iter()
        .find(|(k, _)| *k == IFLA_IFNAME)?;
    let name = name.split(|b| *b == 0).next()?;
    Some((String::from_utf8_lossy(name).into_owned(), gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, head: usize, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0u8; 16 + head];
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        for (k, v) in attrs {
            let len = 4 + v.len();
            m.extend_from_slice(&(len as u16).to_ne_bytes());
            m.extend_from_slice(&k.to_ne_bytes());
            m.extend_from_slice(v);
            m.resize((m.len() + 3) & !3, 0);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn reads_generations_and_links_from_notifications() {
        let newgen = message(
            NEWGEN,
            4,
            &[(2, &[0, 0, 0, 9]), (NFTA_GEN_ID, &[0, 0, 1, 2])],
        );
        let newtable = message(10 << 8, 4, &[(1, b"wgfw\0")]);
        let dellink = message(RTM_DELLINK, 16, &[(IFLA_IFNAME, b"wg0\0")]);
        let newlink = message(
            RTM_NEWLINK,
            16,
            &[(4, &[0, 5, 0, 0]), (IFLA_IFNAME, b"eth0\0")],
        );
        let mut read = newtable.clone();
        read.extend_from_slice(&newgen);
        read.extend_from_slice(&dellink);
        read.extend_from_slice(&newlink);
        let ms = messages(&read);
        assert_eq!(ms.len(), 4);
        let gens: Vec<u32> = ms.iter().filter_map(|m| generation_of(m)).collect();
        assert_eq!(gens, [258]);
        let links: Vec<(String, bool)> = ms.iter().filter_map(|m| link_of(m)).collect();
        assert_eq!(
            links,
            [("wg0".to_string(), true), ("eth0".to_string(), false)]
        );
        let mut addr = message(RTM_NEWADDR, 8, &[]);
        addr[20..24].copy_from_slice(&7u32.to_ne_bytes());
        assert_eq!(network_event(&addr), Some(Event::Address(7)));
        let mut route = message(RTM_DELROUTE, 12, &[]);
        route[20] = 254;
        assert_eq!(network_event(&route), Some(Event::DefaultRoute));
        route[17] = 24;
        assert_eq!(network_event(&route), None);
        // Cut anywhere, garbled anyhow: nothing panics.
        for cut in 0..read.len() {
            for m in messages(&read[..cut]) {
                let _ = (generation_of(m), network_event(m));
            }
        }
        let mut ev = Vec::new();
        for (name, padded) in [("wg0.conf", 16usize), ("", 0), (".wg0.conf.swp", 16)] {
            ev.extend_from_slice(&[1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
            ev.extend_from_slice(&(padded as u32).to_ne_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(padded, 0);
            ev.extend_from_slice(&n);
        }
        assert_eq!(inotify_names(&ev), ["wg0.conf", ".wg0.conf.swp"]);
        for cut in 0..ev.len() {
            let _ = inotify_names(&ev[..cut]);
        }
        let mut bad = newgen.clone();
        bad[16 + 4] = 2;
        bad[16 + 5] = 0;
        assert_eq!(generation_of(&bad), None);
    }
}
