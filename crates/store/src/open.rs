//! Opening the store: create, check, migrate, or move a damaged file aside.
//!
//! The rule: a file cdra cannot trust never stops cdra (it is renamed to
//! `<path>.corrupt-<unix time>` and an empty store takes its place), but nothing that may be
//! an operator's mistake or a passing condition destroys or hides data: a newer schema, a
//! file locked by another process, a directory, a permission or disk error are errors and
//! leave the file where it is.
//!
//! Every existing file is opened with redb's integrity check (`check_integrity_on_open`):
//! the checksum of every page of the committed trees is verified before anything is read,
//! so a garbled file fails with `StorageError::Corrupted` instead of being trusted (redb's
//! docs: "where a plain open may panic"; the release profile aborts on panic, so a panic
//! would be a crash loop). The open is also run under `catch_unwind` as a second line
//! for builds that unwind.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, DatabaseError, MultimapTableHandle, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError,
    TableDefinition, TableError, TableHandle,
};

use crate::{OpenReport, Store, StoreConfig, StoreError, RECORD_FORMAT, SCHEMA_VERSION};

/// Metadata: name -> bytes (kept untyped so that any future schema can still be read).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("cdra_meta");
/// Records: `ClientKey::as_bytes()` -> `encode_record(..)`.
pub(crate) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cdra_records");
/// Schema 0 (the prototype): records in `clients`, no metadata.
pub(crate) const V0_RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("clients");

const KEY_SCHEMA: &str = "schema_version";
const KEY_RECORD_FORMAT: &str = "record_format";
const KEY_CREATED_BY: &str = "created_by";

/// redb's page cache. The records are read once at start-up and then only written, and the
/// in-memory table is the truth, so a small cache is enough (redb's default is 1 GiB; 16 MiB keeps a 1M-client
/// daemon under 512 MiB resident, see BENCHMARKS.md).
const CACHE_BYTES: usize = 16 << 20;

/// Why an existing file could not be used.
enum Refusal {
    /// Not trustworthy: move it aside, start empty. The text says why.
    Damaged(String),
    /// Stop: the file stays.
    Fatal(StoreError),
}

fn builder() -> redb::Builder {
    let mut b = Database::builder();
    b.set_cache_size(CACHE_BYTES).set_check_integrity_on_open(true);
    b
}

/// Open or create the store. A damaged or truncated file never stops cdra: it is renamed to
/// `<path>.corrupt-<unix time>`, one warning is put in [`OpenReport::warning`], and an
/// empty store is created. A store whose schema version (or record format) is newer than
/// this build is refused ([`StoreError::NewerSchema`]) and left in place; an older one is
/// migrated. A file held by another process is refused ([`StoreError::Locked`]).
pub fn open(config: &StoreConfig) -> Result<(Store, OpenReport), StoreError> {
    let path = &config.path;
    let existing = match fs::metadata(path) {
        Ok(m) if m.is_dir() || !m.is_file() => return Err(StoreError::NotAFile { path: path.clone() }),
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(StoreError::io(path, "cannot read the file's metadata", e)),
    };
    let refusal = match existing {
        None => return create(config, OpenReport::default()),
        Some(0) => Refusal::Damaged("the file is empty".into()),
        Some(_) => match open_existing(config) {
            Err(Refusal::Damaged(_)) if newer_redb_format(path).is_some() => {
                let found = newer_redb_format(path).unwrap_or_default();
                return Err(StoreError::NewerFileFormat { path: path.clone(), found, supported: REDB_FILE_FORMAT });
            }
            Ok(ok) => return Ok(ok),
            Err(r) => r,
        },
    };
    match refusal {
        Refusal::Fatal(e) => Err(e),
        Refusal::Damaged(cause) => {
            let aside = move_aside(path)?;
            let warning = format!(
                "store {}: cannot be used ({cause}); moved it to {} and started with an empty store",
                path.display(),
                aside.display()
            );
            create(config, OpenReport { moved_aside: Some(aside), warning: Some(warning), ..OpenReport::default() })
        }
    }
}

