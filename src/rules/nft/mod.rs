//! Native nftables: every chain of ours, for both families, lives in one table of its own,
//! `inet wgfw`, which comes with the first managed interface and goes with the last. Each
//! change is one `nft -f` transaction that (re)builds the interface's chains and the shared
//! ones, and re-points the table's base chains at whatever chains exist. Here: rendering
//! rules; `names`, how our chains are spelled in the table; `live`, reading it back;
//! `script`, the transaction.
//!
//! (Not a table per interface: a drop in one table is final, so one interface's default deny
//! would also drop another tunnel's traffic.)

mod live;
mod names;
mod script;
mod shape;

pub use live::{Live, counted, input_owner, overview_chains, sets_used};
pub use names::{TABLE, base_chain, chain_name, chain_of_name, set_name};
pub use script::{differences, transaction};
pub use shape::{Shape, drift, element_change};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::model::{AddrSet, Chain, Ct, Match, Ports, Rule, Verdict};
use super::names::{ChainId, SetId};
use crate::config::types::RateUnit;
use crate::plan::Family;

fn ports(p: Ports) -> String {
    p.render('-')
}

fn rate(count: u32, unit: RateUnit) -> String {
    format!("{count}/{}", unit.word())
}

/// One rule in nft syntax.
pub fn render_rule(rule: &Rule, family: Family) -> String {
    let ip = match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    };
    let mut parts: Vec<String> = Vec::new();
    for m in &rule.matches {
        parts.push(match m {
            Match::In(i) => format!("iifname \"{i}\""),
            Match::NotIn(i) => format!("iifname != \"{i}\""),
            Match::Out(i) => format!("oifname \"{i}\""),
            Match::NotOut(i) => format!("oifname != \"{i}\""),
            Match::Src(n) => format!("{ip} saddr {n}"),
            Match::Dst(n) => format!("{ip} daddr {n}"),
            Match::L4 {
                proto,
                sport,
                dport,
                syn,
            } => {
                let p = proto.as_str();
                let mut s: Vec<String> = [("sport", sport), ("dport", dport)]
                    .into_iter()
                    .filter_map(|(side, x)| Some(format!("{p} {side} {}", ports((*x)?))))
                    .collect();
                if *syn {
                    s.push("tcp flags & (syn|rst) == syn".into());
                }
                if s.is_empty() {
                    s.push(format!("meta l4proto {p}"));
                }
                s.join(" ")
            }
            Match::Icmp(t) => format!("icmp type {t}"),
            Match::Icmp6(t) => format!("icmpv6 type {t}"),
            Match::HopLimit255 => "ip6 hoplimit 255".into(),
            Match::Ct(ct) => format!(
                "ct state {}",
                match ct {
                    Ct::New => "new",
                    Ct::Established => "established,related",
                    Ct::Related => "related",
                    Ct::Invalid => "invalid",
                }
            ),
            Match::Limit { count, per, burst } => {
                format!("limit rate {} burst {burst} packets", rate(*count, *per))
            }
            Match::Cap { per_second, .. } => {
                format!("limit rate {per_second}/second burst {per_second} packets")
            }
            Match::PerSource {
                name,
                rate: r,
                burst,
                v6_prefix,
                ..
            } => {
                let key = match v6_prefix {
                    Some(64) => "ip6 saddr & ffff:ffff:ffff:ffff::".to_string(),
                    _ => format!("{ip} saddr"),
                };
                format!(
                    "update @{name} {{ {key} limit rate {} burst {burst} packets }}",
                    rate(r.count, r.unit)
                )
            }
            Match::MssAbove(mss) => format!("tcp option maxseg size > {mss}"),
            Match::SrcNotLocal => "fib saddr type != local".into(),
            Match::DstLocal => "fib daddr type local".into(),
            Match::NotDnat => "ct status ! dnat".into(),
            Match::DnatFrom(p) => format!("ct status dnat ct original proto-dst {}", ports(*p)),
            Match::DstIn(set) => format!("{ip} daddr @{}", set_name(&set.id, family)),
        });
    }
    // Rules that `status` reports carry a counter and say what they count.
    if rule.counts.is_some() {
        parts.push("counter".into());
    }
    parts.push(match &rule.verdict {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {}", chain_name(c, family)),
        Verdict::Log(prefix) => format!("log prefix \"{prefix}\""),
        Verdict::RejectTcpReset => "reject with tcp reset".into(),
        Verdict::RejectProhibited => match family {
            Family::V4 => "reject with icmp type admin-prohibited".into(),
            Family::V6 => "reject with icmpv6 type admin-prohibited".into(),
        },
        Verdict::Masquerade => "masquerade".into(),
        Verdict::SetMss(mss) => format!("tcp option maxseg size set {mss}"),
        Verdict::Dnat { to, port } => match (to, port) {
            (IpAddr::V6(a), Some(p)) => format!("dnat ip6 to [{a}]:{p}"),
            (a, Some(p)) => format!("dnat {ip} to {a}:{p}"),
            (a, None) => format!("dnat {ip} to {a}"),
        },
        Verdict::BySrc { id, .. } => format!("{ip} saddr vmap @{}", set_name(id, family)),
    });
    if let Some(label) = rule.mark.as_deref().or(rule.counts.as_deref()) {
        parts.push(format!("comment \"{label}\""));
    }
    parts.join(" ")
}

