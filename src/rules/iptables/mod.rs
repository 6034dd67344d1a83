//! iptables/ip6tables: renders the rule model in iptables-save's own canonical form (here),
//! reads what `iptables-save` shows (`live`), and computes the one `iptables-restore
//! --noflush` script per family that makes the live rules hold ours (`script`).

mod live;
mod script;

pub use live::{BUILT_IN, Live, counted};
pub use script::{differences, moved_host_input, render_fresh, transaction};

use std::net::IpAddr;

use super::model::{self, Ct, Match, Ports, Rule, Table, Verdict};
use super::names::ChainId;
use crate::config::types::RateUnit;
use crate::plan::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Nft,
    Legacy,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Nft => "iptables-nft",
            Variant::Legacy => "iptables-legacy",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "iptables-nft" => Some(Variant::Nft),
            "iptables-legacy" => Some(Variant::Legacy),
            _ => None,
        }
    }

    fn program(self, family: Family, what: &str) -> String {
        let ip = match family {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        };
        let v = match self {
            Variant::Nft => "nft",
            Variant::Legacy => "legacy",
        };
        format!("{ip}-{v}-{what}")
    }

    pub fn save(self, family: Family) -> String {
        self.program(family, "save")
    }

    pub fn restore(self, family: Family) -> String {
        self.program(family, "restore")
    }
}

/// A chain with its rules rendered as `iptables-save` prints them after `-A CHAIN `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub id: ChainId,
    /// Where it lives: the id's table, or where a chain is put back as it was, wherever it was
    /// found (an older version kept host input in filter).
    pub table: Table,
    /// The built-in chain that jumps here first, if any: the id's, or where a chain is put
    /// back as it was, wherever it was found.
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

impl Chain {
    pub(super) fn name(&self) -> String {
        self.id.to_string()
    }
}

pub fn render(chains: &[model::Chain], family: Family) -> Vec<Chain> {
    chains
        .iter()
        .map(|c| Chain {
            id: c.id.clone(),
            table: c.table(),
            hook: c.hook(),
            rules: c
                .rules
                .iter()
                .flat_map(expand)
                .map(|r| render_rule(&r, family))
                .collect(),
        })
        .collect()
}

/// iptables has no sets of its own (ipset's live outside the restore transaction): a rule
/// that matches a set of networks, or jumps by source, is one rule per network.
/// (Each rule is built afresh, never cloned whole: a clone would copy all the entries again
/// for every one of them, quadratic in the peers.)
fn expand(rule: &Rule) -> Vec<Rule> {
    let with = |matches: Vec<Match>, verdict: Verdict| Rule {
        matches,
        verdict,
        counts: rule.counts.clone(),
        mark: rule.mark.clone(),
    };
    if let Verdict::BySrc { entries, .. } = &rule.verdict {
        return entries
            .iter()
            .map(|(net, chain)| {
                let mut matches = vec![Match::Src(*net)];
                matches.extend(rule.matches.iter().cloned());
                with(matches, Verdict::Jump(chain.clone()))
            })
            .flat_map(|r| expand(&r))
            .collect();
    }
    let Some(set) = rule.matches.iter().find_map(|m| match m {
        Match::DstIn(set) => Some(set),
        _ => None,
    }) else {
        return vec![rule.clone()];
    };
    set.nets
        .iter()
        .flat_map(|net| {
            let matches = rule
                .matches
                .iter()
                .map(|m| match m {
                    Match::DstIn(_) => Match::Dst(*net),
                    m => m.clone(),
                })
                .collect();
            expand(&with(matches, rule.verdict.clone()))
        })
        .collect()
}

fn ports(p: Ports) -> String {
    p.render(':')
}

