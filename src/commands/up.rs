//! `up` (wg-quick's PostUp): installs the interface's firewall (`install`), and with
//! `--rollback` arms the revert.

use crate::config::cli::Args;
use crate::error::{Error, Result};
use crate::system::host;
use crate::system::state::Store;

use super::install::{Guard, install};
use super::{load, recorded_inputs};

pub fn up(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let (opts, conf) = load(args)?;
    let exists = host::iface_exists;
    if !exists(iface) {
        return Err(Error::usage(format!(
            "no interface {iface} here: wgfw-hook up runs from wg-quick's PostUp, once the interface exists"
        )));
    }
    if let Some(wan) = opts.wan.as_ref().filter(|w| !exists(w)) {
        return Err(Error::usage(format!("--wan {wan}: no such interface")));
    }
    let store = Store::open()?;
    // What to go back to if `--rollback` runs out: the plan installed before, or nothing.
    let previous = match (opts.rollback, store.record(iface)?) {
        (Some(_), Some(_)) => Some(recorded_inputs(&store, iface)?),
        _ => None,
    };
    let guard = if args.force { Guard::Off } else { Guard::On };
    let result = install(&args.iface, &opts, &conf, &store, guard);
    if result.is_err() {
        // Whatever failed was undone; leave no empty records behind either.
        let _ = super::down::tidy(&store);
    }
    result?;
    if let Some(secs) = opts.rollback {
        super::rollback::arm(&store, iface, secs, previous)?;
    }
    if !opts.no_watch {
        drop(store);
        super::watcher::start(iface, &args.options);
    }
    Ok(())
}
