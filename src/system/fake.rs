//! A recording fake of the system (`os::Os`) for unit tests: programs answer what the test
//! scripted (by default: success, no output), files are a map, and every program run and every
//! write is logged in order, so a test can check the order of the steps and of their undo.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::config::types::IfaceName;

use super::os::{Os, Output, Replaced, replace};

/// One effect, as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    /// A program (by name) with its arguments, and what it was fed.
    Run { line: String, input: String },
    /// A write below /proc/sys, as `key=value` (dotted below /proc/sys/).
    Sysctl(String),
}

impl Call {
    /// The call in one short line: `nft -f -`, `sysctl net/ipv4/ip_forward=1`.
    pub(crate) fn line(&self) -> String {
        match self {
            Call::Run { line, .. } => line.clone(),
            Call::Sysctl(kv) => format!("sysctl {kv}"),
        }
    }
}

#[derive(Default)]
pub(crate) struct Fake {
    log: RefCell<Vec<Call>>,
    files: RefCell<BTreeMap<PathBuf, String>>,
    /// Command line (`nft list chains`) to what it prints; a missing one succeeds silently.
    answers: RefCell<BTreeMap<String, Output>>,
    /// Fed scripts containing this text are refused.
    refuse_scripts: RefCell<Vec<String>>,
    /// Sysctl writes (`key=value`) that fail.
    refuse_writes: RefCell<Vec<String>>,
    programs: Vec<String>,
    mtu: Option<u32>,
    /// The nftables ruleset's generation, raised by each `nft -f` that goes through; `None`:
    /// not known (every change is a full one).
    generation: std::cell::Cell<Option<u32>>,
    /// The interfaces whose socket was asked for its peers, in order.
    asked: RefCell<Vec<String>>,
    /// A userspace WireGuard that does not answer (else: the kernel's, without a socket).
    silent_daemon: std::cell::Cell<bool>,
}

impl Fake {
    /// A host with these programs installed and the interfaces' MTU.
    pub(crate) fn new(programs: &[&str], mtu: Option<u32>) -> Rc<Fake> {
        Rc::new(Fake {
            programs: programs.iter().map(|p| p.to_string()).collect(),
            mtu,
            ..Fake::default()
        })
    }

    /// Puts the fake in the system's place for this thread.
    pub(crate) fn install(self: &Rc<Fake>) -> Replaced {
        replace(self.clone())
    }

    pub(crate) fn file(&self, path: &str, text: &str) {
        self.files
            .borrow_mut()
            .insert(PathBuf::from(path), text.to_string());
    }

    /// A sysctl's value, by its path below /proc/sys.
    pub(crate) fn sysctl(&self, key: &str, value: &str) {
        self.file(&format!("/proc/sys/{key}"), &format!("{value}\n"));
    }

    pub(crate) fn sysctls(&self) -> BTreeMap<PathBuf, String> {
        self.files
            .borrow()
            .iter()
            .filter(|(p, _)| p.starts_with("/proc/sys"))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn answer(&self, line: &str, stdout: &str) {
        let out = Output {
            ok: true,
            stdout: stdout.to_string(),
            stderr: String::new(),
        };
        self.answers.borrow_mut().insert(line.to_string(), out);
    }

    pub(crate) fn refuse_script(&self, containing: &str) {
        self.refuse_scripts
            .borrow_mut()
            .push(containing.to_string());
    }

    pub(crate) fn refuse_write(&self, key_value: &str) {
        self.refuse_writes.borrow_mut().push(key_value.to_string());
    }

    /// Sets the ruleset's generation, as another program's commit would.
    pub(crate) fn set_generation(&self, g: u32) {
        self.generation.set(Some(g));
    }

    /// Makes the interfaces' WireGuard a userspace daemon that does not answer.
    pub(crate) fn silence_daemon(&self) {
        self.silent_daemon.set(true);
    }

    /// The interfaces whose socket was asked for its peers since the last call.
    pub(crate) fn asked(&self) -> Vec<String> {
        std::mem::take(&mut self.asked.borrow_mut())
    }

    /// The calls since the last `take`.
    pub(crate) fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

impl Os for Fake {
    fn run(&self, path: &Path, args: &[&str], input: Option<&str>) -> io::Result<Output> {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let line = std::iter::once(name.as_str())
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let input = input.unwrap_or_default().to_string();
        let refused = self
            .refuse_scripts
            .borrow()
            .iter()
            .any(|r| !input.is_empty() && input.contains(r.as_str()));
        self.log.borrow_mut().push(Call::Run {
            line: line.clone(),
            input,
        });
        if refused {
            return Ok(Output {
                ok: false,
                stdout: String::new(),
                stderr: "Error: refused by the test".into(),
            });
        }
        if line == "nft -f -" {
            self.generation.set(self.generation.get().map(|g| g + 1));
        }
        Ok(match self.answers.borrow().get(&line) {
            Some(o) => Output {
                ok: o.ok,
                stdout: o.stdout.clone(),
                stderr: o.stderr.clone(),
            },
            None => Output {
                ok: true,
                stdout: String::new(),
                stderr: String::new(),
            },
        })
    }

    fn is_file(&self, path: &Path) -> bool {
        path.file_name()
            .is_some_and(|n| self.programs.iter().any(|p| *p == *n.to_string_lossy()))
            && path.starts_with("/usr/sbin")
    }

    fn exists(&self, path: &Path) -> bool {
        self.files.borrow().keys().any(|p| p.starts_with(path))
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .borrow()
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn write(&self, path: &Path, text: &str) -> io::Result<()> {
        let key = path
            .strip_prefix("/proc/sys")
            .map_or_else(|_| path.display().to_string(), |k| k.display().to_string());
        let kv = format!("{key}={}", text.trim());
        self.log.borrow_mut().push(Call::Sysctl(kv.clone()));
        if self.refuse_writes.borrow().contains(&kv) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        if !self.files.borrow().contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        self.file(&path.display().to_string(), text);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .borrow()
            .keys()
            .filter_map(|p| p.strip_prefix(dir).ok()?.iter().next())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.dedup();
        names
    }

    fn nft_generation(&self) -> Option<u32> {
        self.generation.get()
    }

    fn mtu(&self, _iface: &IfaceName) -> Option<u32> {
        self.mtu
    }

    /// Like the kernel's WireGuard: the peers come from the scripted `wg show`; or a daemon
    /// that does not answer.
    fn uapi_ask(&self, iface: &IfaceName) -> Option<crate::system::uapi::Asked> {
        self.asked.borrow_mut().push(iface.to_string());
        let silent = crate::system::uapi::Asked::unanswered("did not answer within 5 s");
        self.silent_daemon.get().then_some(silent)
    }
}
