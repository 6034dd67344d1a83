//! Derives what `up` will install from the wg-quick config, the options and a few facts about
//! the host. Pure: the facts are gathered elsewhere (`host`), so every decision here is
//! unit-tested and `plan` can print it without root.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use ipnet::IpNet;

pub mod sysctl;

use crate::config::cli::Options;
use crate::error::{Error, Result};
use crate::plan::sysctl::{Key, Write};
use crate::config::types::{IfaceName, Policy, Port, Rate, RateUnit, Role, Service};
use crate::config::wgconf::WgConfig;

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
}

impl HostFacts {
    /// A plain host for tests and golden files: default routes on eth0, IPv6 on, nothing else
    /// known. Also the host the fuzz targets render for.
    pub fn example() -> HostFacts {
        HostFacts {
            default_dev: [
                (Family::V4, "eth0".parse().unwrap()),
                (Family::V6, "eth0".parse().unwrap()),
            ]
            .into(),
            ipv6_enabled: true,
            ..HostFacts::default()
        }
    }
}

/// What happens, per family, to inbound traffic that nothing allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPolicy {
    Drop,
    Accept,
    /// Another manager owns input: accept what the tunnel needs, return the rest to it.
    Defer,
}

impl InputPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            InputPolicy::Drop => "drop",
            InputPolicy::Accept => "accept",
            InputPolicy::Defer => "defer",
        }
    }

    pub fn parse(s: &str) -> Option<InputPolicy> {
        match s {
            "drop" => Some(InputPolicy::Drop),
            "accept" => Some(InputPolicy::Accept),
            "defer" => Some(InputPolicy::Defer),
            _ => None,
        }
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
    pub masquerade: bool,
    /// Local networks peers may reach (`--lan`), in this family.
    pub lans: Vec<IpNet>,
    /// Whether peers may reach the internet through the WAN.
    pub internet: bool,
    /// Where SSH is accepted from: `None` anywhere; `Some` only these networks (none: closed).
    pub admin: Option<Vec<IpNet>>,
    /// The largest TCP MSS that fits the tunnel MTU.
    pub mss: u32,
    /// Client role: the peers' endpoints, the only places outside the tunnel it may talk to.
    pub endpoints: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub iface: IfaceName,
    pub role: Role,
    /// Client role: the kill switch stays after `down`, until `release`.
    pub lockdown: bool,
    pub allow_lan: bool,
    /// `None` only when planning for display without the live interface.
    pub port: Option<Port>,
    pub mtu: u32,
    pub ssh_port: Option<Port>,
    pub allow: Vec<Service>,
    pub handshake_limit: Rate,
    pub handshake_burst: u32,
    pub log: bool,
    pub peer_to_peer: bool,
    pub families: Vec<FamilyPlan>,
    pub sysctls: Vec<Write>,
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

pub const DEFAULT_HANDSHAKE_LIMIT: Rate = Rate {
    count: 30,
    unit: RateUnit::Minute,
};
pub const DEFAULT_HANDSHAKE_BURST: u32 = 5;
pub const DEFAULT_SSH_PORT: u16 = 22;
/// wg-quick's own fallback when it cannot find the route's MTU: 1500 minus 80.
pub const FALLBACK_MTU: u32 = 1420;

/// Whether the plan is for installing (every value must be known) or for showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Install,
    Show,
}

