//! How a [`TaskError`] travels between nodes: its chain of causes flattened into a list, so
//! decoding a peer's bytes never recurses (a derived decoder of the nested `cause` would
//! recurse once per level, and a peer could nest it deep enough to overflow the stack).
//!
//! Used through `#[serde(with = ...)]` on the protocol's messages; the guest ABI keeps its own
//! encoding. A chain longer than [`MAX_CAUSES`] is refused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;
use wasmray_core::{ErrorKind, NodeId, TaskError};

/// The most causes one error may wrap on the wire.
pub const MAX_CAUSES: usize = 1024;

/// One level of the chain: an error without its cause.
#[derive(Serialize, Deserialize)]
struct Level {
    kind: ErrorKind,
    function: String,
    message: String,
    backtrace: Option<String>,
    task_chain: Vec<String>,
}

fn flatten(error: &TaskError) -> Vec<Level> {
    let mut levels = Vec::new();
    let mut next = Some(error);
    while let Some(error) = next {
        levels.push(Level {
            kind: error.kind,
            function: error.function.clone(),
            message: error.message.clone(),
            backtrace: error.backtrace.clone(),
            task_chain: error.task_chain.clone(),
        });
        next = error.cause.as_deref();
    }
    levels
}

fn rebuild<E: serde::de::Error>(levels: Vec<Level>) -> Result<TaskError, E> {
    if levels.len() > MAX_CAUSES + 1 {
        return Err(E::custom(
            "an error's chain of causes is longer than its limit",
        ));
    }
    let mut error: Option<TaskError> = None;
    for level in levels.into_iter().rev() {
        error = Some(TaskError {
            kind: level.kind,
            function: level.function,
            message: level.message,
            backtrace: level.backtrace,
            task_chain: level.task_chain,
            cause: error.map(Box::new),
        });
    }
    error.ok_or_else(|| E::custom("an error with no levels"))
}

/// For `TaskError` fields.
pub mod owned {
    use super::*;

    pub fn serialize<S: Serializer>(error: &TaskError, serializer: S) -> Result<S::Ok, S::Error> {
        flatten(error).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TaskError, D::Error> {
        rebuild(Vec::<Level>::deserialize(deserializer)?)
    }
}

/// For `Arc<TaskError>` fields.
pub mod shared {
    use super::*;

    pub fn serialize<S: Serializer>(
        error: &Arc<TaskError>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        flatten(error).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Arc<TaskError>, D::Error> {
        Ok(Arc::new(rebuild(Vec::<Level>::deserialize(deserializer)?)?))
    }
}

/// For `Result<NodeId, Arc<TaskError>>` fields.
pub mod result {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Result<NodeId, Arc<TaskError>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let flat: Result<NodeId, Vec<Level>> = match value {
            Ok(node) => Ok(*node),
            Err(error) => Err(flatten(error)),
        };
        flat.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Result<NodeId, Arc<TaskError>>, D::Error> {
        match Result::<NodeId, Vec<Level>>::deserialize(deserializer)? {
            Ok(node) => Ok(Ok(node)),
            Err(levels) => Ok(Err(Arc::new(rebuild(levels)?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Carrier(#[serde(with = "owned")] TaskError);

    fn error(depth: usize) -> TaskError {
        let mut error = None;
        for level in 0..depth {
            error = Some(TaskError {
                kind: ErrorKind::DependencyFailed,
                function: format!("f{level}"),
                message: "m".into(),
                backtrace: None,
                task_chain: vec!["main".into()],
                cause: error.map(Box::new),
            });
        }
        error.unwrap()
    }

    #[test]
    fn a_chain_of_causes_round_trips_and_an_overlong_one_is_refused() {
        let original = error(3);
        let bytes = postcard::to_allocvec(&Carrier(original.clone())).unwrap();
        let Carrier(back) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, original);

        let bytes = postcard::to_allocvec(&Carrier(error(MAX_CAUSES + 2))).unwrap();
        assert!(postcard::from_bytes::<Carrier>(&bytes).is_err());
    }
}
