//! Per-peer policy: the `[peer NAME]` and `[group NAME]` sections of the settings file. A
//! section names its peers by public key and says what they may reach; what it leaves out
//! they get from the interface's settings, above the first section.
//!
//! ```ini
//! lan = 192.168.1.0/24
//!
//! [peer laptop]
//! peer = 9Tn5o3...=
//! peer-to-peer = phones
//!
//! [group phones]
//! peer = xTIBA5...=, Hk3bN1...=
//! lan = none
//! allow = udp/53, tcp/53
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use super::limits::{self, MAX_LIST, MAX_SECTION_ENTRIES};
use super::quote;
use super::types::Service;

/// A WireGuard public key: 32 bytes in base64, 44 characters ending in `=`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(String);

impl PublicKey {
    /// The first characters, enough to tell keys apart in a one-line summary.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        let b = s.as_bytes();
        // 43 characters carry 258 bits: the last one's two lowest bits must be zero.
        let ok = b.len() == 44
            && b[43] == b'='
            && b[..43].iter().all(|c| b64(*c))
            && b"AEIMQUYcgkosw048".contains(&b[42]);
        if ok {
            Ok(PublicKey(s.to_string()))
        } else {
            Err(format!(
                "\"{}\" is not a WireGuard public key (44 characters of base64, as wg pubkey prints)",
                quote::text(s)
            ))
        }
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which other peers a section's peers may open connections to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerReach {
    None,
    All,
    /// These sections' peers.
    Named(Vec<String>),
}

/// One `[peer NAME]` or `[group NAME]` section, as written. `None`: not set, the interface's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// `[group]`: any number of peers; `[peer]`: exactly one.
    pub group: bool,
    /// The line of the header, for messages.
    pub line: usize,
    pub peers: Vec<(PublicKey, usize)>,
    /// The LAN networks they may reach (`none`: none).
    pub lan: Option<Vec<IpNet>>,
    pub no_internet: Option<bool>,
    /// With the line that names the sections, for messages.
    pub peer_to_peer: Option<(PeerReach, usize)>,
    /// The services of this host they may use; `None`: all of them.
    pub allow: Option<Vec<Service>>,
    /// SSH to this host and to the hosts of the LAN networks.
    pub admin: Option<bool>,
}

/// What a section may set.
pub const KEYS: &[&str] = &[
    "peer",
    "lan",
    "no-internet",
    "peer-to-peer",
    "allow",
    "admin",
];

/// What a section may give on several lines, adding up; any other key is given once.
pub const LISTS: &[&str] = &["peer", "lan", "allow"];

/// Words that are values of `peer-to-peer`, so no section may be called so.
const RESERVED: &[&str] = &["all", "none", "yes", "no", "true", "false", "on", "off"];

impl Section {
    /// A section from its header's inside (`peer laptop`), or `None` when it is no peer section.
    pub fn start(header: &str, line: usize) -> Option<Result<Section, String>> {
        let (kind, name) = header.trim().split_once(char::is_whitespace)?;
        let group = match kind.to_ascii_lowercase().as_str() {
            "peer" => false,
            "group" => true,
            _ => return None,
        };
        Some(name_ok(name.trim()).map(|name| Section {
            name,
            group,
            line,
            peers: Vec::new(),
            lan: None,
            no_internet: None,
            peer_to_peer: None,
            allow: None,
            admin: None,
        }))
    }

