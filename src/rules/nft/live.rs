//! What `nft list table inet wgfw` and `nft list chains` show of ours, read through
//! `rules::listing`: chains, sets, rules and their counters.

use std::collections::BTreeSet;

use crate::rules::listing::{self, Listing};
use crate::rules::names::is_ufw_chain;

use super::TABLE;

/// What `nft list table inet wgfw` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The table as read; none where there is no such table.
    pub table: Option<listing::Table>,
    /// The listing itself, which `nft -f` takes back to restore the table as it was.
    pub listing: String,
}

impl Live {
    pub fn exists(&self) -> bool {
        self.table.is_some()
    }

    pub fn chains(&self) -> BTreeSet<String> {
        self.table
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.name.clone())
            .collect()
    }

    pub fn sets(&self) -> BTreeSet<String> {
        self.table.iter().flat_map(|t| t.sets.clone()).collect()
    }

    pub fn maps(&self) -> BTreeSet<String> {
        self.table.iter().flat_map(|t| t.maps.clone()).collect()
    }

    /// One of the table's chains.
    pub fn chain(&self, name: &str) -> Option<&listing::Chain> {
        self.table.as_ref()?.chain(name)
    }

    /// Whether both hold the same chains, sets and rules, whatever the counters say.
    pub fn same_rules(&self, other: &Live) -> bool {
        let rules = |l: &Live| -> Vec<(String, Vec<String>)> {
            l.table
                .iter()
                .flat_map(|t| &t.chains)
                .map(|c| {
                    let rs = c.rules.iter().map(|r| without_counter(&r.text)).collect();
                    (c.name.clone(), rs)
                })
                .collect()
        };
        self.exists() == other.exists()
            && self.sets() == other.sets()
            && self.maps() == other.maps()
            && rules(self) == rules(other)
    }

    pub fn parse(text: &str) -> Live {
        Live {
            table: Listing::parse(text).table(TABLE).cloned(),
            listing: text.to_string(),
        }
    }

    /// The rules of the named chains.
    fn rules_of<'a>(&'a self, chains: &'a [String]) -> impl Iterator<Item = &'a str> {
        self.table
            .iter()
            .flat_map(|t| &t.chains)
            .filter(|c| chains.contains(&c.name))
            .flat_map(|c| c.rules.iter().map(|r| r.text.as_str()))
    }
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

/// The packets counted by the rules of `chains` that say what they count (in their comment).
pub fn counted(live: &Live, chains: &[String]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for r in live.rules_of(chains) {
        let Some((_, rest)) = r.split_once("counter packets ") else {
            continue;
        };
        let Some(label) = r
            .split_once("comment \"")
            .and_then(|(_, c)| c.split_once('"'))
            .map(|(l, _)| l.to_string())
        else {
            continue;
        };
        let packets = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        out.push((label, packets.unwrap_or(0)));
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
    fn reads_the_table_and_whose_sets_are_whose() {
        let listing = "table inet wgfw {\n\tset wgfw0011aabbh {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tmeta nfproto ipv4 jump WGFW-INPUT-v4\n\t}\n\
                       \tchain WGFW-wg0-IN-v4 {\n\t\tudp dport 51820 ct state new update @wgfw0011aabbh { ip saddr limit rate 30/minute } accept\n\t}\n}\n";
        let live = Live::parse(listing);
        assert!(
            live.exists()
                && live.chains().contains("WGFW-wg0-IN-v4")
                && live.sets().contains("wgfw0011aabbh")
        );
        assert_eq!(
            sets_used(&live, &["WGFW-wg0-IN-v4".to_string()]),
            vec!["wgfw0011aabbh"]
        );
        assert!(Live::parse("").chains().is_empty());
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
