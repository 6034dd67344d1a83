//! The apply step for iptables (nft or legacy flavour): one `iptables-restore --noflush`
//! transaction per family, computed by `rules::iptables` against the live rules read here.

use std::collections::BTreeMap;

use crate::config::types::IfaceName;
use crate::error::{Error, Result};
use crate::plan::{Family, Plan};
use crate::rules::iptables::{self, Live, Variant};
use crate::rules::listing::Listing;
use crate::rules::{self, ChainId};
use crate::system::state::Record;
use crate::system::{cmd, xtables};

use super::nft;
use super::shared::{families, members};

/// A restore adds to what is there, and waits its turn for the xtables lock.
pub(crate) const RESTORE_ARGS: [&str; 3] = ["--noflush", "--wait", "10"];

/// The families' rules before a change: where no chain of ours exists yet (the first `up`),
/// the chains and policies are all there is to know: for iptables-nft the nftables overview
/// says them, for legacy the kernel's table, neither formatting every rule of the host.
pub(crate) fn read(
    v: Variant,
    families: &[Family],
    overview: Option<&Listing>,
) -> Result<BTreeMap<Family, Live>> {
    let mut lives = BTreeMap::new();
    let mut saved = Vec::new();
    for f in families {
        let light = match v {
            Variant::Nft => overview.map(|o| Live::from_overview(o, *f)),
            Variant::Legacy => xtables::overview(*f),
        }
        .filter(|l| !l.has_own_chains());
        match light {
            Some(l) => {
                lives.insert(*f, l);
            }
            None => saved.push(*f),
        }
    }
    // The families' `-save`s side by side: a repair waits for the slower, not for both.
    let progs: Vec<String> = saved.iter().map(|f| v.save(*f)).collect();
    let jobs: Vec<(&str, &[&str], Option<&str>)> =
        progs.iter().map(|p| (p.as_str(), &[][..], None)).collect();
    for ((f, prog), out) in saved.iter().zip(&progs).zip(cmd::run_together(&jobs)) {
        lives.insert(*f, parse_saved(prog, out?)?);
    }
    Ok(lives)
}

/// iptables-nft where the interface's chains are expected: `nft list chains` and every
/// family's `-save`, side by side. The overview is None where nft fails, as in `read`'s caller.
pub(crate) fn read_with_overview(
    families: &[Family],
) -> Result<(Option<Listing>, BTreeMap<Family, Live>)> {
    let progs: Vec<String> = families.iter().map(|f| Variant::Nft.save(*f)).collect();
    let mut jobs: Vec<(&str, &[&str], Option<&str>)> = vec![("nft", &["list", "chains"], None)];
    jobs.extend(progs.iter().map(|p| (p.as_str(), &[][..], None)));
    let mut outs = cmd::run_together(&jobs).into_iter();
    let overview = outs
        .next()
        .and_then(|o| o.ok())
        .filter(|o| o.ok)
        .map(|o| Listing::parse(&o.stdout));
    let mut lives = BTreeMap::new();
    for ((f, prog), out) in families.iter().zip(&progs).zip(outs) {
        lives.insert(*f, parse_saved(prog, out?)?);
    }
    Ok((overview, lives))
}

/// The live ruleset of one family as the variant's `-save` shows it.
pub(crate) fn live_rules(variant: Variant, family: Family) -> Result<Live> {
    let prog = variant.save(family);
    parse_saved(&prog, cmd::run(&prog, &[], None)?)
}

fn parse_saved(prog: &str, out: cmd::Output) -> Result<Live> {
    if !out.ok {
        return Err(Error::system(format!(
            "{prog} failed: {}",
            cmd::first_line(&out.stderr)
        )));
    }
    Ok(Live::parse(&out.stdout))
}

fn restore(variant: Variant, family: Family, script: &str) -> Result<()> {
    let what = format!("the {family} rules");
    cmd::transaction(&variant.restore(family), &RESTORE_ARGS, script, &what, None)
}

