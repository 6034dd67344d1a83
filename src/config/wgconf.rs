//! Reads a wg-quick config the way wg-quick (and `wg setconf`) read it, keeping line numbers so
//! that errors can say `file:line`.
//!
//! wg-quick's rules: `#` starts a comment anywhere on a line; the key is what stands before the
//! first `=`, the value what follows it, both trimmed of whitespace (CR included, so CRLF files
//! work); keys and section names are case-insensitive; `Address` and `AllowedIPs` are lists split
//! on commas and whitespace and may repeat; unknown keys are ignored. Nothing here unescapes
//! backslashes or strips quotes: hook lines keep them.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use crate::config::limits::{
    MAX_ADDRESSES, MAX_ALLOWED_IPS, MAX_ALLOWED_IPS_PER_PEER, MAX_PEERS, over,
};
use crate::config::quote;
use crate::config::types::Port;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgConfig {
    pub path: PathBuf,
    pub addresses: Vec<IpNet>,
    pub listen_port: Option<Port>,
    pub mtu: Option<u32>,
    pub fwmark: Option<String>,
    pub table: Option<String>,
    pub peers: Vec<Peer>,
    /// Read from the live interface (there is no wg-quick config), not from a file.
    pub live: bool,
    /// Read from systemd-networkd's files (there is no wg-quick config and no live interface
    /// yet): which ones. `path` is then the `.netdev`.
    pub networkd: Option<NetworkdFiles>,
}

/// The systemd-networkd files a tunnel was read from (`config::networkd`), each main file
/// first and its drop-ins after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkdFiles {
    /// The `.netdev` that creates the interface, and its drop-ins.
    pub netdev: Vec<PathBuf>,
    /// The first `.network` matching the interface (its addresses, its MTU), and its
    /// drop-ins; empty where none matches.
    pub network: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub public_key: Option<String>,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<IpNet>,
    /// The line of the `[Peer]` header, for messages.
    pub line: usize,
}

#[derive(PartialEq)]
enum Section {
    None,
    Interface,
    Peer,
}

/// Reads the config (refused when another user could have written it).
pub fn read(path: &Path) -> Result<WgConfig> {
    let text = crate::config::trust::read(path)?.ok_or_else(|| {
        Error::usage(format!(
            "{}: no such wg-quick config (name another with --config PATH)",
            quote::path(path)
        ))
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<WgConfig> {
    let mut conf = WgConfig {
        path: path.to_path_buf(),
        ..WgConfig::default()
    };
    let mut section = Section::None;
    let shown = quote::path(path);
    let err = |line: usize, msg: String| Error::usage(format!("{shown}:{line}: {msg}"));
    let bad = |line: usize, what: &str, item: &str, why: &str| {
        err(line, format!("{what} \"{}\" {why}", quote::text(item)))
    };

    // Counted as they are read: nothing past a limit is ever kept.
    let mut allowed_ips = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let stripped = raw.split('#').next().unwrap_or("");
        let (key, value) = match stripped.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (stripped.trim(), stripped.trim()),
        };
        if key.starts_with('[') {
            section = if key.eq_ignore_ascii_case("[Interface]") {
                Section::Interface
            } else if key.eq_ignore_ascii_case("[Peer]") {
                if conf.peers.len() == MAX_PEERS {
                    return Err(err(line, over(MAX_PEERS, "[Peer] sections")));
                }
                conf.peers.push(Peer {
                    line,
                    ..Peer::default()
                });
                Section::Peer
            } else {
                Section::None
            };
            continue;
        }
        let key = key.to_ascii_lowercase();
        match (&section, key.as_str()) {
            (Section::Interface, "address") => {
                for item in list(value) {
                    if conf.addresses.len() == MAX_ADDRESSES {
                        return Err(err(line, over(MAX_ADDRESSES, "Address networks")));
                    }
                    let net = parse_net(item)
                        .ok_or_else(|| bad(line, "Address", item, "is not an IP network"))?;
                    conf.addresses.push(net);
                }
            }
            (Section::Interface, "listenport") => {
                let port = value
                    .parse::<Port>()
                    .map_err(|_| bad(line, "ListenPort", value, "is not a port (1-65535)"))?;
                conf.listen_port = Some(port);
            }
            (Section::Interface, "mtu") => {
                let mtu = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (576..=65535).contains(m))
                    .ok_or_else(|| bad(line, "MTU", value, "is not an MTU (576-65535)"))?;
                conf.mtu = Some(mtu);
            }
            (Section::Interface, "fwmark") => conf.fwmark = Some(value.to_string()),
            (Section::Interface, "table") => conf.table = Some(value.to_string()),
            (Section::Peer, "publickey") => {
                last_peer(&mut conf).public_key = Some(value.to_string())
            }
            (Section::Peer, "endpoint") => last_peer(&mut conf).endpoint = Some(value.to_string()),
            (Section::Peer, "allowedips") => {
                let peer = last_peer(&mut conf);
                for item in list(value) {
                    if peer.allowed_ips.len() == MAX_ALLOWED_IPS_PER_PEER {
                        let what = "AllowedIPs networks of one peer";
                        return Err(err(line, over(MAX_ALLOWED_IPS_PER_PEER, what)));
                    }
                    if allowed_ips == MAX_ALLOWED_IPS {
                        let what = "AllowedIPs networks (all peers together)";
                        return Err(err(line, over(MAX_ALLOWED_IPS, what)));
                    }
                    let net = parse_net(item)
                        .ok_or_else(|| bad(line, "AllowedIPs", item, "is not an IP network"))?;
                    peer.allowed_ips.push(net);
                    allowed_ips += 1;
                }
            }
            _ => {}
        }
    }
    Ok(conf)
}

