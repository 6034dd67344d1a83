//! The files whose content becomes root's firewall (the settings file, the wg-quick config) are
//! read only when no user but root could have written them or put another file in their place,
//! as wg-quick warns about a world-readable key. What another user could write would let that
//! user slip options or rules into a root `up`.
//!
//! Who may write a file or a directory: its owner; everyone with `o+w`; its group with `g+w`
//! (trusted only when it is group root); the users and groups its POSIX ACL names with write
//! (then the mode's group bits are the ACL's mask, which limits every entry but the owner's).
//! Each of these must be root, or whoever runs a non-root `plan` (that user's own files, and
//! the user's own group: such a `plan` configures nothing).
//!
//! Checked: the file itself, on the opened file; every directory above it up to `/` (whoever
//! may write one could rename another file into its place); and, where the path goes through a
//! symbolic link, every directory above the link's target too: the links are followed one by
//! one, as the kernel does, at most 40. A sticky directory that others may write (`/tmp`) is
//! passed only where its entry on the path is root's: there no one else may rename or remove
//! it. What is opened is the file that was checked (same device and inode), opened without
//! waiting (a FIFO would hang `up` at boot), and only a regular file is read.

use std::collections::VecDeque;
use std::ffi::{CString, OsString, c_char, c_void};
use std::fs::Metadata;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};

use crate::config::limits::{MAX_FILE_BYTES, over};
use crate::config::quote;
use crate::error::{Error, Result};

unsafe extern "C" {
    safe fn geteuid() -> u32;
    safe fn getegid() -> u32;
    fn fgetxattr(fd: i32, name: *const c_char, value: *mut c_void, size: usize) -> isize;
    fn lgetxattr(
        path: *const c_char,
        name: *const c_char,
        value: *mut c_void,
        size: usize,
    ) -> isize;
}

#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
mod abi {
    pub(super) const O_NONBLOCK: i32 = 0o200;
    pub(super) const ENODATA: i32 = 96;
    pub(super) const EOPNOTSUPP: i32 = 122;
}
#[cfg(target_arch = "sparc64")]
mod abi {
    pub(super) const O_NONBLOCK: i32 = 0x4000;
    pub(super) const ENODATA: i32 = 111;
    pub(super) const EOPNOTSUPP: i32 = 45;
}
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
mod abi {
    pub(super) const O_NONBLOCK: i32 = 0o4000;
    pub(super) const ENODATA: i32 = 61;
    pub(super) const EOPNOTSUPP: i32 = 95;
}
const ERANGE: i32 = 34;
/// The kernel's limit on symbolic links followed in one path.
const MAX_LINKS: usize = 40;

/// The file's text, checked on the opened file (no swap between check and read); `None` when
/// there is no such file. A byte that is not UTF-8 becomes U+FFFD, as the parsers expect; a
/// file that is all UTF-8 (nearly every one) is taken as it is, without a copy.
pub fn read(path: &Path) -> Result<Option<String>> {
    let me = Me {
        uid: geteuid(),
        gid: getegid(),
    };
    let file_shown = quote::path(path);
    let fail = |e: std::io::Error| Error::usage(format!("{file_shown}: {e}"));
    let Some((real, seen)) = resolve(path, &file_shown, me)? else {
        return Ok(None);
    };
    kind(&seen).map_err(|k| not_regular(&file_shown, k))?;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(abi::O_NONBLOCK)
        .open(&real)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let meta = file.metadata().map_err(fail)?;
    kind(&meta).map_err(|k| not_regular(&file_shown, k))?;
    if (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
        return Err(Error::usage(format!(
            "{file_shown}: replaced while it was being checked: try again"
        )));
    }
    let acl = acl(|buf, len| {
        // SAFETY: the name is a NUL-terminated string and `buf` holds `len` bytes (or is null
        // with `len` 0, which asks for the size).
        unsafe { fgetxattr(file.as_raw_fd(), ACL_XATTR.as_ptr(), buf, len) }
    })
    .map_err(fail)?;
    check(&file_shown, &Perms::of(&meta, acl), me, None)?;
    let too_big = || Error::usage(format!("{file_shown}: {}", over(MAX_FILE_BYTES, "bytes")));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    // Sized once: a config of 10,000 peers is a megabyte. Bounded also if it grows meanwhile.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(Some(String::from_utf8(bytes).unwrap_or_else(|e| {
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    })))
}

/// Who runs this: root, or the user of a non-root `plan`.
#[derive(Debug, Clone, Copy)]
struct Me {
    uid: u32,
    gid: u32,
}

