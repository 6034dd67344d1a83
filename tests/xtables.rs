//! The legacy tables as the kernel hands them out (`xtables::overview`) against what
//! `iptables-legacy-save` shows of the same tables: the same chains and policies. Runs in a
//! network namespace of its own thread, so the host's tables are never read or created.

mod common;

use std::process::Command;

use common::{run_with_input, text};

use wgfw_hook::plan::Family;
use wgfw_hook::rules::iptables::Live;
use wgfw_hook::xtables;

const CLONE_NEWNET: i32 = 0x4000_0000;

unsafe extern "C" {
    fn unshare(flags: i32) -> i32;
}

fn restore(prog: &str, script: &str) {
    let out = run_with_input(prog, &[], script)
        .unwrap_or_else(|e| panic!("{prog}: {e} (the README's test command installs iptables)"));
    assert!(
        out.status.success(),
        "{prog} refused: {}",
        text(&out.stderr)
    );
}

fn save(prog: &str) -> String {
    let out = Command::new(prog).output().unwrap();
    assert!(out.status.success(), "{prog}");
    String::from_utf8(out.stdout).unwrap()
}

/// A busy host: every table, user chains (one with the longest name iptables takes), jumps,
/// policies other than ACCEPT, and chains of ours.
fn ruleset(addr: &str) -> String {
    let mut s = String::from(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:WGFW-wg0-PRE - [0:0]\n-A PREROUTING -j WGFW-wg0-PRE\n-A WGFW-wg0-PRE -i lo -j RETURN\nCOMMIT\n",
    );
    s.push_str("*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\nCOMMIT\n");
    s.push_str("*nat\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A POSTROUTING -o eth0 -j MASQUERADE\n-A DOCKER -i docker0 -j RETURN\nCOMMIT\n");
    s.push_str("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:ufw-user-input - [0:0]\n:A-CHAIN-NAME-OF-28-CHARS-XX - [0:0]\n");
    for i in 0..300 {
        s.push_str(&format!(
            "-A ufw-user-input -s {addr}{} -p tcp -m tcp --dport {} -j ACCEPT\n",
            i % 250 + 1,
            1000 + i
        ));
    }
    s.push_str("-A INPUT -j ufw-user-input\n-A FORWARD -j A-CHAIN-NAME-OF-28-CHARS-XX\n-A A-CHAIN-NAME-OF-28-CHARS-XX -j RETURN\nCOMMIT\n");
    s
}

#[test]
fn the_kernel_tables_show_what_the_save_shows_but_rules() {
    std::thread::spawn(|| {
        // SAFETY: plain syscall; it moves only this thread into a new network namespace.
        assert_eq!(unsafe { unshare(CLONE_NEWNET) }, 0, "these tests need root");
        assert_eq!(
            xtables::overview(Family::V4),
            Some(Live::default()),
            "no tables yet"
        );
        let cases = [
            (Family::V4, "iptables-legacy", ruleset("198.51.100.")),
            (Family::V6, "ip6tables-legacy", ruleset("2001:db8::")),
        ];
        for (family, prog, rules) in cases {
            restore(&format!("{prog}-restore"), &rules);
            let full = Live::parse(&save(&format!("{prog}-save")));
            let light = xtables::overview(family).expect("the kernel's tables read");
            assert_eq!(light.chains, full.chains, "{family}");
            assert_eq!(light.policies, full.policies, "{family}");
            assert!(light.has_own_chains() && light.has_foreign_chains() && light.rules.is_empty());
        }
    })
    .join()
    .unwrap();
}
