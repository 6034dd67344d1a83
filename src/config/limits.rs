//! How much input wgfw-hook takes, in one place: far above any real use (the benchmarks run
//! 10,000 peers, and a config of 10,000 peers is about a megabyte), and low enough that what is
//! accepted fits in memory and time. Each is counted while the input is read, before anything
//! big is built, and going over is one line (`file:line` where there is a line), exit 2,
//! nothing changed. The manual's LIMITS and the README's Limits list them; what only the options
//! and the config together can tell is `Options::check_limits`.

/// Bytes of the wg-quick config and of the settings file, as `fstat` tells before reading.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// `[Peer]` sections of the wg-quick config, and peers named in the settings file's sections.
pub const MAX_PEERS: usize = 100_000;
/// AllowedIPs networks of the wg-quick config, all peers together.
pub const MAX_ALLOWED_IPS: usize = 200_000;
/// AllowedIPs networks of one peer.
pub const MAX_ALLOWED_IPS_PER_PEER: usize = 100_000;
/// Address networks of the wg-quick config.
pub const MAX_ADDRESSES: usize = 1_000;
/// Entries of one list: each of `admin`, `allow`, `lan` and `forward` (command line or
/// settings file), and a section's `lan`, `allow` and `peer-to-peer`.
pub const MAX_LIST: usize = 1_000;
/// `[peer]` and `[group]` sections of the settings file.
pub const MAX_SECTIONS: usize = 100_000;
/// The sections' `lan`, `allow` and `peer-to-peer` entries together, a section without `lan`
/// counting the interface's `lan` networks, which it gets.
pub const MAX_SECTION_ENTRIES: usize = 200_000;

/// The message for going over `limit` of `what`.
pub fn over(limit: impl std::fmt::Display, what: &str) -> String {
    format!(
        "more than {limit} {what}: wgfw-hook's limit, far above real use (see LIMITS in wgfw-hook(8))"
    )
}

/// LAN networks of the interface and of the sections together (a section's own `lan`).
pub const MAX_LANS: usize = 20_000;
/// Rules that pair two lists: tunnel networks with LAN networks (masquerading towards each),
/// `from-lan` forwards with LAN networks, a section's `peer-to-peer` with the AllowedIPs of the
/// sections it names. Tunnel networks are the Address networks, and with an Address that is a
/// host route (/32, /128) the peers' AllowedIPs too.
pub const MAX_PAIRS: usize = 500_000;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The README's Limits and the manual's LIMITS say the numbers of this file.
    #[test]
    fn the_documents_name_these_numbers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let man = std::fs::read_to_string(root.join("man/wgfw-hook.8")).unwrap();
        let (_, readme) = readme.split_once("**Limits.**").unwrap();
        let (_, man) = man.split_once(".SH LIMITS").unwrap();
        let commas = |n: usize| {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        };
        for n in [
            MAX_PEERS,
            MAX_ALLOWED_IPS,
            MAX_ALLOWED_IPS_PER_PEER,
            MAX_ADDRESSES,
            MAX_LIST,
            MAX_SECTIONS,
            MAX_SECTION_ENTRIES,
            MAX_LANS,
            MAX_PAIRS,
        ] {
            assert!(readme.contains(&commas(n)), "the README lacks {n}");
            assert!(man.contains(&commas(n)), "the manual lacks {n}");
        }
        let mib = format!("{} MiB", MAX_FILE_BYTES >> 20);
        assert!(readme.contains(&mib) && man.contains(&mib));
    }
}
