//! Reading a file that root put in place (a config layer, `ca_file`, the device key): a
//! regular file only, and never more than a limit set for its kind.
//!
//! A FIFO would block the open (start-up hung for ever, a reload's thread for as long as
//! nobody writes), and a device such as `/dev/zero` never ends: such a path is refused by
//! its type before it is opened, and opened with `O_NONBLOCK` then checked again with
//! `fstat`, so a FIFO swapped in between cannot block either. A regular file larger than
//! the limit is refused by its size, and a file that grows while it is read is read only
//! to the limit plus one byte.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// A FIFO, device, socket or directory (the name of which one).
    #[error("not a regular file but a {0}")]
    NotRegular(&'static str),
    /// More bytes than the limit for this kind of file; nothing past the limit was read.
    #[error("larger than {max} bytes, the most this file may hold")]
    TooLarge { max: u64 },
    /// The system's error (permission, I/O).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Opens `path` for reading if it is a regular file (following symlinks): `Ok(None)` when
/// it does not exist (also a dangling symlink). Never blocks on a FIFO.
pub(crate) fn open(path: &Path) -> Result<Option<File>, FileError> {
    match std::fs::metadata(path) {
        Ok(meta) => regular(meta.file_type())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Replaced between the two looks: what was opened is what counts.
    regular(file.metadata()?.file_type())?;
    Ok(Some(file))
}

/// The whole of the regular file `path`, at most `max` bytes (see [`open`]); `Ok(None)`
/// when it does not exist.
pub(crate) fn read(path: &Path, max: u64) -> Result<Option<Vec<u8>>, FileError> {
    let Some(file) = open(path)? else {
        return Ok(None);
    };
    let len = file.metadata()?.len();
    if len > max {
        return Err(FileError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(FileError::TooLarge { max });
    }
    Ok(Some(bytes))
}

fn regular(kind: FileType) -> Result<(), FileError> {
    let name = if kind.is_file() {
        return Ok(());
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_dir() {
        "directory"
    } else {
        "special file"
    };
    Err(FileError::NotRegular(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_up_to_the_limit_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.toml");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read(&path, 5).expect("read"), Some(b"12345".to_vec()));
        assert!(matches!(
            read(&path, 4),
            Err(FileError::TooLarge { max: 4 })
        ));
        assert!(read(&dir.path().join("missing"), 5)
            .expect("read")
            .is_none());
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("missing", &dangling).expect("symlink");
        assert!(read(&dangling, 5).expect("read").is_none());

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        // No writer: an open that blocked would hang this test.
        assert!(matches!(read(&fifo, 5), Err(FileError::NotRegular("FIFO"))));
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(matches!(
            read(&zero, 5),
            Err(FileError::NotRegular("character device"))
        ));
        assert!(matches!(
            read(dir.path(), 5),
            Err(FileError::NotRegular("directory"))
        ));
    }
}
