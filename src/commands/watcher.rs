//! The watcher as a process: its account of itself beside the interface's records (`status`
//! reads it), starting it detached from `up`, and stopping it from `down`. The watching itself
//! is `watch`'s.

use std::time::{Duration, Instant};

use crate::config::cli::{FLAGS, Options};
use crate::config::types::IfaceName;
use crate::error::Result;
use crate::system::events;
use crate::system::state::Store;
use crate::system::sys;

/// How long `down` waits for a watcher to finish what it is doing and go.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// The file beside the interface's records that says which watcher runs and how it fares.
pub(crate) fn file(iface: &IfaceName) -> String {
    format!("{iface}.watch")
}

/// A watcher's account of itself, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Watcher {
    pub pid: u32,
    pub since: u64,
    pub repairs: u64,
    /// The last repair: when (seconds since the epoch) and why.
    pub last: Option<(u64, String)>,
    pub error: Option<String>,
    /// Set while it holds off a fight: until when, and what undid the repair.
    pub holding_off: Option<(u64, String)>,
    /// A client's fight, which is never held off: until when it is said, and what undid it.
    pub fighting: Option<(u64, String)>,
}

impl Watcher {
    pub(crate) fn render(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        let mut s = format!(
            "pid={}\nsince={}\nrepairs={}\n",
            self.pid, self.since, self.repairs
        );
        if let Some((t, why)) = &self.last {
            s.push_str(&format!("last={t} {}\n", one_line(why)));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!("error={}\n", one_line(e)));
        }
        if let Some((t, why)) = &self.holding_off {
            s.push_str(&format!("holding_off={t} {}\n", one_line(why)));
        }
        if let Some((t, why)) = &self.fighting {
            s.push_str(&format!("fighting={t} {}\n", one_line(why)));
        }
        s
    }

    pub(crate) fn parse(text: &str) -> Option<Watcher> {
        let mut w = Watcher::default();
        let timed = |v: &str| {
            let (t, why) = v.split_once(' ').unwrap_or((v, ""));
            Some((t.parse().ok()?, why.to_string()))
        };
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "pid" => w.pid = v.parse().ok()?,
                "since" => w.since = v.parse().ok()?,
                "repairs" => w.repairs = v.parse().ok()?,
                "last" => w.last = timed(v),
                "error" => w.error = Some(v.to_string()),
                "holding_off" => w.holding_off = timed(v),
                "fighting" => w.fighting = timed(v),
                _ => {}
            }
        }
        (w.pid > 0).then_some(w)
    }
}

/// The watcher recorded for `iface`, if its process still runs (a killed one leaves its file).
pub(crate) fn running(store: &Store, iface: &IfaceName) -> Result<Option<Watcher>> {
    let Some(w) = store
        .read_named(&file(iface))?
        .and_then(|t| Watcher::parse(&t))
    else {
        return Ok(None);
    };
    Ok(is_watcher(w.pid, iface).then_some(w))
}

/// Whether process `pid` is `wgfw-hook watch IFACE` (a pid is reused once its process is
/// gone). By its arguments: the program may have any name or path.
fn is_watcher(pid: u32, iface: &IfaceName) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&&b"watch"[..]) && args.get(2) == Some(&iface.as_str().as_bytes())
}

