//! The apply step, behind one face: read what is there, apply a plan all or nothing, put back
//! what was there, remove an interface. `iptables` (nft or legacy flavour) works one restore
//! transaction per family; `nft` one transaction for both. What goes into other managers'
//! chains is `foreign`'s; the empty tables iptables-nft leaves behind are `residue`'s.

use std::collections::BTreeMap;

use crate::config::types::IfaceName;
use crate::error::Result;
use crate::plan::{Family, Plan};
use crate::rules::iptables::{Live, Variant};
use crate::rules::listing::Listing;
use crate::rules::{self, Backend, ChainId};
use crate::system::cmd;
use crate::system::state::Record;

pub(crate) mod firewalld;
pub(crate) mod foreign;
pub(crate) mod iptables;
pub(crate) mod nft;
pub(crate) mod residue;
mod shared;

pub(crate) use shared::families;
use shared::members;

/// What `--backend auto` picks, and why: what the host already uses. Rules in the
/// iptables-legacy tables: legacy; rules in iptables-nft's: iptables-nft; only native nftables
/// tables, or nothing at all: nft; no `nft` program: the flavour the `iptables` command is.
pub(crate) fn auto() -> (Backend, String) {
    // A chain someone else made in iptables-nft's tables (Docker's, Kubernetes') says so
    // without reading their rules, which costs 150 ms on a host with 20,000.
    let overview = cmd::find("nft").and_then(|_| nft::overview().ok());
    let has_rules = |v: Variant| {
        if v == Variant::Nft
            && let Some(o) = &overview
            && Family::BOTH
                .iter()
                .any(|f| Live::from_overview(o, *f).has_foreign_chains())
        {
            return true;
        }
        cmd::find(&v.save(Family::V4)).is_some()
            && Family::BOTH
                .iter()
                .any(|f| iptables::live_rules(v, *f).is_ok_and(|l| l.has_foreign_rules()))
    };
    if has_rules(Variant::Legacy) {
        return (
            Backend::Iptables(Variant::Legacy),
            "the iptables-legacy tables have rules".into(),
        );
    }
    if has_rules(Variant::Nft) {
        return (
            Backend::Iptables(Variant::Nft),
            "the iptables-nft tables have rules".into(),
        );
    }
    if cmd::find("nft").is_some() {
        return (Backend::Nft, "no iptables rules on this host".into());
    }
    let legacy = cmd::find("iptables")
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p.to_string_lossy().contains("legacy"));
    let v = if legacy {
        Variant::Legacy
    } else {
        Variant::Nft
    };
    (
        Backend::Iptables(v),
        format!("nft is not installed and iptables is {}", v.name()),
    )
}

/// Every backend whose programs are installed.
pub(crate) fn installed_backends() -> Vec<Backend> {
    let mut out = Vec::new();
    for v in [Variant::Nft, Variant::Legacy] {
        if cmd::find(&v.restore(Family::V4)).is_some() {
            out.push(Backend::Iptables(v));
        }
    }
    if cmd::find("nft").is_some() {
        out.push(Backend::Nft);
    }
    out
}

/// Our part of the ruleset as it was before a change, to compute the change and to put it
/// back; it says which backend it was read with, so the two cannot disagree.
pub(crate) enum Before {
    /// The families' iptables rules, and the nftables overview (another manager's native
    /// tables, firewalld's, own input whatever backend we use).
    Iptables {
        variant: Variant,
        lives: BTreeMap<Family, Live>,
        /// None without nft, or when it could not be read.
        overview: Option<Listing>,
    },
    /// Our table is listed only where a change needs it (`nft::apply`): at 10,000 peers the
    /// listing costs nft 150 ms, and a change of elements alone needs none.
    Nft { overview: Listing },
    /// After an `up` that rewrote our part of the table: the table as it was.
    NftTable {
        table: rules::nft::Live,
        overview: Listing,
    },
    /// After an `up` that only added and deleted elements: the transaction that takes it back.
    NftElements { back: String, overview: Listing },
}

