//! `status [IFACE] [--json]`: what is installed in this network namespace: per managed
//! interface its state, the packets its important rules counted, peers to prune, accepts in
//! other managers' chains; and how full connection tracking is.

use crate::backend;
use crate::backend::firewalld::Zoned;
use crate::config::types::{IfaceName, Role};
use crate::error::Result;
use crate::plan::ledger::Ledger;
use crate::rules::COUNTED;
use crate::rules::foreign::{self as places, Place};
use crate::system::reliance::Depth;
use crate::system::state::{Record, Store};
use crate::system::{host, sysctl};

use super::json::{self, Json};
use super::plan::describe_peer;
use super::watcher::{self, Watcher};
use super::{down, files, now_secs, prepare, recorded_inputs};

/// Peers silent for longer than this are worth pruning, as the hardening guides say.
const STALE_PEER_SECS: u64 = 7 * 86_400;

/// A setting the interface holds: its value now, from before `up`, and why `down` would
/// leave it, if it would.
struct Setting {
    key: String,
    now: String,
    was: String,
    left: Option<String>,
}

/// What `status` reports of one managed interface.
struct Report {
    record: Record,
    up: bool,
    state: String,
    /// `rules::COUNTED` first, then each port forward's connections.
    counters: Vec<(String, u64)>,
    /// Settings this interface holds.
    sysctls: Vec<Setting>,
    stale_peers: Vec<(String, Option<u64>)>,
    foreign: Vec<Place>,
    /// What firewalld was asked through its API.
    firewalld: Option<Zoned>,
    /// With peer sections: each peer's reach in one line, its section's name first.
    peers: Vec<String>,
    /// The watcher that keeps the firewall as planned, if one runs.
    watcher: Option<Watcher>,
}

/// Prints what is installed in this network namespace: per managed interface its state, the
/// packets its important rules counted, peers to prune, accepts in other managers' chains;
/// and how full connection tracking is. `--json` prints the same as one JSON object.
pub fn status(only: Option<&IfaceName>, json: bool) -> Result<()> {
    let store = Store::open()?;
    let conntrack = host::conntrack_use();
    let records: Vec<Record> = store
        .records()?
        .into_iter()
        .filter(|r| only.is_none_or(|i| &r.iface == i))
        .collect();
    let ledger = Ledger::parse(&store.read_named(files::LEDGER)?.unwrap_or_default());
    let mut reports = Vec::new();
    for r in &records {
        reports.push(Report::of(&store, r, &records, &ledger)?);
    }
    if json {
        let items: Vec<Json> = reports.iter().map(Report::json).collect();
        crate::outln!("{}", json::status_json(conntrack, &items));
    } else {
        crate::out!("{}", text(conntrack, &reports, only));
    }
    Ok(())
}

/// The plain-text status.
fn text(conntrack: Option<(u64, u64)>, reports: &[Report], only: Option<&IfaceName>) -> String {
    let mut s = String::new();
    if let Some((n, max)) = conntrack {
        let pct = n * 100 / max.max(1);
        let warn = if pct >= 80 {
            ": nearly full, raise net.netfilter.nf_conntrack_max"
        } else {
            ""
        };
        s.push_str(&format!("conntrack: {n} of {max} entries ({pct}%){warn}\n"));
    }
    if reports.is_empty() {
        match only {
            Some(i) => s.push_str(&format!("{i}: nothing installed\n")),
            None => s.push_str("no interface is managed by wgfw-hook here\n"),
        }
    }
    for rep in reports {
        s.push_str(&rep.text());
    }
    s
}

