//! Per-peer policy as chains: each `[peer]`/`[group]` section gets a chain for what its peers
//! send through this host (`P1`, `P2`...) and, where it allows less than all of this host, one
//! for what they send to it (`H1`...). The interface's FWD and IN reach them through one lookup
//! by source address (`SetId::Peers`, `SetId::Hosts`), so a packet's cost does not grow with
//! the number of peers; peers without a section never enter them.

use std::collections::{BTreeMap, HashSet};

use ipnet::IpNet;

use crate::config::types::RateUnit;
use crate::plan::{Family, FamilyPlan, Group, Plan, Reach};

use super::model::{AddrSet, Chain, DROPPED, FORWARDED, Match, Rule, SSH_BLOCKED, Verdict, rule};
use super::names::{ChainId, Kind, SetId, Side};
use super::parts::{allow_rules, icmp, local_ranges, log_limit, tcp_dport};

/// What a peer's SSH to the LAN hosts uses: the port of this host's SSH, else the usual one.
fn ssh_port(plan: &Plan) -> u16 {
    plan.ssh_port.map_or(22, |p| p.get())
}

/// The tunnel sources of this family by group, for the groups that have any.
fn by_group(fp: &FamilyPlan) -> BTreeMap<usize, Vec<IpNet>> {
    let mut out: BTreeMap<usize, Vec<IpNet>> = BTreeMap::new();
    for (net, g) in &fp.owned {
        out.entry(*g).or_default().push(*net);
    }
    out
}

/// The interface's LAN networks and every group's, in this family: where masquerading goes.
pub(super) fn all_lans(plan: &Plan, fp: &FamilyPlan) -> Vec<IpNet> {
    with_lans(fp, plan.groups.iter().flat_map(|g| &g.lan))
}

/// The interface's LAN networks and `more` of this family that none of them holds already.
/// A network is held when one of its own prefixes is in the list: at most 129 lookups each,
/// not a scan of the list (20,000 sections' LANs took seconds that way).
fn with_lans<'a>(fp: &FamilyPlan, more: impl IntoIterator<Item = &'a IpNet>) -> Vec<IpNet> {
    let mut lans = fp.lans.clone();
    let mut held: HashSet<IpNet> = lans.iter().map(IpNet::trunc).collect();
    for n in more {
        let inside = (0..=n.prefix_len())
            .any(|p| IpNet::new(n.addr(), p).is_ok_and(|up| held.contains(&up.trunc())));
        if Family::of(n) == fp.family && !inside {
            lans.push(*n);
            held.insert(n.trunc());
        }
    }
    lans
}

/// The FWD rule that sends peers with a section to their group's chain.
pub(super) fn forward_dispatch(plan: &Plan, fp: &FamilyPlan) -> Option<Rule> {
    dispatch(
        plan,
        fp,
        Side::Fwd,
        SetId::Peers(plan.iface.clone()),
        |_| true,
    )
}

/// The IN rule that sends peers whose section allows less than all of this host to their
/// group's host chain.
pub(super) fn host_dispatch(plan: &Plan, fp: &FamilyPlan) -> Option<Rule> {
    let id = SetId::Hosts(plan.iface.clone());
    dispatch(plan, fp, Side::In, id, Group::restricts_host)
}

/// One lookup by source address, from the tunnel to the chains of the groups `wanted` picks.
fn dispatch(
    plan: &Plan,
    fp: &FamilyPlan,
    side: Side,
    id: SetId,
    wanted: fn(&Group) -> bool,
) -> Option<Rule> {
    let entries: Vec<(IpNet, ChainId)> = fp
        .owned
        .iter()
        .filter(|(_, g)| wanted(&plan.groups[*g]))
        .map(|(n, g)| (*n, ChainId::group(&plan.iface, *g, side)))
        .collect();
    (!entries.is_empty()).then(|| {
        rule(
            vec![Match::In(plan.iface.to_string())],
            Verdict::BySrc { id, entries },
        )
    })
}

/// The groups' chains of one family, and the NET chain their internet goes through.
pub(super) fn chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let sources = by_group(fp);
    let mut chains = Vec::new();
    for n in sources.keys() {
        let g = &plan.groups[*n];
        chains.push(forward(plan, fp, *n, g, &sources));
        if g.restricts_host() {
            chains.push(host(plan, fp, *n, g));
        }
    }
    if fp.wan.is_some() && sources.keys().any(|n| plan.groups[*n].internet) {
        // The internet, yes; the networks around this host, no (anti-pivot).
        let mut rules: Vec<Rule> = local_ranges(fp)
            .into_iter()
            .map(|r| rule(vec![Match::Dst(r)], Verdict::Return))
            .collect();
        rules.push(rule(vec![], Verdict::Accept).counted(FORWARDED));
        chains.push(Chain {
            id: ChainId::own(&plan.iface, Kind::Net),
            rules,
        });
    }
    chains
}

