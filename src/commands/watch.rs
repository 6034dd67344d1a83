//! `watch IFACE`: brings the firewall to the plan, as `up` does, and keeps it there between
//! wg-quick's hooks. It waits on events, not a timer (`system::events`): every commit to the
//! nftables ruleset (a `flush ruleset`, firewalld's or ufw's reload, Docker, iptables-nft) is
//! compared with the plan and what differs is repaired in one install, all or nothing, the way
//! `check --repair` does it; the watcher's own commits do not wake it (the ruleset's generation).
//! iptables-legacy tells nobody of changes: there it asks the kernel for its tables' sizes every
//! `LEGACY_PEEK` and compares whole every `LEGACY_POLL`. An edit of the wg-quick config or the
//! settings file is planned anew, as `up` would plan it, and installed; one that does not parse, or
//! whose plan `up` would refuse, keeps the firewall as it is and says why (`file:line`). SIGHUP
//! reconciles at once; SIGTERM and SIGINT stop it and leave the firewall in place (fail closed), as
//! SIGKILL does. When the interface goes without `down`, a server's firewall and settings are
//! removed as `down` removes them (what others came to rely on stays); a client's kill switch
//! stays, which is its point. `up` starts it and `down` stops it before it removes anything
//! (`watcher`).
//!
//! A repair that something undoes again and again is not fought: after `FIGHT_REPAIRS` in
//! `FIGHT_WINDOW` the watcher waits, doubling the wait up to `MAX_HOLD_OFF`, and says once
//! which change it was; `status` shows it. Only the ruleset's changes count: peers and edits
//! are the plan's own. A client's kill switch is never left down: it is repaired each time,
//! and the fight is said once a wait.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::cli::Args;
use crate::config::options::NO_CONFIG;
use crate::config::types::{IfaceName, Port, Role};
use crate::config::{settings, wgconf};
use crate::error::{Error, Result};
use crate::rules::Backend;
use crate::rules::iptables::Variant;
use crate::system::events::{self, Event, Events};
use crate::system::state::Store;
use crate::system::{cmd, host, netns, nftgen};

use super::install::{Guard, install};
use super::watcher::{self, Watcher, running};
use super::{check, down, now_secs};

/// A change is looked at at once: a wipe by hand is several commits (each table of each
/// family), and a kill switch must not wait. A look that repaired is followed by another at
/// once, which sees what was committed while it ran. Past `QUICK_LOOKS` looks within
/// `MAX_BURST` it is a burst (firewalld's reload, Docker's restart): the watcher looks again
/// once `QUIET` passed without a change, or `MAX_BURST` after the burst began, so that nothing
/// spins; a burst's repairs count as one against a fight.
const QUICK_LOOKS: usize = 20;
const QUIET: Duration = Duration::from_millis(150);
const MAX_BURST: Duration = Duration::from_secs(2);
/// iptables-legacy has no notifications: its tables' sizes are asked every `LEGACY_PEEK`
/// (`system::xtables::fingerprint`, microseconds); what keeps every size is found by a whole
/// look (one `-save` per family, a few milliseconds) every `LEGACY_POLL`.
const LEGACY_PEEK: Duration = Duration::from_millis(250);
const LEGACY_POLL: Duration = Duration::from_secs(30);
/// Where no change can be seen (no notifications, no sizes to ask), a whole look this often.
const BLIND_POLL: Duration = Duration::from_secs(5);
/// A look now and then even where notifications come: a lost one costs this much at most.
const SAFETY_NET: Duration = Duration::from_secs(300);
/// A look the system refused (a table another program deleted under the repair: firewalld's
/// reload guard) is taken again after `FIRST_RETRY`, then after twice as long each time it
/// fails again, up to the whole look's interval: a passing failure costs a moment, a lasting
/// one is not said more often than a look comes anyway. An edit that does not parse waits for
/// the next edit.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const FIGHT_REPAIRS: usize = 5;
const FIGHT_WINDOW: Duration = Duration::from_secs(60);
const FIRST_HOLD_OFF: Duration = Duration::from_secs(10);
const MAX_HOLD_OFF: Duration = Duration::from_secs(300);
/// WireGuard tells nobody of peers added, removed or given other AllowedIPs (`wg set`, `wg
/// syncconf`): where a `[peer]`/`[group]` section or a forward depends on them, they are asked
/// every `PEER_POLL`, or less often where one answer costs more than `1/PEER_SHARE` of the
/// time between (a busy daemon with thousands of peers), up to `MAX_PEER_POLL`. An edit of the
/// config is usually followed by `wg syncconf` within moments: for `AFTER_EDIT` after one they
/// are asked every `PEER_POLL_FAST`.
const PEER_POLL: Duration = Duration::from_secs(1);
/// A listen port taken from the live interface is asked for every `PORT_POLL` (where no peers
/// are): it changes only with `wg set` or networkd's reconfiguration.
const PORT_POLL: Duration = Duration::from_secs(5);
const PEER_SHARE: u32 = 200;
const MAX_PEER_POLL: Duration = Duration::from_secs(60);
const PEER_POLL_FAST: Duration = Duration::from_millis(200);
const AFTER_EDIT: Duration = Duration::from_secs(5);

