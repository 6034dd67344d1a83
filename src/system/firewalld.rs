//! firewalld through its own D-Bus API (`org.fedoraproject.FirewallD1`), runtime only: which
//! zone an interface is in, moving it, and ports of a zone. Each call is one `busctl` (5 ms a
//! question, 10 ms a change; `firewall-cmd` takes 140). firewalld 2.x owns its nftables table
//! and refuses every other writer; through its API the tunnel gets in there too, and firewalld
//! knows of it.
//!
//! The bus is the system bus, or the one `DBUS_SYSTEM_BUS_ADDRESS` names when that is a local
//! socket (`unix:path=...`): programs run with an empty environment (`os`).

use crate::config::types::{IfaceName, Proto};

use super::cmd;

const DEST: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const ZONE: &str = "org.fedoraproject.FirewallD1.zone";

/// Why a call failed: firewalld's own code (`ALREADY_ENABLED`, `NOT_ENABLED`...), or what
/// else went wrong, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub code: String,
    pub line: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "firewalld: {}", self.line)
    }
}

type Answer<T> = std::result::Result<T, Failed>;

fn bus_args() -> Vec<String> {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) if a.starts_with("unix:path=") && !a.contains(['\n', ' ']) => {
            vec![format!("--address={a}")]
        }
        _ => vec!["--system".into()],
    }
}

/// One method call; the reply's text (`s "trusted"`, `b true`).
fn call(interface: &str, method: &str, signature: &str, args: &[&str]) -> Answer<String> {
    let mut argv = bus_args();
    argv.extend(
        [
            "--auto-start=no",
            "--timeout=5",
            "call",
            DEST,
            PATH,
            interface,
            method,
        ]
        .map(String::from),
    );
    if !signature.is_empty() {
        argv.push(signature.into());
        argv.extend(args.iter().map(|a| a.to_string()));
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = cmd::run("busctl", &argv, None).map_err(|e| Failed {
        code: String::new(),
        line: e.to_string(),
    })?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(failure(&out.stderr))
    }
}

/// busctl's complaint: `Call failed: CODE: message`, or anything else.
fn failure(stderr: &str) -> Failed {
    let line = cmd::first_line(stderr);
    let rest = line.strip_prefix("Call failed: ").unwrap_or(&line);
    let code = rest.split(':').next().unwrap_or_default();
    let is_code = !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    Failed {
        code: if is_code {
            code.to_string()
        } else {
            String::new()
        },
        line: crate::config::quote::text(rest).into_owned(),
    }
}

/// `s "text"`: the text (zone and interface names need no escapes).
fn string(reply: &str) -> Option<String> {
    let s = reply.trim().strip_prefix("s \"")?.strip_suffix('"')?;
    (!s.contains(['"', '\\'])).then(|| s.to_string())
}

fn boolean(reply: &str) -> Option<bool> {
    match reply.trim() {
        "b true" => Some(true),
        "b false" => Some(false),
        _ => None,
    }
}

fn strange(reply: &str) -> Failed {
    Failed {
        code: String::new(),
        line: format!(
            "an answer busctl should not give: {}",
            crate::config::quote::text(reply.trim())
        ),
    }
}

/// Whether firewalld answers on the bus: its default zone, else None.
pub(crate) fn default_zone() -> Option<String> {
    call(DEST, "getDefaultZone", "", &[])
        .ok()
        .and_then(|r| string(&r))
}

/// The zone the interface is in at runtime: "" for none (it falls to the default zone).
pub(crate) fn zone_of(iface: &IfaceName) -> Answer<String> {
    let r = call(ZONE, "getZoneOfInterface", "s", &[iface.as_str()])?;
    string(&r).ok_or_else(|| strange(&r))
}

/// A change, printed as the `firewall-cmd` that makes it (wg-quick's `[#]` lines say what
/// changes the system); questions print nothing.
fn change(zone: &str, what: &str) {
    crate::errln!("{}", change_line(zone, what));
}

fn change_line(zone: &str, what: &str) -> String {
    format!("[#] firewall-cmd --zone={zone} {what} (through firewalld's D-Bus API)")
}

/// Moves the interface to `zone` (or puts it there), runtime only.
pub(crate) fn change_zone(zone: &str, iface: &IfaceName) -> Answer<()> {
    change(zone, &format!("--change-interface={iface}"));
    call(ZONE, "changeZoneOfInterface", "ss", &[zone, iface.as_str()]).map(|_| ())
}

/// Takes the interface out of `zone`, runtime only.
pub(crate) fn remove_interface(zone: &str, iface: &IfaceName) -> Answer<()> {
    change(zone, &format!("--remove-interface={iface}"));
    call(ZONE, "removeInterface", "ss", &[zone, iface.as_str()]).map(|_| ())
}

/// Opens the port in the zone; false where it was open already (someone else's).
pub(crate) fn add_port(zone: &str, port: &str, proto: Proto) -> Answer<bool> {
    change(zone, &format!("--add-port={port}/{}", proto.as_str()));
    match call(ZONE, "addPort", "sssi", &[zone, port, proto.as_str(), "0"]) {
        Ok(_) => Ok(true),
        Err(f) if f.code == "ALREADY_ENABLED" => Ok(false),
        Err(f) => Err(f),
    }
}

/// Closes the port in the zone; closed already (a reload) is no failure.
pub(crate) fn remove_port(zone: &str, port: &str, proto: Proto) -> Answer<()> {
    change(zone, &format!("--remove-port={port}/{}", proto.as_str()));
    match call(ZONE, "removePort", "sss", &[zone, port, proto.as_str()]) {
        Err(f) if f.code != "NOT_ENABLED" => Err(f),
        _ => Ok(()),
    }
}

pub(crate) fn query_port(zone: &str, port: &str, proto: Proto) -> Answer<bool> {
    let r = call(ZONE, "queryPort", "sss", &[zone, port, proto.as_str()])?;
    boolean(&r).ok_or_else(|| strange(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_as_busctl_prints_them() {
        assert_eq!(string("s \"trusted\"\n"), Some("trusted".into()));
        assert_eq!(string("s \"\"\n"), Some(String::new()));
        assert_eq!(string("as 2 \"a\" \"b\"\n"), None);
        assert_eq!(string("s \"a\\\"b\"\n"), None);
        assert_eq!(boolean("b true\n"), Some(true));
        assert_eq!(boolean("b false"), Some(false));
        assert_eq!(boolean("s \"true\""), None);
    }

    #[test]
    fn changes_print_as_firewall_cmd() {
        assert_eq!(
            change_line("public", "--add-port=51820/udp"),
            "[#] firewall-cmd --zone=public --add-port=51820/udp (through firewalld's D-Bus API)"
        );
    }

    #[test]
    fn failures_keep_firewalld_s_code() {
        let f = failure("Call failed: ALREADY_ENABLED: '51820:udp' already in 'public'\n");
        assert_eq!(f.code, "ALREADY_ENABLED");
        assert_eq!(f.line, "ALREADY_ENABLED: '51820:udp' already in 'public'");
        assert_eq!(
            failure("Call failed: INVALID_INTERFACE\n").code,
            "INVALID_INTERFACE"
        );
        let f = failure("Call failed: object of type 'int' has no len()\n");
        assert_eq!(f.code, "");
        let f = failure("Failed to connect to bus: No such file or directory\n");
        assert_eq!(
            (f.code.as_str(), f.line.as_str()),
            ("", "Failed to connect to bus: No such file or directory")
        );
        let f = failure("Call failed: Traceback (most recent call last):\n  File x\n");
        assert_eq!(f.code, "");
    }
}