/// What the group's peers may send through this host; the rest is logged under its name and
/// dropped.
fn forward(
    plan: &Plan,
    fp: &FamilyPlan,
    n: usize,
    g: &Group,
    sources: &BTreeMap<usize, Vec<IpNet>>,
) -> Chain {
    let wg = plan.iface.to_string();
    let mut rules = Vec::new();
    match &g.reach {
        Reach::None => {}
        Reach::All => rules.push(rule(vec![Match::Out(wg.clone())], Verdict::Accept)),
        Reach::Groups(targets) => {
            for t in targets {
                let nets = sources.get(t).cloned().unwrap_or_default();
                let set = AddrSet {
                    id: SetId::Group(plan.iface.clone(), *t),
                    nets,
                };
                rules.push(rule(
                    vec![Match::Out(wg.clone()), Match::DstIn(set)],
                    Verdict::Accept,
                ));
            }
        }
    }
    let lans: Vec<IpNet> = g
        .lan
        .iter()
        .filter(|l| Family::of(l) == fp.family)
        .copied()
        .collect();
    if g.admin {
        for lan in with_lans(fp, &lans) {
            rules.push(rule(
                vec![
                    Match::Dst(lan),
                    Match::NotOut(wg.clone()),
                    tcp_dport(ssh_port(plan)),
                ],
                Verdict::Accept,
            ));
        }
    }
    // Not back into the tunnel: a LAN network that holds the tunnel's must not open the peers.
    for lan in &lans {
        rules.push(rule(
            vec![Match::Dst(*lan), Match::NotOut(wg.clone())],
            Verdict::Accept,
        ));
    }
    if let (true, Some(wan)) = (g.internet, &fp.wan) {
        rules.push(rule(
            vec![Match::Out(wan.to_string())],
            Verdict::Jump(ChainId::own(&plan.iface, Kind::Net)),
        ));
    }
    rules.extend(tail(plan, g));
    Chain {
        id: ChainId::group(&plan.iface, n, Side::Fwd),
        rules,
    }
}

/// What the group's peers may use of this host, when that is less than all of it.
fn host(plan: &Plan, fp: &FamilyPlan, n: usize, g: &Group) -> Chain {
    let mut rules = Vec::new();
    let ssh = plan.ssh_port.map(|p| tcp_dport(p.get()));
    match &g.host {
        None => {
            // All of this host but SSH.
            if let Some(ssh) = ssh {
                if plan.log {
                    rules.push(rule(vec![ssh.clone(), log_limit()], log(plan, g)));
                }
                rules.push(rule(vec![ssh], Verdict::Drop).counted(SSH_BLOCKED));
            }
            rules.push(rule(vec![], Verdict::Accept));
        }
        Some(services) => {
            if let (true, Some(ssh)) = (g.ssh, ssh) {
                rules.push(rule(vec![ssh], Verdict::Accept));
            }
            rules.extend(allow_rules(services));
            // Errors keep connections working; pings are limited as the shared chain limits them.
            let (errors, echo): (&[u8], u8) = match fp.family {
                Family::V4 => (&[3, 11, 12], 8),
                Family::V6 => (&[1, 2, 3, 4], 128),
            };
            for t in errors {
                rules.push(rule(vec![icmp(fp.family, *t)], Verdict::Accept));
            }
            let ping = Match::Limit {
                count: 10,
                per: RateUnit::Second,
                burst: 20,
            };
            rules.push(rule(vec![icmp(fp.family, echo), ping], Verdict::Accept));
            rules.extend(tail(plan, g));
        }
    }
    Chain {
        id: ChainId::group(&plan.iface, n, Side::In),
        rules,
    }
}

/// The group's log line: its name, so that the log says whose packet it was.
fn log(plan: &Plan, g: &Group) -> Verdict {
    // A log prefix holds 29 characters.
    let mut prefix = format!("wgfw-{}/{}", plan.iface, g.name);
    prefix.truncate(27);
    Verdict::Log(format!("{prefix}: "))
}

fn tail(plan: &Plan, g: &Group) -> Vec<Rule> {
    let mut rules = Vec::new();
    if plan.log {
        rules.push(rule(vec![log_limit()], log(plan, g)));
    }
    rules.push(rule(vec![], Verdict::Drop).counted(DROPPED));
    rules
}
