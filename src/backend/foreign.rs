//! Puts the accepts that `rules::foreign` says other managers' chains need in place, and takes
//! them out again: iptables places through that flavour's restore, native nftables places
//! through `nft -f`, each marked `wgfw:IFACE`.

use std::collections::BTreeMap;

use crate::config::types::IfaceName;
use crate::error::Result;
use crate::plan::Family;
use crate::rules::foreign::{
    FIREWALLD_TABLE, IPTABLES_TABLES, Part, Place, View, anchor, handles_marked, in_place,
    iptables_part, mark, nft_part,
};
use crate::rules::iptables::Variant;
use crate::rules::listing::{Listing, Rule as ListedRule};
use crate::rules::model::Rule;
use crate::rules::nft;
use crate::rules::{Backend, Table};
use crate::system::{cmd, firewalld, xtables};

use super::iptables;

/// Reads the iptables variant we do not use, where it has tables at all (each `-save` costs a
/// process, and legacy's a copy of its whole table), next to what `before` read: the nft
/// overview, and our own variant's rules.
pub(crate) fn read(backend: Backend, families: &[Family], before: Option<&super::Before>) -> View {
    let mut view = View {
        nft_overview: before
            .and_then(super::Before::overview)
            .cloned()
            .or_else(|| super::nft::overview().ok())
            .unwrap_or_default(),
        ..View::default()
    };
    if let Some(super::Before::Iptables { variant, lives, .. }) = before {
        view.own = Some(*variant);
        for (f, live) in lives {
            view.iptables.push((*variant, *f, live.clone()));
        }
    }
    // Asked only where its table is: elsewhere no bus call is made.
    if view.nft_overview.table(FIREWALLD_TABLE).is_some() {
        view.firewalld_api = firewalld::default_zone();
        // Without its API, whether the table is firewalld 2.x's own (`list chains` does not
        // show flags): our accepts there would be refused (`rules::foreign::refusal`).
        if view.firewalld_api.is_none() {
            let flags = table_flags(FIREWALLD_TABLE);
            if let Some(t) = view
                .nft_overview
                .tables
                .iter_mut()
                .find(|t| t.id() == FIREWALLD_TABLE)
            {
                t.flags = flags;
            }
        }
    }
    let nft_overview = &view.nft_overview;
    for v in [Variant::Nft, Variant::Legacy] {
        if backend == Backend::Iptables(v) || cmd::find(&v.save(Family::V4)).is_none() {
            continue;
        }
        for f in families {
            if has_tables(v, *f, nft_overview)
                && let Ok(live) = iptables::live_rules(v, *f)
            {
                view.iptables.push((v, *f, live));
            }
        }
    }
    view
}

