//! Reads a WireGuard tunnel from systemd-networkd's files, for the time before networkd creates
//! the link: the `.netdev` that creates it (`[NetDev] Name=`, `Kind=wireguard`; `[WireGuard]
//! ListenPort=`; one `[WireGuardPeer]` section per peer) and the first `.network` that matches
//! it (`[Network] Address=`, `[Address]` sections, `[Link] MTUBytes=`). Pure: the files' texts
//! come in, `system::networkd` finds and reads them.
//!
//! systemd's syntax (systemd.syntax(7)), not wg-quick's: section names and keys are
//! case-sensitive; a comment is a line that starts with `#` or `;` (a `#` after a value is part
//! of it); a line that ends in `\` goes on in the next one; an assignment outside a section, a
//! line without `=` and unknown sections and keys are ignored, as networkd ignores them. A
//! section header that does not end in `]` makes networkd refuse the whole file: here it is an
//! error (in the file that was picked) or the file does not count (while picking).
//!
//! networkd's semantics, where they change what the firewall is built from:
//! - `ListenPort=auto` (or empty) is no fixed port: the kernel picks one.
//! - `AllowedIPs=` is a list (commas and whitespace) and may repeat; empty forgets the peer's
//!   list so far. A `[WireGuardPeer]` without `PublicKey=` is dropped, as networkd drops it.
//! - `[Network] Address=` is one address and may repeat; empty forgets every address so far
//!   (the `[Address]` sections' too). `[Address] Address=` is the section's one address (the
//!   last assignment wins); a section without one is dropped. `0.0.0.0/N` and `::/N` ask
//!   networkd for an address out of a pool: only the live interface knows it.
//! - `MTUBytes=` takes `K`, `M`, `G` (1024s); the `.network`'s `[Link]` wins over the
//!   `.netdev`'s, as it is applied later.
//! - `[Match]` (`Name=` and the other lists) as networkd tests it: shell globs; a list
//!   prefixed with `!` excludes; empty forgets the list so far; every list set must match; a
//!   `.network` without any is ignored. A WireGuard link has `Type=`, `Kind=` and `Driver=`
//!   `wireguard`, and no `MACAddress=`, `PermanentMACAddress=`, `Path=` or `Property=`;
//!   conditions on the host (`Host=`, `Virtualization=`...) are taken as met.
//!
//! Values are checked as `wgconf` checks them, and a peer's `PublicKey=` (base64 of 32 bytes)
//! and `Endpoint=` (`HOST:PORT`) as networkd checks them; where networkd would ignore a bad
//! value with a warning, this says `file:line: what is wrong`, as for a wg-quick config.

use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::config::fnmatch::glob;
use crate::config::limits::{
    MAX_ADDRESSES, MAX_ALLOWED_IPS, MAX_ALLOWED_IPS_PER_PEER, MAX_PEERS, over,
};
use crate::config::quote;
use crate::config::types::Port;
use crate::config::wgconf::{NetworkdFiles, Peer, WgConfig, list, parse_net};
use crate::error::{Error, Result};

/// One file's text: a main `.netdev`/`.network` file or one of its drop-ins.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

/// A logical line: a section header or an assignment, with the line it starts on.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Section(String),
    Assign(String, String),
}

/// The file's items in order; an error for a section header networkd would refuse.
fn lex(src: &Source) -> Result<Vec<(usize, Item)>> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in src.text.split('\n').enumerate() {
        let line = i + 1;
        let l = raw.trim();
        // A comment is skipped whole, inside a continuation too.
        if l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(body) = l.strip_suffix('\\') {
            let p = pending.get_or_insert_with(|| (line, String::new()));
            p.1.push_str(body);
            p.1.push(' ');
            continue;
        }
        let (start, whole) = match pending.take() {
            Some((start, mut s)) => {
                s.push_str(l);
                (start, s)
            }
            None => (line, l.to_string()),
        };
        if let Some(item) = item(src, start, whole.trim())? {
            out.push((start, item));
        }
    }
    if let Some((start, whole)) = pending
        && let Some(item) = item(src, start, whole.trim())?
    {
        out.push((start, item));
    }
    Ok(out)
}

