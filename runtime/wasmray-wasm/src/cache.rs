//! The on-disk cache of compiled modules.
//!
//! An entry is named by the module's SHA-256 and a hash of the engine's compatibility
//! fingerprint (`Engine::precompile_compatibility_hash`), so a different wasmtime version or
//! engine configuration never loads an artifact compiled for another. Entries are written to a
//! temporary file and renamed into place, so a crash never leaves half an artifact.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmray_core::ModuleId;
use wasmtime::{Engine, Module};

/// Names how modules are prepared before compiling; bump it when that changes.
const PREPARATION: &str = "wasmray: export __stack_pointer, v1";

#[derive(Debug, Clone)]
pub(crate) struct ModuleCache {
    dir: PathBuf,
    engine_key: u64,
}

impl ModuleCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // What the host does to a module before compiling it (see `stack_pointer.rs`): a
        // change there must not load artifacts prepared the old way.
        PREPARATION.hash(&mut hasher);
        Self {
            dir,
            engine_key: hasher.finish(),
        }
    }

    fn path(&self, id: &ModuleId) -> PathBuf {
        self.dir
            .join(format!("{id}-{:016x}.cwasm", self.engine_key))
    }

    /// The cached compilation of `id`, if there is a usable one.
    pub(crate) fn load(&self, engine: &Engine, id: &ModuleId) -> Option<Module> {
        let path = self.path(id);
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime requires that the file be an artifact produced by
        // `Module::serialize` for a compatible engine. Files in this directory are only
        // written by `store` below (via rename of a complete file), and their names carry the
        // engine's compatibility hash; wasmtime also checks the header and refuses a
        // mismatched artifact with an error, which we treat as a miss. The cache directory
        // belongs to the user running the node, as does any other code they run.
        match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(module) => Some(module),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring unusable cached module");
                None
            }
        }
    }

    /// Saves a compiled module; failures are logged, not fatal (the next run compiles again).
    pub(crate) fn store(&self, id: &ModuleId, module: &Module) {
        if let Err(error) = self.try_store(id, module) {
            tracing::warn!(dir = %self.dir.display(), %error, "could not cache compiled module");
        }
    }

    fn try_store(&self, id: &ModuleId, module: &Module) -> Result<(), Box<dyn std::error::Error>> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = module.serialize()?;
        let path = self.path(id);
        let tmp = tmp_path(&path);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// A `Hasher` with a fixed, documented function, so keys agree across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }
}