impl Before {
    /// `nft list chains` as read before the change; None without nft.
    pub(crate) fn overview(&self) -> Option<&Listing> {
        match self {
            Before::Iptables { overview, .. } => overview.as_ref(),
            Before::Nft { overview }
            | Before::NftTable { overview, .. }
            | Before::NftElements { overview, .. } => Some(overview),
        }
    }
}

/// The iptables chains `plan` installs and their tables, per family (shared ones included);
/// none for nft.
pub(crate) fn chains_of(
    backend: Backend,
    plan: &Plan,
    others: &[Record],
) -> BTreeMap<Family, Vec<(rules::Table, ChainId)>> {
    if backend == Backend::Nft {
        return BTreeMap::new();
    }
    plan.families
        .iter()
        .map(|fp| {
            let ids = rules::desired(plan, fp.family, &members(others, fp.family))
                .into_iter()
                .map(|c| (c.table(), c.id))
                .collect();
            (fp.family, ids)
        })
        .collect()
}

/// What is there before a change. `installed`: the interface's chains are expected (a repair,
/// an `up` again): iptables-nft's overview and its `-save`s are then read side by side. A first
/// `up` reads the overview first, which may spare it the `-save`s of a host of many rules.
/// Keeps the programs a repair on `backend` runs started before they are needed
/// (`system::warm`): nft's for the overview and the commit, iptables-nft's restores. Not
/// iptables-legacy's: a waiting restore would hold the xtables lock.
pub(crate) fn keep_waiting(backend: Backend) {
    match backend {
        Backend::Nft => cmd::keep_waiting("nft", &["-f", "-"], 2),
        Backend::Iptables(v @ Variant::Nft) => {
            cmd::keep_waiting("nft", &["-f", "-"], 1);
            for f in [Family::V4, Family::V6] {
                cmd::keep_waiting(&v.restore(f), &iptables::RESTORE_ARGS, 1);
            }
        }
        Backend::Iptables(Variant::Legacy) => {}
    }
}

pub(crate) fn read(backend: Backend, families: &[Family], installed: bool) -> Result<Before> {
    Ok(match backend {
        Backend::Iptables(Variant::Nft) if installed && cmd::find("nft").is_some() => {
            let (overview, lives) = iptables::read_with_overview(families)?;
            Before::Iptables {
                variant: Variant::Nft,
                lives,
                overview,
            }
        }
        Backend::Iptables(variant) => {
            let overview = cmd::find("nft").and_then(|_| nft::overview().ok());
            let lives = iptables::read(variant, families, overview.as_ref())?;
            Before::Iptables {
                variant,
                lives,
                overview,
            }
        }
        Backend::Nft => Before::Nft {
            overview: nft::overview()?,
        },
    })
}

/// Per family: why another firewall manager owns the host's input, if one does.
pub(crate) fn input_owners(before: &Before) -> BTreeMap<Family, String> {
    match before {
        Before::Iptables {
            lives, overview, ..
        } => lives
            .iter()
            .filter_map(|(f, l)| {
                let nft = || rules::nft::input_owner(overview.as_ref()?);
                Some((*f, l.input_owner().or_else(nft)?))
            })
            .collect(),
        Before::Nft { overview }
        | Before::NftTable { overview, .. }
        | Before::NftElements { overview, .. } => match rules::nft::input_owner(overview) {
            Some(why) => Family::BOTH.into_iter().map(|f| (f, why.clone())).collect(),
            None => BTreeMap::new(),
        },
    }
}