/// Starts the interface's watcher, detached, unless one runs (it follows the new records by
/// itself). Under systemd (wg-quick@.service) it stays in the unit's cgroup, so it shows in the
/// unit's status, and writes to the unit's journal; elsewhere it writes to syslog. Nothing of
/// wg-quick's stays open in it: wg-quick, and whoever reads its output, never waits for it. A
/// watcher that cannot start is a warning: the firewall is installed all the same.
/// `cli` is what `up` was given on its command line (the settings file is read by the watcher
/// itself), so that what it installs again is what `up` installed.
pub(crate) fn start(iface: &IfaceName, cli: &Options) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    if let Ok(Some(w)) = Store::open().and_then(|s| running(&s, iface)) {
        log::info!("{iface}: its watcher runs already (pid {})", w.pid);
        return;
    }
    let journal = under_journal();
    let mut cmd = match std::env::current_exe() {
        Ok(exe) => Command::new(exe),
        Err(e) => {
            crate::errln!("wgfw-hook: {iface}: warning: no watcher: {e}");
            return;
        }
    };
    cmd.arg("watch").arg(iface.as_str()).args(arguments(cli));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if journal {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .process_group(0);
    match cmd.spawn() {
        Ok(child) => crate::errln!(
            "[#] wgfw-hook watch {iface} (pid {}, in the background)",
            child.id()
        ),
        Err(e) => crate::errln!("wgfw-hook: {iface}: warning: no watcher: {e}"),
    }
}

/// Options as command-line arguments: `--config PATH`, then each option in the settings file's
/// syntax as `--name value` (a switch as `--name`).
fn arguments(cli: &Options) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    if let Some(c) = &cli.config {
        out.push("--config".into());
        out.push(c.into());
    }
    for line in cli.to_settings().lines() {
        let Some((name, value)) = line.split_once(" = ") else {
            continue;
        };
        let switch = FLAGS.iter().any(|f| f.long == name && f.value.is_none());
        out.push(format!("--{name}").into());
        if !switch {
            out.push(value.into());
        }
    }
    out
}

/// Whether standard error is systemd's journal (the stream it names in JOURNAL_STREAM).
fn under_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    want.to_str() == Some(&format!("{}:{}", meta.dev(), meta.ino()))
}

/// Stops the interface's watcher, if one runs, and waits until it is gone (`down` and
/// `release` call it before they remove anything: a watcher would put it back).
pub(crate) fn stop(iface: &IfaceName) {
    let pid = match Store::open().and_then(|s| running(&s, iface)) {
        Ok(Some(w)) => w.pid,
        _ => return,
    };
    if sys::signal(pid, events::SIGTERM).is_err() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < STOP_WAIT && is_watcher(pid, iface) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_watcher(pid, iface) {
        crate::errln!(
            "wgfw-hook: {iface}: warning: its watcher (pid {pid}) did not stop within {} s",
            STOP_WAIT.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_gets_ups_own_options() {
        let args = crate::config::cli::parse(
            [
                "up",
                "wg0",
                "--config",
                "/etc/x y.conf",
                "--role",
                "client",
                "--allow-lan",
                "--allow",
                "tcp/443",
                "--allow",
                "udp/53",
                "--no-watch",
            ]
            .map(std::ffi::OsString::from),
        )
        .unwrap();
        let crate::config::cli::Invocation::Run(args) = args else {
            panic!("a run");
        };
        let mut argv = vec!["watch".into(), "wg0".into()];
        argv.extend(arguments(&args.options));
        let again = crate::config::cli::parse(argv).unwrap();
        let crate::config::cli::Invocation::Run(again) = again else {
            panic!("a run");
        };
        assert_eq!(again.options, args.options);
    }

    #[test]
    fn the_account_round_trips_and_refuses_garbage() {
        let w = Watcher {
            pid: 42,
            since: 1_700_000_000,
            repairs: 3,
            last: Some((1_700_000_100, "the ruleset changed\n(generation 9)".into())),
            error: Some("nft: refused".into()),
            holding_off: Some((1_700_000_200, "SIGHUP".into())),
            fighting: Some((1_700_000_300, "the ruleset changed".into())),
        };
        let back = Watcher::parse(&w.render()).unwrap();
        assert_eq!(back.last.unwrap().1, "the ruleset changed (generation 9)");
        assert_eq!((back.pid, back.repairs), (42, 3));
        assert_eq!(back.fighting, w.fighting);
        assert_eq!(Watcher::parse(""), None);
        assert_eq!(Watcher::parse("pid=x\n"), None);
        assert_eq!(Watcher::parse("garbage"), None);
    }
}
