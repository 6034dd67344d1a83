//! The kernel interfaces the hook programs, behind one face: read what is there, apply a plan
//! all or nothing, put back what was there, remove an interface. `iptables` (nft or legacy
//! flavour) works one restore transaction per family; `nft` one transaction for both.

use std::collections::BTreeMap;

use crate::config::types::IfaceName;
use crate::error::{Error, Result};
use crate::plan::{Family, Plan};
use crate::rules::iptables::{self, Live, Variant};
use crate::rules::nft;
use crate::rules::ruleset::{self, Member, SHARED_INPUT, Table};
use crate::system::cmd;
use crate::system::state::Record;
use crate::system::xtables;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables(Variant),
    Nft,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables(v) => v.name(),
            Backend::Nft => "nft",
        }
    }

    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "nft" => Some(Backend::Nft),
            s => Variant::parse(s).map(Backend::Iptables),
        }
    }
}

/// What `--backend auto` picks, and why: what the host already uses. Rules in the
/// iptables-legacy tables: legacy; rules in iptables-nft's: iptables-nft; only native nftables
/// tables, or nothing at all: nft; no `nft` program: the flavour the `iptables` command is.
pub fn auto() -> (Backend, String) {
    // A chain someone else made in iptables-nft's tables (Docker's, Kubernetes') says so
    // without reading their rules, which costs 150 ms on a host with 20,000.
    let overview = cmd::find("nft").and_then(|_| nft_overview().ok());
    let has_rules = |v: Variant| {
        if v == Variant::Nft
            && let Some(o) = &overview
            && Family::BOTH
                .iter()
                .any(|f| Live::from_overview(o, *f).has_foreign_chains())
        {
            return true;
        }
        cmd::find(&v.save(Family::V4)).is_some()
            && Family::BOTH
                .iter()
                .any(|f| live_rules(v, *f).is_ok_and(|l| l.has_foreign_rules()))
    };
    if has_rules(Variant::Legacy) {
        return (
            Backend::Iptables(Variant::Legacy),
            "the iptables-legacy tables have rules".into(),
        );
    }
    if has_rules(Variant::Nft) {
        return (
            Backend::Iptables(Variant::Nft),
            "the iptables-nft tables have rules".into(),
        );
    }
    if cmd::find("nft").is_some() {
        return (Backend::Nft, "no iptables rules on this host".into());
    }
    let legacy = cmd::find("iptables")
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p.to_string_lossy().contains("legacy"));
    let v = if legacy {
        Variant::Legacy
    } else {
        Variant::Nft
    };
    (
        Backend::Iptables(v),
        format!("nft is not installed and iptables is {}", v.name()),
    )
}

/// Every backend whose programs are installed.
pub fn installed_backends() -> Vec<Backend> {
    let mut out = Vec::new();
    for v in [Variant::Nft, Variant::Legacy] {
        if cmd::find(&v.restore(Family::V4)).is_some() {
            out.push(Backend::Iptables(v));
        }
    }
    if cmd::find("nft").is_some() {
        out.push(Backend::Nft);
    }
    out
}

/// Our part of the ruleset as it was before a change, to compute the change and to put it back.
pub enum Before {
    /// The families' iptables rules, and the nftables overview (another manager's native
    /// tables, firewalld's, own input whatever backend we use).
    Iptables {
        lives: BTreeMap<Family, Live>,
        /// None without nft, or when it could not be read.
        overview: Option<String>,
    },
    Nft {
        table: nft::Live,
        overview: String,
    },
}

impl Before {
    /// `nft list chains` as read before the change; None without nft.
    pub fn overview(&self) -> Option<&str> {
        match self {
            Before::Iptables { overview, .. } => overview.as_deref(),
            Before::Nft { overview, .. } => Some(overview),
        }
    }
}

pub fn families(ipv6: bool) -> Vec<Family> {
    Family::BOTH
        .into_iter()
        .filter(|f| *f == Family::V4 || ipv6)
        .collect()
}

