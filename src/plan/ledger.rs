//! The sysctls as data, and the ledger that puts them back.
//!
//! Settings are shared by every tunnel of a network namespace, so the ledger (kept by `state`)
//! records each setting's value from before the first tunnel changed it, and which tunnels hold
//! it; the last holder's `down` restores it. Writing a forwarding switch also rewrites every
//! interface's forwarding (and IPv4's `conf.all.accept_redirects`): so every value is read before
//! the first write, the per-interface values it spreads to are recorded with it, and on restore
//! forwarding goes back first, then the rest. IPv4's `conf.default` keys spread too: the kernel
//! copies them to every interface whose own key was never written. Pure: the values come in as
//! a `Snapshot`, and the writes go out as a list for `system::sysctl` to perform.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// A sysctl as its path below /proc/sys, e.g. `net/ipv4/ip_forward`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(path: impl Into<String>) -> Key {
        Key(path.into())
    }

    /// A key as a record spells it, only when it names a setting below /proc/sys/net: a
    /// relative path whose parts are plain names (no `..`, no empty part), so that a record
    /// cannot make root write anywhere else.
    pub fn parse(path: &str) -> Option<Key> {
        let plain = |part: &str| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.+=:".contains(&b))
        };
        let rest = path.strip_prefix("net/")?;
        rest.split('/').all(plain).then(|| Key(path.to_string()))
    }

    pub fn as_path(&self) -> &str {
        &self.0
    }

    pub fn file(&self) -> PathBuf {
        PathBuf::from("/proc/sys").join(&self.0)
    }

    /// Writing this key rewrites every interface's forwarding setting.
    pub fn is_forwarding_switch(&self) -> bool {
        self.0 == IP_FORWARD || self.0 == IPV6_FORWARDING
    }

    /// Writing this key rewrites other keys: a forwarding switch, or an IPv4 `default` key,
    /// which the kernel copies to every interface whose own key was never written.
    pub fn spreads(&self) -> bool {
        self.is_forwarding_switch() || self.0.starts_with(IPV4_DEFAULT)
    }
}

impl fmt::Display for Key {
    /// Dotted like sysctl(8), unless a part (an interface name) has a dot of its own.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.split('/').any(|part| part.contains('.')) {
            f.write_str(&self.0)
        } else {
            f.write_str(&self.0.replace('/', "."))
        }
    }
}

pub const IP_FORWARD: &str = "net/ipv4/ip_forward";
pub const IPV6_FORWARDING: &str = "net/ipv6/conf/all/forwarding";
const IPV4_DEFAULT: &str = "net/ipv4/conf/default/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: Key,
    pub value: String,
}

/// A write of `value` to the key at `path`.
pub fn w(key: String, value: &str) -> Write {
    Write {
        key: Key(key),
        value: value.to_string(),
    }
}

/// The settings as read before the first write: each key's value, and for each key that
/// spreads (`Key::spreads`) the keys that writing it rewrites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: BTreeMap<Key, String>,
    pub spreads: BTreeMap<Key, Vec<Key>>,
}

/// The directory whose entries (`all`, `default` and every interface) a spreading key
/// rewrites, with the leaf it rewrites there.
pub fn spread_dir(switch: &Key) -> Option<(&'static str, &str)> {
    match switch.as_path() {
        IP_FORWARD => Some(("net/ipv4/conf", "forwarding")),
        IPV6_FORWARDING => Some(("net/ipv6/conf", "forwarding")),
        p => p
            .strip_prefix(IPV4_DEFAULT)
            .map(|leaf| ("net/ipv4/conf", leaf)),
    }
}

/// The settings that writing `switch` rewrites, given the entries of its `spread_dir`.
pub fn spread_of(switch: &Key, entries: &[String]) -> Vec<Key> {
    let Some((dir, leaf)) = spread_dir(switch) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for name in entries {
        let key = Key(format!("{dir}/{name}/{leaf}"));
        let own = name == "all" || name == "default";
        if &key != switch && (!own || leaf == "forwarding") {
            keys.push(key);
        }
    }
    if switch.as_path() == IP_FORWARD {
        keys.push(Key::new("net/ipv4/conf/all/accept_redirects"));
    }
    keys.sort();
    keys
}

/// One recorded setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub original: String,
    pub holders: BTreeSet<String>,
    /// Recorded because writing this key rewrote it; restored right after it.
    pub follows: Option<Key>,
    /// What already wanted the hook's value before it was written (`plan::reliance`): those
    /// reasons were there while the value was otherwise, so at `down` they do not keep it.
    pub before: BTreeSet<String>,
}

