//! What the integration tests share. For the firewall tests: the binary under test, a fresh
//! network and mount namespace to run a script in, and a shell prelude (`SETUP`) with a
//! stand-in tunnel and `snapshot`. For the packaging tests: running programs, the source tree as
//! a release tarball holds it (the tracked files), and building the Debian package from it.

#![allow(dead_code)] // each test crate uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_wgfw-hook");

/// Runs a bash script in fresh network and mount namespaces, with `$BIN` set. The kernel
/// deletes both when the script's shell exits, with every mount made inside; the script's
/// exit trap deletes the hook's records of the namespace.
///
/// These scripts try one command at a time (a fault, a flush, a `check --repair`), so their
/// `up` starts no watcher: `$BIN` is the binary behind a wrapper that adds `--no-watch` to `up`
/// (`$WGFW_BIN` is the binary itself, for the watcher's own tests). The exit trap stops any
/// watcher left in the namespace, which would keep it alive.
pub fn in_netns(script: &str) -> Output {
    let uid = text(&Command::new("id").arg("-u").output().unwrap().stdout);
    assert_eq!(
        uid.trim(),
        "0",
        "these tests need root (run the README's test command as root)"
    );
    // `up` without a watcher: the binary behind a wrapper that adds `--no-watch` to `up`,
    // removed again when the script is done.
    static WRAPPERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRAPPERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let wrapper =
        std::env::temp_dir().join(format!("wgfw-hook-nowatch.{}.{n}", std::process::id()));
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = up ]; then shift; exec '{BIN}' up --no-watch \"$@\"; fi\nexec '{BIN}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // A script that fails half way leaves no state records of its namespace behind either, nor
    // a watcher, which would keep the namespace alive: not in its network namespace, nor in one
    // it made (its mount namespace is the script's own).
    let script = format!(
        "trap 'stop_watchers; rm -rf /run/wgfw/netns-$(stat -L -c %i /proc/self/ns/net).*' EXIT\n\
         stop_watchers() {{ local p me mnt; me=$(readlink /proc/self/ns/net); mnt=$(readlink /proc/self/ns/mnt)\n\
           for p in /proc/[0-9]*; do\n\
             [ \"$(readlink $p/ns/net 2>/dev/null)\" = \"$me\" ] || [ \"$(readlink $p/ns/mnt 2>/dev/null)\" = \"$mnt\" ] || continue\n\
             tr '\\0' ' ' <$p/cmdline 2>/dev/null | grep -q '^[^ ]* watch ' && kill -9 ${{p#/proc/}} 2>/dev/null\n\
           done; return 0; }}\n{script}"
    );
    let out = Command::new("unshare")
        .args([
            "--mount", "--net", "bash", "-euo", "pipefail", "-c", &script,
        ])
        .env("BIN", &wrapper)
        .env("WGFW_BIN", BIN)
        // The lockout guard reads it: tests must not depend on how this one was started.
        .env_remove("SSH_CONNECTION")
        .output()
        .expect("unshare (util-linux) is needed");
    let _ = std::fs::remove_file(&wrapper);
    eprintln!(
        "--- script ({}) stdout:\n{}--- script stderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn assert_one_line_error(out: &Output, code: i32, want: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(want), "{err:?} should say {want:?}");
    assert!(!err.contains("panicked"));
}

/// Panics unless each of `wants` is a whole line of `stdout` (the markers a script echoes).
pub fn assert_lines(stdout: &str, wants: &[&str]) {
    for want in wants {
        assert!(
            stdout.lines().any(|l| l == *want),
            "{want} missing: {stdout}"
        );
    }
}