fn members(records: &[Record], family: Family) -> Vec<Member> {
    records
        .iter()
        .filter_map(|r| {
            Some(Member {
                iface: r.iface.clone(),
                policy: *r.policies.get(&family)?,
                log: r.log,
            })
        })
        .collect()
}

/// The chains of `plan` and the shared ones, for one family.
fn desired(plan: &Plan, family: Family, others: &[Record]) -> Vec<ruleset::Chain> {
    let Some(fp) = plan.families.iter().find(|f| f.family == family) else {
        return Vec::new();
    };
    let mut m = members(others, family);
    m.push(Member {
        iface: plan.iface.clone(),
        policy: plan.tail_policy(fp),
        log: plan.log,
    });
    let mut chains = ruleset::shared_chains(family, &m);
    chains.extend(ruleset::iface_chains(plan, fp));
    chains
}

/// The iptables chains `plan` installs, per family (shared ones included); none for nft.
pub fn chains_of(
    backend: Backend,
    plan: &Plan,
    others: &[Record],
) -> BTreeMap<Family, Vec<(Table, String)>> {
    if backend == Backend::Nft {
        return BTreeMap::new();
    }
    plan.families
        .iter()
        .map(|fp| {
            let names = desired(plan, fp.family, others)
                .into_iter()
                .map(|c| (c.table, c.name))
                .collect();
            (fp.family, names)
        })
        .collect()
}

/// `desired` for every family of the plan, for the nft table that holds them all.
fn desired_all(plan: &Plan, others: &[Record]) -> Vec<(Family, ruleset::Chain)> {
    plan.families
        .iter()
        .flat_map(|fp| {
            desired(plan, fp.family, others)
                .into_iter()
                .map(|c| (fp.family, c))
        })
        .collect()
}

pub fn read(backend: Backend, families: &[Family]) -> Result<Before> {
    Ok(match backend {
        Backend::Iptables(v) => {
            let overview = cmd::find("nft").and_then(|_| nft_overview().ok());
            let mut lives = BTreeMap::new();
            for f in families {
                // Where no chain of ours exists yet (the first `up`), the chains and policies
                // are all there is to know: for iptables-nft the nftables overview says them,
                // for legacy the kernel's table, neither formatting every rule of the host.
                let light = match v {
                    Variant::Nft => overview.as_deref().map(|o| Live::from_overview(o, *f)),
                    Variant::Legacy => xtables::overview(*f),
                }
                .filter(|l| !l.has_own_chains());
                let live = match light {
                    Some(l) => l,
                    None => live_rules(v, *f)?,
                };
                lives.insert(*f, live);
            }
            Before::Iptables { lives, overview }
        }
        Backend::Nft => {
            // Our table is listed only where the overview shows it: the first `up` saves a
            // process.
            let overview = nft_overview()?;
            let table = match nft::overview_chains(&overview) {
                Some(_) => nft_table()?,
                None => String::new(),
            };
            Before::Nft {
                table: nft::Live::parse(&table),
                overview,
            }
        }
    })
}

/// Per family: why another firewall manager owns the host's input, if one does.
pub fn input_owners(before: &Before) -> BTreeMap<Family, String> {
    match before {
        Before::Iptables { lives, overview } => lives
            .iter()
            .filter_map(|(f, l)| {
                Some((
                    *f,
                    iptables_input_owner(l)
                        .or_else(|| nft::input_owner(overview.as_deref().unwrap_or_default()))?,
                ))
            })
            .collect(),
        Before::Nft { overview, .. } => match nft::input_owner(overview) {
            Some(why) => Family::BOTH.into_iter().map(|f| (f, why.clone())).collect(),
            None => BTreeMap::new(),
        },
    }
}