/// A new, empty store at `config.path` (which does not exist).
fn create(config: &StoreConfig, mut report: OpenReport) -> Result<(Store, OpenReport), StoreError> {
    let path = &config.path;
    let db = match guarded(|| builder().create(path)) {
        Ok(db) => db,
        Err(e) => {
            return Err(
                classify_open_error(path, e).map_or_else(|e| e, |cause| StoreError::db(path, "cannot create", cause))
            )
        }
    };
    sync_parent(path);
    let txn = begin_write(&db).map_err(|e| StoreError::db(path, "cannot initialise", e))?;
    init_schema(&txn).map_err(|e| StoreError::db(path, "cannot initialise", e))?;
    txn.commit().map_err(|e| StoreError::db(path, "cannot initialise", e))?;
    report.records = 0;
    Ok((Store { db, config: config.clone() }, report))
}

/// A write transaction as every one of ours is: fsync'd before `commit` returns, in two
/// phases (see `writer::write_batch`).
pub(crate) fn begin_write(db: &Database) -> Result<redb::WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
}

/// Run a redb call that may panic on a damaged file.
fn guarded<T>(f: impl FnOnce() -> Result<T, DatabaseError>) -> Result<T, OpenFailure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(OpenFailure::Db(e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            Err(OpenFailure::Panicked(what))
        }
    }
}

enum OpenFailure {
    Db(DatabaseError),
    Panicked(String),
}

/// Err(fatal error) or Ok(cause of damage).
fn classify_open_error(path: &Path, e: OpenFailure) -> Result<String, StoreError> {
    let e = match e {
        OpenFailure::Panicked(what) => return Ok(format!("the database engine panicked reading it: {what}")),
        OpenFailure::Db(e) => e,
    };
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            Err(StoreError::Locked { path: path.to_path_buf() })
        }
        DatabaseError::UpgradeRequired(v) => Ok(format!("redb file format {v}, never written by cdra")),
        DatabaseError::Storage(StorageError::Io(io)) => io_failure(path, io),
        DatabaseError::Storage(StorageError::Corrupted(what)) => Ok(format!("corrupted: {what}")),
        DatabaseError::Storage(StorageError::ValueTooLarge(n)) => Ok(format!("corrupted: a value of {n} bytes")),
        other => Ok(other.to_string()),
    }
}

/// An I/O error while opening: an error the system reported (permissions, EIO, disk full)
/// is the environment's problem and stops; one redb synthesised (short read) is damage.
fn io_failure(path: &Path, e: io::Error) -> Result<String, StoreError> {
    if e.raw_os_error().is_some() || e.kind() == io::ErrorKind::PermissionDenied {
        Err(StoreError::io(path, "cannot open", e))
    } else {
        Ok(format!("unreadable: {e}"))
    }
}

fn open_existing(config: &StoreConfig) -> Result<(Store, OpenReport), Refusal> {
    let path = &config.path;
    let db = guarded(|| builder().open(path))
        .map_err(|e| classify_open_error(path, e).map_or_else(Refusal::Fatal, Refusal::Damaged))?;
    let mut report = OpenReport::default();
    // The schema check reads small tables only; the integrity check already vouched for them.
    let checked = catch_unwind(AssertUnwindSafe(|| check_schema(path, &db)));
    match checked {
        Ok(Ok(Schema::Current)) => {}
        Ok(Ok(Schema::Fresh | Schema::OlderRecords)) => {
            let init = || -> Result<(), redb::Error> {
                let txn = begin_write(&db)?;
                init_schema(&txn)?;
                txn.commit()?;
                Ok(())
            };
            init().map_err(|e| schema_failure(path, "cannot initialise", e))?;
        }
        Ok(Ok(Schema::Old(v))) => {
            migrate(&db, v).map_err(|e| schema_failure(path, "cannot migrate", e))?;
            report.migrated_from = Some(v);
        }
        Ok(Err(r)) => return Err(r),
        Err(_) => return Err(Refusal::Damaged("the database engine panicked reading its tables".into())),
    }
    report.records = match catch_unwind(AssertUnwindSafe(|| count(&db))) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err(Refusal::Damaged(format!("records table unreadable: {e}"))),
        Err(_) => return Err(Refusal::Damaged("the database engine panicked counting records".into())),
    };
    Ok((Store { db, config: config.clone() }, report))
}