pub fn derive(
    iface: &IfaceName,
    conf: &WgConfig,
    opts: &Options,
    host: &HostFacts,
    purpose: Purpose,
) -> Result<Plan> {
    let mut notes = Vec::new();
    let file = conf.path.display();

    let role = opts.role.unwrap_or(Role::Server);
    let port = match (conf.listen_port, host.live_port, purpose) {
        (Some(p), _, _) => Some(p),
        // A client's own port is random and nobody connects to it.
        (None, _, _) if role == Role::Client => None,
        (None, Some(p), _) => {
            notes.push(format!(
                "ListenPort {p} comes from the live interface (the config sets none)"
            ));
            Some(p)
        }
        (None, None, Purpose::Show) => {
            notes.push(format!(
                "the config sets no ListenPort: at up time the random port is read from the live {iface} (shown as LISTEN-PORT)"
            ));
            None
        }
        (None, None, Purpose::Install) => {
            return Err(Error::usage(format!(
                "{file}: no ListenPort, and {iface} is not up to read its random port from: set ListenPort"
            )));
        }
    };
    let mtu = match (conf.mtu, host.live_mtu) {
        (Some(m), _) => m,
        (None, Some(m)) => {
            notes.push(format!("MTU {m} comes from the live interface"));
            m
        }
        (None, None) => {
            notes.push(format!(
                "MTU {FALLBACK_MTU} is assumed: {iface} is not up, and at up time its live MTU is used"
            ));
            FALLBACK_MTU
        }
    };
    if conf.addresses.is_empty() {
        return Err(Error::usage(format!(
            "{file}: [Interface] has no Address, so there is no tunnel network to protect"
        )));
    }

    // Port 0 is no place to send to (and stands for "not yet known" in a rendered port).
    let (endpoints, portless): (Vec<SocketAddr>, Vec<SocketAddr>) =
        host.endpoints.iter().partition(|e| e.port() != 0);
    for e in &portless {
        notes.push(format!("endpoint {e} has port 0: no way out to it"));
    }

    let mut families = Vec::new();
    for family in Family::BOTH {
        if family == Family::V6 && !host.ipv6_enabled {
            if conf.addresses.iter().any(|a| Family::of(a) == Family::V6) {
                notes.push("IPv6 is disabled in this kernel: no IPv6 rules".into());
            }
            continue;
        }
        // A client's peers are the world (AllowedIPs 0.0.0.0/0): it has no networks behind it.
        let tunnel_nets = match role {
            Role::Server => tunnel_nets(conf, family, &mut notes),
            Role::Client => Vec::new(),
        };
        let wan = opts
            .wan
            .clone()
            .or_else(|| host.default_dev.get(&family).cloned());
        if wan.is_none() && !tunnel_nets.is_empty() && !opts.no_internet && role == Role::Server {
            notes.push(format!(
                "no {family} default route and no --wan: peers get no {family} internet"
            ));
        }
        let policy = match opts.policy.unwrap_or(Policy::Auto) {
            Policy::Drop => InputPolicy::Drop,
            Policy::Accept => InputPolicy::Accept,
            // A kill switch drops what it does not know, whoever else manages input.
            Policy::Auto if role == Role::Client => InputPolicy::Drop,
            Policy::Auto => match host.input_owner.get(&family) {
                Some(why) => {
                    notes.push(format!(
                        "{family} input is deferred to another manager: {why}"
                    ));
                    InputPolicy::Defer
                }
                None => InputPolicy::Drop,
            },
        };
        // A client masquerades its LAN into the tunnel in both families: the server's
        // cryptokey routing accepts no source but the client's tunnel addresses.
        let masquerade = match (role, family) {
            (Role::Client, _) | (Role::Server, Family::V4) => !opts.no_nat,
            (Role::Server, Family::V6) => opts.nat6 && !opts.no_nat,
        };
        let header = match family {
            Family::V4 => 40,
            Family::V6 => 60,
        };
        families.push(FamilyPlan {
            family,
            addresses: conf
                .addresses
                .iter()
                .filter(|a| Family::of(a) == family)
                .copied()
                .collect(),
            tunnel_nets,
            wan,
            policy,
            masquerade,
            lans: opts
                .lan
                .iter()
                .filter(|n| Family::of(n) == family)
                .copied()
                .collect(),
            internet: !opts.no_internet,
            admin: (!opts.admin.is_empty()).then(|| {
                opts.admin
                    .iter()
                    .filter(|n| Family::of(n) == family)
                    .copied()
                    .collect()
            }),
            mss: mtu.saturating_sub(header),
            endpoints: endpoints
                .iter()
                .filter(|e| e.is_ipv4() == (family == Family::V4))
                .copied()
                .collect(),
        });
    }
    for f in &families {
        if f.admin.as_ref().is_some_and(Vec::is_empty) {
            notes.push(format!(
                "{} SSH is closed: no --admin network is {}",
                f.family, f.family
            ));
        }
    }

    if role == Role::Client {
        if endpoints.is_empty() {
            notes.push("no peer has a known endpoint: nothing may leave outside the tunnel, not even the tunnel itself".into());
        }
        if opts.ssh_port.is_some() || !opts.admin.is_empty() {
            notes.push("--ssh-port and --admin concern the server role: a client accepts only what --allow and --allow-lan name".into());
        }
    } else if opts.allow_lan || opts.lockdown {
        notes.push("--allow-lan and --lockdown concern the client role: ignored".into());
    }
    let mut plan = Plan {
        iface: iface.clone(),
        role,
        lockdown: role == Role::Client && opts.lockdown,
        allow_lan: role == Role::Client && opts.allow_lan,
        port,
        mtu,
        ssh_port: opts.ssh_port.unwrap_or(Port::new(DEFAULT_SSH_PORT)),
        allow: opts.allow.clone(),
        handshake_limit: opts.handshake_limit.unwrap_or(DEFAULT_HANDSHAKE_LIMIT),
        handshake_burst: DEFAULT_HANDSHAKE_BURST,
        log: !opts.no_log,
        peer_to_peer: opts.peer_to_peer,
        families,
        sysctls: Vec::new(),
        notes,
    };
    plan.sysctls = match role {
        Role::Server => crate::plan::sysctl::server_writes(&plan, host),
        Role::Client => crate::plan::sysctl::client_writes(&plan),
    };
    Ok(plan)
}

