//! Gathers what `plan::reliance` decides with: the system's sysctl configuration (sysctl.d,
//! ufw's while it is enabled, systemd-networkd's forwarding), the interfaces that forward for
//! another program, and, only when those leave a forwarding switch undecided, other tools'
//! forwarding rules. Read-only; no process per interface (sysfs and /proc), at most one
//! `nft list ruleset` and one `iptables-legacy-save` per family where legacy tables exist.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::Family;
use crate::plan::ledger::{Key, Write};
use crate::plan::reliance::{self, Assignment, Baseline, Link, Reliance};
use crate::rules::forwarding;
use crate::rules::listing::Listing;
use crate::rules::nft::TABLE;

use super::os::os;
use super::{cmd, host, xtables};

/// systemd-sysctl's directories, the first holding a name winning.
const SYSCTL_DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];
/// systemd-networkd's directories, likewise.
const NETWORKD_DIRS: &[&str] = super::networkd::DIRS;
/// Where networkd keeps its links' state while it manages them.
const NETWORKD_LINKS: &str = "/run/systemd/netif/links";

/// How far to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// Files and interfaces: no process (`check`, every minute under the timer).
    Cheap,
    /// Also other tools' rules, when those two leave a forwarding switch undecided.
    Rules,
}

/// What the decision on restoring `writes` needs: `current` holds the keys' values now,
/// `baseline` what already wanted the hook's values before it wrote them, `own` the
/// interfaces the hook manages here (their needs are the ledger's business).
pub(crate) fn gather(
    writes: &[Write],
    current: &BTreeMap<Key, String>,
    baseline: &Baseline,
    own: &[&str],
    depth: Depth,
) -> Reliance {
    let mut relied = Reliance {
        configured: configured(),
        forwarders: BTreeMap::new(),
    };
    if !relied.needs_forwarders(writes, current, baseline) {
        return relied;
    }
    add_links(&mut relied, own);
    if depth == Depth::Rules && relied.needs_forwarders(writes, current, baseline) {
        add_rules(&mut relied, own);
    }
    relied
}

/// What already wants the values `writes` (the hook's, about to be written) set: everything
/// that could keep them at `down`, read in full where a forwarding switch is among them.
pub(crate) fn before_writing(writes: &[Write], own: &[&str]) -> Baseline {
    let mut relied = Reliance {
        configured: configured(),
        forwarders: BTreeMap::new(),
    };
    if writes
        .iter()
        .any(|w| reliance::switch_family(&w.key).is_some())
    {
        add_links(&mut relied, own);
        add_rules(&mut relied, own);
    }
    reliance::baseline(&relied, writes)
}

fn add_links(relied: &mut Reliance, own: &[&str]) {
    for link in links() {
        if own.contains(&link.name.as_str()) {
            continue;
        }
        for f in Family::BOTH {
            if let Some(why) = reliance::link_forwards(&link, f) {
                relied.forwarders.entry(f).or_default().push(why);
            }
        }
    }
}

fn add_rules(relied: &mut Reliance, own: &[&str]) {
    for (f, why) in rules(own) {
        relied.forwarders.entry(f).or_default().extend(why);
    }
}

/// The system's sysctl configuration, in the order it is applied: sysctl.d and
/// /etc/sysctl.conf (as procps' `sysctl --system` reads it last), then ufw's file while ufw
/// is enabled (ufw applies it when it starts, after boot), then networkd's forwarding.
fn configured() -> Vec<Assignment> {
    let os = os();
    let listed = |dirs: &[&'static str]| -> Vec<(&'static str, Vec<String>)> {
        dirs.iter().map(|d| (*d, os.list(Path::new(d)))).collect()
    };
    let mut files = reliance::drop_in_order(&listed(SYSCTL_DIRS), ".conf");
    files.push("/etc/sysctl.conf".into());
    let mut out = Vec::new();
    for f in &files {
        if let Some(text) = read(f) {
            out.extend(reliance::parse_sysctl_conf(&text, f));
        }
    }
    if read("/etc/ufw/ufw.conf").is_some_and(|t| reliance::ufw_enabled(&t)) {
        let file = read("/etc/default/ufw")
            .and_then(|t| reliance::ufw_sysctl_file(&t))
            .unwrap_or_else(|| "/etc/ufw/sysctl.conf".into());
        if let Some(text) = read(&file) {
            out.extend(reliance::parse_sysctl_conf(&text, &format!("ufw's {file}")));
        }
    }
    if !os.list(Path::new(NETWORKD_LINKS)).is_empty() {
        let mut files = reliance::drop_in_order(&listed(NETWORKD_DIRS), ".network");
        files.push("/etc/systemd/networkd.conf".into());
        for f in &files {
            if let Some(text) = read(f) {
                out.extend(reliance::parse_networkd(&text, f));
            }
        }
    }
    out
}

/// A configuration file's text; nothing when it is missing, unreadable or not a regular file.
fn read(path: &str) -> Option<String> {
    os().read(Path::new(path)).ok()
}

/// The network interfaces, from sysfs: only when sysfs shows this network namespace's (as
/// `ip netns exec` mounts it; an `unshare -n` without its own /sys shows another's), checked
/// against /proc/net/dev, which always follows the namespace.
fn links() -> Vec<Link> {
    let os = os();
    let here: std::collections::BTreeSet<String> = os
        .read(Path::new("/proc/net/dev"))
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .collect();
    // Interfaces only (the bonding driver adds a file, bonding_masters).
    let names: Vec<String> = os
        .list(Path::new("/sys/class/net"))
        .into_iter()
        .filter(|n| os.exists(&Path::new("/sys/class/net").join(n).join("ifindex")))
        .collect();
    let shown: std::collections::BTreeSet<String> = names.iter().cloned().collect();
    if shown != here {
        log::debug!("/sys/class/net is not this network namespace's: interfaces not looked at");
        return Vec::new();
    }
    let routes = host::routed_families();
    names
        .into_iter()
        .filter(|n| n != "lo")
        .map(|name| {
            let dir = Path::new("/sys/class/net").join(&name);
            let attr = |a: &str| os.read(&dir.join(a)).unwrap_or_default().trim().to_string();
            let flags =
                u32::from_str_radix(attr("flags").trim_start_matches("0x"), 16).unwrap_or(0);
            Link {
                up: flags & 1 != 0,
                bridge: os.exists(&dir.join("bridge")),
                tunnel: attr("type") == "65534",
                routes: routes.get(&name).cloned().unwrap_or_default(),
                name,
            }
        })
        .collect()
}

/// Other tools' forwarding rules: nftables (iptables-nft's tables among them) and the
/// iptables-legacy tables where the kernel has any.
fn rules(own: &[&str]) -> BTreeMap<Family, Vec<String>> {
    let mut out: BTreeMap<Family, Vec<String>> = BTreeMap::new();
    if cmd::find("nft").is_some()
        && let Ok(o) = cmd::run("nft", &["list", "ruleset"], None)
        && o.ok
    {
        out = forwarding::in_listing(&Listing::parse(&o.stdout), TABLE, own);
    }
    for (f, prog) in [
        (Family::V4, "iptables-legacy-save"),
        (Family::V6, "ip6tables-legacy-save"),
    ] {
        if !xtables::legacy_tables_exist(f) || cmd::find(prog).is_none() {
            continue;
        }
        if let Ok(o) = cmd::run(prog, &[], None)
            && o.ok
        {
            out.entry(f)
                .or_default()
                .extend(forwarding::in_iptables_save(&o.stdout, own));
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}