/// A failure writing the schema: tables of other types than ours (another program's file)
/// or corruption is damage; anything else (I/O, disk full) stops.
fn schema_failure(path: &Path, doing: &'static str, e: redb::Error) -> Refusal {
    use redb::Error as E;
    match e {
        E::Corrupted(_)
        | E::ValueTooLarge(_)
        | E::TableTypeMismatch { .. }
        | E::TableIsMultimap(_)
        | E::TableIsNotMultimap(_)
        | E::TypeDefinitionChanged { .. } => Refusal::Damaged(format!("{doing}: {e}")),
        e => Refusal::Fatal(StoreError::db(path, doing, e)),
    }
}

/// Open the store again from the writer thread (after a failed commit).
pub(crate) fn reopen(path: &Path) -> Result<Database, String> {
    guarded(|| builder().open(path)).map_err(|e| match e {
        OpenFailure::Db(e) => e.to_string(),
        OpenFailure::Panicked(what) => format!("the database engine panicked: {what}"),
    })
}

/// Records in the store (the shared reply templates of format 3, few, are not records).
pub(crate) fn count(db: &Database) -> Result<usize, redb::Error> {
    let txn = db.begin_read()?;
    let t = txn.open_table(RECORDS)?;
    let rows = usize::try_from(t.len()?).unwrap_or(usize::MAX);
    let templates = t.range::<&[u8]>(crate::TEMPLATE_KEYS..)?.count();
    Ok(rows.saturating_sub(templates))
}

enum Schema {
    /// This build's schema.
    Current,
    /// A redb file without any table (created, not initialised).
    Fresh,
    /// An older schema, to migrate.
    Old(u32),
    /// This schema, records of an older format: note the new format in the metadata.
    OlderRecords,
}

fn read_u32(meta: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<Option<u32>, String> {
    let Some(v) = meta.get(key).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let b: [u8; 4] = v.value().try_into().map_err(|_| format!("metadata {key} is not 4 bytes"))?;
    Ok(Some(u32::from_le_bytes(b)))
}

fn check_schema(path: &Path, db: &Database) -> Result<Schema, Refusal> {
    let damaged = |what: String| Refusal::Damaged(what);
    let txn = db.begin_read().map_err(|e| damaged(format!("cannot read: {e}")))?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    for t in txn.list_tables().map_err(|e| damaged(format!("cannot list tables: {e}")))? {
        names.insert(t.name().to_string());
    }
    for t in txn.list_multimap_tables().map_err(|e| damaged(format!("cannot list tables: {e}")))? {
        names.insert(t.name().to_string());
    }
    if !names.contains(META.name()) {
        if names.is_empty() {
            return Ok(Schema::Fresh);
        }
        // Schema 0: `clients`, perhaps with an empty `cdra_records`; anything else is another
        // program's database.
        let known: BTreeSet<String> = [V0_RECORDS.name(), RECORDS.name()].iter().map(|s| s.to_string()).collect();
        if names.is_subset(&known) {
            return Ok(Schema::Old(0));
        }
        let list: Vec<&str> = names.iter().map(String::as_str).take(5).collect();
        return Err(damaged(format!("not a cdra store (tables: {})", list.join(", "))));
    }
    let meta = txn.open_table(META).map_err(|e| damaged(format!("metadata unreadable: {e}")))?;
    let schema = read_u32(&meta, KEY_SCHEMA)
        .map_err(|e| damaged(format!("metadata unreadable: {e}")))?
        .ok_or_else(|| damaged("metadata has no schema version".into()))?;
    if schema > SCHEMA_VERSION {
        return Err(Refusal::Fatal(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: schema,
            supported: SCHEMA_VERSION,
        }));
    }
    let format = read_u32(&meta, KEY_RECORD_FORMAT).map_err(|e| damaged(format!("metadata unreadable: {e}")))?;
    if let Some(found) = format.filter(|f| *f > RECORD_FORMAT) {
        return Err(Refusal::Fatal(StoreError::NewerRecordFormat {
            path: path.to_path_buf(),
            found,
            supported: RECORD_FORMAT,
        }));
    }
    if schema < SCHEMA_VERSION {
        return Ok(Schema::Old(schema));
    }
    match txn.open_table(RECORDS) {
        Ok(_) => {}
        Err(TableError::TableDoesNotExist(_)) => return Err(damaged("the records table is missing".into())),
        Err(e) => return Err(damaged(format!("records table unreadable: {e}"))),
    }
    if format != Some(RECORD_FORMAT) {
        // Older records keep their own version byte (the core decodes or drops each one);
        // from now on the store also holds this build's.
        return Ok(Schema::OlderRecords);
    }
    Ok(Schema::Current)
}