/// The networks behind the tunnel in one family: each Address's network, or where an Address
/// is a host route (/32, /128), the peers' AllowedIPs.
fn tunnel_nets(conf: &WgConfig, family: Family, notes: &mut Vec<String>) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = Vec::new();
    for addr in conf.addresses.iter().filter(|a| Family::of(a) == family) {
        if addr.prefix_len() == addr.max_prefix_len() {
            for peer in &conf.peers {
                for net in peer.allowed_ips.iter().filter(|n| Family::of(n) == family) {
                    if net.prefix_len() == 0 {
                        notes.push(format!(
                            "{}:{}: a peer's AllowedIPs {net} is not a tunnel network (it is everything): ignored",
                            conf.path.display(),
                            peer.line
                        ));
                    } else {
                        nets.push(net.trunc());
                    }
                }
            }
        } else {
            nets.push(addr.trunc());
        }
    }
    // Sorted, without duplicates and without networks inside others.
    IpNet::aggregate(&nets)
}

/// The plan for an interface wg0 with the config `conf_text`: the tests of every module start
/// from one.
#[cfg(test)]
pub fn for_test(conf_text: &str, opts: &Options, host: &HostFacts) -> Result<Plan> {
    let conf = crate::config::wgconf::parse(std::path::Path::new("/etc/wireguard/wg0.conf"), conf_text)?;
    derive(
        &"wg0".parse().expect("a valid name"),
        &conf,
        opts,
        host,
        Purpose::Install,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::wgconf;
    use std::path::Path;

    fn host() -> HostFacts {
        HostFacts::example()
    }

    fn conf(text: &str) -> WgConfig {
        wgconf::parse(Path::new("/etc/wireguard/wg0.conf"), text).unwrap()
    }

    use super::for_test as plan;

    const DUAL: &str = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n";

    #[test]
    fn dual_stack_defaults() {
        let p = plan(DUAL, &Options::default(), &host()).unwrap();
        assert_eq!(
            (p.port, p.mtu, p.ssh_port, p.log),
            (Port::new(51820), 1420, Port::new(22), true)
        );
        assert_eq!(p.families.len(), 2);
        let v4 = &p.families[0];
        assert_eq!(
            v4.tunnel_nets,
            vec!["10.66.0.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(
            (v4.masquerade, v4.mss, v4.policy),
            (true, 1380, InputPolicy::Drop)
        );
        let v6 = &p.families[1];
        assert_eq!((v6.masquerade, v6.mss), (false, 1360));
        assert_eq!(v6.wan.as_ref().unwrap().as_str(), "eth0");
    }

    #[test]
    fn host_route_address_takes_peers_allowed_ips() {
        let p = plan(
            "[Interface]\nAddress = 10.66.0.1/32\nListenPort = 1\n\
             [Peer]\nAllowedIPs = 10.66.0.2/32, 10.70.0.0/16, 0.0.0.0/0\n[Peer]\nAllowedIPs = 10.66.0.3/32, 10.70.1.0/24\n",
            &Options::default(),
            &host(),
        )
        .unwrap();
        let want: Vec<IpNet> = ["10.66.0.2/31", "10.70.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(p.families[0].tunnel_nets, want);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("wg0.conf:4: a peer's AllowedIPs 0.0.0.0/0")),
            "{:?}",
            p.notes
        );
        assert!(p.families[1].tunnel_nets.is_empty());
    }

    #[test]
    fn missing_port_and_mtu_come_from_the_live_interface() {
        let text = "[Interface]\nAddress = 10.66.0.1/24\n";
        let e = plan(text, &Options::default(), &host()).unwrap_err();
        assert!(e.to_string().contains("no ListenPort"), "{e}");
        let shown = derive(
            &"wg0".parse().unwrap(),
            &conf(text),
            &Options::default(),
            &host(),
            Purpose::Show,
        )
        .unwrap();
        assert_eq!(shown.port, None);
        let live = HostFacts {
            live_port: Port::new(40000),
            live_mtu: Some(1380),
            ..host()
        };
        let p = plan(text, &Options::default(), &live).unwrap();
        assert_eq!(
            (p.port, p.mtu, p.families[0].mss),
            (Port::new(40000), 1380, 1340)
        );
        assert_eq!(p.notes.len(), 2);
    }

    #[test]
    fn options_shape_the_plan() {
        let opts = Options {
            no_nat: true,
            admin: vec!["192.0.2.0/24".parse().unwrap()],
            policy: Some(Policy::Accept),
            wan: "ens3".parse().ok(),
            ..Options::default()
        };
        let p = plan(DUAL, &opts, &host()).unwrap();
        assert!(!p.families[0].masquerade);
        assert_eq!(p.families[0].admin.as_ref().unwrap().len(), 1);
        assert!(p.families[1].admin.as_ref().unwrap().is_empty());
        assert!(
            p.notes
                .iter()
                .any(|n| n == "IPv6 SSH is closed: no --admin network is IPv6"),
            "{:?}",
            p.notes
        );
        assert_eq!(p.families[0].wan.as_ref().unwrap().as_str(), "ens3");
        assert_eq!(p.families[1].policy, InputPolicy::Accept);
        let nat6 = Options {
            nat6: true,
            ..Options::default()
        };
        assert!(plan(DUAL, &nat6, &host()).unwrap().families[1].masquerade);
    }

    #[test]
    fn auto_policy_defers_to_an_input_owner() {
        let mut h = host();
        h.input_owner
            .insert(Family::V4, "ufw's chains are present".into());
        let p = plan(DUAL, &Options::default(), &h).unwrap();
        assert_eq!(p.families[0].policy, InputPolicy::Defer);
        assert_eq!(p.families[1].policy, InputPolicy::Drop);
        let forced = Options {
            policy: Some(Policy::Drop),
            ..Options::default()
        };
        assert_eq!(
            plan(DUAL, &forced, &h).unwrap().families[0].policy,
            InputPolicy::Drop
        );
    }

    #[test]
    fn an_endpoint_of_port_0_is_no_way_out() {
        // Found by the fuzz target wgconf: it rendered as the LISTEN-PORT placeholder.
        let h = HostFacts {
            endpoints: vec![
                "192.0.2.8:0".parse().unwrap(),
                "192.0.2.7:4500".parse().unwrap(),
            ],
            ..host()
        };
        let client = Options {
            role: Some(Role::Client),
            ..Options::default()
        };
        let p = plan(DUAL, &client, &h).unwrap();
        assert_eq!(p.families[0].endpoints, vec![h.endpoints[1]]);
        assert!(
            p.notes
                .iter()
                .any(|n| n == "endpoint 192.0.2.8:0 has port 0: no way out to it"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn no_address_and_no_ipv6() {
        assert!(
            plan(
                "[Interface]\nListenPort = 1\n",
                &Options::default(),
                &host()
            )
            .is_err()
        );
        let h = HostFacts {
            ipv6_enabled: false,
            ..host()
        };
        let p = plan(DUAL, &Options::default(), &h).unwrap();
        assert_eq!(p.families.len(), 1);
    }
}
