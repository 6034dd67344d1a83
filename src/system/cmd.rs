//! Runs the few programs the hook needs, found in a fixed list of system directories with a
//! fixed environment: nothing in the caller's environment (PATH, LD_PRELOAD) can change which
//! program runs or how. No shell is ever involved.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

const DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
];
const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn find(name: &str) -> Option<PathBuf> {
    DIRS.iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

pub(crate) struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
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
    let mut child = Command::new(&path)
        .args(args)
        .env_clear()
        .env("PATH", SAFE_PATH)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::system(format!("cannot run {}: {e}", path.display())))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A program that exits early closes its end; its exit status says why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::system(format!("cannot run {}: {e}", path.display())))?;
    log::debug!(
        "{program} {} after {:.1} ms",
        out.status,
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(Output {
        ok: out.status.success(),
        stdout: text(out.stdout),
        stderr: text(out.stderr),
    })
}

/// A program's output as text, without a copy unless it is not UTF-8 (an `iptables-save` of a
/// large host is megabytes).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
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
    eprintln!("[#] {program} {}{why}", args.join(" "));
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
