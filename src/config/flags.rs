//! The one table of commands and options: it drives parsing (`cli`), the settings file
//! (`settings`), `--help`, and, held to it by a test, the man page and the completions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    Plan,
    Release,
    Status,
    Check,
    Confirm,
    Watch,
    /// Internal: the waiting half of `up --rollback`, started by `up` itself.
    Revert,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        match s {
            "up" => Some(Command::Up),
            "down" => Some(Command::Down),
            "plan" => Some(Command::Plan),
            "release" => Some(Command::Release),
            "status" => Some(Command::Status),
            "check" => Some(Command::Check),
            "confirm" => Some(Command::Confirm),
            "watch" => Some(Command::Watch),
            "__revert" => Some(Command::Revert),
            _ => None,
        }
    }
}

/// The commands a user types (the internal `__revert` is not one).
pub const COMMANDS: &[&str] = &[
    "up", "down", "plan", "status", "check", "watch", "confirm", "release",
];

/// One option of the command line and the settings file.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in `--help`; `None` for a switch.
    pub value: Option<&'static str>,
    pub repeatable: bool,
    pub help: &'static str,
    /// Whether the settings file `/etc/wgfw/IFACE.conf` may set it. Not what acts once, when
    /// asked for (`--rollback`, `--force`): the file is read by every `up`, the one at boot
    /// too. The file refuses those with their line; `--help` and the manual list them apart.
    pub in_settings: bool,
}

const fn flag(long: &'static str, value: Option<&'static str>, help: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        value,
        repeatable: false,
        help,
        in_settings: true,
    }
}

#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    Flag { short: Some('c'), ..flag("config", Some("PATH"), "the wg-quick config to read; none: the live interface alone [default: /etc/wireguard/IFACE.conf, else the live interface]") },
    flag("role", Some("server|client"), "server: the VPN server or gateway; client: this host (or its LAN) talks only through the tunnel [default: server]"),
    flag("wan", Some("IFACE"), "the public (uplink) interface [default: the device of the default route]"),
    flag("policy", Some("auto|drop|accept"), "inbound traffic nothing allowed: auto is drop, unless another firewall manager owns input [default: auto]"),
    flag("ssh-port", Some("PORT|none"), "server role: management SSH port kept open, brute-force limited [default: 22]"),
    Flag { repeatable: true, ..flag("admin", Some("CIDR"), "server role: accept SSH only from this network") },
    Flag { repeatable: true, ..flag("allow", Some("PROTO/PORT[:PORT]"), "open another host service, e.g. tcp/443") },
    flag("handshake-limit", Some("N/UNIT"), "server role: new WireGuard flows accepted per source address, per second or minute [default: 30/minute]"),
    Flag { repeatable: true, ..flag("lan", Some("CIDR"), "a local network peers may reach through this host, e.g. your home network 192.168.1.0/24") },
    Flag { repeatable: true, ..flag("nat64", Some("PREFIX"), "server role: the IPv6 prefix of a NAT64 gateway (/32, /40, /48, /56, /64 or /96); the IPv4 local ranges in it are local ranges too [always: 64:ff9b::/96, 64:ff9b:1::/48]") },
    Flag { repeatable: true, ..flag("forward", Some("PROTO/PORT=ADDR[:PORT][,OPTION]"), "server role: publish a port of the WAN for a service behind the tunnel, e.g. tcp/8443=10.66.0.2:443; options keep-source, from-lan, from-peers") },
    flag("no-internet", None, "peers may reach only this host and the --lan networks, not the internet"),
    flag("peer-to-peer", None, "peers of this interface may reach each other"),
    flag("no-nat", None, "route the tunnel networks instead of masquerading them"),
    flag("nat6", None, "masquerade every IPv6 tunnel network, global ones too [default: the unique-local ones, fc00::/7]"),
    flag("no-log", None, "do not log dropped packets"),
    flag("allow-lan", None, "client role: keep the local networks reachable outside the tunnel"),
    flag("lockdown", None, "client role: keep the kill switch after down, until release"),
    flag("backend", Some("auto|nft|iptables-nft|iptables-legacy"), "which kernel interface to program [default: auto: what the host uses]"),
    flag("no-watch", None, "up: start no watcher (wgfw-hook watch) to repair what others undo until down"),
    Flag { in_settings: false, ..flag("rollback", Some("SECONDS"), "up: put the previous firewall back after SECONDS unless confirm comes first") },
    Flag { in_settings: false, ..flag("force", None, "up: install even a plan that would lock out a current SSH client") },
    Flag { in_settings: false, ..flag("json", None, "status: print JSON") },
    Flag { in_settings: false, ..flag("follow", None, "watch: for a tunnel no wg-quick hook runs for (wgfw-hook@.service): wait for the interface and its addresses, install, and when it goes remove the firewall (server role) and wait for it again") },
    Flag { in_settings: false, ..flag("repair", None, "check: install the recorded firewall again where it drifted") },
    Flag { short: Some('v'), in_settings: false, ..flag("verbose", None, "show each step (repeat for more; RUST_LOG works too)") },
    Flag { short: Some('h'), in_settings: false, ..flag("help", None, "print this help") },
    Flag { short: Some('V'), in_settings: false, ..flag("version", None, "print the version") },
];

