//! The names of our chains, typed: which chains an interface may own, the one all interfaces
//! share, the table each lives in and the built-in chain that jumps to it. Built here and parsed
//! back here only, so a name never has to be taken apart anywhere else.
//!
//! Names are iptables-style (`WGFW-wg0-IN`, `WGFW-INPUT`); `nft` spells them its own way.

use std::fmt;
use std::str::FromStr;

use crate::config::types::IfaceName;

/// Tables in the order a packet meets them, which is also the order scripts list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Raw,
    Mangle,
    Nat,
    Filter,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Raw, Table::Mangle, Table::Nat, Table::Filter];

    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Mangle => "mangle",
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }

    pub fn parse(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// What every chain name of ours starts with, and nobody else's should.
pub const PREFIX: &str = "WGFW-";

/// The chain every managed interface shares: host input's common head, one jump per
/// interface, and the default deny. It exists while any interface is managed.
///
/// Host input is judged in mangle INPUT, before filter INPUT: there a drop is final but an
/// accept only ends our table's say, so that every deny in filter INPUT (fail2ban's bans, an
/// admin's blocklist, kube-proxy's guard) still holds, whoever put it there first. The same
/// as an accept in nftables' own table of ours, which no other table takes as final either.
const SHARED_INPUT: &str = "WGFW-INPUT";

/// The chains one interface may own, whatever its role and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// raw PREROUTING: anti-spoofing.
    Pre,
    /// mangle FORWARD: MSS clamping.
    Mss,
    /// nat POSTROUTING: masquerading.
    Nat,
    /// Host input, reached from the shared input chain (mangle INPUT).
    In,
    /// Log and drop for host input: `Drop`'s twin in the table host input lives in.
    InDrop,
    /// filter FORWARD: the kill switch and anti-pivot.
    Fwd,
    /// Log and drop, reached from the others.
    Drop,
    /// filter OUTPUT: a client's kill switch.
    Out,
    /// Log and reject, reached from a client's OUT and FWD.
    Reject,
    /// The internet, not the networks around this host: reached from the groups' chains.
    Net,
    /// nat PREROUTING: the port forwards' destination NAT.
    Dnat,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Pre,
        Kind::Mss,
        Kind::Nat,
        Kind::In,
        Kind::InDrop,
        Kind::Fwd,
        Kind::Drop,
        Kind::Out,
        Kind::Reject,
        Kind::Net,
        Kind::Dnat,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Kind::Pre => "PRE",
            Kind::Mss => "MSS",
            Kind::Nat => "NAT",
            Kind::In => "IN",
            Kind::InDrop => "INDROP",
            Kind::Fwd => "FWD",
            Kind::Drop => "DROP",
            Kind::Out => "OUT",
            Kind::Reject => "REJECT",
            Kind::Net => "NET",
            Kind::Dnat => "DNAT",
        }
    }
}

/// One of our chains.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainId {
    /// The shared input chain (mangle INPUT).
    SharedInput,
    Own(IfaceName, Kind),
    /// A `[peer]`/`[group]` section's chain (its index in the plan's groups).
    Group(IfaceName, usize, Side),
}

/// Which of a group's chains: what its peers send through this host, or to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// filter FORWARD, reached from the interface's FWD: `P1`, `P2`...
    Fwd,
    /// Host input (mangle), reached from the interface's IN: `H1`, `H2`...
    In,
}

impl Side {
    fn letter(self) -> char {
        match self {
            Side::Fwd => 'P',
            Side::In => 'H',
        }
    }
}

/// The address sets (nft: named sets and verdict maps) of one interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetId {
    /// Which group's chain a forwarded packet from the tunnel goes to, by source.
    Peers(IfaceName),
    /// Which group's chain a packet from the tunnel to this host goes to, by source.
    Hosts(IfaceName),
    /// The tunnel sources of one group, as destinations of other peers.
    Group(IfaceName, usize),
    /// The single addresses of a set, which nft keeps apart from its networks (`-A`).
    Addresses(Box<SetId>),
}

impl fmt::Display for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetId::Peers(i) => write!(f, "{PREFIX}{i}-PEERS"),
            SetId::Hosts(i) => write!(f, "{PREFIX}{i}-HOSTS"),
            SetId::Group(i, n) => write!(f, "{PREFIX}{i}-S{}", n + 1),
            SetId::Addresses(of) => write!(f, "{of}-A"),
        }
    }
}

impl ChainId {
    pub fn own(iface: &IfaceName, kind: Kind) -> ChainId {
        ChainId::Own(iface.clone(), kind)
    }

    pub fn group(iface: &IfaceName, index: usize, side: Side) -> ChainId {
        ChainId::Group(iface.clone(), index, side)
    }

    pub fn table(&self) -> Table {
        match self {
            ChainId::SharedInput | ChainId::Group(_, _, Side::In) => Table::Mangle,
            ChainId::Group(_, _, Side::Fwd) => Table::Filter,
            ChainId::Own(_, kind) => match kind {
                Kind::Pre => Table::Raw,
                Kind::Mss | Kind::In | Kind::InDrop => Table::Mangle,
                Kind::Nat | Kind::Dnat => Table::Nat,
                Kind::Fwd | Kind::Drop | Kind::Out | Kind::Reject | Kind::Net => Table::Filter,
            },
        }
    }

