//! The commands: `up`, `down` and `plan`, wiring config, plan, rendering and the apply step.
//! Every kernel change is printed as `[#] ...`, like wg-quick's own lines.

#[cfg(test)]
mod golden;
pub mod report;

use std::path::PathBuf;

use crate::backend::Before;
use crate::backend::{self, Backend};
use crate::config::cli::{Args, Options};
use crate::config::settings;
use crate::config::types::{BackendChoice, IfaceName, Role};
use crate::config::wgconf::{self, WgConfig};
use crate::error::{Error, Result};
use crate::plan::ledger::{Ledger, Write};
use crate::plan::{self, Family, HostFacts, Plan};
use crate::rules::foreign;
use crate::rules::iptables::Variant;
use crate::rules::lockout;
use crate::rules::residue;
use crate::system::cmd;
use crate::system::host;
use crate::system::state::{Record, Store};
use crate::system::sysctl;

const LEDGER: &str = "sysctl";
const NFT_BEFORE: &str = "nft-before";

fn load(args: &Args) -> Result<(Options, WgConfig)> {
    let file = settings::read(&settings::path_for(&args.iface))?;
    let opts = args.options.clone().over(file);
    let conf = match &opts.config {
        Some(path) => wgconf::read(path)?,
        None => {
            let path = PathBuf::from(format!("/etc/wireguard/{}.conf", args.iface));
            // `wg-quick up /elsewhere/wg0.conf` is legal: then the live interface tells.
            match (path.exists(), host::live_config(&args.iface)) {
                (false, Some(conf)) => {
                    log::info!(
                        "{} does not exist: reading {} from the live interface",
                        path.display(),
                        args.iface
                    );
                    conf
                }
                _ => wgconf::read(&path)?,
            }
        }
    };
    Ok((opts, conf))
}

/// The backend for this interface: the one it was installed with, else the one the other
/// managed interfaces use (they share chains), else the option, else auto-detected.
fn choose_backend(
    choice: Option<BackendChoice>,
    mine: Option<&Record>,
    others: &[Record],
) -> Result<(Backend, String)> {
    let recorded = mine
        .or(others.first())
        .and_then(|r| Backend::parse(&r.backend).map(|b| (b, r)));
    let asked = match choice.unwrap_or(BackendChoice::Auto) {
        BackendChoice::Auto => None,
        BackendChoice::IptablesNft => Some(Backend::Iptables(Variant::Nft)),
        BackendChoice::IptablesLegacy => Some(Backend::Iptables(Variant::Legacy)),
        BackendChoice::Nft => Some(Backend::Nft),
    };
    match (recorded, asked) {
        (Some((b, r)), Some(a)) if b != a => Err(Error::usage(format!(
            "{} is managed with {} here; one namespace uses one backend: run \"wgfw-hook down\" for its interfaces first",
            r.iface,
            b.name()
        ))),
        (Some((b, r)), _) => Ok((b, format!("{} is managed with it", r.iface))),
        (None, Some(a)) => Ok((a, "--backend".into())),
        (None, None) => Ok(backend::auto()),
    }
}