impl Report {
    /// Gathers what `status` says of one managed interface.
    fn of(store: &Store, r: &Record, records: &[Record], ledger: &Ledger) -> Result<Report> {
        let left = down::left_at_down(store, &r.iface, Depth::Rules)?;
        let sysctls = ledger
            .entries
            .iter()
            .filter(|(_, e)| e.holders.contains(r.iface.as_str()))
            .map(|(k, e)| Setting {
                key: k.to_string(),
                now: sysctl::read(k).unwrap_or_else(|_| "?".into()),
                was: e.original.clone(),
                left: left.iter().find(|l| &l.key == k).map(|l| l.why.clone()),
            })
            .collect();
        let up = host::iface_exists(&r.iface);
        let others: Vec<Record> = records
            .iter()
            .filter(|o| o.iface != r.iface)
            .cloned()
            .collect();
        let plan = recorded_inputs(store, &r.iface)
            .ok()
            .and_then(|(opts, conf)| prepare(&r.iface, &opts, &conf, r.backend, true).ok())
            .map(|(plan, _, _)| plan);
        let counters = plan
            .as_ref()
            .map(|p| backend::counters(r.backend, p, &others))
            .unwrap_or_default();
        let peers = plan
            .as_ref()
            .filter(|p| !p.groups.is_empty())
            .map(|p| p.peers.iter().map(|v| describe_peer(p, v)).collect())
            .unwrap_or_default();
        let stale_peers = if up {
            host::stale_peers(&r.iface, now_secs(), STALE_PEER_SECS)
        } else {
            Vec::new()
        };
        let foreign = places::decode(
            &store
                .read_named(&files::foreign(&r.iface))?
                .unwrap_or_default(),
        );
        let firewalld = Zoned::decode(
            &store
                .read_named(&files::firewalld(&r.iface))?
                .unwrap_or_default(),
        );
        Ok(Report {
            firewalld,
            watcher: watcher::running(store, &r.iface)?,
            state: state_of(r, up),
            record: r.clone(),
            up,
            counters,
            sysctls,
            stale_peers,
            foreign,
            peers,
        })
    }

    fn text(&self) -> String {
        let r = &self.record;
        let families: Vec<&str> = r.policies.keys().map(|f| f.name()).collect();
        let mut s = format!(
            "{}: {} role, {}, {}: {}\n",
            r.iface,
            r.role.as_str(),
            r.backend,
            families.join(" and "),
            self.state
        );
        let (fixed, own): (Vec<_>, Vec<_>) = self
            .counters
            .iter()
            .partition(|(label, _)| COUNTED.contains(&label.as_str()));
        s.push_str(&format!("  {}\n", watcher_line(self.watcher.as_ref())));
        if !fixed.is_empty() {
            let c: Vec<String> = fixed
                .iter()
                .map(|(label, n)| format!("{label} {n}"))
                .collect();
            s.push_str(&format!("  {}\n", c.join(", ")));
        }
        for (label, n) in own {
            let plural = if *n == 1 { "" } else { "s" };
            s.push_str(&format!("  {label}: {n} connection{plural}\n"));
        }
        let changed: Vec<String> = self
            .sysctls
            .iter()
            .filter(|s| s.now != s.was)
            .map(|s| match &s.left {
                Some(why) => format!("{}={} (was {}; down leaves it: {why})", s.key, s.now, s.was),
                None => format!("{}={} (was {})", s.key, s.now, s.was),
            })
            .collect();
        if !changed.is_empty() {
            s.push_str(&format!("  sysctls: {}\n", changed.join(", ")));
        }
        for line in &self.peers {
            s.push_str(&format!("  {line}\n"));
        }
        for (key, age) in &self.stale_peers {
            match age {
                None => s.push_str(&format!("  peer {key}: no handshake yet\n")),
                Some(secs) => s.push_str(&format!(
                    "  peer {key}: last handshake {} days ago (remove it if it is gone)\n",
                    secs / 86_400
                )),
            }
        }
        for place in &self.foreign {
            s.push_str(&format!(
                "  accepts of its own first in another manager's chain: {}\n",
                place.describe()
            ));
        }
        if let Some(z) = &self.firewalld {
            s.push_str(&format!(
                "  firewalld (its API, runtime): {}\n",
                firewalld_words(r, z)
            ));
        }
        s
    }

