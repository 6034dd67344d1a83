//! Who else relies on a setting the hook changed, and so which settings `down` (or the undo of
//! a failed `up`) leaves as they are instead of putting them back.
//!
//! The ledger knows each setting's value from before `up`. Putting it back is right only while
//! nothing else has come to want the value the hook set: Docker started after the tunnel finds
//! forwarding on and relies on it; ufw enabled after the tunnel asks for the redirects the hook
//! switched off. So a restore is left out, with one line saying why, when
//!
//! - the system's own configuration asks for the current value: sysctl.d files in
//!   systemd-sysctl's order, ufw's `sysctl.conf` while ufw is enabled, systemd-networkd's
//!   forwarding settings; or
//! - for a forwarding switch: another program forwards that family (`Forwarders`: interfaces
//!   such as docker0, virbr0 or another tunnel; other tools' forward accepts and masquerades).
//!
//! What a kept switch spread to (every interface's own forwarding) stays with it. Pure: the
//! texts and facts come from `system::reliance`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::fnmatch::glob;
use crate::config::quote;

use super::ledger::{IP_FORWARD, IPV6_FORWARDING, Key, Write};
use super::model::Family;

/// One `key = value` of a configuration file, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// A path below /proc/sys (`net/ipv4/ip_forward`), possibly with glob characters.
    pub pattern: String,
    /// `None`: a `!key` line, which keeps globs off the key.
    pub value: Option<String>,
    /// `/etc/sysctl.d/90-router.conf:3`, or a program's name and its file.
    pub source: String,
}

/// Everything the decision needs to know of the rest of the system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reliance {
    /// What the system's configuration asks for, in the order it is applied (the last wins).
    pub configured: Vec<Assignment>,
    /// Per family, why another program forwards (`docker0 forwards`); empty: nothing does.
    pub forwarders: BTreeMap<Family, Vec<String>>,
}

/// A restore left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub key: Key,
    /// The value it keeps (the hook's).
    pub value: String,
    pub why: String,
}

impl Reliance {
    /// The value the configuration asks for the key, and where: an explicit assignment wins
    /// over a glob (as in systemd-sysctl), and the last of each kind wins.
    pub fn configured(&self, key: &Key) -> Option<(&str, &str)> {
        let path = key.as_path();
        // The kernel has two names for IPv4 forwarding.
        let aliases: &[&str] = if path == IP_FORWARD {
            &[IP_FORWARD, "net/ipv4/conf/all/forwarding"]
        } else {
            &[path]
        };
        let explicit = self
            .configured
            .iter()
            .rev()
            .find(|a| aliases.contains(&a.pattern.as_str()));
        if let Some(a) = explicit {
            return a.value.as_deref().map(|v| (v, a.source.as_str()));
        }
        self.configured
            .iter()
            .rev()
            .filter(|a| is_glob(&a.pattern))
            .find(|a| aliases.iter().any(|k| glob(&a.pattern, k)))
            .and_then(|a| a.value.as_deref().map(|v| (v, a.source.as_str())))
    }

    /// Every reason something else wants `value` for the key.
    pub fn reasons(&self, key: &Key, value: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((v, source)) = self.configured(key)
            && same(v, value)
        {
            out.push(format!("{source} asks for it"));
        }
        if let Some(family) = switch_family(key) {
            out.extend(self.forwarders.get(&family).into_iter().flatten().cloned());
        }
        out
    }

    /// The reasons for `current` that were not there before the hook wrote it: what came to
    /// rely on the value since.
    fn new_reasons(&self, key: &Key, current: &str, baseline: &Baseline) -> Vec<String> {
        let before = baseline.get(key);
        self.reasons(key, current)
            .into_iter()
            .filter(|r| !before.is_some_and(|b| b.contains(r)))
            .collect()
    }

    /// Whether the decision can need `forwarders`: a forwarding switch is to be restored and
    /// the configuration does not already keep it. Lets the caller skip reading the ruleset.
    pub fn needs_forwarders(
        &self,
        writes: &[Write],
        current: &BTreeMap<Key, String>,
        baseline: &Baseline,
    ) -> bool {
        writes.iter().any(|w| {
            switch_family(&w.key).is_some()
                && current.get(&w.key).is_some_and(|c| {
                    !same(c, &w.value) && self.new_reasons(&w.key, c, baseline).is_empty()
                })
        })
    }
}

