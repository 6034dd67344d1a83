//! Puts the accepts that `rules::foreign` says other managers' chains need in place, and takes
//! them out again: iptables places through that flavour's restore, native nftables places
//! through `nft -f`, each marked `wgfw:IFACE`.

use std::collections::BTreeMap;

use crate::config::types::IfaceName;
use crate::error::Result;
use crate::plan::Family;
use crate::rules::foreign::{IPTABLES_TABLES, Place, View, handles_marked, mark};
use crate::rules::iptables::Variant;
use crate::rules::listing::Listing;
use crate::rules::model::Rule;
use crate::rules::nft;
use crate::rules::{Backend, Table};
use crate::system::cmd;

use super::iptables;

/// Reads the iptables variant we do not use, where it has tables at all (each `-save` costs a
/// process, and legacy's a copy of its whole table), next to the nft overview read before.
pub(crate) fn read(backend: Backend, families: &[Family], overview: Option<&Listing>) -> View {
    let mut view = View {
        nft_overview: overview.cloned().unwrap_or_default(),
        ..View::default()
    };
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

/// Whether a variant has tables in this family: legacy's are listed in /proc/net, iptables-nft's
/// are nft tables of the family with an iptables table's name.
fn has_tables(variant: Variant, family: Family, nft_overview: &Listing) -> bool {
    let (proc_file, nft_family) = match family {
        Family::V4 => ("/proc/net/ip_tables_names", "ip"),
        Family::V6 => ("/proc/net/ip6_tables_names", "ip6"),
    };
    match variant {
        // Unreadable means unknown: read the rules rather than miss them.
        Variant::Legacy => crate::system::os::os()
            .read(std::path::Path::new(proc_file))
            .map_or(true, |t| !t.trim().is_empty()),
        Variant::Nft => nft_overview
            .tables
            .iter()
            .any(|t| t.family == nft_family && IPTABLES_TABLES.contains(&t.name.as_str())),
    }
}

/// Puts the accepts in place (replacing ours from before, so `up` twice adds nothing twice)
/// and returns what to record.
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
        let why = format!("accept {iface}'s traffic first in {}", place.describe());
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
                let old = marked(place, &m)?;
                let table = format!("{} filter", nft_family(*family));
                // Accepts an older version wrote with the comment match, which nft cannot name,
                // are taken out the way they were put in, and written again natively.
                let unnamed = nft_handles(&table, chain, &m)?.len() != old.len();
                if unnamed {
                    replace_iptables(Variant::Nft, *family, chain, &old, &[], &why)?;
                }
                if unnamed || old != rules {
                    let native: Vec<String> =
                        model.iter().map(|r| nft::render_rule(r, *family)).collect();
                    replace_nft(&table, chain, &m, &native, &why)?;
                }
            }
            Place::Iptables {
                variant,
                family,
                chain,
            } => {
                let old = marked(place, &m)?;
                replace_iptables(*variant, *family, chain, &old, &rules, &why)?
            }
            Place::Nft { table, chain } => replace_nft(table, chain, &m, &rules, &why)?,
        }
    }
    Ok(wanted.keys().cloned().collect())
}

/// Puts `rules` first in a built-in chain of an iptables flavour in place of `old`, ours there
/// now, in one restore; nothing when they are the same.
fn replace_iptables(
    variant: Variant,
    family: Family,
    chain: &str,
    old: &[String],
    rules: &[String],
    why: &str,
) -> Result<()> {
    if old == rules {
        return Ok(());
    }
    let mut script = String::from("*filter\n");
    for r in old {
        script.push_str(&format!("-D {chain} {r}\n"));
    }
    for r in rules.iter().rev() {
        script.push_str(&format!("-I {chain} 1 {r}\n"));
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

/// Puts `rules` first in a native nftables chain in place of the ones marked `mark`, in one
/// `nft -f`.
fn replace_nft(table: &str, chain: &str, mark: &str, rules: &[String], why: &str) -> Result<()> {
    let mut script: String = nft_handles(table, chain, mark)?
        .iter()
        .map(|h| format!("delete rule {table} {chain} handle {h}\n"))
        .collect();
    for r in rules.iter().rev() {
        script.push_str(&format!("insert rule {table} {chain} {r}\n"));
    }
    if script.is_empty() {
        return Ok(());
    }
    cmd::transaction("nft", &["-f", "-"], &script, "our accepts", Some(why))
}

/// How many of our marked accepts a place holds now.
pub(crate) fn count_marked(iface: &IfaceName, place: &Place) -> usize {
    marked(place, &mark(iface)).map_or(0, |m| m.len())
}

/// Our rules at a place: as an iptables flavour's save shows them, or the handles of nft's.
fn marked(place: &Place, mark: &str) -> Result<Vec<String>> {
    Ok(match place {
        Place::Iptables {
            variant,
            family,
            chain,
        } => iptables::live_rules(*variant, *family)?
            .rules_of(Table::Filter, chain)
            .iter()
            .filter(|r| r.contains(&format!("--comment \"{mark}\"")))
            .cloned()
            .collect(),
        Place::Nft { table, chain } => nft_handles(table, chain, mark)?
            .iter()
            .map(u64::to_string)
            .collect(),
    })
}

/// Takes our accepts out of every recorded place; forgiving (returns warnings).
pub(crate) fn remove(iface: &IfaceName, recorded: &[Place]) -> Vec<String> {
    match apply(iface, &BTreeMap::new(), recorded) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}

/// The handles of the rules in a chain that carry our mark.
fn nft_handles(table: &str, chain: &str, mark: &str) -> Result<Vec<u64>> {
    let (family, name) = table.split_once(' ').unwrap_or(("inet", table));
    let out = cmd::run("nft", &["-a", "list", "chain", family, name, chain], None)?;
    if !out.ok {
        return Ok(Vec::new());
    }
    Ok(handles_marked(&Listing::parse(&out.stdout), mark))
}
