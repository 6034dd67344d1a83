//! What `iptables-save` (or the nftables overview, or the kernel's legacy tables) shows of one
//! family: chains, policies, and the rules of the chains we may touch.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::types::IfaceName;
use crate::plan::Family;
use crate::rules::listing::Listing;
use crate::rules::model::Table;
use crate::rules::names::{ChainId, PREFIX, is_ufw_chain};

/// What `iptables-save` shows of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Every chain, user-defined or built-in, per table.
    pub chains: BTreeSet<(Table, String)>,
    /// Built-in chains' policies.
    pub policies: BTreeMap<(Table, String), String>,
    /// The rules, in order, as `iptables-save` prints them after `-A CHAIN `, of the chains we
    /// may touch: the built-in chains and ours, plus any rule that jumps to ours. Other
    /// chains' rules are only counted: a Kubernetes host has tens of thousands.
    pub rules: BTreeMap<(Table, String), Vec<String>>,
    /// Whether some other chain has rules (`rules` does not hold them).
    pub other_rules: bool,
}

/// The built-in chains our chains are hooked from, in the order a packet meets them.
pub const BUILT_IN: &[&str] = &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

impl Live {
    pub fn parse(text: &str) -> Live {
        let mut live = Live::default();
        let mut table = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = Table::parse(name.trim());
            } else if let (Some(t), Some(decl)) = (table, line.strip_prefix(':')) {
                let mut parts = decl.split_whitespace();
                if let (Some(name), Some(policy)) = (parts.next(), parts.next()) {
                    live.chains.insert((t, name.to_string()));
                    if policy != "-" {
                        live.policies
                            .insert((t, name.to_string()), policy.to_string());
                    }
                }
            } else if let (Some(t), Some(rule)) = (table, line.strip_prefix("-A ")) {
                let (chain, rest) = rule.split_once(' ').unwrap_or((rule, ""));
                if BUILT_IN.contains(&chain)
                    || chain.starts_with(PREFIX)
                    || rest.contains(&format!("-j {PREFIX}"))
                {
                    live.rules
                        .entry((t, chain.to_string()))
                        .or_default()
                        .push(rest.to_string());
                } else {
                    live.other_rules = true;
                }
            }
        }
        live
    }

    /// What the nftables overview (`nft list chains`) shows of one family's iptables-nft
    /// tables: every chain and the built-in chains' policies, but no rules. Reading it costs
    /// the same at any host size, where `iptables-nft-save` translates every rule (140 ms at
    /// 20,000). Enough where no chain of ours exists yet, or to remove ours (`assume_jumps`).
    pub fn from_overview(overview: &Listing, family: Family) -> Live {
        let nft_family = match family {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        };
        let mut live = Live::default();
        for table in overview.tables.iter().filter(|t| t.family == nft_family) {
            let Some(t) = Table::parse(&table.name) else {
                continue;
            };
            for c in &table.chains {
                let name = c.name.trim_matches('"').to_string();
                if let Some(p) = c.policy() {
                    live.policies
                        .insert((t, name.clone()), p.to_ascii_uppercase());
                }
                live.chains.insert((t, name));
            }
        }
        live
    }

    /// The given chains, in the tables a record says `up` installed them: no policies, no
    /// rules.
    pub fn of_chains(chains: &[(Table, ChainId)]) -> Live {
        Live {
            chains: chains.iter().map(|(t, c)| (*t, c.to_string())).collect(),
            ..Live::default()
        }
    }

    /// Takes it that each of `hooks` (table, built-in chain, ours) whose chain exists is jumped
    /// to once, as `up` put it, from the table that holds it (an older version kept host input
    /// in filter): what `down` then removes without reading the rules. Where that is not so,
    /// the restore fails whole and the caller reads the rules after all.
    pub fn assume_jumps(&mut self, hooked: &[ChainId]) {
        for id in hooked {
            let Some(hook) = id.hook() else { continue };
            let name = id.to_string();
            let tables: Vec<Table> = Table::ALL
                .into_iter()
                .filter(|t| self.has_chain(*t, &name))
                .collect();
            for table in tables {
                self.rules
                    .entry((table, hook.to_string()))
                    .or_default()
                    .push(format!("-j {id}"));
            }
        }
    }

    /// Whether some other program made a chain of its own here.
    pub fn has_foreign_chains(&self) -> bool {
        self.chains
            .iter()
            .any(|(_, c)| !c.starts_with(PREFIX) && !BUILT_IN.contains(&c.as_str()))
    }

    /// Whether any chain of ours exists.
    pub fn has_own_chains(&self) -> bool {
        self.chains.iter().any(|(_, c)| c.starts_with(PREFIX))
    }

    pub fn has_chain(&self, table: Table, name: &str) -> bool {
        self.chains.contains(&(table, name.to_string()))
    }

    /// Every chain of ours the interface owns, live or not: those it may own whatever its
    /// settings, its groups' chains found here, and (with `shared`) the shared input chain.
    pub fn ids_of(&self, iface: &IfaceName, shared: bool) -> Vec<ChainId> {
        let mut ids = if shared {
            ChainId::all_with_shared(iface)
        } else {
            ChainId::all_of(iface)
        };
        for (_, name) in &self.chains {
            if let Ok(id) = name.parse::<ChainId>()
                && id.iface() == Some(iface)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    pub fn has_id(&self, id: &ChainId) -> bool {
        self.has_chain(id.table(), &id.to_string())
    }

    /// The rules of one of our chains.
    pub fn rules_of_id(&self, id: &ChainId) -> &[String] {
        self.rules_of(id.table(), &id.to_string())
    }

    pub fn rules_of(&self, table: Table, chain: &str) -> &[String] {
        self.rules
            .get(&(table, chain.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Why another firewall manager owns the host's input, if one does: ufw's chains are
    /// here, or the INPUT chain's policy is not ACCEPT.
    pub fn input_owner(&self) -> Option<String> {
        if self.chains.iter().any(|(_, c)| is_ufw_chain(c)) {
            return Some("ufw's chains are present".into());
        }
        match self.policies.get(&(Table::Filter, "INPUT".to_string())) {
            Some(p) if p != "ACCEPT" => Some(format!("the INPUT chain's policy is {p}")),
            _ => None,
        }
    }

    /// Whether anything but wgfw's own chains has rules (a host that already uses this backend).
    pub fn has_foreign_rules(&self) -> bool {
        self.other_rules
            || self.rules.iter().any(|((_, chain), rules)| {
                !chain.starts_with(PREFIX)
                    && rules.iter().any(|r| !r.contains(&format!("-j {PREFIX}")))
            })
    }
}

/// `iptables-save -c`: every chain's rules with the packets they matched.
pub fn counted(text: &str) -> BTreeMap<(Table, String), Vec<(String, u64)>> {
    let mut out: BTreeMap<(Table, String), Vec<(String, u64)>> = BTreeMap::new();
    let mut table = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = Table::parse(name.trim());
        } else if let (Some(t), Some(rest)) = (table, line.strip_prefix('[')) {
            let Some((counts, rule)) = rest.split_once("] -A ") else {
                continue;
            };
            let packets = counts
                .split(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let (chain, rule) = rule.split_once(' ').unwrap_or((rule, ""));
            out.entry((t, chain.to_string()))
                .or_default()
                .push((rule.to_string(), packets));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overview of a host with Docker- and ufw-like chains, a DROP policy and our chains,
    /// read against what `iptables-nft-save` showed of the same host at the same moment.
    #[test]
    fn the_nft_overview_shows_what_the_save_shows_but_rules() {
        let overview = &Listing::parse(include_str!("../../../tests/fixtures/overview.nft"));
        let saves = [
            (
                Family::V4,
                include_str!("../../../tests/fixtures/overview.v4.save"),
            ),
            (
                Family::V6,
                include_str!("../../../tests/fixtures/overview.v6.save"),
            ),
        ];
        for (family, save) in saves {
            let (light, full) = (Live::from_overview(overview, family), Live::parse(save));
            // iptables-nft-save shows every built-in chain of a table; nftables holds (and
            // hooks) only those in use, and one that is not there accepts.
            let user = |l: &Live| -> BTreeSet<(Table, String)> {
                l.chains
                    .iter()
                    .filter(|(_, c)| !BUILT_IN.contains(&c.as_str()))
                    .cloned()
                    .collect()
            };
            assert_eq!(user(&light), user(&full), "{family}");
            assert!(light.chains.is_subset(&full.chains), "{family}");
            for (key, policy) in &full.policies {
                let seen = light.policies.get(key).map_or("ACCEPT", String::as_str);
                assert_eq!(seen, policy, "{family} {key:?}");
            }
            assert!(light.has_own_chains() && light.rules.is_empty());
            // Docker's chains with rules (v4), ufw's empty one (v6): both count as in use.
            assert!(light.has_foreign_chains(), "{family}");
            assert!(
                !Live::parse("*filter\n:INPUT ACCEPT [0:0]\n:WGFW-INPUT - [0:0]\nCOMMIT\n")
                    .has_foreign_chains()
            );
        }
        assert_eq!(
            Live::from_overview(overview, Family::V4).policies[&(Table::Filter, "FORWARD".into())],
            "DROP"
        );
    }
    #[test]
    fn input_owners_under_iptables() {
        assert_eq!(
            Live::parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").input_owner(),
            None
        );
        assert!(
            Live::parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n")
                .input_owner()
                .unwrap()
                .contains("DROP")
        );
        let ufw = Live::parse("*filter\n:INPUT ACCEPT [0:0]\n:ufw-user-input - [0:0]\nCOMMIT\n");
        assert!(ufw.input_owner().is_some());
    }
    #[test]
    fn reads_counters() {
        let c = counted(
            "*filter\n:INPUT ACCEPT [0:0]\n[12:960] -A WGFW-wg0-IN -p udp -m udp --dport 1 -j ACCEPT\nCOMMIT\n",
        );
        assert_eq!(
            c[&(Table::Filter, "WGFW-wg0-IN".to_string())],
            vec![("-p udp -m udp --dport 1 -j ACCEPT".to_string(), 12)]
        );
    }
    #[test]
    fn parses_iptables_save() {
        let live = Live::parse(
            "# Generated\n*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [1:2]\n:WGFW-INPUT - [0:0]\n\
             -A INPUT -j WGFW-INPUT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
        );
        assert!(live.has_chain(Table::Filter, "WGFW-INPUT"));
        assert_eq!(live.policies[&(Table::Filter, "INPUT".to_string())], "DROP");
        assert_eq!(live.rules_of(Table::Filter, "INPUT").len(), 2);
        assert!(live.has_foreign_rules());
        assert!(
            !Live::parse("*filter\n:WGFW-INPUT - [0:0]\n-A INPUT -j WGFW-INPUT\nCOMMIT\n")
                .has_foreign_rules()
        );
    }
    #[test]
    fn keeps_only_the_rules_it_may_touch() {
        // Another manager's chain: its rules are counted, not kept, except a jump to ours.
        let live = Live::parse(
            "*filter\n:FORWARD ACCEPT [0:0]\n:KUBE-X - [0:0]\n:WGFW-wg0-FWD - [0:0]\n\
             -A FORWARD -j KUBE-X\n-A KUBE-X -s 10.1.0.0/16 -j RETURN\n-A KUBE-X -j WGFW-wg0-FWD\n\
             -A WGFW-wg0-FWD -i wg0 -j ACCEPT\nCOMMIT\n",
        );
        assert_eq!(live.rules_of(Table::Filter, "FORWARD"), ["-j KUBE-X"]);
        assert_eq!(live.rules_of(Table::Filter, "KUBE-X"), ["-j WGFW-wg0-FWD"]);
        assert_eq!(
            live.rules_of(Table::Filter, "WGFW-wg0-FWD"),
            ["-i wg0 -j ACCEPT"]
        );
        assert!(live.has_chain(Table::Filter, "KUBE-X") && live.has_foreign_rules());
    }
}
