//! iptables-nft creates nftables tables and base chains on demand (`ip nat`, `ip6 filter`'s
//! FORWARD...) and leaves them behind, empty, when the last rule goes. The first `up` of a
//! namespace records which existed; the last `down` deletes the ones that did not and are empty,
//! in one `nft -f` transaction, so that `nft list ruleset` is as it was.

use std::collections::BTreeSet;

use super::listing::Listing;

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

/// `family table` and `family table chain` lines for the iptables-nft tables that exist.
pub fn names(now: &Listing) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in now.tables.iter().filter(|t| is_iptables_table(&t.id())) {
        let id = t.id();
        out.extend(t.chains.iter().map(|c| format!("{id} {}", c.name)));
        out.insert(id);
    }
    out
}

/// The `nft -f` script that deletes what iptables-nft created since `before` and left empty.
/// `now` lists (with their rules) the tables and chains that may be deleted.
pub fn cleanup(before: &BTreeSet<String>, now: &Listing) -> Option<String> {
    let mut script = String::new();
    let mut tables: Vec<_> = now
        .tables
        .iter()
        .filter(|t| is_iptables_table(&t.id()))
        .collect();
    tables.sort_by_key(|t| t.id());
    for t in tables {
        let id = t.id();
        let mut created: Vec<&String> = t
            .chains
            .iter()
            .filter(|c| c.is_empty() && !before.contains(&format!("{id} {}", c.name)))
            .map(|c| &c.name)
            .collect();
        created.sort();
        let all_gone = created.len() == t.chains.len() && !t.other;
        if all_gone && !before.contains(&id) {
            script.push_str(&format!("delete table {id}\n"));
        } else {
            for c in created {
                script.push_str(&format!("delete chain {id} {c}\n"));
            }
        }
    }
    (!script.is_empty()).then_some(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::listing::RULESET;

    #[test]
    fn reads_the_ruleset() {
        let now = Listing::parse(RULESET);
        let f = now.table("ip filter").unwrap();
        assert!(f.chain("INPUT").unwrap().is_empty());
        assert!(
            !f.chain("FORWARD").unwrap().is_empty(),
            "a drop policy is not empty"
        );
        assert!(!f.chain("OUTPUT").unwrap().is_empty());
        assert!(now.table("inet mine").unwrap().other);
        assert!(names(&now).contains("ip nat POSTROUTING"));
        assert!(!names(&now).iter().any(|n| n.starts_with("inet")));
    }

    #[test]
    fn deletes_only_what_was_created_and_is_empty() {
        let now = Listing::parse(RULESET);
        let before: BTreeSet<String> = ["ip filter", "ip filter OUTPUT", "ip filter FORWARD"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            cleanup(&before, &now).unwrap(),
            "delete chain ip filter INPUT\ndelete table ip nat\n"
        );
        assert_eq!(cleanup(&names(&now), &now), None);
    }
}