impl Me {
    fn user_ok(self, uid: u32) -> bool {
        uid == 0 || uid == self.uid
    }

    fn group_ok(self, gid: u32) -> bool {
        gid == 0 || (self.uid != 0 && gid == self.gid)
    }
}

/// What decides who may write a file or directory.
#[derive(Debug)]
struct Perms {
    mode: u32,
    uid: u32,
    gid: u32,
    /// The `system.posix_acl_access` extended attribute, when there is one.
    acl: Option<Vec<u8>>,
}

impl Perms {
    fn of(meta: &Metadata, acl: Option<Vec<u8>>) -> Perms {
        Perms {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            acl,
        }
    }
}

/// Someone but root (or `me`) who may write a file or directory.
#[derive(Debug, PartialEq)]
enum Writer {
    Everyone,
    Owner(u32),
    Group(u32),
    AclUser(u32),
    AclGroup(u32),
    /// An ACL that is not version 2 of the kernel's format: nobody can say who it lets in.
    UnreadableAcl,
}

const ACL_XATTR: &std::ffi::CStr = c"system.posix_acl_access";
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;

/// The first one but root (or `me`) who may write it, if any.
fn writer(p: &Perms, me: Me) -> Option<Writer> {
    if p.mode & 0o002 != 0 {
        return Some(Writer::Everyone);
    }
    if !me.user_ok(p.uid) {
        return Some(Writer::Owner(p.uid));
    }
    let Some(acl) = &p.acl else {
        return (p.mode & 0o020 != 0 && !me.group_ok(p.gid)).then_some(Writer::Group(p.gid));
    };
    // The kernel's format: a u32 version (2), then {u16 tag, u16 perm, u32 id} entries, all
    // little-endian.
    let body = match acl.split_first_chunk::<4>() {
        Some((version, body)) if u32::from_le_bytes(*version) == 2 && body.len() % 8 == 0 => body,
        _ => return Some(Writer::UnreadableAcl),
    };
    let entries: Vec<(u16, u16, u32)> = body
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            (tag, perm, u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
        })
        .collect();
    // The mask limits every entry of the group class (named users, the group, named groups).
    let mask_writes = entries
        .iter()
        .find(|e| e.0 == ACL_MASK)
        .is_none_or(|e| e.1 & 2 != 0);
    entries
        .iter()
        .filter(|&&(_, perm, _)| perm & 2 != 0 && mask_writes)
        .find_map(|&(tag, _, id)| match tag {
            ACL_USER if !me.user_ok(id) => Some(Writer::AclUser(id)),
            ACL_GROUP_OBJ if !me.group_ok(p.gid) => Some(Writer::Group(p.gid)),
            ACL_GROUP if !me.group_ok(id) => Some(Writer::AclGroup(id)),
            _ => None,
        })
}

/// Refuses `shown` (the file, or with `file` a directory above it) when someone but root (or
/// `me`) may write it.
fn check(shown: &str, p: &Perms, me: Me, file: Option<&str>) -> Result<()> {
    let Some(w) = writer(p, me) else {
        return Ok(());
    };
    let why = match file {
        None => ", and it configures root's firewall".to_string(),
        Some(f) => format!(" and so replace {f}, which configures root's firewall"),
    };
    let acl = |who: String| (format!("its ACL lets {who} write it{why}"), "setfacl -b");
    let (what, fix) = match w {
        Writer::Everyone => (format!("every user may write it{why}"), "chmod o-w"),
        Writer::Owner(u) if file.is_none() => (
            format!("owned by user {u}, who could change root's firewall through it"),
            "chown root",
        ),
        Writer::Owner(u) => (
            format!(
                "owned by user {u}, who could replace {}, which configures root's firewall",
                file.unwrap_or_default()
            ),
            "chown root",
        ),
        Writer::Group(g) => (format!("group {g} may write it{why}"), "chmod g-w"),
        Writer::AclUser(u) => acl(format!("user {u}")),
        Writer::AclGroup(g) => acl(format!("group {g}")),
        Writer::UnreadableAcl => (
            format!("its ACL is not one wgfw-hook can read{why}"),
            "setfacl -b",
        ),
    };
    Err(Error::usage(format!("{shown}: {what}: {fix} {shown}")))
}