/// The config again as wg-quick text, with what the hook uses of it (no keys but the peers'
/// public ones): what `up` records, to install the same plan again later.
pub fn render(conf: &WgConfig) -> String {
    // Written in place: at 10,000 peers, a String per network is most of the cost.
    fn nets(s: &mut String, key: &str, nets: &[IpNet]) {
        if nets.is_empty() {
            return;
        }
        s.push_str(key);
        for (i, n) in nets.iter().enumerate() {
            let _ = write!(s, "{}{n}", if i == 0 { " = " } else { ", " });
        }
        s.push('\n');
    }
    let mut s = String::from("[Interface]\n");
    nets(&mut s, "Address", &conf.addresses);
    if let Some(p) = conf.listen_port {
        let _ = writeln!(s, "ListenPort = {p}");
    }
    if let Some(m) = conf.mtu {
        let _ = writeln!(s, "MTU = {m}");
    }
    if let Some(f) = &conf.fwmark {
        let _ = writeln!(s, "FwMark = {f}");
    }
    if let Some(t) = &conf.table {
        let _ = writeln!(s, "Table = {t}");
    }
    for peer in &conf.peers {
        s.push_str("[Peer]\n");
        if let Some(k) = &peer.public_key {
            let _ = writeln!(s, "PublicKey = {k}");
        }
        if let Some(e) = &peer.endpoint {
            let _ = writeln!(s, "Endpoint = {e}");
        }
        nets(&mut s, "AllowedIPs", &peer.allowed_ips);
    }
    s
}

fn last_peer(conf: &mut WgConfig) -> &mut Peer {
    conf.peers
        .last_mut()
        .expect("a [Peer] header pushed a peer")
}

/// wg-quick splits lists on commas and on whitespace alike (`${value//,/ }`).
pub(crate) fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

