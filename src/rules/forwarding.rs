//! Other programs' rules that forward: what tells `down` that somebody else relies on the
//! forwarding switch (`plan::reliance`) when no interface does.
//!
//! What counts, in a chain a forward hook (or a nat postrouting hook) reaches, outside our
//! table, chains and marked rules:
//! - an accept that names the input interface (`-i eth1`, `iifname "docker0"`), other than
//!   `lo` and the hook's own tunnels: somebody forwards what arrives there. Accepts of any
//!   interface (ufw's ICMP and conntrack rules, firewalld's zone defaults) say nothing of
//!   intent, and do not count;
//! - a masquerade or SNAT: somebody translates traffic it forwards.
//!
//! Pure: `system::reliance` reads the listings.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::Family;
use crate::rules::listing::Listing;
use crate::rules::names::PREFIX;

/// What a rule does, as far as forwarding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    /// Accepts what came in on a named interface.
    Accepts,
    Translates,
}

/// One table as a graph: chains, which hook starts where, and each rule's text.
#[derive(Default)]
struct Graph<'a> {
    /// Chain name to its rules.
    chains: BTreeMap<&'a str, Vec<&'a str>>,
    /// Chains a forward hook enters, and chains a nat postrouting hook enters.
    forward: Vec<&'a str>,
    postrouting: Vec<&'a str>,
}

/// The longest part of a rule a reason quotes.
const QUOTED: usize = 100;

/// The nft listing's forwarding rules of other tools, per family, as reasons. `skip` are the
/// interfaces whose accepts are the hook's business (its tunnels).
pub fn in_listing(
    listing: &Listing,
    own_table: &str,
    skip: &[&str],
) -> BTreeMap<Family, Vec<String>> {
    let mut out: BTreeMap<Family, Vec<String>> = BTreeMap::new();
    for t in &listing.tables {
        let id = t.id();
        let families: &[Family] = match t.family.as_str() {
            _ if id == own_table => continue,
            "ip" => &[Family::V4],
            "ip6" => &[Family::V6],
            "inet" => &Family::BOTH,
            _ => continue,
        };
        let mut g = Graph::default();
        for c in &t.chains {
            g.chains
                .insert(&c.name, c.rules.iter().map(|r| r.text.as_str()).collect());
            match c.base.as_ref() {
                Some(b) if b.hook == "forward" => g.forward.push(&c.name),
                Some(b) if b.hook == "postrouting" && b.decl.starts_with("type nat") => {
                    g.postrouting.push(&c.name)
                }
                _ => {}
            }
        }
        if let Some(why) = g.first(skip, nft_sign, nft_jump) {
            for f in families {
                out.entry(*f).or_default().push(format!("table {id} {why}"));
            }
        }
    }
    out
}

/// The same of an `iptables-save` (or `ip6tables-save`) of one family: reasons.
pub fn in_iptables_save(text: &str, skip: &[&str]) -> Vec<String> {
    let mut tables: BTreeMap<&str, Graph> = BTreeMap::new();
    let mut table = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.trim();
        } else if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("");
            let g = tables.entry(table).or_default();
            g.chains.entry(name).or_default();
            match (table, name) {
                ("filter", "FORWARD") => g.forward.push(name),
                ("nat", "POSTROUTING") => g.postrouting.push(name),
                _ => {}
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let (chain, rest) = rule.split_once(' ').unwrap_or((rule, ""));
            if let Some(g) = tables.get_mut(table) {
                g.chains.entry(chain).or_default().push(rest);
            }
        }
    }
    tables
        .iter()
        .filter_map(|(name, g)| {
            let why = g.first(skip, ipt_sign, ipt_jump)?;
            Some(format!("iptables table {name} {why}"))
        })
        .collect()
}

impl<'a> Graph<'a> {
    /// The first rule, in a chain the hooks reach, that forwards for somebody else: as
    /// `forwards: RULE` or `translates: RULE`.
    fn first(
        &self,
        skip: &[&str],
        sign: fn(&str, &[&str]) -> Option<Sign>,
        jump: fn(&str) -> Option<&str>,
    ) -> Option<String> {
        for (starts, wanted) in [
            (&self.forward, Sign::Accepts),
            (&self.postrouting, Sign::Translates),
        ] {
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            let mut todo: Vec<&str> = starts.clone();
            while let Some(c) = todo.pop() {
                if c.starts_with(PREFIX) || !seen.insert(c) {
                    continue;
                }
                for rule in self.chains.get(c).into_iter().flatten() {
                    if rule.contains("\"wgfw:") {
                        continue;
                    }
                    if sign(rule, skip) == Some(wanted) {
                        let verb = match wanted {
                            Sign::Accepts => "forwards",
                            Sign::Translates => "translates",
                        };
                        return Some(format!("{verb} (chain {c}: {})", quoted(rule)));
                    }
                    if let Some(next) = jump(rule) {
                        todo.push(next);
                    }
                }
            }
        }
        None
    }
}

fn quoted(rule: &str) -> String {
    let clean: String = rule
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(QUOTED) {
        Some((i, _)) => format!("{}...", &clean[..i]),
        None => clean,
    }
}

/// An nft rule's sign: `accept` with `iifname "X"` (or `iif`), X not skipped; `masquerade`
/// or `snat`.
fn nft_sign(rule: &str, skip: &[&str]) -> Option<Sign> {
    let toks: Vec<&str> = rule.split_whitespace().collect();
    if toks.iter().any(|t| *t == "masquerade" || *t == "snat") {
        return Some(Sign::Translates);
    }
    if !toks.contains(&"accept") {
        return None;
    }
    let named = toks.windows(2).any(|w| {
        matches!(w[0], "iifname" | "iif")
            && w[1] != "!="
            && !skip_name(w[1].trim_matches('"'), skip)
    });
    named.then_some(Sign::Accepts)
}

