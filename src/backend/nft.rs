//! The apply step for native nftables: every interface's chains live in the one table
//! `inet wgfw`, and each change is one `nft -f` transaction computed by `rules::nft`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::types::IfaceName;
use crate::error::{Error, Result};
use crate::plan::{Family, Plan};
use crate::rules::listing::Listing;
use crate::rules::{self, Chain, ChainId, nft};
use crate::system::state::Record;
use crate::system::{cmd, os};

use super::shared::{families, members};

/// `nft list chains`: every table and chain, with the hook and policy of base chains, but no
/// rules. All we need to know of other managers' tables, and flat in cost: with 20,000 foreign
/// rules, `nft list ruleset` takes nft half a second, `list chains` a few milliseconds.
pub(crate) fn overview() -> Result<Listing> {
    let out = cmd::run("nft", &["list", "chains"], None)?;
    if out.ok {
        Ok(Listing::parse(&out.stdout))
    } else {
        Err(Error::system(format!(
            "nft list chains failed: {}",
            cmd::first_line(&out.stderr)
        )))
    }
}

/// `nft list table inet wgfw`, empty when there is no such table.
pub(crate) fn table() -> Result<String> {
    let out = cmd::run("nft", &["list", "table", "inet", "wgfw"], None)?;
    Ok(if out.ok { out.stdout } else { String::new() })
}

fn submit(script: &str) -> Result<()> {
    cmd::transaction("nft", &["-f", "-"], script, "the rules", None)
}

/// Our table before a change. It is listed only where the overview shows it: the first `up`
/// saves a process.
pub(crate) fn read(overview: &Listing) -> Result<nft::Live> {
    let listing = match nft::overview_chains(overview) {
        Some(_) => table()?,
        None => String::new(),
    };
    Ok(nft::Live::parse(&listing))
}

/// `desired` for every family of the plan, for the table that holds them all.
fn desired_all(plan: &Plan, others: &[Record]) -> Vec<(Family, Chain)> {
    plan.families
        .iter()
        .flat_map(|fp| {
            rules::desired(plan, fp.family, &members(others, fp.family))
                .into_iter()
                .map(|c| (fp.family, c))
        })
        .collect()
}

/// What puts an `apply` back.
pub(crate) enum Undo {
    /// The table as it was.
    Table(nft::Live),
    /// The transaction that takes an element-only change back.
    Elements(String),
}

/// Installs `plan` in one transaction. Where the ruleset's generation is the one `shape`
/// recorded, nobody changed it since our last commit: if only elements differ, the
/// transaction is those elements alone, and the table is not listed. Otherwise (or if nft
/// refuses them) the table is listed and rebuilt. Returns what puts the change back, and the
/// new record: empty where another commit may have come between (then the next change is a
/// full one).
pub(crate) fn apply(
    plan: &Plan,
    others: &[Record],
    overview: &Listing,
    shape: Option<&str>,
) -> Result<(Undo, String)> {
    let want = desired_all(plan, others);
    let new = nft::Shape::of(&want);
    let generation = || os::os().nft_generation();
    let record = |before: Option<u32>| match (before, generation()) {
        (Some(b), Some(now)) if now == b.wrapping_add(1) => new.record(now),
        _ => String::new(),
    };
    // The record is read only where nobody committed since it was written.
    let now = generation();
    let recorded = shape
        .filter(|s| now.is_some() && nft::Shape::generation_of(s) == now)
        .and_then(nft::Shape::parse);
    if let Some((g, old)) = &recorded
        && nft::overview_chains(overview).is_some()
        && let Some((forward, back)) = nft::element_change(old, &new)
    {
        if forward.is_empty() {
            return Ok((Undo::Elements(back), new.record(*g)));
        }
        match cmd::transaction(
            "nft",
            &["-f", "-"],
            &forward,
            "the rules",
            Some("the peers' addresses alone"),
        ) {
            Ok(()) => return Ok((Undo::Elements(back), record(Some(*g)))),
            // Refused, it changed nothing: the full change below lists what is there.
            Err(e) => log::info!("{e}: listing the table and writing it whole"),
        }
    }
    let before = read(overview)?;
    let g = generation();
    apply_whole(&want, plan, &before)?;
    Ok((Undo::Table(before), record(g)))
}

/// The whole change, computed from the listed table.
fn apply_whole(want: &[(Family, Chain)], plan: &Plan, before: &nft::Live) -> Result<()> {
    let Some(script) = nft::transaction(want, &own(&plan.iface, before), before) else {
        return Ok(());
    };
    submit(&script).inspect_err(|_| {
        // A refused transaction changed nothing; one that reports failure after its commit
        // did, and is taken back.
        let now = table().map(|t| nft::Live::parse(&t)).unwrap_or_default();
        if !now.same_rules(before) {
            undo(before);
        }
    })
}