/// Installs `plan`, all or nothing: a family that fails leaves the others as they were.
/// `shape` is what the last nft transaction recorded of the table (`rules::nft::Shape`).
/// Returns what puts the change back, and for nft the new record (empty: none is sure).
pub(crate) fn apply(
    plan: &Plan,
    others: &[Record],
    before: Before,
    shape: Option<&str>,
) -> Result<(Before, String)> {
    match before {
        Before::Iptables {
            variant, ref lives, ..
        } => iptables::apply(variant, plan, others, lives).map(|()| (before, String::new())),
        Before::Nft { overview }
        | Before::NftTable { overview, .. }
        | Before::NftElements { overview, .. } => {
            let (undo, record) = nft::apply(plan, others, &overview, shape)?;
            let before = match undo {
                nft::Undo::Table(table) => Before::NftTable { table, overview },
                nft::Undo::Elements(back) => Before::NftElements { back, overview },
            };
            Ok((before, record))
        }
    }
}

/// How the live ruleset differs from what `plan` installs, one line per difference.
/// `shape`: what the last nft transaction recorded of the table (`install`'s record).
pub(crate) fn differences(
    plan: &Plan,
    others: &[Record],
    before: &Before,
    shape: Option<&str>,
) -> Result<Vec<String>> {
    Ok(match before {
        Before::Iptables { lives, .. } => iptables::differences(plan, others, lives),
        // What is there now, whatever a change kept of before.
        Before::Nft { overview }
        | Before::NftTable { overview, .. }
        | Before::NftElements { overview, .. } => {
            let mut out = nft::differences(plan, others, &nft::read(overview)?);
            out.extend(nft::drift(plan, others, shape));
            out
        }
    })
}

/// The packets the plan's counted rules saw, by what they count: `rules::COUNTED` in that
/// order, then the labels of the rules' own (the port forwards') in the plan's.
pub(crate) fn counters(backend: Backend, plan: &Plan, others: &[Record]) -> Vec<(String, u64)> {
    let sums = match backend {
        Backend::Iptables(v) => iptables::counters(v, plan, others),
        Backend::Nft => nft::counters(&plan.iface),
    };
    let mut labels: Vec<String> = Vec::new();
    for c in plan
        .families
        .iter()
        .flat_map(|fp| rules::desired(plan, fp.family, &members(others, fp.family)))
        .filter(|c| c.id.iface() == Some(&plan.iface))
    {
        for l in c.rules.into_iter().filter_map(|r| r.counts) {
            if !labels.iter().any(|seen| *seen == l) {
                labels.push(l.into_owned());
            }
        }
    }
    labels.sort_by_key(|l| {
        rules::COUNTED
            .iter()
            .position(|c| c == l)
            .unwrap_or(usize::MAX)
    });
    labels
        .into_iter()
        .map(|l| {
            let n = sums.get(&l).copied().unwrap_or(0);
            (l, n)
        })
        .collect()
}

/// Puts our part of the ruleset back as it was in `before` (after a later step failed).
pub(crate) fn undo(iface: &IfaceName, before: &Before) {
    match before {
        Before::Iptables { variant, lives, .. } => {
            let all: Vec<Family> = lives.keys().copied().collect();
            iptables::undo(*variant, iface, &all, lives);
        }
        Before::NftTable { table, .. } => nft::undo(table),
        // Read, not changed.
        Before::Nft { .. } => {}
        Before::NftElements { back, .. } => nft::undo_elements(back),
    }
}

/// Removes what `mine` (if recorded with `backend`) installed of the interface's chains, and
/// the shared ones with the last interface; forgiving, as each backend's `remove`.
pub(crate) fn remove(
    backend: Backend,
    iface: &IfaceName,
    mine: Option<&Record>,
    others: &[Record],
) -> Vec<String> {
    let ipv6 = crate::system::host::ipv6_enabled();
    match backend {
        Backend::Iptables(v) => {
            let chains = mine.filter(|r| r.backend == backend).map(|r| &r.chains);
            iptables::remove(v, iface, others, chains, ipv6)
        }
        Backend::Nft => nft::remove(iface, others, ipv6),
    }
}