fn ipv6_enabled() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

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
        let _ = tidy(&store);
    }
    result?;
    if let Some(secs) = opts.rollback {
        arm_rollback(&store, iface, secs, previous)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Guard {
    /// Refuse a plan that would cut off an SSH client (a user's `up`).
    On,
    /// Install as recorded (`--force`, `check --repair`, a rollback).
    Off,
}

/// The options and config `up` recorded for the interface.
fn recorded_inputs(store: &Store, iface: &IfaceName) -> Result<(Options, WgConfig)> {
    let missing = || {
        Error::system(format!(
            "what up used for {iface} is not recorded: run wgfw-hook up {iface} again"
        ))
    };
    let opts_text = store
        .read_named(&format!("{iface}.options"))?
        .ok_or_else(missing)?;
    let conf_text = store
        .read_named(&format!("{iface}.wgconf"))?
        .ok_or_else(missing)?;
    let recorded = PathBuf::from(format!("(the config {iface} was brought up with)"));
    Ok((
        settings::parse(&recorded, &opts_text)?,
        wgconf::parse(&recorded, &conf_text)?,
    ))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records what a rollback goes back to, and starts the process that waits for `confirm`.
/// It runs on its own, so wg-quick does not wait for it.
fn arm_rollback(
    store: &Store,
    iface: &IfaceName,
    secs: u32,
    previous: Option<(Options, WgConfig)>,
) -> Result<()> {
    let token = format!("{}-{}", std::process::id(), now_secs());
    let mut text = format!("token={token}\ndeadline={}\n", now_secs() + u64::from(secs));
    if let Some((opts, conf)) = &previous {
        text.push_str(&format!(
            "--- options\n{}--- wgconf\n{}",
            opts.to_settings(),
            wgconf::render(conf)
        ));
    }
    store.write_named(&format!("{iface}.rollback"), &text)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::system(format!("cannot find my own program: {e}")))?;
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .args(["__revert", iface.as_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::system(format!("cannot start the rollback timer: {e}")))?;
    let back = if previous.is_some() {
        "the previous firewall"
    } else {
        "no firewall"
    };
    eprintln!("[!] wgfw-hook: {back} comes back in {secs} s unless \"wgfw-hook confirm {iface}\"");
    Ok(())
}

/// Keeps what `up --rollback` installed.
pub fn confirm(args: &Args) -> Result<()> {
    let store = Store::open()?;
    let file = format!("{}.rollback", args.iface);
    if store.read_named(&file)?.is_none() {
        println!("{}: no rollback pending", args.iface);
        return Ok(());
    }
    store.write_named(&file, "")?;
    println!("{}: kept", args.iface);
    Ok(())
}

/// The waiting half of `up --rollback`: unless `confirm` removes the record first, puts back
/// what was there before when the deadline passes.
pub fn revert(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let file = format!("{iface}.rollback");
    let read = || {
        Store::open()
            .and_then(|s| s.read_named(&file))
            .ok()
            .flatten()
    };
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(String::from))
    };
    let Some(first) = read() else { return Ok(()) };
    let (Some(token), Some(deadline)) = (
        field(&first, "token"),
        field(&first, "deadline").and_then(|d| d.parse::<u64>().ok()),
    ) else {
        return Ok(());
    };
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        match read() {
            Some(t) if field(&t, "token").as_deref() == Some(token.as_str()) => {}
            _ => return Ok(()), // confirmed, or a newer up took over
        }
        if now_secs() >= deadline {
            break;
        }
    }
    let store = Store::open()?;
    let Some(text) = store.read_named(&file)? else {
        return Ok(());
    };
    if field(&text, "token").as_deref() != Some(token.as_str()) {
        return Ok(());
    }
    store.write_named(&file, "")?;
    match text
        .split_once("--- options\n")
        .and_then(|(_, rest)| rest.split_once("--- wgconf\n"))
    {
        Some((opts_text, conf_text)) => {
            let recorded = PathBuf::from(format!("(the config {iface} had before)"));
            let opts = settings::parse(&recorded, opts_text)?;
            let conf = wgconf::parse(&recorded, conf_text)?;
            install(iface, &opts, &conf, &store, Guard::Off)
        }
        None => remove(&store, iface),
    }
}

/// The plan for this host now, and what our part of the ruleset is before any change.
fn prepare(
    iface: &IfaceName,
    opts: &Options,
    conf: &WgConfig,
    backend: Backend,
) -> Result<(Plan, Before, Vec<Family>)> {
    let mut facts = host::gather(iface, opts.wan.as_ref(), conf.listen_port.is_none());
    let endpoint_notes = endpoints(&mut facts, iface, conf, opts);
    let families = backend::families(facts.ipv6_enabled);
    let before = backend::read(backend, &families)?;
    facts.input_owner = backend::input_owners(&before);
    let mut plan = plan::derive(iface, conf, opts, &facts, plan::Purpose::Install)?;
    plan.notes.extend(endpoint_notes);
    Ok((plan, before, families))
}

