//! Derives what `up` will install from the wg-quick config, the options and a few facts about
//! the host. Pure: the facts are gathered elsewhere (`system::host`), so every decision here is
//! unit-tested and `plan` can print it without root.

use std::net::SocketAddr;

use ipnet::IpNet;

use crate::config::cli::Options;
use crate::config::types::{IfaceName, Policy, Port, Rate, RateUnit, Role};
use crate::config::wgconf::WgConfig;
use crate::error::{Error, Result};

use super::model::{Family, FamilyPlan, HostFacts, InputPolicy, Nat, Plan, Purpose};
use super::sysctl;

pub const DEFAULT_HANDSHAKE_LIMIT: Rate = Rate {
    count: 30,
    unit: RateUnit::Minute,
};
pub const DEFAULT_HANDSHAKE_BURST: u32 = 5;
pub const DEFAULT_SSH_PORT: u16 = 22;
/// wg-quick's own fallback when it cannot find the route's MTU: 1500 minus 80.
pub const FALLBACK_MTU: u32 = 1420;

pub fn derive(
    iface: &IfaceName,
    conf: &WgConfig,
    opts: &Options,
    host: &HostFacts,
    purpose: Purpose,
) -> Result<Plan> {
    let mut notes = Vec::new();
    let role = opts.role.unwrap_or(Role::Server);
    let port = listen_port(iface, conf, host, role, purpose, &mut notes)?;
    let mtu = mtu(iface, conf, host, &mut notes);
    if conf.addresses.is_empty() {
        return Err(Error::usage(format!(
            "{}: [Interface] has no Address, so there is no tunnel network to protect",
            crate::config::quote::path(&conf.path)
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
        let input = Inputs {
            iface,
            conf,
            opts,
            host,
            role,
            mtu,
            endpoints: &endpoints,
        };
        families.push(family_plan(&input, family, &mut notes));
    }
    for f in &families {
        if f.admin.as_ref().is_some_and(Vec::is_empty) {
            notes.push(format!(
                "{} SSH is closed: no --admin network is {}",
                f.family, f.family
            ));
        }
    }
    notes.extend(role_notes(opts, role, &endpoints));
    let (groups, peers) = match role {
        Role::Server => super::peers::resolve(iface, conf, opts, host, &mut notes),
        Role::Client => {
            if !opts.sections.is_empty() {
                notes.push("[peer] and [group] sections concern the server role: ignored".into());
            }
            (Vec::new(), Vec::new())
        }
    };
    for f in &mut families {
        f.owned = super::peers::owned(&peers, f.family);
    }
    let ssh_port = opts.ssh_port.unwrap_or(Port::new(DEFAULT_SSH_PORT));
    let forwards = match role {
        Role::Server => super::forwards::check(
            &opts.forward,
            &families,
            &peers,
            (port, ssh_port),
            &mut notes,
        )?,
        Role::Client if !opts.forward.is_empty() => {
            notes.push("--forward concerns the server role: ignored".into());
            Vec::new()
        }
        Role::Client => Vec::new(),
    };
    let mut plan = Plan {
        iface: iface.clone(),
        role,
        lockdown: role == Role::Client && opts.lockdown,
        allow_lan: role == Role::Client && opts.allow_lan,
        port,
        mtu,
        ssh_port,
        allow: opts.allow.clone(),
        handshake_limit: opts.handshake_limit.unwrap_or(DEFAULT_HANDSHAKE_LIMIT),
        handshake_burst: DEFAULT_HANDSHAKE_BURST,
        log: !opts.no_log,
        peer_to_peer: opts.peer_to_peer,
        families,
        sysctls: Vec::new(),
        groups,
        peers,
        forwards,
        notes,
    };
    plan.sysctls = match role {
        Role::Server => sysctl::server_writes(&plan, host),
        Role::Client => sysctl::client_writes(&plan),
    };
    Ok(plan)
}

/// The listen port: the config's, else the live interface's; a client's is random.
fn listen_port(
    iface: &IfaceName,
    conf: &WgConfig,
    host: &HostFacts,
    role: Role,
    purpose: Purpose,
    notes: &mut Vec<String>,
) -> Result<Option<Port>> {
    Ok(match (conf.listen_port, host.live_port, purpose) {
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
                "{}: no ListenPort, and {iface} is not up to read its random port from: set ListenPort",
                crate::config::quote::path(&conf.path)
            )));
        }
    })
}

/// The tunnel MTU: the config's, else the live interface's, else wg-quick's fallback.
fn mtu(iface: &IfaceName, conf: &WgConfig, host: &HostFacts, notes: &mut Vec<String>) -> u32 {
    match (conf.mtu, host.live_mtu) {
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
    }
}

