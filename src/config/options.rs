//! The options as the user typed them, before anything is resolved against the host (that is
//! `plan`'s business): set one by one from the command line or the settings file, recorded in
//! the settings file's syntax, the command line winning over the file.

use std::collections::HashMap;
use std::path::PathBuf;

use ipnet::{IpNet, Ipv6Net};

use crate::config::forward::Forward;
use crate::config::limits::{MAX_LANS, MAX_LIST, MAX_PAIRS, MAX_SECTION_ENTRIES, over};
use crate::config::peers::{PeerReach, Section};
use crate::config::types::{
    BackendChoice, IfaceName, Policy, Port, Rate, Role, Service, nat64_prefix, network, switch,
};
use crate::config::wgconf::WgConfig;

/// The options as given, before anything is resolved against the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `--config none` (`NO_CONFIG`): the live interface alone.
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
    /// IPv6 prefixes of NAT64 gateways: the IPv4 local ranges in them are local too.
    pub nat64: Vec<Ipv6Net>,
    pub no_internet: bool,
    pub peer_to_peer: bool,
    pub no_nat: bool,
    pub nat6: bool,
    pub no_log: bool,
    pub allow_lan: bool,
    pub lockdown: bool,
    pub rollback: Option<u32>,
    pub backend: Option<BackendChoice>,
    /// `up` starts no watcher.
    pub no_watch: bool,
    /// Ports of this host published for services behind the tunnel.
    pub forward: Vec<Forward>,
    /// The settings file's `[peer]` and `[group]` sections, in its order.
    pub sections: Vec<Section>,
}

/// `--config none`: no wg-quick config; the tunnel is read from the live interface alone.
pub const NO_CONFIG: &str = "none";

impl Options {
    /// Whether the tunnel is to be read from the live interface alone (`--config none`).
    pub fn live_only(&self) -> bool {
        self.config.as_deref() == Some(std::path::Path::new(NO_CONFIG))
    }