/// A rule as nft gets it: a set or map of networks is split into its single addresses and
/// the rest. nft looks an address up in a hash set, and adds or deletes one element there,
/// without reading the others; an interval set costs more on both counts, and before a change
/// nft reads the elements of every interval set of the table (at 10,000 peers: 120 ms, where a
/// hash set's element takes 5). So the peers' addresses go to `...-A` hash sets, and only
/// networks (a site behind a peer) to interval sets. Disjoint, so the order does not matter.
pub(super) fn render_split(rule: &Rule, family: Family) -> Vec<String> {
    let with = |matches: Vec<Match>, verdict: Verdict| Rule {
        matches,
        verdict,
        counts: rule.counts.clone(),
        mark: rule.mark.clone(),
    };
    // Rendering names the set, so the parts are rendered without their elements.
    if let Verdict::BySrc { id, entries } = &rule.verdict {
        return parts(id, entries.iter().map(|(n, _)| n))
            .into_iter()
            .map(|(id, _)| {
                let entries = Vec::new();
                render_rule(
                    &with(rule.matches.clone(), Verdict::BySrc { id, entries }),
                    family,
                )
            })
            .collect();
    }
    let Some(set) = rule.matches.iter().find_map(|m| match m {
        Match::DstIn(set) => Some(set),
        _ => None,
    }) else {
        return vec![render_rule(rule, family)];
    };
    parts(&set.id, set.nets.iter())
        .into_iter()
        .map(|(id, _)| {
            let matches = rule
                .matches
                .iter()
                .map(|m| match m {
                    Match::DstIn(_) => Match::DstIn(AddrSet {
                        id: id.clone(),
                        nets: Vec::new(),
                    }),
                    m => m.clone(),
                })
                .collect();
            render_rule(&with(matches, rule.verdict.clone()), family)
        })
        .collect()
}

/// The parts of a set of networks that are not empty, each with the indexes of its networks:
/// its single addresses (`...-A`), then the rest.
fn parts<'a>(id: &SetId, nets: impl Iterator<Item = &'a IpNet>) -> Vec<(SetId, Vec<usize>)> {
    let (mut hosts, mut others) = (Vec::new(), Vec::new());
    for (i, n) in nets.enumerate() {
        if n.prefix_len() == n.max_prefix_len() {
            hosts.push(i);
        } else {
            others.push(i);
        }
    }
    [
        (SetId::Addresses(Box::new(id.clone())), hosts),
        (id.clone(), others),
    ]
    .into_iter()
    .filter(|(_, members)| !members.is_empty())
    .collect()
}

/// A set or map the chains use, as the transaction declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SetDecl {
    pub name: String,
    /// `set` or `map`.
    pub kind: &'static str,
    /// What goes inside the braces of `add set`.
    pub decl: String,
    /// The elements, which each change writes afresh; `None`: the kernel fills it (the
    /// per-source limits), and a change leaves it as it is.
    pub elements: Option<Vec<String>>,
}

/// The sets and maps the chains use: per-source limit tables, and the peers' addresses.
fn sets(chains: &[(Family, Chain)]) -> Vec<SetDecl> {
    let mut out = Vec::new();
    for (family, c) in chains {
        let ty = match family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        // The jumps' chain names, spelled once per chain, not once per element.
        let mut names: BTreeMap<&ChainId, String> = BTreeMap::new();
        for r in &c.rules {
            for m in &r.matches {
                match m {
                    // Entries are per source, and forgotten once a source's bucket would be
                    // full again anyway (`rules::parts::per_source`).
                    Match::PerSource {
                        name,
                        size,
                        expire_secs,
                        ..
                    } => out.push(SetDecl {
                        name: name.clone(),
                        kind: "set",
                        decl: format!(
                            "type {ty}; size {size}; flags dynamic, timeout; timeout {expire_secs}s;"
                        ),
                        elements: None,
                    }),
                    Match::DstIn(set) => {
                        for (id, members) in parts(&set.id, set.nets.iter()) {
                            out.push(SetDecl {
                                name: set_name(&id, *family),
                                kind: "set",
                                decl: format!("type {ty};{}", flags(&id)),
                                elements: Some(
                                    members.iter().map(|i| key(&id, &set.nets[*i])).collect(),
                                ),
                            });
                        }
                    }
                    _ => {}
                }
            }
            if let Verdict::BySrc { id, entries } = &r.verdict {
                for (id, members) in parts(id, entries.iter().map(|(n, _)| n)) {
                    let elements = members
                        .iter()
                        .map(|i| {
                            let (n, c) = &entries[*i];
                            let chain = names.entry(c).or_insert_with(|| chain_name(c, *family));
                            let mut e = key(&id, n);
                            e.push_str(" : jump ");
                            e.push_str(chain);
                            e
                        })
                        .collect();
                    out.push(SetDecl {
                        name: set_name(&id, *family),
                        kind: "map",
                        decl: format!("type {ty} : verdict;{}", flags(&id)),
                        elements: Some(elements),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The flags of a set: single addresses need none, networks are intervals.
fn flags(id: &SetId) -> &'static str {
    match id {
        SetId::Addresses(_) => "",
        _ => " flags interval;",
    }
}

/// An element as its set takes it: a single address bare.
fn key(id: &SetId, net: &IpNet) -> String {
    // Room for an address or network and a jump: one allocation for most of 30,000 elements.
    let mut s = String::with_capacity(64);
    let _ = match id {
        SetId::Addresses(_) => write!(s, "{}", net.addr()),
        _ => write!(s, "{net}"),
    };
    s
}
