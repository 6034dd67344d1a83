//! A userspace WireGuard's own answer (wireguard-go, boringtun): the cross-platform UAPI
//! socket `/var/run/wireguard/IFACE.sock`, asked `get=1` (https://www.wireguard.com/xplatform/).
//! `wg show` asks the same socket and prints it again; asking it here saves that process and
//! its printing, and lets the hook put the question early and read the answer later: at
//! 10,000 peers wireguard-go takes 30-55 ms to work it out. The kernel's WireGuard has no such
//! socket: there `wg show` asks netlink. The whole question has one deadline and the answer a
//! size cap (`DEADLINE`, `CAP`): a daemon that hangs, drips or floods costs `up` at most 5 s,
//! after which the plan follows the config's AllowedIPs (`host::live_peers`).

use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::config::types::{IfaceName, Port};

use super::sys;

/// The socket's directory, as wg(8) and wireguard-go spell it.
const SOCKET_DIR: &str = "/var/run/wireguard";

/// How long the hook waits for the whole answer once it needs it, all told (not per read: a
/// daemon that drips a byte a second must not keep `up` waiting); the daemon has had the time
/// since the question on top. wireguard-go answers for 10,000 peers in 30-55 ms; 5 s leaves a
/// busy daemon room a hundred times over.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// The largest answer read: about 350 bytes a peer, so 64 MiB is some 190,000 peers. A larger
/// one is refused before it fills the hook's memory.
pub(crate) const CAP: usize = 64 << 20;

/// A `get=1` put to the interface's socket, its answer not read yet: the daemon works it out
/// while the hook goes on reading its configs and the ruleset.
pub(crate) struct Asked {
    /// The connection, or why the daemon cannot be asked at all.
    socket: Result<UnixStream, String>,
    path: PathBuf,
}

/// Puts the question; None where the interface has no socket (the kernel's WireGuard) or it
/// cannot be reached (then `wg` is asked instead).
pub(crate) fn ask(iface: &IfaceName) -> Option<Asked> {
    ask_at(&Path::new(SOCKET_DIR).join(format!("{iface}.sock")))
}

fn ask_at(path: &Path) -> Option<Asked> {
    let socket = match sys::connect_unix_now(path) {
        // The question is 7 bytes: a fresh connection's buffer takes it whole.
        Ok(mut s) => match s.write(b"get=1\n\n") {
            Ok(7) => Ok(s),
            _ => Err("does not take the question".to_string()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        // A full queue of connections: the daemon accepts none.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err("accepts no connection".into()),
        Err(e) => {
            log::debug!("{}: {e}: asking wg instead", path.display());
            return None;
        }
    };
    Some(Asked {
        socket,
        path: path.to_path_buf(),
    })
}

impl Asked {
    /// A question to a daemon that cannot answer (`why`), as the fake system asks it.
    #[cfg(test)]
    pub(crate) fn unanswered(why: &str) -> Asked {
        Asked {
            socket: Err(why.to_string()),
            path: PathBuf::from("/var/run/wireguard/wg0.sock"),
        }
    }

    /// The raw answer, read within `DEADLINE` and at most `CAP` bytes; else why not, in a few
    /// words after the socket's path.
    pub(crate) fn answer(self) -> Result<String, String> {
        self.answer_within(DEADLINE, CAP)
            .map_err(|why| format!("{} {why}", self.path.display()))
    }

    fn answer_within(&self, deadline: Duration, cap: usize) -> Result<String, String> {
        let mut socket = self.socket.as_ref().map_err(Clone::clone)?;
        let end = Instant::now() + deadline;
        let late = || format!("did not answer within {} s", deadline.as_secs_f64());
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // The answer ends with an empty line; the daemon keeps the connection open.
        while !out.ends_with(b"\n\n") {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(late());
            }
            let mut fds = [sys::PollFd {
                fd: std::os::fd::AsRawFd::as_raw_fd(socket),
                events: sys::POLLIN,
                revents: 0,
            }];
            if sys::wait_ready(&mut fds, left).map_err(|e| e.to_string())? == 0 {
                continue;
            }
            match socket.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if out.len() + n > cap => {
                    return Err(format!("answered more than {} MiB", cap >> 20));
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        String::from_utf8(out).map_err(|_| "answered what is not text".to_string())
    }
}

/// The peers and their AllowedIPs in a `get=1` answer, keys in base64 as `wg` prints them;
/// None for an answer that reports an error or is not one.
pub(crate) fn parse_peers(text: &str) -> Option<Vec<(String, Vec<IpNet>)>> {
    parse_device(text).map(|(_, peers)| peers)
}

/// The peers (public keys in base64) and their AllowedIPs.
pub(crate) type Peers = Vec<(String, Vec<IpNet>)>;

/// The listen port (none while the device is down) and the peers of a `get=1` answer.
pub(crate) fn parse_device(text: &str) -> Option<(Option<Port>, Peers)> {
    let mut peers: Vec<(String, Vec<IpNet>)> = Vec::new();
    let mut port = None;
    let mut errno = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line.split_once('=')?;
        match key {
            "listen_port" => port = value.parse::<Port>().ok(),
            "public_key" => peers.push((base64(&hex(value)?), Vec::new())),
            "allowed_ip" => peers.last_mut()?.1.push(value.parse().ok()?),
            "errno" => errno = value.parse::<i32>().ok(),
            _ => {}
        }
    }
    (errno == Some(0)).then_some((port, peers))
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

    /// A daemon on a socket of its own that answers each connection with `answer` (after
    /// reading the question), then holds it open for at most 3 s.
    fn daemon(name: &str, answer: fn(&mut UnixStream)) -> (PathBuf, std::thread::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("wgfw-uapi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wg0.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut q = [0u8; 7];
            let _ = s.read_exact(&mut q);
            answer(&mut s);
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let _ = s.read(&mut q);
            let _ = std::fs::remove_dir_all(dir);
        });
        (path, handle)
    }

    fn asked(name: &str, answer: fn(&mut UnixStream)) -> (Result<String, String>, Duration) {
        let (path, daemon) = daemon(name, answer);
        let started = Instant::now();
        let asked = ask_at(&path).expect("a socket");
        let got = asked.answer_within(Duration::from_millis(500), 1 << 20);
        let took = started.elapsed();
        drop(asked);
        daemon.join().unwrap();
        (got, took)
    }

    #[test]
    fn a_daemon_that_drips_stalls_or_floods_is_given_up_on_in_time() {
        let (got, took) = asked("drip", |s| {
            for _ in 0..20 {
                if s.write_all(b"e").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        assert_eq!(got.unwrap_err(), "did not answer within 0.5 s");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let (got, took) = asked("silent", |_| {});
        assert_eq!(got.unwrap_err(), "did not answer within 0.5 s");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let (got, _) = asked("flood", |s| {
            let _ = s.write_all(&vec![b'x'; 2 << 20]);
        });
        assert_eq!(got.unwrap_err(), "answered more than 1 MiB");
        let (got, _) = asked("good", |s| {
            let _ = s.write_all(b"listen_port=1\nerrno=0\n\n");
        });
        assert_eq!(got.unwrap(), "listen_port=1\nerrno=0\n\n");
        assert!(ask_at(Path::new("/nonexistent/wg0.sock")).is_none());
    }

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
        assert_eq!(
            parse_device("listen_port=51999\nerrno=0\n\n"),
            Some((Port::new(51999), vec![]))
        );
        // A device that is down has no port.
        assert_eq!(parse_device("errno=0\n\n"), Some((None, vec![])));
    }
}
