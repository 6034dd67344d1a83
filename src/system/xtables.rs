//! The iptables-legacy tables as the kernel hands them out (IPT_SO_GET_ENTRIES, what libiptc
//! reads), for one thing only: the chains and the built-in chains' policies, where
//! `iptables-legacy-save` would also format every rule of the host (20 of its 30 ms at 20,000
//! rules). That is all a first `up` needs (`iptables::Live::from_overview` is the same for
//! iptables-nft). Anything unexpected returns None, and the caller runs the save.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use crate::plan::Family;
use crate::rules::Table;
use crate::rules::iptables::Live;
use crate::system::sys::{self, AF_INET, AF_INET6};

const IPPROTO_RAW: i32 = 255;
const SOL_IP: i32 = 0;
const SOL_IPV6: i32 = 41;
/// IPT_SO_GET_INFO and IPT_SO_GET_ENTRIES; the IPv6 ones have the same numbers.
const GET_INFO: i32 = 64;
const GET_ENTRIES: i32 = 65;
/// struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5], num_entries, size.
const INFO_LEN: usize = 84;
/// struct ipt_get_entries before its entries: name[32], size, padding to 8.
const ENTRIES_HEAD: usize = 40;
/// A table no bigger than this is read (a host with 1,000,000 rules is not one we serve).
const MAX_SIZE: usize = 256 << 20;
const HOOKS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// Whether this network namespace has legacy tables of the family (the kernel lists them in
/// /proc/net). Unreadable means unknown, and true: read the rules rather than miss them.
pub(crate) fn legacy_tables_exist(family: Family) -> bool {
    let list = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    super::os::os()
        .read(std::path::Path::new(list))
        .map_or(true, |t| !t.trim().is_empty())
}

/// What the kernel says of every legacy table of both families without handing out their
/// rules (IPT_SO_GET_INFO: entries, size, where each built-in chain starts and ends), as one
/// number: a flush, a restore or a rule added or deleted changes it, at a few microseconds a
/// look where `iptables-legacy-save` costs milliseconds. A change that keeps every size (a
/// verdict replaced in place) is left to the full look. None where nothing can be asked.
pub(crate) fn fingerprint() -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (names, domain, level) in [
        ("/proc/thread-self/net/ip_tables_names", AF_INET, SOL_IP),
        ("/proc/thread-self/net/ip6_tables_names", AF_INET6, SOL_IPV6),
    ] {
        // Only tables that exist: asking for another would create it in this namespace.
        let tables = std::fs::read_to_string(names).unwrap_or_default();
        let mut tables: Vec<&str> = tables.split_whitespace().collect();
        tables.sort_unstable();
        if tables.is_empty() {
            continue;
        }
        let fd = sys::raw_socket(domain, IPPROTO_RAW)?;
        for name in tables {
            (domain, &info(&fd, level, name)?[..]).hash(&mut h);
        }
    }
    Some(h.finish())
}

/// The chains and policies of one family's legacy tables, read from the kernel; None where
/// anything is not as expected.
pub fn overview(family: Family) -> Option<Live> {
    let (names, domain, level, entry_len, offsets) = match family {
        Family::V4 => (
            "/proc/thread-self/net/ip_tables_names",
            AF_INET,
            SOL_IP,
            112,
            (88, 90),
        ),
        Family::V6 => (
            "/proc/thread-self/net/ip6_tables_names",
            AF_INET6,
            SOL_IPV6,
            168,
            (140, 142),
        ),
    };
    // Only tables that exist: asking for another would create it in this namespace.
    let tables = std::fs::read_to_string(names).unwrap_or_default();
    let fd = sys::raw_socket(domain, IPPROTO_RAW)?;
    let mut live = Live::default();
    for name in tables.split_whitespace() {
        let Some(table) = Table::parse(name) else {
            continue; // security, broute...: never ours, and no chains we look at
        };
        let blob = read_table(&fd, level, name)?;
        parse(&blob, table, entry_len, offsets, &mut live)?;
    }
    Some(live)
}