fn iptables_input_owner(live: &Live) -> Option<String> {
    if live
        .chains
        .iter()
        .any(|(_, c)| c.starts_with("ufw-") || c.starts_with("ufw6-"))
    {
        return Some("ufw's chains are present".into());
    }
    match live.policies.get(&(Table::Filter, "INPUT".to_string())) {
        Some(p) if p != "ACCEPT" => Some(format!("the INPUT chain's policy is {p}")),
        _ => None,
    }
}

/// Installs `plan`, all or nothing: a family that fails leaves the others as they were.
pub fn apply(backend: Backend, plan: &Plan, others: &[Record], before: &Before) -> Result<()> {
    match (backend, before) {
        (Backend::Iptables(v), Before::Iptables { lives, .. }) => {
            let mut scripts = Vec::new();
            for fp in &plan.families {
                let want = iptables::render(&desired(plan, fp.family, others), fp.family);
                if let Some(s) = iptables::transaction(
                    &want,
                    &ruleset::own_chains(&plan.iface),
                    &lives[&fp.family],
                ) {
                    scripts.push((fp.family, s));
                }
            }
            let mut applied = Vec::new();
            for (family, script) in &scripts {
                // A restore that reports failure may have committed all the same (killed after
                // its commit, a lost reply): that family is put back too.
                applied.push(*family);
                if let Err(e) = restore(v, *family, script) {
                    undo_families(v, &plan.iface, &applied, lives);
                    return Err(e);
                }
            }
            Ok(())
        }
        (Backend::Nft, Before::Nft { table, .. }) => {
            let want = desired_all(plan, others);
            let Some(script) = nft::transaction(&want, &nft_own(&plan.iface, table), table) else {
                return Ok(());
            };
            nft_apply(&script).inspect_err(|_| {
                // A refused transaction changed nothing; one that reports failure after its
                // commit did, and is taken back.
                let now = nft_table()
                    .map(|t| nft::Live::parse(&t))
                    .unwrap_or_default();
                if !now.same_rules(table) {
                    undo(backend, &plan.iface, before);
                }
            })
        }
        _ => Err(Error::system("internal: backend and live state disagree")),
    }
}

/// How the live ruleset differs from what `plan` installs, one line per difference.
pub fn differences(
    backend: Backend,
    plan: &Plan,
    others: &[Record],
    before: &Before,
) -> Vec<String> {
    match (backend, before) {
        (Backend::Iptables(_), Before::Iptables { lives, .. }) => plan
            .families
            .iter()
            .flat_map(|fp| {
                let want = iptables::render(&desired(plan, fp.family, others), fp.family);
                iptables::differences(&want, &lives[&fp.family], fp.family)
            })
            .collect(),
        (Backend::Nft, Before::Nft { table, .. }) => {
            let want = desired_all(plan, others);
            nft::differences(&want, table)
        }
        _ => vec!["internal: backend and live state disagree".into()],
    }
}

/// The packets the plan's counted rules saw, by what they count (`ruleset::COUNTED`).
pub fn counters(backend: Backend, plan: &Plan, others: &[Record]) -> Vec<(&'static str, u64)> {
    let mut sums: BTreeMap<&'static str, u64> = BTreeMap::new();
    match backend {
        Backend::Iptables(v) => {
            for fp in &plan.families {
                let Ok(out) = cmd::run(&v.save(fp.family), &["-c"], None) else {
                    continue;
                };
                let live = iptables::counted(&out.stdout);
                for c in desired(plan, fp.family, others)
                    .iter()
                    .filter(|c| c.name.contains(&format!("-{}-", plan.iface)))
                {
                    for r in &c.rules {
                        let Some(label) = r.counts else { continue };
                        let text = iptables::render_rule(r, fp.family);
                        let n = live
                            .get(&(c.table, c.name.clone()))
                            .and_then(|rs| rs.iter().find(|(t, _)| *t == text))
                            .map_or(0, |(_, n)| *n);
                        *sums.entry(label).or_default() += n;
                    }
                }
            }
        }
        Backend::Nft => {
            let listing = nft_table().unwrap_or_default();
            let mine: Vec<String> = ruleset::own_chains(&plan.iface)
                .into_iter()
                .flat_map(|(_, n)| Family::BOTH.map(|f| nft::chain_name(&n, f)))
                .collect();
            for (label, n) in nft::counted(&listing, &mine) {
                *sums.entry(label).or_default() += n;
            }
        }
    }
    let mut labels: Vec<&'static str> = plan
        .families
        .iter()
        .flat_map(|fp| desired(plan, fp.family, others))
        .filter(|c| c.name.contains(&format!("-{}-", plan.iface)))
        .flat_map(|c| c.rules.into_iter().filter_map(|r| r.counts))
        .collect();
    labels.sort_by_key(|l| ruleset::COUNTED.iter().position(|c| c == l));
    labels.dedup();
    labels
        .into_iter()
        .map(|l| (l, sums.get(l).copied().unwrap_or(0)))
        .collect()
}

