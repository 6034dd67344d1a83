//! The empty tables and base chains iptables-nft created for us: what existed is noted before
//! the first `up` of a namespace, and the last `down` deletes the rest once empty
//! (`rules::residue` decides what; this lists and deletes).

use std::collections::BTreeSet;

use crate::rules::listing::Listing;
use crate::rules::residue;
use crate::system::cmd;

/// Deletes what iptables-nft created since `before` and left empty. Forgiving: a failure is a
/// warning, because it runs from `down`.
pub(crate) fn clean(before: &BTreeSet<String>) {
    let Some(script) = inventory(before).and_then(|inv| residue::cleanup(before, &inv)) else {
        return;
    };
    let why = "delete the empty tables and chains iptables-nft created";
    if let Err(e) = cmd::transaction("nft", &["-f", "-"], &script, "the cleanup", Some(why)) {
        crate::errln!("wgfw-hook: warning: {e}");
    }
}

/// What the last `down` may delete, with the rules that say whether it is empty: the tables
/// that did not exist before (ours, small) and, in older tables, the chains created since.
/// Listing the whole ruleset instead costs nft a second on a host with 20,000 iptables-nft
/// rules; where nothing else is in nftables it is the same and one process.
fn inventory(before: &BTreeSet<String>) -> Option<Listing> {
    let overview = list(&["list", "chains"])?;
    let new = |t: &String| residue::is_iptables_table(t) && !before.contains(t);
    if overview.tables.iter().all(|t| new(&t.id())) {
        return list(&["list", "ruleset"]);
    }
    let mut text = String::new();
    for t in overview
        .tables
        .iter()
        .filter(|t| residue::is_iptables_table(&t.id()))
    {
        let id = t.id();
        let (family, name) = (t.family.as_str(), t.name.as_str());
        let lists: Vec<Vec<&str>> = if new(&id) {
            vec![vec!["list", "table", family, name]]
        } else {
            t.chains
                .iter()
                .filter(|c| !before.contains(&format!("{id} {}", c.name)))
                .map(|c| vec!["list", "chain", family, name, c.name.as_str()])
                .collect()
        };
        for list in lists {
            let out = cmd::run("nft", &list, None).ok().filter(|o| o.ok)?;
            text.push_str(&out.stdout);
        }
    }
    Some(Listing::parse(&text))
}

/// The tables and chains that `nft LIST` shows (`list chains` for names, `list ruleset` to see
/// which are empty).
fn list(args: &[&str]) -> Option<Listing> {
    let out = cmd::run("nft", args, None).ok().filter(|o| o.ok)?;
    Some(Listing::parse(&out.stdout))
}
