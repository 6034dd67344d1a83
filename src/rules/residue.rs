//! iptables-nft creates nftables tables and base chains on demand (`ip nat`, `ip6 filter`'s
//! FORWARD...) and leaves them behind, empty, when the last rule goes. The first `up` of a
//! namespace records which existed; the last `down` deletes the ones that did not and are empty,
//! in one `nft -f` transaction, so that `nft list ruleset` is as it was.

use std::collections::{BTreeMap, BTreeSet};

/// Tables iptables-nft manages: `family name`.
const IPTABLES_TABLES: &[&str] = &[
    "ip raw",
    "ip mangle",
    "ip nat",
    "ip filter",
    "ip6 raw",
    "ip6 mangle",
    "ip6 nat",
    "ip6 filter",
];

/// Whether `family name` is a table iptables-nft manages.
pub fn is_iptables_table(table: &str) -> bool {
    IPTABLES_TABLES.contains(&table)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// `family name` of each table, with its chains.
    pub tables: BTreeMap<String, TableInv>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableInv {
    /// Chain name to whether it is empty: no rules, and no policy but accept.
    pub chains: BTreeMap<String, bool>,
    /// Sets, maps, flowtables, objects: anything but chains makes a table not ours to delete.
    pub other: bool,
    /// Base chains' policies, as nft prints them (`accept`, `drop`).
    pub policies: BTreeMap<String, String>,
}

impl Inventory {
    /// Reads `nft list ruleset`, or `nft list chains` (no rules: every chain looks empty).
    pub fn parse(text: &str) -> Inventory {
        let mut inv = Inventory::default();
        let mut table: Option<String> = None;
        let mut chain: Option<String> = None;
        let mut depth = 0usize;
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if depth == 0 {
                if let Some(rest) = l.strip_prefix("table ") {
                    let name = rest.trim_end_matches('{').trim().to_string();
                    inv.tables.entry(name.clone()).or_default();
                    table = Some(name);
                }
            } else if depth == 1 {
                if let (Some(t), Some(rest)) = (&table, l.strip_prefix("chain ")) {
                    let name = rest.trim_end_matches('{').trim().to_string();
                    inv.tables
                        .get_mut(t)
                        .expect("entered above")
                        .chains
                        .insert(name.clone(), true);
                    chain = Some(name);
                } else if let Some(t) = &table
                    && l != "}"
                {
                    inv.tables.get_mut(t).expect("entered above").other = true;
                }
            } else if let (2, Some(t), Some(c)) = (depth, &table, &chain) {
                if let Some((_, p)) = l
                    .strip_prefix("type ")
                    .and_then(|d| d.split_once("policy "))
                {
                    let policy = p.trim_end_matches(';').trim().to_string();
                    let inv = inv.tables.get_mut(t).expect("entered above");
                    inv.policies.insert(c.clone(), policy);
                }
                let is_rule = l != "}" && !(l.starts_with("type ") && l.contains("policy accept"));
                if is_rule {
                    *inv.tables
                        .get_mut(t)
                        .expect("entered above")
                        .chains
                        .get_mut(c)
                        .expect("entered") = false;
                }
            }
            depth += l.matches('{').count();
            depth = depth.saturating_sub(l.matches('}').count());
            if depth <= 1 {
                chain = None;
            }
        }
        inv
    }

    /// `family table` and `family table chain` lines for the iptables-nft tables that exist.
    pub fn names(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (t, inv) in self
            .tables
            .iter()
            .filter(|(t, _)| IPTABLES_TABLES.contains(&t.as_str()))
        {
            out.insert(t.clone());
            out.extend(inv.chains.keys().map(|c| format!("{t} {c}")));
        }
        out
    }
}

/// The `nft -f` script that deletes what iptables-nft created since `before` and left empty.
pub fn cleanup(before: &BTreeSet<String>, now: &Inventory) -> Option<String> {
    let mut script = String::new();
    for (t, inv) in now
        .tables
        .iter()
        .filter(|(t, _)| IPTABLES_TABLES.contains(&t.as_str()))
    {
        let created: Vec<&String> = inv
            .chains
            .iter()
            .filter(|(c, empty)| **empty && !before.contains(&format!("{t} {c}")))
            .map(|(c, _)| c)
            .collect();
        let all_gone = created.len() == inv.chains.len() && !inv.other;
        if all_gone && !before.contains(t) {
            script.push_str(&format!("delete table {t}\n"));
        } else {
            for c in created {
                script.push_str(&format!("delete chain {t} {c}\n"));
            }
        }
    }
    (!script.is_empty()).then_some(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULESET: &str = "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n\n\
        \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n\n\
        \tchain OUTPUT {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tcounter packets 0 bytes 0 accept\n\t}\n}\n\
        # Warning: table ip nat is managed by iptables-nft, do not touch!\n\
        table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n\
        table inet mine {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\n";

    #[test]
    fn reads_the_ruleset() {
        let inv = Inventory::parse(RULESET);
        let f = &inv.tables["ip filter"];
        assert!(f.chains["INPUT"]);
        assert!(!f.chains["FORWARD"], "a drop policy is not empty");
        assert!(!f.chains["OUTPUT"]);
        assert!(inv.tables["inet mine"].other);
        assert!(inv.names().contains("ip nat POSTROUTING"));
        assert!(!inv.names().iter().any(|n| n.starts_with("inet")));
    }

    #[test]
    fn deletes_only_what_was_created_and_is_empty() {
        let now = Inventory::parse(RULESET);
        let before: BTreeSet<String> = ["ip filter", "ip filter OUTPUT", "ip filter FORWARD"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            cleanup(&before, &now).unwrap(),
            "delete chain ip filter INPUT\ndelete table ip nat\n"
        );
        assert_eq!(cleanup(&now.names(), &now), None);
    }
}
