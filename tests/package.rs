//! The Debian package: built from the source tree with `dpkg-buildpackage`, checked by lintian
//! (no errors), installed on this machine, run (`wgfw-hook --version`, `man -w wgfw-hook`), and
//! removed again, leaving nothing behind. Needs root, debhelper and lintian (the README's test
//! command installs them); a missing prerequisite fails the test.

mod common;

use std::path::Path;

use common::{PurgeDeb, Scratch, build_deb, deb_installed, run, text};

#[test]
fn the_deb_builds_installs_runs_and_goes() {
    assert!(
        !deb_installed(),
        "wgfw-hook is installed on this machine already: this test would replace it"
    );
    let work = Scratch::new("deb");
    let work = &work.0;
    let deb = build_deb(work);
    let deb = deb.to_str().unwrap();

    let lint = run("lintian", &[deb], work);
    let errors: Vec<String> = text(&lint.stdout)
        .lines()
        .filter(|l| l.starts_with("E:"))
        .map(String::from)
        .collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));

    let contents = text(&run("dpkg", &["-c", deb], work).stdout);
    for f in [
        "./usr/bin/wgfw-hook",
        "./usr/share/man/man8/wgfw-hook.8.gz",
        "./usr/share/bash-completion/completions/wgfw-hook",
        "./usr/share/zsh/vendor-completions/_wgfw-hook",
        "./usr/share/fish/vendor_completions.d/wgfw-hook.fish",
        "./usr/lib/systemd/system/wgfw-hook-check@.timer",
        "./usr/lib/systemd/system/wgfw-hook@.service",
        "./usr/lib/systemd/system/wg-quick@.service.d/wgfw-hook.conf",
    ] {
        assert!(contents.contains(f), "the package lacks {f}");
    }
    let control = text(&run("dpkg-deb", &["-f", deb, "Depends", "Recommends"], work).stdout);
    assert!(
        control.contains("nftables | iptables") && control.contains("wireguard-tools"),
        "{control}"
    );

    let guard = PurgeDeb;
    let install = run("dpkg", &["-i", deb], work);
    assert!(
        install.status.success(),
        "dpkg -i: {}",
        text(&install.stderr)
    );
    let version = run("/usr/bin/wgfw-hook", &["--version"], work);
    assert_eq!(
        text(&version.stdout),
        format!("wgfw-hook {}\n", env!("CARGO_PKG_VERSION"))
    );
    let man = run("man", &["-w", "wgfw-hook"], work);
    assert_eq!(
        text(&man.stdout).trim(),
        "/usr/share/man/man8/wgfw-hook.8.gz"
    );
    drop(guard);
    assert!(
        !Path::new("/usr/bin/wgfw-hook").exists(),
        "dpkg --purge left /usr/bin/wgfw-hook"
    );
    assert!(!deb_installed(), "dpkg --purge left wgfw-hook installed");
}
