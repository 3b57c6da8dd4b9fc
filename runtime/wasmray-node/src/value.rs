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
