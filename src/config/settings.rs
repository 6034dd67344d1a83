//! The optional settings file `/etc/wgfw/IFACE.conf`: `name = value` lines using the long
//! options' names (`allow = tcp/443`, `no-nat = yes`). `#` and `;` start comments. Lists
//! (`admin`, `allow`, `lan`, `forward`; in a section `peer`, `lan`, `allow`) add up line by
//! line; any other key is given once, in the interface's part and in each section, so that no
//! later line hides a wrong earlier one. Below them, `[peer NAME]` and `[group NAME]` sections set per-peer policy
//! (`config::peers`); any other header above the first of them is accepted and ignored.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::cli::{FLAGS, Options};
use crate::config::limits::{self, MAX_SECTIONS};
use crate::config::peers::{self, Room, Section};
use crate::config::quote;
use crate::config::trust;
use crate::config::types::IfaceName;
use crate::error::{Error, Result};

pub const DIR: &str = "/etc/wgfw";

pub fn path_for(iface: &IfaceName) -> PathBuf {
    Path::new(DIR).join(format!("{iface}.conf"))
}

/// Reads the settings file (refused when another user could have written it); a missing file
/// means no settings.
pub fn read(path: &Path) -> Result<Options> {
    match trust::read(path)? {
        Some(text) => parse(path, &text),
        None => Ok(Options::default()),
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Options> {
    let shown = quote::path(path);
    let at = |line: usize, msg: String| Error::usage(format!("{shown}:{line}: {msg}"));
    let mut options = Options::default();
    // The line of each single-valued key given so far, in the interface's part or the
    // current section.
    let mut given: HashMap<String, usize> = HashMap::new();
    let mut room = Room::default();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let err = |msg: String| at(n, msg);
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            match Section::start(header, n) {
                Some(_) if options.sections.len() == MAX_SECTIONS => {
                    return Err(err(limits::over(
                        MAX_SECTIONS,
                        "[peer] and [group] sections",
                    )));
                }
                Some(section) => {
                    options.sections.push(section.map_err(err)?);
                    given.clear();
                }
                // Any other header above the sections (`[wgfw]`) is the interface's.
                None if options.sections.is_empty() => {}
                None => {
                    return Err(err(format!(
                        "[{}] is not a section: use [peer NAME] or [group NAME]",
                        quote::text(header)
                    )));
                }
            }
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        // Spelled as the options are, mostly: then nothing is copied (10,000 `peer =` lines).
        let key = if key.bytes().any(|b| b.is_ascii_uppercase() || b == b'_') {
            Cow::Owned(key.to_ascii_lowercase().replace('_', "-"))
        } else {
            Cow::Borrowed(key)
        };
        let key = key.as_ref();
        let flag = FLAGS.iter().find(|f| f.long == key);
        let mut once = |list: bool| match given.get(key) {
            _ if list => Ok(()),
            Some(first) => Err(first.to_string()),
            None => {
                given.insert(key.to_string(), n);
                Ok(())
            }
        };
        let known = || flag.is_some_and(|f| f.in_settings);
        if let Some(section) = options.sections.last_mut() {
            if !peers::KEYS.contains(&key) {
                let why = if known() {
                    "is the interface's: put it above the first section".to_string()
                } else {
                    format!("is not a setting of a section ({})", peers::KEYS.join(", "))
                };
                return Err(err(format!(
                    "\"{}\" in [{} {}] {why}",
                    quote::text(key),
                    section.kind(),
                    section.name
                )));
            }
            once(peers::LISTS.contains(&key)).map_err(|first| {
                err(format!(
                    "\"{key}\" is given again in [{} {}] (first on line {first}): only {} may repeat",
                    section.kind(),
                    section.name,
                    and_list(peers::LISTS)
                ))
            })?;
            section
                .set(key, value, n, &mut room)
                .map_err(|e| err(format!("{key}: {e}")))?;
            continue;
        }
        if let Some(f) = flag.filter(|f| !f.in_settings) {
            return Err(err(format!(
                "\"{}\" is for the command line only: the settings file is read by every up, the one at boot too",
                f.long
            )));
        }
        if !known() {
            return Err(err(format!("\"{}\" is not a setting", quote::text(key))));
        }
        once(flag.is_some_and(|f| f.repeatable)).map_err(|first| {
            let lists: Vec<&str> = FLAGS
                .iter()
                .filter(|f| f.in_settings && f.repeatable)
                .map(|f| f.long)
                .collect();
            err(format!(
                "\"{key}\" is given again (first on line {first}): only {} may repeat",
                and_list(&lists)
            ))
        })?;
        options
            .set(key, value)
            .map_err(|e| err(format!("{key}: {e}")))?;
        // What only the plan can judge (is the target behind the tunnel?) names this line.
        if key == "forward"
            && let Some(f) = options.forward.last_mut()
        {
            f.origin = format!("{shown}:{n}: forward =");
        }
    }
    peers::check(&options.sections).map_err(|(line, msg)| at(line, msg))?;
    Ok(options)
}

/// `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Options> {
        parse(Path::new("/etc/wgfw/wg0.conf"), text)
    }

    #[test]
    fn reads_long_option_names() {
        let o = p(
            "# office gateway\n[wgfw]\nwan = eth1\nallow = tcp/443 ; web\nallow = udp/53\n\
                   admin = 192.0.2.0/24\nno-nat = yes\nno_log\nssh-port = none\n",
        )
        .unwrap();
        assert_eq!(o.wan.unwrap().as_str(), "eth1");
        assert_eq!(o.allow.len(), 2);
        assert_eq!(o.admin.len(), 1);
        assert!(o.no_nat && o.no_log && !o.nat6);
        assert_eq!(o.ssh_port, Some(None));
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            p("wan = eth0\nfrobnicate = 1\n").unwrap_err().to_string(),
            "/etc/wgfw/wg0.conf:2: \"frobnicate\" is not a setting"
        );
        assert_eq!(
            p("\npolicy = maybe\n").unwrap_err().to_string(),
            "/etc/wgfw/wg0.conf:2: policy: \"maybe\" is not a policy (auto, drop, accept)"
        );
        assert!(p("verbose = 1\n").is_err());
        assert!(p("no-nat = perhaps\n").is_err());
    }

    /// `rollback = N` in the file would take the firewall away N seconds after every `up`, the
    /// one at boot too: like `force`, it belongs on the command line.
    #[test]
    fn command_line_only_options_are_refused_with_their_line() {
        for key in [
            "rollback = 120",
            "force = yes",
            "force",
            "json",
            "repair",
            "verbose",
        ] {
            let e = p(&format!("wan = eth0\n{key}\n")).unwrap_err().to_string();
            let name = key.split(' ').next().unwrap();
            assert_eq!(
                e,
                format!(
                    "/etc/wgfw/wg0.conf:2: \"{name}\" is for the command line only: the settings file is read by every up, the one at boot too"
                )
            );
        }
    }

    const A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const B: &str = "Hk3bN1b1K8pWJ1b1XUq9I7Ih0w5b9X1gZ5s0oY6mQmk=";

    #[test]
    fn reads_peer_sections() {
        let o = p(&format!(
            "lan = 192.168.1.0/24\n[peer laptop]\npeer = {A}\nadmin = yes\n\n[group guests]\n\
             peer = {B}\nlan = none\npeer-to-peer = laptop\n"
        ))
        .unwrap();
        assert_eq!(o.lan.len(), 1);
        assert_eq!(o.sections.len(), 2);
        assert_eq!(o.sections[0].admin, Some(true));
        assert_eq!(o.sections[1].lan, Some(vec![]));
        // What up records reads back as it was.
        let text = o.to_settings();
        assert_eq!(p(&text).unwrap().to_settings(), text);
    }

    #[test]
    fn hostile_sections_are_refused_with_their_line() {
        let e = |text: String| p(&text).unwrap_err().to_string();
        assert_eq!(
            e(format!("[peer laptop]\npeer = {A}\nfrobnicate = 1\n")),
            "/etc/wgfw/wg0.conf:3: \"frobnicate\" in [peer laptop] is not a setting of a section (peer, lan, no-internet, peer-to-peer, allow, admin)"
        );
        assert_eq!(
            e(format!("[peer laptop]\npeer = {A}\nwan = eth0\n")),
            "/etc/wgfw/wg0.conf:3: \"wan\" in [peer laptop] is the interface's: put it above the first section"
        );
        assert!(
            e("[peer laptop]\npeer = abc=\n".into())
                .starts_with("/etc/wgfw/wg0.conf:2: peer: \"abc=\" is not a WireGuard public key")
        );
        assert_eq!(
            e(format!(
                "[peer laptop]\npeer = {A}\n[group guests]\npeer = {B}\npeer = {A}\n"
            )),
            format!(
                "/etc/wgfw/wg0.conf:5: peer {A} is already in [peer laptop]: a peer belongs to one section"
            )
        );
        assert_eq!(
            e(format!("[peer laptop]\npeer = {A}\npeer-to-peer = nas\n")),
            "/etc/wgfw/wg0.conf:3: peer-to-peer: \"nas\" is no [peer] or [group] section"
        );
        assert_eq!(
            e("[group guests]\n".into()),
            "/etc/wgfw/wg0.conf:1: [group guests] names no peer: add peer = PUBLIC-KEY"
        );
        assert!(
            e(format!("[peer a]\npeer = {A}, {B}\n"))
                .starts_with("/etc/wgfw/wg0.conf:2: [peer a] names 2 peers")
        );
        assert!(
            e(format!("[peer a]\npeer = {A}\n[peer a]\npeer = {B}\n"))
                .starts_with("/etc/wgfw/wg0.conf:3: [peer a]: the name is taken")
        );
        assert!(
            e(format!("[peer a]\npeer = {A}\n[wgfw]\n"))
                .starts_with("/etc/wgfw/wg0.conf:3: [wgfw] is not a section")
        );
    }

    /// What an error repeats of the file is shown with its control characters escaped: a
    /// carriage return would overwrite the line on a terminal, an escape sequence rewrite it.
    #[test]
    fn errors_escape_control_characters() {
        let cases: &[(&str, &str)] = &[
            ("[peer cr\rdrop]\n", "\"cr\\rdrop\" is not a section name"),
            (
                &format!("[peer a]\npeer = {A}\n[wg\x1b[2J]\n"),
                "[wg\\x1b[2J] is not a section",
            ),
            ("fro\x1bb = 1\n", "\"fro\\x1bb\" is not a setting"),
            (
                "policy = \x1b[31mdrop\n",
                "\"\\x1b[31mdrop\" is not a policy",
            ),
            (
                "no-nat = y\u{202e}es\n",
                "\"y\\u{202e}es\" is not yes or no",
            ),
            (
                "lan = 10.0.0.0/8\x07\n",
                "\"10.0.0.0/8\\x07\" is not an IP network",
            ),
            (
                "wan = eth\x1b0\n",
                "\"eth\\x1b0\" is not a valid interface name",
            ),
            ("allow = tcp/4\x1b3\n", "\"4\\x1b3\" is not a port"),
            ("allow = t\x1bcp/43\n", "\"t\\x1bcp/43\" is not a service"),
            (
                &format!("[peer a]\npeer = {A}\nx\ry = 1\n"),
                "\"x\\ry\" in [peer a] is not a setting",
            ),
            (
                &format!("[peer a]\npeer = {A}\nadmin = \x1b\n"),
                "\"\\x1b\" is not yes or no",
            ),
            (
                "[peer a]\npeer = k\x1b=\n",
                "\"k\\x1b=\" is not a WireGuard public key",
            ),
            (
                &format!("[peer a]\npeer = {A}\npeer-to-peer = n\x1bas\n"),
                "\"n\\x1bas\" is no [peer] or [group] section",
            ),
            (
                "forward = tcp/1=10.0.0.1,\x1b\n",
                "\"\\x1b\" is not an option of a forward",
            ),
        ];
        for (text, want) in cases {
            let e = p(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.chars().any(char::is_control), "{text:?}: {e:?}");
        }
        let e = parse(Path::new("/tmp/\x1b]0;x\x07.conf"), "wan = eth0\nx = 1\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/tmp/\\x1b]0;x\\x07.conf:2: \"x\" is not a setting"),
            "{e}"
        );
    }

    /// A key that takes one value is given once: a later line would hide a wrong earlier one
    /// (`peer-to-peer = nosuchsection`, then `peer-to-peer = guests`). Lists add up.
    #[test]
    fn a_single_valued_key_given_twice_is_refused_and_lists_add_up() {
        let e = |text: String| p(&text).unwrap_err().to_string();
        assert_eq!(
            e("wan = eth0\n\nwan = eth1\n".into()),
            "/etc/wgfw/wg0.conf:3: \"wan\" is given again (first on line 1): only admin, allow, lan, nat64 and forward may repeat"
        );
        assert!(
            e("no-log = yes\nNo_Log = no\n".into())
                .starts_with("/etc/wgfw/wg0.conf:2: \"no-log\" is given again (first on line 1)")
        );
        for key in [
            "role = server",
            "policy = drop",
            "ssh-port = 22",
            "handshake-limit = 5/s",
            "backend = nft",
            "config = /x",
            "nat6",
        ] {
            assert!(
                e(format!("{key}\n{key}\n")).starts_with("/etc/wgfw/wg0.conf:2: "),
                "{key}"
            );
        }
        let o = p("lan = 10.1.0.0/16\nlan = 10.2.0.0/16\nallow = tcp/1\nallow = tcp/2\nadmin = 192.0.2.1\nadmin = 192.0.2.2\n\
                   forward = tcp/1=10.0.0.2\nforward = tcp/2=10.0.0.2\n")
        .unwrap();
        assert_eq!(
            (o.lan.len(), o.allow.len(), o.admin.len(), o.forward.len()),
            (2, 2, 2, 2)
        );

        // In a section: the hidden wrong value of the issue, and every single-valued key.
        assert_eq!(
            e(format!(
                "[peer a]\npeer = {A}\npeer-to-peer = nosuchsection\npeer-to-peer = guests\n[group guests]\npeer = {B}\n"
            )),
            "/etc/wgfw/wg0.conf:4: \"peer-to-peer\" is given again in [peer a] (first on line 3): only peer, lan and allow may repeat"
        );
        for key in ["admin = yes", "no-internet = no"] {
            assert!(
                e(format!("[peer a]\npeer = {A}\n{key}\n{key}\n"))
                    .starts_with("/etc/wgfw/wg0.conf:4: "),
                "{key}"
            );
        }
        // The same key in the next section is that section's own.
        let o = p(&format!(
            "[peer a]\npeer = {A}\nadmin = yes\nlan = 10.1.0.0/16\nlan = 10.2.0.0/16, 10.3.0.0/16\n\
             [peer b]\npeer = {B}\nadmin = no\nallow = tcp/22\nallow = udp/53\n"
        ))
        .unwrap();
        assert_eq!(o.sections[0].lan.as_ref().unwrap().len(), 3);
        assert_eq!(o.sections[1].allow.as_ref().unwrap().len(), 2);
        // `none` is the whole list: with networks beside it, one of them is a mistake.
        for (first, second) in [("none", "10.1.0.0/16"), ("10.1.0.0/16", "none")] {
            assert!(
                e(format!(
                    "[peer a]\npeer = {A}\nlan = {first}\nlan = {second}\n"
                ))
                .starts_with("/etc/wgfw/wg0.conf:4: lan: none and"),
                "{first} {second}"
            );
        }
        assert!(
            e(format!(
                "[peer a]\npeer = {A}\nallow = none\nallow = tcp/22\n"
            ))
            .starts_with("/etc/wgfw/wg0.conf:4: allow: none and")
        );
    }

    #[test]
    fn input_beyond_the_limits_is_refused_with_its_line() {
        let refused = |text: &str, want: &str| {
            let e = p(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("/etc/wgfw/wg0.conf:{want}")), "{e}");
        };
        let list: Vec<String> = (0..1_001)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        let lans: String = list.iter().map(|n| format!("lan = {n}\n")).collect();
        refused(
            &lans,
            "1001: lan: more than 1000 lan entries: wgfw-hook's limit",
        );
        // A section's list, on one line or on several.
        let section = |lines: &[&[String]]| {
            let lines: String = lines
                .iter()
                .map(|l| format!("lan = {}\n", l.join(",")))
                .collect();
            format!("[peer a]\npeer = {A}\n{lines}")
        };
        let of_a_section = "lan: more than 1000 lan entries of a section:";
        refused(&section(&[&list]), &format!("3: {of_a_section}"));
        refused(
            &section(&[&list[..600], &list[600..]]),
            &format!("4: {of_a_section}"),
        );
        // Sections, and the peers they name.
        let sections: String = (0..100_001).map(|i| format!("[group g{i}]\n")).collect();
        refused(
            &sections,
            "100001: more than 100000 [peer] and [group] sections:",
        );
        let peers = format!("[group g]\n{}", format!("peer = {A}\n").repeat(100_001));
        refused(
            &peers,
            "100002: peer: more than 100000 peers in the sections:",
        );
        // The sections' entries together.
        let entries: String = (0..201)
            .map(|i| format!("[group g{i}]\nlan = {}\n", list[..1_000].join(",")))
            .collect();
        refused(
            &entries,
            "402: lan: more than 200000 lan, allow and peer-to-peer entries of the sections together:",
        );
    }

    #[test]
    fn missing_file_is_no_settings() {
        assert_eq!(
            read(Path::new("/nonexistent/wgfw/wg0.conf")).unwrap(),
            Options::default()
        );
    }
}
