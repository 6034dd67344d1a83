//! The server role's chains: anti-spoofing, MSS clamping, NAT, host input (WireGuard with a
//! per-source limit, SSH behind a brute-force limit, `--allow`), forwarding (the anti-pivot
//! kill switch) and the interface's log-and-drop.

use crate::config::types::Proto;
use crate::plan::{FamilyPlan, InputPolicy, Plan};

use super::model::{
    Chain, Ct, DROPPED, FORWARDED, HANDSHAKES, Match, Ports, RATE_LIMITED, Rule, SSH_ACCEPTED,
    SSH_BLOCKED, Verdict, rule,
};
use super::names::{ChainId, Kind};
use super::parts::{
    SSH_BURST, SSH_LIMIT, allow_rules, chain, limited, local_ranges, log_rule, mss_chain, tcp_dport,
};

pub(super) fn chains(plan: &Plan, fp: &FamilyPlan) -> Vec<Chain> {
    let i = &plan.iface;
    let mut chains = Vec::new();
    if fp.anti_spoofed().next().is_some() {
        chains.push(anti_spoofing(plan, fp));
    }
    chains.push(mss_chain(i, fp));
    chains.extend(super::forwards::dnat(plan, fp));
    if let Some(nat) = nat(plan, fp) {
        chains.push(nat);
    }
    chains.push(input(plan, fp));
    chains.push(forward(plan, fp));
    chains.extend(super::groups::chains(plan, fp));
    // The same log-and-drop for host input and for forwarding, one in each table.
    for kind in [Kind::InDrop, Kind::Drop] {
        let mut rules = Vec::new();
        if plan.log {
            rules.push(log_rule(i));
        }
        rules.push(rule(vec![], Verdict::Drop).counted(DROPPED));
        chains.push(chain(i, kind, rules));
    }
    chains
}

/// Tunnel sources that arrive on any other interface are spoofed.
fn anti_spoofing(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let mut rules = vec![
        rule(vec![Match::In(plan.iface.to_string())], Verdict::Return),
        rule(vec![Match::In("lo".into())], Verdict::Return),
    ];
    rules.extend(
        fp.anti_spoofed()
            .map(|n| rule(vec![Match::Src(*n)], Verdict::Drop)),
    );
    chain(&plan.iface, Kind::Pre, rules)
}

/// Peers leave masqueraded, so the internet and the LAN hosts need no route back; traffic
/// between peers never is. Port forwards arrive masqueraded, unless they keep the source.
fn nat(plan: &Plan, fp: &FamilyPlan) -> Option<Chain> {
    let mut rules = Vec::new();
    let lans = super::groups::all_lans(plan, fp);
    let internet = fp.internet || plan.groups.iter().any(|g| g.internet);
    for n in &fp.masqueraded() {
        if let (true, Some(wan)) = (internet, &fp.wan) {
            rules.push(rule(
                vec![Match::Src(*n), Match::Out(wan.to_string())],
                Verdict::Masquerade,
            ));
        }
        rules.extend(lans.iter().map(|lan| {
            rule(
                vec![
                    Match::Src(*n),
                    Match::Dst(*lan),
                    Match::NotOut(plan.iface.to_string()),
                ],
                Verdict::Masquerade,
            )
        }));
    }
    rules.extend(super::forwards::masquerades(plan, fp));
    (!rules.is_empty()).then(|| chain(&plan.iface, Kind::Nat, rules))
}

fn input(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let i = &plan.iface;
    let drop = Verdict::Jump(ChainId::own(i, Kind::InDrop));
    let mut rules = Vec::new();
    let port = Match::L4 {
        proto: Proto::Udp,
        sport: None,
        // Planned for display without the live interface, the port is not known yet.
        dport: Some(Ports::one(plan.port.map_or(0, |p| p.get()))),
        syn: false,
    };
    let new = Match::Ct(Ct::New);
    let limit = limited(
        i,
        "h",
        fp.family,
        plan.handshake_limit,
        plan.handshake_burst,
    );
    let mut accept = vec![port.clone(), new.clone()];
    accept.extend(limit);
    rules.push(rule(accept, Verdict::Accept).counted(HANDSHAKES));
    rules.push(rule(vec![port, new.clone()], drop.clone()).counted(RATE_LIMITED));
    rules.extend(super::groups::host_dispatch(plan, fp));
    rules.push(rule(vec![Match::In(i.to_string())], Verdict::Accept));
    if let (Some(ssh), false) = (plan.ssh_port, fp.policy == InputPolicy::Defer) {
        match &fp.admin {
            // From anywhere: behind the brute-force limit.
            None => {
                let mut m = vec![tcp_dport(ssh.get()), new.clone()];
                m.extend(limited(i, "s", fp.family, SSH_LIMIT, SSH_BURST));
                rules.push(rule(m, Verdict::Accept).counted(SSH_ACCEPTED));
            }
            // The admin networks are trusted: no table that a flood could fill stands
            // between them and this host.
            Some(nets) => rules.extend(nets.iter().map(|n| {
                let m = vec![Match::Src(*n), tcp_dport(ssh.get()), new.clone()];
                rule(m, Verdict::Accept).counted(SSH_ACCEPTED)
            })),
        }
        rules.push(rule(vec![tcp_dport(ssh.get()), new.clone()], drop).counted(SSH_BLOCKED));
    }
    rules.extend(allow_rules(&plan.allow));
    chain(i, Kind::In, rules)
}

fn forward(plan: &Plan, fp: &FamilyPlan) -> Chain {
    let i = &plan.iface;
    let wg = || i.to_string();
    let drop = Verdict::Jump(ChainId::own(i, Kind::Drop));
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
    ];
    // Port forwards, before any chain that judges the peers.
    rules.extend(super::forwards::accepts(plan, fp));
    // Peers with a section go to their group's chain, which decides.
    rules.extend(super::groups::forward_dispatch(plan, fp));
    rules.extend([
        // Peers are isolated from each other unless --peer-to-peer.
        rule(vec![Match::In(wg()), Match::Out(wg())], peers),
    ]);
    for lan in &fp.lans {
        rules.push(rule(
            vec![Match::Dst(*lan), Match::In(wg())],
            Verdict::Accept,
        ));
    }
    rules.extend(lan_sources(fp, &wg(), &drop));
    // Anti-pivot: the internet, yes; the networks around this host, no.
    rules.extend(
        local_ranges(fp)
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
    chain(i, Kind::Fwd, rules)
}

/// The LAN hosts' connections to the peers, accepted only from the interface that routes each
/// part of the LAN networks back: a LAN source from anywhere else (the WAN, with a loose
/// rp_filter or over IPv6) is forged. A part that another interface routes than the larger
/// part after it is dropped after its own accept, so that the larger one's does not take it.
fn lan_sources(fp: &FamilyPlan, wg: &str, drop: &Verdict) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (i, (part, dev)) in fp.lan_ways.iter().enumerate() {
        let (src, out) = (Match::Src(*part), Match::Out(wg.into()));
        let from = vec![src.clone(), Match::In(dev.to_string()), out.clone()];
        rules.push(rule(from, Verdict::Accept));
        let later = &fp.lan_ways[i + 1..];
        if later.iter().any(|(n, d)| n.contains(part) && d != dev) {
            rules.push(rule(vec![src, out], drop.clone()));
        }
    }
    rules
}