/// Repairs counted in a window, a burst's as one, and the wait they earn when they come too
/// fast.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    recent: VecDeque<Duration>,
    hold_off: Option<Duration>,
}

impl Pacer {
    /// Notes a repair at `now` (time since the watcher started); returns how long to wait
    /// before the next one, when they come too fast.
    pub(crate) fn repaired(&mut self, now: Duration) -> Option<Duration> {
        if self
            .recent
            .back()
            .is_some_and(|t| now.saturating_sub(*t) < MAX_BURST)
        {
            return None;
        }
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > FIGHT_WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() < FIGHT_REPAIRS {
            self.hold_off = None;
            return None;
        }
        let next = self
            .hold_off
            .map_or(FIRST_HOLD_OFF, |h| (h * 2).min(MAX_HOLD_OFF));
        self.hold_off = Some(next);
        Some(next)
    }
}

/// What the watcher asks the live interface for, as WireGuard tells nobody: the peers where
/// sections or forwards follow them; the listen port where the plan took it from the
/// interface (a server with no wg-quick config, or one without ListenPort).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Asks {
    peers: bool,
    port: bool,
}

/// What changed since the last answer.
#[derive(Debug, Default)]
struct Changed {
    peers: bool,
    port: bool,
}

/// The live interface's poll: what it said at the last answer, and when to ask next.
struct LivePoll {
    asks: Asks,
    peers: Option<u64>,
    port: Option<Port>,
    next: Instant,
    every: Duration,
    fast_until: Option<Instant>,
}

impl LivePoll {
    /// None where nothing needs asking.
    fn new(iface: &IfaceName, asks: Asks) -> Option<LivePoll> {
        if asks == Asks::default() {
            return None;
        }
        let mut p = LivePoll {
            asks,
            peers: None,
            port: None,
            next: Instant::now(),
            every: PEER_POLL,
            fast_until: None,
        };
        p.changed(iface);
        Some(p)
    }

    /// Asks the interface; what differs from the last answer. An interface that does not
    /// answer now, or has no port now (it is down), changes nothing.
    fn changed(&mut self, iface: &IfaceName) -> Changed {
        let asked = Instant::now();
        let now = host::device_now(iface);
        let cost = asked.elapsed();
        let least = if self.asks.peers {
            PEER_POLL
        } else {
            PORT_POLL
        };
        self.every = (cost * PEER_SHARE).clamp(least, MAX_PEER_POLL);
        let fast = self.fast_until.is_some_and(|t| asked < t);
        self.next = Instant::now() + if fast { PEER_POLL_FAST } else { self.every };
        let Some((port, peers)) = now else {
            return Changed::default();
        };
        let mut changed = Changed::default();
        if self.asks.peers {
            let seen = Some(fingerprint(&peers));
            changed.peers = self.peers.is_some() && seen != self.peers;
            self.peers = seen;
        }
        if self.asks.port && port.is_some() {
            changed.port = self.port.is_some() && port != self.port;
            self.port = port;
        }
        changed
    }

