//! Validated values from the edge (command line, settings, wg-quick config): once a value has
//! one of these types it is known to be safe to render into a ruleset.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use super::quote;

/// A network interface name, validated as wg-quick does (`^[a-zA-Z0-9_=+.-]{1,15}$`), but not
/// `.`, `..` (which no interface can be named) nor ending in `+`, which iptables reads as a
/// wildcard: `-i wg+` would match every interface whose name starts with `wg`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfaceName(String);

impl IfaceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfaceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "_=+.-".contains(c);
        if (1..=15).contains(&s.len()) && s.chars().all(ok_char) && s != "." && s != ".." {
            if s.ends_with('+') {
                return Err(format!(
                    "\"{s}\": an interface name ending in + is a wildcard to iptables (rename the interface)"
                ));
            }
            Ok(IfaceName(s.to_string()))
        } else {
            Err(format!(
                "\"{}\" is not a valid interface name (1 to 15 of a-z A-Z 0-9 _ = + . -)",
                quote::text(s)
            ))
        }
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A TCP/UDP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u16);

impl Port {
    pub fn new(n: u16) -> Option<Port> {
        (n != 0).then_some(Port(n))
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse::<u16>()
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| format!("\"{}\" is not a port (1-65535)", quote::text(s)))
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A host service opened with `--allow`: `tcp/443`, `udp/60000:60010`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Service {
    pub proto: Proto,
    pub first: Port,
    pub last: Port,
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "\"{}\" is not a service: use PROTO/PORT or PROTO/FIRST:LAST, e.g. tcp/443",
                quote::text(s)
            )
        };
        let (proto, ports) = s.split_once('/').ok_or_else(bad)?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad()),
        };
        let (first, last) = match ports.split_once(':') {
            Some((a, b)) => (a.parse::<Port>()?, b.parse::<Port>()?),
            None => {
                let p = ports.parse::<Port>()?;
                (p, p)
            }
        };
        if first > last {
            return Err(format!("\"{s}\": the port range runs backwards"));
        }
        Ok(Service { proto, first, last })
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}/{}", self.proto.as_str(), self.first)
        } else {
            write!(f, "{}/{}:{}", self.proto.as_str(), self.first, self.last)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Second,
    Minute,
}

/// A per-source rate such as `30/minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub unit: RateUnit,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "\"{}\" is not a rate: use N/second or N/minute, e.g. 30/minute",
                quote::text(s)
            )
        };
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        // The kernel's hashlimit refuses rates above 10000/second.
        if count == 0 || count > 10_000 {
            return Err(format!(
                "\"{}\": the count must be 1 to 10000",
                quote::text(s)
            ));
        }
        let unit = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => RateUnit::Second,
            "m" | "min" | "minute" => RateUnit::Minute,
            _ => return Err(bad()),
        };
        Ok(Rate { count, unit })
    }
}

impl RateUnit {
    /// As the settings file, `--help` and nft spell it: `second`, `minute`.
    pub fn word(self) -> &'static str {
        match self {
            RateUnit::Second => "second",
            RateUnit::Minute => "minute",
        }
    }

    /// As iptables' limit and hashlimit matches spell it: `sec`, `min`.
    pub fn short(self) -> &'static str {
        match self {
            RateUnit::Second => "sec",
            RateUnit::Minute => "min",
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.unit.word())
    }
}

/// An enum of keywords: each variant has its word, the words parse back, and anything else is
/// "not a WHAT (LIST)".
macro_rules! keywords {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal, $list:literal,
        { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(format!(
                        "\"{}\" is not a {} ({})",
                        $crate::config::quote::text(s),
                        $what,
                        $list
                    )),
                }
            }
        }
    };
}
pub(crate) use keywords;

keywords! {
    /// What happens to inbound traffic that nothing allowed.
    Policy, "policy", "auto, drop, accept",
    { Auto = "auto", Drop = "drop", Accept = "accept" }
}

keywords! {
    /// What the host is to the tunnel.
    Role, "role", "server, client",
    {
        /// The VPN server or gateway: peers come in through the tunnel.
        Server = "server",
        /// This host (or the LAN it routes) must only ever talk through the tunnel.
        Client = "client",
    }
}

keywords! {
    /// Which kernel interface programs the rules.
    BackendChoice, "backend", "auto, nft, iptables-nft, iptables-legacy",
    {
        Auto = "auto",
        IptablesNft = "iptables-nft",
        IptablesLegacy = "iptables-legacy",
        Nft = "nft",
    }
}

