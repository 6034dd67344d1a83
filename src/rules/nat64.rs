//! IPv4 addresses in IPv6 form (RFC 6052), as a NAT64 gateway translates them: a peer that may
//! not reach `10.0.0.5` must not reach `64:ff9b::10.0.0.5` either, or the gateway upstream
//! takes it there. Here: where the IPv4 local ranges lie inside a NAT64 prefix.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// RFC 6052's well-known prefix, for global IPv4 addresses only.
pub(crate) const WELL_KNOWN: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::from_bits(0x0064_ff9b << 96), 96);
/// RFC 8215's prefix for local use: a private NAT64 of the network's own, whatever it embeds.
pub(crate) const LOCAL_USE: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::from_bits(0x0064_ff9b_0001 << 80), 48);

/// Bits 64-71 of an RFC 6052 address (its "u" octet), which the IPv4 address skips in the
/// prefixes shorter than /96.
const U_OCTET: u32 = 64;

/// The IPv6 address that stands for `v4` behind `prefix` (RFC 6052, section 2.2). `prefix` has
/// one of the lengths that section allows (`config::types::nat64_prefix` checked it).
pub(crate) fn address(prefix: Ipv6Net, v4: Ipv4Addr) -> Ipv6Addr {
    let p = prefix.network().to_bits();
    let v = u128::from(v4.to_bits());
    let len = u32::from(prefix.prefix_len());
    if len >= 96 {
        return Ipv6Addr::from_bits(p | v);
    }
    // The first bits of the IPv4 address fill the prefix up to the u octet, the rest follow it.
    let before = U_OCTET - len;
    let after = 32 - before;
    let high = v >> after;
    let low = v & ((1 << after) - 1);
    Ipv6Addr::from_bits(p | high << (128 - U_OCTET) | low << (128 - U_OCTET - 8 - after))
}

/// Every IPv6 destination behind `prefix` that a gateway translates into `v4`: one network,
/// unless `v4` reaches past the u octet. Then the u octet must be zero (RFC 6052), but
/// gateways ignore it (Jool does), so the networks where it is not zero and the first bits are
/// `v4`'s are included too: no valid address lies in them, whatever its IPv4 part.
pub(crate) fn networks(prefix: Ipv6Net, v4: Ipv4Net) -> Vec<Ipv6Net> {
    let len = u32::from(prefix.prefix_len());
    let v4len = u32::from(v4.prefix_len());
    let start = address(prefix, v4.network());
    if len >= 96 || v4len <= U_OCTET - len {
        return vec![at(start, len + v4len)];
    }
    let mut out = vec![at(start, len + v4len + 8)];
    // Under the first 64 bits, the u octet's first set bit at 64 + k: 8 networks.
    let first64 = start.to_bits() & !(u128::MAX >> U_OCTET);
    out.extend((0..8).map(|k| at(Ipv6Addr::from_bits(first64 | 1 << (63 - k)), 65 + k)));
    out
}

fn at(addr: Ipv6Addr, len: u32) -> Ipv6Net {
    Ipv6Net::new(addr, len as u8).expect("at most /128")
}

/// The IPv4 `local` ranges in IPv6 form: behind the well-known prefix, behind each of
/// `prefixes`, and all of the local-use prefix; sorted, without duplicates.
pub(crate) fn local_ranges(local: &[Ipv4Net], prefixes: &[Ipv6Net]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = vec![LOCAL_USE.into()];
    for p in std::iter::once(&WELL_KNOWN).chain(prefixes) {
        out.extend(local.iter().flat_map(|r| networks(*p, *r)).map(IpNet::V6));
    }
    IpNet::aggregate(&out)
}

