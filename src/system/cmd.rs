//! Runs the few programs the hook needs, found in a fixed list of system directories with a
//! fixed environment (`os`): nothing in the caller's environment (PATH, LD_PRELOAD) can change
//! which program runs or how. No shell is ever involved. Each program has a deadline and a cap
//! on what it prints (`os::PROGRAM_DEADLINE`, `os::OUTPUT_CAP`): a hung `nft` fails its step,
//! which is undone, instead of holding the lock for good.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) use super::os::Output;
use super::os::os;

const DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];

pub(crate) fn find(name: &str) -> Option<PathBuf> {
    let os = os();
    DIRS.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| os.is_file(p))
}

/// Runs `program args`, feeding `input` to its standard input.
pub(crate) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<Output> {
    let path = find(program).ok_or_else(|| {
        Error::system(format!(
            "{program} is not installed (looked in {})",
            DIRS.join(", ")
        ))
    })?;
    log::debug!("running {} {}", path.display(), args.join(" "));
    let started = std::time::Instant::now();
    let out = os().run(&path, args, input).map_err(|e| match e.kind() {
        // Killed at its deadline, or printing without end (`os::PROGRAM_DEADLINE`).
        ErrorKind::TimedOut | ErrorKind::FileTooLarge => Error::system(format!("{program} {e}")),
        _ => Error::system(format!("cannot run {}: {e}", path.display())),
    })?;
    log::debug!(
        "{program} done after {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(out)
}

/// The first line of a program's complaint that says something, for one-line errors.
pub(crate) fn first_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Try `"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Feeds `script` to a program that applies it as one transaction (a restore, `nft -f -`),
/// printing the command as wg-quick prints its own; `why`, when given, follows in parentheses.
/// `what` names the script's content in the error ("the IPv4 rules").
pub(crate) fn transaction(
    program: &str,
    args: &[&str],
    script: &str,
    what: &str,
    why: Option<&str>,
) -> Result<()> {
    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
    crate::errln!("[#] {program} {}{why}", args.join(" "));
    log::debug!("{program} script:\n{script}");
    let out = run(program, args, Some(script))?;
    if out.ok {
        Ok(())
    } else {
        Err(Error::system(format!(
            "{program} refused {what}: {}",
            first_line(&out.stderr)
        )))
    }
}
