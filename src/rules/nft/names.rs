//! How our chains are spelled in the table, and which base chain jumps to each.

use crate::config::types::IfaceName;
use crate::plan::Family;
use crate::rules::model::Table;
use crate::rules::names::{ChainId, PREFIX, SetId};

pub const TABLE: &str = "inet wgfw";

/// The table's base chains: (name, declaration), in the order a packet meets them.
pub(super) const BASE: &[(&str, &str)] = &[
    (
        "prerouting_raw",
        "type filter hook prerouting priority raw; policy accept;",
    ),
    (
        "prerouting_nat",
        "type nat hook prerouting priority dstnat; policy accept;",
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

/// Base chains declared only while a chain of ours hangs from them: a NAT hook in prerouting
/// would cost every new connection a lookup, for hosts that forward no port.
pub(super) const ON_DEMAND: &[&str] = &["prerouting_nat"];

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
    spell(&id.to_string(), family)
}

/// A set's or map's name in the table, spelled as chains are.
pub fn set_name(id: &SetId, family: Family) -> String {
    spell(&id.to_string(), family)
}

/// How the names of the interface's chains, sets and maps begin in the table.
pub(super) fn iface_stem(iface: &IfaceName) -> String {
    escaped(&format!("{PREFIX}{iface}-"))
}

fn spell(name: &str, family: Family) -> String {
    format!("{}-{}", escaped(name), suffix(family))
}

fn escaped(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            '=' => out.push_str("_e"),
            '+' => out.push_str("_p"),
            c => out.push(c),
        }
    }
    out
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
        (Table::Nat, "PREROUTING") => "prerouting_nat",
        (Table::Mangle, "FORWARD") => "forward_mangle",
        (Table::Nat, "POSTROUTING") => "postrouting_nat",
        // Host input sits in iptables' mangle so that its accepts are not final over filter's
        // rules; an accept in a table of nftables is final for no other table anyway, so here
        // it stays where it always was.
        (Table::Mangle | Table::Filter, "INPUT") => "input",
        (Table::Filter, "FORWARD") => "forward",
        (Table::Filter, "OUTPUT") => "output",
        _ => return None,
    })
}

/// Which base chain jumps to a chain of ours, judged by its name: how the chains of other
/// interfaces, known only from the live table, are hooked.
pub(super) fn base_of_name(name: &str) -> Option<(&'static str, &'static str)> {
    let (id, family) = chain_of_name(name)?;
    let proto = match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    Some((base_for(id.table(), id.hook()?)?, proto))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