/// Puts our part of the ruleset back as it was in `before` (after a later step failed).
pub fn undo(backend: Backend, iface: &IfaceName, before: &Before) {
    match (backend, before) {
        (Backend::Iptables(v), Before::Iptables { lives, .. }) => {
            let all: Vec<Family> = lives.keys().copied().collect();
            undo_families(v, iface, &all, lives);
        }
        (Backend::Nft, Before::Nft { table, .. }) => {
            let now = nft_table()
                .map(|t| nft::Live::parse(&t))
                .unwrap_or_default();
            let mut script = String::new();
            if now.exists {
                script.push_str(&format!("delete table {}\n", nft::TABLE));
            }
            if table.exists {
                script.push_str(&table.listing);
            }
            if !script.is_empty()
                && let Err(e) = nft_apply(&script)
            {
                eprintln!("wgfw-hook: warning: could not put the nft table back: {e}");
            }
        }
        _ => {}
    }
}

/// Removes the interface's chains (and the shared ones with the last interface). Forgiving:
/// returns warnings instead of failing, because `down` must not keep a tunnel up.
pub fn remove(
    backend: Backend,
    iface: &IfaceName,
    others: &[Record],
    recorded: Option<&BTreeMap<Family, Vec<(Table, String)>>>,
    ipv6: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match backend {
        Backend::Iptables(v) => {
            // The last interface: the chains come from the nftables overview (iptables-nft) or
            // the record (legacy), and the jumps to them are taken to be as `up` put them, so no
            // rule is read at all; where they are not, the restore changes nothing and the
            // rules are read after all.
            let overview = (v == Variant::Nft && others.is_empty())
                .then(|| cmd::find("nft").and_then(|_| nft_overview().ok()))
                .flatten();
            for family in families(ipv6) {
                let assumed = match (&overview, recorded.and_then(|r| r.get(&family))) {
                    _ if !others.is_empty() => None,
                    (Some(o), _) => Some(Live::from_overview(o, family)),
                    (None, Some(chains)) if v == Variant::Legacy => Some(Live::of_chains(chains)),
                    _ => None,
                };
                if assumed.is_some_and(|live| remove_all_as_assumed(v, family, iface, live)) {
                    continue;
                }
                let live = match live_rules(v, family) {
                    Ok(l) => l,
                    Err(e) => {
                        warnings.push(e.to_string());
                        continue;
                    }
                };
                let m = members(others, family);
                let mut gone = ruleset::own_chains(iface);
                if m.is_empty() {
                    gone.push((Table::Filter, SHARED_INPUT.to_string()));
                }
                // Rebuild the shared chain only when this interface is in it or it must go.
                let in_shared = live
                    .rules
                    .get(&(Table::Filter, SHARED_INPUT.to_string()))
                    .is_some_and(|r| r.contains(&format!("-j WGFW-{iface}-IN")));
                let want = if in_shared {
                    iptables::render(&ruleset::shared_chains(family, &m), family)
                } else {
                    Vec::new()
                };
                if let Some(script) = iptables::transaction(&want, &gone, &live)
                    && let Err(e) = restore(v, family, &script)
                {
                    warnings.push(e.to_string());
                }
            }
        }
        Backend::Nft => {
            let mut gone: Vec<String> = families(ipv6)
                .into_iter()
                .map(|f| nft::chain_name(SHARED_INPUT, f))
                .collect();
            // The last interface takes the whole table with it, which needs only its chains'
            // names, not a listing of its rules (3 ms more); anything else in it keeps it.
            if others.is_empty() {
                let chains = match nft_overview() {
                    Ok(o) => nft::overview_chains(&o),
                    Err(e) => return vec![e.to_string()],
                };
                let Some(chains) = chains else {
                    return warnings;
                };
                let ours = ruleset::own_chains(iface)
                    .into_iter()
                    .flat_map(|(_, n)| Family::BOTH.map(|f| nft::chain_name(&n, f)));
                gone.extend(ours);
                if chains
                    .iter()
                    .all(|c| gone.contains(c) || nft::base_chain(c))
                {
                    if let Err(e) = nft_apply(&format!("delete table {}\n", nft::TABLE)) {
                        warnings.push(e.to_string());
                    }
                    return warnings;
                }
            }
            let table = match nft_table() {
                Ok(t) => nft::Live::parse(&t),
                Err(e) => return vec![e.to_string()],
            };
            let want: Vec<(Family, ruleset::Chain)> = families(ipv6)
                .into_iter()
                .flat_map(|f| {
                    ruleset::shared_chains(f, &members(others, f))
                        .into_iter()
                        .map(move |c| (f, c))
                })
                .collect();
            gone.extend(nft_own(iface, &table));
            if let Some(script) = nft::transaction(&want, &gone, &table)
                && let Err(e) = nft_apply(&script)
            {
                warnings.push(e.to_string());
            }
        }
    }
    warnings
}

