//! Runs the few programs the hook needs, found in a fixed list of system directories with a
//! fixed environment (`os`): nothing in the caller's environment (PATH, LD_PRELOAD) can change
//! which program runs or how. No shell is ever involved. Each program has a deadline and a cap
//! on what it prints (`os::PROGRAM_DEADLINE`, `os::OUTPUT_CAP`): a hung `nft` fails its step,
//! which is undone, instead of holding the lock for good.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub(crate) use super::os::Output;
use super::os::{Job, os};

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

fn locate(program: &str) -> Result<PathBuf> {
    find(program).ok_or_else(|| {
        Error::system(format!(
            "{program} is not installed (looked in {})",
            DIRS.join(", ")
        ))
    })
}

/// Runs `program args`, feeding `input` to its standard input.
pub(crate) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<Output> {
    let path = locate(program)?;
    log::debug!("running {} {}", path.display(), args.join(" "));
    let started = std::time::Instant::now();
    let out = os()
        .run(&path, args, input)
        .map_err(|e| ran_not(program, &path, e))?;
    log::debug!(
        "{program} done after {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(out)
}

/// Keeps `count` of `program args` started and waiting in this process from the next
/// `start_waiting` on (`system::warm`): the watcher's repairs run them.
pub(crate) fn keep_waiting(program: &str, args: &[&str], count: usize) {
    if let Some(path) = find(program) {
        super::warm::keep(&path, args, count);
    }
}

/// Starts what `keep_waiting` asked for and is not waiting.
pub(crate) fn start_waiting() {
    super::warm::refill();
}

/// `run` for several programs at once (`Os::run_together`): results in the order given.
pub(crate) fn run_together(jobs: &[(&str, &[&str], Option<&str>)]) -> Vec<Result<Output>> {
    let paths: Vec<Result<PathBuf>> = jobs.iter().map(|(program, ..)| locate(program)).collect();
    let runnable: Vec<Job<'_>> = jobs
        .iter()
        .zip(&paths)
        .filter_map(|((_, args, input), path)| {
            Some(Job {
                path: path.as_ref().ok()?,
                args,
                input: *input,
            })
        })
        .collect();
    for j in &runnable {
        log::debug!(
            "running {} {} (with others)",
            j.path.display(),
            j.args.join(" ")
        );
    }
    let started = std::time::Instant::now();
    let mut done = os().run_together(&runnable).into_iter();
    log::debug!(
        "{} programs done after {:.1} ms",
        runnable.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    jobs.iter()
        .zip(paths)
        .map(|((program, ..), path)| {
            let path = path?;
            let out = done
                .next()
                .unwrap_or_else(|| Err(std::io::Error::other("not run")));
            out.map_err(|e| ran_not(program, &path, e))
        })
        .collect()
}

/// A program that could not be run, or was killed: one line.
fn ran_not(program: &str, path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        // Killed at its deadline, or printing without end (`os::PROGRAM_DEADLINE`).
        ErrorKind::TimedOut | ErrorKind::FileTooLarge => Error::system(format!("{program} {e}")),
        _ => Error::system(format!("cannot run {}: {e}", path.display())),
    }
}

/// One transaction of `transactions`.
pub(crate) struct Script<'a> {
    pub(crate) program: &'a str,
    pub(crate) args: &'a [&'a str],
    pub(crate) script: &'a str,
    /// What it changes, for the error: "the IPv4 rules".
    pub(crate) what: &'a str,
}

/// `transaction` for several programs at once, each its own all or nothing; results in order.
pub(crate) fn transactions(scripts: &[Script<'_>]) -> Vec<Result<()>> {
    for s in scripts {
        crate::errln!("[#] {} {}", s.program, s.args.join(" "));
        log::debug!("{} script:\n{}", s.program, s.script);
    }
    let jobs: Vec<(&str, &[&str], Option<&str>)> = scripts
        .iter()
        .map(|s| (s.program, s.args, Some(s.script)))
        .collect();
    scripts
        .iter()
        .zip(run_together(&jobs))
        .map(|(s, out)| refused(s.program, s.what, out?))
        .collect()
}

fn refused(program: &str, what: &str, out: Output) -> Result<()> {
    if out.ok {
        Ok(())
    } else {
        Err(Error::system(format!(
            "{program} refused {what}: {}",
            first_line(&out.stderr)
        )))
    }
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
    refused(program, what, run(program, args, Some(script))?)
}