/// The heading of `--help`'s options that the settings file may not set.
const ONLY: &str =
    "\nCommand line only (the settings file is read by every up, the one at boot too):\n";

pub fn help() -> String {
    let mut s = format!(
        "wgfw-hook {} - the firewall of a WireGuard tunnel, installed and removed with it\n\n\
         Usage:\n  wgfw-hook up IFACE [OPTIONS]     install the firewall (wg-quick PostUp)\n  \
         wgfw-hook down IFACE             remove exactly what up installed (wg-quick PreDown)\n  \
         wgfw-hook plan IFACE [OPTIONS]   print what up would do; changes nothing, needs no root\n  \
         wgfw-hook status [IFACE] [--json] what is installed, what it counted, peers to prune\n  \
         wgfw-hook check IFACE [--repair] exit 0 when the firewall is as installed, 1 when it drifted\n  \
         wgfw-hook watch IFACE [OPTIONS]  install as up does, then repair what others undo, until down\n  \
         wgfw-hook confirm IFACE          keep what up --rollback installed (cancels the revert)\n  \
         wgfw-hook release IFACE          remove a kill switch that --lockdown kept after down\n\n\
         In the wg-quick config:\n  PostUp  = wgfw-hook up %i\n  PreDown = wgfw-hook down %i\n\n\
         Options (also settable as \"name = value\" in /etc/wgfw/IFACE.conf; the command line wins):\n",
        env!("CARGO_PKG_VERSION")
    );
    let settable = FLAGS.iter().filter(|f| f.in_settings);
    for f in settable.chain(FLAGS.iter().filter(|f| !f.in_settings)) {
        if !f.in_settings && !s.contains(ONLY) {
            s.push_str(ONLY);
        }
        let short = f.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let head = match f.value {
            Some(v) => format!("{short}--{} {v}", f.long),
            None => format!("{short}--{}", f.long),
        };
        let again = if f.repeatable { " (repeatable)" } else { "" };
        if head.len() > 38 {
            s.push_str(&format!("  {head}\n  {:38} {}{again}\n", "", f.help));
        } else {
            s.push_str(&format!("  {head:<38} {}{again}\n", f.help));
        }
    }
    s.push_str(
        "\nExit status: 0 done, 1 the system refused (nothing left half-applied), 2 bad usage or config.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help`, the man page and the completions name the same commands and options: the
    /// table above is the one source, and this test holds the documents to it.
    #[test]
    fn docs_and_completions_agree_with_the_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let man = read("man/wgfw-hook.8").replace("\\-", "-");
        let docs = [
            ("--help", help()),
            ("man page", man),
            ("bash completion", read("completions/wgfw-hook.bash")),
            ("zsh completion", read("completions/_wgfw-hook")),
            ("fish completion", read("completions/wgfw-hook.fish")),
        ];
        for (name, text) in &docs {
            for c in COMMANDS {
                assert!(Command::parse(c).is_some(), "{c}");
                assert!(text.contains(c), "{name} lacks the command {c}");
            }
            for f in FLAGS {
                let fish = format!("-l {}", f.long);
                assert!(
                    text.contains(&format!("--{}", f.long)) || text.contains(&fish),
                    "{name} lacks --{}",
                    f.long
                );
            }
            // Nothing stale: every long option a document names is in the table.
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if let Some(long) = word
                    .strip_prefix("--")
                    .filter(|l| l.len() > 1 && l.chars().next().unwrap().is_ascii_lowercase())
                {
                    let known =
                        FLAGS.iter().any(|f| f.long == long) || ["noflush", "now"].contains(&long);
                    assert!(known, "{name} names --{long}, which is no option");
                }
            }
        }
    }

    /// What the settings file may not set is said so in `--help` and in the manual.
    #[test]
    fn command_line_only_options_are_named_so() {
        let h = help();
        let (_, only) = h
            .split_once("\nCommand line only")
            .expect("--help has a part for the command line only");
        let man = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/wgfw-hook.8"),
        )
        .unwrap()
        .replace("\\-", "-");
        let (_, intro) = man.split_once(".SH OPTIONS\n").unwrap();
        let intro = intro.split(".TP").next().unwrap();
        for f in FLAGS {
            let named = only.contains(&format!("--{} ", f.long))
                || only.contains(&format!("--{}\n", f.long));
            assert_eq!(named, !f.in_settings, "--help on --{}", f.long);
            if !f.in_settings && !["help", "version"].contains(&f.long) {
                let short = f.short.map(|c| format!("-{c}"));
                assert!(
                    intro.contains(&format!("--{}", f.long))
                        || short.is_some_and(|s| intro.contains(&s)),
                    "the manual's OPTIONS does not say --{} is for the command line only",
                    f.long
                );
            }
        }
        assert!(!FLAGS.iter().any(|f| f.long == "rollback" && f.in_settings));
    }

    #[test]
    fn help_lists_every_flag() {
        let h = help();
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{}", f.long);
        }
    }
}
