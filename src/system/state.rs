//! What `up` recorded, under `/run/wgfw/NETNS/` (directories 0700, files 0600), so that `down`
//! removes exactly that. Rules and sysctls belong to a network namespace, so their records are
//! keyed by the namespace's identity (the inode of /proc/self/ns/net and the namespace's cookie).
//! One lock serialises every run of the hook. Both directories are trusted only when no other
//! user could have put anything in them, and their files are never followed (`dir`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::types::{IfaceName, Role};
use crate::error::{Error, Result};
use crate::plan::{Family, InputPolicy};
use crate::rules::{Backend, ChainId, Table};

use super::dir::Dir;
pub(crate) use super::dir::Refused;

pub(crate) const RUN_DIR: &str = "/run/wgfw";
/// Long enough for a dozen tunnels coming up at boot (an `up` holds the lock a fraction of a
/// second; a restore waits at most 10 s for the xtables lock), short enough that a stuck run
/// is reported before wg-quick or systemd gives up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// One managed interface, as recorded by `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub iface: IfaceName,
    pub backend: Backend,
    pub role: Role,
    /// Client role: `down` keeps the kill switch, until `release`.
    pub lockdown: bool,
    pub log: bool,
    /// The input policy of each family that has rules.
    pub policies: BTreeMap<Family, InputPolicy>,
    /// The iptables chains `up` installs and their tables, per family: what the last `down`
    /// removes without reading a legacy table (which costs as much as the host has rules).
    pub chains: BTreeMap<Family, Vec<(Table, ChainId)>>,
}

const CHAINS: [(Family, &str); 2] = [(Family::V4, "chains4"), (Family::V6, "chains6")];

impl Record {
    pub(crate) fn render(&self) -> String {
        let mut s = format!(
            "iface={}\nbackend={}\nrole={}\nlockdown={}\nlog={}\n",
            self.iface,
            self.backend,
            self.role.as_str(),
            u8::from(self.lockdown),
            u8::from(self.log)
        );
        for (f, p) in &self.policies {
            let key = match f {
                Family::V4 => "policy4",
                Family::V6 => "policy6",
            };
            s.push_str(&format!("{key}={}\n", p.as_str()));
        }
        for (f, key) in CHAINS {
            if let Some(chains) = self.chains.get(&f) {
                let list: Vec<String> = chains
                    .iter()
                    .map(|(t, id)| format!("{}:{id}", t.name()))
                    .collect();
                s.push_str(&format!("{key}={}\n", list.join(" ")));
            }
        }
        s
    }

    pub(crate) fn parse(text: &str) -> Option<Record> {
        let mut iface = None;
        let mut backend = None;
        let mut log = true;
        let mut role = Role::Server;
        let mut lockdown = false;
        let mut policies = BTreeMap::new();
        let mut chains = BTreeMap::new();
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "iface" => iface = v.parse().ok(),
                "backend" => backend = Some(v.parse::<Backend>().ok()?),
                "log" => log = v == "1",
                "role" => role = v.parse().ok()?,
                "lockdown" => lockdown = v == "1",
                "policy4" => _ = policies.insert(Family::V4, v.parse::<InputPolicy>().ok()?),
                "policy6" => _ = policies.insert(Family::V6, v.parse::<InputPolicy>().ok()?),
                "chains4" | "chains6" => {
                    let family = if k == "chains4" {
                        Family::V4
                    } else {
                        Family::V6
                    };
                    let list = v
                        .split_whitespace()
                        .map(|c| {
                            // The table is where the chain was put: an older version kept
                            // host input in filter.
                            let (t, n) = c.split_once(':')?;
                            Some((Table::parse(t)?, n.parse::<ChainId>().ok()?))
                        })
                        .collect::<Option<Vec<_>>>()?;
                    chains.insert(family, list);
                }
                _ => {}
            }
        }
        Some(Record {
            iface: iface?,
            backend: backend?,
            role,
            lockdown,
            log,
            policies,
            chains,
        })
    }
}