    fn json(&self) -> Json {
        let r = &self.record;
        Json::Object(vec![
            ("interface", Json::Str(r.iface.to_string())),
            ("role", Json::Str(r.role.as_str().into())),
            ("backend", Json::Str(r.backend.to_string())),
            (
                "families",
                Json::Array(
                    r.policies
                        .keys()
                        .map(|f| Json::Str(f.name().into()))
                        .collect(),
                ),
            ),
            ("interface_up", Json::Bool(self.up)),
            ("lockdown", Json::Bool(r.lockdown)),
            ("state", Json::Str(self.state.clone())),
            (
                "watcher",
                self.watcher.as_ref().map_or(Json::Null, watcher_json),
            ),
            (
                "counters",
                Json::Map(
                    self.counters
                        .iter()
                        .map(|(l, n)| (l.clone(), Json::Num(*n)))
                        .collect(),
                ),
            ),
            (
                "sysctls",
                Json::Array(
                    self.sysctls
                        .iter()
                        .map(|s| {
                            Json::Object(vec![
                                ("key", Json::Str(s.key.clone())),
                                ("value", Json::Str(s.now.clone())),
                                ("saved", Json::Str(s.was.clone())),
                                ("left_at_down", s.left.clone().map_or(Json::Null, Json::Str)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "stale_peers",
                Json::Array(
                    self.stale_peers
                        .iter()
                        .map(|(k, age)| {
                            Json::Object(vec![
                                ("public_key", Json::Str(k.clone())),
                                ("seconds_since_handshake", age.map_or(Json::Null, Json::Num)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "firewalld",
                self.firewalld
                    .as_ref()
                    .map_or(Json::Null, |z| Json::Str(firewalld_words(&self.record, z))),
            ),
            (
                "accepts_in_other_managers_chains",
                Json::Array(
                    self.foreign
                        .iter()
                        .map(|p| Json::Str(p.describe()))
                        .collect(),
                ),
            ),
        ])
    }
}

/// What the hook asked of firewalld, and what `down` puts back.
fn firewalld_words(r: &Record, z: &Zoned) -> String {
    let mut parts = Vec::new();
    if let Some(was) = &z.was {
        let was = if was.is_empty() { "no zone" } else { was };
        parts.push(format!(
            "{} moved to zone {} (down puts it back in {was})",
            r.iface,
            places::TUNNEL_ZONE
        ));
    }
    for (zone, port, proto) in &z.ports {
        parts.push(format!("{port}/{} opened in zone {zone}", proto.as_str()));
    }
    parts.join("; ")
}

fn watcher_line(w: Option<&Watcher>) -> String {
    let Some(w) = w else {
        return "watcher: none runs (the firewall is checked only by check and the next up)".into();
    };
    let mut s = format!(
        "watcher: pid {}, since {}, {} repair{}",
        w.pid,
        utc(w.since),
        w.repairs,
        if w.repairs == 1 { "" } else { "s" }
    );
    if let Some((t, why)) = &w.last {
        s.push_str(&format!(", the last at {} after {why}", utc(*t)));
    }
    if let Some((t, why)) = &w.holding_off {
        s.push_str(&format!(
            "; holding off until {}: something undoes the repair again and again (last: {why})",
            utc(*t)
        ));
    }
    if let Some((t, why)) = &w.fighting {
        s.push_str(&format!(
            "; something undoes the kill switch again and again (last: {why}): repaired each time (said again at {} at the soonest)",
            utc(*t)
        ));
    }
    if let Some(e) = &w.error {
        s.push_str(&format!("; last error: {e}"));
    }
    s
}

/// Seconds since the epoch as `2026-12-05 08:30:22 UTC` (the civil calendar from days, as in
/// Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

fn watcher_json(w: &Watcher) -> Json {
    let timed = |t: &Option<(u64, String)>| {
        t.as_ref().map_or(Json::Null, |(t, why)| {
            Json::Object(vec![
                ("time", Json::Num(*t)),
                ("cause", Json::Str(why.clone())),
            ])
        })
    };
    Json::Object(vec![
        ("pid", Json::Num(u64::from(w.pid))),
        ("since", Json::Num(w.since)),
        ("repairs", Json::Num(w.repairs)),
        ("last_repair", timed(&w.last)),
        ("holding_off", timed(&w.holding_off)),
        ("fighting", timed(&w.fighting)),
        ("last_error", w.error.clone().map_or(Json::Null, Json::Str)),
    ])
}

fn state_of(r: &Record, up: bool) -> String {
    match (r.role, r.lockdown, up) {
        (Role::Client, true, false) => format!(
            "kill switch kept after down (--lockdown): nothing leaves this host outside the tunnel; \"wgfw-hook release {}\" removes it",
            r.iface
        ),
        (Role::Client, _, false) => {
            "kill switch in place, tunnel gone: nothing leaves outside the tunnel".into()
        }
        (Role::Client, true, true) => "kill switch active; kept after down (--lockdown)".into(),
        (Role::Client, false, true) => "kill switch active".into(),
        (Role::Server, _, true) => "firewall installed".into(),
        (Role::Server, _, false) => format!(
            "firewall installed, interface gone: \"wgfw-hook down {}\" removes it",
            r.iface
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_459_422), "2026-12-05 08:30:22 UTC");
        assert!(utc(u64::MAX).ends_with(" UTC"));
    }
}
