//! The plan as data: what `up` will install for one interface, per address family, and the
//! facts about the host it was derived from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv6Net};

use crate::config::forward::Forward;
use crate::config::peers::PublicKey;
use crate::config::types::{IfaceName, Port, Rate, Role, Service, keywords};

use super::ledger::{Key, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the host says, gathered before planning.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The device of each family's default route.
    pub default_dev: BTreeMap<Family, IfaceName>,
    pub ipv6_enabled: bool,
    /// The live interface, when it exists.
    pub live_port: Option<Port>,
    pub live_mtu: Option<u32>,
    /// Per family: why another firewall manager owns the host's input, if one does.
    pub input_owner: BTreeMap<Family, String>,
    /// Current values of the sysctls the plan may write (absent: not readable).
    pub sysctl: BTreeMap<Key, String>,
    /// The peers' endpoints: as the live interface reports them, else as the config names them.
    pub endpoints: Vec<SocketAddr>,
    /// The live interface's peers and their AllowedIPs (`wg show IFACE allowed-ips`), read
    /// when the settings have peer sections or port forwards; `None`: not known, the
    /// config's are used.
    pub live_peers: Option<Vec<(String, Vec<IpNet>)>>,
    /// The main table's routes that matter to the `--lan` networks, with their interfaces:
    /// those that hold one (default routes too) and those inside one.
    pub lan_routes: Vec<(IpNet, IfaceName)>,
}

impl HostFacts {
    /// A plain host for tests and golden files: default routes on eth0, the LAN
    /// 192.168.1.0/24 and fd00:1::/64 on lan0, IPv6 on, nothing else known. Also the host the
    /// fuzz targets render for.
    pub fn example() -> HostFacts {
        let eth0: IfaceName = "eth0".parse().unwrap();
        let lan0: IfaceName = "lan0".parse().unwrap();
        HostFacts {
            default_dev: [(Family::V4, eth0.clone()), (Family::V6, eth0.clone())].into(),
            lan_routes: [
                ("0.0.0.0/0", &eth0),
                ("192.168.1.0/24", &lan0),
                ("::/0", &eth0),
                ("fd00:1::/64", &lan0),
            ]
            .iter()
            .map(|(n, d)| (n.parse().unwrap(), (*d).clone()))
            .collect(),
            ipv6_enabled: true,
            ..HostFacts::default()
        }
    }
}

keywords! {
    /// What happens, per family, to inbound traffic that nothing allowed.
    InputPolicy, "input policy", "drop, accept, defer",
    {
        Drop = "drop",
        Accept = "accept",
        /// Another manager owns input: accept what the tunnel needs, return the rest to it.
        Defer = "defer",
    }
}

/// The prefix of the largest tunnel network whose sources are dropped when they arrive on
/// another interface: a peer's AllowedIPs of a larger one (`0.0.0.0/1, 128.0.0.0/1`,
/// `2000::/3`: ways of saying "everything") would make the anti-spoofing drop every other
/// interface's traffic.
pub(crate) fn anti_spoofing_largest(family: Family) -> u8 {
    match family {
        Family::V4 => 8,
        Family::V6 => 16,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FamilyPlan {
    pub family: Family,
    /// The interface's own addresses, as the config gives them.
    pub addresses: Vec<IpNet>,
    /// The networks behind the tunnel: sources that may only arrive on it.
    pub tunnel_nets: Vec<IpNet>,
    pub wan: Option<IfaceName>,
    pub policy: InputPolicy,
    /// Which of the tunnel networks leave masqueraded (server), or whether the LAN enters the
    /// tunnel masqueraded (client).
    pub nat: Nat,
    /// Local networks peers may reach (`--lan`), in this family.
    pub lans: Vec<IpNet>,
    /// Where the hosts of the `--lan` networks come in from when they open connections to
    /// peers: each network, or a part of it with a route of its own, with the interface that
    /// routes it; the most specific first.
    pub lan_ways: Vec<(IpNet, IfaceName)>,
    /// IPv6, server role: the NAT64 prefixes (`--nat64`) whose IPv4 local ranges are local.
    pub nat64: Vec<Ipv6Net>,
    /// Whether peers may reach the internet through the WAN.
    pub internet: bool,
    /// Where SSH is accepted from: `None` anywhere; `Some` only these networks (none: closed).
    pub admin: Option<Vec<IpNet>>,
    /// The largest TCP MSS that fits the tunnel MTU.
    pub mss: u32,
    /// Client role: the peers' endpoints, the only places outside the tunnel it may talk to.
    pub endpoints: Vec<SocketAddr>,
    /// The tunnel sources of the peers that have a section, each with the index of its group
    /// in `Plan::groups`: disjoint, so that the most specific AllowedIPs decide, as in
    /// WireGuard's own routing.
    pub owned: Vec<(IpNet, usize)>,
}

/// Which of a family's tunnel networks a server masquerades out of the WAN and towards the
/// LAN networks; the rest are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// None (`--no-nat`).
    Off,
    /// All (IPv4; IPv6 with `--nat6`; a client's LAN into the tunnel).
    All,
    /// IPv6 by default: those that are not globally routable (unique-local, fc00::/7), since
    /// nothing out there routes their replies back; a global prefix is routed.
    NotGlobal,
}

/// Unique-local IPv6 (RFC 4193): private, routed nowhere on the internet.
pub const UNIQUE_LOCAL: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::from_bits(0xfc << 120), 7);

