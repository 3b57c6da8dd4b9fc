//! Exporting a guest's shadow stack pointer, so a trap cannot leave it behind.
//!
//! Code compiled from Rust (or C) keeps its stack in linear memory and its top in a mutable
//! `i32` global, `__stack_pointer`, which modules do not export. When a call traps, that
//! global stays wherever the trap happened; an instance that serves another call afterwards
//! (an actor after a method panics) leaks that much stack each time and, after a few thousand
//! panics, overflows it. At load, the host adds an export of that global under
//! [`STACK_POINTER_EXPORT`] so that it can restore the value after a failed call. The global
//! is found by its name in the `name` section, or else as the first mutable `i32` global
//! defined by the module (where LLVM puts it). Nothing else in the module changes.

use crate::state::GuestState;
use std::borrow::Cow;
use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef, ValType};

/// The export name under which the host sees the shadow stack pointer.
pub(crate) const STACK_POINTER_EXPORT: &str = "__wasmray_stack_pointer";

const EXPORT_SECTION: u8 = 7;
const GLOBAL_KIND: u8 = 3;

/// `bytes` with the shadow stack pointer exported, or unchanged when there is none to export
/// (or the module does not parse: compilation will say why).
pub(crate) fn with_stack_pointer_export(bytes: &[u8]) -> Cow<'_, [u8]> {
    match find_stack_pointer(bytes).and_then(|index| add_global_export(bytes, index)) {
        Some(rewritten) => Cow::Owned(rewritten),
        None => Cow::Borrowed(bytes),
    }
}

/// The index of the shadow stack pointer global, unless it is exported already.
fn find_stack_pointer(bytes: &[u8]) -> Option<u32> {
    let mut imported_globals = 0u32;
    let mut first_mutable_i32 = None;
    let mut named = None;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.ok()?.ty, TypeRef::Global(_)) {
                        imported_globals += 1;
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, global) in reader.into_iter().enumerate() {
                    let ty = global.ok()?.ty;
                    if first_mutable_i32.is_none() && ty.mutable && ty.content_type == ValType::I32
                    {
                        first_mutable_i32 = Some(imported_globals + i as u32);
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    if export.ok()?.name == STACK_POINTER_EXPORT {
                        return None;
                    }
                }
            }
            Payload::CustomSection(section) => {
                if let KnownCustom::Name(names) = section.as_known() {
                    for name in names.into_iter().flatten() {
                        if let Name::Global(map) = name {
                            for naming in map.into_iter().flatten() {
                                if naming.name == "__stack_pointer" {
                                    named = Some(naming.index);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    named.or(first_mutable_i32)
}

/// Rebuilds the module with one more export: global `index` as [`STACK_POINTER_EXPORT`].
/// Every other section is copied byte for byte. `None` if the module has no export section.
fn add_global_export(bytes: &[u8], index: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    out.extend_from_slice(bytes.get(..8)?);
    let mut at = 8;
    let mut rewrote = false;
    while at < bytes.len() {
        let id = *bytes.get(at)?;
        let (size, size_len) = read_leb(bytes.get(at + 1..)?)?;
        let start = at + 1 + size_len;
        let end = start.checked_add(size as usize)?;
        let content = bytes.get(start..end)?;
        if id == EXPORT_SECTION {
            let (count, count_len) = read_leb(content)?;
            let mut section = Vec::with_capacity(content.len() + 32);
            write_leb(&mut section, count.checked_add(1)?);
            section.extend_from_slice(content.get(count_len..)?);
            write_leb(&mut section, STACK_POINTER_EXPORT.len() as u32);
            section.extend_from_slice(STACK_POINTER_EXPORT.as_bytes());
            section.push(GLOBAL_KIND);
            write_leb(&mut section, index);
            out.push(id);
            write_leb(&mut out, u32::try_from(section.len()).ok()?);
            out.extend_from_slice(&section);
            rewrote = true;
        } else {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
    rewrote.then_some(out)
}

fn read_leb(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The guest's shadow stack pointer now, to put back if the call traps.
pub(crate) fn save_stack_pointer(
    mut store: impl wasmtime::AsContextMut<Data = GuestState>,
) -> Option<wasmtime::Val> {
    let global = store.as_context().data().stack_pointer?;
    Some(global.get(&mut store))
}

/// Puts the shadow stack pointer back where the failed call found it.
pub(crate) fn restore_stack_pointer(
    mut store: impl wasmtime::AsContextMut<Data = GuestState>,
    saved: Option<wasmtime::Val>,
) {
    let global = store.as_context().data().stack_pointer;
    if let (Some(global), Some(value)) = (global, saved) {
        // Only fails for a type mismatch, impossible for the value read from this global.
        let _ = global.set(&mut store, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(extra: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
                (global $other i64 (i64.const 0))
                (global $__stack_pointer (mut i32) (i32.const 1048576))
                (memory (export "memory") 1)
                {extra})"#
        ))
        .unwrap()
    }

    #[test]
    fn the_named_stack_pointer_is_exported_and_nothing_else_changes() {
        let original = module("");
        let rewritten = with_stack_pointer_export(&original);
        let exports: Vec<(String, u32)> = Parser::new(0)
            .parse_all(&rewritten)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(reader) => Some(
                    reader
                        .into_iter()
                        .map(|e| e.unwrap())
                        .map(|e| (e.name.to_owned(), e.index))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            exports,
            [
                ("memory".to_owned(), 0),
                (STACK_POINTER_EXPORT.to_owned(), 1)
            ]
        );
        wasmparser::Validator::new()
            .validate_all(&rewritten)
            .unwrap();
    }

    #[test]
    fn a_module_that_already_exports_it_is_left_alone() {
        let original = module(&format!(r#"(export "{STACK_POINTER_EXPORT}" (global 1))"#));
        assert!(matches!(
            with_stack_pointer_export(&original),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn leb_round_trips() {
        for value in [0, 1, 127, 128, 300, 1 << 20, u32::MAX] {
            let mut out = Vec::new();
            write_leb(&mut out, value);
            assert_eq!(read_leb(&out), Some((value, out.len())));
        }
    }
}