    /// The peers a look planned with: the next answer is compared with them, so that a change
    /// the look took in (one right after a repair) is not a change, and one it did not take in
    /// is one even where an answer came between.
    fn planned_with(&mut self, peers: &[(String, Vec<ipnet::IpNet>)]) {
        if self.asks.peers {
            self.peers = Some(fingerprint(peers));
        }
    }

    fn after_edit(&mut self) {
        self.fast_until = Some(Instant::now() + AFTER_EDIT);
        self.next = self.next.min(Instant::now() + PEER_POLL_FAST);
    }
}

/// The peers and their AllowedIPs, in any order, as one number.
fn fingerprint(peers: &[(String, Vec<ipnet::IpNet>)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut sorted: Vec<(&str, Vec<ipnet::IpNet>)> = peers
        .iter()
        .map(|(k, nets)| {
            let mut nets = nets.clone();
            nets.sort();
            (k.as_str(), nets)
        })
        .collect();
    sorted.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    h.finish()
}

/// What the live interface is asked for: the peers where the recorded plan has sections or
/// forwards, whose rules follow them; a server's port where its config gives none.
fn asks(iface: &IfaceName, config: Option<&Path>, role: Role) -> Asks {
    let peers = Store::open()
        .and_then(|store| super::recorded_inputs(&store, iface))
        .is_ok_and(|(opts, _)| super::wants_live_peers(&opts));
    let port = role == Role::Server
        && config.is_none_or(|config| match wgconf::read(config) {
            Ok(conf) => conf.listen_port.is_none(),
            Err(_) => !config.exists(),
        });
    Asks { peers, port }
}

/// Whether standard error goes nowhere (a detached watcher's): /dev/null.
fn stderr_is_null() -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0x103)
}

/// How a watch of the interface's life ended.
enum Ended {
    /// Stopped (a signal, `down`, its namespace deleted): the watcher exits.
    Stopped,
    /// The interface went without `down`; with `--follow` the watcher waits for it again.
    Gone,
}

/// What the watcher waits on and for.
struct Watched<'a> {
    args: &'a Args,
    /// The wg-quick config (which may not exist); None with `--config none`.
    config: Option<PathBuf>,
    /// The config's and the settings file's names, whose edit is planned anew.
    names: Vec<String>,
    /// The names of the files that bind the network namespace (`netns`).
    bound_names: Vec<String>,
    netns: Option<u64>,
}

pub fn watch(args: &Args) -> Result<()> {
    let iface = &args.iface;
    if !args.follow && !host::iface_exists(iface) {
        return Err(Error::usage(format!(
            "no interface {iface} here: wgfw-hook watch starts once the interface exists (--follow waits for it)"
        )));
    }
    if stderr_is_null() {
        crate::system::out::stderr_to_syslog();
    }
    // The files an edit of which is planned anew.
    let config = args
        .options
        .config
        .clone()
        .or_else(|| {
            settings::read(&settings::path_for(iface))
                .ok()
                .and_then(|o| o.config)
        })
        .unwrap_or_else(|| PathBuf::from(format!("/etc/wireguard/{iface}.conf")));
    // `--config none`: no file; the tunnel is the live interface's.
    let config = (config != Path::new(NO_CONFIG)).then_some(config);
    let files: Vec<PathBuf> = config
        .iter()
        .cloned()
        .chain([settings::path_for(iface)])
        .collect();
    let names = file_names(&files);
    // The files bound to this network namespace (`ip netns add`'s): when one goes, the watcher
    // may be all that keeps the namespace alive.
    let netns = netns::own();
    let bound = netns.map(netns::bound_at).unwrap_or_default();
    let bound_names = file_names(&bound);
    let dirs: Vec<&Path> = files
        .iter()
        .chain(&bound)
        .filter_map(|f| f.parent())
        .collect();
    let mut events =
        Events::open(&dirs).map_err(|e| Error::system(format!("cannot watch for changes: {e}")))?;
    let watched = Watched {
        args,
        config,
        names,
        bound_names,
        netns,
    };
    loop {
        if args.follow && !wait_for_tunnel(&watched, &mut events)? {
            return finish(iface, "stopped by a signal");
        }
        match session(&watched, &mut events)? {
            Ended::Gone if args.follow => {
                crate::errln!("wgfw-hook: {iface}: waiting for {iface} to come again");
            }
            _ => return Ok(()),
        }
    }
}