/// Per setting, what already wanted the hook's value before the hook wrote it
/// (`Ledger::baselines`): those do not keep the value at `down`, since it was otherwise while
/// they were there.
pub type Baseline = BTreeMap<Key, BTreeSet<String>>;

/// The baseline of `writes` (the hook's values about to be written): every reason that
/// already wants each.
pub fn baseline(relied: &Reliance, writes: &[Write]) -> Baseline {
    writes
        .iter()
        .map(|w| {
            (
                w.key.clone(),
                relied.reasons(&w.key, &w.value).into_iter().collect(),
            )
        })
        .filter(|(_, r): &(Key, BTreeSet<String>)| !r.is_empty())
        .collect()
}

/// The family whose forwarding switch the key is.
pub fn switch_family(key: &Key) -> Option<Family> {
    match key.as_path() {
        IP_FORWARD => Some(Family::V4),
        IPV6_FORWARDING => Some(Family::V6),
        _ => None,
    }
}

/// Splits restoring writes into those to perform and those left, with why. `follows` maps a
/// key to the switch it was recorded with (it stays when the switch stays); `current` holds
/// the values now; a reason in the key's `baseline` does not count. A write whose key already
/// has its value is passed on (the caller skips it).
pub fn sort(
    writes: Vec<Write>,
    follows: &BTreeMap<Key, Key>,
    current: &BTreeMap<Key, String>,
    relied: &Reliance,
    baseline: &Baseline,
) -> (Vec<Write>, Vec<Kept>) {
    let mut perform = Vec::new();
    let mut kept: Vec<Kept> = Vec::new();
    let mut kept_keys = BTreeSet::new();
    for w in writes {
        let Some(now) = current.get(&w.key) else {
            perform.push(w);
            continue;
        };
        if same(now, &w.value) {
            perform.push(w);
            continue;
        }
        if let Some(switch) = follows.get(&w.key)
            && kept_keys.contains(switch)
        {
            kept_keys.insert(w.key.clone());
            continue;
        }
        let why = match relied.new_reasons(&w.key, now, baseline).as_slice() {
            [] => {
                perform.push(w);
                continue;
            }
            [one] => one.clone(),
            [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
        };
        kept_keys.insert(w.key.clone());
        kept.push(Kept {
            key: w.key,
            value: now.clone(),
            why,
        });
    }
    (perform, kept)
}

/// Values compared as the kernel prints them: whitespace runs are one space.
fn same(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// A sysctl.d file (or `/etc/sysctl.conf`, ufw's `sysctl.conf`), as systemd-sysctl reads it:
/// `#` and `;` comments, `key = value`, a leading `-` (ignore failures) dropped, a `!key`
/// that keeps globs off the key; a key whose first separator is a dot has its dots and
/// slashes swapped (`net.ipv4.conf.eth0/1.rp_filter` is `net/ipv4/conf/eth0.1/rp_filter`).
pub fn parse_sysctl_conf(text: &str, file: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let source = format!("{}:{}", quote::text(file), n + 1);
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_string())),
            None if line.starts_with('!') => (line, None),
            None => continue,
        };
        let (key, value) = match key.strip_prefix('!') {
            Some(k) => (k, None),
            None => (key.strip_prefix('-').unwrap_or(key), value),
        };
        let Some(pattern) = sysctl_path(key.trim()) else {
            continue;
        };
        out.push(Assignment {
            pattern,
            value,
            source,
        });
    }
    out
}

/// The key as a path below /proc/sys.
fn sysctl_path(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let first = key.find(['.', '/'])?;
    Some(if key.as_bytes()[first] == b'/' {
        key.to_string()
    } else {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    })
}

fn is_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// The files systemd reads of drop-in directories (sysctl.d, networkd's), in order: every name
/// ending in `suffix` (the first directory holding a name wins), sorted by name. `dirs` in
/// precedence order, with their entries.
pub fn drop_in_order(dirs: &[(&str, Vec<String>)], suffix: &str) -> Vec<String> {
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for (dir, names) in dirs {
        for name in names.iter().filter(|n| n.ends_with(suffix)) {
            by_name.entry(name.as_str()).or_insert(dir);
        }
    }
    by_name
        .into_iter()
        .map(|(name, dir)| format!("{dir}/{name}"))
        .collect()
}

/// Whether ufw's `ufw.conf` says it is enabled.
pub fn ufw_enabled(conf: &str) -> bool {
    shell_vars(conf).any(|(k, v)| k == "ENABLED" && v.eq_ignore_ascii_case("yes"))
}

