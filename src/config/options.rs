//! The options as the user typed them, before anything is resolved against the host (that is
//! `plan`'s business): set one by one from the command line or the settings file, recorded in
//! the settings file's syntax, the command line winning over the file.

use std::path::PathBuf;

use ipnet::IpNet;

use crate::config::forward::Forward;
use crate::config::peers::Section;
use crate::config::types::{
    BackendChoice, IfaceName, Policy, Port, Rate, Role, Service, network, switch,
};

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
    /// Ports of this host published for services behind the tunnel.
    pub forward: Vec<Forward>,
    /// The settings file's `[peer]` and `[group]` sections, in its order.
    pub sections: Vec<Section>,
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
                self.rollback = Some(secs.ok_or_else(|| {
                    format!(
                        "\"{}\" is not a number of seconds (1-86400)",
                        crate::config::quote::text(v)
                    )
                })?);
            }
            "backend" => self.backend = Some(v()?.parse()?),
            "forward" => self.forward.push(v()?.parse()?),
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
        self.forward
            .iter()
            .for_each(|f| put("forward", f.to_string()));
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
        let mut text: String = out.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        text.extend(self.sections.iter().map(|s| s.render()));
        text
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
            // The command line's only: the settings file refuses it.
            rollback: self.rollback,
            backend: self.backend.or(base.backend),
            forward: if self.forward.is_empty() {
                base.forward
            } else {
                self.forward
            },
            // Only the settings file has sections.
            sections: if self.sections.is_empty() {
                base.sections
            } else {
                self.sections
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
