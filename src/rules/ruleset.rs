//! The firewall as data: which chains an interface gets and what their rules say, neutral to
//! the backend that renders them (`iptables` today). Pure: a plan goes in, chains come out.
//!
//! Chain names are iptables-style (`WGFW-wg0-IN`); a backend may spell them its own way.

use std::net::SocketAddr;

use ipnet::IpNet;

use crate::config::types::{IfaceName, Proto, Rate, RateUnit, Role};
use crate::plan::{Family, FamilyPlan, InputPolicy, Plan};

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

/// A port or an inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports(pub u16, pub u16);

impl Ports {
    pub fn one(p: u16) -> Ports {
        Ports(p, p)
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
    /// A limit per source address (per /64 for IPv6), in a kernel table of its own.
    PerSource {
        name: String,
        rate: Rate,
        burst: u32,
        v6_prefix: Option<u8>,
    },
    /// A TCP MSS option larger than this.
    MssAbove(u32),
    /// The source is not an address of this host (forwarded traffic).
    SrcNotLocal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Log(String),
    /// Reject: a TCP reset, or ICMP "administratively prohibited" for anything else.
    RejectTcpReset,
    RejectProhibited,
    Masquerade,
    SetMss(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
    /// What `status` reports this rule's packets as, if anything.
    pub counts: Option<&'static str>,
}

impl Rule {
    fn counted(self, label: &'static str) -> Rule {
        Rule {
            counts: Some(label),
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

fn rule(matches: Vec<Match>, verdict: Verdict) -> Rule {
    Rule {
        matches,
        verdict,
        counts: None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: Table,
    pub name: String,
    /// The built-in chain that jumps here first, if any.
    pub hook: Option<&'static str>,
    pub rules: Vec<Rule>,
}

/// The chain every managed interface shares: host input's common head, one jump per
/// interface, and the default deny. It exists while any interface is managed.
pub const SHARED_INPUT: &str = "WGFW-INPUT";

fn own(iface: &IfaceName, suffix: &str) -> String {
    format!("WGFW-{iface}-{suffix}")
}

/// The chains one interface may own, whatever its role and options: table, suffix, and the
/// built-in chain that jumps to it (the others are reached from our chains).
const OWN: [(Table, &str, Option<&str>); 8] = [
    (Table::Raw, "PRE", Some("PREROUTING")),
    (Table::Mangle, "MSS", Some("FORWARD")),
    (Table::Nat, "NAT", Some("POSTROUTING")),
    (Table::Filter, "IN", None),
    (Table::Filter, "FWD", Some("FORWARD")),
    (Table::Filter, "DROP", None),
    (Table::Filter, "OUT", Some("OUTPUT")),
    (Table::Filter, "REJECT", None),
];

/// The names of the chains one interface may own, whatever its role and options.
pub fn own_chains(iface: &IfaceName) -> Vec<(Table, String)> {
    OWN.iter().map(|(t, s, _)| (*t, own(iface, s))).collect()
}

/// The jumps from built-in chains that `up` may have put in for one interface (and, with
/// `shared`, for the shared input chain): table, built-in chain, our chain.
pub fn own_hooks(iface: &IfaceName, shared: bool) -> Vec<(Table, &'static str, String)> {
    let mut out: Vec<(Table, &'static str, String)> = OWN
        .iter()
        .filter_map(|(t, s, h)| Some((*t, (*h)?, own(iface, s))))
        .collect();
    if shared {
        out.push((Table::Filter, "INPUT", SHARED_INPUT.to_string()));
    }
    out
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| n.parse().expect("a network literal"))
        .collect()
}

/// Networks that peers may not reach through the server by default (anti-pivot).
pub fn local_ranges(family: Family) -> Vec<IpNet> {
    nets(match family {
        Family::V4 => &[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
        ],
        Family::V6 => &["fc00::/7", "fe80::/10"],
    })
}

/// Networks a client keeps reachable outside the tunnel with `--allow-lan`: the private and
/// link-local ranges, and (as destinations) multicast and broadcast.
pub fn lan_ranges(family: Family, destination: bool) -> Vec<IpNet> {
    let mut r = nets(match family {
        Family::V4 => &[
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
        ],
        Family::V6 => &["fc00::/7", "fe80::/10"],
    });
    if destination {
        r.extend(nets(match family {
            Family::V4 => &["224.0.0.0/4", "255.255.255.255/32"],
            Family::V6 => &["ff00::/8"],
        }));
    }
    r
}

/// Log lines are limited so that a flood cannot fill the disk.
fn log_limit() -> Match {
    Match::Limit {
        count: 5,
        per: RateUnit::Minute,
        burst: 10,
    }
}
const SSH_LIMIT: Rate = Rate {
    count: 10,
    unit: RateUnit::Minute,
};
const SSH_BURST: u32 = 10;

fn udp(sport: Option<u16>, dport: Option<u16>) -> Match {
    Match::L4 {
        proto: Proto::Udp,
        sport: sport.map(Ports::one),
        dport: dport.map(Ports::one),
        syn: false,
    }
}

fn tcp_dport(port: u16) -> Match {
    Match::L4 {
        proto: Proto::Tcp,
        sport: None,
        dport: Some(Ports::one(port)),
        syn: false,
    }
}

fn icmp(family: Family, t: u8) -> Match {
    match family {
        Family::V4 => Match::Icmp(t),
        Family::V6 => Match::Icmp6(t),
    }
}

/// One interface's chains for one family.
pub fn iface_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    match plan.role {
        Role::Server => server_chains(plan, fp),
        Role::Client => client_chains(plan, fp),
    }
}

fn mss_chain(i: &IfaceName, fp: &FamilyPlan) -> Chain {
    // TCP through the tunnel must fit its MTU both ways, whatever MTU the peer has.
    let syn = Match::L4 {
        proto: Proto::Tcp,
        sport: None,
        dport: None,
        syn: true,
    };
    let clamp = |dir| {
        rule(
            vec![dir, syn.clone(), Match::MssAbove(fp.mss)],
            Verdict::SetMss(fp.mss),
        )
    };
    Chain {
        table: Table::Mangle,
        name: own(i, "MSS"),
        hook: Some("FORWARD"),
        rules: vec![
            clamp(Match::Out(i.to_string())),
            clamp(Match::In(i.to_string())),
        ],
    }
}

fn allow_rules(plan: &Plan) -> Vec<Rule> {
    plan.allow
        .iter()
        .map(|s| {
            let dport = Some(Ports(s.first.get(), s.last.get()));
            rule(
                vec![Match::L4 {
                    proto: s.proto,
                    sport: None,
                    dport,
                    syn: false,
                }],
                Verdict::Accept,
            )
        })
        .collect()
}

fn log_rule(i: &IfaceName) -> Rule {
    rule(vec![log_limit()], Verdict::Log(format!("wgfw-{i}: ")))
}

fn endpoint_rule(e: &SocketAddr) -> Rule {
    rule(
        vec![Match::Dst(IpNet::from(e.ip())), udp(None, Some(e.port()))],
        Verdict::Accept,
    )
}

/// The kill switch: nothing leaves but through the tunnel, to the peers' endpoints, and the
/// few things a network needs (DHCP, neighbour discovery), plus the LAN with --allow-lan.
/// Everything else is rejected, so that applications fail at once instead of hanging. The
/// rules name the tunnel interface: when it dies, nothing matches them and all is rejected.
fn client_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let wg = || i.to_string();
    let reject = Verdict::Jump(own(i, "REJECT"));
    let chain = |table, suffix: &str, hook, rules| Chain {
        table,
        name: own(i, suffix),
        hook,
        rules,
    };
    let mut chains = vec![mss_chain(i, fp)];
    if fp.masquerade {
        let rules = vec![rule(
            vec![Match::Out(wg()), Match::SrcNotLocal],
            Verdict::Masquerade,
        )];
        chains.push(chain(Table::Nat, "NAT", Some("POSTROUTING"), rules));
    }

    let mut rules = Vec::new();
    if fp.policy == InputPolicy::Accept {
        rules.push(rule(vec![Match::In(wg())], Verdict::Accept));
    }
    if plan.allow_lan {
        // Tunnel addresses are often private too: they come in only per --policy.
        rules.extend(
            lan_ranges(fp.family, false)
                .into_iter()
                .map(|r| rule(vec![Match::Src(r), Match::NotIn(wg())], Verdict::Accept)),
        );
    }
    rules.extend(allow_rules(plan));
    chains.push(chain(Table::Filter, "IN", None, rules));

    let mut rules = vec![
        rule(vec![Match::Out("lo".into())], Verdict::Accept),
        rule(vec![Match::Out(wg())], Verdict::Accept),
    ];
    rules.extend(fp.endpoints.iter().map(endpoint_rule));
    // ICMP errors and resets about connections this host forwards or accepted (a rejected
    // LAN connection's reset, "fragmentation needed"): they must reach the LAN host.
    rules.push(rule(vec![Match::Ct(Ct::Related)], Verdict::Accept));
    match fp.family {
        Family::V4 => rules.push(rule(vec![udp(Some(68), Some(67))], Verdict::Accept)),
        Family::V6 => {
            rules.push(rule(vec![udp(Some(546), Some(547))], Verdict::Accept));
            // Neighbour discovery stays on the link (hop limit 255); MLD reports go to routers.
            for t in [133, 135, 136] {
                rules.push(rule(
                    vec![Match::Icmp6(t), Match::HopLimit255],
                    Verdict::Accept,
                ));
            }
            let mld_routers: IpNet = "ff02::16/128".parse().expect("literal");
            rules.push(rule(
                vec![Match::Dst(mld_routers), Match::Icmp6(143)],
                Verdict::Accept,
            ));
        }
    }
    if plan.allow_lan {
        rules.extend(
            lan_ranges(fp.family, true)
                .into_iter()
                .map(|r| rule(vec![Match::Dst(r)], Verdict::Accept)),
        );
    }
    rules.push(rule(vec![], reject.clone()));
    chains.push(chain(Table::Filter, "OUT", Some("OUTPUT"), rules));

    // The LAN may use the tunnel; the WAN's neighbours may not.
    let mut into_tunnel = vec![Match::Out(wg())];
    into_tunnel.extend(fp.wan.as_ref().map(|w| Match::NotIn(w.to_string())));
    let mut rules = vec![
        rule(into_tunnel, Verdict::Accept),
        rule(
            vec![Match::In(wg()), Match::Ct(Ct::Established)],
            Verdict::Accept,
        ),
    ];
    if plan.allow_lan {
        rules.extend(
            lan_ranges(fp.family, true)
                .into_iter()
                .map(|r| rule(vec![Match::Dst(r), Match::NotIn(wg())], Verdict::Accept)),
        );
    }
    rules.push(rule(vec![], reject));
    chains.push(chain(Table::Filter, "FWD", Some("FORWARD"), rules));

    let mut rules = Vec::new();
    if plan.log {
        rules.push(log_rule(i));
    }
    let tcp = Match::L4 {
        proto: Proto::Tcp,
        sport: None,
        dport: None,
        syn: false,
    };
    rules.push(rule(vec![tcp], Verdict::RejectTcpReset).counted(REJECTED));
    rules.push(rule(vec![], Verdict::RejectProhibited).counted(REJECTED));
    chains.push(chain(Table::Filter, "REJECT", None, rules));
    chains
}

fn server_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let wg = || i.to_string();
    let drop = Verdict::Jump(own(i, "DROP"));
    let chain = |table, suffix: &str, hook, rules| Chain {
        table,
        name: own(i, suffix),
        hook,
        rules,
    };
    let mut chains = Vec::new();

    // Tunnel sources that arrive on any other interface are spoofed.
    if !fp.tunnel_nets.is_empty() {
        let mut rules = vec![
            rule(vec![Match::In(wg())], Verdict::Return),
            rule(vec![Match::In("lo".into())], Verdict::Return),
        ];
        rules.extend(
            fp.tunnel_nets
                .iter()
                .map(|n| rule(vec![Match::Src(*n)], Verdict::Drop)),
        );
        chains.push(chain(Table::Raw, "PRE", Some("PREROUTING"), rules));
    }

    chains.push(mss_chain(i, fp));

    // Peers leave masqueraded, so the internet and the LAN hosts need no route back; traffic
    // between peers never is.
    if fp.masquerade {
        let mut rules = Vec::new();
        for n in &fp.tunnel_nets {
            if let (true, Some(wan)) = (fp.internet, &fp.wan) {
                rules.push(rule(
                    vec![Match::Src(*n), Match::Out(wan.to_string())],
                    Verdict::Masquerade,
                ));
            }
            rules.extend(fp.lans.iter().map(|lan| {
                rule(
                    vec![Match::Src(*n), Match::Dst(*lan), Match::NotOut(wg())],
                    Verdict::Masquerade,
                )
            }));
        }
        if !rules.is_empty() {
            chains.push(chain(Table::Nat, "NAT", Some("POSTROUTING"), rules));
        }
    }

    let mut rules = Vec::new();
    let port = Match::L4 {
        proto: Proto::Udp,
        sport: None,
        // Planned for display without the live interface, the port is not known yet.
        dport: Some(Ports::one(plan.port.map_or(0, |p| p.get()))),
        syn: false,
    };
    let new = Match::Ct(Ct::New);
    let limit = per_source(
        i,
        "h",
        fp.family,
        plan.handshake_limit,
        plan.handshake_burst,
    );
    rules.push(rule(vec![port.clone(), new.clone(), limit], Verdict::Accept).counted(HANDSHAKES));
    rules.push(rule(vec![port, new.clone()], drop.clone()).counted(RATE_LIMITED));
    rules.push(rule(vec![Match::In(wg())], Verdict::Accept));
    if let (Some(ssh), false) = (plan.ssh_port, fp.policy == InputPolicy::Defer) {
        let limit = per_source(i, "s", fp.family, SSH_LIMIT, SSH_BURST);
        let accept = |src: Option<IpNet>| {
            let mut m: Vec<Match> = src.map(Match::Src).into_iter().collect();
            m.extend([tcp_dport(ssh.get()), new.clone(), limit.clone()]);
            rule(m, Verdict::Accept).counted(SSH_ACCEPTED)
        };
        match &fp.admin {
            None => rules.push(accept(None)),
            Some(nets) => rules.extend(nets.iter().map(|n| accept(Some(*n)))),
        }
        rules
            .push(rule(vec![tcp_dport(ssh.get()), new.clone()], drop.clone()).counted(SSH_BLOCKED));
    }
    rules.extend(allow_rules(plan));
    chains.push(chain(Table::Filter, "IN", None, rules));

    let peers = if plan.peer_to_peer {
        Verdict::Accept
    } else {
        drop.clone()
    };
    let mut rules = vec![
        rule(
            vec![Match::Out(wg()), Match::Ct(Ct::Established)],
            Verdict::Accept,
        ),
        rule(
            vec![Match::In(wg()), Match::Ct(Ct::Established)],
            Verdict::Accept,
        ),
        rule(vec![Match::In(wg()), Match::Ct(Ct::Invalid)], drop.clone()),
        // Peers are isolated from each other unless --peer-to-peer.
        rule(vec![Match::In(wg()), Match::Out(wg())], peers),
    ];
    for lan in &fp.lans {
        rules.push(rule(
            vec![Match::Dst(*lan), Match::In(wg())],
            Verdict::Accept,
        ));
        rules.push(rule(
            vec![Match::Src(*lan), Match::Out(wg())],
            Verdict::Accept,
        ));
    }
    // Anti-pivot: the internet, yes; the networks around this host, no.
    rules.extend(
        local_ranges(fp.family)
            .into_iter()
            .map(|r| rule(vec![Match::Dst(r), Match::In(wg())], drop.clone())),
    );
    if let (true, Some(wan)) = (fp.internet, &fp.wan) {
        rules.push(
            rule(
                vec![Match::In(wg()), Match::Out(wan.to_string())],
                Verdict::Accept,
            )
            .counted(FORWARDED),
        );
    }
    rules.push(rule(vec![Match::In(wg())], drop.clone()));
    rules.push(rule(vec![Match::Out(wg())], drop));
    chains.push(chain(Table::Filter, "FWD", Some("FORWARD"), rules));

    let mut rules = Vec::new();
    if plan.log {
        rules.push(log_rule(i));
    }
    rules.push(rule(vec![], Verdict::Drop).counted(DROPPED));
    chains.push(chain(Table::Filter, "DROP", None, rules));
    chains
}

/// A per-source limit. Its kernel table is named from everything that shapes it, so that a
/// changed limit gets a fresh table (the kernel keeps a table's first settings while any rule
/// uses it) and each tunnel counts on its own. Names may have 15 characters.
fn per_source(iface: &IfaceName, tag: &str, family: Family, rate: Rate, burst: u32) -> Match {
    let per = match rate.unit {
        RateUnit::Second => "sec",
        RateUnit::Minute => "min",
    };
    // IPv6 users get a /64 each: counting single addresses would let one host use millions.
    let v6_prefix = (family == Family::V6).then_some(64);
    let mask = if v6_prefix.is_some() {
        " --hashlimit-srcmask 64"
    } else {
        ""
    };
    let shape = format!("{iface}/{tag}/{}/{per}/{burst}/{mask}", rate.count);
    let name = format!("wgfw{:08x}{tag}", fnv1a(shape.as_bytes()));
    Match::PerSource {
        name,
        rate,
        burst,
        v6_prefix,
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// One managed interface as the shared chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub iface: IfaceName,
    pub policy: InputPolicy,
    pub log: bool,
}

/// The shared input chain for the interfaces managed in one family (none: no chain).
pub fn shared_chains(family: Family, members: &[Member]) -> Vec<Chain> {
    if members.is_empty() {
        return Vec::new();
    }
    let mut rules = vec![
        rule(vec![Match::In("lo".into())], Verdict::Accept),
        rule(vec![Match::Ct(Ct::Established)], Verdict::Accept),
        rule(vec![Match::Ct(Ct::Invalid)], Verdict::Drop),
    ];
    rules.extend(
        members
            .iter()
            .map(|m| rule(vec![], Verdict::Jump(own(&m.iface, "IN")))),
    );
    let ping = Match::Limit {
        count: 10,
        per: RateUnit::Second,
        burst: 20,
    };
    match family {
        Family::V4 => {
            for t in [3, 11, 12] {
                rules.push(rule(vec![icmp(family, t)], Verdict::Accept));
            }
            rules.push(rule(vec![icmp(family, 8), ping], Verdict::Accept));
        }
        Family::V6 => {
            // Errors (packet-too-big above all) and neighbour discovery keep IPv6 working.
            for t in [1, 2, 3, 4] {
                rules.push(rule(vec![icmp(family, t)], Verdict::Accept));
            }
            for t in [133, 134, 135, 136] {
                rules.push(rule(
                    vec![icmp(family, t), Match::HopLimit255],
                    Verdict::Accept,
                ));
            }
            let link_local: IpNet = "fe80::/10".parse().expect("literal");
            for t in [130, 131, 132, 143] {
                rules.push(rule(
                    vec![Match::Src(link_local), icmp(family, t)],
                    Verdict::Accept,
                ));
            }
            rules.push(rule(vec![icmp(family, 128), ping], Verdict::Accept));
            // DHCPv6 replies come from a link-local server and match no connection.
            let dhcp = vec![
                Match::Src(link_local),
                Match::Dst(link_local),
                udp(Some(547), Some(546)),
            ];
            rules.push(rule(dhcp, Verdict::Accept));
        }
    }
    if members.iter().any(|m| m.policy == InputPolicy::Drop) {
        if members
            .iter()
            .any(|m| m.policy == InputPolicy::Drop && m.log)
        {
            rules.push(rule(vec![log_limit()], Verdict::Log("wgfw-input: ".into())));
        }
        rules.push(rule(vec![], Verdict::Drop).counted(DROPPED));
    }
    vec![Chain {
        table: Table::Filter,
        name: SHARED_INPUT.to_string(),
        hook: Some("INPUT"),
        rules,
    }]
}

/// The chains of one interface and family together with the shared chain, as on a host where
/// it is the only managed interface: what `plan` shows.
pub fn fresh(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let me = Member {
        iface: plan.iface.clone(),
        policy: plan.tail_policy(fp),
        log: plan.log,
    };
    let mut chains = shared_chains(fp.family, &[me]);
    chains.extend(iface_chains(plan, fp));
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_names_fit_and_follow_the_settings() {
        let i: IfaceName = "abcdefghijklmno".parse().unwrap();
        let r = Rate {
            count: 30,
            unit: RateUnit::Minute,
        };
        let Match::PerSource { name, .. } = per_source(&i, "h", Family::V4, r, 5) else {
            panic!()
        };
        assert!(name.len() <= 15, "{name}");
        assert_ne!(
            per_source(&i, "h", Family::V4, r, 5),
            per_source(&i, "h", Family::V4, Rate { count: 31, ..r }, 5)
        );
    }

    #[test]
    fn shared_chain_serves_every_interface_and_denies_once() {
        let m = |i: &str, policy| Member {
            iface: i.parse().unwrap(),
            policy,
            log: true,
        };
        let c = shared_chains(
            Family::V4,
            &[m("wg0", InputPolicy::Drop), m("wg1", InputPolicy::Defer)],
        );
        let rules = &c[0].rules;
        assert_eq!(
            rules
                .iter()
                .filter(|r| matches!(r.verdict, Verdict::Jump(_)))
                .count(),
            2
        );
        assert_eq!(rules.last().unwrap().verdict, Verdict::Drop);
        let c = shared_chains(Family::V4, &[m("wg1", InputPolicy::Defer)]);
        assert!(
            !c[0]
                .rules
                .iter()
                .any(|r| matches!(r.verdict, Verdict::Log(_)) || r == &rule(vec![], Verdict::Drop))
        );
        assert!(shared_chains(Family::V4, &[]).is_empty());
    }

    fn client_plan(opts: crate::config::cli::Options) -> Plan {
        let conf = "[Interface]\nAddress = 10.66.0.2/32\n[Peer]\nEndpoint = 203.0.113.2:51820\nAllowedIPs = 0.0.0.0/0\n";
        let host = crate::plan::HostFacts {
            endpoints: vec!["203.0.113.2:51820".parse().unwrap()],
            ..crate::plan::HostFacts::example()
        };
        let opts = crate::config::cli::Options {
            role: Some(Role::Client),
            ..opts
        };
        crate::plan::for_test(conf, &opts, &host).unwrap()
    }

    /// `own_hooks` (what `down` assumes) names exactly the hooks the plans give their chains.
    #[test]
    fn own_hooks_are_the_hooks_plans_use() {
        let server = "[Interface]\nAddress = 10.6.0.1/24, fd6::1/64\nListenPort = 51820\n";
        let host = crate::plan::HostFacts::example();
        let plans = [
            crate::plan::for_test(server, &crate::config::cli::Options::default(), &host).unwrap(),
            client_plan(crate::config::cli::Options::default()),
            client_plan(crate::config::cli::Options {
                allow_lan: true,
                ..Default::default()
            }),
        ];
        let hooks = own_hooks(&"wg0".parse().unwrap(), true);
        let mut hooked = 0;
        for p in &plans {
            for fp in &p.families {
                for c in fresh(p, fp) {
                    let assumed = hooks.iter().find(|(_, _, n)| *n == c.name);
                    assert_eq!(
                        assumed.map(|(t, h, _)| (*t, *h)),
                        c.hook.map(|h| (c.table, h)),
                        "{}",
                        c.name
                    );
                    hooked += usize::from(c.hook.is_some());
                }
            }
        }
        assert!(hooked >= 8, "the plans exercise the hooks ({hooked})");
    }

    fn chain<'a>(chains: &'a [Chain], suffix: &str) -> &'a Chain {
        chains
            .iter()
            .find(|c| c.name == format!("WGFW-wg0-{suffix}"))
            .unwrap()
    }

    #[test]
    fn the_kill_switch_lets_out_only_what_it_names() {
        let p = client_plan(crate::config::cli::Options {
            allow_lan: true,
            ..Default::default()
        });
        let chains = iface_chains(&p, &p.families[0]);
        let out = &chain(&chains, "OUT").rules;
        assert_eq!(
            out.last().unwrap().verdict,
            Verdict::Jump("WGFW-wg0-REJECT".into())
        );
        assert!(
            out.iter()
                .any(|r| r.matches == vec![Match::Ct(Ct::Related)]),
            "resets of rejected LAN traffic"
        );
        assert!(out.iter().any(|r| {
            r.matches
                .contains(&Match::Dst("203.0.113.2/32".parse().unwrap()))
        }));
        // --allow-lan opens the LAN, not the tunnel, whose addresses are private too.
        let input = &chain(&chains, "IN").rules;
        assert!(
            !input.is_empty()
                && input
                    .iter()
                    .all(|r| r.matches.contains(&Match::NotIn("wg0".into())))
        );
        // The LAN may use the tunnel; the WAN's neighbours may not.
        let fwd = &chain(&chains, "FWD").rules;
        assert_eq!(
            fwd[0].matches,
            vec![Match::Out("wg0".into()), Match::NotIn("eth0".into())]
        );
        // Without --allow-lan nothing but the tunnel comes in.
        let p = client_plan(crate::config::cli::Options::default());
        assert!(
            chain(&iface_chains(&p, &p.families[0]), "IN")
                .rules
                .is_empty()
        );
    }

    #[test]
    fn every_chain_is_one_an_interface_owns() {
        let i: IfaceName = "wg0".parse().unwrap();
        let owned = own_chains(&i);
        for name in ["PRE", "MSS", "NAT", "IN", "FWD", "DROP", "OUT", "REJECT"] {
            assert!(owned.iter().any(|(_, n)| *n == own(&i, name)), "{name}");
        }
    }
}