/// Follows `path` from `/` as the kernel would, checking every directory on the way (and the
/// owner of each entry of a sticky directory that others may write); returns the file's path
/// without symbolic links and what `lstat` said of it, or `None` when something on the way
/// does not exist.
fn resolve(path: &Path, file: &str, me: Me) -> Result<Option<(PathBuf, Metadata)>> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::usage(format!("{file}: the current directory: {e}")))?
            .join(path)
    };
    let mut todo = names(&absolute);
    // The directories walked through, each with whether others may write it (sticky).
    let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
    let mut links = 0;
    let root = PathBuf::from("/");
    let Some(shared) = directory(&root, file, me)? else {
        return Ok(None);
    };
    dirs.push((root, shared));
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if dirs.len() > 1 {
                dirs.pop();
            }
            continue;
        }
        let (dir, shared) = dirs.last().expect("/ stays");
        let here = dir.join(&name);
        let shown = quote::path(&here);
        let meta = match std::fs::symlink_metadata(&here) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::usage(format!("{shown}: {e}"))),
        };
        if *shared && !me.user_ok(meta.uid()) {
            return Err(Error::usage(format!(
                "{shown}: owned by user {}, who could replace {file} (in {}, which others may write): chown -h root {shown}",
                meta.uid(),
                quote::path(dir)
            )));
        }
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(Error::usage(format!(
                    "{file}: too many symbolic links on the way"
                )));
            }
            let target =
                std::fs::read_link(&here).map_err(|e| Error::usage(format!("{shown}: {e}")))?;
            if target.is_absolute() {
                dirs.truncate(1);
            }
            for n in names(&target).into_iter().rev() {
                todo.push_front(n);
            }
            continue;
        }
        if todo.is_empty() {
            return Ok(Some((here, meta)));
        }
        if !meta.is_dir() {
            return Err(Error::usage(format!("{file}: {shown} is not a directory")));
        }
        match directory(&here, file, me)? {
            Some(shared) => dirs.push((here, shared)),
            None => return Ok(None),
        }
    }
    // The path ends in a directory (`..`, `.`): refused as one by the caller.
    let (dir, _) = dirs.pop().expect("/ stays");
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) => Ok(Some((dir, meta))),
        Err(e) => Err(Error::usage(format!("{}: {e}", quote::path(&dir)))),
    }
}

/// The names of a path, `..` included, `/` and `.` left out.
fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Checks a directory on the way to `file`; `Some(true)` for a sticky one that others may
/// write (its entries must then be root's), `None` when it is gone.
fn directory(dir: &Path, file: &str, me: Me) -> Result<Option<bool>> {
    let shown = quote::path(dir);
    let fail = |e: std::io::Error| Error::usage(format!("{shown}: {e}"));
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let name = CString::new(dir.as_os_str().as_bytes()).map_err(|e| fail(e.into()))?;
    let acl = acl(|buf, len| {
        // SAFETY: both names are NUL-terminated strings and `buf` holds `len` bytes (or is
        // null with `len` 0, which asks for the size).
        unsafe { lgetxattr(name.as_ptr(), ACL_XATTR.as_ptr(), buf, len) }
    })
    .map_err(fail)?;
    let perms = Perms::of(&meta, acl);
    let sticky = perms.mode & 0o1000 != 0;
    match writer(&perms, me) {
        // Only the owner of an entry (or of the directory) may rename or remove it there.
        Some(w) if sticky && !matches!(w, Writer::Owner(_)) => Ok(Some(true)),
        _ => check(&shown, &perms, me, Some(file)).map(|()| Some(false)),
    }
}

/// The ACL extended attribute through `get` (fgetxattr or lgetxattr, given a buffer and its
/// size); `None` when there is none or the file system has none.
fn acl(get: impl Fn(*mut c_void, usize) -> isize) -> std::io::Result<Option<Vec<u8>>> {
    // The size can change between asking for it and reading: ask again, a few times.
    for _ in 0..4 {
        let size = get(std::ptr::null_mut(), 0);
        let Ok(size) = usize::try_from(size) else {
            return absent(std::io::Error::last_os_error());
        };
        let mut buf = vec![0u8; size];
        match usize::try_from(get(buf.as_mut_ptr().cast(), size)) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(ERANGE) {
                    return absent(e);
                }
            }
        }
    }
    Err(std::io::Error::other("its ACL keeps changing"))
}

fn absent(e: std::io::Error) -> std::io::Result<Option<Vec<u8>>> {
    match e.raw_os_error() {
        Some(abi::ENODATA | abi::EOPNOTSUPP) => Ok(None),
        _ => Err(e),
    }
}