impl FamilyPlan {
    /// The tunnel networks (or their unique-local part) that leave masqueraded.
    pub fn masqueraded(&self) -> Vec<IpNet> {
        let ula = IpNet::V6(UNIQUE_LOCAL);
        match self.nat {
            Nat::Off => Vec::new(),
            Nat::All => self.tunnel_nets.clone(),
            Nat::NotGlobal => self
                .tunnel_nets
                .iter()
                .filter_map(|n| match (ula.contains(n), n.contains(&ula)) {
                    (true, _) => Some(*n),
                    (false, true) => Some(ula),
                    (false, false) => None,
                })
                .collect(),
        }
    }

    /// The tunnel networks whose sources are dropped on every other interface: all but those
    /// larger than `anti_spoofing_largest` (rp_filter still checks their sources).
    pub fn anti_spoofed(&self) -> impl Iterator<Item = &IpNet> {
        let largest = anti_spoofing_largest(self.family);
        self.tunnel_nets
            .iter()
            .filter(move |n| n.prefix_len() >= largest)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub iface: IfaceName,
    pub role: Role,
    pub families: Vec<FamilyPlan>,
    /// `None` only when planning for display without the live interface.
    pub port: Option<Port>,
    pub ssh_port: Option<Port>,
    pub mtu: u32,
    /// Client role: the kill switch stays after `down`, until `release`.
    pub lockdown: bool,
    pub allow_lan: bool,
    pub log: bool,
    pub peer_to_peer: bool,
    pub allow: Vec<Service>,
    pub handshake_limit: Rate,
    pub handshake_burst: u32,
    pub sysctls: Vec<Write>,
    /// The settings' `[peer]` and `[group]` sections, resolved.
    pub groups: Vec<Group>,
    /// Every peer of the interface, with its section if it has one: what `plan` shows.
    pub peers: Vec<PeerView>,
    /// Ports of this host published for services behind the tunnel, checked.
    pub forwards: Vec<Forward>,
    /// Facts the reader should know: where values came from, what was left out and why.
    pub notes: Vec<String>,
}

impl Plan {
    /// What the shared input chain does, for this interface, with what nothing accepted: a
    /// client's kill switch drops it whatever its policy says of the tunnel.
    pub fn tail_policy(&self, fp: &FamilyPlan) -> InputPolicy {
        match self.role {
            Role::Client => InputPolicy::Drop,
            Role::Server => fp.policy,
        }
    }
}

/// Which other peers a group's peers may open connections to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    None,
    All,
    /// The peers of these groups (indexes in `Plan::groups`).
    Groups(Vec<usize>),
}

/// One `[peer]` or `[group]` section with what its peers may reach, the interface's settings
/// filled in where it says nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub peers: Vec<PublicKey>,
    /// LAN networks they may reach, both families.
    pub lan: Vec<IpNet>,
    pub internet: bool,
    pub reach: Reach,
    /// The services of this host they may use; `None`: all of them.
    pub host: Option<Vec<Service>>,
    /// SSH to this host.
    pub ssh: bool,
    /// `admin`: SSH to this host and to the hosts of every LAN network of the interface.
    pub admin: bool,
}

impl Group {
    /// Whether the group's host input differs from a plain peer's (all of this host).
    pub fn restricts_host(&self) -> bool {
        self.host.is_some() || !self.ssh
    }
}

/// A peer of the interface as `plan` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    pub key: String,
    /// Its group's index in `Plan::groups`; `None`: the interface's policy.
    pub group: Option<usize>,
    pub nets: Vec<IpNet>,
}

/// Whether the plan is for installing (every value must be known) or for showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Install,
    Show,
}