/// The records of the current network namespace, opened under the lock.
pub(crate) struct Store {
    run: Dir,
    /// The namespace's directory's name in `run`, and the directory once it exists.
    name: String,
    dir: RefCell<Option<Dir>>,
    _lock: File,
}

/// The current network namespace's identity: the inode of /proc/self/ns/net, which names it
/// while it lives, plus its cookie, which the kernel never hands out twice. The inode alone is
/// reused once a namespace is gone, and a new namespace must not inherit a dead one's records.
fn netns_id() -> Result<String> {
    let ino = std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| {
            Error::system(format!(
                "cannot identify the network namespace (/proc/self/ns/net): {e}"
            ))
        })?;
    Ok(match netns_cookie() {
        Some(cookie) => format!("{ino}.{cookie}"),
        None => ino.to_string(),
    })
}

/// SO_NETNS_COOKIE (Linux 5.14 and later) of a socket made here.
fn netns_cookie() -> Option<u64> {
    const SOL_SOCKET: i32 = 1;
    const SO_NETNS_COOKIE: i32 = 71;
    let sock = std::os::unix::net::UnixDatagram::unbound().ok()?;
    let mut cookie = [0u8; 8];
    let len = crate::system::sys::get_option(&sock, SOL_SOCKET, SO_NETNS_COOKIE, &mut cookie)?;
    (len == 8).then(|| u64::from_ne_bytes(cookie))
}

impl Store {
    /// Takes the lock (waiting a bounded time) and finds this namespace's directory.
    pub(crate) fn open() -> Result<Store> {
        Ok(Store::opened()?)
    }

    /// `open`, telling an untrusted directory (`Refused::Untrusted`) from other failures.
    pub(crate) fn opened() -> std::result::Result<Store, Refused> {
        let name = format!("netns-{}", netns_id()?);
        Store::open_in(Path::new(RUN_DIR), &name)
    }