/// Separates the reasons in a record's field: nothing a reason holds (`record_reason`).
const REASON_SEP: char = '\u{1f}';

/// A reason as a record keeps it: one line, no tab, no separator.
fn record_reason(r: &str) -> String {
    r.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Every setting the tunnels of one network namespace changed, with its value from before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub entries: BTreeMap<Key, Entry>,
}

impl Ledger {
    /// Parses the ledger file: `key<TAB>original<TAB>holder,holder<TAB>follows<TAB>before`
    /// (`before`: reasons separated by U+001F; absent in an older version's file). A line
    /// whose key is not a setting's (`Key::parse`) is left out.
    pub fn parse(text: &str) -> Ledger {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(k), Some(orig)) = (f.next().and_then(Key::parse), f.next()) else {
                continue;
            };
            let holders = f
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let follows = match f.next().filter(|s| !s.is_empty()) {
                Some(k) => match Key::parse(k) {
                    Some(k) => Some(k),
                    None => continue,
                },
                None => None,
            };
            let before = f
                .next()
                .unwrap_or("")
                .split(REASON_SEP)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            entries.insert(
                k,
                Entry {
                    original: orig.to_string(),
                    holders,
                    follows,
                    before,
                },
            );
        }
        Ledger { entries }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for (k, e) in &self.entries {
            let holders: Vec<&str> = e.holders.iter().map(String::as_str).collect();
            let follows = e.follows.as_ref().map(Key::as_path).unwrap_or("");
            let before: Vec<String> = e.before.iter().map(|r| record_reason(r)).collect();
            s.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                k.as_path(),
                e.original,
                holders.join(","),
                follows,
                before.join(&REASON_SEP.to_string())
            ));
        }
        s
    }

    /// Takes `writes` on behalf of `holder`, releasing what it held before and no longer
    /// wants. `before` holds every value read before any write; returns the writes to perform,
    /// in order. Pure: the caller reads the snapshot and performs the writes.
    pub fn acquire(&mut self, holder: &str, writes: &[Write], before: &Snapshot) -> Vec<Write> {
        let (spreads, before) = (&before.spreads, &before.values);
        let wanted: BTreeSet<&Key> = writes.iter().map(|w| &w.key).collect();
        let mut out = self.release_where(holder, |k| !wanted.contains(k));
        for wr in writes {
            let current = before.get(&wr.key).cloned().unwrap_or_default();
            match self.entries.get_mut(&wr.key) {
                Some(e) => {
                    e.holders.insert(holder.to_string());
                    e.follows = None;
                }
                None => {
                    if wr.key.spreads() && current != wr.value {
                        for k in spreads.get(&wr.key).into_iter().flatten().cloned() {
                            if let (false, Some(orig)) =
                                (self.entries.contains_key(&k), before.get(&k))
                            {
                                let follows = Some(wr.key.clone());
                                self.entries.insert(
                                    k,
                                    Entry {
                                        original: orig.clone(),
                                        holders: BTreeSet::new(),
                                        follows,
                                        before: BTreeSet::new(),
                                    },
                                );
                            }
                        }
                    }
                    let holders = BTreeSet::from([holder.to_string()]);
                    self.entries.insert(
                        wr.key.clone(),
                        Entry {
                            original: current.clone(),
                            holders,
                            follows: None,
                            before: BTreeSet::new(),
                        },
                    );
                }
            }
            if current != wr.value {
                out.push(wr.clone());
            }
        }
        out
    }

    /// Drops `holder` from every setting; returns the restoring writes for the settings nobody
    /// holds any more (forwarding switches first, each followed by what it spread to).
    pub fn release(&mut self, holder: &str) -> Vec<Write> {
        self.release_where(holder, |_| true)
    }

    /// Drops `holder` from the settings it holds but no longer wants (a changed plan); returns
    /// the restoring writes, as `release` does. `acquire` does this first itself.
    pub fn release_unwanted(&mut self, holder: &str, writes: &[Write]) -> Vec<Write> {
        let wanted: BTreeSet<&Key> = writes.iter().map(|w| &w.key).collect();
        self.release_where(holder, |k| !wanted.contains(k))
    }

    /// Records, for each setting just written whose reasons are not recorded yet, what
    /// already wanted the hook's value (`plan::reliance::baseline`).
    pub fn note_before(&mut self, baseline: BTreeMap<Key, BTreeSet<String>>) {
        for (k, reasons) in baseline {
            if let Some(e) = self.entries.get_mut(&k)
                && e.before.is_empty()
            {
                e.before = reasons.iter().map(|r| record_reason(r)).collect();
            }
        }
    }

    /// What already wanted each setting's hook value before it was written.
    pub fn baselines(&self) -> BTreeMap<Key, BTreeSet<String>> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.before.is_empty())
            .map(|(k, e)| (k.clone(), e.before.clone()))
            .collect()
    }

    /// Each recorded setting that a switch rewrote, with that switch.
    pub fn followers(&self) -> BTreeMap<Key, Key> {
        self.entries
            .iter()
            .filter_map(|(k, e)| Some((k.clone(), e.follows.clone()?)))
            .collect()
    }

    fn release_where(&mut self, holder: &str, pick: impl Fn(&Key) -> bool) -> Vec<Write> {
        let mut freed = Vec::new();
        for (k, e) in self.entries.iter_mut() {
            if e.follows.is_none() && pick(k) && e.holders.remove(holder) && e.holders.is_empty() {
                freed.push(k.clone());
            }
        }
        // Forwarding first (it rewrites other keys), then the other spreading keys.
        freed.sort_by_key(|k| (!k.is_forwarding_switch(), !k.spreads()));
        let mut out = Vec::new();
        for k in freed {
            if let Some(e) = self.entries.remove(&k) {
                out.push(Write {
                    key: k.clone(),
                    value: e.original,
                });
            }
            if k.spreads() {
                let followers: Vec<Key> = self
                    .entries
                    .iter()
                    .filter(|(_, e)| e.follows.as_ref() == Some(&k))
                    .map(|(f, _)| f.clone())
                    .collect();
                for f in followers {
                    // A follower that is also held on its own is restored with its own entry.
                    let e = self.entries.remove(&f).expect("listed above");
                    out.push(Write {
                        key: f,
                        value: e.original,
                    });
                }
            }
        }
        // Followers of a restored switch that somebody still holds stay with their holders.
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values, and what the spreading keys rewrite on a host with lo and eth0.
    fn before(pairs: &[(&str, &str)]) -> Snapshot {
        let values: BTreeMap<Key, String> = pairs
            .iter()
            .map(|(k, v)| (Key::new(*k), v.to_string()))
            .collect();
        let entries = ["all", "default", "lo", "eth0"].map(String::from);
        let spreads = values
            .keys()
            .filter(|k| k.spreads())
            .map(|k| (k.clone(), spread_of(k, &entries)))
            .collect();
        Snapshot { values, spreads }
    }

    fn writes(pairs: &[(&str, &str)]) -> Vec<Write> {
        pairs.iter().map(|(k, v)| w(k.to_string(), v)).collect()
    }

    #[test]
    fn keys_display_like_sysctl() {
        assert_eq!(
            Key::new("net/ipv4/conf/wg0/rp_filter").to_string(),
            "net.ipv4.conf.wg0.rp_filter"
        );
        assert_eq!(
            Key::new("net/ipv4/conf/wg.1/rp_filter").to_string(),
            "net/ipv4/conf/wg.1/rp_filter"
        );
    }

    #[test]
    fn a_record_names_only_settings_below_proc_sys_net() {
        for good in [
            "net/ipv4/ip_forward",
            "net/ipv4/conf/wg.1/rp_filter",
            "net/ipv6/conf/wg+x=y_z-1/forwarding",
        ] {
            assert_eq!(Key::parse(good), Some(Key::new(good)), "{good}");
        }
        for bad in [
            "/etc/passwd",
            "net/../../../etc/passwd",
            "net/ipv4/../../kernel/core_pattern",
            "kernel/core_pattern",
            "net//ipv4",
            "net/ipv4/",
            "net/./ipv4/ip_forward",
            "net/ipv4/conf/a b/rp_filter",
            "",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
        let text = "/etc/cron.d/x\t* * * * * root id\twg0\t\n\
                    net/ipv4/ip_forward\t0\twg0\t\n\
                    net/ipv4/conf/all/accept_redirects\t1\t\t../../../etc/shadow\n";
        let l = Ledger::parse(text);
        assert_eq!(
            l.entries.keys().map(Key::as_path).collect::<Vec<_>>(),
            ["net/ipv4/ip_forward"]
        );
    }

    #[test]
    fn only_changes_are_written_and_the_last_holder_restores() {
        let mut l = Ledger::default();
        let want = writes(&[
            ("net/ipv4/tcp_syncookies", "1"),
            ("net/ipv4/conf/all/rp_filter", "1"),
        ]);
        let b = before(&[
            ("net/ipv4/tcp_syncookies", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
        ]);
        let out = l.acquire("wg0", &want, &b);
        assert_eq!(out, writes(&[("net/ipv4/conf/all/rp_filter", "1")]));
        // A second tunnel holds the same settings and writes nothing.
        let b2 = before(&[
            ("net/ipv4/tcp_syncookies", "1"),
            ("net/ipv4/conf/all/rp_filter", "1"),
        ]);
        assert!(l.acquire("wg1", &want, &b2).is_empty());
        assert!(l.release("wg0").is_empty());
        let out = l.release("wg1");
        assert_eq!(
            out,
            writes(&[
                ("net/ipv4/conf/all/rp_filter", "0"),
                ("net/ipv4/tcp_syncookies", "1")
            ])
        );
        assert!(l.entries.is_empty());
    }

    #[test]
    fn up_twice_changes_nothing_and_round_trips() {
        let mut l = Ledger::default();
        let want = writes(&[("net/ipv4/conf/all/send_redirects", "0")]);
        let b = before(&[("net/ipv4/conf/all/send_redirects", "1")]);
        assert_eq!(l.acquire("wg0", &want, &b).len(), 1);
        let b = before(&[("net/ipv4/conf/all/send_redirects", "0")]);
        assert!(l.acquire("wg0", &want, &b).is_empty());
        let again = Ledger::parse(&l.render());
        assert_eq!(again, l);
        assert_eq!(
            l.release("wg0"),
            writes(&[("net/ipv4/conf/all/send_redirects", "1")])
        );
    }

    #[test]
    fn reasons_from_before_round_trip_one_line_each() {
        let mut l = Ledger::default();
        let b = before(&[(IP_FORWARD, "0")]);
        l.acquire("wg0", &writes(&[(IP_FORWARD, "1")]), &b);
        let reasons = BTreeSet::from([
            "docker0 forwards".to_string(),
            "table ip filter forwards (chain X: iifname \"a\tb\" accept)".to_string(),
        ]);
        l.note_before(BTreeMap::from([(Key::new(IP_FORWARD), reasons)]));
        let text = l.render();
        assert_eq!(text.lines().count(), l.entries.len(), "{text:?}");
        let again = Ledger::parse(&text);
        assert_eq!(again, l);
        assert!(again.baselines()[&Key::new(IP_FORWARD)].contains("docker0 forwards"));
        // A later note does not replace what was there before the first write.
        let mut later = again.clone();
        later.note_before(BTreeMap::from([(
            Key::new(IP_FORWARD),
            BTreeSet::from(["x".to_string()]),
        )]));
        assert_eq!(later, again);
        // An older version's file, without the field, reads.
        let old = Ledger::parse("net/ipv4/ip_forward\t0\twg0\t\n");
        assert!(old.entries[&Key::new(IP_FORWARD)].before.is_empty());
    }

    #[test]
    fn a_changed_plan_releases_what_it_no_longer_wants() {
        let mut l = Ledger::default();
        let b = before(&[("a/x", "0"), ("a/y", "0")]);
        l.acquire("wg0", &writes(&[("a/x", "1"), ("a/y", "1")]), &b);
        let b = before(&[("a/x", "1"), ("a/y", "1")]);
        let out = l.acquire("wg0", &writes(&[("a/x", "1")]), &b);
        assert_eq!(out, writes(&[("a/y", "0")]));
    }

    #[test]
    fn forwarding_is_restored_first() {
        let mut l = Ledger::default();
        let b = before(&[
            ("net/ipv4/conf/all/rp_filter", "0"),
            (IP_FORWARD, "0"),
            ("net/ipv4/conf/all/accept_redirects", "1"),
        ]);
        l.acquire(
            "wg0",
            &writes(&[(IP_FORWARD, "1"), ("net/ipv4/conf/all/rp_filter", "1")]),
            &b,
        );
        let out = l.release("wg0");
        assert_eq!(out[0].key.as_path(), IP_FORWARD);
        assert_eq!(out[0].value, "0");
        // all.accept_redirects was rewritten by the switch, so it is put back after it.
        let redirects = out
            .iter()
            .position(|w| w.key.as_path() == "net/ipv4/conf/all/accept_redirects");
        assert!(redirects.is_some_and(|i| i > 0), "{out:?}");
    }
}