/// A table's flags (`owner`...), as `nft -t list table` shows them (sets without elements);
/// none where it cannot be listed.
fn table_flags(table: &str) -> Vec<String> {
    let (family, name) = table.split_once(' ').unwrap_or(("inet", table));
    match cmd::run("nft", &["-t", "list", "table", family, name], None) {
        Ok(out) if out.ok => Listing::parse(&out.stdout)
            .table(table)
            .map(|t| t.flags.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Whether a variant has tables in this family: legacy's are listed in /proc/net, iptables-nft's
/// are nft tables of the family with an iptables table's name.
fn has_tables(variant: Variant, family: Family, nft_overview: &Listing) -> bool {
    let nft_family = match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    };
    match variant {
        Variant::Legacy => xtables::legacy_tables_exist(family),
        Variant::Nft => nft_overview
            .tables
            .iter()
            .any(|t| t.family == nft_family && IPTABLES_TABLES.contains(&t.name.as_str())),
    }
}

/// Puts the accepts in place, right before each chain's default deny (replacing ours from
/// before, so `up` twice adds nothing twice), and returns what to record.
pub(crate) fn apply(
    iface: &IfaceName,
    wanted: &BTreeMap<Place, Vec<Rule>>,
    recorded: &[Place],
) -> Result<Vec<Place>> {
    let mut places: Vec<Place> = wanted.keys().cloned().collect();
    for p in recorded {
        if !places.contains(p) {
            places.push(p.clone());
        }
    }
    for place in &places {
        let model: &[Rule] = wanted.get(place).map(Vec::as_slice).unwrap_or_default();
        let rules: Vec<String> = model.iter().map(|r| place.render(r)).collect();
        let why = format!(
            "accept {iface}'s traffic before the default deny of {}",
            place.describe()
        );
        let m = mark(iface);
        match place {
            // iptables-nft's tables are nftables tables: written natively, the mark is a rule
            // comment that `nft list` shows too (iptables' comment match it prints as nothing),
            // and iptables-nft-save still reads the rules as the plain iptables ones they are.
            Place::Iptables {
                variant: Variant::Nft,
                family,
                chain,
            } => {
                let old = marked_iptables(Variant::Nft, *family, chain, &m)?;
                let table = format!("{} filter", nft_family(*family));
                let mut listed = nft_chain(&table, chain)?;
                // Accepts an older version wrote with the comment match, which nft cannot name,
                // are taken out the way they were put in, and written again natively.
                let unnamed = handles_marked(&listed, &m).len() != old.len();
                if unnamed {
                    replace_iptables(Variant::Nft, *family, chain, &old, &[], &why)?;
                    listed = nft_chain(&table, chain)?;
                }
                if unnamed || old != rules || !nft_in_place(&listed, &m) {
                    let native: Vec<String> =
                        model.iter().map(|r| nft::render_rule(r, *family)).collect();
                    replace_nft(&table, chain, &m, &native, &listed, &why)?;
                }
            }
            Place::Iptables {
                variant,
                family,
                chain,
            } => {
                let live = iptables::live_rules(*variant, *family)?;
                let now = live.rules_of(Table::Filter, chain);
                let parts: Vec<Part> = now.iter().map(|r| iptables_part(r, &m)).collect();
                let old: Vec<String> = ours(now, &parts);
                if old != rules || !in_place(&parts) {
                    let at = anchor(&parts);
                    let end = at == parts.iter().filter(|p| **p != Part::Ours).count();
                    let at = (!end).then_some(at);
                    replace_iptables_at(*variant, *family, chain, &old, &rules, at, &why)?
                }
            }
            Place::Nft { table, chain } => {
                let listed = nft_chain(table, chain)?;
                let texts: Vec<&str> = chain_rules(&listed)
                    .iter()
                    .filter(|r| nft_part(&r.text, &m) == Part::Ours)
                    .map(|r| r.text.as_str())
                    .collect();
                if texts != rules || !nft_in_place(&listed, &m) {
                    replace_nft(table, chain, &m, &rules, &listed, &why)?
                }
            }
        }
    }
    Ok(wanted.keys().cloned().collect())
}

/// The rules of `now` that `parts` says are ours.
fn ours(now: &[String], parts: &[Part]) -> Vec<String> {
    now.iter()
        .zip(parts)
        .filter(|(_, p)| **p == Part::Ours)
        .map(|(r, _)| r.clone())
        .collect()
}

/// Takes `old` (ours there now) out of a built-in chain of an iptables flavour, in one restore.
fn replace_iptables(
    variant: Variant,
    family: Family,
    chain: &str,
    old: &[String],
    rules: &[String],
    why: &str,
) -> Result<()> {
    replace_iptables_at(variant, family, chain, old, rules, None, why)
}

/// Puts `rules` into a built-in chain of an iptables flavour in place of `old`, ours there now,
/// in one restore: before the rule at index `at` of those that are not ours, or at the end.
fn replace_iptables_at(
    variant: Variant,
    family: Family,
    chain: &str,
    old: &[String],
    rules: &[String],
    at: Option<usize>,
    why: &str,
) -> Result<()> {
    if old.is_empty() && rules.is_empty() {
        return Ok(());
    }
    let mut script = String::from("*filter\n");
    for r in old {
        script.push_str(&format!("-D {chain} {r}\n"));
    }
    match at {
        Some(at) => {
            for r in rules.iter().rev() {
                script.push_str(&format!("-I {chain} {} {r}\n", at + 1));
            }
        }
        None => {
            for r in rules {
                script.push_str(&format!("-A {chain} {r}\n"));
            }
        }
    }
    script.push_str("COMMIT\n");
    let prog = variant.restore(family);
    cmd::transaction(
        &prog,
        &iptables::RESTORE_ARGS,
        &script,
        "our accepts",
        Some(why),
    )
}

fn nft_family(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// Puts `rules` into a native nftables chain (`listed`, as it is now) in place of the ones
/// marked `mark`, right before its default deny, in one `nft -f`.
fn replace_nft(
    table: &str,
    chain: &str,
    mark: &str,
    rules: &[String],
    listed: &Listing,
    why: &str,
) -> Result<()> {
    let now = chain_rules(listed);
    let parts: Vec<Part> = now.iter().map(|r| nft_part(&r.text, mark)).collect();
    let mut script: String = handles_marked(listed, mark)
        .iter()
        .map(|h| format!("delete rule {table} {chain} handle {h}\n"))
        .collect();
    let others: Vec<&ListedRule> = now
        .iter()
        .zip(&parts)
        .filter(|(_, p)| **p != Part::Ours)
        .map(|(r, _)| r)
        .collect();
    let before = others.get(anchor(&parts)).and_then(|r| r.handle);
    for r in rules {
        match before {
            Some(h) => script.push_str(&format!("insert rule {table} {chain} position {h} {r}\n")),
            None => script.push_str(&format!("add rule {table} {chain} {r}\n")),
        }
    }
    if script.is_empty() {
        return Ok(());
    }
    cmd::transaction("nft", &["-f", "-"], &script, "our accepts", Some(why))
}

/// Whether our accepts in a listed native chain stand together right before its default deny.
fn nft_in_place(listed: &Listing, mark: &str) -> bool {
    let parts: Vec<Part> = chain_rules(listed)
        .iter()
        .map(|r| nft_part(&r.text, mark))
        .collect();
    in_place(&parts)
}

/// The rules of the one chain a chain listing holds.
fn chain_rules(listed: &Listing) -> &[ListedRule] {
    listed
        .tables
        .iter()
        .flat_map(|t| &t.chains)
        .next()
        .map_or(&[], |c| c.rules.as_slice())
}

/// How many of our marked accepts a place holds now, and whether they stand where they should.
pub(crate) fn count_marked(iface: &IfaceName, place: &Place) -> (usize, bool) {
    let m = mark(iface);
    match place {
        Place::Iptables {
            variant,
            family,
            chain,
        } => iptables::live_rules(*variant, *family).map_or((0, true), |live| {
            let parts: Vec<Part> = live
                .rules_of(Table::Filter, chain)
                .iter()
                .map(|r| iptables_part(r, &m))
                .collect();
            (
                parts.iter().filter(|p| **p == Part::Ours).count(),
                in_place(&parts),
            )
        }),
        Place::Nft { table, chain } => nft_chain(table, chain).map_or((0, true), |listed| {
            (handles_marked(&listed, &m).len(), nft_in_place(&listed, &m))
        }),
    }
}

/// Our rules in a built-in chain of an iptables flavour, as its `-save` shows them.
fn marked_iptables(
    variant: Variant,
    family: Family,
    chain: &str,
    mark: &str,
) -> Result<Vec<String>> {
    Ok(iptables::live_rules(variant, family)?
        .rules_of(Table::Filter, chain)
        .iter()
        .filter(|r| iptables_part(r, mark) == Part::Ours)
        .cloned()
        .collect())
}

/// Takes our accepts out of every recorded place; forgiving (returns warnings).
pub(crate) fn remove(iface: &IfaceName, recorded: &[Place]) -> Vec<String> {
    match apply(iface, &BTreeMap::new(), recorded) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

/// One chain as `nft -a list chain` shows it; empty when it is not there.
fn nft_chain(table: &str, chain: &str) -> Result<Listing> {
    let (family, name) = table.split_once(' ').unwrap_or(("inet", table));
    let out = cmd::run("nft", &["-a", "list", "chain", family, name, chain], None)?;
    if !out.ok {
        return Ok(Listing::default());
    }
    Ok(Listing::parse(&out.stdout))
}
