//! A userspace WireGuard's own answer (wireguard-go, boringtun): the cross-platform UAPI
//! socket `/var/run/wireguard/IFACE.sock`, asked `get=1` (https://www.wireguard.com/xplatform/).
//! `wg show` asks the same socket and prints it again; asking it here saves that process and
//! its printing, and lets the hook put the question early and read the answer later: at
//! 10,000 peers wireguard-go takes 30-55 ms to work it out. The kernel's WireGuard has no such
//! socket: there `wg show` asks netlink.

use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::config::types::IfaceName;

/// The socket's directory, as wg(8) and wireguard-go spell it.
const SOCKET_DIR: &str = "/var/run/wireguard";

/// A `get=1` put to the interface's socket, its answer not read yet: the daemon works it out
/// while the hook goes on reading its configs and the ruleset.
pub(crate) struct Asked {
    socket: UnixStream,
    path: PathBuf,
}

/// Puts the question; None where the interface has no socket (the kernel's WireGuard) or it
/// cannot be asked.
pub(crate) fn ask(iface: &IfaceName) -> Option<Asked> {
    let path = Path::new(SOCKET_DIR).join(format!("{iface}.sock"));
    let ask = || -> io::Result<UnixStream> {
        let mut s = UnixStream::connect(&path)?;
        // A hung daemon must not hang wg-quick's PostUp for good.
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"get=1\n\n")?;
        Ok(s)
    };
    match ask() {
        Ok(socket) => Some(Asked { socket, path }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            log::debug!("{}: {e}: asking wg instead", path.display());
            None
        }
    }
}

impl Asked {
    /// The raw answer; None where the daemon did not give one.
    pub(crate) fn answer(mut self) -> Option<String> {
        let mut read = || -> io::Result<String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            // The answer ends with an empty line; the daemon keeps the connection open.
            while !out.ends_with(b"\n\n") {
                match self.socket.read(&mut buf)? {
                    0 => break,
                    n => out.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8(out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        read()
            .inspect_err(|e| log::debug!("{}: {e}: asking wg instead", self.path.display()))
            .ok()
    }
}

/// The peers and their AllowedIPs in a `get=1` answer, keys in base64 as `wg` prints them;
/// None for an answer that reports an error or is not one.
pub(crate) fn parse_peers(text: &str) -> Option<Vec<(String, Vec<IpNet>)>> {
    let mut peers: Vec<(String, Vec<IpNet>)> = Vec::new();
    let mut errno = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=')?;
        match key {
            "public_key" => peers.push((base64(&hex(value)?), Vec::new())),
            "allowed_ip" => peers.last_mut()?.1.push(value.parse().ok()?),
            "errno" => errno = value.parse::<i32>().ok(),
            _ => {}
        }
    }
    (errno == Some(0)).then_some(peers)
}

fn hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Standard base64 with padding: 32 bytes are 43 characters and one `=`.
fn base64(bytes: &[u8; 32]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(44);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out.push('=');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_as_wg_show_prints_it() {
        // Keys as `wg genkey | wg pubkey` and `wg show` print them, and in hex as UAPI does.
        let answer = "private_key=c809f3e5317e9575c9b5ed78b638b7ce530dabe85ddab614220241801ddf0669\n\
            listen_port=51820\n\
            public_key=216e27c68414cf703343e26dc4483d826dfeeac9acd02a0e795d66786d3e0000\n\
            preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n\
            allowed_ip=10.66.21.116/32\n\
            allowed_ip=fd66::1574/128\n\
            public_key=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00\n\
            endpoint=192.0.2.1:51820\n\
            errno=0\n\n";
        assert_eq!(
            parse_peers(answer),
            Some(vec![
                (
                    "IW4nxoQUz3AzQ+JtxEg9gm3+6sms0CoOeV1meG0+AAA=".to_string(),
                    vec![
                        "10.66.21.116/32".parse().unwrap(),
                        "fd66::1574/128".parse().unwrap()
                    ]
                ),
                (
                    "/////////////////////////////////////////wA=".to_string(),
                    vec![]
                ),
            ])
        );
    }

    #[test]
    fn errors_and_strange_answers_are_none() {
        assert_eq!(parse_peers("errno=-19\n\n"), None);
        assert_eq!(parse_peers(""), None);
        assert_eq!(parse_peers("public_key=zz\nerrno=0\n\n"), None);
        assert_eq!(parse_peers("allowed_ip=10.0.0.1/32\nerrno=0\n\n"), None);
        assert_eq!(parse_peers("listen_port=1\nerrno=0\n\n"), Some(vec![]));
    }
}
