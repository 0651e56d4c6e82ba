//! Errors: each one names the file and says what to do, on one line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the store cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The path exists but is a directory (or another non-file).
    NotAFile {
        /// The configured path.
        path: PathBuf,
    },
    /// Another process (or another `open` in this one) holds the file.
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The store was written by a newer cdra (schema version).
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest this build understands.
        supported: u32,
    },
    /// The store holds records in a newer format.
    NewerRecordFormat {
        /// The file.
        path: PathBuf,
        /// Its record format.
        found: u32,
        /// The newest this build understands.
        supported: u32,
    },
    /// The file was written by a newer version of the database engine (redb file format).
    NewerFileFormat {
        /// The file.
        path: PathBuf,
        /// Its redb file format.
        found: u8,
        /// The newest this build reads.
        supported: u8,
    },
    /// A system call failed (permissions, missing directory, disk full...).
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The database engine failed.
    Db {
        /// The file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The cause, as redb says it.
        cause: String,
    },
    /// The writer thread is gone (it could not be started, or it panicked).
    WriterGone {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
}

impl StoreError {
    pub(crate) fn db(path: &Path, doing: &'static str, e: impl fmt::Display) -> Self {
        StoreError::Db { path: path.to_path_buf(), doing, cause: e.to_string() }
    }

    pub(crate) fn io(path: &Path, doing: &'static str, source: std::io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), doing, source }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::NotAFile { path }
            | StoreError::Locked { path }
            | StoreError::NewerSchema { path, .. }
            | StoreError::NewerRecordFormat { path, .. }
            | StoreError::NewerFileFormat { path, .. }
            | StoreError::Io { path, .. }
            | StoreError::Db { path, .. }
            | StoreError::WriterGone { path, .. } => path,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotAFile { path } => {
                write!(f, "store {}: is a directory or not a regular file; give the path of a file", path.display())
            }
            StoreError::Locked { path } => write!(
                f,
                "store {}: already open in another process (is another cdra running with the same store?)",
                path.display()
            ),
            StoreError::NewerSchema { path, found, supported } => write!(
                f,
                "store {}: schema version {found} is newer than this cdra understands ({supported}); \
                 was cdra downgraded? run the newer cdra, or move the file away to start with an empty store",
                path.display()
            ),
            StoreError::NewerRecordFormat { path, found, supported } => write!(
                f,
                "store {}: record format {found} is newer than this cdra understands ({supported}); \
                 was cdra downgraded? run the newer cdra, or move the file away to start with an empty store",
                path.display()
            ),
            StoreError::NewerFileFormat { path, found, supported } => write!(
                f,
                "store {}: written in redb file format {found}, newer than this cdra reads ({supported}); \
                 was cdra downgraded? run the newer cdra, or move the file away to start with an empty store",
                path.display()
            ),
            StoreError::Io { path, doing, source } => write!(f, "store {}: {doing}: {source}", path.display()),
            StoreError::Db { path, doing, cause } => write!(f, "store {}: {doing}: {cause}", path.display()),
            StoreError::WriterGone { path, cause } => {
                write!(f, "store {}: the writer thread is gone: {cause}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