/// `10.0.0.1/24` keeps its host bits (the interface address); a bare address is a host route,
/// as `ip address add` and `wg` read it.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    if s.contains('/') {
        s.parse::<IpNet>().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/wireguard/wg0.conf";

    fn p(text: &str) -> Result<WgConfig> {
        parse(Path::new(FILE), text)
    }

    #[test]
    fn reads_a_dual_stack_server() {
        let c = p("[Interface]\n\
                   Address = 10.66.0.1/24, fd66::1/64\n\
                   ListenPort = 51820\n\
                   PrivateKey = aGVsbG8=\n\
                   [Peer]\nPublicKey = abc=\nAllowedIPs = 10.66.0.2/32, fd66::2/128\n\
                   [Peer]\nPublicKey = def=\nAllowedIPs = 10.66.0.3/32\nEndpoint = 192.0.2.7:4500\n")
        .unwrap();
        assert_eq!(
            c.addresses,
            vec![
                "10.66.0.1/24".parse::<IpNet>().unwrap(),
                "fd66::1/64".parse().unwrap()
            ]
        );
        assert_eq!(c.listen_port, Port::new(51820));
        assert_eq!(c.mtu, None);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[0].allowed_ips.len(), 2);
        assert_eq!(c.peers[1].endpoint.as_deref(), Some("192.0.2.7:4500"));
        assert_eq!(c.peers[1].public_key.as_deref(), Some("def="));
    }

    #[test]
    fn follows_wg_quick_semantics() {
        let c = p("[interface] # a comment\r\n\
                   address=10.1.0.1/24#inline\r\n\
                   ADDRESS = fd01::1/64 10.2.0.1/16,,\r\n\
                   \tMtU\t=\t1380 \r\n\
                   PostUp = iptables -A FORWARD -i %i -m comment --comment \"a\\b\" -j ACCEPT\r\n\
                   Unknown = whatever\r\n\
                   FwMark = 0xca6c\r\n\
                   Table = off\r\n\
                   [PEER]\r\nallowedips = 10.9.0.0/16\r\n\
                   AllowedIPs = 10.8.0.5\r\n")
        .unwrap();
        assert_eq!(c.addresses.len(), 3);
        assert_eq!(c.addresses[2], "10.2.0.1/16".parse::<IpNet>().unwrap());
        assert_eq!(c.mtu, Some(1380));
        assert_eq!(c.fwmark.as_deref(), Some("0xca6c"));
        assert_eq!(c.table.as_deref(), Some("off"));
        assert_eq!(
            c.peers[0].allowed_ips,
            vec![
                "10.9.0.0/16".parse::<IpNet>().unwrap(),
                "10.8.0.5/32".parse().unwrap()
            ]
        );
    }

    #[test]
    fn keys_outside_their_section_are_ignored() {
        let c = p("Address = 10.0.0.1/24\n[Peer]\nAddress = 10.0.0.2/24\nListenPort = 1\n[Other]\nAddress = x\n").unwrap();
        assert!(c.addresses.is_empty());
        assert_eq!(c.listen_port, None);
    }

    #[test]
    fn missing_keys_stay_unknown() {
        let c = p("[Interface]\nAddress = 10.0.0.1/32\n").unwrap();
        assert_eq!(c.listen_port, None);
        assert_eq!(c.mtu, None);
        assert!(c.peers.is_empty());
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let e = p("[Interface]\n\nAddress = 10.0.0.300/24\n").unwrap_err();
        assert_eq!(
            e,
            Error::usage(
                "/etc/wireguard/wg0.conf:3: Address \"10.0.0.300/24\" is not an IP network"
            )
        );
        let e = p("[Interface]\nListenPort = 70000\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/wireguard/wg0.conf:2: ListenPort \"70000\""),
            "{e}"
        );
        let e = p("[Interface]\nMTU = big\n").unwrap_err();
        assert!(e.to_string().contains(":2: MTU \"big\""), "{e}");
        let e = p("[Peer]\nAllowedIPs = 10.0.0.0/33\n").unwrap_err();
        assert!(
            e.to_string().contains(":2: AllowedIPs \"10.0.0.0/33\""),
            "{e}"
        );
    }

    #[test]
    fn errors_escape_control_characters() {
        for (text, want) in [
            (
                "[Interface]\nAddress = 10.0.0.1/24\x1b[2J\n",
                ":2: Address \"10.0.0.1/24\\x1b[2J\"",
            ),
            (
                "[Interface]\nListenPort = 51\r820\n",
                ":2: ListenPort \"51\\r820\"",
            ),
            ("[Interface]\nMTU = 1\x07420\n", ":2: MTU \"1\\x07420\""),
            (
                "[Peer]\nAllowedIPs = 10.0.0.2\u{9b}/32\n",
                ":2: AllowedIPs \"10.0.0.2\\u{9b}/32\"",
            ),
        ] {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.chars().any(char::is_control), "{text:?}: {e:?}");
        }
        let e = parse(Path::new("/tmp/wg\r0.conf"), "[Interface]\nMTU = x\n").unwrap_err();
        assert!(e.to_string().starts_with("/tmp/wg\\r0.conf:2: MTU"), "{e}");
    }

    /// A million AllowedIPs once made two million rules and 900 MB without a word: each list
    /// is counted as it is read, and going over names the line.
    #[test]
    fn input_beyond_the_limits_is_refused_with_its_line() {
        let head = "[Interface]\nAddress = 10.0.0.1/32\nListenPort = 1\n";
        let peers = head.to_string() + &"[Peer]\nAllowedIPs = 10.0.0.2/32\n".repeat(100_001);
        assert_eq!(
            p(&peers).unwrap_err().to_string(),
            "/etc/wireguard/wg0.conf:200004: more than 100000 [Peer] sections: wgfw-hook's limit, far above real use (see LIMITS in wgfw-hook(8))"
        );
        assert_eq!(p(&peers[..peers.len() - 34]).unwrap().peers.len(), 100_000);
        let nets = |n: usize| vec!["10.0.0.2/32"; n].join(", ");
        let one = format!("{head}[Peer]\nAllowedIPs = {}\n", nets(100_001));
        assert!(p(&one).unwrap_err().to_string().starts_with(
            "/etc/wireguard/wg0.conf:5: more than 100000 AllowedIPs networks of one peer:"
        ));
        let many = format!(
            "{head}{}",
            format!("[Peer]\nAllowedIPs = {}\n", nets(70_000)).repeat(3)
        );
        assert!(p(&many).unwrap_err().to_string().starts_with(
            "/etc/wireguard/wg0.conf:9: more than 200000 AllowedIPs networks (all peers together):"
        ));
        let addresses = format!(
            "[Interface]\nAddress = {}\n",
            vec!["10.0.0.1/24"; 1_001].join(",")
        );
        assert!(
            p(&addresses)
                .unwrap_err()
                .to_string()
                .starts_with("/etc/wireguard/wg0.conf:2: more than 1000 Address networks:")
        );
    }

    #[test]
    fn renders_what_it_reads() {
        let c = p("[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\nMTU = 1380\nTable = off\n\
                   [Peer]\nPublicKey = abc=\nEndpoint = 192.0.2.7:4500\nAllowedIPs = 10.66.0.2/32\n[Peer]\nPublicKey = d=\n")
        .unwrap();
        let mut again = parse(Path::new("/etc/wireguard/wg0.conf"), &render(&c)).unwrap();
        for (a, b) in again.peers.iter_mut().zip(&c.peers) {
            a.line = b.line;
        }
        assert_eq!(again, c);
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for text in [
            "",
            "=",
            "[",
            "[Peer",
            "#",
            "\0\0",
            "[Interface]\n=\n= =\nAddress =\n",
            "[Peer]\n[Peer]\n",
        ] {
            let _ = p(text);
        }
    }
}
