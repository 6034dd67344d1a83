//! Installing a plan, all or nothing. Each step that changed something is pushed on an undo
//! stack as it succeeds; when a later step fails, the stack is unwound in reverse, so a failed
//! `up` leaves the system as it found it (wg-quick deletes the interface without running
//! PreDown). `up`, `check --repair` and a rollback install through here.

use crate::backend::firewalld::{self, Zoned};
use crate::backend::{self, Before, foreign};
use crate::config::cli::Options;
use crate::config::types::IfaceName;
use crate::config::wgconf::{self, WgConfig};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::plan::ledger::{Ledger, Snapshot, Write};
use crate::rules::foreign::{self as places, Place};
use crate::rules::iptables::Variant;
use crate::rules::{Backend, lockout, residue};
use crate::system::state::{Record, Store};
use crate::system::{host, reliance, sockdiag, sysctl};

use super::{Reading, choose_backend, down, files, prepare};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Guard {
    /// Refuse a plan that would cut off an SSH client (a user's `up`).
    On,
    /// Install as recorded (`--force`, `check --repair`, a rollback).
    Off,
}

/// Installs the plan for `opts` and `conf`, all or nothing.
pub(super) fn install(
    iface: &IfaceName,
    opts: &Options,
    conf: &WgConfig,
    store: &Store,
    guard: Guard,
) -> Result<()> {
    install_from(iface, opts, conf, store, guard, None)
}

/// `install`, from a reading just made with the same inputs where there is one (a repair's),
/// and only if it was made with the backend this install uses.
pub(super) fn install_from(
    iface: &IfaceName,
    opts: &Options,
    conf: &WgConfig,
    store: &Store,
    guard: Guard,
    reading: Option<Reading>,
) -> Result<()> {
    store.check_writable()?;
    let records = store.records()?;
    let mine = records.iter().find(|r| &r.iface == iface).cloned();
    let others: Vec<Record> = records.into_iter().filter(|r| &r.iface != iface).collect();
    let (backend, why) = choose_backend(opts.backend, mine.as_ref(), &others)?;
    log::info!("backend {backend} ({why})");
    // Before `prepare`, which waits for the live peers (a userspace WireGuard may still be
    // working out its answer): what up uses, as recorded below, and the nft record.
    let inputs = [
        (files::options(iface), opts.to_settings()),
        (files::wgconf(iface), wgconf::render(conf)),
    ];
    let shape_file = files::nft_shape(iface);
    let shape = store.read_named(&shape_file)?;
    let (plan, before, families) = match reading {
        Some(r) if r.backend == backend => (r.plan, r.before, r.families),
        _ => prepare(iface, opts, conf, backend, mine.is_some())?,
    };
    for note in &plan.notes {
        log::info!("{}", crate::config::quote::text(note));
    }
    if guard == Guard::On {
        refuse_lockout(&plan)?;
    }
    // Other managers' drops that our table cannot override get accepts of ours; where the
    // kernel would refuse them, up fails before it changes anything.
    let view = foreign::read(backend, &families, Some(&before));
    let wanted = places::needed(&plan, &view);
    if let Some(why) = places::refusal(&wanted, &view) {
        return Err(Error::system(why));
    }

    let mut undo = Undo::new(store, iface);
    // Record first: whatever happens next, `down` knows what may be there.
    if backend == Backend::Iptables(Variant::Nft) && others.is_empty() {
        note_iptables_nft_tables(store, &before)?;
    }
    let record = record_of(backend, &plan, &others);
    let foreign_file = files::foreign(iface);
    let recorded = places::decode(&store.read_named(&foreign_file)?.unwrap_or_default());

    undo.run(Done::Record { previous: mine }, |_| {
        store.save_record(&record)
    })?;
    // A failed apply has put back what it changed itself.
    let applied = backend::apply(&plan, &others, before, shape.as_deref());
    let shape = undo.check(applied).map(|(before, shape)| {
        undo.push(Done::Firewall(before));
        shape
    })?;
    undo.write_file(&shape_file, &shape)?;
    // Pushed first: a failing apply may have put some of them in.
    undo.push(Done::Foreign {
        placed: wanted.keys().cloned().collect(),
        recorded: recorded.clone(),
    });
    let placed = foreign::apply(iface, &wanted, &recorded)
        .and_then(|places| store.write_named(&foreign_file, &places::encode(&places)));
    undo.check(placed)?;
    // firewalld, through its own API where it runs.
    let zoned_file = files::firewalld(iface);
    let zoned = Zoned::decode(&store.read_named(&zoned_file)?.unwrap_or_default());
    match places::firewalld_wish(&plan, &view) {
        Some(wish) => {
            let applied = firewalld::apply(&wish, zoned.as_ref());
            let applied = undo.check(applied)?;
            undo.push(Done::Firewalld {
                applied: applied.clone(),
                previous: zoned,
            });
            undo.write_file(&zoned_file, &applied.encode())?;
        }
        // firewalld stopped (its runtime changes went with it), or the tunnel became a client.
        None => {
            if let Some(z) = zoned {
                let _ = firewalld::undo(iface, &z);
                undo.write_file(&zoned_file, "")?;
            }
        }
    }

    let sysctls = apply_sysctls(store, iface, &plan.sysctls);
    undo.run_with(sysctls, Done::Sysctls)?;
    // What up used, so that `check --repair` can install the same plan again.
    for (name, text) in &inputs {
        undo.write_file(name, text)?;
    }
    undo.keep();
    Ok(())
}

