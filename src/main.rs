//! wgfw-hook: the firewall of a WireGuard server, installed by wg-quick's PostUp and removed by
//! its PreDown. `main` only wires the modules: read config, derive a plan, render, apply.

#![warn(clippy::print_stdout, clippy::print_stderr)]

use wgfw_hook::commands;
use wgfw_hook::config::cli::{self, Command, Invocation};

fn main() {
    wgfw_hook::keep_freed_memory();
    let code = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Invocation::Help) => {
            wgfw_hook::out!("{}", cli::help());
            0
        }
        Ok(Invocation::Version) => {
            wgfw_hook::outln!("wgfw-hook {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Run(args)) => {
            init_log(args.verbose);
            let started = std::time::Instant::now();
            let result = match args.command {
                Command::Up => commands::up(&args),
                Command::Down => commands::down(&args),
                Command::Plan => commands::plan(&args),
                Command::Release => commands::release(&args),
                Command::Confirm => commands::confirm(&args),
                Command::Watch => commands::watch(&args),
                Command::Revert => commands::revert(&args),
                Command::Status => commands::status(Some(&args.iface), args.json),
                Command::Check => match commands::check(&args) {
                    Ok(true) => Ok(()),
                    Ok(false) => std::process::exit(1),
                    Err(e) => Err(e),
                },
            };
            let kib = |k: Option<u64>| k.map_or("?".into(), |k| k.to_string());
            log::debug!(
                "done after {:.1} ms, peak memory {} KiB (the largest program it ran: {} KiB)",
                started.elapsed().as_secs_f64() * 1e3,
                kib(wgfw_hook::peak_rss_kib()),
                kib(wgfw_hook::children_peak_rss_kib())
            );
            match result {
                Ok(()) => 0,
                Err(e) => {
                    wgfw_hook::errln!("wgfw-hook: {}: {e}", args.iface);
                    e.exit_code()
                }
            }
        }
        Ok(Invocation::StatusAll { json }) => {
            init_log(0);
            match commands::status(None, json) {
                Ok(()) => 0,
                Err(e) => {
                    wgfw_hook::errln!("wgfw-hook: {e}");
                    e.exit_code()
                }
            }
        }
        Err(e) => {
            wgfw_hook::errln!("wgfw-hook: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn init_log(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .format_target(false)
        .init();
}
