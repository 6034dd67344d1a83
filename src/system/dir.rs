//! A directory of root's records (`/run/wgfw`, a namespace's `netns-*`), trusted only when no
//! other user could have put anything in it: root's (the caller's) and writable by nobody else.
//! It is opened once, without following a link, and checked on the opened descriptor; the files
//! in it are opened relative to that descriptor, never following a link, never blocking (a FIFO
//! in place of a record), and read only when they are regular files. A write goes to a new
//! temporary file, created exclusively, renamed over the record. So nothing another user
//! planted (a link to a root-owned file, a FIFO, a directory of their own) can make root write
//! elsewhere or hang.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs::{File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::Error;

use super::sys::{self, flags::*};

/// Why a directory of records is not used.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Another user could have put something in it (or in its lock): one line saying what,
    /// where, and what to do. Nothing was changed.
    Untrusted(Error),
    /// It could not be opened or made.
    Failed(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused::Failed(e)
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        match r {
            Refused::Untrusted(e) | Refused::Failed(e) => e,
        }
    }
}

fn untrusted(path: &Path, what: &str, fix: &str) -> Refused {
    let p = path.display();
    Refused::Untrusted(Error::system(format!(
        "{p}: {what}: remove it ({fix} {p}) and run again"
    )))
}

fn failed(what: &str, path: &Path, e: io::Error) -> Refused {
    Refused::Failed(Error::system(format!(
        "cannot {what} {}: {e}",
        path.display()
    )))
}

/// A directory of records, opened and trusted.
#[derive(Debug)]
pub(crate) struct Dir {
    file: File,
    path: PathBuf,
    /// The names already warned about, so that a strange file is reported once.
    warned: RefCell<BTreeSet<String>>,
}