    /// The records in the directory `name` of `run_dir` (a test's own), under its lock. Refused
    /// where another user could have put something in either (`dir`).
    pub(crate) fn open_in(run_dir: &Path, name: &str) -> std::result::Result<Store, Refused> {
        let run = Dir::open(run_dir)?;
        let lock = run.lock_file("lock")?;
        let lock_path = run.path().join("lock");
        let start = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Refused::Failed(Error::system(format!(
                        "another wgfw-hook has held {} for {} s: is one stuck?",
                        lock_path.display(),
                        LOCK_WAIT.as_secs()
                    ))));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Refused::Failed(Error::system(format!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    ))));
                }
            }
        }
        let dir = run.child(name, false)?;
        Ok(Store {
            run,
            name: name.to_string(),
            dir: RefCell::new(dir),
            _lock: lock,
        })
    }

    fn read(&self, name: &str) -> Result<Option<String>> {
        match &*self.dir.borrow() {
            Some(dir) => dir.read(name),
            None => Ok(None),
        }
    }

    /// Writes a file whole (`Dir::write`), making the namespace's directory first.
    fn write(&self, name: &str, text: &str) -> Result<()> {
        let mut dir = self.dir.borrow_mut();
        if dir.is_none() {
            *dir = self.run.child(&self.name, true)?;
        }
        dir.as_ref().expect("made above").write(name, text)
    }

    fn remove(&self, name: &str) -> Result<()> {
        match &*self.dir.borrow() {
            Some(dir) => dir.remove(name),
            None => Ok(()),
        }
    }

    /// Checks that records can be written at all, before anything is changed.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.write(".probe", "")?;
        self.remove(".probe")
    }

    pub(crate) fn record(&self, iface: &IfaceName) -> Result<Option<Record>> {
        Ok(self
            .read(&format!("{iface}.state"))?
            .and_then(|t| Record::parse(&t)))
    }

    pub(crate) fn records(&self) -> Result<Vec<Record>> {
        let names = match &*self.dir.borrow() {
            Some(dir) => dir.names(),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for name in names {
            if let Some(iface) = name
                .strip_suffix(".state")
                .and_then(|i| i.parse::<IfaceName>().ok())
            {
                out.extend(self.record(&iface)?);
            }
        }
        out.sort_by(|a, b| a.iface.cmp(&b.iface));
        Ok(out)
    }

    pub(crate) fn save_record(&self, r: &Record) -> Result<()> {
        self.write(&format!("{}.state", r.iface), &r.render())
    }

    pub(crate) fn remove_record(&self, iface: &IfaceName) -> Result<()> {
        self.remove(&format!("{iface}.state"))
    }

    pub(crate) fn read_named(&self, name: &str) -> Result<Option<String>> {
        self.read(name)
    }

    pub(crate) fn write_named(&self, name: &str, text: &str) -> Result<()> {
        if text.is_empty() {
            self.remove(name)
        } else {
            self.write(name, text)
        }
    }

    /// Removes the namespace's directory once nothing is recorded in it, with what a killed
    /// run may have left there: the temporary files of its writes (`.NAME.tmp`, `.probe`).
    pub(crate) fn remove_dir_if_empty(&self) {
        let mut dir = self.dir.borrow_mut();
        let Some(d) = dir.as_ref() else {
            return;
        };
        let names = d.names();
        if names.iter().all(|n| n.starts_with('.')) {
            for n in &names {
                let _ = d.remove(n);
            }
            self.run.remove_child(&self.name);
            *dir = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_have_a_cookie() {
        let id = netns_id().unwrap();
        assert!(id.contains('.'), "{id}");
        assert_eq!(id, netns_id().unwrap());
    }

    #[test]
    fn records_round_trip() {
        let r = Record {
            iface: "wg0".parse().unwrap(),
            backend: "iptables-nft".parse().unwrap(),
            role: Role::Client,
            lockdown: true,
            log: false,
            policies: [
                (Family::V4, InputPolicy::Drop),
                (Family::V6, InputPolicy::Defer),
            ]
            .into(),
            chains: [(
                Family::V4,
                vec![
                    (Table::Raw, "WGFW-wg0-PRE".parse().unwrap()),
                    (Table::Mangle, ChainId::SharedInput),
                ],
            )]
            .into(),
        };
        assert_eq!(Record::parse(&r.render()), Some(r));
        // Records of an older version, without chains, still read.
        let old = "iface=wg0\nbackend=nft\nrole=server\nlockdown=0\nlog=1\npolicy4=drop\n";
        assert!(Record::parse(old).unwrap().chains.is_empty());
        assert_eq!(
            Record::parse("iface=wg0\nbackend=nft\nchains4=bogus:X\n"),
            None
        );
        assert_eq!(Record::parse("iface=wg0\nbackend=pf\n"), None);
        assert_eq!(Record::parse("garbage"), None);
        assert_eq!(Record::parse("iface=wg0\n"), None);
    }

    /// A record as the version before typed ids wrote it (`up` of wgfw-hook 0.1.0, before this
    /// redesign) reads back whole, so a `down` after an upgrade removes what it installed.
    #[test]
    fn records_of_the_previous_version_read() {
        let text = "iface=wg0\nbackend=iptables-legacy\nrole=server\nlockdown=0\nlog=1\n\
                    policy4=drop\npolicy6=defer\n\
                    chains4=filter:WGFW-INPUT raw:WGFW-wg0-PRE mangle:WGFW-wg0-MSS nat:WGFW-wg0-NAT filter:WGFW-wg0-IN filter:WGFW-wg0-FWD filter:WGFW-wg0-DROP\n\
                    chains6=filter:WGFW-INPUT raw:WGFW-wg0-PRE mangle:WGFW-wg0-MSS filter:WGFW-wg0-IN filter:WGFW-wg0-FWD filter:WGFW-wg0-DROP\n";
        let r = Record::parse(text).expect("the old record reads");
        assert_eq!(r.backend, "iptables-legacy".parse().unwrap());
        assert_eq!(r.chains[&Family::V4].len(), 7);
        assert_eq!(
            r.chains[&Family::V6][0],
            (Table::Filter, ChainId::SharedInput)
        );
        assert_eq!(r.render(), text, "and is written back the same");
    }
}
