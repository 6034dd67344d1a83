//! The iptables/ip6tables backend: renders the chains of `ruleset` in iptables-save's own
//! canonical form, and those into one `iptables-restore --noflush` script per family, computed
//! against the live ruleset so that it only touches what is ours: our chains are created or
//! flushed, our jumps are put first in the built-in chains once, and chains we no longer need
//! are emptied and deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::listing::Listing;
use super::model::{self, Ct, Match, Ports, Rule, Table, Verdict};
use super::names::{ChainId, PREFIX, is_ufw_chain};
use crate::config::types::RateUnit;
use crate::plan::{Family, FamilyPlan, Plan};

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
    /// The built-in chain that jumps here first, if any: the id's, or where a chain is put
    /// back as it was, wherever it was found.
    pub hook: Option<&'static str>,
    pub rules: Vec<String>,
}

impl Chain {
    fn table(&self) -> Table {
        self.id.table()
    }

    fn name(&self) -> String {
        self.id.to_string()
    }
}

pub fn render(chains: &[model::Chain], family: Family) -> Vec<Chain> {
    chains
        .iter()
        .map(|c| Chain {
            id: c.id.clone(),
            hook: c.hook(),
            rules: c.rules.iter().map(|r| render_rule(r, family)).collect(),
        })
        .collect()
}

fn ports(p: Ports) -> String {
    match p {
        // Port 0 is the listen port of a plan shown before the interface exists.
        Ports(0, 0) => "LISTEN-PORT".into(),
        Ports(a, b) if a == b => a.to_string(),
        Ports(a, b) => format!("{a}:{b}"),
    }
}