/// What every family's plan is derived from.
struct Inputs<'a> {
    iface: &'a IfaceName,
    conf: &'a WgConfig,
    opts: &'a Options,
    host: &'a HostFacts,
    role: Role,
    mtu: u32,
    endpoints: &'a [SocketAddr],
}

fn family_plan(input: &Inputs, family: Family, notes: &mut Vec<String>) -> FamilyPlan {
    let Inputs {
        conf,
        opts,
        host,
        role,
        ..
    } = *input;
    // A client's peers are the world (AllowedIPs 0.0.0.0/0): it has no networks behind it.
    let tunnel_nets = match role {
        Role::Server => tunnel_nets(conf, family, notes),
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
    let of_family = |nets: &[IpNet]| -> Vec<IpNet> {
        nets.iter()
            .filter(|n| Family::of(n) == family)
            .copied()
            .collect()
    };
    let policy = input_policy(opts, host, role, family, notes);
    let lans = of_family(&opts.lan);
    let lan_ways = match role {
        Role::Server => lan_ways(&lans, host, input.iface, wan.as_ref(), notes),
        Role::Client => Vec::new(),
    };
    // A client masquerades its LAN into the tunnel in both families: the server's
    // cryptokey routing accepts no source but the client's tunnel addresses.
    let nat = match (role, family) {
        _ if opts.no_nat => Nat::Off,
        (Role::Client, _) | (Role::Server, Family::V4) => Nat::All,
        (Role::Server, Family::V6) if opts.nat6 => Nat::All,
        (Role::Server, Family::V6) => Nat::NotGlobal,
    };
    let header = match family {
        Family::V4 => 40,
        Family::V6 => 60,
    };
    FamilyPlan {
        family,
        addresses: of_family(&conf.addresses),
        tunnel_nets,
        wan,
        policy,
        nat,
        lans,
        lan_ways,
        nat64: match (role, family) {
            (Role::Server, Family::V6) => opts.nat64.clone(),
            _ => Vec::new(),
        },
        internet: !opts.no_internet,
        admin: (!opts.admin.is_empty()).then(|| of_family(&opts.admin)),
        mss: input.mtu.saturating_sub(header),
        endpoints: input
            .endpoints
            .iter()
            .filter(|e| e.is_ipv4() == (family == Family::V4))
            .copied()
            .collect(),
        owned: Vec::new(),
    }
}

/// Where the hosts of the `--lan` networks come in from: each network with the interface of
/// the most specific route that holds it, and each part of it with a route of its own with that
/// route's interface (never the tunnel's); the most specific first. Notes where a network has
/// no route, and where its hosts arrive on the WAN, which cannot tell them from forged sources.
fn lan_ways(
    lans: &[IpNet],
    host: &HostFacts,
    iface: &IfaceName,
    wan: Option<&IfaceName>,
    notes: &mut Vec<String>,
) -> Vec<(IpNet, IfaceName)> {
    let routes = &host.lan_routes;
    let mut ways = Vec::new();
    for lan in lans {
        let holding = routes
            .iter()
            .filter(|(r, _)| r.contains(lan))
            .max_by_key(|(r, _)| r.prefix_len())
            .map(|(_, dev)| (*lan, dev.clone()));
        let inside = routes.iter().filter(|(r, _)| lan.contains(r) && r != lan);
        let mine: Vec<(IpNet, IfaceName)> = holding
            .into_iter()
            .chain(inside.cloned())
            .filter(|(_, dev)| dev != iface)
            .collect();
        if mine.is_empty() {
            notes.push(format!(
                "no route leads to --lan {lan} on this host: its hosts may not open connections to peers (peers still reach it); up reads the routes each time it runs"
            ));
        }
        for (part, dev) in mine.iter().filter(|(_, dev)| Some(dev) == wan) {
            notes.push(format!(
                "--lan {part} is routed through the WAN {dev}: its hosts arrive where the internet does, so a forged source of {part} from the internet cannot be told from theirs (only the upstream router can drop it)"
            ));
        }
        ways.extend(mine);
    }
    ways.sort_by(|(a, x), (b, y)| {
        (std::cmp::Reverse(a.prefix_len()), a, x).cmp(&(std::cmp::Reverse(b.prefix_len()), b, y))
    });
    ways.dedup();
    ways
}

fn input_policy(
    opts: &Options,
    host: &HostFacts,
    role: Role,
    family: Family,
    notes: &mut Vec<String>,
) -> InputPolicy {
    match opts.policy.unwrap_or(Policy::Auto) {
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
    }
}

/// Notes on options that the role does not use.
fn role_notes(opts: &Options, role: Role, endpoints: &[SocketAddr]) -> Vec<String> {
    let mut notes = Vec::new();
    if role == Role::Client {
        if endpoints.is_empty() {
            notes.push("no peer has a known endpoint: nothing may leave outside the tunnel, not even the tunnel itself".into());
        }
        if opts.ssh_port.is_some() || !opts.admin.is_empty() {
            notes.push("--ssh-port and --admin concern the server role: a client accepts only what --allow and --allow-lan name".into());
        }
        if !opts.nat64.is_empty() {
            notes.push("--nat64 concerns the server role: ignored".into());
        }
    } else if opts.allow_lan || opts.lockdown {
        notes.push("--allow-lan and --lockdown concern the client role: ignored".into());
    }
    notes
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
                            crate::config::quote::path(&conf.path),
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
    let nets = IpNet::aggregate(&nets);
    let largest = super::model::anti_spoofing_largest(family);
    for n in nets.iter().filter(|n| n.prefix_len() < largest) {
        notes.push(format!(
            "tunnel network {n} is larger than a /{largest} (peers' AllowedIPs that cover much of the address space): its sources are not dropped on other interfaces, which would cut this host off; rp_filter still checks them"
        ));
    }
    nets
}

/// The plan for an interface wg0 with the config `conf_text`: the tests of every module start
/// from one.
#[cfg(test)]
pub fn for_test(conf_text: &str, opts: &Options, host: &HostFacts) -> Result<Plan> {
    let conf =
        crate::config::wgconf::parse(std::path::Path::new("/etc/wireguard/wg0.conf"), conf_text)?;
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

    fn assert_noted(p: &Plan, note: &str) {
        assert!(
            p.notes.iter().any(|n| n == note),
            "{note:?} not in {:?}",
            p.notes
        );
    }

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
            (v4.nat, v4.mss, v4.policy),
            (Nat::All, 1380, InputPolicy::Drop)
        );
        let v6 = &p.families[1];
        assert_eq!((v6.nat, v6.mss), (Nat::NotGlobal, 1360));
        assert_eq!(
            v6.masqueraded(),
            v6.tunnel_nets,
            "fd66::/64 is unique-local"
        );
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

    /// Found by the adversarial review (#23): "everything" said as two halves aggregates to
    /// 0.0.0.0/0, which as an anti-spoofing drop cut the host off every other interface.
    #[test]
    fn a_split_default_route_is_never_an_anti_spoofing_drop() {
        let p = plan(
            "[Interface]\nAddress = 10.66.0.1/32, fd66::1/128\nListenPort = 1\n             [Peer]\nAllowedIPs = 0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1\n             [Peer]\nAllowedIPs = 10.66.0.3/32, 2000::/3\n",
            &Options::default(),
            &host(),
        )
        .unwrap();
        let v4 = &p.families[0];
        assert_eq!(v4.tunnel_nets, ["0.0.0.0/0".parse::<IpNet>().unwrap()]);
        assert_eq!(v4.anti_spoofed().count(), 0);
        assert_eq!(p.families[1].anti_spoofed().count(), 0);
        assert!(
            p.notes
                .iter()
                .any(|n| n.starts_with("tunnel network 0.0.0.0/0 is larger than a /8")),
            "{:?}",
            p.notes
        );
        let chains = crate::rules::iface_chains(&p, v4);
        assert!(!chains.iter().any(|c| c.id.to_string() == "WGFW-wg0-PRE"));
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
        assert_eq!((p.families[0].nat, p.families[1].nat), (Nat::Off, Nat::Off));
        assert!(p.families[1].masqueraded().is_empty());
        assert_eq!(p.families[0].admin.as_ref().unwrap().len(), 1);
        assert!(p.families[1].admin.as_ref().unwrap().is_empty());
        assert_noted(&p, "IPv6 SSH is closed: no --admin network is IPv6");
        assert_eq!(p.families[0].wan.as_ref().unwrap().as_str(), "ens3");
        assert_eq!(p.families[1].policy, InputPolicy::Accept);
        let nat6 = Options {
            nat6: true,
            ..Options::default()
        };
        assert_eq!(
            plan(DUAL, &nat6, &host()).unwrap().families[1].nat,
            Nat::All
        );
    }

    /// Found with #23: a unique-local tunnel's IPv6 left routed, and nothing routes its
    /// replies back; a global prefix is routed, as it should be.
    #[test]
    fn ipv6_masquerades_the_unique_local_tunnel_networks_by_default() {
        let mixed =
            "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64, 2001:db8:66::1/64\nListenPort = 1\n";
        let v6 = |opts: &Options| plan(mixed, opts, &host()).unwrap().families[1].clone();
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let default = v6(&Options::default());
        assert_eq!(default.nat, Nat::NotGlobal);
        assert_eq!(default.masqueraded(), [net("fd66::/64")]);
        let nat6 = Options {
            nat6: true,
            ..Options::default()
        };
        assert_eq!(
            v6(&nat6).masqueraded(),
            [net("2001:db8:66::/64"), net("fd66::/64")]
        );
        let no_nat = Options {
            no_nat: true,
            nat6: true,
            ..Options::default()
        };
        assert!(v6(&no_nat).masqueraded().is_empty());
        // A tunnel network larger than fc00::/7 (AllowedIPs of a host-route Address): only
        // its unique-local part.
        let wide =
            "[Interface]\nAddress = fd66::1/128\nListenPort = 1\n[Peer]\nAllowedIPs = 8000::/1\n";
        let p = plan(wide, &Options::default(), &host()).unwrap();
        assert_eq!(p.families[1].masqueraded(), [net("fc00::/7")]);
        // The rules: out of the WAN and towards a LAN, the unique-local network only.
        let lan = Options {
            lan: vec![net("fd00:1::/64")],
            ..Options::default()
        };
        let p = plan(mixed, &lan, &host()).unwrap();
        let text = crate::rules::chain_text(&p, &p.families[1], "WGFW-wg0-NAT");
        assert_eq!(
            text,
            [
                "-s fd66::/64 -o eth0 -j MASQUERADE",
                "-s fd66::/64 -d fd00:1::/64 ! -o wg0 -j MASQUERADE"
            ]
        );
    }

    /// The FWD chain's rules that let LAN hosts open connections to peers (`-s ... -o wg0`).
    fn lan_source_rules(p: &Plan, family: usize) -> Vec<String> {
        crate::rules::chain_text(p, &p.families[family], "WGFW-wg0-FWD")
            .into_iter()
            .filter(|r| r.starts_with("-s ") && r.contains("-o wg0"))
            .collect()
    }

    /// Found with #23: `-s LAN -o wg0 -j ACCEPT` took a LAN source from any interface, so a
    /// packet from the WAN with a LAN source (loose rp_filter, or IPv6) reached the peers.
    #[test]
    fn lan_hosts_reach_peers_only_from_the_interface_that_routes_them() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let lan = |nets: &[&str]| Options {
            lan: nets.iter().map(|n| net(n)).collect(),
            ..Options::default()
        };
        let p = plan(DUAL, &lan(&["192.168.1.0/24", "fd00:1::/64"]), &host()).unwrap();
        assert_eq!(
            lan_source_rules(&p, 0),
            ["-s 192.168.1.0/24 -i lan0 -o wg0 -j ACCEPT"]
        );
        assert_eq!(
            lan_source_rules(&p, 1),
            ["-s fd00:1::/64 -i lan0 -o wg0 -j ACCEPT"]
        );
        // Routed through the WAN (one NIC): accepted from it, and the plan says what that
        // cannot tell apart.
        let p = plan(DUAL, &lan(&["172.16.5.0/24"]), &host()).unwrap();
        assert_eq!(
            lan_source_rules(&p, 0),
            ["-s 172.16.5.0/24 -i eth0 -o wg0 -j ACCEPT"]
        );
        assert_noted(
            &p,
            "--lan 172.16.5.0/24 is routed through the WAN eth0: its hosts arrive where the internet does, so a forged source of 172.16.5.0/24 from the internet cannot be told from theirs (only the upstream router can drop it)",
        );
        // Larger than its route: the part on lan0 from lan0 only, the rest from the WAN.
        let p = plan(DUAL, &lan(&["192.168.0.0/16"]), &host()).unwrap();
        assert_eq!(
            lan_source_rules(&p, 0),
            [
                "-s 192.168.1.0/24 -i lan0 -o wg0 -j ACCEPT",
                "-s 192.168.1.0/24 -o wg0 -j WGFW-wg0-DROP",
                "-s 192.168.0.0/16 -i eth0 -o wg0 -j ACCEPT",
            ]
        );
        // No route at all (a plan without the network): no way in, said so.
        let bare = HostFacts {
            lan_routes: Vec::new(),
            ..host()
        };
        let p = plan(DUAL, &lan(&["192.168.1.0/24"]), &bare).unwrap();
        assert!(lan_source_rules(&p, 0).is_empty());
        assert_noted(
            &p,
            "no route leads to --lan 192.168.1.0/24 on this host: its hosts may not open connections to peers (peers still reach it); up reads the routes each time it runs",
        );
        // A route into the tunnel is no way in.
        let tunnel = HostFacts {
            lan_routes: vec![(net("10.0.0.0/8"), "wg0".parse().unwrap())],
            ..bare
        };
        let p = plan(DUAL, &lan(&["10.0.0.0/8"]), &tunnel).unwrap();
        assert!(lan_source_rules(&p, 0).is_empty());
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
        assert_noted(&p, "endpoint 192.0.2.8:0 has port 0: no way out to it");
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
