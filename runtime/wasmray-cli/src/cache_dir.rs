//! Where compiled modules are cached: `--cache-dir`, else `$WASMRAY_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/wasmray/modules`, else `~/.cache/wasmray/modules`.

use std::path::PathBuf;

pub(crate) fn resolve(flag: Option<PathBuf>, disabled: bool) -> Option<PathBuf> {
    if disabled {
        return None;
    }
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    flag.or_else(|| env("WASMRAY_CACHE_DIR"))
        .or_else(|| env("XDG_CACHE_HOME").map(|dir| dir.join("wasmray").join("modules")))
        .or_else(|| env("HOME").map(|home| home.join(".cache").join("wasmray").join("modules")))
}
