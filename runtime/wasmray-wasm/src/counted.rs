//! A value whose inner references were counted: an obligation that must be handed on or
//! released, kept by the compiler rather than by convention.
//!
//! When a guest hands over a value (an argument by value, a return value), the node counts one
//! reference to each object inside it, while the guest still holds its handles. From then on
//! someone owes those references: the scheduler, once the value is part of a task or an
//! outcome it took in, or nobody, if the value is dropped on the way (a later argument of the
//! same submission was bad, a task returned twice, a creation was refused). A
//! [`CountedValue`] gives them back when it is dropped, unless [`CountedValue::hand_over`]
//! passed them on. This module does not count anything itself.

use std::sync::Arc;
use wasmray_core::ObjectId;
use wasmray_store::StoredObject;

/// Who gives back the references a dropped value counted (the node).
pub trait ReleaseContained: Send + Sync {
    /// Drops one reference to each of `ids`, counted inside a value that was never handed on.
    fn release_contained(&self, ids: &[ObjectId]);
}

/// A stored value whose contained references are counted and owed.
pub struct CountedValue {
    object: Arc<StoredObject>,
    /// Who releases the references if the value is dropped; `None` once handed over (or when
    /// there is nothing inside to release).
    release: Option<Arc<dyn ReleaseContained>>,
}

impl CountedValue {
    /// Takes on the obligation for `object`, whose contained references were just counted;
    /// `release` is asked for who gives them back only if there are any.
    pub fn new(
        object: Arc<StoredObject>,
        release: impl FnOnce() -> Arc<dyn ReleaseContained>,
    ) -> Self {
        let release = (!object.contained().is_empty()).then(release);
        Self { object, release }
    }

    pub fn object(&self) -> &Arc<StoredObject> {
        &self.object
    }

    /// Passes the value and the references it counted to whoever takes it from here.
    pub fn hand_over(mut self) -> Arc<StoredObject> {
        self.release = None;
        Arc::clone(&self.object)
    }
}

impl Drop for CountedValue {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release.release_contained(self.object.contained());
        }
    }
}

impl std::fmt::Debug for CountedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedValue")
            .field("len", &self.object.len())
            .field("contained", &self.object.contained())
            .field("owed", &self.release.is_some())
            .finish()
    }
}