impl Dir {
    /// The directory at `path`, made (0700) where it is missing.
    pub(crate) fn open(path: &Path) -> Result<Dir, Refused> {
        match std::fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed("create", path, e)),
        }
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            .open(path);
        Dir::checked(opened, path.to_path_buf())
    }

    /// The directory `name` in this one, made (0700) where missing when `create`, else None.
    pub(crate) fn child(&self, name: &str, create: bool) -> Result<Option<Dir>, Refused> {
        let path = self.path.join(name);
        if create {
            match sys::mkdir_at(&self.file, name, 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed("create", &path, e)),
            }
        }
        let flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        match sys::open_at(&self.file, name, flags, 0) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => Ok(None),
            opened => Dir::checked(opened.map(File::from), path).map(Some),
        }
    }

    /// Trusts the opened directory only when it is the caller's and no other user may write
    /// it; makes it private (0700) where others may read it.
    fn checked(opened: io::Result<File>, path: PathBuf) -> Result<Dir, Refused> {
        let file = match opened {
            Ok(f) => f,
            // O_DIRECTORY refuses anything but a directory (a link too, with O_NOFOLLOW).
            Err(e) if [Some(ELOOP), Some(ENOTDIR)].contains(&e.raw_os_error()) => {
                let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
                let what = if link {
                    "a symbolic link, not a directory"
                } else {
                    "not a directory"
                };
                return Err(untrusted(&path, what, "rm"));
            }
            Err(e) => return Err(failed("open", &path, e)),
        };
        let meta = file.metadata().map_err(|e| failed("inspect", &path, e))?;
        if let Some(what) = not_private(&meta, sys::geteuid()) {
            return Err(untrusted(&path, &what, "rm -r"));
        }
        if meta.mode() & 0o077 != 0 {
            file.set_permissions(Permissions::from_mode(0o700))
                .map_err(|e| failed("make private", &path, e))?;
        }
        Ok(Dir {
            file,
            path,
            warned: RefCell::default(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `name`, opened for locking: a regular file of the caller's, made (0600) where missing.
    pub(crate) fn lock_file(&self, name: &str) -> Result<File, Refused> {
        let path = self.path.join(name);
        let flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        let file = match sys::open_at(&self.file, name, flags, 0o600) {
            Ok(fd) => File::from(fd),
            Err(e) if e.raw_os_error() == Some(ELOOP) => {
                return Err(untrusted(&path, "a symbolic link", "rm"));
            }
            Err(e) => return Err(failed("open", &path, e)),
        };
        let meta = file.metadata().map_err(|e| failed("inspect", &path, e))?;
        if let Some(kind) = strange(&meta) {
            return Err(untrusted(
                &path,
                &format!("{kind}, not a regular file"),
                "rm",
            ));
        }
        if let Some(what) = not_private(&meta, sys::geteuid()) {
            return Err(untrusted(&path, &what, "rm"));
        }
        Ok(file)
    }

    /// The text of `name`; None where there is none, and where it is not a regular file (a
    /// link, a FIFO, a device: reported once, never followed or opened for long).
    pub(crate) fn read(&self, name: &str) -> Result<Option<String>, Error> {
        let path = self.path.join(name);
        let cannot = |e: io::Error| Error::system(format!("cannot read {}: {e}", path.display()));
        let flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
        let mut file = match sys::open_at(&self.file, name, flags, 0) {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(ELOOP) => {
                self.ignore(name, "a symbolic link");
                return Ok(None);
            }
            Err(e) => return Err(cannot(e)),
        };
        let meta = file.metadata().map_err(cannot)?;
        if let Some(kind) = strange(&meta) {
            self.ignore(name, kind);
            return Ok(None);
        }
        let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        file.read_to_string(&mut text).map_err(cannot)?;
        Ok(Some(text))
    }

    fn ignore(&self, name: &str, kind: &str) {
        if self.warned.borrow_mut().insert(name.to_string()) {
            crate::errln!(
                "wgfw-hook: warning: {}: {kind}, not a record the hook wrote: ignored",
                self.path.join(name).display()
            );
        }
    }

    /// Writes `name` whole, through a new temporary file (`.NAME.tmp`, created exclusively) that
    /// replaces it, so that a killed run leaves the old or the new. Not synced: the records
    /// describe the kernel's state, which a crash or power loss empties too (and /run is memory
    /// on systemd hosts); an fsync per record cost `up` 0.5-1 ms each where /run is on disk.
    pub(crate) fn write(&self, name: &str, text: &str) -> Result<(), Error> {
        let tmp = format!(".{name}.tmp");
        let result = (|| {
            let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
            let fd = match sys::open_at(&self.file, &tmp, flags, 0o600) {
                // What a killed run left (or anything else): its entry goes, nothing is followed.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    sys::unlink_at(&self.file, &tmp, false)?;
                    sys::open_at(&self.file, &tmp, flags, 0o600)?
                }
                fd => fd?,
            };
            File::from(fd).write_all(text.as_bytes())?;
            sys::rename_at(&self.file, &tmp, name)
        })();
        result.map_err(|e| {
            Error::system(format!(
                "cannot write {}: {e}",
                self.path.join(name).display()
            ))
        })
    }

    /// Removes the entry `name` (a link itself, not what it points to); a missing one is fine.
    pub(crate) fn remove(&self, name: &str) -> Result<(), Error> {
        match sys::unlink_at(&self.file, name, false) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::system(format!(
                "cannot remove {}: {e}",
                self.path.join(name).display()
            ))),
        }
    }

    /// Removes the empty directory `name`, if it can.
    pub(crate) fn remove_child(&self, name: &str) {
        let _ = sys::unlink_at(&self.file, name, true);
    }

    /// The names in the directory, read through the opened descriptor.
    pub(crate) fn names(&self) -> Vec<String> {
        std::fs::read_dir(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

const ENOTDIR: i32 = 20;
const ELOOP: i32 = 40;

/// What makes a directory or file not only `me`'s: another owner, or others' write bits.
fn not_private(meta: &Metadata, me: u32) -> Option<String> {
    let owner = meta.uid();
    if owner != me {
        let who = if me == 0 {
            "root".to_string()
        } else {
            format!("user {me}")
        };
        return Some(format!("owned by user {owner}, not {who}"));
    }
    let mode = meta.mode() & 0o7777;
    (mode & 0o022 != 0).then(|| format!("other users may write it (mode {mode:04o})"))
}

/// What a file is when it is not a regular file.
fn strange(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_dir() {
        Some("a directory")
    } else {
        Some("not a regular file")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A scratch directory of the test's own, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("wgfw-dir-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, Permissions::from_mode(0o700)).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T, Refused>) -> String {
        match r {
            Err(Refused::Untrusted(e)) => e.to_string(),
            other => panic!("not refused as untrusted: {other:?}"),
        }
    }

    #[test]
    fn a_directory_others_may_write_or_a_link_is_refused_and_left_alone() {
        let s = Scratch::new("refused");
        let open = Dir::open(&s.0).unwrap();
        let run = s.0.join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, Permissions::from_mode(0o777)).unwrap();
        let e = refusal(Dir::open(&run));
        let p = run.display();
        assert_eq!(
            e,
            format!(
                "{p}: other users may write it (mode 0777): remove it (rm -r {p}) and run again"
            )
        );
        let e = refusal(open.child("run", false));
        assert!(e.contains("mode 0777"), "{e}");
        // Nothing was changed: the mode is still what it was.
        let mode = std::fs::metadata(&run).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o777);
        symlink(&run, s.0.join("link")).unwrap();
        let e = refusal(open.child("link", true));
        assert!(
            e.contains("a symbolic link, not a directory: remove it (rm "),
            "{e}"
        );
        std::fs::write(s.0.join("file"), "").unwrap();
        assert!(refusal(open.child("file", false)).contains("not a directory"));
        if sys::geteuid() == 0 {
            std::fs::set_permissions(&run, Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&run, Some(1000), None).unwrap();
            let e = refusal(Dir::open(&run));
            assert!(
                e.contains("owned by user 1000, not root: remove it (rm -r "),
                "{e}"
            );
        }
    }

    #[test]
    fn a_directory_others_may_read_is_made_private() {
        let s = Scratch::new("private");
        let run = s.0.join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, Permissions::from_mode(0o755)).unwrap();
        let dir = Dir::open(&run).unwrap();
        assert_eq!(std::fs::metadata(&run).unwrap().mode() & 0o7777, 0o700);
        assert!(dir.child("netns-1", false).unwrap().is_none());
        dir.child("netns-1", true).unwrap().unwrap();
        assert_eq!(
            std::fs::metadata(run.join("netns-1")).unwrap().mode() & 0o7777,
            0o700
        );
    }

    #[test]
    fn files_planted_in_place_of_records_are_never_followed_nor_waited_for() {
        let s = Scratch::new("planted");
        let victim = s.0.join("victim");
        std::fs::write(&victim, "root's own file\n").unwrap();
        let dir = Dir::open(&s.0.join("run")).unwrap();
        let run = dir.path().to_path_buf();
        // A link in place of a record, of a temporary file, of the lock.
        symlink(&victim, run.join("wg0.state")).unwrap();
        symlink(&victim, run.join(".wg1.state.tmp")).unwrap();
        symlink(&victim, run.join("lock")).unwrap();
        assert_eq!(dir.read("wg0.state").unwrap(), None);
        dir.write("wg1.state", "iface=wg1\n").unwrap();
        assert_eq!(dir.read("wg1.state").unwrap().unwrap(), "iface=wg1\n");
        let e = refusal(dir.lock_file("lock"));
        assert!(e.contains("/lock: a symbolic link: remove it (rm "), "{e}");
        dir.remove("wg0.state").unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "root's own file\n"
        );
        // A FIFO: neither read nor waited for (open would block without O_NONBLOCK).
        let fifo = run.join("wg2.state");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert_eq!(dir.read("wg2.state").unwrap(), None);
            std::fs::remove_file(run.join("lock")).unwrap();
            std::process::Command::new("mkfifo")
                .arg(run.join("lock"))
                .status()
                .unwrap();
            let e = refusal(dir.lock_file("lock"));
            assert!(e.contains("/lock: a FIFO, not a regular file"), "{e}");
        }
        // A directory where a record should be: ignored too.
        std::fs::create_dir(run.join("wg3.state")).unwrap();
        assert_eq!(dir.read("wg3.state").unwrap(), None);
        let mut names = dir.names();
        names.sort();
        assert!(names.contains(&"wg1.state".to_string()), "{names:?}");
    }
}