/// What a file is, when it is not a regular file.
fn kind(meta: &Metadata) -> std::result::Result<(), &'static str> {
    let t = meta.file_type();
    match () {
        _ if t.is_file() => Ok(()),
        _ if t.is_dir() => Err("a directory"),
        _ if t.is_fifo() => Err("a FIFO"),
        _ if t.is_socket() => Err("a socket"),
        _ if t.is_char_device() || t.is_block_device() => Err("a device"),
        _ => Err("a symbolic link"),
    }
}

fn not_regular(file: &str, kind: &str) -> Error {
    Error::usage(format!(
        "{file}: {kind}, not a regular file: name the config file itself"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Me = Me { uid: 0, gid: 0 };
    const USER: Me = Me {
        uid: 1000,
        gid: 1000,
    };

    fn perms(mode: u32, uid: u32, gid: u32) -> Perms {
        Perms {
            mode,
            uid,
            gid,
            acl: None,
        }
    }

    fn file(p: &Perms, me: Me) -> Result<()> {
        check("/etc/wgfw/wg0.conf", p, me, None)
    }

    #[test]
    fn only_files_no_other_user_can_write_are_trusted() {
        assert!(file(&perms(0o100600, 0, 0), ROOT).is_ok());
        assert!(file(&perms(0o100664, 0, 0), ROOT).is_ok());
        // A user's `plan` on the user's own file, also where the user's own group may write.
        assert!(file(&perms(0o100644, 1000, 1000), USER).is_ok());
        assert!(file(&perms(0o100664, 1000, 1000), USER).is_ok());
        assert!(file(&perms(0o100644, 0, 0), USER).is_ok());
        assert_eq!(
            file(&perms(0o100666, 0, 0), ROOT).unwrap_err(),
            Error::usage(
                "/etc/wgfw/wg0.conf: every user may write it, and it configures root's firewall: chmod o-w /etc/wgfw/wg0.conf"
            )
        );
        let e = file(&perms(0o100644, 1000, 0), ROOT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("owned by user 1000") && e.ends_with("chown root /etc/wgfw/wg0.conf"));
        assert!(file(&perms(0o100644, 1001, 1000), USER).is_err());
        // A group but root's may not write it (root's own `up` trusts no user's group).
        assert_eq!(
            file(&perms(0o100664, 0, 100), ROOT).unwrap_err(),
            Error::usage(
                "/etc/wgfw/wg0.conf: group 100 may write it, and it configures root's firewall: chmod g-w /etc/wgfw/wg0.conf"
            )
        );
        assert!(file(&perms(0o100664, 0, 1000), ROOT).is_err());
        assert!(file(&perms(0o100664, 1000, 100), USER).is_err());
    }

    /// An ACL as the kernel keeps it (version 2, then tag, perm and id of each entry) from
    /// getfacl's short form: `u::rw u:1000:rw g::r m::rw o::r`.
    fn acl(text: &str) -> Vec<u8> {
        let mut b = 2u32.to_le_bytes().to_vec();
        for entry in text.split(' ') {
            let mut f = entry.split(':');
            let (kind, id, perm) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let tag: u16 = match (kind, id.is_empty()) {
                ("u", true) => 0x01,
                ("u", false) => 0x02,
                ("g", true) => 0x04,
                ("g", false) => 0x08,
                ("m", _) => 0x10,
                _ => 0x20,
            };
            let perm: u16 = [('r', 4), ('w', 2), ('x', 1)]
                .iter()
                .filter(|(c, _)| perm.contains(*c))
                .map(|(_, v)| v)
                .sum();
            b.extend(tag.to_le_bytes());
            b.extend(perm.to_le_bytes());
            b.extend(id.parse::<u32>().unwrap_or(u32::MAX).to_le_bytes());
        }
        b
    }

    #[test]
    fn acl_entries_that_grant_write_are_refused_unless_the_mask_takes_it_away() {
        let with = |text: &str, uid: u32, gid: u32| Perms {
            mode: 0o100664,
            uid,
            gid,
            acl: Some(acl(text)),
        };
        // `setfacl -m u:1000:rw`: what setfacl wrote on this machine, byte for byte.
        let named = "u::rw u:1000:rw g::r m::rw o::r";
        assert_eq!(
            acl(named),
            b"\x02\0\0\0\x01\0\x06\0\xff\xff\xff\xff\x02\0\x06\0\xe8\x03\0\0\x04\0\x04\0\xff\xff\xff\xff\x10\0\x06\0\xff\xff\xff\xff\x20\0\x04\0\xff\xff\xff\xff"
        );
        assert_eq!(
            file(&with(named, 0, 0), ROOT).unwrap_err(),
            Error::usage(
                "/etc/wgfw/wg0.conf: its ACL lets user 1000 write it, and it configures root's firewall: setfacl -b /etc/wgfw/wg0.conf"
            )
        );
        let refused = |text: &str, gid: u32, want: &str| {
            let e = file(&with(text, 0, gid), ROOT).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        };
        refused(
            "u::rw g::r g:100:rw m::rw o::r",
            0,
            "its ACL lets group 100 write it",
        );
        // With an ACL the mode's group bits are the mask: the owning group's entry counts.
        refused(
            "u::rw u:1000:r g::rw m::rw o::r",
            100,
            "group 100 may write it",
        );
        for ok in [
            // The mask takes write away from every named entry, and from the owning group.
            "u::rw u:1000:rw g::rw g:100:rw m::r o::r",
            // Root's own entries.
            "u::rw u:0:rw g::r g:0:rw m::rw o::r",
            "u::rw u:1000:r g::r m::rw o::r",
        ] {
            assert!(file(&with(ok, 0, 100), ROOT).is_ok(), "{ok}");
        }
        // A user's own entries, for the user's `plan`.
        assert!(file(&with("u::rw u:1000:rw g::rw m::rw o::r", 1000, 1000), USER).is_ok());
        // What cannot be read is not trusted.
        let mut odd = acl(named);
        odd.pop();
        for bad in [odd, vec![1, 0, 0, 0], vec![]] {
            let p = Perms {
                acl: Some(bad),
                ..perms(0o100644, 0, 0)
            };
            refused_with(&p, "its ACL is not one wgfw-hook can read");
        }
    }

    fn refused_with(p: &Perms, want: &str) {
        let e = file(p, ROOT).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }

    #[test]
    fn directories_above_are_checked_for_who_could_replace_the_file() {
        let f = Some("/etc/wgfw/wg0.conf");
        assert!(check("/etc/wgfw", &perms(0o40755, 0, 0), ROOT, f).is_ok());
        assert_eq!(
            check("/etc/wgfw", &perms(0o40777, 0, 0), ROOT, f).unwrap_err(),
            Error::usage(
                "/etc/wgfw: every user may write it and so replace /etc/wgfw/wg0.conf, which configures root's firewall: chmod o-w /etc/wgfw"
            )
        );
        assert_eq!(
            check("/etc/wgfw", &perms(0o40755, 1000, 0), ROOT, f).unwrap_err(),
            Error::usage(
                "/etc/wgfw: owned by user 1000, who could replace /etc/wgfw/wg0.conf, which configures root's firewall: chown root /etc/wgfw"
            )
        );
        assert!(check("/home/u", &perms(0o40775, 1000, 1000), USER, f).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_at_once_and_a_link_is_followed() {
        let dir = std::env::temp_dir().join(format!("wgfw-trust-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("wg0.conf");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Bounded: were it opened for reading, it would wait for a writer.
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(read(&f).map(|_| ())));
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        if got.is_err() {
            // Let the blocked open go before failing.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(dir.join("real.conf"), "lan = 10.0.0.0/8\n").unwrap();
        std::os::unix::fs::symlink("./sub/../real.conf", dir.join("link.conf")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let linked = read(&dir.join("link.conf"));
        let dangling = read(&dir.join("sub/nothing/there.conf"));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = got.expect("read a FIFO without waiting").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("/wg0.conf: a FIFO, not a regular file: name the config file itself"),
            "{e}"
        );
        assert_eq!(linked.unwrap().unwrap(), "lan = 10.0.0.0/8\n");
        assert_eq!(dangling.unwrap(), None);
    }

    #[test]
    fn a_file_larger_than_the_limit_is_refused_before_it_is_read() {
        let dir = std::env::temp_dir().join(format!("wgfw-trust-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("wg0.conf");
        // Sparse: the size is what counts, and it is known before a byte is read.
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let over = read(&big);
        f.set_len(MAX_FILE_BYTES).unwrap();
        let at = read(&big);
        std::fs::remove_dir_all(&dir).unwrap();
        let e = over.unwrap_err().to_string();
        assert!(
            e.ends_with("/wg0.conf: more than 67108864 bytes: wgfw-hook's limit, far above real use (see LIMITS in wgfw-hook(8))"),
            "{e}"
        );
        assert_eq!(at.unwrap().unwrap().len(), 64 << 20);
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
