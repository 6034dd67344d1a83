//! The pieces both roles' chains are built from: the address ranges, the limits, the common
//! matches and rules, MSS clamping, and the per-source limit tables.

use std::net::SocketAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::types::{IfaceName, Proto, Rate, RateUnit, Service};
use crate::plan::{Family, FamilyPlan};

use super::model::{Chain, Match, Ports, Rule, Verdict, rule};
use super::names::{ChainId, Kind};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| n.parse().expect("a network literal"))
        .collect()
}

/// The IPv4 networks around a host that peers may not reach through the server by default.
pub(super) fn local_v4() -> Vec<Ipv4Net> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
    ]
    .iter()
    .map(|n| n.parse().expect("a network literal"))
    .collect()
}

/// Networks that peers may not reach through the server by default (anti-pivot). In IPv6
/// also the IPv4 ones as a NAT64 gateway upstream would reach them: behind the well-known
/// prefix, the local-use prefix, and the plan's `--nat64` prefixes.
pub fn local_ranges(fp: &FamilyPlan) -> Vec<IpNet> {
    match fp.family {
        Family::V4 => local_v4().into_iter().map(IpNet::V4).collect(),
        Family::V6 => {
            let mut r = nets(&["fc00::/7", "fe80::/10"]);
            r.extend(super::nat64::local_ranges(&local_v4(), &fp.nat64));
            r
        }
    }
}

/// The local ranges behind one `--nat64` prefix, for `plan` to show.
pub fn nat64_local_ranges(prefix: Ipv6Net) -> Vec<IpNet> {
    super::nat64::ranges_in(&local_v4(), prefix)
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
pub(super) fn log_limit() -> Match {
    Match::Limit {
        count: 5,
        per: RateUnit::Minute,
        burst: 10,
    }
}
pub(super) const SSH_LIMIT: Rate = Rate {
    count: 10,
    unit: RateUnit::Minute,
};
pub(super) const SSH_BURST: u32 = 10;

pub(super) fn udp(sport: Option<u16>, dport: Option<u16>) -> Match {
    Match::L4 {
        proto: Proto::Udp,
        sport: sport.map(Ports::one),
        dport: dport.map(Ports::one),
        syn: false,
    }
}

pub(super) fn tcp_dport(port: u16) -> Match {
    Match::L4 {
        proto: Proto::Tcp,
        sport: None,
        dport: Some(Ports::one(port)),
        syn: false,
    }
}

pub(super) fn icmp(family: Family, t: u8) -> Match {
    match family {
        Family::V4 => Match::Icmp(t),
        Family::V6 => Match::Icmp6(t),
    }
}

/// One of the interface's chains.
pub(super) fn chain(iface: &IfaceName, kind: Kind, rules: Vec<Rule>) -> Chain {
    Chain {
        id: ChainId::own(iface, kind),
        rules,
    }
}

pub(super) fn mss_chain(i: &IfaceName, fp: &FamilyPlan) -> Chain {
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
    chain(
        i,
        Kind::Mss,
        vec![
            clamp(Match::Out(i.to_string())),
            clamp(Match::In(i.to_string())),
        ],
    )
}

pub(super) fn allow_rules(services: &[Service]) -> Vec<Rule> {
    services
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

pub(super) fn log_rule(i: &IfaceName) -> Rule {
    rule(vec![log_limit()], Verdict::Log(format!("wgfw-{i}: ")))
}

pub(super) fn endpoint_rule(e: &SocketAddr) -> Rule {
    rule(
        vec![Match::Dst(IpNet::from(e.ip())), udp(None, Some(e.port()))],
        Verdict::Accept,
    )
}

/// A per-source limit. Its kernel table is named from everything that shapes it, so that a
/// changed limit gets a fresh table (the kernel keeps a table's first settings while any rule
/// uses it) and each tunnel counts on its own. Names may have 15 characters.
pub(super) fn per_source(
    iface: &IfaceName,
    tag: &str,
    family: Family,
    rate: Rate,
    burst: u32,
) -> Match {
    let per = rate.unit.short();
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
}
