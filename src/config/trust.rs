//! The files whose content becomes root's firewall (the settings file, the wg-quick config) are
//! read only when no other user could have written them, as wg-quick warns about a
//! world-readable key: a world-writable file, or one owned by someone other than root (or than
//! whoever runs `plan`), would let that user slip options or rules into a root `up`.

use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

unsafe extern "C" {
    safe fn geteuid() -> u32;
}

/// The file's text, checked on the opened file (no swap between check and read); `None` when
/// there is no such file. A byte that is not UTF-8 becomes U+FFFD, as the parsers expect; a
/// file that is all UTF-8 (nearly every one) is taken as it is, without a copy.
pub fn read(path: &Path) -> Result<Option<String>> {
    let mut file = match fs_err::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::usage(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| Error::usage(e.to_string()))?;
    check(path, meta.mode(), meta.uid(), geteuid())?;
    // Sized once: a config of 10,000 peers is a megabyte.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::usage(e.to_string()))?;
    Ok(Some(String::from_utf8(bytes).unwrap_or_else(|e| {
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    })))
}

/// Refuses a file that every user may write, or that is owned by another user than root or
/// `me`.
fn check(path: &Path, mode: u32, owner: u32, me: u32) -> Result<()> {
    let p = path.display();
    if mode & 0o002 != 0 {
        return Err(Error::usage(format!(
            "{p}: every user may write it, and it configures root's firewall: chmod o-w {p}"
        )));
    }
    if owner != 0 && owner != me {
        return Err(Error::usage(format!(
            "{p}: owned by user {owner}, who could change root's firewall through it: chown root {p}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_no_other_user_can_write_are_trusted() {
        let p = Path::new("/etc/wgfw/wg0.conf");
        assert!(check(p, 0o100600, 0, 0).is_ok());
        assert!(check(p, 0o100664, 0, 0).is_ok());
        // A user's `plan` on the user's own file.
        assert!(check(p, 0o100644, 1000, 1000).is_ok());
        assert!(check(p, 0o100644, 0, 1000).is_ok());
        assert_eq!(
            check(p, 0o100666, 0, 0).unwrap_err(),
            Error::usage(
                "/etc/wgfw/wg0.conf: every user may write it, and it configures root's firewall: chmod o-w /etc/wgfw/wg0.conf"
            )
        );
        let e = check(p, 0o100644, 1000, 0).unwrap_err().to_string();
        assert!(e.contains("owned by user 1000") && e.ends_with("chown root /etc/wgfw/wg0.conf"));
        assert!(check(p, 0o100644, 1001, 1000).is_err());
    }

    #[test]
    fn text_is_taken_as_it_is_and_a_stray_byte_becomes_a_replacement_character() {
        let dir = std::env::temp_dir().join(format!("wgfw-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (good, bad) = (dir.join("good.conf"), dir.join("bad.conf"));
        std::fs::write(&good, "lan = 192.168.1.0/24 # café\n").unwrap();
        std::fs::write(&bad, b"lan = 192.168.1.0/24 # caf\xe9\n").unwrap();
        let good_text = read(&good);
        let bad_text = read(&bad);
        let missing = read(&dir.join("missing.conf"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(good_text.unwrap().unwrap(), "lan = 192.168.1.0/24 # café\n");
        assert_eq!(
            bad_text.unwrap().unwrap(),
            "lan = 192.168.1.0/24 # caf\u{fffd}\n"
        );
        assert_eq!(missing.unwrap(), None);
    }
}