fn item(src: &Source, line: usize, l: &str) -> Result<Option<Item>> {
    if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
        return Ok(None);
    }
    if let Some(rest) = l.strip_prefix('[') {
        let Some(name) = rest.strip_suffix(']') else {
            return Err(err(
                src,
                line,
                format!(
                    "\"{}\" is not a section header (networkd ignores the whole file)",
                    quote::text(l)
                ),
            ));
        };
        return Ok(Some(Item::Section(name.to_string())));
    }
    Ok(l.split_once('=')
        .map(|(k, v)| Item::Assign(k.trim().to_string(), v.trim().to_string())))
}

fn err(src: &Source, line: usize, msg: String) -> Error {
    Error::usage(format!("{}:{line}: {msg}", quote::path(src.path)))
}

fn bad(src: &Source, line: usize, key: &str, value: &str, why: &str) -> Error {
    err(src, line, format!("{key} \"{}\" {why}", quote::text(value)))
}

/// The `[NetDev]` `Name=` and `Kind=` of a `.netdev` (with its drop-ins): which link it creates.
/// `None` where networkd would not load the files.
pub fn netdev_creates(files: &[Source]) -> Option<(String, String)> {
    let (mut name, mut kind) = (String::new(), String::new());
    for src in files {
        let mut in_netdev = false;
        for (_, item) in lex(src).ok()? {
            match item {
                Item::Section(s) => in_netdev = s == "NetDev",
                Item::Assign(k, v) if in_netdev && k == "Name" => name = v,
                Item::Assign(k, v) if in_netdev && k == "Kind" => kind = v,
                Item::Assign(..) => {}
            }
        }
    }
    Some((name, kind))
}

/// The match lists of a `[Match]` section, as networkd keeps them: each word, with `!` before
/// those of a list written with `!`.
#[derive(Debug, Default)]
struct Matcher {
    /// `Name=` and `OriginalName=`: the interface's name.
    name: Vec<Vec<String>>,
    /// `Type=`, `Kind=`, `Driver=`: `wireguard` for a WireGuard link.
    wireguard: Vec<Vec<String>>,
    /// `MACAddress=`, `PermanentMACAddress=`, `Path=`, `Property=`...: none on a WireGuard link.
    absent: Vec<Vec<String>>,
    /// Conditions on the host (`Host=`...): taken as met, but they make the section non-empty.
    host: bool,
}

const NAME_KEYS: &[&str] = &["Name", "OriginalName"];
const WIREGUARD_KEYS: &[&str] = &["Type", "Kind", "Driver"];
const ABSENT_KEYS: &[&str] = &[
    "MACAddress",
    "PermanentMACAddress",
    "Path",
    "Property",
    "WLANInterfaceType",
    "SSID",
    "BSSID",
];
const HOST_KEYS: &[&str] = &[
    "Host",
    "Virtualization",
    "KernelCommandLine",
    "KernelVersion",
    "Credential",
    "Architecture",
    "Firmware",
];