/// The sysctl file ufw applies, as `/etc/default/ufw` names it.
pub fn ufw_sysctl_file(defaults: &str) -> Option<String> {
    shell_vars(defaults)
        .filter(|(k, _)| *k == "IPT_SYSCTL")
        .last()
        .map(|(_, v)| v.to_string())
        .filter(|v| v.starts_with('/'))
}

/// `NAME=value` lines of a shell-style file, quotes taken off.
fn shell_vars(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|l| {
        let (k, v) = l.trim().split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

/// A systemd-networkd `.network` file (or `networkd.conf`): the forwarding it asks for, as
/// assignments of the switches. `IPForward=` (systemd up to 255: yes, ipv4, ipv6),
/// `IPv4Forwarding=` and `IPv6Forwarding=` (256 and later), in a `[Network]` section.
pub fn parse_networkd(text: &str, file: &str) -> Vec<Assignment> {
    let mut out = Vec::new();
    let mut in_network = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') {
            in_network = line == "[Network]";
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|_| in_network) else {
            continue;
        };
        let v = v.trim().to_ascii_lowercase();
        let yes = matches!(v.as_str(), "yes" | "true" | "on" | "1");
        let (v4, v6) = match k.trim() {
            "IPForward" => (yes || v == "ipv4", yes || v == "ipv6"),
            "IPv4Forwarding" => (yes, false),
            "IPv6Forwarding" => (false, yes),
            _ => continue,
        };
        let source = format!("{}:{}", quote::text(file), n + 1);
        for (on, key) in [(v4, IP_FORWARD), (v6, IPV6_FORWARDING)] {
            if on {
                out.push(Assignment {
                    pattern: key.to_string(),
                    value: Some("1".into()),
                    source: source.clone(),
                });
            }
        }
    }
    out
}

/// What `system::reliance` learns of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// Administratively up.
    pub up: bool,
    pub bridge: bool,
    /// A layer-3 tunnel: a WireGuard or tun device (ARPHRD_NONE).
    pub tunnel: bool,
    /// Routes to networks through it, per family (IPv6 link-local and multicast not counted).
    pub routes: BTreeSet<Family>,
}

