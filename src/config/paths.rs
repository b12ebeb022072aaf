//! Where the layers are: the vendor file, the main file and its drop-in directory.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// The files a config is read from, in this order: `vendor`, `main`, then every
/// `*.toml` in `dropins` in lexical (byte) order. Any of them may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPaths {
    /// The OS vendor's (OEM's) defaults; replaced by package upgrades, never edited.
    pub vendor: PathBuf,
    /// The device's or administrator's file.
    pub main: PathBuf,
    /// Drop-ins that override `main`.
    pub dropins: PathBuf,
}

impl ConfigPaths {
    /// The vendor defaults read first, with any `main`.
    pub const VENDOR: &'static str = "/usr/lib/uid2d/uid2d.toml";
    /// The main file when `--config` is not given.
    pub const MAIN: &'static str = "/etc/uid2d/uid2d.toml";

    /// The system layers: [`Self::VENDOR`], [`Self::MAIN`] and `/etc/uid2d/uid2d.toml.d/`.
    pub fn system() -> Self {
        Self::for_file(Path::new(Self::MAIN))
    }

    /// `--config FILE`: FILE in place of the main file, with its drop-ins in `FILE.d/`;
    /// the vendor file is still read first.
    pub fn for_file(main: &Path) -> Self {
        let mut dropins = OsString::from(main.as_os_str());
        dropins.push(".d");
        Self {
            vendor: PathBuf::from(Self::VENDOR),
            main: main.to_owned(),
            dropins: PathBuf::from(dropins),
        }
    }

    /// The files to read in order. Hidden files, names not ending in `.toml` and
    /// directories in the drop-in directory are skipped; a missing directory has none.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the drop-in directory exists but cannot be listed.
    pub fn files(&self) -> Result<Vec<PathBuf>, ConfigError> {
        let unreadable = |source: std::io::Error| ConfigError::Read {
            path: self.dropins.clone(),
            source: source.into(),
        };
        let mut dropins = Vec::new();
        match std::fs::read_dir(&self.dropins) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(unreadable)?;
                    let name = entry.file_name();
                    let bytes = name.as_bytes();
                    // Follows symlinks: a link to a directory is skipped too.
                    if bytes.starts_with(b".")
                        || !bytes.ends_with(b".toml")
                        || entry.path().is_dir()
                    {
                        continue;
                    }
                    dropins.push(name);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unreadable(e)),
        }
        dropins.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut files = vec![self.vendor.clone(), self.main.clone()];
        files.extend(dropins.into_iter().map(|name| self.dropins.join(name)));
        Ok(files)
    }
}
