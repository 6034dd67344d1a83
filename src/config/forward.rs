//! `--forward PROTO/PORT=ADDR[:PORT][,OPTION...]`: a port of this host published for a service
//! behind the tunnel, as written. Whether the address is behind the tunnel is the plan's to
//! judge (`plan::forwards`), against the config's peers.
//!
//! ```text
//! tcp/8443=10.66.0.2:443                the WAN's tcp/8443 to a peer's tcp/443
//! udp/27015:27030=10.66.0.3             a range, to the same ports
//! tcp/443=[2001:db8:66::2]              IPv6: the peer's own address, no translation
//! tcp/8443=10.66.0.2:443,keep-source    the peer sees the client's address
//! tcp/8443=10.66.0.2:443,from-lan,from-peers   also at this host's addresses from there
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::quote;
use super::types::{Port, Service};

/// The options after the target, as written.
pub const OPTIONS: &[&str] = &["keep-source", "from-lan", "from-peers"];

/// One forward, as written.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The protocol and the public ports of this host.
    pub public: Service,
    pub to: IpAddr,
    /// The target's first port; `None`: the same ports as the public ones.
    pub to_port: Option<Port>,
    /// No masquerade: the target sees the client's address and must route its replies back
    /// through the tunnel.
    pub keep_source: bool,
    /// Hosts of the LAN networks reach it at this host's addresses too (hairpin).
    pub from_lan: bool,
    /// Peers of the tunnel reach it at this host's addresses too (hairpin).
    pub from_peers: bool,
    /// Where it was written, as messages name it: `--forward` or `FILE:LINE: forward =`.
    pub origin: String,
}

/// Two forwards are the same when they forward the same, wherever they were written.
impl PartialEq for Forward {
    fn eq(&self, other: &Forward) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Forward {
    /// The target's ports, first and last.
    pub fn to_ports(&self) -> (u16, u16) {
        let first = self.to_port.unwrap_or(self.public.first).get();
        let span = self.public.last.get() - self.public.first.get();
        (first, first.saturating_add(span))
    }
}

impl FromStr for Forward {
    type Err = String;