/// Why the link forwards `family` for another program, if it does: a bridge or a tunnel that
/// is up and routes networks of that family. A bridge's ports alone do not count: frames
/// between them are bridged, not routed, and need no forwarding switch.
pub fn link_forwards(link: &Link, family: Family) -> Option<String> {
    let kind = match (link.bridge, link.tunnel) {
        (true, _) => "bridge",
        (false, true) => "tunnel",
        _ => return None,
    };
    (link.up && link.routes.contains(&family)).then(|| {
        format!(
            "{} forwards (a {kind} that routes {})",
            quote::text(&link.name),
            family.name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ledger::w;

    fn conf(text: &str) -> Reliance {
        Reliance {
            configured: parse_sysctl_conf(text, "/etc/sysctl.d/90-x.conf"),
            ..Reliance::default()
        }
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<Key, String> {
        pairs
            .iter()
            .map(|(k, v)| (Key::new(*k), v.to_string()))
            .collect()
    }

    #[test]
    fn sysctl_d_lines_read_as_systemd_reads_them() {
        let a = parse_sysctl_conf(
            "# c\n; c\n\nnet.ipv4.ip_forward = 1\n-net.ipv4.conf.eth0/1.rp_filter=2\n\
             net/ipv6/conf/all/forwarding=1\n!net.ipv4.conf.lo.rp_filter\nnonsense\n",
            "f",
        );
        let got: Vec<(&str, Option<&str>, &str)> = a
            .iter()
            .map(|a| (a.pattern.as_str(), a.value.as_deref(), a.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("net/ipv4/ip_forward", Some("1"), "f:4"),
                ("net/ipv4/conf/eth0.1/rp_filter", Some("2"), "f:5"),
                ("net/ipv6/conf/all/forwarding", Some("1"), "f:6"),
                ("net/ipv4/conf/lo/rp_filter", None, "f:7"),
            ]
        );
    }

    #[test]
    fn explicit_beats_glob_and_the_last_wins() {
        let r = conf(
            "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.eth0.rp_filter = 0\n\
             net.ipv4.conf.eth0.rp_filter = 1\nnet.ipv4.conf.[!e]*.accept_redirects = 0\n",
        );
        let k = |s: &str| Key::new(s);
        assert_eq!(
            r.configured(&k("net/ipv4/conf/eth0/rp_filter"))
                .map(|c| c.0),
            Some("1")
        );
        assert_eq!(
            r.configured(&k("net/ipv4/conf/wg0/rp_filter")).map(|c| c.0),
            Some("2")
        );
        assert_eq!(
            r.configured(&k("net/ipv4/conf/all/accept_redirects"))
                .map(|c| c.0),
            Some("0")
        );
        assert_eq!(
            r.configured(&k("net/ipv4/conf/eth0/accept_redirects")),
            None
        );
        // A `!key` keeps the glob off it.
        let r = conf("net.ipv4.conf.*.rp_filter = 2\n!net.ipv4.conf.lo.rp_filter\n");
        assert_eq!(r.configured(&k("net/ipv4/conf/lo/rp_filter")), None);
        // conf.all.forwarding is IPv4 forwarding's other name.
        let r = conf("net.ipv4.conf.all.forwarding=1\n");
        assert_eq!(r.configured(&k(IP_FORWARD)).map(|c| c.0), Some("1"));
    }

    #[test]
    fn a_setting_the_configuration_asks_for_stays() {
        let r = conf("net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 0\n");
        let writes = vec![
            w(IP_FORWARD.into(), "0"),
            w("net/ipv4/conf/all/rp_filter".into(), "0"),
            w("net/ipv4/conf/eth0/forwarding".into(), "0"),
            w("net/ipv4/tcp_syncookies".into(), "0"),
        ];
        let follows = BTreeMap::from([(
            Key::new("net/ipv4/conf/eth0/forwarding"),
            Key::new(IP_FORWARD),
        )]);
        let now = values(&[
            (IP_FORWARD, "1"),
            ("net/ipv4/conf/all/rp_filter", "1"),
            ("net/ipv4/conf/eth0/forwarding", "1"),
            ("net/ipv4/tcp_syncookies", "1"),
        ]);
        let (perform, kept) = sort(writes, &follows, &now, &r, &Baseline::new());
        // rp_filter: the configuration asks for the value from before, so it goes back.
        assert_eq!(
            perform.iter().map(|w| w.key.as_path()).collect::<Vec<_>>(),
            ["net/ipv4/conf/all/rp_filter", "net/ipv4/tcp_syncookies"]
        );
        assert_eq!(
            kept,
            [Kept {
                key: Key::new(IP_FORWARD),
                value: "1".into(),
                why: "/etc/sysctl.d/90-x.conf:1 asks for it".into()
            }]
        );
    }

    #[test]
    fn forwarding_stays_while_another_program_forwards_that_family() {
        let mut r = Reliance::default();
        r.forwarders
            .insert(Family::V4, vec!["docker0 forwards".into(), "x".into()]);
        let writes = vec![w(IP_FORWARD.into(), "0"), w(IPV6_FORWARDING.into(), "0")];
        let now = values(&[(IP_FORWARD, "1"), (IPV6_FORWARDING, "1")]);
        assert!(r.needs_forwarders(&writes, &now, &Baseline::new()));
        let (perform, kept) = sort(writes, &BTreeMap::new(), &now, &r, &Baseline::new());
        assert_eq!(perform, [w(IPV6_FORWARDING.into(), "0")]);
        assert_eq!(kept[0].why, "docker0 forwards (and 1 more)");
        // Per-interface keys are not switches: forwarders do not keep them.
        let (perform, kept) = sort(
            vec![w("net/ipv4/conf/all/accept_redirects".into(), "1")],
            &BTreeMap::new(),
            &values(&[("net/ipv4/conf/all/accept_redirects", "0")]),
            &r,
            &Baseline::new(),
        );
        assert_eq!((perform.len(), kept.len()), (1, 0));
    }

    #[test]
    fn with_nothing_else_every_setting_goes_back() {
        let writes = vec![
            w(IP_FORWARD.into(), "0"),
            w("net/ipv4/conf/all/accept_redirects".into(), "1"),
        ];
        let now = values(&[
            (IP_FORWARD, "1"),
            ("net/ipv4/conf/all/accept_redirects", "0"),
        ]);
        let r = Reliance::default();
        assert!(r.needs_forwarders(&writes, &now, &Baseline::new()));
        let (perform, kept) = sort(writes.clone(), &BTreeMap::new(), &now, &r, &Baseline::new());
        assert_eq!((perform, kept), (writes.clone(), vec![]));
        // The configuration already decides: no need to look for forwarders.
        let r = conf("net.ipv4.ip_forward=1\n");
        assert!(!r.needs_forwarders(&writes[..1], &now, &Baseline::new()));
    }

    #[test]
    fn what_was_there_before_the_hook_wrote_does_not_keep_a_value() {
        // Docker's bridge was there, with forwarding off, when the hook switched it on: it did
        // not rely on it then, and does not now. A second bridge since does.
        let mut r = Reliance::default();
        r.forwarders
            .insert(Family::V4, vec!["docker0 forwards".into()]);
        let hook = [w(IP_FORWARD.into(), "1")];
        let base = baseline(&r, &hook);
        let restore = vec![w(IP_FORWARD.into(), "0")];
        let now = values(&[(IP_FORWARD, "1")]);
        assert!(r.needs_forwarders(&restore, &now, &base));
        let (perform, kept) = sort(restore.clone(), &BTreeMap::new(), &now, &r, &base);
        assert_eq!((perform.len(), kept.len()), (1, 0));
        r.forwarders
            .get_mut(&Family::V4)
            .unwrap()
            .push("virbr0 forwards".into());
        let (perform, kept) = sort(restore, &BTreeMap::new(), &now, &r, &base);
        assert_eq!(perform.len(), 0);
        assert_eq!(kept[0].why, "virbr0 forwards");
        // The same for a sysctl.d line that was there (and not applied) before up.
        let r = conf("net.ipv4.ip_forward = 1\n");
        let base = baseline(&r, &hook);
        let (perform, _) = sort(
            vec![w(IP_FORWARD.into(), "0")],
            &BTreeMap::new(),
            &now,
            &r,
            &base,
        );
        assert_eq!(perform.len(), 1);
    }

    #[test]
    fn sysctl_d_files_in_systemd_order() {
        let dirs = [
            (
                "/etc/sysctl.d",
                vec!["99-sysctl.conf".into(), "50-x.conf".into()],
            ),
            ("/run/sysctl.d", vec!["50-x.conf".into(), "README".into()]),
            (
                "/usr/lib/sysctl.d",
                vec!["10-a.conf".into(), "50-x.conf".into()],
            ),
        ];
        assert_eq!(
            drop_in_order(&dirs, ".conf"),
            [
                "/usr/lib/sysctl.d/10-a.conf",
                "/etc/sysctl.d/50-x.conf",
                "/etc/sysctl.d/99-sysctl.conf"
            ]
        );
    }

    #[test]
    fn ufw_and_networkd_files() {
        assert!(ufw_enabled("# c\nENABLED=yes\n"));
        assert!(!ufw_enabled("ENABLED=no\n"));
        assert_eq!(
            ufw_sysctl_file("IPT_SYSCTL=\"/etc/ufw/sysctl.conf\"\n").as_deref(),
            Some("/etc/ufw/sysctl.conf")
        );
        assert_eq!(ufw_sysctl_file("IPT_SYSCTL=relative\n"), None);
        let a = parse_networkd(
            "[Match]\nIPForward=yes\n[Network]\nIPForward=ipv4\n[Network]\nIPv6Forwarding=true\n",
            "n",
        );
        let got: Vec<(&str, &str)> = a
            .iter()
            .map(|a| (a.pattern.as_str(), a.source.as_str()))
            .collect();
        assert_eq!(got, [(IP_FORWARD, "n:4"), (IPV6_FORWARDING, "n:6")]);
    }

    #[test]
    fn bridges_and_tunnels_that_route_forward() {
        let mut l = Link {
            name: "docker0".into(),
            up: true,
            bridge: true,
            routes: BTreeSet::from([Family::V4]),
            ..Link::default()
        };
        assert_eq!(
            link_forwards(&l, Family::V4).as_deref(),
            Some("docker0 forwards (a bridge that routes IPv4)")
        );
        assert_eq!(link_forwards(&l, Family::V6), None);
        l.up = false;
        assert_eq!(link_forwards(&l, Family::V4), None);
        let eth = Link {
            name: "eth0".into(),
            up: true,
            routes: BTreeSet::from([Family::V4]),
            ..Link::default()
        };
        assert_eq!(link_forwards(&eth, Family::V4), None);
    }
}
