//! The folder and the files (Unix), trusted only when they are the user's
//! alone: the folder 0700, each entry 0600, both owned by the current
//! user, no symlink followed; entries written to a fresh temporary file
//! (`O_EXCL`, 0600) and renamed over.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags};

use super::entry::{MAX_ENTRY, Refusal};

fn io_refusal(e: &std::io::Error) -> Refusal {
    match e.kind() {
        std::io::ErrorKind::NotFound => Refusal::Missing,
        kind => Refusal::Io(kind),
    }
}

/// Owned by us and shut to everyone else.
fn private(md: &std::fs::Metadata) -> Result<(), Refusal> {
    let uid = rustix::process::getuid().as_raw();
    if md.uid() != uid {
        return Err(Refusal::Foreign { uid: md.uid() });
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Refusal::Exposed { mode });
    }
    Ok(())
}

/// The folder, if it exists and is private.
pub(crate) fn check_folder(dir: &Path) -> Result<(), Refusal> {
    let md = std::fs::symlink_metadata(dir).map_err(|e| io_refusal(&e))?;
    if md.file_type().is_symlink() {
        return Err(Refusal::Symlink);
    }
    if !md.is_dir() {
        return Err(Refusal::NotFolder);
    }
    private(&md)
}

/// Makes the folder (0700) if it is missing, then checks it.
pub(crate) fn ensure_folder(dir: &Path) -> Result<(), Refusal> {
    match check_folder(dir) {
        Err(Refusal::Missing) => {}
        other => return other,
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_refusal(&e))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Another process made it first: check what it made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_refusal(&e)),
    }
    check_folder(dir)
}

/// Reads an entry's bytes: a regular file, not a symlink (`O_NOFOLLOW`),
/// owned by us, 0600 or narrower, at most [`MAX_ENTRY`] bytes. Opening
/// with `O_NONBLOCK` keeps a FIFO planted there from blocking.
pub(crate) fn read_private(path: &Path) -> Result<Vec<u8>, Refusal> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => Refusal::Symlink,
        e => io_refusal(&e.into()),
    })?;
    let mut file = File::from(fd);
    let md = file.metadata().map_err(|e| io_refusal(&e))?;
    if !md.file_type().is_file() {
        return Err(Refusal::NotRegular);
    }
    private(&md)?;
    if md.len() > MAX_ENTRY {
        return Err(Refusal::TooBig);
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_ENTRY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_refusal(&e))?;
    if bytes.len() as u64 > MAX_ENTRY {
        return Err(Refusal::TooBig);
    }
    Ok(bytes)
}

/// Writes `bytes` to `dir/name` through a temporary file made with
/// `O_EXCL` and mode 0600 in the same folder, then renamed over, so a
/// reader sees the old entry or the new one, never half of one.
pub(crate) fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&tmp, flags, Mode::from_raw_mode(0o600))?;
    let mut file = File::from(fd);
    let written = (|| {
        // The umask may only narrow 0600; make it exact anyway.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