fn nft_jump(rule: &str) -> Option<&str> {
    let mut toks = rule.split_whitespace();
    while let Some(t) = toks.next() {
        if t == "jump" || t == "goto" {
            return toks.next();
        }
    }
    None
}

/// An iptables rule's sign: `-j ACCEPT` with `-i X` (not negated), X not skipped;
/// `-j MASQUERADE` or `-j SNAT`.
fn ipt_sign(rule: &str, skip: &[&str]) -> Option<Sign> {
    let toks: Vec<&str> = rule.split_whitespace().collect();
    let target = toks
        .windows(2)
        .find(|w| w[0] == "-j")
        .map(|w| w[1])
        .unwrap_or("");
    match target {
        "MASQUERADE" | "SNAT" => Some(Sign::Translates),
        "ACCEPT" => {
            let named = toks.windows(2).enumerate().any(|(i, w)| {
                w[0] == "-i" && (i == 0 || toks[i - 1] != "!") && !skip_name(w[1], skip)
            });
            named.then_some(Sign::Accepts)
        }
        _ => None,
    }
}

fn ipt_jump(rule: &str) -> Option<&str> {
    let toks: Vec<&str> = rule.split_whitespace().collect();
    toks.windows(2)
        .find(|w| w[0] == "-j" || w[0] == "-g")
        .map(|w| w[1])
}

fn skip_name(name: &str, skip: &[&str]) -> bool {
    name == "lo" || skip.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_NFT: &str = "table ip filter {\n\
        \tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\
        \t\tcounter packets 0 bytes 0 jump DOCKER-USER\n\
        \t\tcounter packets 0 bytes 0 jump DOCKER-ISOLATION-STAGE-1\n\
        \t\toifname \"docker0\" ct state related,established counter packets 0 bytes 0 accept\n\
        \t\tiifname \"docker0\" oifname != \"docker0\" counter packets 0 bytes 0 accept\n\t}\n\
        \tchain DOCKER-USER {\n\t\tcounter packets 0 bytes 0 return\n\t}\n}\n";

    #[test]
    fn dockers_accepts_forward() {
        let l = Listing::parse(DOCKER_NFT);
        let got = in_listing(&l, "inet wgfw", &["wg0"]);
        assert_eq!(
            got.get(&Family::V4).map(Vec::as_slice),
            Some(
                &["table ip filter forwards (chain FORWARD: iifname \"docker0\" oifname != \"docker0\" counter packets 0 bytes 0 accept)".to_string()][..]
            )
        );
        assert!(!got.contains_key(&Family::V6));
    }

    #[test]
    fn our_rules_and_accepts_of_any_interface_do_not() {
        let text = "table inet wgfw {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname \"eth1\" accept\n\t}\n}\n\
            table inet ufwlike {\n\tchain fwd {\n\t\ttype filter hook forward priority filter; policy drop;\n\
            \t\tct state established,related accept\n\t\ticmp type echo-request accept\n\
            \t\tiifname \"wg0\" accept\n\t\tiifname \"lo\" accept\n\t\tiifname != \"eth0\" accept\n\
            \t\tiifname \"eth0\" accept comment \"wgfw:wg0\"\n\t\tjump WGFW-x\n\t}\n\
            \tchain WGFW-x {\n\t\tiifname \"eth2\" accept\n\t}\n\
            \tchain unreached {\n\t\tiifname \"eth3\" accept\n\t}\n}\n";
        let got = in_listing(&Listing::parse(text), "inet wgfw", &["wg0"]);
        assert!(got.is_empty(), "{got:?}");
        let nat = "table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
            \t\tjump LIBVIRT_PRT\n\t}\n\tchain LIBVIRT_PRT {\n\t\tip saddr 192.168.122.0/24 masquerade\n\t}\n}\n";
        let got = in_listing(&Listing::parse(nat), "inet wgfw", &[]);
        assert_eq!(
            got[&Family::V4],
            ["table ip nat translates (chain LIBVIRT_PRT: ip saddr 192.168.122.0/24 masquerade)"]
        );
    }

    #[test]
    fn iptables_save_of_a_router() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:ufw-before-forward - [0:0]\n:ufw-user-forward - [0:0]\n\
            -A FORWARD -j ufw-before-forward\n-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A ufw-before-forward -p icmp -j ACCEPT\n-A ufw-before-forward -j ufw-user-forward\nCOMMIT\n";
        assert!(in_iptables_save(save, &["wg0"]).is_empty());
        let routed = save.replace(
            "COMMIT",
            "-A ufw-user-forward -i eth1 -o eth0 -j ACCEPT\nCOMMIT",
        );
        assert_eq!(
            in_iptables_save(&routed, &["wg0"]),
            ["iptables table filter forwards (chain ufw-user-forward: -i eth1 -o eth0 -j ACCEPT)"]
        );
        let negated = save.replace("COMMIT", "-A FORWARD ! -i eth1 -j ACCEPT\nCOMMIT");
        assert!(in_iptables_save(&negated, &[]).is_empty());
        let nat = "*nat\n:POSTROUTING ACCEPT [0:0]\n:WGFW-wg0-NAT - [0:0]\n-A POSTROUTING -j WGFW-wg0-NAT\n\
            -A WGFW-wg0-NAT -o eth0 -j MASQUERADE\nCOMMIT\n";
        assert!(in_iptables_save(nat, &[]).is_empty());
        let theirs = nat.replace(
            "COMMIT",
            "-A POSTROUTING -s 10.8.0.0/24 -o eth0 -j MASQUERADE\nCOMMIT",
        );
        assert_eq!(in_iptables_save(&theirs, &[]).len(), 1);
    }
}
