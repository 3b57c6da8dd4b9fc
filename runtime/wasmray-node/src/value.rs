//! The node's handle to a stored value, as the scheduler holds it.

use std::sync::Arc;
use wasmray_core::ObjectId;
use wasmray_sched::ObjectValue;
use wasmray_store::StoredObject;

/// A stored object shared between the scheduler's table, staged replies and running tasks;
/// its bytes are freed when the last clone goes.
#[derive(Debug, Clone)]
pub(crate) struct Value(pub(crate) Arc<StoredObject>);

impl ObjectValue for Value {
    fn contained(&self) -> &[ObjectId] {
        self.0.contained()
    }

    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

/// On the wire (`wire_codec.rs`) a value is its contained refs and its bytes, read from the
/// store (a spilled one is restored first). Only values up to the inline limit travel in
/// messages; larger ones are offered and fetched.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        struct Raw<'a>(&'a [u8]);
        impl serde::Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        let bytes = self.0.read().map_err(S::Error::custom)?;
        let mut value = serializer.serialize_struct("WireValue", 2)?;
        value.serialize_field("contained", self.0.contained())?;
        value.serialize_field("bytes", &Raw(&bytes))?;
        value.end()
    }
}