/// Removes all of ours from one family, the last interface's chains and the shared one, taking
/// `live` to hold those chains and the jumps `up` put to them. Whether that worked; if not, the
/// restore was refused whole and the caller reads the rules.
fn remove_all_as_assumed(v: Variant, family: Family, iface: &IfaceName, mut live: Live) -> bool {
    live.assume_jumps(&ruleset::own_hooks(iface, true));
    let mut gone = ruleset::own_chains(iface);
    gone.push((Table::Filter, SHARED_INPUT.to_string()));
    let Some(script) = iptables::transaction(&[], &gone, &live) else {
        return true;
    };
    match restore(v, family, &script) {
        Ok(()) => true,
        Err(e) => {
            log::info!("{e}; reading the {family} rules instead");
            false
        }
    }
}

/// What `plan` shows: the scripts `up` would run on a host where nothing of ours is installed.
pub fn show(backend: Backend, plan: &Plan) -> String {
    match backend {
        Backend::Iptables(v) => plan
            .families
            .iter()
            .map(|fp| {
                format!(
                    "[#] {} --noflush <<'EOF'\n{}EOF\n",
                    v.restore(fp.family),
                    iptables::render_fresh(plan, fp)
                )
            })
            .collect(),
        Backend::Nft => {
            let want: Vec<(Family, ruleset::Chain)> = plan
                .families
                .iter()
                .flat_map(|fp| ruleset::fresh(plan, fp).into_iter().map(|c| (fp.family, c)))
                .collect();
            let script = nft::transaction(&want, &[], &nft::Live::default()).unwrap_or_default();
            format!("[#] nft -f - <<'EOF'\n{script}EOF\n")
        }
    }
}

/// The chains and sets of the table that belong to the interface.
fn nft_own(iface: &IfaceName, table: &nft::Live) -> Vec<String> {
    let chains: Vec<String> = ruleset::own_chains(iface)
        .into_iter()
        .flat_map(|(_, n)| Family::BOTH.map(|f| nft::chain_name(&n, f)))
        .collect();
    let mut names = nft::sets_used(&table.listing, &chains);
    names.extend(chains);
    names
}