fn install(
    iface: &IfaceName,
    opts: &Options,
    conf: &WgConfig,
    store: &Store,
    guard: Guard,
) -> Result<()> {
    store.check_writable()?;
    let records = store.records()?;
    let mine = records.iter().find(|r| &r.iface == iface).cloned();
    let others: Vec<Record> = records.into_iter().filter(|r| &r.iface != iface).collect();
    let (backend, why) = choose_backend(opts.backend, mine.as_ref(), &others)?;
    log::info!("backend {} ({why})", backend.name());
    let (plan, before, families) = prepare(iface, opts, conf, backend)?;
    for note in &plan.notes {
        log::info!("{note}");
    }
    if guard == Guard::On && lockout::may_cut_off(&plan) {
        let port = plan.ssh_port.map_or(22, |p| p.get());
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let ssh = std::env::var("SSH_CONNECTION").ok();
        let established = crate::system::sockdiag::established_peers(port).unwrap_or_else(|| {
            lockout::proc_peers(&read("/proc/net/tcp"), &read("/proc/net/tcp6"), port)
        });
        for client in lockout::ssh_clients(ssh.as_deref(), &established) {
            if let Some(why) = lockout::cut_off(&plan, client) {
                return Err(Error::usage(format!(
                    "this plan would lock out the SSH client {client} ({why}): fix the options, or add --force (and better --rollback SECONDS)"
                )));
            }
        }
    }

    // Record first: whatever happens next, `down` knows what may be there.
    if backend == Backend::Iptables(Variant::Nft)
        && others.is_empty()
        && store.read_named(NFT_BEFORE)?.is_none()
        && let Some(overview) = before.overview()
    {
        let inv = residue::Inventory::parse(overview);
        let names: Vec<String> = inv.names().into_iter().collect();
        store.write_named(NFT_BEFORE, &format!("{}\n", names.join("\n")))?;
    }
    let record = Record {
        iface: iface.clone(),
        backend: backend.name().to_string(),
        role: plan.role,
        lockdown: plan.lockdown,
        log: plan.log,
        policies: plan
            .families
            .iter()
            .map(|f| (f.family, plan.tail_policy(f)))
            .collect(),
        chains: backend::chains_of(backend, &plan, &others),
    };
    store.save_record(&record)?;

    let undo_record = |store: &Store| {
        let _ = match &mine {
            Some(r) => store.save_record(r),
            None => store.remove_record(iface),
        };
        let _ = tidy(store);
    };
    if let Err(e) = backend::apply(backend, &plan, &others, &before) {
        undo_record(store);
        return Err(e);
    }
    // Other managers' drops that our table cannot override get accepts of ours.
    let foreign_file = format!("{iface}.foreign");
    let recorded = foreign::decode(&store.read_named(&foreign_file)?.unwrap_or_default());
    let wanted = foreign::needed(
        &plan,
        &foreign::read(backend, &families, before.overview().unwrap_or_default()),
    );
    let placed: Vec<foreign::Place> = wanted.keys().cloned().collect();
    let result = foreign::apply(iface, &wanted, &recorded)
        .and_then(|places| store.write_named(&foreign_file, &foreign::encode(&places)))
        .and_then(|()| apply_sysctls(store, iface, &plan.sysctls))
        // What up used, so that `check --repair` can install the same plan again.
        .and_then(|()| store.write_named(&format!("{iface}.options"), &opts.to_settings()))
        .and_then(|()| store.write_named(&format!("{iface}.wgconf"), &wgconf::render(conf)));
    if let Err(e) = result {
        let _ = foreign::remove(iface, &placed);
        let _ = store.write_named(&foreign_file, &foreign::encode(&recorded));
        backend::undo(backend, iface, &before);
        undo_record(store);
        return Err(e);
    }
    Ok(())
}

/// Client role: the peers' endpoints, as the live interface reports them, else as the config
/// names them, resolving names only when nothing else is known. Returns notes for the plan.
fn endpoints(
    facts: &mut HostFacts,
    iface: &IfaceName,
    conf: &WgConfig,
    opts: &Options,
) -> Vec<String> {
    if opts.role != Some(Role::Client) {
        return Vec::new();
    }
    let (found, notes) = host::endpoints(iface, conf);
    facts.endpoints = found;
    notes
}

