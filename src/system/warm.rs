//! Programs started before they are needed, for the watcher: an `nft -f -` and an
//! `iptables-nft-restore` open their netlink socket as they start, before they read their
//! script. After a commit that deletes something (every wipe), the kernel makes a netlink
//! socket opened anew wait until the committing program is done, 8-30 ms here
//! (`benches/commits.py`, "floor"); one opened before the wipe answers at once. So a repair
//! that runs programs started beforehand skips that wait, and their start too.
//!
//! A waiting program holds its standard input open and does nothing else (about 0.4 MiB of
//! memory of its own). It runs its script when given one; when the watcher goes, even killed,
//! its input ends empty and it exits having done nothing. iptables-legacy's restores are never
//! kept waiting: they would hold the xtables lock that every other iptables program needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// One program kept waiting: what it runs, and the process (None once used or gone).
struct Slot {
    path: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Slot {
    fn is(&self, path: &Path, args: &[&str]) -> bool {
        self.path == path
            && self
                .args
                .iter()
                .map(String::as_str)
                .eq(args.iter().copied())
    }
}

static SLOTS: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// Keeps `count` of `path args` waiting from now on (in this process; started by `refill`);
/// asked again, as many as asked, not more.
pub(crate) fn keep(path: &Path, args: &[&str], count: usize) {
    let Ok(mut slots) = SLOTS.lock() else { return };
    let kept = slots.iter().filter(|s| s.is(path, args)).count();
    for _ in kept..count {
        slots.push(Slot {
            path: path.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        });
    }
}

/// Starts the programs that are not waiting (used, or ended by someone else). Called when
/// nothing is being repaired: a start costs a millisecond or two of CPU.
pub(crate) fn refill() {
    let Ok(mut slots) = SLOTS.lock() else { return };
    for s in slots.iter_mut() {
        if let Some(c) = &mut s.child
            && !matches!(c.try_wait(), Ok(None))
        {
            s.child = None;
        }
        if s.child.is_none() {
            let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
            match command(&s.path, &args, Stdio::piped()).spawn() {
                Ok(c) => s.child = Some(c),
                Err(e) => log::debug!("cannot keep {} waiting: {e}", s.path.display()),
            }
        }
    }
}

/// A waiting `path args`, still running, taken out of its slot; None where there is none.
pub(crate) fn take(path: &Path, args: &[&str]) -> Option<Child> {
    let mut slots = SLOTS.lock().ok()?;
    slots.iter_mut().filter(|s| s.is(path, args)).find_map(|s| {
        let mut c = s.child.take()?;
        match c.try_wait() {
            Ok(None) => Some(c),
            // Ended by someone else: reaped, and the slot refilled later.
            _ => None,
        }
    })
}

/// How `nft ARGS` runs on a waiting `nft -f -`: ARGS as its script, where they are plain words
/// (a command such as `list chains`; no option, nothing nft's script parser would read
/// otherwise than its command line does).
pub(crate) fn nft_script(args: &[&str]) -> Option<String> {
    let plain = |a: &&str| {
        !a.is_empty()
            && !a.starts_with('-')
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    };
    (!args.is_empty() && args.iter().all(plain)).then(|| args.join(" ") + "\n")
}

/// `Command` for a program that may be kept waiting (`os::run_bounded` uses the same).
pub(crate) fn command(path: &Path, args: &[&str], stdin: Stdio) -> Command {
    let mut c = Command::new(path);
    c.args(args)
        .env_clear()
        .env("PATH", super::os::SAFE_PATH)
        .env("LC_ALL", "C")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_commands_become_a_script() {
        assert_eq!(
            nft_script(&["list", "chains"]).as_deref(),
            Some("list chains\n")
        );
        assert_eq!(
            nft_script(&["list", "table", "inet", "wgfw"]).as_deref(),
            Some("list table inet wgfw\n")
        );
        assert_eq!(nft_script(&["-a", "list", "chains"]), None);
        assert_eq!(nft_script(&["-f", "-"]), None);
        assert_eq!(nft_script(&["list", "chain", "inet", "x y", "c"]), None);
        assert_eq!(nft_script(&["list", "chain", "inet", "x;flush", "c"]), None);
        assert_eq!(nft_script(&["list", ""]), None);
        assert_eq!(nft_script(&[]), None);
    }

    #[test]
    fn a_program_kept_waiting_is_taken_once_and_started_again() {
        let sh = Path::new("/bin/sh");
        let args = ["-c", "cat >/dev/null; echo ran"];
        keep(sh, &args, 1);
        keep(sh, &args, 1);
        assert_eq!(SLOTS.lock().unwrap().len(), 1, "kept once");
        assert!(take(sh, &args).is_none(), "nothing waits before refill");
        refill();
        let mut c = take(sh, &args).expect("one waits after refill");
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
        assert!(take(sh, &args).is_none(), "taken once");
        refill();
        let mut c = take(sh, &args).expect("started again");
        drop(c.stdin.take());
        assert!(c.wait().unwrap().success());
        // Another program's slot is not this one's.
        assert!(take(sh, &["-c", "true"]).is_none());
        SLOTS.lock().unwrap().clear();
    }
}
