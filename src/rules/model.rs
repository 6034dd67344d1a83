//! The firewall as data: rules, what they match and what they do, neutral to the backend that
//! renders them (`iptables`, `nft`). Backends render a rule's matches in their own canonical
//! order.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::types::{Proto, Rate, RateUnit};

pub use super::names::Table;
use super::names::{ChainId, SetId};

/// A port or an inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports(pub u16, pub u16);

impl Ports {
    pub fn one(p: u16) -> Ports {
        Ports(p, p)
    }

    /// The ports as text, a range joined by `to` (iptables `:`, nft `-`). Port 0 is the listen
    /// port of a plan shown before the interface exists: `LISTEN-PORT`.
    pub fn render(self, to: char) -> String {
        match self {
            Ports(0, 0) => "LISTEN-PORT".into(),
            Ports(a, b) if a == b => a.to_string(),
            Ports(a, b) => format!("{a}{to}{b}"),
        }
    }
}

/// Connection-tracking states a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct {
    New,
    /// RELATED or ESTABLISHED.
    Established,
    /// Only RELATED: ICMP errors about a known connection.
    Related,
    Invalid,
}

/// What a rule looks at. Backends render a rule's matches in their own canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    In(String),
    NotIn(String),
    Out(String),
    NotOut(String),
    Src(IpNet),
    Dst(IpNet),
    /// A transport protocol, optionally with ports; `syn` asks for SYN without RST (TCP).
    L4 {
        proto: Proto,
        sport: Option<Ports>,
        dport: Option<Ports>,
        syn: bool,
    },
    Icmp(u8),
    Icmp6(u8),
    /// Neighbour discovery must come from the link itself.
    HopLimit255,
    Ct(Ct),
    /// A global rate limit: `count` per `per`, with a burst.
    Limit {
        count: u32,
        per: RateUnit,
        burst: u32,
    },
    /// A limit per source address (per /64 for IPv6), in a kernel table of its own that holds
    /// at most `size` sources, each forgotten `expire_secs` after its last packet.
    PerSource {
        name: String,
        rate: Rate,
        burst: u32,
        v6_prefix: Option<u8>,
        size: u32,
        expire_secs: u32,
    },
    /// A global limit of `per_second` packets a second (burst: as many), at rates past what
    /// iptables' `limit` match takes; iptables keeps it in a kernel table named `name`.
    Cap {
        name: String,
        per_second: u32,
    },
    /// A TCP MSS option larger than this.
    MssAbove(u32),
    /// The source is not an address of this host (forwarded traffic).
    SrcNotLocal,
    /// The destination is an address of this host (what a port forward publishes).
    DstLocal,
    /// The connection was not destination-NATed here: an admin's DNAT to a loopback address
    /// (with `route_localnet`) is a deliberate choice.
    NotDnat,
    /// A connection a DNAT rule sent on from these ports of this host: one port forward's.
    DnatFrom(Ports),
    /// The destination is in a set of networks (nft: a named set; iptables: a rule each).
    DstIn(AddrSet),
}

/// Networks under one name, which rules match as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSet {
    pub id: SetId,
    pub nets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(ChainId),
    Log(String),
    /// Reject: a TCP reset, or ICMP "administratively prohibited" for anything else.
    RejectTcpReset,
    RejectProhibited,
    Masquerade,
    /// Destination NAT to an address and, unless the ports stay, the first of its ports.
    Dnat {
        to: IpAddr,
        port: Option<u16>,
    },
    SetMss(u32),
    /// A jump chosen by the source address: nft looks it up in a verdict map, so a packet's
    /// cost does not grow with the entries; iptables takes a rule each.
    BySrc {
        id: SetId,
        entries: Vec<(IpNet, ChainId)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
    /// What `status` reports this rule's packets as, if anything: one of `COUNTED`, or a
    /// label of its own (a port forward's).
    pub counts: Option<Cow<'static, str>>,
    /// The mark of a rule in another manager's chain (`wgfw:IFACE`), by which it is found again.
    pub mark: Option<String>,
}

impl Rule {
    pub fn counted(self, label: impl Into<Cow<'static, str>>) -> Rule {
        Rule {
            counts: Some(label.into()),
            ..self
        }
    }
}

/// What `status` counts, in the order it reports them.
pub const COUNTED: &[&str] = &[
    HANDSHAKES,
    RATE_LIMITED,
    SSH_ACCEPTED,
    SSH_BLOCKED,
    FORWARDED,
    DROPPED,
    REJECTED,
];
pub const HANDSHAKES: &str = "new WireGuard flows accepted";
pub const RATE_LIMITED: &str = "new WireGuard flows over the limit";
pub const SSH_ACCEPTED: &str = "SSH connections accepted";
pub const SSH_BLOCKED: &str = "SSH connections blocked";
pub const FORWARDED: &str = "connections forwarded out";
pub const DROPPED: &str = "packets dropped";
pub const REJECTED: &str = "packets rejected by the kill switch";

pub fn rule(matches: Vec<Match>, verdict: Verdict) -> Rule {
    Rule {
        matches,
        verdict,
        counts: None,
        mark: None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Which chain: its name, table and the built-in chain that jumps here first follow.
    pub id: ChainId,
    pub rules: Vec<Rule>,
}

impl Chain {
    pub fn table(&self) -> Table {
        self.id.table()
    }

    pub fn hook(&self) -> Option<&'static str> {
        self.id.hook()
    }
}