/// Writes the plan's sysctls that differ, recording the values from before; on failure puts
/// back what it wrote and the ledger as it was.
fn apply_sysctls(store: &Store, iface: &IfaceName, wanted: &[Write]) -> Result<()> {
    let old_text = store.read_named(LEDGER)?.unwrap_or_default();
    let mut ledger = Ledger::parse(&old_text);
    let snapshot = sysctl::snapshot(wanted, ledger.entries.keys());
    let before = &snapshot.values;
    let writes = ledger.acquire(iface.as_str(), wanted, &snapshot);
    store.write_named(LEDGER, &ledger.render())?;
    let mut done: Vec<&Write> = Vec::new();
    for w in &writes {
        if let Err(e) = sysctl::write(&w.key, &w.value) {
            // Put back in reverse, so that forwarding switches go back last... and then
            // what they spread to, as it was.
            for d in done.iter().rev() {
                if let Some(v) = before.get(&d.key) {
                    let _ = sysctl::write(&d.key, v);
                }
            }
            for (k, v) in before {
                if sysctl::read(k).ok().as_ref() != Some(v) && !writes.iter().any(|w| &w.key == k) {
                    let _ = sysctl::write(k, v);
                }
            }
            let _ = store.write_named(LEDGER, &old_text);
            return Err(e);
        }
        done.push(w);
    }
    Ok(())
}

/// Once no interface is managed in this namespace any more: deletes the empty tables and base
/// chains iptables-nft created for us, and the namespace's records.
fn tidy(store: &Store) -> Result<()> {
    if !store.records()?.is_empty() {
        return Ok(());
    }
    if let Some(before) = store.read_named(NFT_BEFORE)? {
        let before = before.lines().map(String::from).collect();
        if let Some(script) =
            cleanup_inventory(&before).and_then(|inv| residue::cleanup(&before, &inv))
        {
            let why = "delete the empty tables and chains iptables-nft created";
            if let Err(e) = cmd::transaction("nft", &["-f", "-"], &script, "the cleanup", Some(why))
            {
                eprintln!("wgfw-hook: warning: {e}");
            }
        }
        store.write_named(NFT_BEFORE, "")?;
    }
    if Ledger::parse(&store.read_named(LEDGER)?.unwrap_or_default())
        .entries
        .is_empty()
    {
        store.write_named(LEDGER, "")?;
    }
    store.remove_dir_if_empty();
    Ok(())
}

/// What the last `down` may delete, with the rules that say whether it is empty: the tables
/// that did not exist before (ours, small) and, in older tables, the chains created since.
/// Listing the whole ruleset instead costs nft a second on a host with 20,000 iptables-nft
/// rules; where nothing else is in nftables it is the same and one process.
fn cleanup_inventory(before: &std::collections::BTreeSet<String>) -> Option<residue::Inventory> {
    let overview = nft_inventory(&["list", "chains"])?;
    let new = |t: &String| residue::is_iptables_table(t) && !before.contains(t);
    if overview.tables.keys().all(new) {
        return nft_inventory(&["list", "ruleset"]);
    }
    let mut text = String::new();
    for (t, inv) in overview
        .tables
        .iter()
        .filter(|(t, _)| residue::is_iptables_table(t))
    {
        let (family, name) = t.split_once(' ')?;
        let lists: Vec<Vec<&str>> = if new(t) {
            vec![vec!["list", "table", family, name]]
        } else {
            inv.chains
                .keys()
                .filter(|c| !before.contains(&format!("{t} {c}")))
                .map(|c| vec!["list", "chain", family, name, c.as_str()])
                .collect()
        };
        for list in lists {
            let out = cmd::run("nft", &list, None).ok().filter(|o| o.ok)?;
            text.push_str(&out.stdout);
        }
    }
    Some(residue::Inventory::parse(&text))
}

/// The tables and chains that `nft LIST` shows (`list chains` for names, `list ruleset` to see
/// which are empty).
fn nft_inventory(list: &[&str]) -> Option<residue::Inventory> {
    let out = cmd::run("nft", list, None).ok().filter(|o| o.ok)?;
    Some(residue::Inventory::parse(&out.stdout))
}

/// Removes what `up` installed. Forgiving: what is already gone is fine, and problems are
/// warnings, because a failing PreDown would keep the interface up.
pub fn down(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let store = Store::open()?;
    let kept = store.record(iface)?.is_some_and(|r| r.lockdown);
    if kept {
        eprintln!(
            "[!] wgfw-hook: keeping the kill switch of {iface} (--lockdown); \"wgfw-hook release {iface}\" removes it"
        );
        return Ok(());
    }
    remove(&store, iface)
}

/// Removes a kill switch that `--lockdown` kept after `down` (or anything else still installed
/// for the interface). Nothing to release is fine.
pub fn release(args: &Args) -> Result<()> {
    let store = Store::open()?;
    remove(&store, &args.iface)
}