/// Installs `plan`, all or nothing: a family that fails leaves the others as they were.
pub(crate) fn apply(
    v: Variant,
    plan: &Plan,
    others: &[Record],
    lives: &BTreeMap<Family, Live>,
) -> Result<()> {
    let mut scripts = Vec::new();
    for fp in &plan.families {
        let mut want = desired(plan, fp.family, others);
        let live = &lives[&fp.family];
        let mut gone = live.ids_of(&plan.iface, false);
        let (moved, old) = iptables::moved_host_input(&want, live);
        want.extend(moved);
        gone.extend(old);
        if let Some(s) = iptables::transaction(&want, &gone, live) {
            scripts.push((fp.family, s));
        }
    }
    if v == Variant::Nft && scripts.len() > 1 {
        // The families are tables of their own: their restores run side by side, and a
        // failure puts back every family, since each may have committed. (iptables-legacy's
        // restores share the xtables lock: one would wait a second for the other's.)
        let what: Vec<String> = scripts
            .iter()
            .map(|(f, _)| format!("the {f} rules"))
            .collect();
        let progs: Vec<String> = scripts.iter().map(|(f, _)| v.restore(*f)).collect();
        let jobs: Vec<cmd::Script<'_>> = scripts
            .iter()
            .zip(&progs)
            .zip(&what)
            .map(|(((_, script), prog), what)| cmd::Script {
                program: prog,
                args: &RESTORE_ARGS,
                script,
                what,
            })
            .collect();
        if let Some(e) = cmd::transactions(&jobs).into_iter().find_map(Result::err) {
            let applied: Vec<Family> = scripts.iter().map(|(f, _)| *f).collect();
            undo(v, &plan.iface, &applied, lives);
            return Err(e);
        }
        return Ok(());
    }
    let mut applied = Vec::new();
    for (family, script) in &scripts {
        // A restore that reports failure may have committed all the same (killed after its
        // commit, a lost reply): that family is put back too.
        applied.push(*family);
        if let Err(e) = restore(v, *family, script) {
            undo(v, &plan.iface, &applied, lives);
            return Err(e);
        }
    }
    Ok(())
}

fn desired(plan: &Plan, family: Family, others: &[Record]) -> Vec<iptables::Chain> {
    iptables::render(
        &rules::desired(plan, family, &members(others, family)),
        family,
    )
}

/// How the live rules differ from what `plan` installs, one line per difference.
pub(crate) fn differences(
    plan: &Plan,
    others: &[Record],
    lives: &BTreeMap<Family, Live>,
) -> Vec<String> {
    plan.families
        .iter()
        .flat_map(|fp| {
            let want = desired(plan, fp.family, others);
            iptables::differences(&want, &lives[&fp.family], fp.family)
        })
        .collect()
}

/// The packets the interface's counted rules saw, by label.
pub(crate) fn counters(v: Variant, plan: &Plan, others: &[Record]) -> BTreeMap<String, u64> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for fp in &plan.families {
        let Ok(out) = cmd::run(&v.save(fp.family), &["-c"], None) else {
            continue;
        };
        let live = iptables::counted(&out.stdout);
        for c in rules::desired(plan, fp.family, &members(others, fp.family))
            .iter()
            .filter(|c| c.id.iface() == Some(&plan.iface))
        {
            for r in &c.rules {
                let Some(label) = &r.counts else { continue };
                let text = iptables::render_rule(r, fp.family);
                let n = live
                    .get(&(c.table(), c.id.to_string()))
                    .and_then(|rs| rs.iter().find(|(t, _)| *t == text))
                    .map_or(0, |(_, n)| *n);
                *sums.entry(label.to_string()).or_default() += n;
            }
        }
    }
    sums
}

