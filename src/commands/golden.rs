//! Golden files: what `plan` prints for representative configs on a fixed host (default
//! routes on eth0, the LAN 192.168.1.0/24 and fd00:1::/64 on lan0, IPv6 on, no sysctl values
//! known: `HostFacts::example`). One `tests/golden/NAME.conf` per case, its
//! options in `NAME.args`, the expected output in `NAME.plan`. Refresh them with
//! `WGFW_UPDATE_GOLDEN=1 cargo test golden` and review the change as a diff.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use super::plan::render;
use crate::config::cli::{self, Invocation};
use crate::config::types::BackendChoice;
use crate::config::{settings, wgconf};
use crate::plan::{self, HostFacts, Purpose};
use crate::rules::Backend;
use crate::rules::iptables::Variant;

pub(crate) fn render_case(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.conf"))).unwrap();
    let extra = std::fs::read_to_string(dir.join(format!("{name}.args"))).unwrap_or_default();
    let argv = ["plan", "wg0"]
        .into_iter()
        .map(String::from)
        .chain(extra.split_whitespace().map(String::from));
    let Invocation::Run(args) = cli::parse(argv.map(OsString::from)).unwrap() else {
        panic!("{name}: not a run")
    };
    let conf = wgconf::parse(Path::new(&format!("{name}.conf")), &text).unwrap();
    // The settings file, where the case has one (`NAME.settings`).
    let settings_path = dir.join(format!("{name}.settings"));
    let options = match std::fs::read_to_string(&settings_path) {
        Ok(t) => args
            .options
            .clone()
            .over(settings::parse(Path::new(&format!("{name}.settings")), &t).unwrap()),
        Err(_) => args.options.clone(),
    };
    // The peers' endpoints, as a client would find them (the config's, all literal here).
    let host = HostFacts {
        endpoints: conf
            .peers
            .iter()
            .filter_map(|p| p.endpoint.as_ref()?.parse().ok())
            .collect(),
        ..HostFacts::example()
    };
    let plan = plan::derive(&args.iface, &conf, &options, &host, Purpose::Show).unwrap();
    let (variant, why) = match options.backend {
        Some(BackendChoice::IptablesLegacy) => (Backend::Iptables(Variant::Legacy), "--backend"),
        Some(BackendChoice::Nft) => (Backend::Nft, "--backend"),
        _ => (Backend::Iptables(Variant::Nft), "the golden files' default"),
    };
    render(&plan, variant, why, &BTreeMap::new())
}

#[test]
fn plan_output_matches_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("WGFW_UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".conf")
                .map(String::from)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 7, "golden cases missing: {names:?}");
    let mut stale = Vec::new();
    for name in &names {
        let got = render_case(&dir, name);
        let path = dir.join(format!("{name}.plan"));
        if update {
            std::fs::write(&path, &got).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(got.as_str()) {
            stale.push(name.clone());
            eprintln!("--- {name}.plan differs; got:\n{got}");
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ: {stale:?} (WGFW_UPDATE_GOLDEN=1 refreshes them)"
    );
}
