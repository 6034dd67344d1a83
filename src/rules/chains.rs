//! Which chains an interface gets, built from its plan: the shared input chain, and the whole
//! set for one family. The roles' own chains are in `server` and `client`, built from the
//! pieces in `parts`. Pure: a plan goes in, chains come out.

use ipnet::IpNet;

use crate::config::types::{IfaceName, RateUnit, Role};
use crate::plan::{Family, FamilyPlan, InputPolicy, Plan};

use super::model::{Chain, Ct, DROPPED, Match, Verdict, rule};
use super::names::{ChainId, Kind};
use super::parts::{icmp, log_limit, udp};

/// One interface's chains for one family.
pub fn iface_chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    match plan.role {
        Role::Server => super::server::chains(plan, fp),
        Role::Client => super::client::chains(plan, fp),
    }
}

/// One managed interface as the shared chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub iface: IfaceName,
    pub policy: InputPolicy,
    pub log: bool,
}

impl Member {
    /// The plan's interface in the shared chain of one of its families.
    pub fn of(plan: &Plan, fp: &FamilyPlan) -> Member {
        Member {
            iface: plan.iface.clone(),
            policy: plan.tail_policy(fp),
            log: plan.log,
        }
    }
}

/// The shared input chain for the interfaces managed in one family (none: no chain).
pub fn shared_chains(family: Family, members: &[Member]) -> Vec<Chain> {
    if members.is_empty() {
        return Vec::new();
    }
    let loopback: IpNet = match family {
        Family::V4 => "127.0.0.0/8",
        Family::V6 => "::1/128",
    }
    .parse()
    .expect("literal");
    let mut rules = vec![
        // Loopback addresses belong to lo: a packet for them from anywhere else is never ours
        // to accept (with route_localnet, a peer could reach a service bound to 127.0.0.1).
        rule(
            vec![
                Match::NotIn("lo".into()),
                Match::Dst(loopback),
                Match::NotDnat,
            ],
            Verdict::Drop,
        ),
        rule(vec![Match::In("lo".into())], Verdict::Accept),
        rule(vec![Match::Ct(Ct::Established)], Verdict::Accept),
        rule(vec![Match::Ct(Ct::Invalid)], Verdict::Drop),
    ];
    rules.extend(
        members
            .iter()
            .map(|m| rule(vec![], Verdict::Jump(ChainId::own(&m.iface, Kind::In)))),
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
        id: ChainId::SharedInput,
        rules,
    }]
}

/// The chains of one interface and family together with the shared chain, as on a host where
/// it is the only managed interface: what `plan` shows.
pub fn fresh(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    desired(plan, fp.family, &[])
}

/// The chains of `plan` for one family, with the shared ones as they are with `others`, the
/// other managed interfaces, in it.
pub fn desired(plan: &Plan, family: Family, others: &[Member]) -> Vec<Chain> {
    let Some(fp) = plan.families.iter().find(|f| f.family == family) else {
        return Vec::new();
    };
    let mut m = others.to_vec();
    m.push(Member::of(plan, fp));
    let mut chains = shared_chains(family, &m);
    chains.extend(iface_chains(plan, fp));
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `ChainId::hooked` (what `down` assumes) names exactly the chains the plans hook.
    #[test]
    fn assumed_hooks_are_the_hooks_plans_use() {
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
        let hooks = ChainId::hooked(&"wg0".parse().unwrap(), true);
        let mut hooked = 0;
        for p in &plans {
            for fp in &p.families {
                for c in fresh(p, fp) {
                    assert_eq!(hooks.contains(&c.id), c.hook().is_some(), "{}", c.id);
                    hooked += usize::from(c.hook().is_some());
                }
            }
        }
        assert!(hooked >= 8, "the plans exercise the hooks ({hooked})");
    }

    fn chain<'a>(chains: &'a [Chain], suffix: &str) -> &'a Chain {
        chains
            .iter()
            .find(|c| c.id.to_string() == format!("WGFW-wg0-{suffix}"))
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
            Verdict::Jump("WGFW-wg0-REJECT".parse().unwrap())
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
}