fn remove(store: &Store, iface: &IfaceName) -> Result<()> {
    let records = store.records()?;
    let others: Vec<Record> = records
        .iter()
        .filter(|r| &r.iface != iface)
        .cloned()
        .collect();
    let mine = records.iter().find(|r| &r.iface == iface);
    let backends: Vec<Backend> = match (
        mine.and_then(|r| Backend::parse(&r.backend)),
        others.first(),
    ) {
        (Some(b), _) => vec![b],
        (None, Some(_)) => vec![choose_backend(None, None, &others)?.0],
        // Nothing recorded (a reboot emptied /run while saved rules came back, or never up):
        // remove whatever carries this interface's name, with every backend there is.
        (None, None) => backend::installed_backends(),
    };
    let mut warned = false;
    let foreign_file = format!("{iface}.foreign");
    let recorded = foreign::decode(&store.read_named(&foreign_file)?.unwrap_or_default());
    let warnings =
        foreign::remove(iface, &recorded)
            .into_iter()
            .chain(backends.into_iter().flat_map(|b| {
                let recorded = mine.filter(|r| r.backend == b.name()).map(|r| &r.chains);
                backend::remove(b, iface, &others, recorded, ipv6_enabled())
            }));
    for w in warnings {
        eprintln!("wgfw-hook: warning: {w}");
        warned = true;
    }
    store.write_named(&foreign_file, "")?;
    store.write_named(&format!("{iface}.options"), "")?;
    store.write_named(&format!("{iface}.wgconf"), "")?;
    store.write_named(&format!("{iface}.rollback"), "")?;

    let mut ledger = Ledger::parse(&store.read_named(LEDGER)?.unwrap_or_default());
    for w in ledger.release(iface.as_str()) {
        if w.key.file().exists()
            && sysctl::read(&w.key).ok().as_deref() != Some(w.value.as_str())
            && let Err(e) = sysctl::write(&w.key, &w.value)
        {
            eprintln!("wgfw-hook: warning: {e}");
            warned = true;
        }
    }
    store.write_named(LEDGER, &ledger.render())?;

    store.remove_record(iface)?;
    tidy(store)?;
    if warned {
        eprintln!("wgfw-hook: {iface}: removed what could be removed (see the warnings above)");
    }
    Ok(())
}

/// Whether the live firewall and sysctls are still what `up` installed; prints one line per
/// difference. With `--repair`, installs the recorded plan again. Returns whether all is (or
/// is again) as installed.
pub fn check(args: &Args) -> Result<bool> {
    let iface = &args.iface;
    let store = Store::open()?;
    let Some(record) = store.record(iface)? else {
        println!("{iface}: nothing installed");
        return Ok(true);
    };
    let (opts, conf) = recorded_inputs(&store, iface)?;
    let drift = differences(&store, iface, &record, &opts, &conf)?;
    if drift.is_empty() {
        println!("{iface}: as installed");
        return Ok(true);
    }
    for d in &drift {
        println!("{iface}: {d}");
    }
    if !args.repair {
        return Ok(false);
    }
    install(iface, &opts, &conf, &store, Guard::Off)?;
    let after = differences(&store, iface, &record, &opts, &conf)?;
    for d in &after {
        println!("{iface}: still: {d}");
    }
    if after.is_empty() {
        println!("{iface}: repaired");
    }
    Ok(after.is_empty())
}

fn differences(
    store: &Store,
    iface: &IfaceName,
    record: &Record,
    opts: &Options,
    conf: &WgConfig,
) -> Result<Vec<String>> {
    let Some(backend) = Backend::parse(&record.backend) else {
        return Ok(vec![format!("unknown backend {} recorded", record.backend)]);
    };
    let others: Vec<Record> = store
        .records()?
        .into_iter()
        .filter(|r| &r.iface != iface)
        .collect();
    let (plan, before, families) = prepare(iface, opts, conf, backend)?;
    let mut out = backend::differences(backend, &plan, &others, &before);
    for w in &plan.sysctls {
        if let Ok(v) = sysctl::read(&w.key)
            && v != w.value
        {
            out.push(format!("sysctl {} is {v}, {} was set", w.key, w.value));
        }
    }
    let view = foreign::read(backend, &families, before.overview().unwrap_or_default());
    for (place, rules) in foreign::needed(&plan, &view) {
        let present = foreign::count_marked(iface, &place);
        if present != rules.len() {
            out.push(format!(
                "{} of our {} accepts in {} are there",
                present,
                rules.len(),
                place.describe()
            ));
        }
    }
    Ok(out)
}

