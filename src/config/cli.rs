//! The command line: one table of options drives parsing, the settings file and `--help`.
//! What is parsed here is the options as the user typed them (`Options`); what they resolve to
//! on this host is `plan`'s business.

use std::ffi::OsString;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::config::types::{BackendChoice, IfaceName, Policy, Port, Rate, Role, Service};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    Plan,
    Release,
    Status,
    Check,
    Confirm,
    /// Internal: the waiting half of `up --rollback`, started by `up` itself.
    Revert,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        match s {
            "up" => Some(Command::Up),
            "down" => Some(Command::Down),
            "plan" => Some(Command::Plan),
            "release" => Some(Command::Release),
            "status" => Some(Command::Status),
            "check" => Some(Command::Check),
            "confirm" => Some(Command::Confirm),
            "__revert" => Some(Command::Revert),
            _ => None,
        }
    }
}

/// The commands a user types (the internal `__revert` is not one).
pub const COMMANDS: &[&str] = &[
    "up", "down", "plan", "status", "check", "confirm", "release",
];

/// One option of the command line and the settings file.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in `--help`; `None` for a switch.
    pub value: Option<&'static str>,
    pub repeatable: bool,
    pub help: &'static str,
    /// Whether the settings file `/etc/wgfw/IFACE.conf` may set it.
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
    Flag { short: Some('c'), ..flag("config", Some("PATH"), "the wg-quick config to read [default: /etc/wireguard/IFACE.conf]") },
    flag("role", Some("server|client"), "server: the VPN server or gateway; client: this host (or its LAN) talks only through the tunnel [default: server]"),
    flag("wan", Some("IFACE"), "the public (uplink) interface [default: the device of the default route]"),
    flag("policy", Some("auto|drop|accept"), "inbound traffic nothing allowed: auto is drop, unless another firewall manager owns input [default: auto]"),
    flag("ssh-port", Some("PORT|none"), "server role: management SSH port kept open, brute-force limited [default: 22]"),
    Flag { repeatable: true, ..flag("admin", Some("CIDR"), "server role: accept SSH only from this network") },
    Flag { repeatable: true, ..flag("allow", Some("PROTO/PORT[:PORT]"), "open another host service, e.g. tcp/443") },
    flag("handshake-limit", Some("N/UNIT"), "server role: new WireGuard flows accepted per source address, per second or minute [default: 30/minute]"),
    Flag { repeatable: true, ..flag("lan", Some("CIDR"), "a local network peers may reach through this host, e.g. your home network 192.168.1.0/24") },
    flag("no-internet", None, "peers may reach only this host and the --lan networks, not the internet"),
    flag("peer-to-peer", None, "peers of this interface may reach each other"),
    flag("no-nat", None, "route the tunnel networks instead of masquerading them"),
    flag("nat6", None, "masquerade the IPv6 tunnel networks too"),
    flag("no-log", None, "do not log dropped packets"),
    flag("allow-lan", None, "client role: keep the local networks reachable outside the tunnel"),
    flag("lockdown", None, "client role: keep the kill switch after down, until release"),
    flag("backend", Some("auto|nft|iptables-nft|iptables-legacy"), "which kernel interface to program [default: auto: what the host uses]"),
    flag("rollback", Some("SECONDS"), "up: put the previous firewall back after SECONDS unless confirm comes first"),
    Flag { in_settings: false, ..flag("force", None, "up: install even a plan that would lock out a current SSH client") },
    Flag { in_settings: false, ..flag("json", None, "status: print JSON") },
    Flag { in_settings: false, ..flag("repair", None, "check: install the recorded firewall again where it drifted") },
    Flag { short: Some('v'), in_settings: false, ..flag("verbose", None, "show each step (repeat for more; RUST_LOG works too)") },
    Flag { short: Some('h'), in_settings: false, ..flag("help", None, "print this help") },
    Flag { short: Some('V'), in_settings: false, ..flag("version", None, "print the version") },
];

