//! `up --rollback SECONDS`, `confirm` and the waiting half `__revert`: unless `confirm` comes
//! in time, what was installed before (or nothing) comes back.

use std::path::PathBuf;

use crate::config::cli::{Args, Options};
use crate::config::settings;
use crate::config::types::IfaceName;
use crate::config::wgconf::{self, WgConfig};
use crate::error::{Error, Result};
use crate::system::state::Store;

use super::install::{Guard, install};
use super::{files, now_secs};

/// Records what a rollback goes back to, and starts the process that waits for `confirm`.
/// It runs on its own, so wg-quick does not wait for it.
pub(super) fn arm(
    store: &Store,
    iface: &IfaceName,
    secs: u32,
    previous: Option<(Options, WgConfig)>,
) -> Result<()> {
    let token = format!("{}-{}", std::process::id(), now_secs());
    let mut text = format!("token={token}\ndeadline={}\n", now_secs() + u64::from(secs));
    if let Some((opts, conf)) = &previous {
        text.push_str(&format!(
            "--- options\n{}--- wgconf\n{}",
            opts.to_settings(),
            wgconf::render(conf)
        ));
    }
    store.write_named(&files::rollback(iface), &text)?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::system(format!("cannot find my own program: {e}")))?;
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .args(["__revert", iface.as_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::system(format!("cannot start the rollback timer: {e}")))?;
    let back = if previous.is_some() {
        "the previous firewall"
    } else {
        "no firewall"
    };
    crate::errln!(
        "[!] wgfw-hook: {back} comes back in {secs} s unless \"wgfw-hook confirm {iface}\""
    );
    Ok(())
}

/// Keeps what `up --rollback` installed.
pub fn confirm(args: &Args) -> Result<()> {
    let store = Store::open()?;
    let file = files::rollback(&args.iface);
    if store.read_named(&file)?.is_none() {
        crate::outln!("{}: no rollback pending", args.iface);
        return Ok(());
    }
    store.write_named(&file, "")?;
    crate::outln!("{}: kept", args.iface);
    Ok(())
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(String::from))
}

/// The waiting half of `up --rollback`: unless `confirm` removes the record first, puts back
/// what was there before when the deadline passes.
pub fn revert(args: &Args) -> Result<()> {
    let iface = &args.iface;
    let file = files::rollback(iface);
    let Some(token) = wait_for_deadline(&file) else {
        return Ok(());
    };
    let store = Store::open()?;
    // Under the lock the revert holds: not confirmed, no newer `up` in the meantime.
    let Some(text) = store.read_named(&file)? else {
        return Ok(());
    };
    if field(&text, "token").as_deref() != Some(token.as_str()) {
        return Ok(());
    }
    store.write_named(&file, "")?;
    go_back(&store, iface, &text)
}

/// Puts back what a rollback record says was there before: a plan, or nothing.
pub(super) fn go_back(store: &Store, iface: &IfaceName, text: &str) -> Result<()> {
    match text
        .split_once("--- options\n")
        .and_then(|(_, rest)| rest.split_once("--- wgconf\n"))
    {
        Some((opts_text, conf_text)) => {
            let recorded = PathBuf::from(format!("(the config {iface} had before)"));
            let opts = settings::parse(&recorded, opts_text)?;
            let conf = wgconf::parse(&recorded, conf_text)?;
            install(iface, &opts, &conf, store, Guard::Off)
        }
        None => super::down::remove(store, iface),
    }
}

/// Waits until the rollback recorded in `file` is due and returns its token; none when it was
/// confirmed or a newer `up` took over first.
fn wait_for_deadline(file: &str) -> Option<String> {
    let read = || {
        Store::open()
            .and_then(|s| s.read_named(file))
            .ok()
            .flatten()
    };
    let first = read()?;
    let token = field(&first, "token")?;
    let deadline = field(&first, "deadline")?.parse::<u64>().ok()?;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let still = read().is_some_and(|t| field(&t, "token").as_deref() == Some(token.as_str()));
        if !still {
            return None;
        }
        if now_secs() >= deadline {
            return Some(token);
        }
    }
}