fn restore(variant: Variant, family: Family, script: &str) -> Result<()> {
    let what = format!("the {family} rules");
    cmd::transaction(&variant.restore(family), &RESTORE_ARGS, script, &what, None)
}

/// A restore adds to what is there, and waits its turn for the xtables lock.
pub const RESTORE_ARGS: [&str; 3] = ["--noflush", "--wait", "10"];

fn nft_apply(script: &str) -> Result<()> {
    cmd::transaction("nft", &["-f", "-"], script, "the rules", None)
}

/// `nft list table inet wgfw`, empty when there is no such table.
fn nft_table() -> Result<String> {
    let out = cmd::run("nft", &["list", "table", "inet", "wgfw"], None)?;
    Ok(if out.ok { out.stdout } else { String::new() })
}

/// `nft list chains`: every table and chain, with the hook and policy of base chains, but no
/// rules. All we need to know of other managers' tables, and flat in cost: with 20,000 foreign
/// rules, `nft list ruleset` takes nft half a second, `list chains` a few milliseconds.
pub fn nft_overview() -> Result<String> {
    let out = cmd::run("nft", &["list", "chains"], None)?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(Error::system(format!(
            "nft list chains failed: {}",
            cmd::first_line(&out.stderr)
        )))
    }
}

/// The live ruleset of one family as the variant's `-save` shows it.
pub fn live_rules(variant: Variant, family: Family) -> Result<Live> {
    let prog = variant.save(family);
    let out = cmd::run(&prog, &[], None)?;
    if !out.ok {
        return Err(Error::system(format!(
            "{prog} failed: {}",
            cmd::first_line(&out.stderr)
        )));
    }
    Ok(Live::parse(&out.stdout))
}

/// Our chains as they stand in `live`, to put them back after a failed change.
fn chains_in(live: &Live, names: &[(Table, String)]) -> Vec<iptables::Chain> {
    names
        .iter()
        .filter(|(t, n)| live.has_chain(*t, n))
        .map(|(t, n)| {
            let jump = format!("-j {n}");
            let hook = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]
                .into_iter()
                .find(|h| {
                    live.rules
                        .get(&(*t, h.to_string()))
                        .is_some_and(|r| r.contains(&jump))
                });
            let rules = live
                .rules
                .get(&(*t, n.clone()))
                .cloned()
                .unwrap_or_default();
            iptables::Chain {
                table: *t,
                name: n.clone(),
                hook,
                rules,
            }
        })
        .collect()
}

/// Puts our chains of the given families back as they were before this run.
fn undo_families(
    variant: Variant,
    iface: &IfaceName,
    applied: &[Family],
    before: &BTreeMap<Family, Live>,
) {
    let mut names = ruleset::own_chains(iface);
    names.push((Table::Filter, SHARED_INPUT.to_string()));
    for family in applied.iter().rev() {
        let old = chains_in(&before[family], &names);
        let result = live_rules(variant, *family).and_then(|now| {
            match iptables::transaction(&old, &names, &now) {
                Some(script) => restore(variant, *family, &script),
                None => Ok(()),
            }
        });
        if let Err(e) = result {
            eprintln!("wgfw-hook: warning: could not undo the {family} rules: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_owners_under_iptables() {
        assert_eq!(
            iptables_input_owner(&Live::parse("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")),
            None
        );
        assert!(
            iptables_input_owner(&Live::parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n"))
                .unwrap()
                .contains("DROP")
        );
        let ufw = Live::parse("*filter\n:INPUT ACCEPT [0:0]\n:ufw-user-input - [0:0]\nCOMMIT\n");
        assert!(iptables_input_owner(&ufw).is_some());
    }

    #[test]
    fn backends_by_name() {
        for name in ["nft", "iptables-nft", "iptables-legacy"] {
            assert_eq!(Backend::parse(name).unwrap().name(), name);
        }
        assert_eq!(Backend::parse("pf"), None);
    }
}