/// The options as given, before anything is resolved against the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub role: Option<Role>,
    pub wan: Option<IfaceName>,
    pub policy: Option<Policy>,
    /// `Some(None)` is `--ssh-port none`.
    pub ssh_port: Option<Option<Port>>,
    pub admin: Vec<IpNet>,
    pub allow: Vec<Service>,
    pub handshake_limit: Option<Rate>,
    pub lan: Vec<IpNet>,
    pub no_internet: bool,
    pub peer_to_peer: bool,
    pub no_nat: bool,
    pub nat6: bool,
    pub no_log: bool,
    pub allow_lan: bool,
    pub lockdown: bool,
    pub rollback: Option<u32>,
    pub backend: Option<BackendChoice>,
}

impl Options {
    /// Sets one option by its long name; shared by the command line and the settings file.
    /// Errors are phrased without the option's spelling, which the caller adds.
    pub fn set(&mut self, long: &str, value: Option<&str>) -> std::result::Result<(), String> {
        let v = || value.ok_or_else(|| "needs a value".to_string());
        match long {
            "config" => self.config = Some(PathBuf::from(v()?)),
            "role" => self.role = Some(v()?.parse()?),
            "wan" => self.wan = Some(v()?.parse()?),
            "policy" => self.policy = Some(v()?.parse()?),
            "ssh-port" => {
                self.ssh_port = Some(match v()? {
                    "none" => None,
                    p => Some(p.parse()?),
                })
            }
            "admin" => self.admin.push(network(v()?)?),
            "lan" => self.lan.push(network(v()?)?),
            "no-internet" => self.no_internet = switch(value)?,
            "peer-to-peer" => self.peer_to_peer = switch(value)?,
            "allow" => self.allow.push(v()?.parse()?),
            "handshake-limit" => self.handshake_limit = Some(v()?.parse()?),
            "no-nat" => self.no_nat = switch(value)?,
            "nat6" => self.nat6 = switch(value)?,
            "no-log" => self.no_log = switch(value)?,
            "allow-lan" => self.allow_lan = switch(value)?,
            "lockdown" => self.lockdown = switch(value)?,
            "rollback" => {
                let v = v()?;
                let secs = v.parse::<u32>().ok().filter(|s| (1..=86_400).contains(s));
                self.rollback = Some(
                    secs.ok_or_else(|| format!("\"{v}\" is not a number of seconds (1-86400)"))?,
                );
            }
            "backend" => self.backend = Some(v()?.parse()?),
            _ => return Err("is not an option".into()),
        }
        Ok(())
    }

    /// The options in the settings file's syntax (all but `config`), so that what `up` used
    /// can be recorded and read back with `settings::parse`.
    pub fn to_settings(&self) -> String {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| out.push((k.to_string(), v));
        if let Some(r) = self.role {
            put("role", r.as_str().into());
        }
        if let Some(w) = &self.wan {
            put("wan", w.to_string());
        }
        if let Some(p) = self.policy {
            put("policy", p.as_str().into());
        }
        match self.ssh_port {
            Some(Some(p)) => put("ssh-port", p.to_string()),
            Some(None) => put("ssh-port", "none".into()),
            None => {}
        }
        self.admin.iter().for_each(|n| put("admin", n.to_string()));
        self.allow.iter().for_each(|s| put("allow", s.to_string()));
        if let Some(r) = self.handshake_limit {
            put("handshake-limit", r.to_string());
        }
        self.lan.iter().for_each(|n| put("lan", n.to_string()));
        let switches = [
            ("no-internet", self.no_internet),
            ("peer-to-peer", self.peer_to_peer),
            ("no-nat", self.no_nat),
            ("nat6", self.nat6),
            ("no-log", self.no_log),
            ("allow-lan", self.allow_lan),
            ("lockdown", self.lockdown),
        ];
        for (k, on) in switches {
            if on {
                put(k, "yes".into());
            }
        }
        if let Some(b) = self.backend {
            put("backend", b.as_str().into());
        }
        // A recorded plan is installed again as it is: never with another rollback.
        out.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
    }

