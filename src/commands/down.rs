//! `down` (wg-quick's PreDown) and `release`: remove exactly what `up` recorded. Forgiving:
//! what is already gone is fine, and problems are warnings, because a failing PreDown would
//! keep the interface up.

use std::collections::BTreeSet;

use crate::backend;
use crate::backend::firewalld::Zoned;
use crate::config::cli::Args;
use crate::config::types::IfaceName;
use crate::error::Result;
use crate::plan::ledger::{Ledger, Write};
use crate::plan::reliance::{self as plan_reliance, Kept};
use crate::rules::Backend;
use crate::rules::foreign as places;
use crate::system::reliance::{self, Depth};
use crate::system::state::{Record, Refused, Store};
use crate::system::sysctl;

use super::{choose_backend, files};

/// Removes what `up` installed, unless `--lockdown` keeps a client's kill switch.
pub fn down(args: &Args) -> Result<()> {
    let iface = &args.iface;
    super::watcher::stop(iface);
    let Some(store) = open_forgiving(iface)? else {
        return Ok(());
    };
    let kept = store.record(iface)?.is_some_and(|r| r.lockdown);
    if kept {
        crate::errln!(
            "[!] wgfw-hook: keeping the kill switch of {iface} (--lockdown); \"wgfw-hook release {iface}\" removes it"
        );
        return Ok(());
    }
    remove(&store, iface)
}

/// Removes a kill switch that `--lockdown` kept after `down` (or anything else still installed
/// for the interface). Nothing to release is fine.
pub fn release(args: &Args) -> Result<()> {
    super::watcher::stop(&args.iface);
    match open_forgiving(&args.iface)? {
        Some(store) => remove(&store, &args.iface),
        None => Ok(()),
    }
}

/// The records, or None (with a warning) where another user could have put something in
/// their directory: then nothing is known for sure, and nothing is removed (the firewall stays
/// closed; a PreDown that failed would keep the interface up).
fn open_forgiving(iface: &IfaceName) -> Result<Option<Store>> {
    match Store::opened() {
        Ok(store) => Ok(Some(store)),
        Err(Refused::Untrusted(e)) => {
            crate::errln!("wgfw-hook: {iface}: warning: {e} (nothing was removed)");
            Ok(None)
        }
        Err(Refused::Failed(e)) => Err(e),
    }
}

/// Removes the interface's rules, accepts, sysctls and records.
pub(super) fn remove(store: &Store, iface: &IfaceName) -> Result<()> {
    let records = store.records()?;
    let mine = records.iter().find(|r| &r.iface == iface);
    let others: Vec<Record> = records
        .iter()
        .filter(|r| &r.iface != iface)
        .cloned()
        .collect();
    let mut warned = false;
    let mut warn = |warnings: Vec<String>| {
        for w in &warnings {
            crate::errln!("wgfw-hook: warning: {w}");
        }
        warned |= !warnings.is_empty();
    };
    warn(remove_rules(store, iface, mine, &others)?);
    for file in [
        files::foreign(iface),
        files::firewalld(iface),
        files::nft_shape(iface),
        files::options(iface),
        files::wgconf(iface),
        files::rollback(iface),
        // A killed watcher's account (a live one was stopped first, or is the caller).
        super::watcher::file(iface),
    ] {
        store.write_named(&file, "")?;
    }
    let own: Vec<String> = records.iter().map(|r| r.iface.to_string()).collect();
    warn(restore_sysctls(store, iface, &own)?);
    store.remove_record(iface)?;
    tidy(store)?;
    if warned {
        crate::errln!("wgfw-hook: {iface}: removed what could be removed (see the warnings above)");
    }
    Ok(())
}

/// Takes out our accepts in other managers' chains and our rules, with the backend that put
/// them in; returns the warnings.
fn remove_rules(
    store: &Store,
    iface: &IfaceName,
    mine: Option<&Record>,
    others: &[Record],
) -> Result<Vec<String>> {
    let backends: Vec<Backend> = match (mine, others.first()) {
        (Some(r), _) => vec![r.backend],
        (None, Some(_)) => vec![choose_backend(None, None, others)?.0],
        // Nothing recorded (a reboot emptied /run while saved rules came back, or never up):
        // remove whatever carries this interface's name, with every backend there is.
        (None, None) => backend::installed_backends(),
    };
    let recorded = places::decode(
        &store
            .read_named(&files::foreign(iface))?
            .unwrap_or_default(),
    );
    let mut warnings = backend::foreign::remove(iface, &recorded);
    let zoned = store
        .read_named(&files::firewalld(iface))?
        .unwrap_or_default();
    if let Some(z) = Zoned::decode(&zoned) {
        warnings.extend(backend::firewalld::undo(iface, &z));
    }
    for b in backends {
        warnings.extend(backend::remove(b, iface, mine, others));
    }
    Ok(warnings)
}