/// Panics unless `stdout` contains every one of `wants`.
pub fn assert_has(stdout: &str, wants: &[&str]) {
    for want in wants {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
}

/// A veth pair stands in for the tunnel: enough for rules and sysctls, no WireGuard needed.
/// `snapshot` prints everything `up` may change; `stub PROG CODE` makes /usr/sbin/PROG run the
/// sh CODE instead and `hide PROG` removes it, in this mount namespace only (the real programs
/// stay under /mnt/real).
pub const SETUP: &str = r#"
ip link add wg0 type veth peer name wgpeer
ip link add eth0 type veth peer name ethpeer
ip link set wg0 up; ip link set eth0 up
ip addr add 203.0.113.2/24 dev eth0
ip route add default via 203.0.113.1
conf=$(mktemp); printf '[Interface]\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = 51820\n' > "$conf"
snapshot() {
  for t in iptables-nft-save ip6tables-nft-save; do
    $t | { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
  done
  # A legacy table, once used, cannot be removed: only rules, user chains and policies count.
  for t in iptables-legacy-save ip6tables-legacy-save; do
    $t | { grep -v -e '^#' -e '^\*' -e '^COMMIT' -e '^:[A-Z]* ACCEPT' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
  done
  # iptables-nft's tables are in its -save above: nft's rendering of their xt targets varies
  # from one listing to the next ("XT target TCPMSS not found").
  nft list ruleset | awk '
    skip { depth += gsub(/\{/, "{") - gsub(/\}/, "}"); if (depth <= 0) skip = 0; next }
    /^table (ip|ip6) (filter|nat|mangle|raw|security) \{/ { skip = 1; depth = 1; next }
    { print }'
  { sysctl -a 2>/dev/null || true; } | grep -E '^net\.(ipv4|ipv6)\.' | { grep -v -e nf_conntrack -e '\.stable_secret' || true; }
}
fake_sbin() {
  [ -z "${FAKE_SBIN:-}" ] || return 0; FAKE_SBIN=1
  mount -t tmpfs tmpfs /mnt; mkdir /mnt/real /mnt/fake
  mount --bind /usr/sbin /mnt/real; cp -a /usr/sbin/. /mnt/fake/; mount --bind /mnt/fake /usr/sbin
}
stub() { fake_sbin; rm -f "/mnt/fake/$1"; printf '#!/bin/sh\n%s\n' "$2" > "/mnt/fake/$1"; chmod 755 "/mnt/fake/$1"; }
hide() { fake_sbin; rm "/mnt/fake/$1"; }
"#;

/// What the fault tests (`faults.rs`, `hostile_io.rs`) run in: `SETUP`, a private /run (its records and lock; scratch space in $T), and `attempt ARGS...`,
/// which runs the hook and prints `rc=N` and every line of its stderr that is not a `[#]` step
/// as `ERR: line`.
pub const PRELUDE: &str = r#"
mount -t tmpfs -o mode=755 tmpfs /run
T=/run/t; mkdir $T; mv "$conf" $T/wg0.conf; conf=$T/wg0.conf
attempt() {
  set +e; "$BIN" "$@" 2>$T/err; local rc=$?; set -e
  echo "rc=$rc"; { grep -v '^\[#\] ' $T/err || true; } | sed 's/^/ERR: /'
}
# state_left: prints what is recorded in /run/wgfw besides the lock.
state_left() { { find /run/wgfw -mindepth 1 ! -name lock 2>/dev/null || true; } | sed 's/^/STATE-LEFT /'; }
"#;

/// Runs `script` after `SETUP` and `PRELUDE` in namespaces of its own; returns its stdout and
/// asserts that it succeeded.
pub fn run_isolated(script: &str) -> String {
    let out = in_netns(&format!("{SETUP}{PRELUDE}{script}"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "the script failed: {stdout}");
    stdout
}

/// The `ERR:` lines of the attempt that printed `rc=`, which must be `code`: asserts that
/// there is exactly one, that it names the interface and says `want`.
pub fn assert_one_error(stdout: &str, code: i32, want: &str) {
    let errors: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ERR: "))
        .collect();
    assert!(stdout.contains(&format!("rc={code}\n")), "{stdout}");
    assert_eq!(errors.len(), 1, "one error line expected: {stdout}");
    assert!(errors[0].starts_with("wgfw-hook: wg0: "), "{stdout}");
    assert!(errors[0].contains(want), "{want:?} not in {stdout}");
}

pub const BACKENDS: [&str; 3] = ["iptables-nft", "iptables-legacy", "nft"];

/// Runs `f` for each backend at once, each in a namespace of its own.
pub fn per_backend(f: impl Fn(&str) + Sync) {
    std::thread::scope(|s| {
        let handles: Vec<_> = BACKENDS.iter().map(|b| s.spawn(|| f(b))).collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

// ----- packaging

pub fn run(cmd: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs a program with `input` on its stdin, and returns what it printed.
pub fn run_with_input(cmd: &str, args: &[&str], input: &str) -> std::io::Result<Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    child.wait_with_output()
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
