//! The one `nft -f` transaction of a change, and how the live table differs from the plan.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::plan::Family;
use crate::rules::model::Chain;

use super::live::Live;
use super::names::{BASE, ON_DEMAND, TABLE, base_of_name, chain_name};
use super::{render_split, sets};

/// The `nft -f` script that makes the table hold `desired` (per family), drops the chains and
/// sets named in `remove` that are there, and points the base chains at every chain of ours
/// that then exists. With nothing left to hold, the table goes.
pub fn transaction(desired: &[(Family, Chain)], remove: &[String], live: &Live) -> Option<String> {
    let mine: BTreeSet<String> = desired.iter().map(|(f, c)| chain_name(&c.id, *f)).collect();
    let wanted_sets = sets(desired);
    let (chains, sets_now) = (live.chains(), live.sets());
    let gone_chains: Vec<&String> = chains
        .iter()
        .filter(|c| remove.contains(c) && !mine.contains(*c))
        .collect();
    let maps_now = live.maps();
    let gone_sets: Vec<(&str, &String)> = sets_now
        .iter()
        .map(|s| ("set", s))
        .chain(maps_now.iter().map(|m| ("map", m)))
        .filter(|(_, s)| remove.contains(s) && !wanted_sets.iter().any(|w| &w.name == *s))
        .collect();
    // Chains that stay: ours now, and whatever else of the table is not being removed.
    let mut hooked: Vec<(&'static str, &'static str, String)> = Vec::new();
    let mut kept: BTreeSet<String> = chains
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
        return live.exists().then(|| format!("delete table {TABLE}\n"));
    }

    // The base chains: all but those on demand, which come and go with what hangs from them.
    let needed =
        |name: &str| !ON_DEMAND.contains(&name) || hooked.iter().any(|(b, _, _)| *b == name);
    let bases: Vec<&(&str, &str)> = BASE.iter().filter(|(name, _)| needed(name)).collect();
    let unused: Vec<&str> = BASE
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !needed(name) && chains.contains(*name))
        .collect();

    let mut s = format!("add table {TABLE}\n");
    for (name, decl) in &bases {
        let _ = writeln!(s, "add chain {TABLE} {name} {{ {decl} }}");
    }
    // Maps are declared once the chains they jump to are (nft 1.0.6 cannot resolve a jump
    // to a chain added after the map, even in one transaction).
    let declare = |s: &mut String, set: &super::SetDecl| {
        let _ = writeln!(
            s,
            "add {} {TABLE} {} {{ {} }}",
            set.kind, set.name, set.decl
        );
    };
    for set in wanted_sets.iter().filter(|w| w.kind == "set") {
        declare(&mut s, set);
    }
    for name in bases.iter().map(|(n, _)| *n).chain(unused.iter().copied()) {
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
    // Elements name the chains they jump to, which exist by now.
    for set in &wanted_sets {
        if set.kind == "map" {
            declare(&mut s, set);
        }
        let Some(elements) = &set.elements else {
            continue;
        };
        let _ = writeln!(s, "flush {} {TABLE} {}", set.kind, set.name);
        if !elements.is_empty() {
            let _ = writeln!(
                s,
                "add element {TABLE} {} {{ {} }}",
                set.name,
                elements.join(", ")
            );
        }
    }
    for (family, c) in desired {
        let name = chain_name(&c.id, *family);
        for r in c.rules.iter().flat_map(|r| render_split(r, *family)) {
            let _ = writeln!(s, "add rule {TABLE} {name} {r}");
        }
    }
    for (base, _) in &bases {
        for (b, proto, name) in &hooked {
            if b == base {
                let _ = writeln!(
                    s,
                    "add rule {TABLE} {base} meta nfproto {proto} jump {name}"
                );
            }
        }
    }
    // Sets first: a map's elements may jump to a chain that goes.
    for (kind, name) in &gone_sets {
        let _ = writeln!(s, "delete {kind} {TABLE} {name}");
    }
    for name in &gone_chains {
        let _ = writeln!(s, "delete chain {TABLE} {name}");
    }
    for name in &unused {
        let _ = writeln!(s, "delete chain {TABLE} {name}");
    }
    Some(s)
}

/// How the live table differs from `desired`, one line per difference. nft prints rules in a
/// form of its own, so chains are compared by presence, rule count and their hook.
pub fn differences(desired: &[(Family, Chain)], live: &Live) -> Vec<String> {
    if !live.exists() {
        return vec![format!("table {TABLE} is gone")];
    }
    let mut out = Vec::new();
    for (family, c) in desired {
        let name = chain_name(&c.id, *family);
        match live.chain(&name) {
            None => out.push(format!("chain {name} is gone")),
            Some(l) if l.rules.len() != installed(c, *family) => out.push(format!(
                "chain {name} holds {} rules, not the {} installed",
                l.rules.len(),
                installed(c, *family)
            )),
            Some(_) => {}
        }
        if let Some((base, _)) = base_of_name(&name) {
            let jump = format!("jump {name}");
            let hooked = live
                .chain(base)
                .is_some_and(|b| b.rules.iter().any(|r| r.text.ends_with(&jump)));
            if !hooked {
                out.push(format!("base chain {base} no longer jumps to {name}"));
            }
        }
    }
    out
}

/// How many nft rules a chain of the model becomes.
fn installed(c: &Chain, family: Family) -> usize {
    c.rules.iter().map(|r| render_split(r, family).len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_nat_prerouting_chain_lives_while_a_forward_does() {
        let id = |s: &str| s.parse::<crate::rules::ChainId>().unwrap();
        let chain = |name: &str| Chain {
            id: id(name),
            rules: Vec::new(),
        };
        let declared = "add chain inet wgfw prerouting_nat {";
        // A forward's DNAT chain brings the base chain along.
        let want = [(Family::V4, chain("WGFW-wg0-DNAT"))];
        let s = transaction(&want, &[], &Live::default()).unwrap();
        assert!(s.contains(declared), "{s}");
        assert!(
            s.contains("add rule inet wgfw prerouting_nat meta nfproto ipv4 jump WGFW-wg0-DNAT-v4")
        );
        // Without any, a fresh table has none.
        let want = [(Family::V4, chain("WGFW-wg0-FWD"))];
        let s = transaction(&want, &[], &Live::default()).unwrap();
        assert!(!s.contains("prerouting_nat"), "{s}");
        // And the last forward takes it away, while other chains stay.
        let live = Live::parse(
            "table inet wgfw {\n\tchain prerouting_nat {\n\t}\n\tchain WGFW-wg0-DNAT-v4 {\n\t}\n\tchain WGFW-wg0-FWD-v4 {\n\t}\n}\n",
        );
        let s = transaction(&want, &["WGFW-wg0-DNAT-v4".to_string()], &live).unwrap();
        assert!(!s.contains(declared), "{s}");
        let tail: Vec<&str> = s.lines().rev().take(2).collect();
        assert_eq!(
            tail,
            [
                "delete chain inet wgfw prerouting_nat",
                "delete chain inet wgfw WGFW-wg0-DNAT-v4"
            ]
        );
    }
}