    /// The command line wins over the settings file; a list given on the command line
    /// replaces the file's list.
    pub fn over(self, base: Options) -> Options {
        Options {
            config: self.config.or(base.config),
            role: self.role.or(base.role),
            wan: self.wan.or(base.wan),
            policy: self.policy.or(base.policy),
            ssh_port: self.ssh_port.or(base.ssh_port),
            admin: if self.admin.is_empty() {
                base.admin
            } else {
                self.admin
            },
            allow: if self.allow.is_empty() {
                base.allow
            } else {
                self.allow
            },
            handshake_limit: self.handshake_limit.or(base.handshake_limit),
            lan: if self.lan.is_empty() {
                base.lan
            } else {
                self.lan
            },
            no_internet: self.no_internet || base.no_internet,
            peer_to_peer: self.peer_to_peer || base.peer_to_peer,
            no_nat: self.no_nat || base.no_nat,
            nat6: self.nat6 || base.nat6,
            no_log: self.no_log || base.no_log,
            allow_lan: self.allow_lan || base.allow_lan,
            lockdown: self.lockdown || base.lockdown,
            rollback: self.rollback.or(base.rollback),
            backend: self.backend.or(base.backend),
        }
    }
}

/// A network such as `192.168.1.0/24`; a bare address is a host.
fn network(s: &str) -> std::result::Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("\"{s}\" is not an IP network"))
}

/// A switch takes no value on the command line; in the settings file it may say yes or no.
fn switch(value: Option<&str>) -> std::result::Result<bool, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true" | "yes" | "on" | "1") => Ok(true),
        Some("false" | "no" | "off" | "0") => Ok(false),
        Some(other) => Err(format!("\"{other}\" is not yes or no")),
    }
}

#[derive(Debug, PartialEq)]
pub enum Invocation {
    Help,
    Version,
    Run(Args),
    /// `status` without an interface: every managed interface.
    StatusAll {
        json: bool,
    },
}

#[derive(Debug, PartialEq)]
pub struct Args {
    pub command: Command,
    pub iface: IfaceName,
    pub options: Options,
    pub verbose: u8,
    /// `check --repair`.
    pub repair: bool,
    /// `up --force`: install even a plan that would lock out an SSH client.
    pub force: bool,
    /// `status --json`.
    pub json: bool,
}

pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Invocation> {
    use lexopt::prelude::*;
    let usage = |msg: String| Error::usage(format!("{msg} (see wgfw-hook --help)"));
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = None;
    let mut iface = None;
    let mut options = Options::default();
    let mut verbose = 0u8;
    let mut repair = false;
    let mut force = false;
    let mut json = false;

    while let Some(arg) = parser.next().map_err(|e| usage(e.to_string()))? {
        let name = match arg {
            Long(l) => l.to_string(),
            Short(c) => match FLAGS.iter().find(|f| f.short == Some(c)) {
                Some(f) => f.long.to_string(),
                None => return Err(usage(format!("invalid option '-{c}'"))),
            },
            Value(v) => {
                let v = v
                    .string()
                    .map_err(|_| usage("arguments must be UTF-8".into()))?;
                if command.is_none() {
                    command = Some(Command::parse(&v).ok_or_else(|| {
                        usage(format!(
                            "unknown command \"{v}\": use {}",
                            COMMANDS.join(", ")
                        ))
                    })?);
                } else if iface.is_none() {
                    iface = Some(v.parse::<IfaceName>().map_err(usage)?);
                } else {
                    return Err(usage(format!("unexpected argument \"{v}\"")));
                }
                continue;
            }
        };
        let Some(flag) = FLAGS.iter().find(|f| f.long == name) else {
            return Err(usage(format!("invalid option '--{name}'")));
        };
        match flag.long {
            "help" => return Ok(Invocation::Help),
            "version" => return Ok(Invocation::Version),
            "verbose" => verbose = verbose.saturating_add(1),
            "repair" => repair = true,
            "force" => force = true,
            "json" => json = true,
            _ => {
                let value = match flag.value {
                    Some(_) => Some(
                        parser
                            .value()
                            .map_err(|e| usage(e.to_string()))?
                            .string()
                            .map_err(|_| usage(format!("--{name}: the value must be UTF-8")))?,
                    ),
                    None => None,
                };
                options
                    .set(flag.long, value.as_deref())
                    .map_err(|e| usage(format!("--{name}: {e}")))?;
            }
        }
    }
    let command =
        command.ok_or_else(|| usage(format!("no command given: use {}", COMMANDS.join(", "))))?;
    if let (Command::Status, None) = (command, &iface) {
        return Ok(Invocation::StatusAll { json });
    }
    let iface = iface.ok_or_else(|| usage("no interface given, e.g. wgfw-hook up wg0".into()))?;
    if repair && command != Command::Check {
        return Err(usage("--repair goes with check".into()));
    }
    if force && command != Command::Up {
        return Err(usage("--force goes with up".into()));
    }
    if json && command != Command::Status {
        return Err(usage("--json goes with status".into()));
    }
    Ok(Invocation::Run(Args {
        command,
        iface,
        options,
        verbose,
        repair,
        force,
        json,
    }))
}