/// One rule, in the order iptables-save prints it: addresses, interfaces, protocol, then the
/// other matches as given, then the target. Rendering the canonical form lets a second `up`
/// see that the live rules are already the wanted ones.
pub fn render_rule(rule: &Rule, family: Family) -> String {
    let mut parts: Vec<String> = Vec::new();
    let find = |f: &dyn Fn(&Match) -> Option<String>| {
        rule.matches.iter().filter_map(f).collect::<Vec<_>>()
    };
    parts.extend(find(&|m| match m {
        Match::Src(n) => Some(format!("-s {n}")),
        _ => None,
    }));
    parts.extend(find(&|m| match m {
        Match::Dst(n) => Some(format!("-d {n}")),
        // `render` expands sets; iptables would refuse an empty list, failing closed.
        Match::DstIn(set) => Some(format!(
            "-d {}",
            set.nets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )),
        _ => None,
    }));
    parts.extend(find(&|m| match m {
        Match::In(i) => Some(format!("-i {i}")),
        Match::NotIn(i) => Some(format!("! -i {i}")),
        _ => None,
    }));
    parts.extend(find(&|m| match m {
        Match::Out(i) => Some(format!("-o {i}")),
        Match::NotOut(i) => Some(format!("! -o {i}")),
        _ => None,
    }));
    for m in &rule.matches {
        match m {
            Match::Src(_)
            | Match::Dst(_)
            | Match::DstIn(_)
            | Match::In(_)
            | Match::NotIn(_)
            | Match::Out(_)
            | Match::NotOut(_) => {}
            Match::L4 {
                proto,
                sport,
                dport,
                syn: syn_only,
            } => {
                let p = proto.as_str();
                parts.push(format!("-p {p}"));
                if sport.is_some() || dport.is_some() || *syn_only {
                    parts.push(format!("-m {p}"));
                }
                for (side, p) in [("sport", sport), ("dport", dport)] {
                    parts.extend(p.map(|p| format!("--{side} {}", ports(p))));
                }
                if *syn_only {
                    parts.push("--tcp-flags SYN,RST SYN".into());
                }
            }
            Match::Icmp(t) => parts.push(format!("-p icmp -m icmp --icmp-type {t}")),
            Match::Icmp6(t) => parts.push(format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t}")),
            Match::HopLimit255 => parts.push("-m hl --hl-eq 255".into()),
            Match::Ct(ct) => parts.push(format!(
                "-m conntrack --ctstate {}",
                match ct {
                    Ct::New => "NEW",
                    Ct::Established => "RELATED,ESTABLISHED",
                    Ct::Related => "RELATED",
                    Ct::Invalid => "INVALID",
                }
            )),
            Match::Limit {
                count,
                per: unit,
                burst,
            } => parts.push(format!(
                "-m limit --limit {count}/{} --limit-burst {burst}",
                unit.short()
            )),
            Match::PerSource {
                name,
                rate,
                burst,
                v6_prefix,
                size,
                expire_secs,
            } => {
                parts.push(format!(
                    "-m hashlimit --hashlimit-upto {}/{} --hashlimit-burst {burst} --hashlimit-mode srcip --hashlimit-name {name} --hashlimit-htable-size {} --hashlimit-htable-max {size}",
                    rate.count,
                    rate.unit.short(),
                    super::parts::HASH_BUCKETS,
                ));
                // iptables-save leaves out the expiry it would pick itself: the rate's unit.
                let unit_ms = match rate.unit {
                    RateUnit::Second => 1000,
                    RateUnit::Minute => 60_000,
                };
                let expire_ms = u64::from(*expire_secs) * 1000;
                if expire_ms != unit_ms {
                    parts.push(format!("--hashlimit-htable-expire {expire_ms}"));
                }
                if let Some(prefix) = v6_prefix {
                    parts.push(format!("--hashlimit-srcmask {prefix}"));
                }
            }
            Match::Cap { name, per_second } => parts.push(format!(
                "-m hashlimit --hashlimit-upto {per_second}/sec --hashlimit-burst {per_second} --hashlimit-name {name}"
            )),
            Match::MssAbove(mss) => parts.push(format!("-m tcpmss --mss {}:65535", mss + 1)),
            Match::SrcNotLocal => parts.push("-m addrtype ! --src-type LOCAL".into()),
            Match::DstLocal => parts.push("-m addrtype --dst-type LOCAL".into()),
            Match::NotDnat => parts.push("-m conntrack ! --ctstate DNAT".into()),
            Match::DnatFrom(p) => parts.push(format!(
                "-m conntrack --ctstate DNAT --ctorigdstport {}",
                ports(*p)
            )),
        }
    }
    if let Some(mark) = &rule.mark {
        parts.push(format!("-m comment --comment \"{mark}\""));
    }
    parts.push(match &rule.verdict {
        // The targets iptables spells as one word.
        Verdict::Accept => "-j ACCEPT".into(),
        Verdict::Drop => "-j DROP".into(),
        Verdict::Return => "-j RETURN".into(),
        Verdict::Masquerade => "-j MASQUERADE".into(),
        Verdict::Jump(c) => format!("-j {c}"),
        // Those that take options.
        Verdict::RejectTcpReset => "-j REJECT --reject-with tcp-reset".into(),
        Verdict::RejectProhibited => format!(
            "-j REJECT --reject-with {}",
            match family {
                Family::V4 => "icmp-admin-prohibited",
                Family::V6 => "icmp6-adm-prohibited",
            }
        ),
        Verdict::SetMss(mss) => format!("-j TCPMSS --set-mss {mss}"),
        Verdict::Dnat { to, port } => match (to, port) {
            (IpAddr::V6(a), Some(p)) => format!("-j DNAT --to-destination [{a}]:{p}"),
            (a, Some(p)) => format!("-j DNAT --to-destination {a}:{p}"),
            (a, None) => format!("-j DNAT --to-destination {a}"),
        },
        Verdict::Log(prefix) => format!("-j LOG --log-prefix \"{prefix}\""),
        // `render` expands it into jumps; unexpanded, it fails closed.
        Verdict::BySrc { .. } => "-j DROP".into(),
    });
    parts.join(" ")
}