    /// The built-in chain that jumps here first, if any (the others are reached from ours).
    pub fn hook(&self) -> Option<&'static str> {
        match self {
            ChainId::SharedInput => Some("INPUT"),
            ChainId::Own(_, kind) => match kind {
                Kind::Pre | Kind::Dnat => Some("PREROUTING"),
                Kind::Mss | Kind::Fwd => Some("FORWARD"),
                Kind::Nat => Some("POSTROUTING"),
                Kind::Out => Some("OUTPUT"),
                Kind::In | Kind::InDrop | Kind::Drop | Kind::Reject | Kind::Net => None,
            },
            ChainId::Group(..) => None,
        }
    }

    /// The interface that owns the chain; none for the shared one.
    pub fn iface(&self) -> Option<&IfaceName> {
        match self {
            ChainId::SharedInput => None,
            ChainId::Own(iface, _) | ChainId::Group(iface, ..) => Some(iface),
        }
    }

    /// Every chain one interface may own, whatever its role and options.
    pub fn all_of(iface: &IfaceName) -> Vec<ChainId> {
        Kind::ALL.map(|k| ChainId::own(iface, k)).to_vec()
    }

    /// The chains a removal of the interface's rules deletes: its own, and the shared one
    /// (which the transaction keeps where other interfaces still fill it).
    pub fn all_with_shared(iface: &IfaceName) -> Vec<ChainId> {
        let mut all = ChainId::all_of(iface);
        all.push(ChainId::SharedInput);
        all
    }

    /// The chains of one interface (and, with `shared`, the shared input chain) that a
    /// built-in chain jumps to: what `up` hooked and a removal unhooks.
    pub fn hooked(iface: &IfaceName, shared: bool) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = ChainId::all_of(iface)
            .into_iter()
            .filter(|c| c.hook().is_some())
            .collect();
        if shared {
            out.push(ChainId::SharedInput);
        }
        out
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainId::SharedInput => f.write_str(SHARED_INPUT),
            ChainId::Own(iface, kind) => write!(f, "{PREFIX}{iface}-{}", kind.suffix()),
            ChainId::Group(iface, n, side) => {
                write!(f, "{PREFIX}{iface}-{}{}", side.letter(), n + 1)
            }
        }
    }
}

impl FromStr for ChainId {
    type Err = String;

    fn from_str(s: &str) -> Result<ChainId, String> {
        let bad = || format!("\"{s}\" is not a chain of wgfw-hook");
        if s == SHARED_INPUT {
            return Ok(ChainId::SharedInput);
        }
        let (iface, suffix) = s
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.rsplit_once('-'))
            .ok_or_else(bad)?;
        let iface: IfaceName = iface.parse().map_err(|_| bad())?;
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.suffix() == suffix) {
            return Ok(ChainId::Own(iface, kind));
        }
        let mut chars = suffix.chars();
        let side = match chars.next() {
            Some('P') => Side::Fwd,
            Some('H') => Side::In,
            _ => return Err(bad()),
        };
        let digits = chars.as_str();
        match digits.parse::<usize>() {
            Ok(n) if n >= 1 && !digits.starts_with(['0', '+']) => {
                Ok(ChainId::Group(iface, n - 1, side))
            }
            _ => Err(bad()),
        }
    }
}

/// Whether a chain of another manager is ufw's (its chains own the host's input).
pub fn is_ufw_chain(name: &str) -> bool {
    name.starts_with("ufw-") || name.starts_with("ufw6-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_the_ids_they_print() {
        for iface in ["wg0", "a-b", "x=+-", "INPUT"] {
            let iface: IfaceName = iface.parse().unwrap();
            let mut ids = ChainId::all_with_shared(&iface);
            ids.extend([
                ChainId::group(&iface, 0, Side::Fwd),
                ChainId::group(&iface, 41, Side::In),
            ]);
            for id in ids {
                assert_eq!(id.to_string().parse::<ChainId>(), Ok(id.clone()), "{id}");
            }
        }
        assert_eq!(
            ChainId::own(&"wg0".parse().unwrap(), Kind::Fwd).to_string(),
            "WGFW-wg0-FWD"
        );
        for bad in [
            "WGFW-wg0",
            "WGFW-wg0-XX",
            "DOCKER-USER",
            "WGFW--IN",
            "WGFW-wg;0-IN",
            "WGFW-wg0-P0",
            "WGFW-wg0-P01",
            "WGFW-wg0-Px",
        ] {
            assert!(bad.parse::<ChainId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_chain_is_one_an_interface_owns() {
        let i: IfaceName = "wg0".parse().unwrap();
        let owned: Vec<String> = ChainId::all_of(&i).iter().map(|c| c.to_string()).collect();
        for name in [
            "PRE", "MSS", "NAT", "IN", "INDROP", "FWD", "DROP", "OUT", "REJECT", "DNAT",
        ] {
            assert!(owned.contains(&format!("WGFW-wg0-{name}")), "{name}");
        }
    }
}
