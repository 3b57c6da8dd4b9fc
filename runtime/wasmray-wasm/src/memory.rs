//! Bounds-checked access to a guest's linear memory, and the fault a bad access raises.
//!
//! Every pointer and length a guest passes to an import goes through here. A bad one becomes a
//! [`GuestFault`], which traps that guest with a message naming the import; the host never
//! panics on guest input.

use wasmray_abi::StagedInfo;

/// A guest misused the ABI; the call traps with this message.
#[derive(Debug, thiserror::Error)]
#[error("wasmray.{import}: {problem}")]
pub struct GuestFault {
    pub import: &'static str,
    pub problem: String,
}

pub(crate) fn fault(import: &'static str, problem: impl Into<String>) -> wasmtime::Error {
    wasmtime::Error::new(GuestFault {
        import,
        problem: problem.into(),
    })
}

/// The guest bytes `[ptr, ptr + len)`.
pub(crate) fn slice<'a>(
    data: &'a [u8],
    import: &'static str,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<&'a [u8]> {
    let start = ptr as usize;
    start
        .checked_add(len as usize)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| {
            fault(
                import,
                format!(
                    "range {ptr}+{len} is outside guest memory ({} bytes)",
                    data.len()
                ),
            )
        })
}

/// Decodes the postcard record `what` the guest passed at `[ptr, ptr + len)`; it may borrow
/// from guest memory. A bad range or encoding faults the import.
pub(crate) fn record<'a, T: serde::Deserialize<'a>>(
    data: &'a [u8],
    import: &'static str,
    ptr: u32,
    len: u32,
    what: &str,
) -> wasmtime::Result<T> {
    wasmray_abi::decode(slice(data, import, ptr, len)?)
        .map_err(|e| fault(import, format!("malformed {what}: {e}")))
}

/// The guest bytes `[ptr, ptr + len)`, writable.
pub(crate) fn slice_mut<'a>(
    data: &'a mut [u8],
    import: &'static str,
    ptr: u32,
    len: usize,
) -> wasmtime::Result<&'a mut [u8]> {
    let size = data.len();
    let start = ptr as usize;
    start
        .checked_add(len)
        .and_then(|end| data.get_mut(start..end))
        .ok_or_else(|| {
            fault(
                import,
                format!("range {ptr}+{len} is outside guest memory ({size} bytes)"),
            )
        })
}

/// Writes `values` as little-endian `u32`s at `ptr`.
pub(crate) fn write_u32s(
    data: &mut [u8],
    import: &'static str,
    ptr: u32,
    values: &[u32],
) -> wasmtime::Result<()> {
    let out = slice_mut(data, import, ptr, values.len() * 4)?;
    for (chunk, value) in out.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

/// Reads `count` little-endian `u32`s at `ptr`.
pub(crate) fn read_u32s(
    data: &[u8],
    import: &'static str,
    ptr: u32,
    count: u32,
) -> wasmtime::Result<Vec<u32>> {
    let len = count
        .checked_mul(4)
        .ok_or_else(|| fault(import, format!("count {count} is too large")))?;
    let bytes = slice(data, import, ptr, len)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Writes a [`StagedInfo`] at `ptr`.
pub(crate) fn write_info(
    data: &mut [u8],
    import: &'static str,
    ptr: u32,
    info: StagedInfo,
) -> wasmtime::Result<()> {
    slice_mut(data, import, ptr, StagedInfo::SIZE as usize)?.copy_from_slice(&info.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_ranges_fault_instead_of_panicking() {
        let mut data = vec![0u8; 16];
        assert!(slice(&data, "put", 8, 8).is_ok());
        assert!(slice(&data, "put", 8, 9).is_err());
        assert!(slice(&data, "put", u32::MAX, u32::MAX).is_err());
        assert!(write_u32s(&mut data, "get", 12, &[1, 2]).is_err());
        let err = read_u32s(&data, "wait", 0, u32::MAX).unwrap_err();
        assert!(err.to_string().starts_with("wasmray.wait:"), "{err}");
    }

    #[test]
    fn u32s_round_trip_little_endian() {
        let mut data = vec![0u8; 12];
        write_u32s(&mut data, "submit_task", 4, &[0x0102_0304, 9]).unwrap();
        assert_eq!(&data[4..8], &[4, 3, 2, 1]);
        assert_eq!(read_u32s(&data, "wait", 4, 2).unwrap(), [0x0102_0304, 9]);
    }
}