/// Peers silent for longer than this are worth pruning, as the hardening guides say.
const STALE_PEER_SECS: u64 = 7 * 86_400;

/// What `status` reports of one managed interface.
struct Report {
    record: Record,
    up: bool,
    state: String,
    counters: Vec<(&'static str, u64)>,
    /// Settings this interface holds: key, value now, value to put back.
    sysctls: Vec<(String, String, String)>,
    stale_peers: Vec<(String, Option<u64>)>,
    foreign: Vec<foreign::Place>,
}

/// Prints what is installed in this network namespace: per managed interface its state, the
/// packets its important rules counted, peers to prune, accepts in other managers' chains;
/// and how full connection tracking is. `--json` prints the same as one JSON object.
pub fn status(only: Option<&IfaceName>, json: bool) -> Result<()> {
    let store = Store::open()?;
    let conntrack = host::conntrack_use();
    let records: Vec<Record> = store
        .records()?
        .into_iter()
        .filter(|r| only.is_none_or(|i| &r.iface == i))
        .collect();
    let ledger = Ledger::parse(&store.read_named(LEDGER)?.unwrap_or_default());
    let mut reports = Vec::new();
    for r in &records {
        let sysctls = ledger
            .entries
            .iter()
            .filter(|(_, e)| e.holders.contains(r.iface.as_str()))
            .map(|(k, e)| {
                (
                    k.to_string(),
                    sysctl::read(k).unwrap_or_else(|_| "?".into()),
                    e.original.clone(),
                )
            })
            .collect();
        let up = host::iface_exists(&r.iface);
        let others: Vec<Record> = records
            .iter()
            .filter(|o| o.iface != r.iface)
            .cloned()
            .collect();
        let counters = match (
            Backend::parse(&r.backend),
            recorded_inputs(&store, &r.iface),
        ) {
            (Some(backend), Ok((opts, conf))) => prepare(&r.iface, &opts, &conf, backend)
                .map(|(plan, _, _)| backend::counters(backend, &plan, &others))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let stale_peers = if up {
            host::stale_peers(&r.iface, now_secs(), STALE_PEER_SECS)
        } else {
            Vec::new()
        };
        let foreign = foreign::decode(
            &store
                .read_named(&format!("{}.foreign", r.iface))?
                .unwrap_or_default(),
        );
        reports.push(Report {
            state: state_of(r, up),
            record: r.clone(),
            up,
            counters,
            sysctls,
            stale_peers,
            foreign,
        });
    }
    if json {
        println!(
            "{}",
            report::status_json(
                conntrack,
                &reports.iter().map(Report::json).collect::<Vec<_>>()
            )
        );
        return Ok(());
    }
    if let Some((n, max)) = conntrack {
        let pct = n * 100 / max.max(1);
        let warn = if pct >= 80 {
            ": nearly full, raise net.netfilter.nf_conntrack_max"
        } else {
            ""
        };
        println!("conntrack: {n} of {max} entries ({pct}%){warn}");
    }
    if reports.is_empty() {
        match only {
            Some(i) => println!("{i}: nothing installed"),
            None => println!("no interface is managed by wgfw-hook here"),
        }
    }
    for rep in &reports {
        let r = &rep.record;
        let families: Vec<&str> = r.policies.keys().map(|f| f.name()).collect();
        println!(
            "{}: {} role, {}, {}: {}",
            r.iface,
            r.role.as_str(),
            r.backend,
            families.join(" and "),
            rep.state
        );
        if !rep.counters.is_empty() {
            let c: Vec<String> = rep
                .counters
                .iter()
                .map(|(label, n)| format!("{label} {n}"))
                .collect();
            println!("  {}", c.join(", "));
        }
        let changed: Vec<String> = rep
            .sysctls
            .iter()
            .filter(|(_, now, was)| now != was)
            .map(|(k, now, was)| format!("{k}={now} (was {was})"))
            .collect();
        if !changed.is_empty() {
            println!("  sysctls: {}", changed.join(", "));
        }
        for (key, age) in &rep.stale_peers {
            match age {
                None => println!("  peer {key}: no handshake yet"),
                Some(s) => println!(
                    "  peer {key}: last handshake {} days ago (remove it if it is gone)",
                    s / 86_400
                ),
            }
        }
        for place in &rep.foreign {
            println!(
                "  accepts of its own first in another manager's chain: {}",
                place.describe()
            );
        }
    }
    Ok(())
}

impl Report {
    fn json(&self) -> report::Json {
        use report::Json;
        let r = &self.record;
        Json::Object(vec![
            ("interface", Json::Str(r.iface.to_string())),
            ("role", Json::Str(r.role.as_str().into())),
            ("backend", Json::Str(r.backend.clone())),
            (
                "families",
                Json::Array(
                    r.policies
                        .keys()
                        .map(|f| Json::Str(f.name().into()))
                        .collect(),
                ),
            ),
            ("interface_up", Json::Bool(self.up)),
            ("lockdown", Json::Bool(r.lockdown)),
            ("state", Json::Str(self.state.clone())),
            (
                "counters",
                Json::Object(
                    self.counters
                        .iter()
                        .map(|(l, n)| (*l, Json::Num(*n)))
                        .collect(),
                ),
            ),
            (
                "sysctls",
                Json::Array(
                    self.sysctls
                        .iter()
                        .map(|(k, now, was)| {
                            Json::Object(vec![
                                ("key", Json::Str(k.clone())),
                                ("value", Json::Str(now.clone())),
                                ("saved", Json::Str(was.clone())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "stale_peers",
                Json::Array(
                    self.stale_peers
                        .iter()
                        .map(|(k, age)| {
                            Json::Object(vec![
                                ("public_key", Json::Str(k.clone())),
                                ("seconds_since_handshake", age.map_or(Json::Null, Json::Num)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "accepts_in_other_managers_chains",
                Json::Array(
                    self.foreign
                        .iter()
                        .map(|p| Json::Str(p.describe()))
                        .collect(),
                ),
            ),
        ])
    }
}

fn state_of(r: &Record, up: bool) -> String {
    match (r.role, r.lockdown, up) {
        (Role::Client, true, false) => format!(
            "kill switch kept after down (--lockdown): nothing leaves this host outside the tunnel; \"wgfw-hook release {}\" removes it",
            r.iface
        ),
        (Role::Client, _, false) => {
            "kill switch in place, tunnel gone: nothing leaves outside the tunnel".into()
        }
        (Role::Client, true, true) => "kill switch active; kept after down (--lockdown)".into(),
        (Role::Client, false, true) => "kill switch active".into(),
        (Role::Server, _, true) => "firewall installed".into(),
        (Role::Server, _, false) => format!(
            "firewall installed, interface gone: \"wgfw-hook down {}\" removes it",
            r.iface
        ),
    }
}

/// Prints what `up` would do on this host if no wgfw rules were installed yet.
pub fn plan(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let (opts, conf) = load(args)?;
    let (backend, why) = match opts.backend {
        None | Some(BackendChoice::Auto) => backend::auto(),
        Some(choice) => (
            choose_backend(Some(choice), None, &[])?.0,
            "--backend".to_string(),
        ),
    };
    let mut facts = host::gather(iface, opts.wan.as_ref(), conf.listen_port.is_none());
    let mut notes = endpoints(&mut facts, iface, &conf, &opts);
    let families = backend::families(facts.ipv6_enabled);
    let overview = match backend::read(backend, &families) {
        Ok(before) => {
            facts.input_owner = backend::input_owners(&before);
            before.overview().unwrap_or_default().to_string()
        }
        Err(_) => {
            notes.push(
                "the live ruleset is not readable (not root?): input policy auto means drop here"
                    .into(),
            );
            backend::nft_overview().unwrap_or_default()
        }
    };
    let view = foreign::read(backend, &families, &overview);
    let mut plan = plan::derive(iface, &conf, &opts, &facts, plan::Purpose::Show)?;
    plan.notes.extend(notes);
    for (place, rules) in foreign::needed(&plan, &view) {
        plan.notes.push(format!(
            "another manager drops there, so up puts accepts of its own first in {}: {}",
            place.describe(),
            rules.join("; ")
        ));
    }
    let current = sysctl::read_all(plan.sysctls.iter().map(|w| &w.key));
    print!("{}", report::plan(&plan, backend, &why, &current));
    Ok(())
}