pub fn help() -> String {
    let mut s = format!(
        "wgfw-hook {} - the firewall of a WireGuard tunnel, installed and removed with it\n\n\
         Usage:\n  wgfw-hook up IFACE [OPTIONS]     install the firewall (wg-quick PostUp)\n  \
         wgfw-hook down IFACE             remove exactly what up installed (wg-quick PreDown)\n  \
         wgfw-hook plan IFACE [OPTIONS]   print what up would do; changes nothing, needs no root\n  \
         wgfw-hook status [IFACE] [--json] what is installed, what it counted, peers to prune\n  \
         wgfw-hook check IFACE [--repair] exit 0 when the firewall is as installed, 1 when it drifted\n  \
         wgfw-hook confirm IFACE          keep what up --rollback installed (cancels the revert)\n  \
         wgfw-hook release IFACE          remove a kill switch that --lockdown kept after down\n\n\
         In the wg-quick config:\n  PostUp  = wgfw-hook up %i\n  PreDown = wgfw-hook down %i\n\n\
         Options (also settable as \"name = value\" in /etc/wgfw/IFACE.conf; the command line wins):\n",
        env!("CARGO_PKG_VERSION")
    );
    for f in FLAGS {
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

    fn run(args: &[&str]) -> Result<Invocation> {
        parse(args.iter().map(OsString::from))
    }

    fn opts(args: &[&str]) -> Options {
        match run(args).unwrap() {
            Invocation::Run(a) => a.options,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_and_interface() {
        let Invocation::Run(a) = run(&["up", "wg0"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.command, a.iface.as_str(), a.verbose),
            (Command::Up, "wg0", 0)
        );
        let Invocation::Run(a) = run(&["down", "-vv", "wg1"]).unwrap() else {
            panic!()
        };
        assert_eq!((a.command, a.verbose), (Command::Down, 2));
        assert_eq!(run(&["--help"]).unwrap(), Invocation::Help);
        assert_eq!(run(&["up", "wg0", "-h"]).unwrap(), Invocation::Help);
        assert_eq!(run(&["-V"]).unwrap(), Invocation::Version);
        assert_eq!(
            run(&["status"]).unwrap(),
            Invocation::StatusAll { json: false }
        );
        assert_eq!(
            run(&["status", "--json"]).unwrap(),
            Invocation::StatusAll { json: true }
        );
        let Invocation::Run(a) = run(&["status", "wg0"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.command, Command::Status);
        let Invocation::Run(a) = run(&["release", "wg0"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.command, Command::Release);
    }

    #[test]
    fn every_flag_parses() {
        let o = opts(&[
            "plan",
            "wg0",
            "-c",
            "/tmp/x.conf",
            "--wan=eth0",
            "--policy",
            "accept",
            "--ssh-port",
            "2222",
            "--admin",
            "192.0.2.0/24",
            "--admin",
            "2001:db8::1",
            "--allow",
            "tcp/443",
            "--allow",
            "udp/1000:1010",
            "--handshake-limit",
            "10/second",
            "--lan",
            "192.168.1.0/24",
            "--lan",
            "fd00:1::/64",
            "--no-internet",
            "--peer-to-peer",
            "--no-nat",
            "--nat6",
            "--no-log",
            "--role",
            "client",
            "--allow-lan",
            "--lockdown",
            "--backend",
            "iptables-legacy",
        ]);
        assert_eq!(o.config, Some(PathBuf::from("/tmp/x.conf")));
        assert_eq!(o.wan.unwrap().as_str(), "eth0");
        assert_eq!(o.policy, Some(Policy::Accept));
        assert_eq!(o.ssh_port, Some(Port::new(2222)));
        assert_eq!(o.admin.len(), 2);
        assert_eq!(o.admin[1].to_string(), "2001:db8::1/128");
        assert_eq!(o.allow.len(), 2);
        assert_eq!(o.handshake_limit.unwrap().to_string(), "10/second");
        assert!(o.no_nat && o.nat6 && o.no_log && o.no_internet && o.peer_to_peer);
        assert_eq!(o.lan.len(), 2);
        assert_eq!(o.role, Some(Role::Client));
        assert!(o.allow_lan && o.lockdown);
        assert_eq!(o.backend, Some(BackendChoice::IptablesLegacy));
        assert_eq!(
            opts(&["up", "wg0", "--ssh-port", "none"]).ssh_port,
            Some(None)
        );
        // Every flag of the table is handled by parse or by Options::set.
        for f in FLAGS.iter().filter(|f| f.in_settings) {
            let e = Options::default().set(f.long, Some("x"));
            assert_ne!(e, Err("is not an option".to_string()), "{}", f.long);
        }
    }

    #[test]
    fn bad_usage_is_one_clear_error() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no command given"),
            (&["up"], "no interface given"),
            (&["start", "wg0"], "unknown command \"start\""),
            (&["up", "wg0;reboot"], "not a valid interface name"),
            (&["up", "wg0", "extra"], "unexpected argument \"extra\""),
            (
                &["up", "wg0", "--frobnicate"],
                "invalid option '--frobnicate'",
            ),
            (
                &["up", "wg0", "--policy", "maybe"],
                "--policy: \"maybe\" is not a policy",
            ),
            (
                &["up", "wg0", "--ssh-port", "0"],
                "--ssh-port: \"0\" is not a port",
            ),
            (
                &["up", "wg0", "--admin", "10.0.0.0/33"],
                "--admin: \"10.0.0.0/33\" is not an IP network",
            ),
            (
                &["up", "wg0", "--lan", "home"],
                "--lan: \"home\" is not an IP network",
            ),
            (
                &["up", "wg0", "--allow", "443"],
                "--allow: \"443\" is not a service",
            ),
            (&["up", "wg0", "--wan"], "--wan"),
            (
                &["up", "wg0", "--backend", "pf"],
                "--backend: \"pf\" is not a backend",
            ),
            (&["up", "wg0", "--no-nat=yes"], "--no-nat"),
        ];
        for (args, want) in cases {
            let e = run(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{args:?}: {e}");
            assert!(!e.to_string().contains('\n'), "{args:?}: {e}");
        }
    }

    #[test]
    fn command_line_wins_over_settings() {
        let file = Options {
            wan: "eth1".parse().ok(),
            admin: vec!["10.0.0.0/8".parse().unwrap()],
            no_log: true,
            ..Options::default()
        };
        let cli = Options {
            wan: "eth0".parse().ok(),
            ..Options::default()
        };
        let o = cli.over(file);
        assert_eq!(o.wan.unwrap().as_str(), "eth0");
        assert_eq!(o.admin.len(), 1);
        assert!(o.no_log);
    }

    #[test]
    fn options_survive_the_settings_syntax() {
        let o = opts(&[
            "up",
            "wg0",
            "--role",
            "client",
            "--wan",
            "eth1",
            "--policy",
            "accept",
            "--ssh-port",
            "none",
            "--admin",
            "192.0.2.0/24",
            "--allow",
            "udp/1:9",
            "--handshake-limit",
            "5/second",
            "--lan",
            "fd00::/8",
            "--no-internet",
            "--peer-to-peer",
            "--no-nat",
            "--nat6",
            "--no-log",
            "--allow-lan",
            "--lockdown",
            "--backend",
            "nft",
        ]);
        let back =
            crate::config::settings::parse(std::path::Path::new("r"), &o.to_settings()).unwrap();
        assert_eq!(back, o);
        assert_eq!(Options::default().to_settings(), "");
    }

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
                    let known = FLAGS.iter().any(|f| f.long == long) || ["noflush"].contains(&long);
                    assert!(known, "{name} names --{long}, which is no option");
                }
            }
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let h = help();
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{}", f.long);
        }
    }
}