/// Puts our chains of the given families back as they were before this run.
pub(crate) fn undo(
    variant: Variant,
    iface: &IfaceName,
    applied: &[Family],
    before: &BTreeMap<Family, Live>,
) {
    for family in applied.iter().rev() {
        let names = before[family].ids_of(iface, true);
        let old = chains_in(&before[family], &names);
        let result = live_rules(variant, *family).and_then(|now| {
            match iptables::transaction(&old, &now.ids_of(iface, true), &now) {
                Some(script) => restore(variant, *family, &script),
                None => Ok(()),
            }
        });
        if let Err(e) = result {
            crate::errln!("wgfw-hook: warning: could not undo the {family} rules: {e}");
        }
    }
}

/// Our chains as they stand in `live`, in whichever table holds them, to put them back after a
/// failed change.
fn chains_in(live: &Live, ids: &[ChainId]) -> Vec<iptables::Chain> {
    let mut out = Vec::new();
    for id in ids {
        let name = id.to_string();
        for table in rules::Table::ALL
            .into_iter()
            .filter(|t| live.has_chain(*t, &name))
        {
            let jump = format!("-j {id}");
            let hook = iptables::BUILT_IN
                .iter()
                .copied()
                .find(|h| live.rules_of(table, h).contains(&jump));
            out.push(iptables::Chain {
                id: id.clone(),
                table,
                hook,
                rules: live.rules_of(table, &name).to_vec(),
            });
        }
    }
    out
}

/// Removes the interface's chains (and the shared one with the last interface). Forgiving:
/// returns warnings instead of failing, because `down` must not keep a tunnel up.
pub(crate) fn remove(
    v: Variant,
    iface: &IfaceName,
    others: &[Record],
    recorded: Option<&BTreeMap<Family, Vec<(rules::Table, ChainId)>>>,
    ipv6: bool,
) -> Vec<String> {
    let last = others.is_empty();
    // The last interface: the chains come from the nftables overview (iptables-nft) or the
    // record (legacy), and the jumps to them are taken to be as `up` put them, so no rule is
    // read at all; where they are not, the restore changes nothing and the rules are read
    // after all.
    let overview = (v == Variant::Nft && last)
        .then(|| cmd::find("nft").and_then(|_| nft::overview().ok()))
        .flatten();
    let mut warnings = Vec::new();
    for family in families(ipv6) {
        let assumed = match (&overview, recorded.and_then(|r| r.get(&family))) {
            _ if !last => None,
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
        let mut gone = live.ids_of(iface, false);
        if m.is_empty() {
            gone.push(ChainId::SharedInput);
        }
        // Rebuild the shared chain only when this interface is in it or it must go.
        let jump = format!("-j {}", ChainId::own(iface, rules::Kind::In));
        let shared = ChainId::SharedInput.to_string();
        let in_shared = rules::Table::ALL
            .into_iter()
            .any(|t| live.rules_of(t, &shared).contains(&jump));
        let mut want = if in_shared {
            iptables::render(&rules::shared_chains(family, &m), family)
        } else {
            Vec::new()
        };
        // Where an older version left the others' host input in filter, it moves along.
        if !m.is_empty() {
            let (moved, old) = iptables::moved_host_input(&want, &live);
            want.extend(moved.into_iter().filter(|c| c.id.iface() != Some(iface)));
            gone.extend(old);
        }
        if let Some(script) = iptables::transaction(&want, &gone, &live)
            && let Err(e) = restore(v, family, &script)
        {
            warnings.push(e.to_string());
        }
    }
    warnings
}

/// Removes all of ours from one family, the last interface's chains and the shared one, taking
/// `live` to hold those chains and the jumps `up` put to them. Whether that worked; if not, the
/// restore was refused whole and the caller reads the rules.
fn remove_all_as_assumed(v: Variant, family: Family, iface: &IfaceName, mut live: Live) -> bool {
    live.assume_jumps(&ChainId::hooked(iface, true));
    let gone = live.ids_of(iface, true);
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
