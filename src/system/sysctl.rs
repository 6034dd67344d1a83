//! Reads and writes the kernel settings below /proc/sys, which follow the caller's network
//! namespace. The ledger (`plan::ledger`) decides what to write; this performs it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::plan::ledger::{self, Key, Snapshot, Write};

use super::os::os;

/// Whether the kernel has the setting (an interface's keys go with the interface).
pub(crate) fn exists(key: &Key) -> bool {
    os().exists(&key.file())
}

pub(crate) fn read(key: &Key) -> Result<String> {
    file(key)
        .and_then(|f| os().read(&f))
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::system(format!("cannot read sysctl {key}: {e}")))
}

pub(crate) fn write(key: &Key, value: &str) -> Result<()> {
    let f = file(key).map_err(|e| Error::system(format!("cannot write sysctl {key}: {e}")))?;
    crate::errln!("[#] sysctl -q {key}={value}");
    os().write(&f, &format!("{value}\n"))
        .map_err(|e| Error::system(format!("cannot write sysctl {key}={value}: {e}")))
}

/// The key's file, only below /proc/sys/net (`Key::parse`): whatever a key was made of, the
/// hook reads and writes nothing else.
fn file(key: &Key) -> std::io::Result<std::path::PathBuf> {
    match Key::parse(key.as_path()) {
        Some(_) => Ok(key.file()),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a setting below /proc/sys/net",
        )),
    }
}

/// Reads the current value of every key that can be read.
pub(crate) fn read_all<'a>(keys: impl Iterator<Item = &'a Key>) -> BTreeMap<Key, String> {
    keys.filter_map(|k| read(k).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// The settings that writing `switch` rewrites here: one per interface the kernel lists.
pub(crate) fn spread_of(switch: &Key) -> Vec<Key> {
    let Some((dir, _)) = ledger::spread_dir(switch) else {
        return Vec::new();
    };
    let entries = os().list(&Path::new("/proc/sys").join(dir));
    ledger::spread_of(switch, &entries)
}

/// Everything the ledger needs to know before the first of `wanted` is written: the values of
/// those keys, of the keys they spread to, and of `also` (the keys already recorded).
pub(crate) fn snapshot<'a>(wanted: &[Write], also: impl Iterator<Item = &'a Key>) -> Snapshot {
    let spreads: BTreeMap<Key, Vec<Key>> = wanted
        .iter()
        .filter(|w| w.key.spreads())
        .map(|w| (w.key.clone(), spread_of(&w.key)))
        .collect();
    let mut keys: Vec<Key> = wanted.iter().map(|w| w.key.clone()).collect();
    keys.extend(spreads.values().flatten().cloned());
    keys.extend(also.cloned());
    let values = read_all(keys.iter());
    Snapshot { values, spreads }
}