/// Whether a `.network` (with its drop-ins) applies to the WireGuard link `iface`, as networkd
/// tests its `[Match]` section. `false` where networkd would not load the files.
pub fn network_matches(files: &[Source], iface: &str) -> bool {
    // Each key's list, in the order keys first appear; an empty assignment forgets it.
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    let mut host = false;
    for src in files {
        let Ok(items) = lex(src) else { return false };
        let mut in_match = false;
        for (_, item) in items {
            let (k, v) = match item {
                Item::Section(s) => {
                    in_match = s == "Match";
                    continue;
                }
                Item::Assign(k, v) => (k, v),
            };
            if !in_match {
                continue;
            }
            if HOST_KEYS.contains(&k.as_str()) {
                host |= !v.is_empty();
                continue;
            }
            let idx = match lists.iter().position(|(key, _)| *key == k) {
                Some(i) => i,
                None => {
                    lists.push((k, Vec::new()));
                    lists.len() - 1
                }
            };
            let words = &mut lists[idx].1;
            if v.is_empty() {
                words.clear();
                continue;
            }
            let (invert, rest) = match v.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, v.as_str()),
            };
            words.extend(rest.split_whitespace().map(|w| {
                if invert {
                    format!("!{w}")
                } else {
                    w.to_string()
                }
            }));
        }
    }
    let mut m = Matcher {
        host,
        ..Matcher::default()
    };
    for (k, words) in lists.into_iter().filter(|(_, w)| !w.is_empty()) {
        if NAME_KEYS.contains(&k.as_str()) {
            m.name.push(words);
        } else if WIREGUARD_KEYS.contains(&k.as_str()) {
            m.wireguard.push(words);
        } else if ABSENT_KEYS.contains(&k.as_str()) {
            m.absent.push(words);
        }
    }
    if m.name.is_empty() && m.wireguard.is_empty() && m.absent.is_empty() && !m.host {
        return false;
    }
    m.name.iter().all(|l| test_list(l, Some(iface)))
        && m.wireguard.iter().all(|l| test_list(l, Some("wireguard")))
        && m.absent.iter().all(|l| test_list(l, None))
}

/// networkd's test of one list against a value (`None`: the link has no such value): a `!`
/// pattern that matches fails it; else one plain pattern must match, where there is any.
fn test_list(patterns: &[String], value: Option<&str>) -> bool {
    let mut positive = false;
    let mut matched = false;
    for p in patterns {
        let (invert, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p.as_str()),
        };
        positive |= !invert;
        if value.is_some_and(|v| glob(p, v)) {
            if invert {
                return false;
            }
            matched = true;
        }
    }
    !positive || matched
}

#[derive(PartialEq)]
enum Section {
    Other,
    NetDev,
    WireGuard,
    Peer,
    Network,
    Address,
    Link,
}

