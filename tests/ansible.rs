//! The Ansible role (packaging/ansible/roles/wgfw_hook) against a real WireGuard interface: the
//! Debian package is built, and tests/ansible/run.sh runs `ansible-playbook -c local` with the
//! role in a network namespace and a private mount namespace (see the script for what it checks).
//! The role installs the package on this machine, as it would on a real host; a guard purges it
//! again. Needs root, ansible-core, the e2e tools and the Debian build tools; a missing one
//! fails the test.

mod common;

use std::process::{Command, Stdio};

use common::{PurgeDeb, Scratch, build_deb, deb_installed, root};

#[test]
fn the_role_installs_configures_applies_and_rolls_back() {
    let found = Command::new("ansible-playbook")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "ansible-playbook is missing: install ansible-core (apt-get install ansible-core)"
    );
    assert!(
        !deb_installed(),
        "wgfw-hook is installed on this machine already: this test would replace it"
    );
    let work = Scratch::new("ansible");
    let deb = build_deb(&work.0);

    let _purge = PurgeDeb;
    let path = std::env::var("PATH").unwrap_or_default();
    // The output goes straight to the terminal, live; the test harness does not capture it.
    let status = Command::new("bash")
        .arg(root().join("tests/ansible/run.sh"))
        .arg(&deb)
        .current_dir(root())
        .env("PATH", format!("{path}:/usr/local/sbin:/usr/sbin:/sbin"))
        // The hook's lockout guard reads it: the test must not depend on how it was started.
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::null())
        .status()
        .expect("cannot run bash tests/ansible/run.sh");
    assert!(
        status.success(),
        "tests/ansible/run.sh failed ({status}): its FAIL lines are above"
    );
}