/// What the record of the interface says: enough for `down` to remove it without the config.
fn record_of(backend: Backend, plan: &Plan, others: &[Record]) -> Record {
    Record {
        iface: plan.iface.clone(),
        backend,
        role: plan.role,
        lockdown: plan.lockdown,
        log: plan.log,
        policies: plan
            .families
            .iter()
            .map(|f| (f.family, plan.tail_policy(f)))
            .collect(),
        chains: backend::chains_of(backend, plan, others),
    }
}

/// Before the first `up` of a namespace with iptables-nft: which of its tables and chains
/// exist, so that the last `down` deletes only those it created (`backend::residue`).
fn note_iptables_nft_tables(store: &Store, before: &Before) -> Result<()> {
    if store.read_named(files::NFT_BEFORE)?.is_some() {
        return Ok(());
    }
    let Some(overview) = before.overview() else {
        return Ok(());
    };
    let names: Vec<String> = residue::names(overview).into_iter().collect();
    store.write_named(files::NFT_BEFORE, &format!("{}\n", names.join("\n")))
}

/// Refuses a plan that would cut off the SSH session `up` runs from, or any established SSH
/// connection (`rules::lockout`).
fn refuse_lockout(plan: &Plan) -> Result<()> {
    if !lockout::may_cut_off(plan) {
        return Ok(());
    }
    let port = plan.ssh_port.map_or(22, |p| p.get());
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let ssh = std::env::var("SSH_CONNECTION").ok();
    let established = sockdiag::established_peers(port).unwrap_or_else(|| {
        lockout::proc_peers(&read("/proc/net/tcp"), &read("/proc/net/tcp6"), port)
    });
    for client in lockout::ssh_clients(ssh.as_deref(), &established) {
        let via = host::route_dev(client);
        if let Some(why) = lockout::cut_off(plan, client, via.as_ref().map(|d| d.as_str())) {
            return Err(Error::usage(format!(
                "this plan would lock out the SSH client {client} ({why}): fix the options, or add --force (and better --rollback SECONDS)"
            )));
        }
    }
    Ok(())
}

/// One change `up` made, with what it takes to put it back.
enum Done {
    /// The interface's record, replacing `previous`.
    Record {
        previous: Option<Record>,
    },
    /// Our rules, over what they were before.
    Firewall(Before),
    /// Accepts in other managers' chains at `placed`, where `recorded` were before.
    Foreign {
        placed: Vec<Place>,
        recorded: Vec<Place>,
    },
    Sysctls(Applied),
    /// firewalld's zone and ports, where `previous` (an earlier `up`'s, still ours) were.
    Firewalld {
        applied: Zoned,
        previous: Option<Zoned>,
    },
    /// A record file, with its previous content (none: it did not exist).
    File {
        name: String,
        previous: Option<String>,
    },
}

/// The changes of one `up`, newest last: unwound in reverse unless kept.
struct Undo<'a> {
    store: &'a Store,
    iface: &'a IfaceName,
    done: Vec<Done>,
}