/// `--follow`: waits until the interface is there with an address of its own (networkd and
/// NetworkManager give it its addresses after it appears); false when a signal stops it first.
fn wait_for_tunnel(w: &Watched, events: &mut Events) -> Result<bool> {
    let iface = &w.args.iface;
    let mut said = false;
    loop {
        if host::has_global_address(iface) {
            return Ok(true);
        }
        if !said {
            crate::errln!("wgfw-hook: {iface}: waiting for {iface} and its addresses");
            said = true;
        }
        // Events come with the interface and its addresses; the timeout is a safety net.
        let woke = events
            .wait(Duration::from_secs(60))
            .map_err(|e| Error::system(format!("watching: {e}")))?;
        for e in &woke {
            match e {
                Event::Signal(events::SIGINT | events::SIGTERM) => return Ok(false),
                Event::File(name)
                    if w.bound_names.contains(name)
                        && w.netns.is_some_and(|ns| !netns::held_by_others(ns)) =>
                {
                    return Ok(false);
                }
                _ => {}
            }
        }
    }
}

/// One life of the interface: installed as `up` installs it (unless `up` did), then kept as
/// planned until it ends.
fn session(w: &Watched, events: &mut Events) -> Result<Ended> {
    let (args, names, bound_names, netns) = (w.args, &w.names, &w.bound_names, w.netns);
    let iface = &args.iface;
    let me = std::process::id();
    let mut state = Watcher {
        pid: me,
        since: now_secs(),
        ..Watcher::default()
    };
    // Claimed under the records' lock, so that of two watchers started at once one refuses.
    let claim = || -> Result<bool> {
        let store = Store::open()?;
        if let Some(w) = running(&store, iface)?.filter(|w| w.pid != me) {
            return Err(Error::usage(format!(
                "a watcher for {iface} runs already (pid {})",
                w.pid
            )));
        }
        if store.record(iface)?.is_none() {
            return Ok(false);
        }
        store.write_named(&watcher::file(iface), &state.render())?;
        Ok(true)
    };
    if !claim()? {
        // Installed as `up` installs it, but by this watcher: `up` itself would start another.
        let mut own = args.clone();
        own.options.no_watch = true;
        super::up::up(&own)?;
        if !claim()? {
            return Err(Error::system(format!(
                "{iface}: up installed nothing to watch"
            )));
        }
    }
    let started = Instant::now();
    let mut own_gen = nftgen::generation();
    let mut pacer = Pacer::default();
    let mut hold_until: Option<Instant> = None;
    // The first look: whatever happened between `up` and now; after the interface came again,
    // the plan is made anew from what it is now.
    let mut pending: Option<String> = Some("the watcher started".into());
    // Whether the pending look is for a change of the ruleset (which counts against a fight),
    // not of the plan's inputs.
    let mut undone = false;
    let mut looks: VecDeque<Instant> = VecDeque::new();
    let mut fight_said: Option<Instant> = None;
    let mut replan = args.follow;
    let record = Store::open()?.record(iface)?;
    let legacy = record
        .as_ref()
        .is_some_and(|r| r.backend == Backend::Iptables(Variant::Legacy));
    if let Some(r) = &record {
        crate::backend::keep_waiting(r.backend);
        cmd::start_waiting();
    }
    let role = record.map_or(Role::Server, |r| r.role);
    let mut live = LivePoll::new(iface, asks(iface, w.config.as_deref(), role));
    let mut saved = state.clone();
    crate::errln!("wgfw-hook: {iface}: watching (pid {me})");
    let mut last_look = Instant::now();
    // iptables-legacy's tables as last seen (None: look again).
    let mut legacy_seen = None;
    // When a look the system refused is taken again, the wait it earned, and whether it made
    // the plan anew.
    let mut retry: Option<(Instant, Duration, bool)> = None;
    // Whether the legacy tables' sizes can be asked (a raw socket); else whole looks only.
    let peeks = legacy && crate::system::xtables::fingerprint().is_some();
    loop {
        let poll = match (legacy, peeks) {
            (true, true) => LEGACY_POLL,
            (true, false) => BLIND_POLL,
            _ if !events.sees_ruleset() => BLIND_POLL,
            _ => SAFETY_NET,
        };
        let timeout = match (&pending, hold_until) {
            (Some(_), Some(t)) => t.saturating_duration_since(Instant::now()),
            (Some(_), None) => Duration::ZERO,
            (None, _) => {
                let mut next = poll.saturating_sub(last_look.elapsed());
                if legacy && peeks {
                    next = next.min(LEGACY_PEEK);
                }
                if let Some((at, ..)) = retry {
                    next = next.min(at.saturating_duration_since(Instant::now()));
                }
                match &live {
                    Some(p) => next.min(p.next.saturating_duration_since(Instant::now())),
                    None => next,
                }
            }
        };
        let mut woke = events
            .wait(timeout)
            .map_err(|e| Error::system(format!("watching: {e}")))?;
        while looks.front().is_some_and(|t| t.elapsed() > MAX_BURST) {
            looks.pop_front();
        }
        // Past a few quick looks, a burst is taken whole.
        if (!woke.is_empty() || pending.is_some()) && looks.len() >= QUICK_LOOKS {
            let burst = Instant::now();
            while burst.elapsed() < MAX_BURST {
                let more = events
                    .wait(QUIET)
                    .map_err(|e| Error::system(format!("watching: {e}")))?;
                if more.is_empty() {
                    break;
                }
                woke.extend(more);
            }
        }
        // A stop that comes with the interface's going (a unit stopped at shutdown, right
        // after the tunnel) is not lost to it.
        let stop = woke
            .iter()
            .any(|e| matches!(e, Event::Signal(events::SIGINT | events::SIGTERM)));
        let ended = |e: Result<Ended>| e.map(|e| if stop { Ended::Stopped } else { e });
        for e in &woke {
            match e {
                Event::Signal(events::SIGHUP) => pending = Some("SIGHUP".into()),
                Event::Signal(_) => {
                    return finish(iface, "stopped by a signal; the firewall stays")
                        .map(|()| Ended::Stopped);
                }
                Event::Link { name, gone } if name == iface.as_str() => {
                    if *gone || !host::iface_exists(iface) {
                        return ended(gone_without_down(iface, role));
                    }
                    pending.get_or_insert_with(|| format!("{iface} changed"));
                }
                Event::Link { .. } => {}
                Event::Address(index) if Some(*index) == host::ifindex(iface) => {
                    pending.get_or_insert_with(|| format!("{iface}'s addresses changed"));
                    // Followed, the plan may come from the live interface: made anew.
                    replan |= args.follow;
                }
                Event::Address(_) => {}
                Event::DefaultRoute => {
                    pending.get_or_insert_with(|| "the default route changed".into());
                }
                Event::File(name) if names.contains(name) => {
                    pending = Some(format!("{name} changed"));
                    replan = true;
                    if let Some(p) = &mut live {
                        p.after_edit();
                    }
                }
                Event::File(name) if bound_names.contains(name) => {
                    if netns.is_some_and(|ns| !netns::held_by_others(ns)) {
                        return finish(iface, "its network namespace was deleted")
                            .map(|()| Ended::Stopped);
                    }
                }
                Event::File(_) => {}
                Event::Ruleset(gens) => {
                    let theirs =
                        gens.is_empty() || own_gen.is_none_or(|own| gens.iter().any(|g| *g > own));
                    if theirs {
                        let why = match gens.iter().max() {
                            Some(g) => format!("the ruleset changed (generation {g})"),
                            None => "the ruleset changed (notifications were lost)".into(),
                        };
                        pending = Some(why);
                        undone = true;
                    }
                }
            }
        }
        if !host::iface_exists(iface) {
            return ended(gone_without_down(iface, role));
        }
        if let Some(p) = &mut live
            && Instant::now() >= p.next
        {
            let changed = p.changed(iface);
            if changed.port {
                // The plan's port is the interface's: made anew.
                pending = Some("the listen port changed (wg set)".into());
                replan = true;
            }
            if changed.peers {
                pending.get_or_insert_with(|| "the peers changed (wg set, wg syncconf)".into());
            }
        }
        if legacy && peeks && pending.is_none() {
            let now = crate::system::xtables::fingerprint();
            if now != legacy_seen {
                pending = Some("the iptables-legacy tables changed".into());
                undone = true;
            }
        }
        if let Some((at, _, anew)) = retry
            && pending.is_none()
            && Instant::now() >= at
        {
            pending = Some("the failed look".into());
            replan |= anew;
        }
        if pending.is_none() && last_look.elapsed() >= poll {
            // A namespace held by processes alone goes unnoticed until then.
            if netns.is_some_and(|ns| !netns::held_by_others(ns)) {
                return finish(iface, "nothing else is left in its network namespace")
                    .map(|()| Ended::Stopped);
            }
            pending = Some(if legacy {
                "a look at iptables-legacy".into()
            } else {
                "a look now and then".into()
            });
            undone = true;
        }
        if hold_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let Some(cause) = pending.take() else {
            continue;
        };
        hold_until = None;
        state.holding_off = None;
        if state
            .fighting
            .as_ref()
            .is_some_and(|(t, _)| *t <= now_secs())
        {
            state.fighting = None;
        }
        last_look = Instant::now();
        looks.push_back(last_look);
        host::forget_silence(iface);
        // What is committed from here on is someone else's, unless this look commits.
        let gen_before = nftgen::generation();
        let legacy_before = legacy.then(crate::system::xtables::fingerprint).flatten();
        let counts = std::mem::take(&mut undone);
        host::take_peers_read(iface);
        let anew = std::mem::take(&mut replan);
        let planned = if anew { plan_anew(args) } else { look(iface) };
        let committed = matches!(planned, Ok(Look::Replanned | Look::Repaired { .. }));
        let failed = planned.is_err();
        if let (false, Some(p), Some(peers)) = (failed, &mut live, host::take_peers_read(iface)) {
            p.planned_with(&peers);
        }
        // A look the system refused is taken again soon; any other outcome ends the retries.
        let wait = matches!(planned, Err(Error::System(_)))
            .then(|| retry.map_or(FIRST_RETRY, |(_, w, _)| (w * 2).min(poll)));
        retry = wait.map(|w| (Instant::now() + w, w, anew));
        match planned {
            Ok(Look::Gone) => {
                return finish(iface, "nothing is installed any more").map(|()| Ended::Stopped);
            }
            Ok(Look::AsPlanned) => state.error = None,
            Ok(Look::Replanned) => {
                state.error = None;
                // Sections added or gone with the edit; `wg syncconf` may still follow it.
                let now = asks(iface, w.config.as_deref(), role);
                if live.as_ref().map_or(Asks::default(), |p| p.asks) != now {
                    live = LivePoll::new(iface, now);
                    if let Some(p) = &mut live {
                        p.after_edit();
                    }
                }
                crate::errln!("wgfw-hook: {iface}: planned anew after {cause}");
            }
            Ok(Look::Repaired { drift }) => {
                state.repairs += 1;
                state.last = Some((now_secs(), cause.clone()));
                state.error = None;
                crate::errln!(
                    "wgfw-hook: {iface}: repaired after {cause}: {}",
                    drift.join("; ")
                );
                let fight = counts.then(|| pacer.repaired(started.elapsed())).flatten();
                match fight {
                    None => {}
                    // Held off, a kill switch would leak: it is repaired each time.
                    Some(wait) if role == Role::Client => {
                        if fight_said.is_none_or(|t| Instant::now() >= t) {
                            crate::errln!(
                                "wgfw-hook: {iface}: the kill switch was undone {FIGHT_REPAIRS} times within {} s (last: {cause}); it is repaired each time",
                                FIGHT_WINDOW.as_secs()
                            );
                            fight_said = Some(Instant::now() + wait);
                        }
                        state.fighting = Some((now_secs() + wait.as_secs(), cause));
                    }
                    Some(wait) => {
                        crate::errln!(
                            "wgfw-hook: {iface}: the firewall was undone {FIGHT_REPAIRS} times within {} s (last: {cause}); next repair in {} s at the soonest",
                            FIGHT_WINDOW.as_secs(),
                            wait.as_secs()
                        );
                        hold_until = Some(Instant::now() + wait);
                        state.holding_off = Some((now_secs() + wait.as_secs(), cause));
                    }
                }
            }
            Err(e) => {
                let again = wait.map_or(String::new(), |w| {
                    format!("; a look again in {} ms", w.as_millis())
                });
                crate::errln!(
                    "wgfw-hook: {iface}: {e} (after {cause}; the firewall stays as it was{again})"
                );
                state.error = Some(e.to_string());
            }
        }
        if committed {
            // What was committed while it ran is seen by the next look, at once.
            pending = Some("a change during the last repair".into());
            undone = true;
        }
        // A look that committed nothing leaves every later commit someone else's; one that
        // did (or failed, and undid what it did) takes what is there now as its own.
        if committed || failed || gen_before.is_none() {
            own_gen = nftgen::generation();
        } else {
            own_gen = gen_before;
        }
        legacy_seen = match (committed, failed) {
            (true, _) => None,
            (_, true) => legacy.then(crate::system::xtables::fingerprint).flatten(),
            _ => legacy_before,
        };
        // The programs this look ran are started again for the next.
        cmd::start_waiting();
        if state != saved {
            save(iface, &state);
            saved = state.clone();
        }
    }
}

