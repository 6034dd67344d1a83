//! What the packaging tests share: running programs, the source tree as a release tarball holds
//! it (the tracked files), and building the Debian package from it.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a program and panics, with what it printed, unless it succeeds; returns its stdout.
pub fn run_ok(cmd: &str, args: &[&str], dir: &Path) -> String {
    let out = run(cmd, args, dir);
    assert!(
        out.status.success(),
        "{cmd} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wgfw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the tracked files (what a release tarball holds) into `to`.
pub fn copy_tracked(to: &Path) {
    let files = run_ok("git", &["ls-files"], root());
    for f in files.lines() {
        let dest = to.join(f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(root().join(f), &dest)
            .unwrap_or_else(|e| panic!("cannot copy {f}: {e} (a tracked file deleted?)"));
    }
}

/// The tracked files as `DIR/NAME-VERSION.tar.gz`, unpacking to `NAME-VERSION/`, as a forge's
/// release archive does.
pub fn release_tarball(dir: &Path) -> PathBuf {
    let base = format!("wgfw-hook-{}", env!("CARGO_PKG_VERSION"));
    let tree = dir.join("tree");
    copy_tracked(&tree.join(&base));
    let tarball = dir.join(format!("{base}.tar.gz"));
    run_ok(
        "tar",
        &[
            "-C",
            tree.to_str().unwrap(),
            "-czf",
            tarball.to_str().unwrap(),
            &base,
        ],
        dir,
    );
    std::fs::remove_dir_all(&tree).unwrap();
    tarball
}

/// Builds the Debian package in `work` (packaging/debian as debian/, dpkg-buildpackage) and
/// returns the .deb's path.
pub fn build_deb(work: &Path) -> PathBuf {
    let src = work.join("wgfw-hook");
    copy_tracked(&src);
    std::fs::rename(src.join("packaging/debian"), src.join("debian")).unwrap();
    std::fs::set_permissions(
        src.join("debian/rules"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    run_ok("dpkg-buildpackage", &["-us", "-uc", "-b", "-d"], &src);
    std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb was built")
}

/// Whether the Debian package is installed on this machine.
pub fn deb_installed() -> bool {
    let out = run("dpkg-query", &["-W", "-f=${Status}", "wgfw-hook"], root());
    text(&out.stdout).contains("ok installed")
}

/// Purges the Debian package when dropped, also when an assertion fails half way.
pub struct PurgeDeb;

impl Drop for PurgeDeb {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "wgfw-hook"]).output();
    }
}