/// The tunnel as networkd will create it: `netdev` (the `.netdev` and its drop-ins, which
/// `netdev_creates` picked) and `network` (the first matching `.network` and its drop-ins;
/// empty where none matches). `path` is the `.netdev`; the addresses are empty where no
/// `.network` gives any.
pub fn parse(netdev: &[Source], network: &[Source]) -> Result<WgConfig> {
    let mut conf = WgConfig {
        path: netdev
            .first()
            .map_or_else(PathBuf::new, |s| s.path.to_path_buf()),
        networkd: Some(NetworkdFiles {
            netdev: netdev.iter().map(|s| s.path.to_path_buf()).collect(),
            network: network.iter().map(|s| s.path.to_path_buf()).collect(),
        }),
        ..WgConfig::default()
    };
    let mut peer_sections = 0;
    let mut allowed_ips = 0;
    for src in netdev {
        let mut section = Section::Other;
        for (line, item) in lex(src)? {
            let (k, v) = match item {
                Item::Section(s) => {
                    section = match s.as_str() {
                        "NetDev" => Section::NetDev,
                        "WireGuard" => Section::WireGuard,
                        "WireGuardPeer" => {
                            if peer_sections == MAX_PEERS {
                                let what = "[WireGuardPeer] sections";
                                return Err(err(src, line, over(MAX_PEERS, what)));
                            }
                            peer_sections += 1;
                            conf.peers.push(Peer {
                                line,
                                ..Peer::default()
                            });
                            Section::Peer
                        }
                        _ => Section::Other,
                    };
                    continue;
                }
                Item::Assign(k, v) => (k, v),
            };
            match (&section, k.as_str()) {
                (Section::NetDev, "MTUBytes") => conf.mtu = mtu(src, line, &v)?,
                (Section::WireGuard, "ListenPort") => {
                    conf.listen_port = match v.as_str() {
                        "" | "auto" => None,
                        p => Some(p.parse::<Port>().map_err(|_| {
                            bad(
                                src,
                                line,
                                "ListenPort",
                                p,
                                "is not a port (1-65535) or auto",
                            )
                        })?),
                    }
                }
                (Section::Peer, "PublicKey") => {
                    if !v.is_empty() && !is_key(&v) {
                        let why = "is not a WireGuard key (44 characters of base64)";
                        return Err(bad(src, line, "PublicKey", &v, why));
                    }
                    last(&mut conf.peers).public_key = (!v.is_empty()).then_some(v)
                }
                (Section::Peer, "Endpoint") => {
                    if !v.is_empty() && !is_endpoint(&v) {
                        return Err(bad(src, line, "Endpoint", &v, "is not HOST:PORT"));
                    }
                    last(&mut conf.peers).endpoint = (!v.is_empty()).then_some(v)
                }
                (Section::Peer, "AllowedIPs") => {
                    let peer = last(&mut conf.peers);
                    if v.is_empty() {
                        allowed_ips -= peer.allowed_ips.len();
                        peer.allowed_ips.clear();
                    }
                    for item in list(&v) {
                        if peer.allowed_ips.len() == MAX_ALLOWED_IPS_PER_PEER {
                            let what = "AllowedIPs networks of one peer";
                            return Err(err(src, line, over(MAX_ALLOWED_IPS_PER_PEER, what)));
                        }
                        if allowed_ips == MAX_ALLOWED_IPS {
                            let what = "AllowedIPs networks (all peers together)";
                            return Err(err(src, line, over(MAX_ALLOWED_IPS, what)));
                        }
                        let net = parse_net(item).ok_or_else(|| {
                            bad(src, line, "AllowedIPs", item, "is not an IP network")
                        })?;
                        peer.allowed_ips.push(net);
                        allowed_ips += 1;
                    }
                }
                _ => {}
            }
        }
    }
    // networkd drops a peer without a public key.
    conf.peers.retain(|p| p.public_key.is_some());

    // Each address in order; an `[Address]` section's slot is filled by its `Address=`.
    let mut slots: Vec<Option<IpNet>> = Vec::new();
    let mut link_mtu = None;
    for src in network {
        let mut section = Section::Other;
        for (line, item) in lex(src)? {
            let (k, v) = match item {
                Item::Section(s) => {
                    section = match s.as_str() {
                        "Network" => Section::Network,
                        "Address" => {
                            if slots.len() == MAX_ADDRESSES {
                                let what = "Address networks";
                                return Err(err(src, line, over(MAX_ADDRESSES, what)));
                            }
                            slots.push(None);
                            Section::Address
                        }
                        "Link" => Section::Link,
                        _ => Section::Other,
                    };
                    continue;
                }
                Item::Assign(k, v) => (k, v),
            };
            match (&section, k.as_str()) {
                (Section::Network, "Address") if v.is_empty() => slots.clear(),
                (Section::Network, "Address") => {
                    if slots.len() == MAX_ADDRESSES {
                        return Err(err(src, line, over(MAX_ADDRESSES, "Address networks")));
                    }
                    slots.push(Some(address(src, line, &v)?));
                }
                (Section::Address, "Address") if !v.is_empty() => {
                    let net = address(src, line, &v)?;
                    if let Some(slot) = slots.last_mut() {
                        *slot = Some(net);
                    }
                }
                (Section::Link, "MTUBytes") => link_mtu = mtu(src, line, &v)?,
                _ => {}
            }
        }
    }
    for net in slots.into_iter().flatten() {
        // networkd configures an address once.
        if !conf.addresses.contains(&net) {
            conf.addresses.push(net);
        }
    }
    if link_mtu.is_some() {
        conf.mtu = link_mtu;
    }
    Ok(conf)
}

/// A WireGuard key as networkd takes it: 32 bytes in base64.
fn is_key(v: &str) -> bool {
    v.len() == 44
        && v.ends_with('=')
        && v[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `HOST:PORT`, `[IPV6]:PORT`: one word, a port after the last colon.
fn is_endpoint(v: &str) -> bool {
    !v.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#')
        && v.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        })
}