fn file_names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

enum Look {
    Gone,
    AsPlanned,
    /// The configuration changed: installed as `up` would install it now.
    Replanned,
    Repaired {
        drift: Vec<String>,
    },
}

/// One comparison with the plan, under the records' lock, and a repair where it differs.
fn look(iface: &IfaceName) -> Result<Look> {
    let store = Store::open()?;
    Ok(match check::repair(&store, iface)? {
        None => Look::Gone,
        Some(drift) if drift.is_empty() => Look::AsPlanned,
        Some(drift) => Look::Repaired { drift },
    })
}

/// The configuration as `up` reads it, planned and installed as `up` installs it (the lockout
/// guard on); nothing changes when it cannot be read or the plan is refused.
fn plan_anew(args: &Args) -> Result<Look> {
    let (opts, conf) = super::load(args)?;
    let store = Store::open()?;
    if store.record(&args.iface)?.is_none() {
        return Ok(Look::Gone);
    }
    install(&args.iface, &opts, &conf, &store, Guard::On)?;
    Ok(Look::Replanned)
}

/// Records the watcher's account, while the interface has records at all (never making their
/// directory again after a `down`).
fn save(iface: &IfaceName, state: &Watcher) {
    let result = Store::open().and_then(|s| match s.record(iface)? {
        Some(_) => s.write_named(&watcher::file(iface), &state.render()),
        None => Ok(()),
    });
    if let Err(e) = result {
        crate::errln!("wgfw-hook: {iface}: warning: cannot record the watcher's state: {e}");
    }
}

