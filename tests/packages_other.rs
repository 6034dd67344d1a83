//! The RPM and Arch packages, built here from a release tarball of the tracked files with the
//! distributions' own tools as Debian ships them: `rpmbuild` (rpm; `--nodeps`, since the
//! BuildRequires are not rpms here) checked by rpmlint, and `makepkg` (pacman's; as an
//! unprivileged user, since makepkg refuses root) with the PKGBUILD's prepare, build, check and
//! package. Each package must hold exactly the expected files. Needs root, rpm, rpmlint, makepkg,
//! pacman-package-manager and libarchive-tools; a missing one fails the test.

mod common;

use std::path::Path;

use common::{Scratch, release_tarball, root, run, run_ok, text};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every package installs, wherever the distribution puts the completions and licenses.
fn common_files() -> Vec<&'static str> {
    vec![
        "/usr/bin/wgfw-hook",
        "/usr/lib/systemd/system/wgfw-hook-check@.service",
        "/usr/lib/systemd/system/wgfw-hook-check@.timer",
        "/usr/lib/systemd/system/wgfw-hook@.service",
        "/usr/lib/systemd/system/wg-quick@.service.d/wgfw-hook.conf",
        "/usr/share/bash-completion/completions/wgfw-hook",
        "/usr/share/fish/vendor_completions.d/wgfw-hook.fish",
        "/usr/share/man/man8/wgfw-hook.8.gz",
        "/usr/share/zsh/site-functions/_wgfw-hook",
    ]
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn the_rpm_builds_lints_and_holds_the_files() {
    let work = Scratch::new("rpm");
    let top = &work.0;
    std::fs::create_dir_all(top.join("SOURCES")).unwrap();
    let tarball = release_tarball(&top.join("SOURCES"));
    assert!(tarball.ends_with(format!("SOURCES/wgfw-hook-{VERSION}.tar.gz")));
    let spec = root().join("packaging/rpm/wgfw-hook.spec");
    let spec = spec.to_str().unwrap();
    let topdir = format!("_topdir {}", top.display());
    run_ok(
        "rpmbuild",
        &[
            "-bb",
            "--nodeps",
            "--define",
            &topdir,
            // Debian's brp-compress is a bash script run by /bin/sh (dash) and compresses
            // nothing; run it with bash, as Fedora's and openSUSE's /bin/sh would.
            "--define",
            "__brp_compress bash /usr/lib/rpm/brp-compress /usr",
            spec,
        ],
        top,
    );
    let arch = run_ok("rpm", &["--eval", "%{_arch}"], top);
    let rpm = top.join(format!(
        "RPMS/{0}/wgfw-hook-{VERSION}-1.{0}.rpm",
        arch.trim()
    ));
    let rpm = rpm.to_str().unwrap();

    let listed = run_ok("rpm", &["-qlp", rpm], top);
    let mut want: Vec<String> = common_files().into_iter().map(String::from).collect();
    // wireguard-tools owns no drop-in directory for its unit: the package owns the one it adds to.
    want.push("/usr/lib/systemd/system/wg-quick@.service.d".into());
    for (dir, file) in [("doc", "README.md"), ("licenses", "LICENSE")] {
        want.push(format!("/usr/share/{dir}/wgfw-hook-{VERSION}"));
        want.push(format!("/usr/share/{dir}/wgfw-hook-{VERSION}/{file}"));
    }
    assert_eq!(
        sorted(listed.lines().map(String::from).collect()),
        sorted(want),
        "rpm -qlp {rpm}"
    );
    let requires = run_ok("rpm", &["-qp", "--requires", rpm], top);
    assert!(
        requires.lines().any(|l| l == "(nftables or iptables)"),
        "Requires: {requires}"
    );
    let recommends = run_ok("rpm", &["-qp", "--recommends", rpm], top);
    assert_eq!(recommends.trim(), "wireguard-tools");

    let rc = root().join("packaging/rpm/wgfw-hook.rpmlintrc");
    let lint = run("rpmlint", &["-r", rc.to_str().unwrap(), rpm, spec], top);
    let report = text(&lint.stdout);
    assert!(
        report.contains(" 0 errors,"),
        "rpmlint found errors:\n{report}{}",
        text(&lint.stderr)
    );
}

