//! The commands, one file each, wiring the layers: read config (`config`), derive a plan
//! (`plan`), render (`rules`), apply (`backend`), record (`system::state`). Every kernel change
//! is printed as `[#] ...`, like wg-quick's own lines. What the commands share is here.

mod check;
mod down;
#[cfg(test)]
mod golden;
mod install;
mod json;
mod plan;
mod rollback;
mod status;
#[cfg(test)]
mod tests;
mod up;
mod watch;
mod watcher;

pub use check::check;
pub use down::{down, release};
pub use plan::plan;
pub use rollback::{confirm, revert};
pub use status::status;
pub use up::up;
pub use watch::watch;

use std::path::PathBuf;

use crate::backend::{self, Before};
use crate::config::cli::{Args, Options};
use crate::config::quote;
use crate::config::settings;
use crate::config::types::{BackendChoice, IfaceName, Role};
use crate::config::wgconf::{self, WgConfig};
use crate::error::{Error, Result};
use crate::plan::{Family, HostFacts, Plan, Purpose};
use crate::rules::Backend;
use crate::rules::iptables::Variant;
use crate::system::state::{Record, Store};
use crate::system::{host, networkd};

/// The records `up` keeps besides each interface's `IFACE.state`, by file name.
mod files {
    use crate::config::types::IfaceName;

    /// The sysctl ledger of the namespace (`plan::ledger`).
    pub(super) const LEDGER: &str = "sysctl";
    /// The iptables-nft tables and chains that existed before the first `up`.
    pub(super) const NFT_BEFORE: &str = "nft-before";

    /// The options `up` used, in the settings file's syntax.
    pub(super) fn options(iface: &IfaceName) -> String {
        format!("{iface}.options")
    }
    /// The wg-quick config `up` used, as `wgconf::render` writes it.
    pub(super) fn wgconf(iface: &IfaceName) -> String {
        format!("{iface}.wgconf")
    }
    /// What the last nft transaction left of the table, with the ruleset's generation
    /// (`rules::nft::Shape`): where nothing changed it since, `up` writes elements alone.
    pub(super) fn nft_shape(iface: &IfaceName) -> String {
        format!("{iface}.nft")
    }
    /// The places of our accepts in other managers' chains.
    pub(super) fn foreign(iface: &IfaceName) -> String {
        format!("{iface}.foreign")
    }
    /// What firewalld's API was asked to change (`backend::firewalld::Zoned`).
    pub(super) fn firewalld(iface: &IfaceName) -> String {
        format!("{iface}.firewalld")
    }
    /// A pending `--rollback`.
    pub(super) fn rollback(iface: &IfaceName) -> String {
        format!("{iface}.rollback")
    }
}

/// The options (command line over settings file) and the wg-quick config of an interface.
fn load(args: &Args) -> Result<(Options, WgConfig)> {
    let file = settings::read(&settings::path_for(&args.iface))?;
    let opts = args.options.clone().over(file);
    if wants_live_peers(&opts) {
        host::ask_peers(&args.iface);
    }
    let conf = match &opts.config {
        Some(_) if opts.live_only() => host::live_config(&args.iface).ok_or_else(|| {
            Error::usage(
                "--config none: there is no live WireGuard interface to read the tunnel from (its addresses, port and peers are known once it is up)",
            )
        })?,
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
                (false, None) => from_networkd(&path, &args.iface)?,
                _ => wgconf::read(&path)?,
            }
        }
    };
    opts.check_limits(&conf).map_err(Error::usage)?;
    Ok((opts, conf))
}

/// Neither a wg-quick config nor the live interface: the tunnel as systemd-networkd will
/// create it, from its files. Without an address (no `.network` gives one) there is no tunnel
/// network to build a firewall around: a one-line error says what is missing.
fn from_networkd(path: &std::path::Path, iface: &IfaceName) -> Result<WgConfig> {
    let unreadable = match networkd::tunnel(iface)? {
        networkd::Found::Tunnel(conf) if conf.addresses.is_empty() => {
            let netdev = quote::path(&conf.path);
            let network = conf
                .networkd
                .as_ref()
                .and_then(|f| f.network.first())
                .map(|n| quote::path(n));
            return Err(Error::usage(match network {
                Some(network) => format!(
                    "{netdev} creates {iface}, but {network}, the .network that matches it, gives it no Address=: the tunnel's addresses are known once it has one (wgfw-hook@{iface} waits for them)"
                ),
                None => format!(
                    "{netdev} creates {iface}, but no .network matches it to give it an Address=: the tunnel's addresses are known once it has one (wgfw-hook@{iface} waits for them)"
                ),
            }));
        }
        networkd::Found::Tunnel(conf) => {
            log::info!(
                "{} does not exist and {iface} is not up: reading it from {}",
                path.display(),
                networkd_files(&conf).unwrap_or_default()
            );
            return Ok(conf);
        }
        networkd::Found::Nothing { unreadable } => unreadable,
    };
    let hint = match unreadable.len() {
        0 => String::new(),
        1 => format!(" ({} is not readable here)", quote::text(&unreadable[0])),
        n => format!(" ({n} of systemd-networkd's files are not readable here)"),
    };
    Err(Error::usage(format!(
        "{}: no such wg-quick config, and no live WireGuard interface {iface} to read instead, nor a systemd-networkd .netdev that creates it{hint}: the tunnel's addresses, port and peers are known once one is there (or name a config with --config PATH)",
        path.display(),
    )))
}