/// The table's entries, with its built-in chains (bits of `valid_hooks`) and the offsets of
/// their policies.
struct Blob {
    valid_hooks: u32,
    underflow: [u32; 5],
    entries: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The table's struct ipt_getinfo.
fn info(fd: &OwnedFd, level: i32, name: &str) -> Option<[u8; INFO_LEN]> {
    let mut info = [0u8; INFO_LEN];
    // The name and its NUL within the first 32 bytes.
    info.get_mut(..name.len())
        .filter(|_| name.len() < 32)?
        .copy_from_slice(name.as_bytes());
    sys::get_option(fd, level, GET_INFO, &mut info)?;
    Some(info)
}

fn read_table(fd: &OwnedFd, level: i32, name: &str) -> Option<Blob> {
    let info = info(fd, level, name)?;
    let word = |i: usize| u32_at(&info, 32 + 4 * i);
    let valid_hooks = word(0)?;
    let mut underflow = [0u32; 5];
    for (h, u) in underflow.iter_mut().enumerate() {
        *u = word(6 + h)?;
    }
    let size = word(12)? as usize;
    if size > MAX_SIZE {
        return None;
    }
    let mut buf = vec![0u8; ENTRIES_HEAD + size];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    buf[32..36].copy_from_slice(&(size as u32).to_ne_bytes());
    // A table that changed size since its info is refused (EAGAIN): the caller saves instead.
    sys::get_option(fd, level, GET_ENTRIES, &mut buf)?;
    // The entries stay where the kernel put them: a table of 20,000 rules is 4 MB.
    buf.drain(..ENTRIES_HEAD);
    Some(Blob {
        valid_hooks,
        underflow,
        entries: buf,
    })
}

/// Adds the table's chains and built-in policies to `live`. Entries are: the built-in chains'
/// rules, each ending in its policy (the underflow); user chains, each headed by an ERROR
/// target naming it; a final ERROR entry.
fn parse(
    blob: &Blob,
    table: Table,
    entry_len: usize,
    (target_offset_at, next_offset_at): (usize, usize),
    live: &mut Live,
) -> Option<()> {
    let e = &blob.entries;
    let mut chains: BTreeMap<usize, String> = BTreeMap::new();
    // Only the built-in chains' last entries matter: their verdicts are the policies.
    let mut verdicts: BTreeMap<usize, i32> = blob
        .underflow
        .iter()
        .enumerate()
        .filter(|(h, _)| blob.valid_hooks & (1 << h) != 0)
        .map(|(_, u)| (*u as usize, 0))
        .collect();
    let mut at = 0;
    while at < e.len() {
        let target = at + usize::from(u16_at(e, at + target_offset_at)?);
        let next = usize::from(u16_at(e, at + next_offset_at)?);
        if next < entry_len || target < at + entry_len || target + 32 > at + next {
            return None;
        }
        // xt_entry_target: target_size (2), name[29], revision (1), then the target's data.
        let tname = &e.get(target + 2..target + 31)?;
        let tname = &tname[..tname.iter().position(|b| *b == 0).unwrap_or(tname.len())];
        match tname {
            b"ERROR" => {
                let data = e.get(target + 32..(target + 64).min(at + next))?;
                let chain = &data[..data.iter().position(|b| *b == 0).unwrap_or(data.len())];
                let chain = std::str::from_utf8(chain).ok()?;
                if chain != "ERROR" {
                    chains.insert(at, chain.to_string());
                }
            }
            b"" => {
                if let Some(v) = verdicts.get_mut(&at) {
                    *v = i32::from_ne_bytes(e.get(target + 32..target + 36)?.try_into().ok()?);
                }
            }
            _ => {}
        }
        at += next;
    }
    if at != e.len() {
        return None;
    }
    for (h, name) in HOOKS.iter().enumerate() {
        if blob.valid_hooks & (1 << h) == 0 {
            continue;
        }
        let policy = match verdicts.get(&(blob.underflow[h] as usize))? {
            -1 => "DROP",
            -2 => "ACCEPT",
            _ => return None,
        };
        live.chains.insert((table, name.to_string()));
        live.policies
            .insert((table, name.to_string()), policy.to_string());
    }
    for name in chains.into_values() {
        live.chains.insert((table, name));
    }
    Some(())
}
