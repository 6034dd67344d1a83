//! `check [--repair]`: whether the live firewall and sysctls are still what `up` installed
//! (another tool may have flushed or reloaded the ruleset), and with `--repair` installs the
//! recorded plan again.

use crate::backend::{self, foreign};
use crate::config::cli::{Args, Options};
use crate::config::types::IfaceName;
use crate::config::wgconf::WgConfig;
use crate::error::Result;
use crate::rules::foreign as places;
use crate::system::reliance::Depth;
use crate::system::state::{Record, Store};
use crate::system::sysctl;

use super::install::{Guard, install_from};
use super::{Reading, down, prepare, recorded_inputs};

/// Prints one line per difference; returns whether all is (or is again) as installed.
pub fn check(args: &Args) -> Result<bool> {
    check_in(&Store::open()?, &args.iface, args.repair)
}

pub(super) fn check_in(store: &Store, iface: &IfaceName, repair: bool) -> Result<bool> {
    let Some(record) = store.record(iface)? else {
        crate::outln!("{iface}: nothing installed");
        return Ok(true);
    };
    let (opts, conf) = recorded_inputs(store, iface)?;
    let (drift, reading) = differences(store, &record, &opts, &conf)?;
    // Not drift: what another program now relies on, which `down` will leave.
    for k in down::left_at_down(store, iface, Depth::Cheap)? {
        crate::outln!("{iface}: down will leave {}={}: {}", k.key, k.value, k.why);
    }
    if drift.is_empty() {
        crate::outln!("{iface}: as installed");
        return Ok(true);
    }
    for d in &drift {
        crate::outln!("{iface}: {d}");
    }
    if !repair {
        return Ok(false);
    }
    install_from(iface, &opts, &conf, store, Guard::Off, Some(reading))?;
    let (after, _) = differences(store, &record, &opts, &conf)?;
    for d in &after {
        crate::outln!("{iface}: still: {d}");
    }
    if after.is_empty() {
        crate::outln!("{iface}: repaired");
    }
    Ok(after.is_empty())
}

/// The watcher's look: the differences from the plan, repaired at once from the same reading
/// where there are any; None when nothing is installed. Whether the repair held is the next
/// look's to see: the watcher looks again right after a repair.
pub(super) fn repair(store: &Store, iface: &IfaceName) -> Result<Option<Vec<String>>> {
    let Some(record) = store.record(iface)? else {
        return Ok(None);
    };
    let (opts, conf) = recorded_inputs(store, iface)?;
    let (drift, reading) = differences(store, &record, &opts, &conf)?;
    if !drift.is_empty() {
        install_from(iface, &opts, &conf, store, Guard::Off, Some(reading))?;
    }
    Ok(Some(drift))
}

/// What differs from the plan, and the reading it was found in.
fn differences(
    store: &Store,
    record: &Record,
    opts: &Options,
    conf: &WgConfig,
) -> Result<(Vec<String>, Reading)> {
    let iface: &IfaceName = &record.iface;
    let others: Vec<Record> = store
        .records()?
        .into_iter()
        .filter(|r| &r.iface != iface)
        .collect();
    let (plan, before, families) = prepare(iface, opts, conf, record.backend, true)?;
    let shape = store.read_named(&super::files::nft_shape(iface))?;
    let mut out = backend::differences(&plan, &others, &before, shape.as_deref())?;
    for w in &plan.sysctls {
        if let Ok(v) = sysctl::read(&w.key)
            && v != w.value
        {
            out.push(format!("sysctl {} is {v}, {} was set", w.key, w.value));
        }
    }
    let view = foreign::read(record.backend, &families, Some(&before));
    if let Some(wish) = places::firewalld_wish(&plan, &view) {
        out.extend(backend::firewalld::drift(&wish));
    }
    for (place, rules) in places::needed(&plan, &view) {
        let (present, in_place) = foreign::count_marked(iface, &place);
        if present != rules.len() {
            out.push(format!(
                "{} of our {} accepts in {} are there",
                present,
                rules.len(),
                place.describe()
            ));
        } else if !in_place {
            // Someone added rules after them: they would not hold for the tunnel's traffic.
            out.push(format!(
                "our accepts in {} are no longer right before its default deny",
                place.describe()
            ));
        }
    }
    let reading = Reading {
        backend: record.backend,
        plan,
        before,
        families,
    };
    Ok((out, reading))
}
