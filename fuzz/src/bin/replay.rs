//! `replay TARGET PATH...`: runs every input (file, or every file of a directory) through the
//! target's harness, and every distinct script the accepted ones render through the real
//! checkers: `iptables-restore --test` and `ip6tables-restore --test` of both iptables-nft and
//! iptables-legacy, and `nft -c -f`. A refused script is a bug: the reader should have refused
//! the input. Exits 1 on any panic or refusal.
//!
//! The checkers program nothing, but must still never see the host's rules: run this in a
//! network namespace of its own (`unshare -n`); it refuses to run in the host's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use wgfw_fuzz::Script;

/// A script to check, and the input that rendered it.
type Job<'a> = (&'a str, &'a PathBuf);

/// Scripts per run of a checker.
const BATCH: usize = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, paths)) = args.split_first() else {
        eprintln!("usage: replay wgconf|networkd|settings|cli PATH...");
        return ExitCode::from(2);
    };
    let harness: fn(&[u8]) -> Vec<Script> = match target.as_str() {
        "wgconf" => wgfw_fuzz::wgconf,
        "networkd" => wgfw_fuzz::networkd,
        "settings" => wgfw_fuzz::settings,
        "cli" => wgfw_fuzz::cli,
        _ => {
            eprintln!("replay: unknown target {target:?}: use wgconf, networkd, settings or cli");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = in_own_netns() {
        eprintln!("replay: {e}");
        return ExitCode::from(2);
    }

    let mut inputs = Vec::new();
    for p in paths {
        if let Err(e) = collect(Path::new(p), &mut inputs) {
            eprintln!("replay: {p}: {e}");
            return ExitCode::from(2);
        }
    }
    // Each distinct script once, with the first input that rendered it.
    let mut scripts: BTreeMap<Script, PathBuf> = BTreeMap::new();
    let mut accepted = 0;
    for path in &inputs {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("replay: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let out = match std::panic::catch_unwind(|| harness(&data)) {
            Ok(out) => out,
            Err(_) => {
                eprintln!("replay: {target}: {} panics (see above)", path.display());
                return ExitCode::FAILURE;
            }
        };
        accepted += usize::from(!out.is_empty());
        for s in out {
            scripts.entry(s).or_insert_with(|| path.clone());
        }
    }

    // Each checker takes the scripts in batches (one restore script may hold many tables'
    // transactions, one nft script many commands; a test commits nothing, so they do not
    // interfere); a batch refused is checked again script by script, to name the culprit.
    let mut by_checker: BTreeMap<Vec<String>, Vec<Job>> = BTreeMap::new();
    for (script, input) in &scripts {
        for (argv, text) in checkers(script) {
            by_checker.entry(argv).or_default().push((text, input));
        }
    }
    let batches: Vec<(&Vec<String>, &[Job])> = by_checker
        .iter()
        .flat_map(|(argv, all)| all.chunks(BATCH).map(move |c| (argv, c)))
        .collect();
    let checks: usize = by_checker.values().map(Vec::len).sum();
    let next = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    // The checks are separate processes: run as many at once as there are CPUs.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some((argv, batch)) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let all: String = batch.iter().map(|(t, _)| *t).collect();
                    if check(argv, &all).is_ok() {
                        continue;
                    }
                    for (text, input) in *batch {
                        if let Err(e) = check(argv, text) {
                            refused.fetch_add(1, Ordering::Relaxed);
                            eprintln!(
                                "replay: {target}: {} refuses what {} renders: {e}\n--- script:\n{text}",
                                argv.join(" "),
                                input.display()
                            );
                        }
                    }
                }
            });
        }
    });
    let refused = refused.into_inner();
    println!(
        "replay {target}: {} inputs, {accepted} accepted, {} distinct scripts, {checks} checks, {refused} refused",
        inputs.len(),
        scripts.len()
    );
    if refused > 0 || checks == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The commands that must accept a script.
fn checkers(script: &Script) -> Vec<(Vec<String>, &str)> {
    match script {
        Script::Iptables(family, text) => {
            let ip = match family {
                wgfw_hook::plan::Family::V4 => "iptables",
                wgfw_hook::plan::Family::V6 => "ip6tables",
            };
            ["nft", "legacy"]
                .iter()
                .map(|v| {
                    let argv = [
                        &format!("{ip}-{v}-restore"),
                        "--test",
                        "--noflush",
                        "--wait",
                        "10",
                    ];
                    (argv.map(String::from).to_vec(), text.as_str())
                })
                .collect()
        }
        Script::Nft(text) => vec![(
            ["nft", "-c", "-f", "-"].map(String::from).to_vec(),
            text.as_str(),
        )],
    }
}

fn check(argv: &[String], script: &str) -> Result<(), String> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {} ({e}): install iptables and nftables",
                argv[0]
            )
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    // A checker that quits early closes its stdin; its exit status tells why.
    let _ = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        out.extend(entries.into_iter().filter(|p| p.is_file()));
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// The checkers must not see the host's rules: this process must be in a network namespace
/// of its own, which has no interface but `lo` (/proc/self/net follows the namespace).
fn in_own_netns() -> Result<(), String> {
    let dev = std::fs::read_to_string("/proc/self/net/dev")
        .map_err(|e| format!("/proc/self/net/dev: {e}"))?;
    let others: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim()))
        .filter(|n| *n != "lo")
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "this network namespace has interfaces ({}): run me in one of my own, unshare -n replay ...",
            others.join(", ")
        ));
    }
    Ok(())
}
