//! A WireGuard tunnel as systemd-networkd will create it, from its files, for the time before
//! the link exists (no wg-quick config, no live interface): the `.netdev` whose `[NetDev]`
//! creates the interface with `Kind=wireguard`, and the first `.network` (by file name) that
//! matches it, each with its drop-ins (`NAME.d/*.conf`). `config::networkd` parses; this finds
//! the files as networkd does: in its directories, a name in an earlier one masking the same
//! name in a later one, all sorted by name, an empty file or a link to /dev/null masking.
//!
//! Picking reads every file as it is (bounded, regular files only); the files picked are read
//! again through `config::trust`, as the wg-quick config is: what another user could have
//! written never becomes root's firewall.

use std::path::{Path, PathBuf};

use crate::config::networkd::{self, Source};
use crate::config::types::IfaceName;
use crate::config::wgconf::WgConfig;
use crate::error::{Error, Result};
use crate::plan::reliance::drop_in_order;

use super::os::os;

/// systemd-networkd's directories, in precedence order.
pub(crate) const DIRS: &[&str] = &[
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
];

/// What was found: the tunnel (addresses empty where no `.network` gives any), or nothing,
/// with the files that could not be read (a non-root `plan` reads no `.netdev` of mode 0640).
pub(crate) enum Found {
    Tunnel(WgConfig),
    Nothing { unreadable: Vec<String> },
}

/// The tunnel `iface` of networkd's files; an error where the files picked are not trusted or
/// do not read (`file:line`).
pub(crate) fn tunnel(iface: &IfaceName) -> Result<Found> {
    let listed: Vec<(&str, Vec<String>)> =
        DIRS.iter().map(|d| (*d, os().list(Path::new(d)))).collect();
    let mut unreadable = Vec::new();
    let mut netdev = None;
    for path in drop_in_order(&listed, ".netdev") {
        let Some(files) = with_drop_ins(&path, &mut unreadable) else {
            continue;
        };
        let sources = sources(&files);
        if networkd::netdev_creates(&sources)
            .is_some_and(|(name, kind)| name == iface.as_str() && kind == "wireguard")
        {
            netdev = Some(files);
            break;
        }
    }
    let Some(netdev) = netdev else {
        return Ok(Found::Nothing { unreadable });
    };
    let mut network = Vec::new();
    for path in drop_in_order(&listed, ".network") {
        let Some(files) = with_drop_ins(&path, &mut unreadable) else {
            continue;
        };
        if networkd::network_matches(&sources(&files), iface.as_str()) {
            network = files;
            break;
        }
    }
    // Read again, trusted: these become the firewall.
    let trusted = |files: Vec<(PathBuf, String)>| -> Result<Vec<(PathBuf, String)>> {
        files
            .into_iter()
            .map(|(p, _)| {
                let text = crate::config::trust::read(&p)?.ok_or_else(|| {
                    Error::usage(format!(
                        "{}: removed while it was being read: try again",
                        crate::config::quote::path(&p)
                    ))
                })?;
                Ok((p, text))
            })
            .collect()
    };
    let netdev = trusted(netdev)?;
    let network = trusted(network)?;
    let conf = networkd::parse(&sources(&netdev), &sources(&network))?;
    // Picked by what was read first: the trusted text must still create it.
    if networkd::netdev_creates(&sources(&netdev))
        .is_none_or(|(name, kind)| name != iface.as_str() || kind != "wireguard")
    {
        return Err(Error::usage(format!(
            "{}: changed while it was being read: try again",
            crate::config::quote::path(&conf.path)
        )));
    }
    Ok(Found::Tunnel(conf))
}

fn sources(files: &[(PathBuf, String)]) -> Vec<Source<'_>> {
    files
        .iter()
        .map(|(path, text)| Source { path, text })
        .collect()
}

/// The file and its drop-ins (`PATH.d/*.conf` in every directory, first holding a name
/// winning), each with its text; `None` where the file is masked or cannot be read. Masked or
/// unreadable drop-ins are left out.
fn with_drop_ins(path: &str, unreadable: &mut Vec<String>) -> Option<Vec<(PathBuf, String)>> {
    let main = read(path, unreadable)?;
    let name = Path::new(path).file_name()?.to_string_lossy().into_owned();
    let dirs: Vec<String> = DIRS.iter().map(|d| format!("{d}/{name}.d")).collect();
    let listed: Vec<(&str, Vec<String>)> = dirs
        .iter()
        .map(|d| (d.as_str(), os().list(Path::new(d))))
        .collect();
    let mut files = vec![(PathBuf::from(path), main)];
    for d in drop_in_order(&listed, ".conf") {
        if let Some(text) = read(&d, unreadable) {
            files.push((PathBuf::from(d), text));
        }
    }
    Some(files)
}

/// A file's text; `None` where it is masked (a link to /dev/null, or empty) or unreadable
/// (then noted).
fn read(path: &str, unreadable: &mut Vec<String>) -> Option<String> {
    if std::fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null")) {
        return None;
    }
    match os().read(Path::new(path)) {
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) => Some(text),
        Err(_) => {
            unreadable.push(path.to_string());
            None
        }
    }
}