    pub fn kind(&self) -> &'static str {
        if self.group { "group" } else { "peer" }
    }

    /// Sets one key; repeated list keys add to the list, within the `room` the file has left.
    pub fn set(
        &mut self,
        key: &str,
        value: Option<&str>,
        line: usize,
        room: &mut Room,
    ) -> Result<(), String> {
        let value = value.ok_or_else(|| "needs a value".to_string())?;
        // The line's items, counted before any is kept: within this section's list and the
        // room of all sections.
        let had = match key {
            "lan" => self.lan.as_ref().map_or(0, Vec::len),
            "allow" => self.allow.as_ref().map_or(0, Vec::len),
            _ => 0,
        };
        let mut items = || room.take(key, had, value);
        match key {
            "peer" => {
                for k in items()? {
                    self.peers.push((k.parse()?, line));
                }
            }
            "lan" => {
                let nets = none_or(value, || {
                    items()?
                        .into_iter()
                        .map(super::types::network)
                        .collect::<Result<Vec<_>, _>>()
                })?;
                add_up(&mut self.lan, nets, "networks")?;
            }
            "allow" => {
                let services = none_or(value, || {
                    items()?
                        .into_iter()
                        .map(str::parse)
                        .collect::<Result<Vec<Service>, _>>()
                })?;
                add_up(&mut self.allow, services, "services")?;
            }
            "no-internet" => self.no_internet = Some(super::types::switch(Some(value))?),
            "admin" => self.admin = Some(super::types::switch(Some(value))?),
            "peer-to-peer" => {
                let reach = match super::types::switch(Some(value)) {
                    Ok(true) => PeerReach::All,
                    Ok(false) => PeerReach::None,
                    Err(_) => match value.to_ascii_lowercase().as_str() {
                        "all" => PeerReach::All,
                        "none" => PeerReach::None,
                        _ => PeerReach::Named(items()?.into_iter().map(String::from).collect()),
                    },
                };
                self.peer_to_peer = Some((reach, line));
            }
            _ => return Err("is not an option".into()),
        }
        Ok(())
    }

    /// Its `allow` and `peer-to-peer` entries (its `lan` is counted apart: a section without
    /// one gets the interface's).
    pub fn listed(&self) -> usize {
        let named = match &self.peer_to_peer {
            Some((PeerReach::Named(n), _)) => n.len(),
            _ => 0,
        };
        self.allow.as_ref().map_or(0, Vec::len) + named
    }

    /// The section in the settings file's syntax.
    pub fn render(&self) -> String {
        let mut s = format!("\n[{} {}]\n", self.kind(), self.name);
        let join = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_string()
            } else {
                items.join(", ")
            }
        };
        for (k, _) in &self.peers {
            s.push_str(&format!("peer = {k}\n"));
        }
        if let Some(l) = &self.lan {
            s.push_str(&format!(
                "lan = {}\n",
                join(l.iter().map(ToString::to_string).collect())
            ));
        }
        if let Some(b) = self.no_internet {
            s.push_str(&format!("no-internet = {}\n", yes(b)));
        }
        if let Some((r, _)) = &self.peer_to_peer {
            let v = match r {
                PeerReach::None => "none".to_string(),
                PeerReach::All => "all".to_string(),
                PeerReach::Named(n) => n.join(", "),
            };
            s.push_str(&format!("peer-to-peer = {v}\n"));
        }
        if let Some(a) = &self.allow {
            s.push_str(&format!(
                "allow = {}\n",
                join(a.iter().map(ToString::to_string).collect())
            ));
        }
        if let Some(b) = self.admin {
            s.push_str(&format!("admin = {}\n", yes(b)));
        }
        s
    }
}

/// What the rest of the settings file may still add to its sections (`config::limits`).
#[derive(Debug)]
pub struct Room {
    pub peers: usize,
    /// `lan`, `allow` and `peer-to-peer` entries.
    pub entries: usize,
}

impl Default for Room {
    fn default() -> Room {
        Room {
            peers: limits::MAX_PEERS,
            entries: MAX_SECTION_ENTRIES,
        }
    }
}

impl Room {
    /// The items of a `key` line of a section that has `had` of them, taken from the room;
    /// refused as soon as one more would not fit, before any is kept.
    fn take<'a>(&mut self, key: &str, had: usize, value: &'a str) -> Result<Vec<&'a str>, String> {
        let own = MAX_LIST.saturating_sub(had);
        let room = match key {
            "peer" => self.peers,
            _ => own.min(self.entries),
        };
        let mut items = Vec::new();
        for item in list(value) {
            if items.len() == room {
                return Err(match key {
                    "peer" => limits::over(limits::MAX_PEERS, "peers in the sections"),
                    _ if own <= self.entries => {
                        limits::over(MAX_LIST, &format!("{key} entries of a section"))
                    }
                    _ => limits::over(
                        MAX_SECTION_ENTRIES,
                        "lan, allow and peer-to-peer entries of the sections together",
                    ),
                });
            }
            items.push(item);
        }
        match key {
            "peer" => self.peers -= items.len(),
            _ => self.entries -= items.len(),
        }
        Ok(items)
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Adds a line's items to a list that earlier lines began; `none` (no items) is the whole
/// list, so it goes with no other line.
fn add_up<T>(list: &mut Option<Vec<T>>, items: Vec<T>, what: &str) -> Result<(), String> {
    match list {
        Some(had) if had.is_empty() || items.is_empty() => Err(format!(
            "none and {what} on another line of the section: give one of them"
        )),
        Some(had) => {
            had.extend(items);
            Ok(())
        }
        None => {
            *list = Some(items);
            Ok(())
        }
    }
}

