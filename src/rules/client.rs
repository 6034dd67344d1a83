//! The client role's chains: the kill switch. Nothing leaves but through the tunnel, to the
//! peers' endpoints, and the few things a network needs (DHCP, neighbour discovery), plus the
//! LAN with --allow-lan. Everything else is rejected, so that applications fail at once instead
//! of hanging. The rules name the tunnel interface: when it dies, nothing matches them and all
//! is rejected.

use ipnet::IpNet;

use crate::config::types::Proto;
use crate::plan::{Family, FamilyPlan, InputPolicy, Nat, Plan};

use super::model::{Chain, Ct, Match, REJECTED, Verdict, rule};
use super::names::{ChainId, Kind};
use super::parts::{allow_rules, chain, endpoint_rule, lan_ranges, log_rule, mss_chain, udp};

pub(super) fn chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let mut chains = vec![mss_chain(i, fp)];
    if fp.nat != Nat::Off {
        let rules = vec![rule(
            vec![Match::Out(i.to_string()), Match::SrcNotLocal],
            Verdict::Masquerade,
        )];
        chains.push(chain(i, Kind::Nat, rules));
    }
    chains.push(input(plan, fp));
    chains.push(output(plan, fp));
    chains.push(forward(plan, fp));
    chains.push(reject(plan));
    chains
}

fn input(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let wg = || plan.iface.to_string();
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
    rules.extend(allow_rules(&plan.allow));
    chain(&plan.iface, Kind::In, rules)
}

fn output(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let i = &plan.iface;
    let mut rules = vec![
        rule(vec![Match::Out("lo".into())], Verdict::Accept),
        rule(vec![Match::Out(i.to_string())], Verdict::Accept),
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
    rules.push(rule(vec![], Verdict::Jump(ChainId::own(i, Kind::Reject))));
    chain(i, Kind::Out, rules)
}

/// The LAN may use the tunnel; the WAN's neighbours may not.
fn forward(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let i = &plan.iface;
    let wg = || i.to_string();
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
    rules.push(rule(vec![], Verdict::Jump(ChainId::own(i, Kind::Reject))));
    chain(i, Kind::Fwd, rules)
}

fn reject(plan: &Plan) -> Chain {
    let mut rules = Vec::new();
    if plan.log {
        rules.push(log_rule(&plan.iface));
    }
    let tcp = Match::L4 {
        proto: Proto::Tcp,
        sport: None,
        dport: None,
        syn: false,
    };
    rules.push(rule(vec![tcp], Verdict::RejectTcpReset).counted(REJECTED));
    rules.push(rule(vec![], Verdict::RejectProhibited).counted(REJECTED));
    chain(&plan.iface, Kind::Reject, rules)
}
