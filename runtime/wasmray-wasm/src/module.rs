//! A loaded guest module: compiled, checked against the ABI, and pre-linked for fast
//! instantiation.
//!
//! Checking happens once, at load: the module must be a core wasm module built with the SDK (it
//! exports `wasmray_abi_version` returning our version, and a memory), and every import must be
//! one the host provides. Problems become [`WasmError`]s that name the module and the problem.

use crate::WasmError;
use crate::state::GuestState;
use std::collections::HashSet;
use wasmray_abi::{
    ABI_VERSION, ACTOR_CALL_EXPORT_PREFIX, ACTOR_NEW_EXPORT_PREFIX, IMPORT_MODULE,
    TASK_EXPORT_PREFIX, exports,
};
use wasmray_core::ModuleId;
use wasmtime::{ExternType, InstancePre, Linker, Module, ValType};

/// Import modules the host links.
const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// A module ready to instantiate.
pub struct GuestModule {
    pub(crate) id: ModuleId,
    pub(crate) name: String,
    pub(crate) pre: InstancePre<GuestState>,
    exports: HashSet<String>,
    initial_memory_bytes: usize,
}

impl std::fmt::Debug for GuestModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestModule")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl GuestModule {
    pub(crate) fn new(
        id: ModuleId,
        name: String,
        module: &Module,
        linker: &Linker<GuestState>,
    ) -> Result<Self, WasmError> {
        check_exports(&name, module)?;
        let pre =
            linker
                .instantiate_pre(module)
                .map_err(|error| match first_unknown_import(module) {
                    Some(import) => WasmError::UnknownImport {
                        module: name.clone(),
                        import,
                    },
                    None => WasmError::Link {
                        module: name.clone(),
                        message: format!("{error:#}"),
                    },
                })?;
        let exports = module.exports().map(|e| e.name().to_owned()).collect();
        let initial_memory_bytes = match module.get_export(exports::MEMORY) {
            Some(ExternType::Memory(ty)) => (ty.minimum() as usize).saturating_mul(65536),
            _ => usize::MAX,
        };
        Ok(Self {
            id,
            name,
            pre,
            exports,
            initial_memory_bytes,
        })
    }

    pub fn id(&self) -> ModuleId {
        self.id
    }

    /// The name the module was loaded under (its file name), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the module defines remote function `function`.
    pub fn has_function(&self, function: &str) -> bool {
        self.exports
            .contains(&format!("{TASK_EXPORT_PREFIX}{function}"))
    }

    /// Whether the module defines actor class `class`.
    pub fn has_actor_class(&self, class: &str) -> bool {
        self.exports
            .contains(&format!("{ACTOR_NEW_EXPORT_PREFIX}{class}"))
    }

    /// Whether the module defines method `method` (`Class::method`) of an actor class.
    pub fn has_actor_method(&self, method: &str) -> bool {
        self.exports
            .contains(&format!("{ACTOR_CALL_EXPORT_PREFIX}{method}"))
    }

    /// Bytes of the memory the module starts with (its data image lives there).
    pub fn initial_memory_bytes(&self) -> usize {
        self.initial_memory_bytes
    }

    /// Whether the module has a `main` to run as a driver.
    pub fn has_main(&self) -> bool {
        self.exports.contains(exports::START)
    }
}

fn check_exports(name: &str, module: &Module) -> Result<(), WasmError> {
    let missing = |export: &'static str| WasmError::MissingExport {
        module: name.to_owned(),
        export,
    };
    match module.get_export(exports::ABI_VERSION) {
        Some(ExternType::Func(ty))
            if ty.params().len() == 0
                && matches!(ty.results().collect::<Vec<_>>()[..], [ValType::I32]) => {}
        _ => return Err(missing(exports::ABI_VERSION)),
    }
    match module.get_export(exports::MEMORY) {
        Some(ExternType::Memory(ty)) if !ty.is_64() && !ty.is_shared() => Ok(()),
        _ => Err(missing(exports::MEMORY)),
    }
}

/// The first import outside what the host provides, as `module::name`.
fn first_unknown_import(module: &Module) -> Option<String> {
    module
        .imports()
        .find(|import| match import.module() {
            IMPORT_MODULE => !wasmray_abi::imports::ALL.contains(&import.name()),
            WASI_MODULE => false,
            _ => true,
        })
        .map(|import| format!("{}::{}", import.module(), import.name()))
}

/// The ABI version a module reports, checked after instantiation.
pub(crate) fn check_abi_version(name: &str, found: i32) -> Result<(), WasmError> {
    if found as u32 == ABI_VERSION {
        Ok(())
    } else {
        Err(WasmError::AbiMismatch {
            module: name.to_owned(),
            found: found as u32,
            expected: ABI_VERSION,
        })
    }
}

/// The initial size, in bytes, of the largest memory `bytes` declares (or imports); `None`
/// when the module cannot be read (compiling it then says why).
pub(crate) fn declared_memory_bytes(bytes: &[u8]) -> Option<u64> {
    let mut largest = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            wasmparser::Payload::MemorySection(memories) => {
                for memory in memories {
                    largest = largest.max(memory.ok()?.initial.saturating_mul(65536));
                }
            }
            wasmparser::Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if let wasmparser::TypeRef::Memory(memory) = import.ok()?.ty {
                        largest = largest.max(memory.initial.saturating_mul(65536));
                    }
                }
            }
            wasmparser::Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Some(largest)
}
