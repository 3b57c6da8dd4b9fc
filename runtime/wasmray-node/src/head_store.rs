//! The head's control state on disk: an embedded, crash-safe store (`redb`) in the head's
//! data directory, so that a head killed with SIGKILL and started again on the same
//! directory comes back with its cluster — members, job IDs, actor names, the module
//! registry — and with the cluster's CA and join tokens, so its nodes (whose certificates
//! that CA signed) reconnect and new ones join with the same command.
//!
//! redb: pure Rust, a single file, copy-on-write B-trees committed with a checksummed
//! two-phase commit (a crash leaves the last committed state), one writer at a time (the
//! head is the only one), a stable file format since 1.0. The state is small and changes
//! rarely (a join, a death, a job, a name), so each change rewrites its record in one
//! transaction. What is not stored is re-reported: resources, store use, objects (owners
//! keep their own tables, as in Ray).
//!
//! The directory holds the CA's private key: it is created 0700 and the file 0600.

use std::path::{Path, PathBuf};

/// The file in the data directory.
const FILE: &str = "head.redb";

const RECORDS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("head");

/// Record keys.
const STATE: &str = "state";
const CA_KEY: &str = "ca-key";
const CA_CERT: &str = "ca-cert";
const TOKENS: &str = "tokens";

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum HeadStoreError {
    #[error("head data directory {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("head state in {path}: {error}")]
    Db { path: PathBuf, error: String },
    #[error(
        "another wasmray head uses the data directory {0} (is one running on this machine \
         already?): give this one its own with --data-dir"
    )]
    InUse(PathBuf),
    #[error("head state in {path} does not decode (written by another version?): {error}")]
    Decode { path: PathBuf, error: String },
}

/// Everything a restarted head needs, as stored.
#[derive(Debug)]
pub struct StoredHead {
    pub state: wasmray_sched::HeadState,
    pub ca_key_pem: String,
    pub ca_cert_der: Vec<u8>,
    pub tokens: Vec<wasmray_net::StoredToken>,
}

/// The open store. Owns the database file; one per head.
pub struct HeadStore {
    path: PathBuf,
    db: redb::Database,
    /// Cleared: the cluster ended; nothing is written any more.
    ended: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for HeadStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadStore")
            .field("path", &self.path)
            .finish()
    }
}

impl HeadStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<HeadStore, HeadStoreError> {
        let io = |error| HeadStoreError::Io {
            path: dir.to_owned(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let path = dir.join(FILE);
        let db = redb::Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => HeadStoreError::InUse(dir.to_owned()),
            e => HeadStoreError::Db {
                path: path.clone(),
                error: e.to_string(),
            },
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(HeadStore {
            path,
            db,
            ended: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn db_error(&self, error: impl std::fmt::Display) -> HeadStoreError {
        HeadStoreError::Db {
            path: self.path.clone(),
            error: error.to_string(),
        }
    }

    fn decode_error(&self, error: impl std::fmt::Display) -> HeadStoreError {
        HeadStoreError::Decode {
            path: self.path.clone(),
            error: error.to_string(),
        }
    }

    /// What an earlier head stored here, if anything (a fresh directory has nothing).
    pub fn load(&self) -> Result<Option<StoredHead>, HeadStoreError> {
        use redb::{ReadableDatabase, ReadableTable};
        let read = self.db.begin_read().map_err(|e| self.db_error(e))?;
        let table = match read.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.db_error(e)),
        };
        let get = |key: &str| -> Result<Option<Vec<u8>>, HeadStoreError> {
            Ok(table
                .get(key)
                .map_err(|e| self.db_error(e))?
                .map(|v| v.value().to_vec()))
        };
        let (Some(state), Some(key), Some(cert)) = (get(STATE)?, get(CA_KEY)?, get(CA_CERT)?)
        else {
            return Ok(None);
        };
        let state = postcard::from_bytes(&state).map_err(|e| self.decode_error(e))?;
        let ca_key_pem = String::from_utf8(key).map_err(|e| self.decode_error(e))?;
        let tokens = match get(TOKENS)? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| self.decode_error(e))?,
            None => Vec::new(),
        };
        Ok(Some(StoredHead {
            state,
            ca_key_pem,
            ca_cert_der: cert,
            tokens,
        }))
    }

    /// Writes records in one transaction: all of them or none survive a crash.
    fn put(&self, records: &[(&str, &[u8])]) -> Result<(), HeadStoreError> {
        if self.ended.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let write = self.db.begin_write().map_err(|e| self.db_error(e))?;
        {
            let mut table = write.open_table(RECORDS).map_err(|e| self.db_error(e))?;
            for (key, value) in records {
                table.insert(*key, *value).map_err(|e| self.db_error(e))?;
            }
        }
        write.commit().map_err(|e| self.db_error(e))
    }

    /// Stores the cluster's CA (its private key too) and the join tokens.
    pub fn save_identity(
        &self,
        ca_key_pem: &str,
        ca_cert_der: &[u8],
        tokens: &[wasmray_net::StoredToken],
    ) -> Result<(), HeadStoreError> {
        let tokens = postcard::to_allocvec(tokens).map_err(|e| self.decode_error(e))?;
        self.put(&[
            (CA_KEY, ca_key_pem.as_bytes()),
            (CA_CERT, ca_cert_der),
            (TOKENS, &tokens),
        ])
    }

    /// Stores the head's control state.
    pub fn save_state(&self, state: &wasmray_sched::HeadState) -> Result<(), HeadStoreError> {
        let bytes = postcard::to_allocvec(state).map_err(|e| self.decode_error(e))?;
        self.put(&[(STATE, &bytes)])
    }

    /// Forgets everything, and writes nothing after (a head stopped cleanly ends its
    /// cluster: the next head on this directory starts a new one).
    pub fn clear(&self) -> Result<(), HeadStoreError> {
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        let write = self.db.begin_write().map_err(|e| self.db_error(e))?;
        write.delete_table(RECORDS).map_err(|e| self.db_error(e))?;
        write.commit().map_err(|e| self.db_error(e))
    }
}
