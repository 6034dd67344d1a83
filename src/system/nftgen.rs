//! The generation of the namespace's nftables ruleset (NFT_MSG_GETGEN): a number the kernel
//! raises with every change committed, by anyone (nft, iptables-nft, firewalld, Docker). The
//! same number as right after our own commit proves that the ruleset is as we left it, without
//! listing it: `nft list table` reads every set element, 150 ms at 10,000 peers.

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use crate::system::sys;

const NETLINK_NETFILTER: i32 = 12;
/// (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, and the answer's NFT_MSG_NEWGEN.
const GETGEN: u16 = (10 << 8) | 16;
const NEWGEN: u16 = (10 << 8) | 15;
const NLM_F_REQUEST: u16 = 0x1;
const NFTA_GEN_ID: u16 = 1;
/// The attribute type without its NLA_F_NESTED and NLA_F_NET_BYTEORDER bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The socket the generation is asked on, opened once: one opened anew right after a commit
/// that deleted something waits until the committing program is done (`system::warm`), and
/// the watcher asks at once after every change.
static SOCKET: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// The ruleset's generation now; None where the kernel cannot be asked.
pub(crate) fn generation() -> Option<u32> {
    let mut kept = SOCKET.lock().ok()?;
    // A kept socket that fails is opened anew, once.
    for _ in 0..2 {
        if kept.is_none() {
            *kept = sys::raw_socket(sys::AF_NETLINK, NETLINK_NETFILTER);
        }
        match ask(kept.as_ref()?) {
            Some(g) => return Some(g),
            None => *kept = None,
        }
    }
    None
}

fn ask(fd: &OwnedFd) -> Option<u32> {
    // nlmsghdr (16), then nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, resource id 0.
    let mut req = [0u8; 20];
    req[0..4].copy_from_slice(&20u32.to_ne_bytes());
    req[4..6].copy_from_slice(&GETGEN.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    if !sys::send_all(fd, &req) {
        return None;
    }
    let mut buf = [0u8; 512];
    let n = sys::recv_into(fd, &mut buf)?;
    parse(&buf[..n])
}

/// The generation id in a NEWGEN answer.
fn parse(msg: &[u8]) -> Option<u32> {
    let u16_at = |at: usize| Some(u16::from_ne_bytes(msg.get(at..at + 2)?.try_into().ok()?));
    let len = u32::from_ne_bytes(msg.get(0..4)?.try_into().ok()?) as usize;
    if u16_at(4)? != NEWGEN || len > msg.len() {
        return None;
    }
    let mut off = 20;
    while off + 4 <= len {
        let (alen, kind) = (usize::from(u16_at(off)?), u16_at(off + 2)? & NLA_TYPE_MASK);
        if alen < 4 {
            return None;
        }
        if kind == NFTA_GEN_ID && alen >= 8 {
            return Some(u32::from_be_bytes(
                msg.get(off + 4..off + 8)?.try_into().ok()?,
            ));
        }
        off += (alen + 3) & !3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_id_of_a_newgen_answer() {
        let mut m = vec![0u8; 20];
        m[4..6].copy_from_slice(&NEWGEN.to_ne_bytes());
        // NFTA_GEN_PROC_PID first, then NFTA_GEN_ID (big-endian).
        m.extend_from_slice(&[8, 0, 2, 0, 0, 0, 0, 7]);
        m.extend_from_slice(&[8, 0, 1, 0, 0, 0, 1, 2]);
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(parse(&m), Some(258));
        for cut in 0..m.len() {
            let _ = parse(&m[..cut]);
        }
        m[4] ^= 1;
        assert_eq!(parse(&m), None);
        assert_eq!(parse(&[]), None);
    }
}
