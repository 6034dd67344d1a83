//! Whether anything but this process still holds its network namespace. A namespace lives as
//! long as a process is in it or a file (`ip netns add`'s `/run/netns/NAME`, Docker's) is
//! bound to it; a watcher left in one would keep it, and the tunnel and rules in it, alive
//! after its owner deleted it. The watcher asks here when a bound file goes (`bound_at`, for
//! inotify) and at its safety-net look, and exits when it is the last holder.
//!
//! Holders seen: processes in this PID namespace (`/proc/PID/ns/net`) and nsfs mounts in
//! this and init's mount namespace. A descriptor another process keeps open on the namespace
//! is not seen: then the watcher exits early and the firewall stays as it is (fail closed).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// This process's network namespace: the inode of `/proc/self/ns/net`.
pub(crate) fn own() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

/// The files bound to namespace `ino`, as mountinfo lists them.
pub(crate) fn bound_at(ino: u64) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["/proc/self/mountinfo", "/proc/1/mountinfo"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| nsfs_mounts(&text, ino))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether anything but this process holds namespace `ino`: another process in it, or a
/// file bound to it.
pub(crate) fn held_by_others(ino: u64) -> bool {
    if !bound_at(ino).is_empty() {
        return true;
    }
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    let want = format!("net:[{ino}]");
    procs.flatten().any(|p| {
        let name = p.file_name();
        let name = name.to_string_lossy();
        name.bytes().all(|b| b.is_ascii_digit())
            && name != me
            && std::fs::read_link(p.path().join("ns/net"))
                .is_ok_and(|l| l.as_os_str() == want.as_str())
            && !is_child(&p.path(), &me)
    })
}

/// A program this process runs for a moment (an `iptables-restore`) holds nothing of its own.
fn is_child(proc_dir: &std::path::Path, me: &str) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_string()))
        .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_string))
        .is_some_and(|ppid| ppid == me)
}

/// The mount points of nsfs mounts of `net:[ino]` in a mountinfo text (proc(5): the root is the
/// fourth field, the mount point the fifth, the type after the ` - `).
fn nsfs_mounts(text: &str, ino: u64) -> Vec<PathBuf> {
    let want = format!("net:[{ino}]");
    text.lines()
        .filter_map(|line| {
            let (fields, fs) = line.split_once(" - ")?;
            if !fs.starts_with("nsfs ") {
                return None;
            }
            let mut f = fields.split(' ');
            let root = f.nth(3)?;
            let point = f.next()?;
            (root == want).then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// mountinfo writes a space, tab, newline and backslash in a path as `\040`, `\011`, `\012`,
/// `\134`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|c| (b'0'..=b'7').contains(c))
                .then(|| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
        });
        match (b[i], octal) {
            (b'\\', Some(n)) if n <= 0xff => {
                out.push(n as u8);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsfs_mounts_of_the_namespace_are_found_and_unescaped() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
610 29 0:4 net:[4026532300] /run/netns/wg\\040test rw - nsfs nsfs rw
611 29 0:4 net:[4026532999] /run/netns/other rw - nsfs nsfs rw
612 29 0:4 mnt:[4026532300] /run/x rw - nsfs nsfs rw
613 29 0:4 net:[4026532300] /var/run/docker/netns/abc rw shared:5 - nsfs nsfs rw
bad line
";
        assert_eq!(
            nsfs_mounts(text, 4026532300),
            [
                PathBuf::from("/run/netns/wg test"),
                PathBuf::from("/var/run/docker/netns/abc")
            ]
        );
        assert!(nsfs_mounts(text, 1).is_empty());
        assert_eq!(unescape("a\\134b\\\\c\\9"), "a\\b\\\\c\\9");
    }
}