/// The networkd files a tunnel was read from, as a note names them: the first in full, the
/// others below its directory by their names there.
fn networkd_files(conf: &WgConfig) -> Option<String> {
    let files = conf.networkd.as_ref()?;
    let all: Vec<&PathBuf> = files.netdev.iter().chain(&files.network).collect();
    let (first, rest) = all.split_first()?;
    let dir = first.parent().unwrap_or(std::path::Path::new("/"));
    let mut names = vec![quote::path(first)];
    names.extend(
        rest.iter()
            .map(|p| quote::path(p.strip_prefix(dir).unwrap_or(p))),
    );
    Some(match names.split_last() {
        Some((last, init)) if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => names.concat(),
    })
}

/// The backend for this interface: the one it was installed with, else the one the other
/// managed interfaces use (they share chains), else the option, else auto-detected.
fn choose_backend(
    choice: Option<BackendChoice>,
    mine: Option<&Record>,
    others: &[Record],
) -> Result<(Backend, String)> {
    let recorded = mine.or(others.first());
    let asked = match choice.unwrap_or(BackendChoice::Auto) {
        BackendChoice::Auto => None,
        BackendChoice::IptablesNft => Some(Backend::Iptables(Variant::Nft)),
        BackendChoice::IptablesLegacy => Some(Backend::Iptables(Variant::Legacy)),
        BackendChoice::Nft => Some(Backend::Nft),
    };
    match (recorded, asked) {
        (Some(r), Some(a)) if r.backend != a => Err(Error::usage(format!(
            "{} is managed with {} here; one namespace uses one backend: run \"wgfw-hook down\" for its interfaces first",
            r.iface, r.backend
        ))),
        (Some(r), _) => Ok((r.backend, format!("{} is managed with it", r.iface))),
        (None, Some(a)) => Ok((a, "--backend".into())),
        (None, None) => Ok(backend::auto()),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What `prepare` read and derived with one backend. A repair installs from the reading that
/// found the drift rather than reading the ruleset again: a process or three fewer between
/// another tool's wipe and the repair's commit.
pub(super) struct Reading {
    backend: Backend,
    plan: Plan,
    before: Before,
    families: Vec<Family>,
}

/// The plan for this host now, and what our part of the ruleset is before any change.
fn prepare(
    iface: &IfaceName,
    opts: &Options,
    conf: &WgConfig,
    backend: Backend,
    installed: bool,
) -> Result<(Plan, Before, Vec<Family>)> {
    let mut facts = host::gather(iface, opts.wan.as_ref(), conf.listen_port.is_none());
    facts.lan_routes = host::lan_routes(&opts.lan);
    let endpoint_notes = endpoints(&mut facts, iface, conf, opts);
    let families = backend::families(facts.ipv6_enabled);
    let before = backend::read(backend, &families, installed)?;
    // Last: a userspace WireGuard may still be working its answer out.
    live_peers(&mut facts, iface, opts);
    facts.input_owner = backend::input_owners(&before);
    let mut plan = crate::plan::derive(iface, conf, opts, &facts, Purpose::Install)?;
    plan.notes.extend(endpoint_notes);
    Ok((plan, before, families))
}

/// With peer sections or port forwards, the live interface's peers: `wg set` may have added
/// some since.
fn live_peers(facts: &mut HostFacts, iface: &IfaceName, opts: &Options) {
    if wants_live_peers(opts) && facts.live_mtu.is_some() {
        facts.live_peers = host::live_peers(iface);
    }
}

fn wants_live_peers(opts: &Options) -> bool {
    !opts.sections.is_empty() || !opts.forward.is_empty()
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

/// The options and config `up` recorded for the interface.
fn recorded_inputs(store: &Store, iface: &IfaceName) -> Result<(Options, WgConfig)> {
    let missing = || {
        Error::system(format!(
            "what up used for {iface} is not recorded: run wgfw-hook up {iface} again"
        ))
    };
    // An `up` with no options at all records none: its options file is empty, so not there.
    let opts_text = store
        .read_named(&files::options(iface))?
        .unwrap_or_default();
    let conf_text = store
        .read_named(&files::wgconf(iface))?
        .ok_or_else(missing)?;
    let recorded = PathBuf::from(format!("(the config {iface} was brought up with)"));
    Ok((
        settings::parse(&recorded, &opts_text)?,
        wgconf::parse(&recorded, &conf_text)?,
    ))
}