/// Puts back the sysctls nobody else holds, unless something else relies on them now;
/// returns the warnings.
fn restore_sysctls(store: &Store, iface: &IfaceName, own: &[String]) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut ledger = Ledger::parse(&store.read_named(files::LEDGER)?.unwrap_or_default());
    let recorded = ledger.clone();
    let writes = ledger.release(iface.as_str());
    settle(iface, writes, &recorded, own, |w| {
        if sysctl::exists(&w.key)
            && sysctl::read(&w.key).ok().as_deref() != Some(w.value.as_str())
            && let Err(e) = sysctl::write(&w.key, &w.value)
        {
            warnings.push(e.to_string());
        }
    });
    store.write_named(files::LEDGER, &ledger.render())?;
    Ok(warnings)
}

/// Performs the writes that put settings back, except where something else now relies on the
/// value (`plan::reliance`): those stay, each said in one line. A restored switch rewrites
/// other keys (IPv4 forwarding off turns `conf.all.accept_redirects` on), so a key that stays
/// is written back to its value if that happened. `recorded`: the ledger before the release
/// (which switch each key followed, what already wanted each value); `own`: the interfaces the
/// hook manages here.
pub(super) fn settle(
    iface: &IfaceName,
    writes: Vec<Write>,
    recorded: &Ledger,
    own: &[String],
    mut perform: impl FnMut(&Write),
) {
    let (writes, kept) = sort_restores(iface, writes, recorded, own, Depth::Rules);
    for k in &kept {
        crate::errln!(
            "wgfw-hook: {iface}: leaving {}={}: {}",
            k.key,
            k.value,
            k.why
        );
    }
    for w in &writes {
        perform(w);
    }
    for k in &kept {
        if sysctl::read(&k.key).is_ok_and(|now| now != k.value) {
            perform(&Write {
                key: k.key.clone(),
                value: k.value.clone(),
            });
        }
    }
}

/// `settle` without a word: the writes to perform and the settings left, with why.
pub(super) fn sort_restores(
    iface: &IfaceName,
    writes: Vec<Write>,
    recorded: &Ledger,
    own: &[String],
    depth: Depth,
) -> (Vec<Write>, Vec<Kept>) {
    if writes.is_empty() {
        return (writes, Vec::new());
    }
    let current = sysctl::read_all(writes.iter().map(|w| &w.key));
    let own = with_iface(own, iface);
    let baseline = recorded.baselines();
    let relied = reliance::gather(&writes, &current, &baseline, &own, depth);
    plan_reliance::sort(writes, &recorded.followers(), &current, &relied, &baseline)
}

/// The managed interfaces and `iface`, as names.
pub(super) fn with_iface<'a>(own: &'a [String], iface: &'a IfaceName) -> Vec<&'a str> {
    let mut names: Vec<&str> = own.iter().map(String::as_str).collect();
    names.push(iface.as_str());
    names
}

/// What `down` of `iface` would leave as it is, and why: `status` and `check` say it ahead
/// (`check`, which the timer runs every minute, without reading other tools' rules).
pub(super) fn left_at_down(store: &Store, iface: &IfaceName, depth: Depth) -> Result<Vec<Kept>> {
    let mut ledger = Ledger::parse(&store.read_named(files::LEDGER)?.unwrap_or_default());
    let recorded = ledger.clone();
    let writes = ledger.release(iface.as_str());
    Ok(sort_restores(iface, writes, &recorded, &managed(store)?, depth).1)
}

/// The interfaces the hook manages here.
pub(super) fn managed(store: &Store) -> Result<Vec<String>> {
    Ok(store
        .records()?
        .iter()
        .map(|r| r.iface.to_string())
        .collect())
}

/// Once no interface is managed in this namespace any more: deletes the empty tables and base
/// chains iptables-nft created for us, and the namespace's records.
pub(super) fn tidy(store: &Store) -> Result<()> {
    if !store.records()?.is_empty() {
        return Ok(());
    }
    if let Some(before) = store.read_named(files::NFT_BEFORE)? {
        let before: BTreeSet<String> = before.lines().map(String::from).collect();
        backend::residue::clean(&before);
        store.write_named(files::NFT_BEFORE, "")?;
    }
    if Ledger::parse(&store.read_named(files::LEDGER)?.unwrap_or_default())
        .entries
        .is_empty()
    {
        store.write_named(files::LEDGER, "")?;
    }
    store.remove_dir_if_empty();
    Ok(())
}