    /// Sets one option by its long name; shared by the command line and the settings file.
    /// Errors are phrased without the option's spelling, which the caller adds.
    pub fn set(&mut self, long: &str, value: Option<&str>) -> std::result::Result<(), String> {
        let v = || value.ok_or_else(|| "needs a value".to_string());
        let full = match long {
            "admin" => self.admin.len(),
            "allow" => self.allow.len(),
            "lan" => self.lan.len(),
            "forward" => self.forward.len(),
            _ => 0,
        } >= MAX_LIST;
        if full {
            return Err(over(MAX_LIST, &format!("{long} entries")));
        }
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
            "nat64" => self.nat64.push(nat64_prefix(v()?)?),
            "no-internet" => self.no_internet = switch(value)?,
            "peer-to-peer" => self.peer_to_peer = switch(value)?,
            "allow" => self.allow.push(v()?.parse()?),
            "handshake-limit" => self.handshake_limit = Some(v()?.parse()?),
            "no-nat" => self.no_nat = switch(value)?,
            "nat6" => self.nat6 = switch(value)?,
            "no-log" => self.no_log = switch(value)?,
            "allow-lan" => self.allow_lan = switch(value)?,
            "lockdown" => self.lockdown = switch(value)?,
            "no-watch" => self.no_watch = switch(value)?,
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
        self.nat64.iter().for_each(|n| put("nat64", n.to_string()));
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
            ("no-watch", self.no_watch),
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

    /// What only the options as merged (the command line's `lan` replaces the settings file's,
    /// and each section without `lan` of its own gets it) and the wg-quick config can tell
    /// together: what the sections come to, and the lists that multiply.
    pub fn check_limits(&self, conf: &WgConfig) -> Result<(), String> {
        let opts = self;
        let lan = opts.lan.len();
        let entries: usize = opts
            .sections
            .iter()
            .map(|s| {
                let admin = if s.admin == Some(true) { lan } else { 0 };
                s.listed() + s.lan.as_ref().map_or(lan, Vec::len) + admin
            })
            .sum();
        if entries > MAX_SECTION_ENTRIES {
            return Err(over(
                MAX_SECTION_ENTRIES,
                &format!(
                    "lan, allow and peer-to-peer entries of the sections together ({entries}, each section without lan counting the interface's {lan}, and each admin section again)"
                ),
            ));
        }
        let all_lans = || {
            opts.lan.iter().chain(
                opts.sections
                    .iter()
                    .filter_map(|s| s.lan.as_ref())
                    .flatten(),
            )
        };
        let lans = all_lans().count();
        if lans > MAX_LANS {
            return Err(over(
                MAX_LANS,
                &format!("LAN networks of the interface and its sections together ({lans})"),
            ));
        }
        // Per family: IPv4 tunnel networks pair with IPv4 LAN networks only.
        let v4 = |n: &&IpNet| n.addr().is_ipv4();
        let host_route = conf
            .addresses
            .iter()
            .any(|a| a.prefix_len() == a.max_prefix_len());
        let allowed = conf.peers.iter().flat_map(|p| &p.allowed_ips);
        let tunnels = || {
            conf.addresses
                .iter()
                .chain(allowed.clone().filter(move |_| host_route))
        };
        let (tunnel, tunnel4) = (tunnels().count(), tunnels().filter(v4).count());
        let lans4 = all_lans().filter(v4).count();
        let from_lan = opts.forward.iter().filter(|f| f.from_lan).count();
        let by_key: HashMap<&str, usize> = conf
            .peers
            .iter()
            .filter_map(|p| Some((p.public_key.as_deref()?, p.allowed_ips.len())))
            .collect();
        // A peer that is not in the config yet (`wg set` added it) counts as one network.
        let nets_of = |s: &Section| -> usize {
            s.peers
                .iter()
                .map(|(k, _)| by_key.get(k.as_str()).copied().unwrap_or(1))
                .sum()
        };
        let sections: HashMap<&str, usize> = opts
            .sections
            .iter()
            .map(|s| (s.name.as_str(), nets_of(s)))
            .collect();
        let named: usize = opts
            .sections
            .iter()
            .filter_map(|s| match &s.peer_to_peer {
                Some((PeerReach::Named(n), _)) => Some(n),
                _ => None,
            })
            .flatten()
            .filter_map(|n| sections.get(n.as_str()))
            .sum();
        let pairs = tunnel4 * lans4 + (tunnel - tunnel4) * (lans - lans4) + from_lan * lans + named;
        if pairs > MAX_PAIRS {
            return Err(over(
                MAX_PAIRS,
                &format!(
                    "rules pairing networks ({pairs}: {tunnel} tunnel networks and {from_lan} from-lan forwards with {lans} LAN networks, {named} AllowedIPs of the sections peer-to-peer names)"
                ),
            ));
        }
        Ok(())
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
            nat64: if self.nat64.is_empty() {
                base.nat64
            } else {
                self.nat64
            },
            no_internet: self.no_internet || base.no_internet,
            peer_to_peer: self.peer_to_peer || base.peer_to_peer,
            no_nat: self.no_nat || base.no_nat,
            nat6: self.nat6 || base.nat6,
            no_log: self.no_log || base.no_log,
            allow_lan: self.allow_lan || base.allow_lan,
            lockdown: self.lockdown || base.lockdown,
            no_watch: self.no_watch || base.no_watch,
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
    use crate::config::{settings, wgconf};
    use std::path::Path;

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
    fn conf(text: &str) -> WgConfig {
        wgconf::parse(Path::new("c"), text).unwrap()
    }

    /// `lan = ...` lines, `n` different networks.
    fn lans(n: usize) -> String {
        (0..n)
            .map(|i| format!("lan = 10.{}.{}.0/24\n", i / 256, i % 256))
            .collect()
    }

    /// A section without `lan` gets the interface's: 1,000 of them in 201 sections are more
    /// than the sections may come to, whether the file or the command line gave them.
    #[test]
    fn sections_count_the_lan_they_get_from_the_interface() {
        // Public keys of digits: 43 characters of base64 ending in one of AEIMQUYcgkosw048.
        let sections: String = (0..201)
            .map(|i| format!("[group g{i}]\npeer = {i:0>42}A=\nlan = 10.0.0.0/8\n"))
            .collect();
        let text = format!("{}{sections}", lans(1_000));
        let mut opts = settings::parse(Path::new("s"), &text).unwrap();
        let c = conf("[Interface]\nAddress = 10.66.0.1/24\n");
        assert!(opts.check_limits(&c).is_ok());
        opts.sections.iter_mut().for_each(|s| s.lan = None);
        let e = opts.check_limits(&c).unwrap_err();
        assert!(
            e.starts_with("more than 200000 lan, allow and peer-to-peer entries of the sections together (201000, each section without lan counting the interface's 1000, and each admin section again): wgfw-hook's limit"),
            "{e}"
        );
    }

    /// Tunnel networks times LAN networks: 100,000 peers behind a host-route Address with 5
    /// LAN networks are as many NAT rules as wgfw-hook makes; a sixth network is too many.
    #[test]
    fn lists_that_multiply_are_counted_together() {
        let peers = "[Peer]\nAllowedIPs = 10.66.0.2/32\n".repeat(99_999);
        let c = conf(&format!("[Interface]\nAddress = 10.66.0.1/32\n{peers}"));
        let opts = |n: usize| settings::parse(Path::new("s"), &lans(n)).unwrap();
        assert!(opts(5).check_limits(&c).is_ok());
        let e = opts(6).check_limits(&c).unwrap_err();
        assert!(
            e.starts_with("more than 500000 rules pairing networks (600000: 100000 tunnel networks and 0 from-lan forwards with 6 LAN networks"),
            "{e}"
        );
        // Behind an Address network, the AllowedIPs are no tunnel networks of their own.
        let routed = conf(&format!("[Interface]\nAddress = 10.66.0.1/16\n{peers}"));
        assert!(opts(1_000).check_limits(&routed).is_ok());
        // The LAN networks of the sections count too.
        let sections: String = (0..21)
            .map(|i| format!("[group g{i}]\npeer = {i:0>42}A=\n{}", lans(1_000)))
            .collect();
        let many = settings::parse(Path::new("s"), &sections).unwrap();
        assert!(many.check_limits(&routed).unwrap_err().starts_with(
            "more than 20000 LAN networks of the interface and its sections together (21000)"
        ));
    }
}
