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

/// How many sources a per-source table holds. It never fills: entries are forgotten once a
/// source's bucket would be full again anyway, and a global cap in front of it lets no more
/// new sources in than it holds in that time (`limited`). 262,144 sources cost the kernel
/// about 30 MB (iptables) to 60 MB (nftables) at the most, under a flood of spoofed sources.
pub(super) const PER_SOURCE_TABLE: u32 = 262_144;
/// The hash buckets of an iptables per-source table (its own memory: 128 KiB).
pub(super) const HASH_BUCKETS: u32 = 16_384;

/// A per-source limit, behind a global cap that keeps its table from ever filling: a full
/// table would drop every new source (iptables' hashlimit drops what it cannot track), and
/// spoofed sources fill one at a few hundred packets a second. Under a flood of spoofed
/// sources, new flows then get through at the cap's rate, shared by all; a single source
/// over its own limit is dropped as before.
///
/// Each kernel table is named from everything that shapes it, so that a changed limit gets a
/// fresh table (the kernel keeps a table's first settings while any rule uses it) and each
/// tunnel counts on its own. Names may have 15 characters.
pub(super) fn limited(
    iface: &IfaceName,
    tag: &str,
    family: Family,
    rate: Rate,
    burst: u32,
) -> [Match; 2] {
    let per = rate.unit.short();
    // IPv6 users get a /64 each: counting single addresses would let one host use millions.
    let v6_prefix = (family == Family::V6).then_some(64);
    let mask = if v6_prefix.is_some() {
        " --hashlimit-srcmask 64"
    } else {
        ""
    };
    let expire_secs = refill_secs(rate, burst);
    let per_second = cap(PER_SOURCE_TABLE, expire_secs);
    let shape = format!(
        "{iface}/{tag}/{}/{per}/{burst}/{mask}/{PER_SOURCE_TABLE}/{expire_secs}",
        rate.count
    );
    let name = format!("wgfw{:08x}{tag}", fnv1a(shape.as_bytes()));
    [
        Match::Cap {
            name: format!("{name}g"),
            per_second,
        },
        Match::PerSource {
            name,
            rate,
            burst,
            v6_prefix,
            size: PER_SOURCE_TABLE,
            expire_secs,
        },
    ]
}

/// How long an idle source's bucket takes to be full again: forgetting it then loses nothing.
/// At most an hour (a source idle that long starts afresh), so that the cap stays useful.
fn refill_secs(rate: Rate, burst: u32) -> u32 {
    let unit: u64 = match rate.unit {
        RateUnit::Second => 1,
        RateUnit::Minute => 60,
    };
    let secs = (u64::from(burst) * unit).div_ceil(u64::from(rate.count.max(1)));
    u32::try_from(secs.clamp(1, 3600)).unwrap_or(3600)
}

/// The most new sources a second that a table of `size` entries, each kept `expire_secs`,
/// can take in without filling: a rate iptables writes back exactly (a million over a whole
/// number), so that the live rule reads as the one installed.
fn cap(size: u32, expire_secs: u32) -> u32 {
    const SCALE: u64 = 1_000_000;
    let least = (SCALE * u64::from(expire_secs)).div_ceil(u64::from(size.max(1)));
    let k = (least..=SCALE)
        .find(|k| SCALE.is_multiple_of(*k))
        .unwrap_or(SCALE);
    u32::try_from(SCALE / k).unwrap_or(1)
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
    fn a_per_source_table_never_fills_and_forgets_nothing_it_needs() {
        let i: IfaceName = "wg0".parse().unwrap();
        let handshakes = Rate {
            count: 30,
            unit: RateUnit::Minute,
        };
        let [
            Match::Cap { per_second, .. },
            Match::PerSource {
                expire_secs, size, ..
            },
        ] = limited(&i, "h", Family::V4, handshakes, 5)
        else {
            panic!()
        };
        // 5 packets at 30 a minute: full again after 10 s.
        assert_eq!((expire_secs, size), (10, PER_SOURCE_TABLE));
        assert_eq!(per_second, 25_000);
        for (count, unit, burst) in [
            (30, RateUnit::Minute, 5),
            (10, RateUnit::Minute, 10),
            (10_000, RateUnit::Second, 1),
            (1, RateUnit::Minute, 10_000),
        ] {
            let rate = Rate { count, unit };
            let t = refill_secs(rate, burst);
            let g = cap(PER_SOURCE_TABLE, t);
            assert!(
                u64::from(g) * u64::from(t) <= u64::from(PER_SOURCE_TABLE),
                "{count} {t} {g}"
            );
            assert!(g >= 1 && 1_000_000u32.is_multiple_of(g), "{g}");
        }
    }

    /// The README and the manual give the sizes and caps users get by default.
    #[test]
    fn the_documents_name_the_tables_and_caps() {
        let commas = |n: u32| {
            let s = n.to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        let handshakes = Rate {
            count: 30,
            unit: RateUnit::Minute,
        };
        let numbers = [
            commas(PER_SOURCE_TABLE),
            commas(cap(PER_SOURCE_TABLE, refill_secs(handshakes, 5))),
            commas(cap(PER_SOURCE_TABLE, refill_secs(SSH_LIMIT, SSH_BURST))),
            format!("{} s", refill_secs(handshakes, 5)),
            format!("{} s", refill_secs(SSH_LIMIT, SSH_BURST)),
        ];
        for (name, text) in [
            ("README.md", include_str!("../../README.md")),
            ("man/wgfw-hook.8", include_str!("../../man/wgfw-hook.8")),
        ] {
            for n in &numbers {
                assert!(text.contains(n.as_str()), "{name} does not say {n}");
            }
        }
    }

    #[test]
    fn per_source_names_fit_and_follow_the_settings() {
        let i: IfaceName = "abcdefghijklmno".parse().unwrap();
        let r = Rate {
            count: 30,
            unit: RateUnit::Minute,
        };
        let [Match::Cap { name: cap, .. }, Match::PerSource { name, .. }] =
            limited(&i, "h", Family::V4, r, 5)
        else {
            panic!()
        };
        assert!(name.len() <= 15 && cap.len() <= 15, "{name} {cap}");
        assert_ne!(
            limited(&i, "h", Family::V4, r, 5),
            limited(&i, "h", Family::V4, Rate { count: 31, ..r }, 5)
        );
    }
}