impl<'a> Undo<'a> {
    fn new(store: &'a Store, iface: &'a IfaceName) -> Undo<'a> {
        Undo {
            store,
            iface,
            done: Vec::new(),
        }
    }

    fn push(&mut self, done: Done) {
        self.done.push(done);
    }

    /// Runs a step; on success its change is pushed, on failure everything is unwound.
    fn run(&mut self, done: Done, step: impl FnOnce(&Store) -> Result<()>) -> Result<()> {
        let result = step(self.store);
        self.run_with(result, |()| done)
    }

    /// Pushes what a step that undoes itself on failure did, or unwinds on its failure.
    fn run_with<T>(&mut self, result: Result<T>, done: impl FnOnce(T) -> Done) -> Result<()> {
        let value = self.check(result)?;
        self.push(done(value));
        Ok(())
    }

    /// Passes a step's value on, or unwinds and passes its error on.
    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.unwind();
        }
        result
    }

    /// Writes a record file, keeping what it held to put back.
    fn write_file(&mut self, name: &str, text: &str) -> Result<()> {
        let previous = match self.store.read_named(name) {
            Ok(p) => p,
            Err(e) => return self.check(Err(e)),
        };
        // A second `up` mostly records what is there already (at 10,000 peers, megabytes).
        if previous.as_deref().unwrap_or_default() == text {
            return Ok(());
        }
        let done = Done::File {
            name: name.to_string(),
            previous,
        };
        self.run(done, |store| store.write_named(name, text))
    }

    /// Puts everything back, newest first. Forgiving: what cannot be put back is a warning.
    fn unwind(&mut self) {
        while let Some(done) = self.done.pop() {
            let store = self.store;
            match done {
                Done::File { name, previous } => {
                    let _ = store.write_named(&name, previous.as_deref().unwrap_or_default());
                }
                Done::Sysctls(applied) => {
                    revert_sysctls(store, self.iface, &applied, &applied.writes)
                }
                Done::Foreign { placed, recorded } => {
                    let _ = foreign::remove(self.iface, &placed);
                    let file = files::foreign(self.iface);
                    let _ = store.write_named(&file, &places::encode(&recorded));
                }
                Done::Firewall(before) => backend::undo(self.iface, &before),
                // A repair's changes stay: they are what was ours before, made again.
                Done::Firewalld { applied, previous } => {
                    if previous.is_none() {
                        let _ = firewalld::undo(self.iface, &applied);
                    }
                }
                Done::Record { previous } => {
                    let _ = match &previous {
                        Some(r) => store.save_record(r),
                        None => store.remove_record(self.iface),
                    };
                    let _ = super::down::tidy(store);
                }
            }
        }
    }

    /// The change is complete: nothing is put back.
    fn keep(mut self) {
        self.done.clear();
    }
}

/// The sysctls one `up` wrote, with what to put back.
struct Applied {
    /// The ledger as it was.
    ledger: String,
    /// The ledger as this `up` left it.
    acquired: Ledger,
    /// The values read before the first write.
    before: Snapshot,
    /// What was written, in order.
    writes: Vec<Write>,
}

/// Writes the plan's sysctls that differ, recording the values from before; on failure puts
/// back what it wrote and the ledger as it was.
fn apply_sysctls(store: &Store, iface: &IfaceName, wanted: &[Write]) -> Result<Applied> {
    let old_text = store.read_named(files::LEDGER)?.unwrap_or_default();
    let mut ledger = Ledger::parse(&old_text);
    let before = sysctl::snapshot(wanted, ledger.entries.keys());
    // What a changed plan no longer wants goes back first, unless something relies on it.
    let recorded = ledger.clone();
    let freed = ledger.release_unwanted(iface.as_str(), wanted);
    let own = down::managed(store)?;
    let mut writes = Vec::new();
    down::settle(iface, freed, &recorded, &own, |w| writes.push(w.clone()));
    let new = ledger.acquire(iface.as_str(), wanted, &before);
    // What already wants the values about to be written: it was there while they were
    // otherwise, so it will not keep them at `down`.
    if !new.is_empty() {
        ledger.note_before(reliance::before_writing(
            &new,
            &down::with_iface(&own, iface),
        ));
    }
    writes.extend(new);
    store.write_named(files::LEDGER, &ledger.render())?;
    let applied = Applied {
        ledger: old_text,
        acquired: ledger,
        before,
        writes,
    };
    for (n, w) in applied.writes.iter().enumerate() {
        if let Err(e) = sysctl::write(&w.key, &w.value) {
            revert_sysctls(store, iface, &applied, &applied.writes[..n]);
            return Err(e);
        }
    }
    Ok(applied)
}

/// Puts back the sysctls of `done` (a prefix of what `applied` meant to write) in reverse, so
/// that forwarding switches go back last... and then what they spread to, as it was; and the
/// ledger as it was.
fn revert_sysctls(store: &Store, iface: &IfaceName, applied: &Applied, done: &[Write]) {
    let before = &applied.before.values;
    let mut back: Vec<Write> = done
        .iter()
        .rev()
        .filter_map(|d| {
            let value = before.get(&d.key)?.clone();
            Some(Write {
                key: d.key.clone(),
                value,
            })
        })
        .collect();
    for (k, v) in before {
        let written = applied.writes.iter().any(|w| &w.key == k);
        if !written && sysctl::read(k).ok().as_ref() != Some(v) {
            back.push(Write {
                key: k.clone(),
                value: v.clone(),
            });
        }
    }
    // As at `down`: what something else has come to rely on since stays.
    let own = down::managed(store).unwrap_or_default();
    down::settle(iface, back, &applied.acquired, &own, |b| {
        let _ = sysctl::write(&b.key, &b.value);
    });
    let _ = store.write_named(files::LEDGER, &applied.ledger);
}
