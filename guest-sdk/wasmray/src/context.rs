//! What a task can learn about where it runs: Ray's `get_runtime_context()`, `get_gpu_ids()`,
//! `get_resource_ids()`, `is_initialized()`, and the job's failed tasks (`error_info()`).
//!
//! Each asks the host through `cluster_info` and decodes the answer; nothing is cached, since
//! an actor's methods may run on behalf of different callers. This file changes nothing.

use std::collections::BTreeMap;
use wasmray_abi::{ClusterQuery, ErrorInfo, RuntimeContext};

use crate::api::cluster_info;

/// The job, task, actor and node the calling code runs in (Ray's
/// `ray.get_runtime_context()`): `job_id`, `task_id` (the driver's own in `main`), `actor_id`
/// (inside an actor's constructor or method), `node_id`, and `resource_ids`.
pub fn get_runtime_context() -> RuntimeContext {
    cluster_info(ClusterQuery::RuntimeContext, "the runtime context")
}

/// Whether wasmray is running this code (Ray's `ray.is_initialized()`). Always `true` in a
/// wasmray guest: the node is up before any guest code runs and there is no `ray.init()` to
/// call or forget. It asks the host all the same, so code ported from Ray reads the same.
pub fn is_initialized() -> bool {
    !get_runtime_context().job_id.is_empty()
}

/// The logical IDs of the GPUs this task or actor holds (Ray's `ray.get_gpu_ids()`), each in
/// `0..` the node's GPU count; empty when it asked for none. Two tasks running at once never
/// hold the same GPU unless each asked for a fraction of one.
pub fn get_gpu_ids() -> Vec<u32> {
    get_resource_ids().remove("GPU").unwrap_or_default()
}

/// The IDs of the unit resources this task holds, by resource (Ray's
/// `get_runtime_context().get_resource_ids()`): `{"GPU": [0, 1]}`. Only GPUs have IDs.
pub fn get_resource_ids() -> BTreeMap<String, Vec<u32>> {
    get_runtime_context().resource_ids.into_iter().collect()
}

/// The failed tasks of this job so far, oldest first (Ray's `ray.error_info()`): task ID,
/// function, error kind, message and time (milliseconds since the Unix epoch). A job keeps
/// its newest 10,000. A task whose argument failed is listed too, with `DependencyFailed`.
pub fn error_info() -> Vec<ErrorInfo> {
    cluster_info(ClusterQuery::ErrorInfo, "the job's errors")
}