/// A system user for makepkg (which refuses root), deleted when dropped.
struct User(String);

impl User {
    fn add(home: &Path) -> User {
        let name = format!("wgfwpkg{}", std::process::id());
        let home = home.to_str().unwrap();
        run_ok(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--home-dir",
                home,
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
            Path::new("/"),
        );
        User(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = run("userdel", &[&self.0], Path::new("/"));
    }
}

#[test]
fn the_arch_package_builds_checks_and_holds_the_files() {
    let work = Scratch::new("arch");
    let dir = &work.0;
    release_tarball(dir);
    std::fs::copy(root().join("packaging/arch/PKGBUILD"), dir.join("PKGBUILD")).unwrap();
    let user = User::add(dir);
    run_ok("chown", &["-R", &user.0, dir.to_str().unwrap()], dir);
    // The user cannot reach rustup's toolchain under /root: a private mount namespace binds it
    // where the user can (cargo and rustc themselves, without rustup's proxies).
    let sysroot = run_ok("rustc", &["--print", "sysroot"], dir);
    let toolchain = dir.join("toolchain");
    std::fs::create_dir(&toolchain).unwrap();
    let d = dir.display();
    let script = format!(
        "mount --bind '{}' '{d}/toolchain' && \
         exec runuser -u '{}' -- env -i PATH='{d}/toolchain/bin:/usr/bin:/bin' HOME='{d}' \
         CARGO_HOME='{d}/cargo-home' LANG=C.UTF-8 makepkg --nodeps --noconfirm",
        sysroot.trim(),
        user.0
    );
    run_ok("unshare", &["--mount", "--", "bash", "-c", &script], dir);
    // The unit tests ran (check()).
    let pkg = dir.join(format!(
        "wgfw-hook-{VERSION}-1-{}.pkg.tar.gz",
        std::env::consts::ARCH
    ));
    let pkg = pkg.to_str().unwrap();

    let listed = run_ok("bsdtar", &["-tf", pkg], dir);
    let files: Vec<String> = listed
        .lines()
        .filter(|l| !l.ends_with('/') && !l.starts_with('.'))
        .map(|l| format!("/{l}"))
        .collect();
    let mut want: Vec<String> = common_files().into_iter().map(String::from).collect();
    want.push("/usr/share/licenses/wgfw-hook/LICENSE".into());
    assert_eq!(sorted(files), sorted(want), "bsdtar -tf {pkg}");
    let info = run_ok("bsdtar", &["-xOf", pkg, ".PKGINFO"], dir);
    for line in [
        "depend = iptables",
        "optdepend = nftables: ",
        "optdepend = wireguard-tools: ",
        "makedepend = cargo",
    ] {
        assert!(
            info.lines().any(|l| l.starts_with(line)),
            "{line} not in .PKGINFO:\n{info}"
        );
    }
    run_ok(
        "bsdtar",
        &["-xf", pkg, "-C", dir.to_str().unwrap(), "usr/bin/wgfw-hook"],
        dir,
    );
    let version = run_ok(
        dir.join("usr/bin/wgfw-hook").to_str().unwrap(),
        &["--version"],
        dir,
    );
    assert_eq!(version, format!("wgfw-hook {VERSION}\n"));

    // The committed .SRCINFO (what the AUR reads) is what makepkg makes of the PKGBUILD.
    let script = format!(
        "exec runuser -u '{}' -- env -i PATH=/usr/bin:/bin HOME='{d}' makepkg --printsrcinfo",
        user.0
    );
    let srcinfo = run_ok("bash", &["-c", &script], dir);
    let committed = std::fs::read_to_string(root().join("packaging/arch/.SRCINFO")).unwrap();
    assert_eq!(
        srcinfo, committed,
        "packaging/arch/.SRCINFO is stale: run makepkg --printsrcinfo > .SRCINFO"
    );
}
