//! The Debian package: built from the source tree with `dpkg-buildpackage`, checked by lintian
//! (no errors), installed on this machine, run (`wgfw-hook --version`, `man -w wgfw-hook`), and
//! removed again, leaving nothing behind. Needs root, debhelper and lintian (the README's test
//! command installs them); a missing prerequisite fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Removes the package even when an assertion fails half way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "wgfw-hook"]).output();
    }
}

#[test]
fn the_deb_builds_installs_runs_and_goes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let before = run("dpkg-query", &["-W", "-f=${Status}", "wgfw-hook"], root);
    assert!(
        !text(&before.stdout).contains("ok installed"),
        "wgfw-hook is installed on this machine already: this test would replace it"
    );
    let work: PathBuf = std::env::temp_dir().join(format!("wgfw-deb-{}", std::process::id()));
    let src = work.join("wgfw-hook");
    std::fs::create_dir_all(&src).unwrap();
    // The tracked files only: what a release tarball holds.
    let files = run("git", &["ls-files"], root);
    assert!(
        files.status.success(),
        "git ls-files: {}",
        text(&files.stderr)
    );
    for f in text(&files.stdout).lines() {
        let to = src.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(f), &to).unwrap();
    }
    std::fs::rename(src.join("packaging/debian"), src.join("debian")).unwrap();
    std::fs::set_permissions(
        src.join("debian/rules"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let build = run("dpkg-buildpackage", &["-us", "-uc", "-b", "-d"], &src);
    assert!(
        build.status.success(),
        "dpkg-buildpackage:\n{}{}",
        text(&build.stdout),
        text(&build.stderr)
    );
    let deb = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb was built");
    let deb = deb.to_str().unwrap();

    let lint = run("lintian", &[deb], &work);
    let errors: Vec<String> = text(&lint.stdout)
        .lines()
        .filter(|l| l.starts_with("E:"))
        .map(String::from)
        .collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));

    let contents = text(&run("dpkg", &["-c", deb], &work).stdout);
    for f in [
        "./usr/bin/wgfw-hook",
        "./usr/share/man/man8/wgfw-hook.8.gz",
        "./usr/share/bash-completion/completions/wgfw-hook",
        "./usr/share/zsh/vendor-completions/_wgfw-hook",
        "./usr/share/fish/vendor_completions.d/wgfw-hook.fish",
        "./usr/lib/systemd/system/wgfw-hook-check@.timer",
    ] {
        assert!(contents.contains(f), "the package lacks {f}");
    }
    let control = text(&run("dpkg-deb", &["-f", deb, "Depends", "Recommends"], &work).stdout);
    assert!(
        control.contains("nftables | iptables") && control.contains("wireguard-tools"),
        "{control}"
    );

    let guard = Installed;
    let install = run("dpkg", &["-i", deb], &work);
    assert!(
        install.status.success(),
        "dpkg -i: {}",
        text(&install.stderr)
    );
    let version = run("/usr/bin/wgfw-hook", &["--version"], &work);
    assert_eq!(
        text(&version.stdout),
        format!("wgfw-hook {}\n", env!("CARGO_PKG_VERSION"))
    );
    let man = run("man", &["-w", "wgfw-hook"], &work);
    assert_eq!(
        text(&man.stdout).trim(),
        "/usr/share/man/man8/wgfw-hook.8.gz"
    );
    drop(guard);
    assert!(
        !Path::new("/usr/bin/wgfw-hook").exists(),
        "dpkg --purge left /usr/bin/wgfw-hook"
    );
    let after = run("dpkg-query", &["-W", "-f=${Status}", "wgfw-hook"], root);
    assert!(!text(&after.stdout).contains("ok installed"));
    std::fs::remove_dir_all(&work).unwrap();
}