/// The local ranges that `prefix` adds, for `plan` to show.
pub(crate) fn ranges_in(local: &[Ipv4Net], prefix: Ipv6Net) -> Vec<IpNet> {
    let all: Vec<IpNet> = local
        .iter()
        .flat_map(|r| networks(prefix, *r))
        .map(IpNet::V6)
        .collect();
    IpNet::aggregate(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv6Net {
        crate::config::types::nat64_prefix(s).unwrap()
    }

    /// RFC 6052, section 2.4: 192.0.2.33 behind a prefix of each length.
    #[test]
    fn addresses_are_rfc_6052s_examples() {
        let v4: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (prefix, want) in [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
        ] {
            let want: Ipv6Addr = want.parse().unwrap();
            assert_eq!(address(p(prefix), v4), want, "{prefix}");
        }
        assert_eq!(
            address(WELL_KNOWN, "10.0.0.5".parse().unwrap()),
            "64:ff9b::a00:5".parse::<Ipv6Addr>().unwrap()
        );
    }

    fn nets(prefix: &str, v4: &str) -> Vec<String> {
        networks(p(prefix), v4.parse().unwrap())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_network_before_the_u_octet_is_one_prefix() {
        assert_eq!(nets("64:ff9b::/96", "10.0.0.0/8"), ["64:ff9b::a00:0/104"]);
        assert_eq!(
            nets("2001:db8::/32", "172.16.0.0/12"),
            ["2001:db8:ac10::/44"]
        );
        assert_eq!(
            nets("2001:db8:100::/40", "192.168.0.0/16"),
            ["2001:db8:1c0:a800::/56"]
        );
        assert_eq!(
            nets("2001:db8:122::/48", "169.254.0.0/16"),
            ["2001:db8:122:a9fe::/64"]
        );
        assert_eq!(
            nets("2001:db8:122:300::/56", "10.0.0.0/8"),
            ["2001:db8:122:30a::/64"]
        );
    }

    #[test]
    fn a_network_past_the_u_octet_skips_it_and_covers_its_other_values() {
        let got = nets("2001:db8:122:300::/56", "172.16.0.0/12");
        assert_eq!(got[0], "2001:db8:122:3ac:10::/76");
        assert_eq!(
            got[1..],
            [
                "2001:db8:122:3ac:8000::/65",
                "2001:db8:122:3ac:4000::/66",
                "2001:db8:122:3ac:2000::/67",
                "2001:db8:122:3ac:1000::/68",
                "2001:db8:122:3ac:800::/69",
                "2001:db8:122:3ac:400::/70",
                "2001:db8:122:3ac:200::/71",
                "2001:db8:122:3ac:100::/72",
            ]
        );
        assert_eq!(
            nets("2001:db8:122:344::/64", "10.0.0.0/8")[0],
            "2001:db8:122:344:a::/80"
        );
        // 192.0.2.33 with any u octet behind the /64 is in them; a valid global address is not.
        let all = networks(p("2001:db8:122:344::/64"), "192.0.2.0/24".parse().unwrap());
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        for inside in [
            "2001:db8:122:344:c0:2:2100:0",
            "2001:db8:122:344:ffc0:2:21ff:ffff",
        ] {
            assert!(all.iter().any(|n| n.contains(&a(inside))), "{inside}");
        }
        assert!(
            !all.iter()
                .any(|n| n.contains(&a("2001:db8:122:344:c0:3:100:0")))
        );
    }

    /// The FWD chain's IPv6 rules, rendered, for a plan with these options.
    fn forward_v6(opts: &crate::config::cli::Options) -> Vec<String> {
        let conf = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n";
        let plan = crate::plan::for_test(conf, opts, &crate::plan::HostFacts::example()).unwrap();
        crate::rules::chain_text(&plan, &plan.families[1], "WGFW-wg0-FWD")
    }

    #[test]
    fn a_lan_wins_in_its_own_family_only() {
        let opts = crate::config::cli::Options {
            lan: ["192.168.1.0/24", "64:ff9b::c0a8:a00/120"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            nat64: vec![p("2001:db8:64::/96")],
            ..Default::default()
        };
        let rules = forward_v6(&opts);
        let at = |r: &str| {
            rules
                .iter()
                .position(|x| x == r)
                .unwrap_or_else(|| panic!("{r} not in {rules:#?}"))
        };
        // The IPv6 form of 192.168.10.0/24, named as a --lan, is accepted before the drop.
        let accept = at("-d 64:ff9b::c0a8:a00/120 -i wg0 -j ACCEPT");
        let drop = at("-d 64:ff9b::c0a8:0/112 -i wg0 -j WGFW-wg0-DROP");
        assert!(accept < drop);
        // The IPv4 --lan opens no IPv6 form: the gateway's 192.168.1.0/24 is its own.
        assert!(!rules.iter().any(|r| r.contains("c0a8:100")), "{rules:#?}");
        // The --nat64 prefix's local ranges are dropped, before the internet is accepted.
        let own = at("-d 2001:db8:64::c0a8:0/112 -i wg0 -j WGFW-wg0-DROP");
        assert!(own < at("-i wg0 -o eth0 -j ACCEPT"));
        at("-d 64:ff9b:1::/48 -i wg0 -j WGFW-wg0-DROP");
    }

    #[test]
    fn local_ranges_hold_the_well_known_and_the_local_use_prefix() {
        let local = super::super::parts::local_v4();
        let got: Vec<String> = local_ranges(&local, &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "64:ff9b::a00:0/104",
                "64:ff9b::6440:0/106",
                "64:ff9b::a9fe:0/112",
                "64:ff9b::ac10:0/108",
                "64:ff9b::c0a8:0/112",
                "64:ff9b:1::/48",
            ]
        );
        // A /64 prefix: each range behind the u octet, and the invalid u values once.
        let with = local_ranges(&local, &[p("2001:db8:64::/64")]);
        assert_eq!(with.len(), 6 + 5 + 8, "{with:?}");
        let a: Ipv6Addr = "2001:db8:64:0:a:0:500::".parse().unwrap();
        assert_eq!(
            address(p("2001:db8:64::/64"), "10.0.0.5".parse().unwrap()),
            a
        );
        assert!(
            with.iter()
                .any(|n| n.contains(&IpNet::from(std::net::IpAddr::V6(a))))
        );
    }
}
