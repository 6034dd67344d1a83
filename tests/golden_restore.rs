//! Every ruleset in the golden plans must be accepted by the real `iptables-restore --test` and
//! `ip6tables-restore --test`, with both iptables-nft and iptables-legacy, and every nft script
//! by `nft -c`. Each check runs in a
//! network namespace of its own (`unshare -n`), so the host's rules are never involved.
//! Needs root and the iptables packages: the README's test command installs them; a missing
//! prerequisite fails this test rather than skipping it.

mod common;

use std::path::Path;

use common::run_with_input;

fn scripts(plan: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = plan.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("[#] ") else {
            continue;
        };
        let Some(prog) = rest
            .strip_suffix(" --noflush <<'EOF'")
            .or_else(|| rest.strip_suffix(" <<'EOF'"))
        else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "EOF").collect();
        // The random port of a config without ListenPort is only known at up time.
        out.push((
            prog.to_string(),
            body.join("\n").replace("LISTEN-PORT", "51820") + "\n",
        ));
    }
    out
}

/// Runs a checking command (`iptables-restore --test`, `nft -c`) on a script, in a network
/// namespace of its own so that the host's rules are never involved.
fn check(args: &[&str], script: &str) -> Result<(), String> {
    let mut all = vec!["-n"];
    all.extend(args);
    let out = run_with_input("unshare", &all, script)
        .map_err(|e| format!("cannot run unshare -n {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn golden_rulesets_pass_the_real_restore_test() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(
        uid, "0",
        "this test needs root (run the README's test command as root)"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "plan"))
    {
        let plan = std::fs::read_to_string(path).unwrap();
        let found = scripts(&plan);
        assert!(!found.is_empty(), "{}: no restore script", path.display());
        for (prog, script) in found {
            if prog == "nft -f -" {
                match check(&["nft", "-c", "-f", "-"], &script) {
                    Ok(()) => checked += 1,
                    Err(e) => failures.push(format!("{}: nft -c: {e}", path.display())),
                }
                continue;
            }
            // Check the script with both variants, whichever the plan named.
            let base = prog.replace("-legacy-", "-").replace("-nft-", "-");
            for variant in ["nft", "legacy"] {
                let p = base.replace("-restore", &format!("-{variant}-restore"));
                match check(&[&p, "--test", "--noflush"], &script) {
                    Ok(()) => checked += 1,
                    Err(e) => failures.push(format!("{}: {p}: {e}", path.display())),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "restore --test refused:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 28, "only {checked} scripts checked");
    println!("{checked} golden scripts accepted by iptables-restore --test");
}