fn last(peers: &mut [Peer]) -> &mut Peer {
    peers
        .last_mut()
        .expect("a [WireGuardPeer] header pushed a peer")
}

/// One address of `Address=`, as networkd takes it: a single one per assignment.
fn address(src: &Source, line: usize, v: &str) -> Result<IpNet> {
    if v.split_whitespace().nth(1).is_some() {
        return Err(bad(
            src,
            line,
            "Address",
            v,
            "is not one IP network (networkd takes one per Address=: repeat the key)",
        ));
    }
    let net = parse_net(v).ok_or_else(|| bad(src, line, "Address", v, "is not an IP network"))?;
    if net.addr().is_unspecified() {
        return Err(bad(
            src,
            line,
            "Address",
            v,
            "asks networkd for an address out of a pool: only the live interface tells which",
        ));
    }
    Ok(net)
}

/// `MTUBytes=`: bytes, or `K`, `M`, `G` (1024s); empty is unset. Checked as wgconf's `MTU`.
fn mtu(src: &Source, line: usize, v: &str) -> Result<Option<u32>> {
    if v.is_empty() {
        return Ok(None);
    }
    let (digits, unit) = match v.char_indices().last() {
        Some((i, 'K')) => (&v[..i], 1024),
        Some((i, 'M')) => (&v[..i], 1024 * 1024),
        Some((i, 'G')) => (&v[..i], 1024 * 1024 * 1024),
        Some((i, 'B')) => (&v[..i], 1),
        _ => (v, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .and_then(|n| u32::try_from(n).ok())
        .filter(|m| (576..=65535).contains(m))
        .map(Some)
        .ok_or_else(|| bad(src, line, "MTUBytes", v, "is not an MTU (576-65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETDEV: &str = "/etc/systemd/network/50-wg0.netdev";
    const NETWORK: &str = "/etc/systemd/network/50-wg0.network";

    fn src<'a>(path: &'a str, text: &'a str) -> Source<'a> {
        Source {
            path: Path::new(path),
            text,
        }
    }

    fn p(netdev: &str, network: &str) -> Result<WgConfig> {
        parse(&[src(NETDEV, netdev)], &[src(NETWORK, network)])
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    const SERVER: &str = "[NetDev]\nName=wg0\nKind=wireguard\nMTUBytes=1380\n\
        [WireGuard]\nListenPort=51820\nPrivateKeyFile=/etc/systemd/network/wg0.key\n\
        [WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\nAllowedIPs=10.66.0.2/32,fd66::2/128\n\
        AllowedIPs=10.66.1.0/24\n\
        # a comment\n\
        ; another\n\
        [WireGuardPeer]\nPublicKey=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2=\nAllowedIPs=10.66.0.3/32 10.66.0.4\nEndpoint=192.0.2.7:4500\n";

    #[test]
    fn reads_a_netdev_and_its_network() {
        let c = p(
            SERVER,
            "[Match]\nName=wg0\n[Network]\nAddress=10.66.0.1/24\nAddress=fd66::1/64\n\
             [Address]\nAddress=10.67.0.1/24\nLabel=x\n[Link]\nMTUBytes=1400\n",
        )
        .unwrap();
        assert_eq!(c.path, Path::new(NETDEV));
        assert_eq!(
            c.addresses,
            nets(&["10.66.0.1/24", "fd66::1/64", "10.67.0.1/24"])
        );
        assert_eq!(c.listen_port, Port::new(51820));
        // The .network's [Link] comes later than the .netdev's.
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.peers.len(), 2);
        assert_eq!(
            c.peers[0].allowed_ips,
            nets(&["10.66.0.2/32", "fd66::2/128", "10.66.1.0/24"])
        );
        assert_eq!(c.peers[0].line, 8);
        assert_eq!(
            c.peers[1].allowed_ips,
            nets(&["10.66.0.3/32", "10.66.0.4/32"])
        );
        assert_eq!(c.peers[1].endpoint.as_deref(), Some("192.0.2.7:4500"));
        assert_eq!(
            c.peers[1].public_key.as_deref(),
            Some("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2=")
        );
        assert!(!c.live);
        let files = c.networkd.unwrap();
        assert_eq!(files.netdev, vec![PathBuf::from(NETDEV)]);
        assert_eq!(files.network, vec![PathBuf::from(NETWORK)]);
        // Without the .network: the .netdev's MTU, no addresses.
        let c = parse(&[src(NETDEV, SERVER)], &[]).unwrap();
        assert_eq!(c.mtu, Some(1380));
        assert!(c.addresses.is_empty());
        assert!(c.networkd.unwrap().network.is_empty());
    }

    #[test]
    fn follows_networkd_semantics() {
        // auto and empty: no fixed port; keys and sections are case-sensitive.
        for port in ["auto", ""] {
            let c = p(&format!("[WireGuard]\nListenPort={port}\n"), "").unwrap();
            assert_eq!(c.listen_port, None);
        }
        let c = p(
            "[wireguard]\nListenPort=1\n[WireGuard]\nlistenport=2\n[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\n\
             allowedips=10.0.0.0/8\n",
            "",
        )
        .unwrap();
        assert_eq!(c.listen_port, None);
        assert!(c.peers[0].allowed_ips.is_empty());
        // An empty AllowedIPs= forgets the list so far; a peer without a key is dropped.
        let c = p(
            "[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\nAllowedIPs=10.0.0.1/32\nAllowedIPs=\nAllowedIPs=10.0.0.2/32\n\
             [WireGuardPeer]\nAllowedIPs=10.9.9.9/32\n[WireGuardPeer]\nPublicKey=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2=\n",
            "",
        )
        .unwrap();
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].allowed_ips, nets(&["10.0.0.2/32"]));
        assert_eq!(c.peers[1].line, 8);
        // An empty [Network] Address= forgets every address so far; [Address] takes its last.
        let c = p(
            "",
            "[Network]\nAddress=10.0.0.1/24\n[Address]\nAddress=10.1.0.1/24\n[Network]\nAddress=\n\
             Address=10.2.0.1/24\n[Address]\nAddress=10.3.0.1/24\nAddress=10.4.0.1/24\n[Address]\nLabel=none\n\
             [Network]\nAddress=10.2.0.1/24\nAddress=fd00::1\n",
        )
        .unwrap();
        assert_eq!(
            c.addresses,
            nets(&["10.2.0.1/24", "10.4.0.1/24", "fd00::1/128"])
        );
        // Continuation lines, CRLF, and a `#` that is part of the value (an error here).
        let c = p(
            "[WireGuardPeer]\r\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\r\nAllowedIPs=10.0.0.1/32, \\\r\n# skipped\r\n  10.0.0.2/32\r\n",
            "",
        )
        .unwrap();
        assert_eq!(
            c.peers[0].allowed_ips,
            nets(&["10.0.0.1/32", "10.0.0.2/32"])
        );
        let e = p("", "[Network]\nAddress=10.0.0.1/24 # mine\n").unwrap_err();
        assert!(
            e.to_string().contains(":2: Address \"10.0.0.1/24 # mine\""),
            "{e}"
        );
        // MTUBytes with a unit; empty unsets.
        assert_eq!(p("[NetDev]\nMTUBytes=1K\n", "").unwrap().mtu, Some(1024));
        assert_eq!(
            p("[NetDev]\nMTUBytes=1400\n", "[Link]\nMTUBytes=\n")
                .unwrap()
                .mtu,
            Some(1400)
        );
    }

    #[test]
    fn drop_ins_come_after_their_file() {
        let c = parse(
            &[
                src(NETDEV, SERVER),
                src(
                    "/etc/systemd/network/50-wg0.netdev.d/peers.conf",
                    "[WireGuard]\nListenPort=auto\n[WireGuardPeer]\nPublicKey=CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC3=\nAllowedIPs=10.66.0.9/32\n",
                ),
            ],
            &[
                src(NETWORK, "[Network]\nAddress=10.66.0.1/24\n"),
                src(
                    "/run/systemd/network/50-wg0.network.d/v6.conf",
                    "[Network]\nAddress=fd66::1/64\n",
                ),
            ],
        )
        .unwrap();
        assert_eq!(c.listen_port, None);
        assert_eq!(c.peers.len(), 3);
        assert_eq!(c.addresses, nets(&["10.66.0.1/24", "fd66::1/64"]));
        assert_eq!(c.networkd.unwrap().network.len(), 2);
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let cases = [
            (
                "[WireGuard]\n\nListenPort=70000\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:3: ListenPort \"70000\" is not a port (1-65535) or auto",
            ),
            (
                "[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\nAllowedIPs=10.0.0.0/33\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:3: AllowedIPs \"10.0.0.0/33\" is not an IP network",
            ),
            (
                "[WireGuardPeer]\nPublicKey=abc=\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:2: PublicKey \"abc=\" is not a WireGuard key (44 characters of base64)",
            ),
            (
                "[WireGuardPeer]\nEndpoint=192.0.2.1:51820 # x\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:2: Endpoint \"192.0.2.1:51820 # x\" is not HOST:PORT",
            ),
            (
                "[NetDev]\nMTUBytes=big\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:2: MTUBytes \"big\" is not an MTU (576-65535)",
            ),
            (
                "",
                "[Link]\nMTUBytes=100G\n",
                "/etc/systemd/network/50-wg0.network:2: MTUBytes \"100G\" is not an MTU (576-65535)",
            ),
            (
                "",
                "[Network]\nAddress=10.0.0.300/24\n",
                "/etc/systemd/network/50-wg0.network:2: Address \"10.0.0.300/24\" is not an IP network",
            ),
            (
                "",
                "[Network]\nAddress=10.0.0.1/24 fd00::1/64\n",
                "/etc/systemd/network/50-wg0.network:2: Address \"10.0.0.1/24 fd00::1/64\" is not one IP network (networkd takes one per Address=: repeat the key)",
            ),
            (
                "",
                "[Address]\nAddress=0.0.0.0/24\n",
                "/etc/systemd/network/50-wg0.network:2: Address \"0.0.0.0/24\" asks networkd for an address out of a pool: only the live interface tells which",
            ),
            (
                "[NetDev\nName=wg0\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:1: \"[NetDev\" is not a section header (networkd ignores the whole file)",
            ),
            (
                "[WireGuardPeer]\nAllowedIPs=10.0.0.2\u{1b}[2J/32\n",
                "",
                "/etc/systemd/network/50-wg0.netdev:2: AllowedIPs \"10.0.0.2\\x1b[2J/32\" is not an IP network",
            ),
        ];
        for (netdev, network, want) in cases {
            assert_eq!(p(netdev, network).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn input_beyond_the_limits_is_refused_with_its_line() {
        let peers = "[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\n"
            .repeat(100_001);
        assert!(p(&peers, "").unwrap_err().to_string().starts_with(
            "/etc/systemd/network/50-wg0.netdev:200001: more than 100000 [WireGuardPeer] sections"
        ));
        let one = format!(
            "[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\nAllowedIPs={}\n",
            vec!["10.0.0.2/32"; 100_001].join(",")
        );
        assert!(
            p(&one, "")
                .unwrap_err()
                .to_string()
                .contains(":3: more than 100000 AllowedIPs networks of one peer")
        );
        // A reset gives the count back.
        let reset = format!(
            "[WireGuardPeer]\nPublicKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1=\n{}",
            format!(
                "AllowedIPs={}\nAllowedIPs=\n",
                vec!["10.0.0.2/32"; 90_000].join(",")
            )
            .repeat(3)
        );
        assert!(p(&reset, "").unwrap().peers[0].allowed_ips.is_empty());
        let addresses = "[Network]\nAddress=10.0.0.1/24\n".repeat(1_001);
        assert!(
            p("", &addresses)
                .unwrap_err()
                .to_string()
                .contains(":2002: more than 1000 Address networks")
        );
        let sections = "[Address]\n".repeat(1_001);
        assert!(
            p("", &sections)
                .unwrap_err()
                .to_string()
                .contains(":1001: more than 1000 Address networks")
        );
    }

    #[test]
    fn picks_the_netdev_by_name_and_kind() {
        let creates = |text: &str| netdev_creates(&[src(NETDEV, text)]);
        assert_eq!(
            creates(SERVER),
            Some(("wg0".to_string(), "wireguard".to_string()))
        );
        assert_eq!(
            creates("[NetDev]\nName=wg0\nName=wg1\nKind=bridge\n"),
            Some(("wg1".to_string(), "bridge".to_string()))
        );
        // networkd refuses the file: it creates nothing.
        assert_eq!(creates("[NetDev\nName=wg0\nKind=wireguard\n"), None);
        // A drop-in renames.
        assert_eq!(
            netdev_creates(&[
                src(NETDEV, SERVER),
                src(
                    "/etc/systemd/network/50-wg0.netdev.d/a.conf",
                    "[NetDev]\nName=wg7\n"
                )
            ]),
            Some(("wg7".to_string(), "wireguard".to_string()))
        );
        // Masked: an empty file names nothing.
        assert_eq!(creates(""), Some((String::new(), String::new())));
    }

    #[test]
    fn matches_as_networkd_does() {
        let m = |text: &str| network_matches(&[src(NETWORK, text)], "wg0");
        assert!(m("[Match]\nName=wg0\n"));
        assert!(m("[Match]\nName=eth0 wg*\n"));
        assert!(m("[Match]\nName=eth0\nName=wg[0-9]\n"));
        assert!(m(
            "[Match]\nName=w?0\nType=wireguard\nKind=wireguard\nDriver=wire*\n"
        ));
        assert!(m("[Match]\nName=!eth*\n"));
        assert!(m("[Match]\nName=wg1\nName=\nName=wg0\n"));
        assert!(m("[Match]\nHost=myhost\n"));
        assert!(m("[Match]\nName=*\nMACAddress=!00:11:22:33:44:55\n"));
        assert!(!m("[Match]\nName=wg1\n"));
        assert!(!m("[Match]\nName=!wg0\n"));
        assert!(!m("[Match]\nName=wg0\nType=ether\n"));
        assert!(!m("[Match]\nName=wg0\nMACAddress=00:11:22:33:44:55\n"));
        assert!(!m("[Match]\nname=wg0\n"));
        // Nothing to match on: networkd ignores the file.
        assert!(!m("[Network]\nAddress=10.0.0.1/24\n"));
        assert!(!m("[Match]\nName=\n"));
        assert!(!m("[Match\nName=wg0\n"));
        // A drop-in adds a condition.
        assert!(!network_matches(
            &[
                src(NETWORK, "[Match]\nName=wg0\n"),
                src(
                    "/etc/systemd/network/50-wg0.network.d/x.conf",
                    "[Match]\nKind=vlan\n"
                ),
            ],
            "wg0"
        ));
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for text in [
            "",
            "=",
            "[",
            "]",
            "[]",
            "\\",
            "\\\n\\",
            "[WireGuardPeer]\\",
            "[WireGuardPeer\n]",
            "\0\0",
            "[WireGuardPeer]\nAllowedIPs=\nAllowedIPs=,,\n",
            "[Network]\nAddress=\n[Address]\nAddress=\n[Link]\nMTUBytes=K\n",
            "[NetDev]\nMTUBytes=99999999999999999999G\n",
            "[Match]\nName=[\nName=[!\nName=[a-\nName=\\\nName=!\n",
        ] {
            let _ = p(text, text);
            let _ = netdev_creates(&[src(NETDEV, text)]);
            let _ = network_matches(&[src(NETWORK, text)], "wg0");
        }
    }
}