/// Write this build's metadata and create the records table.
fn init_schema(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())?;
        let format = match meta.get(KEY_RECORD_FORMAT)? {
            Some(v) => <[u8; 4]>::try_from(v.value()).map(u32::from_le_bytes).unwrap_or(0),
            None => 0,
        };
        meta.insert(KEY_RECORD_FORMAT, format.max(RECORD_FORMAT).to_le_bytes().as_slice())?;
        let created_by = concat!("cdra-store ", env!("CARGO_PKG_VERSION"));
        if meta.get(KEY_CREATED_BY)?.is_none() {
            meta.insert(KEY_CREATED_BY, created_by.as_bytes())?;
        }
    }
    txn.open_table(RECORDS)?;
    Ok(())
}

/// Bring a store from schema `from` to [`SCHEMA_VERSION`], in one transaction: a crash
/// during the migration leaves the old store as it was.
fn migrate(db: &Database, from: u32) -> Result<(), redb::Error> {
    let txn = begin_write(db)?;
    let mut version = from;
    while version < SCHEMA_VERSION {
        // Each future schema adds its step: `if version == 1 { migrate_1_to_2(&txn)? }`.
        if version == 0 {
            migrate_0_to_1(&txn)?;
        }
        version += 1;
    }
    init_schema(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Schema 0 kept the records in `clients` and had no metadata.
fn migrate_0_to_1(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let exists = txn.list_tables()?.any(|t| t.name() == V0_RECORDS.name());
    if !exists {
        return Ok(());
    }
    {
        let old = txn.open_table(V0_RECORDS)?;
        let mut new = txn.open_table(RECORDS)?;
        for row in old.iter()? {
            let (k, v) = row?;
            new.insert(k.value(), v.value())?;
        }
    }
    txn.delete_table(V0_RECORDS)?;
    Ok(())
}

/// The redb file format this build reads (redb 4's `FILE_FORMAT_VERSION3`).
const REDB_FILE_FORMAT: u8 = 3;

/// If the file has redb's magic number and both commit slots say one file format newer than
/// [`REDB_FILE_FORMAT`], that format: a newer cdra (with a newer redb) wrote it, and it must
/// not be moved aside as damaged. Layout (redb `header.rs`): 9 bytes of magic, then at 64 and
/// 192 the two 128-byte commit slots, each starting with its format version.
fn newer_redb_format(path: &Path) -> Option<u8> {
    use std::io::Read;
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    let mut head = [0u8; 320];
    fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    let (a, b) = (head[64], head[192]);
    (head.starts_with(&MAGIC) && a == b && a > REDB_FILE_FORMAT).then_some(a)
}

/// Rename a damaged file to `<path>.corrupt-<unix time>` (then `-2`, `-3`.. if taken).
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{now}"));
    let mut target = PathBuf::from(&name);
    let mut n = 1;
    while target.exists() && n < 1000 {
        n += 1;
        let mut other = name.clone();
        other.push(format!("-{n}"));
        target = PathBuf::from(other);
    }
    fs::rename(path, &target).map_err(|e| StoreError::io(path, "cannot move the damaged file aside", e))?;
    sync_parent(path);
    Ok(target)
}

/// Make a created or renamed directory entry durable (best effort).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}
