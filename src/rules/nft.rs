//! The native nftables backend: every chain of `ruleset`, for both families, lives in one table
//! of its own, `inet wgfw`, which comes with the first managed interface and goes with the
//! last. Each change is one `nft -f` transaction that (re)builds the interface's chains and the
//! shared ones, and re-points the table's base chains at whatever chains exist.
//!
//! (Not a table per interface: a drop in one table is final, so one interface's default deny
//! would also drop another tunnel's traffic.)

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::listing::{self, Listing};
use super::model::{Chain, Ct, Match, Ports, Rule, Table, Verdict};
use super::names::{ChainId, is_ufw_chain};
use crate::config::types::RateUnit;
use crate::plan::Family;

pub const TABLE: &str = "inet wgfw";

/// The table's base chains: (name, declaration), in the order a packet meets them.
const BASE: &[(&str, &str)] = &[
    (
        "prerouting_raw",
        "type filter hook prerouting priority raw; policy accept;",
    ),
    (
        "forward_mangle",
        "type filter hook forward priority mangle; policy accept;",
    ),
    (
        "postrouting_nat",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "input",
        "type filter hook input priority filter; policy accept;",
    ),
    (
        "forward",
        "type filter hook forward priority filter; policy accept;",
    ),
    (
        "output",
        "type filter hook output priority filter; policy accept;",
    ),
];

/// Whether `name` is one of the table's base chains (which hold only jumps to ours).
pub fn base_chain(name: &str) -> bool {
    BASE.iter().any(|(n, _)| *n == name)
}

fn suffix(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// A chain's name in the table: nft identifiers take letters, digits and `/\-_.`, so the `=`
/// and `+` an interface name may have are spelled out (and `_` doubled, to keep every name
/// distinct).
pub fn chain_name(id: &ChainId, family: Family) -> String {
    let mut out = String::new();
    for c in id.to_string().chars() {
        match c {
            '_' => out.push_str("__"),
            '=' => out.push_str("_e"),
            '+' => out.push_str("_p"),
            c => out.push(c),
        }
    }
    format!("{out}-{}", suffix(family))
}

/// The chain of ours, and its family, that a name in the table stands for.
pub fn chain_of_name(name: &str) -> Option<(ChainId, Family)> {
    let (stem, fam) = name.rsplit_once('-')?;
    let family = match fam {
        "v4" => Family::V4,
        "v6" => Family::V6,
        _ => return None,
    };
    let mut plain = String::new();
    let mut chars = stem.chars();
    while let Some(c) = chars.next() {
        plain.push(match c {
            '_' => match chars.next()? {
                '_' => '_',
                'e' => '=',
                'p' => '+',
                _ => return None,
            },
            c => c,
        });
    }
    Some((plain.parse().ok()?, family))
}

/// The base chain of our table that stands for a built-in chain of iptables.
fn base_for(table: Table, hook: &str) -> Option<&'static str> {
    Some(match (table, hook) {
        (Table::Raw, "PREROUTING") => "prerouting_raw",
        (Table::Mangle, "FORWARD") => "forward_mangle",
        (Table::Nat, "POSTROUTING") => "postrouting_nat",
        (Table::Filter, "INPUT") => "input",
        (Table::Filter, "FORWARD") => "forward",
        (Table::Filter, "OUTPUT") => "output",
        _ => return None,
    })
}

/// Which base chain jumps to a chain of ours, judged by its name: how the chains of other
/// interfaces, known only from the live table, are hooked.
fn base_of_name(name: &str) -> Option<(&'static str, &'static str)> {
    let (id, family) = chain_of_name(name)?;
    let proto = match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    Some((base_for(id.table(), id.hook()?)?, proto))
}

fn ports(p: Ports) -> String {
    match p {
        Ports(0, 0) => "LISTEN-PORT".into(),
        Ports(a, b) if a == b => a.to_string(),
        Ports(a, b) => format!("{a}-{b}"),
    }
}

fn rate(count: u32, unit: RateUnit) -> String {
    match unit {
        RateUnit::Second => format!("{count}/second"),
        RateUnit::Minute => format!("{count}/minute"),
    }
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
                let mut s = Vec::new();
                if let Some(x) = sport {
                    s.push(format!("{p} sport {}", ports(*x)));
                }
                if let Some(x) = dport {
                    s.push(format!("{p} dport {}", ports(*x)));
                }
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
            Match::PerSource {
                name,
                rate: r,
                burst,
                v6_prefix,
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
    });
    if let Some(label) = rule.counts {
        parts.push(format!("comment \"{label}\""));
    }
    parts.join(" ")
}