fn finish(iface: &IfaceName, why: &str) -> Result<()> {
    crate::errln!("wgfw-hook: {iface}: watcher exits: {why}");
    if let Ok(store) = Store::open()
        && running(&store, iface)
            .ok()
            .flatten()
            .is_some_and(|w| w.pid == std::process::id())
    {
        let _ = store.write_named(&watcher::file(iface), "");
    }
    Ok(())
}

/// The interface went without `down` (wireguard-go killed, the link deleted, a later PostUp
/// line failed): a server's firewall goes as `down` takes it; a client's kill switch stays.
fn gone_without_down(iface: &IfaceName, role: Role) -> Result<Ended> {
    if role == Role::Client {
        finish(iface, "the interface is gone; the kill switch stays")?;
        return Ok(Ended::Gone);
    }
    crate::errln!("wgfw-hook: {iface}: the interface is gone without down: removing its firewall");
    let result = Store::open().and_then(|store| down::remove(&store, iface));
    let _ = finish(iface, "the interface is gone");
    result.map(|()| Ended::Gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_that_come_too_fast_earn_a_growing_wait() {
        let mut p = Pacer::default();
        let s = Duration::from_secs;
        for i in 0..4 {
            assert_eq!(p.repaired(s(3 * i)), None);
            // The rest of a burst's repairs count as one.
            assert_eq!(p.repaired(s(3 * i) + Duration::from_millis(300)), None);
        }
        assert_eq!(p.repaired(s(12)), Some(FIRST_HOLD_OFF));
        assert_eq!(p.repaired(s(22)), Some(FIRST_HOLD_OFF * 2));
        assert_eq!(p.repaired(s(42)), Some(FIRST_HOLD_OFF * 4));
        // Quiet for longer than the window: the count starts again.
        assert_eq!(p.repaired(s(200)), None);
        let mut p = Pacer::default();
        let mut wait = Duration::ZERO;
        for i in 0..40 {
            wait = p.repaired(s(3 * i)).unwrap_or(wait);
        }
        assert_eq!(wait, MAX_HOLD_OFF);
    }

    /// A peer added right after a repair is taken in by the look that follows it, before any
    /// poll sees it; removed again, the poll's answer is the one it had before, but not what
    /// the firewall holds: it is a change (it was missed, the removed peer's reach kept).
    #[test]
    fn a_poll_is_compared_with_the_peers_the_firewall_was_planned_with() {
        let fake = crate::system::fake::Fake::new(&["wg"], Some(1420));
        let _os = fake.install();
        let iface: IfaceName = "wg0".parse().unwrap();
        let a = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        let k = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
        let dump = |peers: &[(&str, &str)]| {
            let mut d = format!("{a}\t{a}\t51820\toff\n");
            for (key, net) in peers {
                d.push_str(&format!("{key}\t(none)\t(none)\t{net}\t0\t0\t0\toff\n"));
            }
            d
        };
        let net = |n: &str| vec![n.parse::<ipnet::IpNet>().unwrap()];
        fake.answer("wg show wg0 dump", &dump(&[(a, "10.66.0.2/32")]));
        let asks = Asks {
            peers: true,
            port: false,
        };
        let mut p = LivePoll::new(&iface, asks).expect("peers asked");
        assert!(!p.changed(&iface).peers, "nothing changed yet");
        p.planned_with(&[
            (a.to_string(), net("10.66.0.2/32")),
            (k.to_string(), net("10.77.200.1/32")),
        ]);
        assert!(
            p.changed(&iface).peers,
            "the firewall holds k, the interface not"
        );
        assert!(!p.changed(&iface).peers, "and then nothing more");
    }
}
