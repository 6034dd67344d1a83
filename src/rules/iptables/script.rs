//! The `iptables-restore --noflush` script of one family, computed against the live rules so
//! that it only touches what is ours: our chains are created or flushed, our jumps are put
//! first in the built-in chains once, and chains we no longer need are emptied and deleted.

use std::fmt::Write as _;

use crate::plan::{Family, FamilyPlan, Plan};
use crate::rules::model::Table;
use crate::rules::names::{ChainId, Kind, PREFIX};

use super::{Chain, Live, render};

/// The restore script that makes the live ruleset hold `desired` and none of `remove`, or
/// `None` when there is nothing to do. Everything else in the ruleset is left alone. A chain
/// of `remove` goes from whichever table holds it, so that one an older version kept in
/// another table (host input was in filter) does not stay behind.
pub fn transaction(desired: &[Chain], remove: &[ChainId], live: &Live) -> Option<String> {
    let mut script = String::new();
    for table in Table::ALL {
        let want: Vec<&Chain> = desired.iter().filter(|c| c.table == table).collect();
        let mut gone: Vec<String> = Vec::new();
        for name in remove.iter().map(ToString::to_string) {
            if live.has_chain(table, &name)
                && !want.iter().any(|c| c.name() == name)
                && !gone.contains(&name)
            {
                gone.push(name);
            }
        }
        if want.is_empty() && gone.is_empty() {
            continue;
        }
        // A table whose chains already hold exactly the wanted rules, hooked first, is left
        // alone: re-filling it would only reset counters and cost a kernel round trip.
        let unchanged = gone.is_empty()
            && want.iter().all(|c| {
                live.has_chain(table, &c.name())
                    && live.rules_of(table, &c.name()) == c.rules.as_slice()
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

/// Host input moved from filter to mangle (so that other tools' denies in filter INPUT hold).
/// Where the input chains of interfaces that are not part of this change are still in filter
/// (an older version installed them, and they are up since), they move along in this same
/// transaction, rules as they are, so that the shared chain in mangle finds them; their log
/// and drop gets its twin in mangle. Returns the chains to add to `desired` and the ids whose
/// copies in filter go.
pub fn moved_host_input(desired: &[Chain], live: &Live) -> (Vec<Chain>, Vec<ChainId>) {
    let mut add: Vec<Chain> = Vec::new();
    let mut gone = Vec::new();
    let wanted = |id: &ChainId, add: &[Chain]| {
        desired
            .iter()
            .chain(add)
            .any(|c| &c.id == id && c.table == id.table())
    };
    for (table, name) in &live.chains {
        let Ok(id) = name.parse::<ChainId>() else {
            continue;
        };
        if *table != Table::Filter || id.table() != Table::Mangle {
            continue;
        }
        gone.push(id.clone());
        if wanted(&id, &add) {
            continue;
        }
        let iface = id.iface().cloned();
        let drop = iface
            .as_ref()
            .map(|i| ChainId::own(i, Kind::Drop).to_string());
        let in_drop = iface.as_ref().map(|i| ChainId::own(i, Kind::InDrop));
        let rules = live
            .rules_of(Table::Filter, name)
            .iter()
            .map(|r| match (&drop, &in_drop) {
                (Some(d), Some(to)) if r.ends_with(&format!("-j {d}")) => {
                    format!("{}-j {to}", &r[..r.len() - d.len() - 3])
                }
                _ => r.clone(),
            })
            .collect();
        add.push(Chain {
            table: Table::Mangle,
            hook: id.hook(),
            id,
            rules,
        });
        if let (Some(i), Some(to)) = (&iface, in_drop)
            && !wanted(&to, &add)
        {
            let mut rules = live
                .rules_of(Table::Filter, &ChainId::own(i, Kind::Drop).to_string())
                .to_vec();
            // A drop chain that is not there any more still drops.
            if rules.is_empty() {
                rules.push("-j DROP".into());
            }
            add.push(Chain {
                table: Table::Mangle,
                hook: None,
                id: to,
                rules,
            });
        }
    }
    (add, gone)
}

/// How the live ruleset of one family differs from `desired`, one line per difference.
pub fn differences(desired: &[Chain], live: &Live, family: Family) -> Vec<String> {
    let mut out = Vec::new();
    for c in desired {
        if !live.has_chain(c.table, &c.name()) {
            out.push(format!(
                "{family}: chain {} ({}) is gone",
                c.id,
                c.table.name()
            ));
            continue;
        }
        let rules = live.rules_of(c.table, &c.name());
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
            && !jump_is_first_once(live, c.table, hook, &c.name())
        {
            out.push(format!(
                "{family}: {} {hook} no longer jumps to {} first",
                c.table.name(),
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
    let desired = render(&crate::rules::fresh(plan, fp), fp.family);
    transaction(&desired, &[], &Live::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cli::Options;
    use crate::plan::{self, HostFacts};
    use crate::rules::listing::Listing;
    use crate::rules::{self as ruleset, ChainId};

    #[test]
    fn assumed_jumps_become_the_deletes_of_a_removal() {
        let overview = &Listing::parse(include_str!("../../../tests/fixtures/overview.nft"));
        let iface: crate::config::types::IfaceName = "wgp0".parse().unwrap();
        let mut light = Live::from_overview(overview, Family::V4);
        light.assume_jumps(&ChainId::hooked(&iface, true));
        let full = Live::parse(include_str!("../../../tests/fixtures/overview.v4.save"));
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
            live.chains.insert((c.table, c.name()));
            if let Some(h) = c.hook {
                live.rules
                    .entry((c.table, h.to_string()))
                    .or_default()
                    .push(format!("-j {}", c.id));
            }
            live.rules.insert((c.table, c.name()), c.rules.clone());
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
        assert!(
            v6.contains("-A WGFW-wg0-NAT -s fd66::/64 -o eth0 -j MASQUERADE\n"),
            "a unique-local tunnel is masqueraded: {v6}"
        );
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
            .get_mut(&(Table::Mangle, "WGFW-wg0-IN".to_string()))
            .unwrap()
            .pop();
        let s = transaction(&desired, &ChainId::all_of(&p.iface), &edited).unwrap();
        assert!(
            s.starts_with("*mangle\n") && !s.contains("-D ") && !s.contains("-I "),
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
        let mangle = s.split("*mangle\n").nth(1).unwrap();
        let first_x = mangle.find("-X ").unwrap();
        assert!(mangle.find("-D INPUT -j WGFW-INPUT").unwrap() < first_x);
        assert!(mangle.find("-F ").unwrap() < first_x, "{mangle}");
        let filter = s.split("*filter\n").nth(1).unwrap();
        let first_x = filter.find("-X ").unwrap();
        assert!(filter.find("-D FORWARD -j WGFW-wg0-FWD").unwrap() < first_x);
        assert!(filter.rfind("-F ").unwrap() < first_x, "{filter}");
        assert!(!s.contains(":WGFW"), "{s}");
        // Nothing to remove from an empty host.
        assert_eq!(transaction(&[], &remove, &Live::default()), None);
    }

    /// What an older version installed for wg1 (host input in filter), and wg0 coming up
    /// with this one: wg1's input chains move to mangle in the same restore.
    #[test]
    fn input_chains_an_older_version_left_in_filter_move_along() {
        let live = Live::parse(
            "*mangle\n:INPUT ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
             :WGFW-INPUT - [0:0]\n:WGFW-wg1-IN - [0:0]\n:WGFW-wg1-FWD - [0:0]\n:WGFW-wg1-DROP - [0:0]\n\
             -A INPUT -j WGFW-INPUT\n-A FORWARD -j WGFW-wg1-FWD\n\
             -A WGFW-INPUT -i lo -j ACCEPT\n-A WGFW-INPUT -j WGFW-wg1-IN\n-A WGFW-INPUT -j DROP\n\
             -A WGFW-wg1-IN -p udp -m udp --dport 51821 -j ACCEPT\n\
             -A WGFW-wg1-IN -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j WGFW-wg1-DROP\n\
             -A WGFW-wg1-FWD -i wg1 -j WGFW-wg1-DROP\n-A WGFW-wg1-DROP -j DROP\nCOMMIT\n",
        );
        let p = plan_for(DUAL, &Options::default());
        let wg1 = crate::rules::Member {
            iface: "wg1".parse().unwrap(),
            policy: crate::plan::InputPolicy::Drop,
            log: true,
        };
        let mut desired = render(&ruleset::desired(&p, Family::V4, &[wg1]), Family::V4);
        let (add, gone) = moved_host_input(&desired, &live);
        let names: Vec<String> = add.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["WGFW-wg1-IN", "WGFW-wg1-INDROP"]);
        assert_eq!(
            add[0].rules[1],
            "-p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j WGFW-wg1-INDROP"
        );
        desired.extend(add);
        let mut remove = ChainId::all_of(&p.iface);
        remove.extend(gone);
        // wg0's own chains may be named twice (ours, and found in filter): deleted once.
        remove.push(ChainId::own(&p.iface, Kind::In));
        let s = transaction(&desired, &remove, &live).unwrap();
        let filter = s.split("*filter\n").nth(1).unwrap();
        for line in [
            "-D INPUT -j WGFW-INPUT\n",
            "-X WGFW-INPUT\n",
            "-X WGFW-wg1-IN\n",
        ] {
            assert!(filter.contains(line), "{line} in {filter}");
        }
        assert!(
            !filter.contains("-X WGFW-wg1-DROP"),
            "wg1's forwarding keeps it: {filter}"
        );
        let mangle = s.split("*mangle\n").nth(1).unwrap();
        assert!(
            mangle.contains("-A WGFW-INPUT -j WGFW-wg1-IN\n"),
            "{mangle}"
        );
        assert!(mangle.contains("-A WGFW-wg1-INDROP -j DROP\n"), "{mangle}");
        // Nothing in filter: nothing to move.
        assert_eq!(
            moved_host_input(&desired, &Live::default()),
            (vec![], vec![])
        );
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
}