/// A network such as `192.168.1.0/24`; a bare address is a host.
pub fn network(s: &str) -> std::result::Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("\"{}\" is not an IP network", quote::text(s)))
}

/// The lengths RFC 6052 (section 2.2) allows a NAT64 prefix.
pub const NAT64_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// The IPv6 prefix of a NAT64 gateway (`--nat64`), such as `2001:db8:64::/96`: one of the
/// lengths RFC 6052 allows, and in a /96 the bits 64-71 (its "u" octet) zero.
pub fn nat64_prefix(s: &str) -> std::result::Result<ipnet::Ipv6Net, String> {
    let net = match s.parse::<IpNet>() {
        Ok(IpNet::V6(n)) => n.trunc(),
        _ => {
            return Err(format!(
                "\"{s}\" is not an IPv6 prefix such as 64:ff9b::/96"
            ));
        }
    };
    if !NAT64_LENGTHS.contains(&net.prefix_len()) {
        return Err(format!(
            "\"{s}\" is not a NAT64 prefix: RFC 6052 allows /32, /40, /48, /56, /64 or /96"
        ));
    }
    if (u128::from(net.network()) >> 56) & 0xff != 0 {
        return Err(format!(
            "\"{s}\" is not a NAT64 prefix: its bits 64-71 (RFC 6052's u octet) must be zero"
        ));
    }
    Ok(net)
}

/// A switch takes no value on the command line; in the settings file it may say yes or no.
pub fn switch(value: Option<&str>) -> std::result::Result<bool, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Ok(true),
        Some("false" | "no" | "off" | "0") => Ok(false),
        Some(other) => Err(format!("\"{}\" is not yes or no", quote::text(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_names_follow_wg_quick() {
        for ok in ["wg0", "a", "wg_home.1", "x=+-", "abcdefghijklmno"] {
            assert!(ok.parse::<IfaceName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            "wg 0",
            "wg0;rm",
            "wg/0",
            "wg$0",
            "..",
            "wg0\n",
            // Found writing the fuzz targets: `-i wg+` matches wg0, wg1, ...
            "wg+",
            "+",
        ] {
            assert!(bad.parse::<IfaceName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_and_services() {
        assert_eq!("51820".parse::<Port>().unwrap().get(), 51820);
        for bad in ["0", "65536", "-1", "x", ""] {
            assert!(bad.parse::<Port>().is_err(), "{bad}");
        }
        let s: Service = "tcp/443".parse().unwrap();
        assert_eq!(s.to_string(), "tcp/443");
        let s: Service = "UDP/60000:60010".parse().unwrap();
        assert_eq!(s.to_string(), "udp/60000:60010");
        for bad in ["443", "icmp/1", "tcp/", "tcp/9:8", "tcp/1:x", "tcp/0"] {
            assert!(bad.parse::<Service>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        let r: Rate = "30/minute".parse().unwrap();
        assert_eq!((r.count, r.unit), (30, RateUnit::Minute));
        assert_eq!("5/s".parse::<Rate>().unwrap().to_string(), "5/second");
        for bad in ["0/minute", "30", "30/hour", "x/minute", "10001/second"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn nat64_prefixes_have_rfc_6052_lengths() {
        for (ok, want) in [
            ("64:ff9b::/96", "64:ff9b::/96"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:db8:100::/40", "2001:db8:100::/40"),
            ("2001:db8:122::/48", "2001:db8:122::/48"),
            ("2001:db8:122:300::/56", "2001:db8:122:300::/56"),
            ("2001:db8:122:344::/64", "2001:db8:122:344::/64"),
            ("2001:db8:122:344::5/96", "2001:db8:122:344::/96"),
        ] {
            assert_eq!(nat64_prefix(ok).unwrap().to_string(), want, "{ok}");
        }
        for (bad, why) in [
            (
                "2001:db8::/60",
                "RFC 6052 allows /32, /40, /48, /56, /64 or /96",
            ),
            ("2001:db8::", "not an IPv6 prefix"),
            ("2001:db8:0:0:ff00::/96", "u octet"),
            ("192.0.2.0/24", "not an IPv6 prefix"),
            ("x", "not an IPv6 prefix"),
        ] {
            let e = nat64_prefix(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