    fn from_str(s: &str) -> Result<Forward, String> {
        let shown = quote::text(s);
        let bad = |why: &str| {
            format!(
                "\"{shown}\" is not a forward ({why}): use PROTO/PORT=ADDR[:PORT], e.g. tcp/8443=10.66.0.2:443"
            )
        };
        let mut parts = s.split(',').map(str::trim);
        let head = parts.next().unwrap_or_default();
        let (public, target) = head
            .split_once('=')
            .ok_or_else(|| bad("no = before the target"))?;
        let public: Service = public.trim().parse()?;
        let (to, to_port) = target_of(target.trim())
            .ok_or_else(|| bad("the target is not ADDR, ADDR:PORT or [IPv6]:PORT"))?;
        let mut f = Forward {
            public,
            to,
            to_port,
            keep_source: false,
            from_lan: false,
            from_peers: false,
            origin: "--forward".into(),
        };
        for opt in parts {
            match opt {
                "keep-source" => f.keep_source = true,
                "from-lan" => f.from_lan = true,
                "from-peers" => f.from_peers = true,
                o => {
                    return Err(format!(
                        "\"{}\" is not an option of a forward ({})",
                        quote::text(o),
                        OPTIONS.join(", ")
                    ));
                }
            }
        }
        let ranged = public.first != public.last;
        if ranged && to_port.is_some_and(|p| p != public.first) {
            return Err(format!(
                "\"{shown}\": a range is forwarded to the same ports: drop the target's :{}",
                to_port.map_or(0, Port::get)
            ));
        }
        if ranged {
            f.to_port = None;
        }
        if to.is_ipv6() && to_port.is_some_and(|p| p != public.first) {
            return Err(format!(
                "\"{shown}\": IPv6 is forwarded without translation, so to the same port: {}=[{to}]",
                public
            ));
        }
        Ok(f)
    }
}

/// `10.66.0.2`, `10.66.0.2:443`, `fd66::2`, `[fd66::2]` or `[fd66::2]:443`.
fn target_of(s: &str) -> Option<(IpAddr, Option<Port>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let addr: IpAddr = addr.parse().ok().filter(IpAddr::is_ipv6)?;
        return match tail {
            "" => Some((addr, None)),
            t => Some((addr, Some(t.strip_prefix(':')?.parse().ok()?))),
        };
    }
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Some((addr, None));
    }
    let (addr, port) = s.split_once(':')?;
    let addr: IpAddr = addr.parse().ok().filter(IpAddr::is_ipv4)?;
    Some((addr, Some(port.parse().ok()?)))
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=", self.public)?;
        match (self.to, self.to_port) {
            (IpAddr::V4(a), Some(p)) => write!(f, "{a}:{p}")?,
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}")?,
            (IpAddr::V4(a), None) => write!(f, "{a}")?,
            (IpAddr::V6(a), None) => write!(f, "[{a}]")?,
        }
        for (on, name) in [
            (self.keep_source, "keep-source"),
            (self.from_lan, "from-lan"),
            (self.from_peers, "from-peers"),
        ] {
            if on {
                write!(f, ",{name}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Forward, String> {
        s.parse()
    }

    #[test]
    fn reads_what_operators_write() {
        let f = p("tcp/8443=10.66.0.2:443").unwrap();
        assert_eq!(f.public.to_string(), "tcp/8443");
        assert_eq!(f.to.to_string(), "10.66.0.2");
        assert_eq!(f.to_ports(), (443, 443));
        assert!(!f.keep_source && !f.from_lan && !f.from_peers);
        let f = p("udp/27015:27030=10.66.0.3").unwrap();
        assert_eq!(f.to_ports(), (27015, 27030));
        let f = p("TCP/443=[2001:db8:66::2], keep-source ,from-lan,from-peers").unwrap();
        assert!(f.to.is_ipv6() && f.keep_source && f.from_lan && f.from_peers);
        assert_eq!(
            f.to_string(),
            "tcp/443=[2001:db8:66::2],keep-source,from-lan,from-peers"
        );
        assert_eq!(
            p("tcp/443=fd66::2").unwrap().to_string(),
            "tcp/443=[fd66::2]"
        );
        assert_eq!(p("tcp/443=[fd66::2]:443").unwrap().to_ports(), (443, 443));
        // The same ports written out, for a range: kept as the same ports.
        assert_eq!(
            p("tcp/5000:5001=10.0.0.2:5000").unwrap().to_string(),
            "tcp/5000:5001=10.0.0.2"
        );
        for s in [
            "tcp/8443=10.66.0.2:443",
            "udp/1:2=10.0.0.1",
            "tcp/1=[fd::1],from-peers",
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
            assert_eq!(p(&p(s).unwrap().to_string()).unwrap(), p(s).unwrap());
        }
    }

    #[test]
    fn refuses_what_cannot_be_meant() {
        for bad in [
            "",
            "tcp/8443",
            "tcp/8443=",
            "icmp/1=10.0.0.2",
            "tcp/0=10.0.0.2",
            "tcp/8443=10.0.0.300",
            "tcp/8443=10.0.0.2:0",
            "tcp/8443=10.0.0.2:70000",
            "tcp/8443=host.example:443",
            "tcp/8443=[10.0.0.2]:443",
            "tcp/8443=[fd66::2]443",
            "tcp/8443=[fd66::2]:443",
            "tcp/8443=10.0.0.2:443,hairpin",
            "tcp/8443=10.0.0.2:443,",
            "tcp/5000:5010=10.0.0.2:6000",
            "tcp/5010:5000=10.0.0.2",
            "tcp/65535=10.0.0.2:65535,keep-source,x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("tcp/8443=[fd66::2]:443").unwrap_err(),
            "\"tcp/8443=[fd66::2]:443\": IPv6 is forwarded without translation, so to the same port: tcp/8443=[fd66::2]"
        );
    }
}
