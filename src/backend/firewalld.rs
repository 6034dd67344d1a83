//! A server's tunnel let through firewalld by firewalld's own API (`rules::foreign::
//! firewalld_wish`), runtime only: the interface moved to `TUNNEL_ZONE`, the WireGuard port and
//! the `--allow` services opened in the WAN's zone. What was changed is recorded (`Zoned`),
//! so that `down` puts back exactly that: the zone the interface was in, and only the ports
//! this hook opened (one open already is someone else's). A `firewall-cmd --reload` drops
//! runtime changes: `check` sees it (`drift`) and the watcher applies them again.

use crate::config::types::{IfaceName, Proto};
use crate::error::{Error, Result};
use crate::rules::foreign::{TUNNEL_ZONE, ZoneWish};
use crate::system::firewalld::{self, Failed};

/// What `apply` changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Zoned {
    /// The zone the interface was in before it was moved ("" for none); None where it was in
    /// the tunnel's zone already, which is then not ours to take back.
    pub was: Option<String>,
    /// The ports opened: (zone, port, protocol).
    pub ports: Vec<(String, String, Proto)>,
}

impl Zoned {
    pub(crate) fn encode(&self) -> String {
        let mut s = String::new();
        if let Some(was) = &self.was {
            s.push_str(&format!("was\t{was}\n"));
        }
        for (zone, port, proto) in &self.ports {
            s.push_str(&format!("port\t{zone}\t{port}\t{}\n", proto.as_str()));
        }
        s
    }

    /// None for an empty (or unreadable) record: nothing to put back.
    pub(crate) fn decode(text: &str) -> Option<Zoned> {
        let mut z = Zoned::default();
        for line in text.lines() {
            match line.split('\t').collect::<Vec<_>>().as_slice() {
                ["was", zone] => z.was = Some(zone.to_string()),
                ["port", zone, port, proto] => {
                    let proto = match *proto {
                        "tcp" => Proto::Tcp,
                        "udp" => Proto::Udp,
                        _ => continue,
                    };
                    z.ports.push((zone.to_string(), port.to_string(), proto));
                }
                _ => {}
            }
        }
        (z != Zoned::default()).then_some(z)
    }
}

fn system(f: Failed) -> Error {
    Error::system(f.to_string())
}

/// The zone the WAN is in: its own, else the default zone, which takes every interface in no
/// zone.
fn wan_zone(wish: &ZoneWish) -> Result<String> {
    let own = match &wish.wan {
        Some(wan) => firewalld::zone_of(wan).map_err(system)?,
        None => String::new(),
    };
    if !own.is_empty() {
        return Ok(own);
    }
    firewalld::default_zone()
        .ok_or_else(|| Error::system("firewalld: it does not say its default zone"))
}

/// Moves the interface to the tunnel's zone and opens the ports (`recorded`: what an earlier
/// `up` changed, still ours); returns what is ours now. On failure, what it did is undone.
pub(crate) fn apply(wish: &ZoneWish, recorded: Option<&Zoned>) -> Result<Zoned> {
    let iface = &wish.iface;
    let mut done = Zoned::default();
    let result = (|| -> Result<()> {
        let now = firewalld::zone_of(iface).map_err(system)?;
        done.was = if now == TUNNEL_ZONE {
            recorded.and_then(|r| r.was.clone())
        } else {
            firewalld::change_zone(TUNNEL_ZONE, iface).map_err(system)?;
            Some(now)
        };
        let zone = wan_zone(wish)?;
        for (port, proto) in &wish.ports {
            let mine = (zone.clone(), port.clone(), *proto);
            let added = firewalld::add_port(&zone, port, *proto).map_err(system)?;
            if added || recorded.is_some_and(|r| r.ports.contains(&mine)) {
                done.ports.push(mine);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Only what this call changed: a repair's failure leaves what was ours before.
        let fresh = Zoned {
            was: done
                .was
                .filter(|_| recorded.is_none_or(|r| r.was.is_none())),
            ports: done
                .ports
                .into_iter()
                .filter(|p| recorded.is_none_or(|r| !r.ports.contains(p)))
                .collect(),
        };
        let _ = undo(iface, &fresh);
        return Err(e);
    }
    // Ports opened before and no longer wanted (the port changed, the WAN's zone did).
    if let Some(r) = recorded {
        for (zone, port, proto) in r.ports.iter().filter(|p| !done.ports.contains(p)) {
            let _ = firewalld::remove_port(zone, port, *proto);
        }
    }
    Ok(done)
}

/// Puts back what `apply` changed; returns the warnings. An interface someone else has moved
/// since stays where they put it.
pub(crate) fn undo(iface: &IfaceName, z: &Zoned) -> Vec<String> {
    let mut warnings = Vec::new();
    for (zone, port, proto) in &z.ports {
        if let Err(f) = firewalld::remove_port(zone, port, *proto) {
            warnings.push(format!(
                "{f} (closing {port}/{} in zone {zone})",
                proto.as_str()
            ));
        }
    }
    if let Some(was) = &z.was {
        let back = match firewalld::zone_of(iface) {
            Ok(now) if now != TUNNEL_ZONE => Ok(()),
            Ok(_) if was.is_empty() => firewalld::remove_interface(TUNNEL_ZONE, iface),
            Ok(_) => firewalld::change_zone(was, iface),
            Err(f) => Err(f),
        };
        if let Err(f) = back {
            let to = if was.is_empty() { "no zone" } else { was };
            warnings.push(format!("{f} (putting {iface} back in {to})"));
        }
    }
    warnings
}

/// How firewalld differs from the wish (a reload dropped the runtime changes).
pub(crate) fn drift(wish: &ZoneWish) -> Vec<String> {
    let iface = &wish.iface;
    let mut out = Vec::new();
    match firewalld::zone_of(iface) {
        Ok(z) if z == TUNNEL_ZONE => {}
        Ok(z) if z.is_empty() => out.push(format!(
            "firewalld: {iface} is in no zone, not {TUNNEL_ZONE}"
        )),
        Ok(z) => out.push(format!(
            "firewalld: {iface} is in zone {z}, not {TUNNEL_ZONE}"
        )),
        Err(f) => out.push(f.to_string()),
    }
    match wan_zone(wish) {
        Ok(zone) => {
            for (port, proto) in &wish.ports {
                match firewalld::query_port(&zone, port, *proto) {
                    Ok(true) => {}
                    Ok(false) => out.push(format!(
                        "firewalld: {port}/{} is not open in zone {zone}",
                        proto.as_str()
                    )),
                    Err(f) => out.push(f.to_string()),
                }
            }
        }
        Err(e) => out.push(e.to_string()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips() {
        let z = Zoned {
            was: Some(String::new()),
            ports: vec![
                ("public".into(), "51820".into(), Proto::Udp),
                ("public".into(), "8000-8100".into(), Proto::Tcp),
            ],
        };
        assert_eq!(Zoned::decode(&z.encode()), Some(z));
        let home = Zoned {
            was: Some("home".into()),
            ports: vec![],
        };
        assert_eq!(Zoned::decode(&home.encode()), Some(home));
        assert_eq!(Zoned::decode(""), None);
        assert_eq!(Zoned::decode("garbage\nport\tx\n"), None);
    }
}