fn none_or<T>(value: &str, f: impl FnOnce() -> Result<Vec<T>, String>) -> Result<Vec<T>, String> {
    if value.trim().eq_ignore_ascii_case("none") {
        Ok(Vec::new())
    } else {
        f()
    }
}

/// Names show in logs and `status`: letters, digits, `_ . -`, at most 24.
fn name_ok(name: &str) -> Result<String, String> {
    let ok = (1..=24).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !RESERVED.contains(&name.to_ascii_lowercase().as_str());
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "\"{}\" is not a section name (1 to 24 of a-z A-Z 0-9 _ . -, and not {})",
            quote::text(name),
            RESERVED.join(", ")
        ))
    }
}

/// Checks the sections against each other: names are unique, a peer belongs to one section, a
/// `[peer]` names one peer, `peer-to-peer` names sections that exist. The error carries the
/// line it is about.
pub fn check(sections: &[Section]) -> Result<(), (usize, String)> {
    let mut names: HashMap<&str, &Section> = HashMap::new();
    let mut keys: HashMap<&PublicKey, &Section> =
        HashMap::with_capacity(sections.iter().map(|s| s.peers.len()).sum());
    for s in sections {
        if let Some(first) = names.insert(&s.name, s) {
            return Err((
                s.line,
                format!(
                    "[{} {}]: the name is taken by [{} {}] on line {}",
                    s.kind(),
                    s.name,
                    first.kind(),
                    first.name,
                    first.line
                ),
            ));
        }
        match (s.group, s.peers.len()) {
            (_, 0) => {
                return Err((
                    s.line,
                    format!(
                        "[{} {}] names no peer: add peer = PUBLIC-KEY",
                        s.kind(),
                        s.name
                    ),
                ));
            }
            (false, n) if n > 1 => {
                return Err((
                    s.peers[1].1,
                    format!(
                        "[peer {}] names {n} peers: a [peer] section is for one, a [group {}] for several",
                        s.name, s.name
                    ),
                ));
            }
            _ => {}
        }
        for (key, line) in &s.peers {
            if let Some(o) = keys.insert(key, s) {
                return Err((
                    *line,
                    format!(
                        "peer {key} is already in [{} {}]: a peer belongs to one section",
                        o.kind(),
                        o.name
                    ),
                ));
            }
        }
    }
    for s in sections {
        if let Some((PeerReach::Named(list), line)) = &s.peer_to_peer {
            for n in list {
                if !names.contains_key(n.as_str()) {
                    return Err((
                        *line,
                        format!(
                            "peer-to-peer: \"{}\" is no [peer] or [group] section",
                            quote::text(n)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const KEY_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    #[test]
    fn public_keys_are_checked() {
        assert!(KEY_A.parse::<PublicKey>().is_ok());
        for bad in [
            "",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dh=",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8D!=",
            "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg==",
        ] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_and_values() {
        assert!(Section::start("wgfw", 1).is_none());
        assert!(Section::start("peer all", 1).unwrap().is_err());
        assert!(Section::start("peer a b", 1).unwrap().is_err());
        let mut s = Section::start("Group guests", 3).unwrap().unwrap();
        assert!(s.group);
        s.set("lan", Some("none"), 4, &mut Room::default()).unwrap();
        s.set("allow", Some("udp/53, tcp/53"), 5, &mut Room::default())
            .unwrap();
        s.set("peer-to-peer", Some("laptop, nas"), 6, &mut Room::default())
            .unwrap();
        s.set("peer", Some(KEY_A), 7, &mut Room::default()).unwrap();
        assert_eq!(s.lan, Some(vec![]));
        assert_eq!(s.allow.as_ref().unwrap().len(), 2);
        assert_eq!(
            s.peer_to_peer,
            Some((PeerReach::Named(vec!["laptop".into(), "nas".into()]), 6))
        );
        assert!(
            s.set("peer", Some("nope"), 8, &mut Room::default())
                .is_err()
        );
        assert!(
            s.set("lan", Some("10.0.0.300/24"), 8, &mut Room::default())
                .is_err()
        );
        assert!(s.render().starts_with("\n[group guests]\npeer = "));
    }
}
