//! The command line, parsed with lexopt against the one table of flags (`flags`) into the
//! command, the interface and the options as typed (`Options`).

use std::ffi::OsString;

pub use crate::config::flags::{COMMANDS, Command, FLAGS, Flag, help};
pub use crate::config::options::Options;
use crate::config::quote;
use crate::config::types::IfaceName;
use crate::error::{Error, Result};

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

#[derive(Debug, Clone, PartialEq)]
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
    /// `watch --follow`: the interface's life, not wg-quick's, brings and takes the firewall.
    pub follow: bool,
}

pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Invocation> {
    use lexopt::prelude::*;
    let usage = |msg: String| Error::usage(format!("{} (see wgfw-hook --help)", quote::text(&msg)));
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = None;
    let mut iface = None;
    let mut options = Options::default();
    let mut verbose = 0u8;
    let mut repair = false;
    let mut force = false;
    let mut json = false;
    let mut follow = false;

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
            "follow" => follow = true,
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
    if follow && command != Command::Watch {
        return Err(usage("--follow goes with watch".into()));
    }
    Ok(Invocation::Run(Args {
        command,
        iface,
        options,
        verbose,
        repair,
        force,
        json,
        follow,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::types::{BackendChoice, Policy, Port, Role};
    use std::path::PathBuf;

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
    fn errors_escape_control_characters() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["st\x1b[2Jart", "wg0"],
                "unknown command \"st\\x1b[2Jart\"",
            ),
            (&["up", "wg\r0"], "\"wg\\r0\" is not a valid interface name"),
            (
                &["up", "wg0", "ex\x07tra"],
                "unexpected argument \"ex\\x07tra\"",
            ),
            (&["up", "wg0", "--fro\x1bb"], "invalid option '--fro\\x1bb'"),
            (&["up", "wg0", "-\x1b"], "invalid option '-\\x1b'"),
            (
                &["up", "wg0", "--no-nat=\x1b[31m"],
                "'--no-nat': \"\\u{1b}[31m\"",
            ),
            (
                &["up", "wg0", "--policy", "dr\rop"],
                "--policy: \"dr\\rop\" is not a policy",
            ),
            (&["up", "wg0", "--wan", "eth\x1b"], "--wan: \"eth\\x1b\""),
            (
                &["up", "wg0", "--ssh-port", "2\r2"],
                "--ssh-port: \"2\\r2\" is not a port",
            ),
            (
                &["up", "wg0", "--handshake-limit", "\x1b/s"],
                "\"\\x1b/s\" is not a rate",
            ),
            (
                &["up", "wg0", "--rollback", "1\x1b"],
                "\"1\\x1b\" is not a number of seconds",
            ),
            (
                &["up", "wg0", "--forward", "tcp/1\x1b=10.0.0.2"],
                "\"1\\x1b\" is not a port",
            ),
            (
                &["up", "wg0", "--backend", "p\x1bf"],
                "\"p\\x1bf\" is not a backend",
            ),
        ];
        for (args, want) in cases {
            let e = run(args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.chars().any(char::is_control), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn lists_beyond_the_limit_are_refused() {
        let mut args = vec!["up", "wg0"];
        args.extend(std::iter::repeat_n(["--allow", "tcp/443"], 1_001).flatten());
        let e = run(&args).unwrap_err().to_string();
        assert!(
            e.starts_with("--allow: more than 1000 allow entries: wgfw-hook's limit"),
            "{e}"
        );
        args.truncate(2 + 2 * 1_000);
        assert_eq!(opts(&args).allow.len(), 1_000);
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
            "--nat64",
            "2001:db8:64::/96",
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
}