/// How the interface's own chains and sets differ between what the last transaction recorded
/// (`shape`, the table as installed) and what `plan` wants now (`rules::nft::drift`).
pub(crate) fn drift(plan: &Plan, others: &[Record], shape: Option<&str>) -> Vec<String> {
    match shape.and_then(nft::Shape::parse) {
        Some((_, installed)) => nft::drift(
            &installed,
            &nft::Shape::of(&desired_all(plan, others)),
            &plan.iface,
        ),
        None => Vec::new(),
    }
}

/// How the live table differs from what `plan` installs, one line per difference.
pub(crate) fn differences(plan: &Plan, others: &[Record], before: &nft::Live) -> Vec<String> {
    nft::differences(&desired_all(plan, others), before)
}

/// The packets the interface's counted rules saw, by label.
pub(crate) fn counters(iface: &IfaceName) -> BTreeMap<String, u64> {
    let live = nft::Live::parse(&table().unwrap_or_default());
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for (label, n) in nft::counted(&live, &names_in(iface, &live.chains())) {
        *sums.entry(label).or_default() += n;
    }
    sums
}

/// Takes an element-only change back (after a later step failed).
pub(crate) fn undo_elements(back: &str) {
    if !back.is_empty()
        && let Err(e) = submit(back)
    {
        crate::errln!("wgfw-hook: warning: could not put the nft table back: {e}");
    }
}

/// Puts the table back as it was in `before` (after a later step failed).
pub(crate) fn undo(before: &nft::Live) {
    let now = table().map(|t| nft::Live::parse(&t)).unwrap_or_default();
    let mut script = String::new();
    if now.exists() {
        script.push_str(&format!("delete table {}\n", nft::TABLE));
    }
    if before.exists() {
        script.push_str(&before.listing);
    }
    if !script.is_empty()
        && let Err(e) = submit(&script)
    {
        crate::errln!("wgfw-hook: warning: could not put the nft table back: {e}");
    }
}

/// Removes the interface's chains (and the table with the last interface). Forgiving: returns
/// warnings instead of failing, because `down` must not keep a tunnel up.
pub(crate) fn remove(iface: &IfaceName, others: &[Record], ipv6: bool) -> Vec<String> {
    let mut gone: Vec<String> = families(ipv6)
        .into_iter()
        .map(|f| nft::chain_name(&ChainId::SharedInput, f))
        .collect();
    // The last interface takes the whole table with it, which needs only its chains' names,
    // not a listing of its rules (3 ms more); anything else in it keeps it.
    if others.is_empty() {
        let chains = match overview() {
            Ok(o) => nft::overview_chains(&o),
            Err(e) => return vec![e.to_string()],
        };
        let Some(chains) = chains else {
            return Vec::new();
        };
        gone.extend(names_in(iface, &chains));
        if chains
            .iter()
            .all(|c| gone.contains(c) || nft::base_chain(c))
        {
            return match submit(&format!("delete table {}\n", nft::TABLE)) {
                Ok(()) => Vec::new(),
                Err(e) => vec![e.to_string()],
            };
        }
    }
    let table = match table() {
        Ok(t) => nft::Live::parse(&t),
        Err(e) => return vec![e.to_string()],
    };
    let want: Vec<(Family, Chain)> = families(ipv6)
        .into_iter()
        .flat_map(|f| {
            rules::shared_chains(f, &members(others, f))
                .into_iter()
                .map(move |c| (f, c))
        })
        .collect();
    gone.extend(own(iface, &table));
    match nft::transaction(&want, &gone, &table).map(|script| submit(&script)) {
        Some(Err(e)) => vec![e.to_string()],
        _ => Vec::new(),
    }
}

/// The names of every chain the interface owns: those it may own whatever its settings, and
/// its groups' chains among `chains`, the table's.
fn names_in(iface: &IfaceName, chains: &BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = ChainId::all_of(iface)
        .iter()
        .flat_map(|id| Family::BOTH.map(|f| nft::chain_name(id, f)))
        .collect();
    names.extend(
        chains
            .iter()
            .filter(|c| {
                !names.contains(c)
                    && nft::chain_of_name(c).is_some_and(|(id, _)| id.iface() == Some(iface))
            })
            .cloned()
            .collect::<Vec<_>>(),
    );
    names
}

/// The chains and sets of the table that belong to the interface.
fn own(iface: &IfaceName, table: &nft::Live) -> Vec<String> {
    let chains = names_in(iface, &table.chains());
    let mut names = nft::sets_used(table, &chains);
    names.extend(chains);
    names
}