fn per(unit: RateUnit) -> &'static str {
    match unit {
        RateUnit::Second => "sec",
        RateUnit::Minute => "min",
    }
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
            | Match::In(_)
            | Match::NotIn(_)
            | Match::Out(_)
            | Match::NotOut(_) => {}
            Match::L4 {
                proto,
                sport,
                dport,
                syn,
            } => {
                let p = proto.as_str();
                parts.push(format!("-p {p}"));
                if sport.is_some() || dport.is_some() || *syn {
                    parts.push(format!("-m {p}"));
                }
                if let Some(s) = sport {
                    parts.push(format!("--sport {}", ports(*s)));
                }
                if let Some(d) = dport {
                    parts.push(format!("--dport {}", ports(*d)));
                }
                if *syn {
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
                per(*unit)
            )),
            Match::PerSource {
                name,
                rate,
                burst,
                v6_prefix,
            } => {
                parts.push(format!(
                    "-m hashlimit --hashlimit-upto {}/{} --hashlimit-burst {burst} --hashlimit-mode srcip --hashlimit-name {name}",
                    rate.count,
                    per(rate.unit)
                ));
                if let Some(prefix) = v6_prefix {
                    parts.push(format!("--hashlimit-srcmask {prefix}"));
                }
            }
            Match::MssAbove(mss) => parts.push(format!("-m tcpmss --mss {}:65535", mss + 1)),
            Match::SrcNotLocal => parts.push("-m addrtype ! --src-type LOCAL".into()),
        }
    }
    parts.push(match &rule.verdict {
        Verdict::Accept => "-j ACCEPT".into(),
        Verdict::Drop => "-j DROP".into(),
        Verdict::Return => "-j RETURN".into(),
        Verdict::Jump(c) => format!("-j {c}"),
        Verdict::Log(prefix) => format!("-j LOG --log-prefix \"{prefix}\""),
        Verdict::RejectTcpReset => "-j REJECT --reject-with tcp-reset".into(),
        Verdict::RejectProhibited => match family {
            Family::V4 => "-j REJECT --reject-with icmp-admin-prohibited".into(),
            Family::V6 => "-j REJECT --reject-with icmp6-adm-prohibited".into(),
        },
        Verdict::Masquerade => "-j MASQUERADE".into(),
        Verdict::SetMss(mss) => format!("-j TCPMSS --set-mss {mss}"),
    });
    parts.join(" ")
}

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

    /// The given chains, as a record says `up` installed them: no policies, no rules.
    pub fn of_chains(chains: &[ChainId]) -> Live {
        Live {
            chains: chains.iter().map(|c| (c.table(), c.to_string())).collect(),
            ..Live::default()
        }
    }

    /// Takes it that each of `hooks` (table, built-in chain, ours) whose chain exists is jumped
    /// to once, as `up` put it: what `down` then removes without reading the rules. Where that
    /// is not so, the restore fails whole and the caller reads the rules after all.
    pub fn assume_jumps(&mut self, hooked: &[ChainId]) {
        for id in hooked {
            let Some(hook) = id.hook() else { continue };
            if self.has_id(id) {
                self.rules
                    .entry((id.table(), hook.to_string()))
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

    pub fn has_id(&self, id: &ChainId) -> bool {
        self.has_chain(id.table(), &id.to_string())
    }

    /// The rules of one of our chains.
    pub fn rules_of_id(&self, id: &ChainId) -> &[String] {
        self.rules_of(id.table(), &id.to_string())
    }

    fn rules_of(&self, table: Table, chain: &str) -> &[String] {
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

/// The restore script that makes the live ruleset hold `desired` and none of `remove`, or
/// `None` when there is nothing to do. Everything else in the ruleset is left alone.
pub fn transaction(desired: &[Chain], remove: &[ChainId], live: &Live) -> Option<String> {
    let mut script = String::new();
    for table in Table::ALL {
        let want: Vec<&Chain> = desired.iter().filter(|c| c.table() == table).collect();
        let gone: Vec<String> = remove
            .iter()
            .filter(|id| {
                id.table() == table && live.has_id(id) && !want.iter().any(|c| &c.id == *id)
            })
            .map(ToString::to_string)
            .collect();
        if want.is_empty() && gone.is_empty() {
            continue;
        }
        // A table whose chains already hold exactly the wanted rules, hooked first, is left
        // alone: re-filling it would only reset counters and cost a kernel round trip.
        let unchanged = gone.is_empty()
            && want.iter().all(|c| {
                live.has_id(&c.id)
                    && live.rules_of_id(&c.id) == c.rules.as_slice()
                    && c.hook
                        .is_none_or(|h| jump_is_first_once(live, table, h, &c.name()))
            });
        if unchanged {
            continue;
        }
        let mut body = String::new();
        // Declaring a chain creates it, or empties it when it exists.
        for c in &want {
            let _ = writeln!(body, ":{} - [0:0]", c.id);
        }
        let mut inserts = Vec::new();
        for c in &want {
            let Some(hook) = c.hook else { continue };
            let jump = format!("-j {}", c.id);
            if !jump_is_first_once(live, table, hook, &c.name()) {
                for _ in live.rules_of(table, hook).iter().filter(|r| **r == jump) {
                    let _ = writeln!(body, "-D {hook} {jump}");
                }
                inserts.push(format!("-I {hook} 1 {jump}"));
            }
        }
        for name in &gone {
            let jump = format!("-j {name}");
            for (t, chain) in live.rules.keys() {
                if *t != table || chain.starts_with(PREFIX) {
                    continue;
                }
                for _ in live.rules_of(table, chain).iter().filter(|r| **r == jump) {
                    let _ = writeln!(body, "-D {chain} {jump}");
                }
            }
        }
        for name in &gone {
            let _ = writeln!(body, "-F {name}");
        }
        for name in &gone {
            let _ = writeln!(body, "-X {name}");
        }
        for c in &want {
            for r in &c.rules {
                let _ = writeln!(body, "-A {} {r}", c.id);
            }
        }
        for i in inserts {
            let _ = writeln!(body, "{i}");
        }
        let _ = write!(script, "*{}\n{body}COMMIT\n", table.name());
    }
    (!script.is_empty()).then_some(script)
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

/// How the live ruleset of one family differs from `desired`, one line per difference.
pub fn differences(desired: &[Chain], live: &Live, family: Family) -> Vec<String> {
    let mut out = Vec::new();
    for c in desired {
        if !live.has_id(&c.id) {
            out.push(format!(
                "{family}: chain {} ({}) is gone",
                c.id,
                c.table().name()
            ));
            continue;
        }
        let rules = live.rules_of_id(&c.id);
        if rules.len() != c.rules.len() {
            out.push(format!(
                "{family}: chain {} holds {} rules, not the {} installed",
                c.id,
                rules.len(),
                c.rules.len()
            ));
        } else if rules != c.rules.as_slice() {
            out.push(format!("{family}: chain {}'s rules were changed", c.id));
        }
        if let Some(hook) = c.hook
            && !jump_is_first_once(live, c.table(), hook, &c.name())
        {
            out.push(format!(
                "{family}: {} {hook} no longer jumps to {} first",
                c.table().name(),
                c.id
            ));
        }
    }
    out
}

/// Whether `hook` jumps to `chain` exactly once, among the wgfw jumps that lead it.
fn jump_is_first_once(live: &Live, table: Table, hook: &str, chain: &str) -> bool {
    let jump = format!("-j {chain}");
    let rules = live.rules_of(table, hook);
    let first = rules
        .iter()
        .take_while(|r| r.starts_with(&format!("-j {PREFIX}")))
        .any(|r| *r == jump);
    first && rules.iter().filter(|r| **r == jump).count() == 1
}

/// The whole ruleset of one interface and family as a restore script on an empty host, as
/// `plan` shows it.
pub fn render_fresh(plan: &Plan, fp: &FamilyPlan) -> String {
    let desired = render(&super::fresh(plan, fp), fp.family);
    transaction(&desired, &[], &Live::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Options;
    use crate::plan::{self, HostFacts};
    use crate::rules::{self as ruleset, ChainId};

    /// The overview of a host with Docker- and ufw-like chains, a DROP policy and our chains,
    /// read against what `iptables-nft-save` showed of the same host at the same moment.
    #[test]
    fn the_nft_overview_shows_what_the_save_shows_but_rules() {
        let overview = &Listing::parse(include_str!("../../tests/fixtures/overview.nft"));
        let saves = [
            (
                Family::V4,
                include_str!("../../tests/fixtures/overview.v4.save"),
            ),
            (
                Family::V6,
                include_str!("../../tests/fixtures/overview.v6.save"),
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
    fn assumed_jumps_become_the_deletes_of_a_removal() {
        let overview = &Listing::parse(include_str!("../../tests/fixtures/overview.nft"));
        let iface: crate::config::types::IfaceName = "wgp0".parse().unwrap();
        let mut light = Live::from_overview(overview, Family::V4);
        light.assume_jumps(&ChainId::hooked(&iface, true));
        let full = Live::parse(include_str!("../../tests/fixtures/overview.v4.save"));
        let gone = ChainId::all_with_shared(&iface);
        assert_eq!(
            transaction(&[], &gone, &light),
            transaction(&[], &gone, &full)
        );
    }

    fn plan_for(text: &str, opts: &Options) -> Plan {
        plan::for_test(text, opts, &HostFacts::example()).unwrap()
    }

    const DUAL: &str = "[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n";

    fn installed(plan: &Plan, fam: usize) -> Live {
        // What iptables-save would show after the fresh script: our chains with their rules.
        let fp = &plan.families[fam];
        let mut live = Live::default();
        for c in render(&ruleset::fresh(plan, fp), fp.family) {
            live.chains.insert((c.table(), c.name()));
            if let Some(h) = c.hook {
                live.rules
                    .entry((c.table(), h.to_string()))
                    .or_default()
                    .push(format!("-j {}", c.id));
            }
            live.rules.insert((c.table(), c.name()), c.rules.clone());
        }
        live
    }

    #[test]
    fn fresh_install_declares_fills_and_hooks() {
        let p = plan_for(DUAL, &Options::default());
        let s = render_fresh(&p, &p.families[0]);
        assert!(s.starts_with("*raw\n:WGFW-wg0-PRE - [0:0]\n"), "{s}");
        assert!(s.contains("-I PREROUTING 1 -j WGFW-wg0-PRE\nCOMMIT\n"));
        assert!(s.contains("-A WGFW-wg0-NAT -s 10.66.0.0/24 -o eth0 -j MASQUERADE\n"));
        assert!(s.contains("-A WGFW-INPUT -j WGFW-wg0-IN\n"));
        assert!(s.contains("-I INPUT 1 -j WGFW-INPUT\n"));
        assert!(!s.contains("-D "));
        let v6 = render_fresh(&p, &p.families[1]);
        assert!(!v6.contains("*nat"), "no IPv6 NAT without --nat6");
        assert!(v6.contains("--hashlimit-srcmask 64"));
    }

    #[test]
    fn up_twice_changes_only_our_chains_and_keeps_jumps() {
        let p = plan_for(DUAL, &Options::default());
        let fp = &p.families[0];
        let live = installed(&p, 0);
        let desired = render(&ruleset::fresh(&p, fp), fp.family);
        assert_eq!(
            transaction(&desired, &ChainId::all_of(&p.iface), &live),
            None
        );
        // A chain someone edited is filled again, without touching the jumps.
        let mut edited = live.clone();
        edited
            .rules
            .get_mut(&(Table::Filter, "WGFW-wg0-IN".to_string()))
            .unwrap()
            .pop();
        let s = transaction(&desired, &ChainId::all_of(&p.iface), &edited).unwrap();
        assert!(
            s.starts_with("*filter\n") && !s.contains("-D ") && !s.contains("-I "),
            "{s}"
        );
    }

    #[test]
    fn duplicated_or_displaced_jumps_are_put_back_first_once() {
        let p = plan_for(DUAL, &Options::default());
        let mut live = installed(&p, 0);
        let fwd = live
            .rules
            .get_mut(&(Table::Filter, "FORWARD".to_string()))
            .unwrap();
        fwd.insert(0, "-j DOCKER-USER".to_string());
        fwd.push("-j WGFW-wg0-FWD".to_string());
        let desired = render(&ruleset::iface_chains(&p, &p.families[0]), Family::V4);
        let s = transaction(&desired, &[], &live).unwrap();
        assert_eq!(s.matches("-D FORWARD -j WGFW-wg0-FWD\n").count(), 2, "{s}");
        assert_eq!(s.matches("-I FORWARD 1 -j WGFW-wg0-FWD\n").count(), 1);
    }

    #[test]
    fn removing_unhooks_empties_then_deletes() {
        let p = plan_for(DUAL, &Options::default());
        let live = installed(&p, 0);
        let remove = ChainId::all_with_shared(&p.iface);
        let s = transaction(&[], &remove, &live).unwrap();
        let filter = s.split("*filter\n").nth(1).unwrap();
        let first_x = filter.find("-X ").unwrap();
        assert!(filter.find("-D INPUT -j WGFW-INPUT").unwrap() < first_x);
        assert!(filter.rfind("-F ").unwrap() < first_x, "{filter}");
        assert!(!s.contains(":WGFW"), "{s}");
        // Nothing to remove from an empty host.
        assert_eq!(transaction(&[], &remove, &Live::default()), None);
    }

    #[test]
    fn a_changed_plan_drops_chains_it_no_longer_has() {
        let p = plan_for(DUAL, &Options::default());
        let live = installed(&p, 0);
        let no_nat = plan_for(
            DUAL,
            &Options {
                no_nat: true,
                ..Options::default()
            },
        );
        let desired = render(
            &ruleset::iface_chains(&no_nat, &no_nat.families[0]),
            Family::V4,
        );
        let s = transaction(&desired, &ChainId::all_of(&p.iface), &live).unwrap();
        assert!(
            s.contains(
                "*nat\n-D POSTROUTING -j WGFW-wg0-NAT\n-F WGFW-wg0-NAT\n-X WGFW-wg0-NAT\nCOMMIT\n"
            ),
            "{s}"
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