/// The per-source limit tables (sets) the chains use, with their key types.
fn sets(chains: &[(Family, Chain)]) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for (family, c) in chains {
        for r in &c.rules {
            for m in &r.matches {
                if let Match::PerSource { name, .. } = m {
                    let ty = match family {
                        Family::V4 => "ipv4_addr",
                        Family::V6 => "ipv6_addr",
                    };
                    out.push((name.clone(), ty));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What `nft list table inet wgfw` shows: the chains and sets there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub exists: bool,
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
    /// The table as read.
    pub table: listing::Table,
    /// The listing itself, which `nft -f` takes back to restore the table as it was.
    pub listing: String,
}

impl Live {
    /// Whether both hold the same chains, sets and rules, whatever the counters say.
    pub fn same_rules(&self, other: &Live) -> bool {
        let rules = |l: &Live| -> Vec<(String, Vec<String>)> {
            l.table
                .chains
                .iter()
                .map(|c| {
                    let rs = c.rules.iter().map(|r| without_counter(&r.text)).collect();
                    (c.name.clone(), rs)
                })
                .collect()
        };
        self.exists == other.exists && self.sets == other.sets && rules(self) == rules(other)
    }

    pub fn parse(text: &str) -> Live {
        let table = Listing::parse(text).table(TABLE).cloned();
        Live {
            exists: table.is_some(),
            chains: table
                .iter()
                .flat_map(|t| &t.chains)
                .map(|c| c.name.clone())
                .collect(),
            sets: table.iter().flat_map(|t| t.sets.clone()).collect(),
            table: table.unwrap_or_default(),
            listing: text.to_string(),
        }
    }

    /// The rules of the named chains.
    fn rules_of<'a>(&'a self, chains: &'a [String]) -> impl Iterator<Item = &'a str> {
        self.table
            .chains
            .iter()
            .filter(|c| chains.contains(&c.name))
            .flat_map(|c| c.rules.iter().map(|r| r.text.as_str()))
    }
}

/// The `nft -f` script that makes the table hold `desired` (per family), drops the chains and
/// sets named in `remove` that are there, and points the base chains at every chain of ours
/// that then exists. With nothing left to hold, the table goes.
pub fn transaction(desired: &[(Family, Chain)], remove: &[String], live: &Live) -> Option<String> {
    let mine: BTreeSet<String> = desired.iter().map(|(f, c)| chain_name(&c.id, *f)).collect();
    let wanted_sets = sets(desired);
    let gone_chains: Vec<&String> = live
        .chains
        .iter()
        .filter(|c| remove.contains(c) && !mine.contains(*c))
        .collect();
    let gone_sets: Vec<&String> = live
        .sets
        .iter()
        .filter(|s| remove.contains(s) && !wanted_sets.iter().any(|(n, _)| n == *s))
        .collect();
    // Chains that stay: ours now, and whatever else of the table is not being removed.
    let mut hooked: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut kept: BTreeSet<String> = live
        .chains
        .iter()
        .filter(|c| !remove.contains(c))
        .cloned()
        .collect();
    kept.extend(mine.iter().cloned());
    for name in &kept {
        if let Some((base, proto)) = base_of_name(name) {
            hooked.push((base, proto, name.clone()));
        }
    }
    if hooked.is_empty() {
        return live.exists.then(|| format!("delete table {TABLE}\n"));
    }

    let mut s = format!("add table {TABLE}\n");
    for (name, decl) in BASE {
        let _ = writeln!(s, "add chain {TABLE} {name} {{ {decl} }}");
    }
    for (name, ty) in &wanted_sets {
        // Entries are per source and short-lived: a source idle for two minutes starts afresh.
        let _ = writeln!(
            s,
            "add set {TABLE} {name} {{ type {ty}; flags dynamic, timeout; timeout 2m; }}"
        );
    }
    for (name, _) in BASE {
        let _ = writeln!(s, "flush chain {TABLE} {name}");
    }
    for (family, c) in desired {
        let name = chain_name(&c.id, *family);
        let _ = writeln!(s, "add chain {TABLE} {name}");
        let _ = writeln!(s, "flush chain {TABLE} {name}");
    }
    for name in &gone_chains {
        let _ = writeln!(s, "flush chain {TABLE} {name}");
    }
    for (family, c) in desired {
        let name = chain_name(&c.id, *family);
        for r in &c.rules {
            let _ = writeln!(s, "add rule {TABLE} {name} {}", render_rule(r, *family));
        }
    }
    for (base, _) in BASE {
        for (b, proto, name) in &hooked {
            if b == base {
                let _ = writeln!(
                    s,
                    "add rule {TABLE} {base} meta nfproto {proto} jump {name}"
                );
            }
        }
    }
    for name in &gone_chains {
        let _ = writeln!(s, "delete chain {TABLE} {name}");
    }
    for name in &gone_sets {
        let _ = writeln!(s, "delete set {TABLE} {name}");
    }
    Some(s)
}

/// A rule without its counter's values, which traffic changes.
fn without_counter(rule: &str) -> String {
    match rule.split_once("counter packets ") {
        Some((head, rest)) => {
            let tail = rest
                .split_once(" bytes ")
                .and_then(|(_, b)| b.split_once(' '))
                .map_or("", |(_, t)| t);
            format!("{head}counter {tail}").trim_end().to_string()
        }
        None => rule.to_string(),
    }
}

/// The packets counted by the rules of `chains` that say what they count.
pub fn counted(live: &Live, chains: &[String]) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    for r in live.rules_of(chains) {
        let Some(label) = super::model::COUNTED
            .iter()
            .find(|l| r.contains(&format!("comment \"{l}\"")))
        else {
            continue;
        };
        let packets = r
            .split_once("counter packets ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok());
        out.push((*label, packets.unwrap_or(0)));
    }
    out
}

/// How the live table differs from `desired`, one line per difference. nft prints rules in a
/// form of its own, so chains are compared by presence, rule count and their hook.
pub fn differences(desired: &[(Family, Chain)], live: &Live) -> Vec<String> {
    if !live.exists {
        return vec![format!("table {TABLE} is gone")];
    }
    let mut out = Vec::new();
    for (family, c) in desired {
        let name = chain_name(&c.id, *family);
        match live.table.chain(&name) {
            None => out.push(format!("chain {name} is gone")),
            Some(l) if l.rules.len() != c.rules.len() => out.push(format!(
                "chain {name} holds {} rules, not the {} installed",
                l.rules.len(),
                c.rules.len()
            )),
            Some(_) => {}
        }
        if let Some((base, _)) = base_of_name(&name) {
            let jump = format!("jump {name}");
            let hooked = live
                .table
                .chain(base)
                .is_some_and(|b| b.rules.iter().any(|r| r.text.ends_with(&jump)));
            if !hooked {
                out.push(format!("base chain {base} no longer jumps to {name}"));
            }
        }
    }
    out
}

/// The sets of an interface, named as `rules` names them (`wgfw` + hash + tag): any set in
/// the live table whose hash belongs to this interface cannot be told apart by name alone, so
/// the chains that use them say which: here, the sets the removed chains' rules add to.
pub fn sets_used(live: &Live, chains: &[String]) -> Vec<String> {
    let mut out: Vec<String> = live
        .rules_of(chains)
        .flat_map(str::split_whitespace)
        .filter_map(|w| w.strip_prefix('@').map(String::from))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The chains of our table as `nft list chains` shows them; None when it shows no such table.
/// Enough to tell whether the table is there and what a removal would leave of it, without
/// listing its rules.
pub fn overview_chains(overview: &Listing) -> Option<BTreeSet<String>> {
    let table = overview.table(TABLE)?;
    Some(table.chains.iter().map(|c| c.name.clone()).collect())
}

/// Whether a base chain of another table (a firewall manager's) would drop what we accept:
/// the manager then owns the host's input.
pub fn input_owner(ruleset: &Listing) -> Option<String> {
    for t in &ruleset.tables {
        let id = t.id();
        if id == "inet firewalld" {
            return Some("firewalld's table is present".into());
        }
        for c in &t.chains {
            if is_ufw_chain(&c.name) {
                return Some("ufw's chains are present".into());
            }
            if id != TABLE && c.hook() == Some("input") && c.policy() == Some("drop") {
                return Some(format!("the input chain of table {id} drops by default"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_chains_from_the_overview() {
        let overview = "table inet foreign {\n\tchain c0 {\n\t\ttype filter hook forward priority 10; policy accept;\n\t}\n}\n\
                        table inet wgfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\
                        \tchain WGFW-wg0-IN-4 {\n\t}\n}\n";
        let want: BTreeSet<String> = ["WGFW-wg0-IN-4", "input"].map(String::from).into();
        assert_eq!(overview_chains(&Listing::parse(overview)), Some(want));
        assert_eq!(
            overview_chains(&Listing::parse("table inet foreign {\n}\n")),
            None
        );
        assert_eq!(overview_chains(&Listing::parse("")), None);
    }

    #[test]
    fn counters_do_not_make_rules_differ() {
        let table = |rule: &str| {
            Live::parse(&format!(
                "table inet wgfw {{\n\tchain c {{\n\t\t{rule}\n\t}}\n}}\n"
            ))
        };
        let a = table("iifname \"wg0\" counter packets 3 bytes 180 accept");
        assert!(a.same_rules(&table("iifname \"wg0\" counter packets 0 bytes 0 accept")));
        assert!(!a.same_rules(&table("iifname \"wg1\" counter packets 3 bytes 180 accept")));
        assert!(!a.same_rules(&Live::parse("")));
        assert_eq!(without_counter("counter packets 1 bytes 2"), "counter");
    }

    #[test]
    fn names_are_nft_identifiers_and_distinct() {
        let id = |s: &str| s.parse::<ChainId>().unwrap();
        assert_eq!(chain_name(&id("WGFW-wg0-IN"), Family::V4), "WGFW-wg0-IN-v4");
        assert_eq!(
            chain_name(&id("WGFW-a=b+c_d-IN"), Family::V6),
            "WGFW-a_eb_pc__d-IN-v6"
        );
        assert_ne!(
            chain_name(&id("WGFW-a_e-IN"), Family::V4),
            chain_name(&id("WGFW-a=-IN"), Family::V4)
        );
        for name in ["WGFW-a_eb_pc__d-IN-v6", "WGFW-INPUT-v4", "WGFW-wg0-FWD-v4"] {
            let (c, f) = chain_of_name(name).unwrap();
            assert_eq!(chain_name(&c, f), name);
        }
        assert_eq!(chain_of_name("WGFW-a_x-IN-v4"), None);
        assert_eq!(base_of_name("WGFW-wg0-FWD-v6"), Some(("forward", "ipv6")));
        assert_eq!(base_of_name("WGFW-INPUT-v4"), Some(("input", "ipv4")));
        assert_eq!(base_of_name("WGFW-wg0-IN-v4"), None);
    }

    #[test]
    fn every_hooked_chain_is_found_by_its_name() {
        let plan = |role| {
            let opts = crate::config::cli::Options {
                role: Some(role),
                ..Default::default()
            };
            let conf = "[Interface]\nAddress = 10.6.0.1/24, fd6::1/64\nListenPort = 1\n";
            crate::plan::for_test(conf, &opts, &crate::plan::HostFacts::example()).unwrap()
        };
        for role in [
            crate::config::types::Role::Server,
            crate::config::types::Role::Client,
        ] {
            let p = plan(role);
            for fp in &p.families {
                for c in crate::rules::fresh(&p, fp) {
                    let by_name = base_of_name(&chain_name(&c.id, fp.family)).map(|(b, _)| b);
                    assert_eq!(
                        by_name,
                        c.hook().and_then(|h| base_for(c.table(), h)),
                        "{}",
                        c.id
                    );
                }
            }
        }
    }

    #[test]
    fn reads_the_table_and_whose_sets_are_whose() {
        let listing = "table inet wgfw {\n\tset wgfw0011aabbh {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tmeta nfproto ipv4 jump WGFW-INPUT-v4\n\t}\n\
                       \tchain WGFW-wg0-IN-v4 {\n\t\tudp dport 51820 ct state new update @wgfw0011aabbh { ip saddr limit rate 30/minute } accept\n\t}\n}\n";
        let live = Live::parse(listing);
        assert!(
            live.exists
                && live.chains.contains("WGFW-wg0-IN-v4")
                && live.sets.contains("wgfw0011aabbh")
        );
        assert_eq!(
            sets_used(&live, &["WGFW-wg0-IN-v4".to_string()]),
            vec!["wgfw0011aabbh"]
        );
        assert!(Live::parse("").chains.is_empty());
    }

    #[test]
    fn the_last_interface_takes_the_table_along() {
        let live = Live::parse("table inet wgfw {\n\tchain WGFW-wg0-FWD-v4 {\n\t}\n}\n");
        let remove = vec!["WGFW-wg0-FWD-v4".to_string()];
        assert_eq!(
            transaction(&[], &remove, &live).as_deref(),
            Some("delete table inet wgfw\n")
        );
        assert_eq!(transaction(&[], &remove, &Live::default()), None);
    }

    #[test]
    fn other_managers_owning_input() {
        assert!(input_owner(&Listing::parse("table inet firewalld {\n}\n")).is_some());
        assert!(input_owner(&Listing::parse("table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n")).is_some());
        assert!(input_owner(&Listing::parse("table inet wgfw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n")).is_none());
        assert!(
            input_owner(&Listing::parse(
                "table ip filter {\n\tchain ufw-user-input {\n\t}\n}\n"
            ))
            .is_some()
        );
        assert_eq!(input_owner(&Listing::parse("")), None);
    }
}
