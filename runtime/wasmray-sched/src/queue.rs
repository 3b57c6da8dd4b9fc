//! Tasks whose arguments are ready, waiting for resources, grouped by what they ask for.
//!
//! Grouping by resource shape (Ray's "scheduling classes") keeps dispatch cheap with 100,000
//! queued tasks: a class whose head does not fit is skipped whole, so one pass costs the
//! number of classes plus the number of tasks dispatched, not the queue's length. Within a
//! class tasks leave in submission order.
//!
//! A class left empty stays (up to [`KEPT_EMPTY`] classes in all), so that the common case —
//! one task of a shape at a time, as a synchronous caller submits — builds no class per task.

use std::collections::{BTreeMap, VecDeque};
use wasmray_core::{ResourceSet, TaskId};

/// Classes kept while empty: above this many classes, empty ones are dropped.
const KEPT_EMPTY: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct ReadyQueue {
    classes: BTreeMap<ResourceSet, VecDeque<TaskId>>,
    len: usize,
}

impl ReadyQueue {
    pub(crate) fn push(&mut self, shape: &ResourceSet, task: TaskId) {
        match self.classes.get_mut(shape) {
            Some(queue) => queue.push_back(task),
            None => {
                self.classes.insert(shape.clone(), VecDeque::from([task]));
            }
        }
        self.len += 1;
    }

    /// Takes `task` (queued with `shape`) out of the queue; false if it was not there.
    pub(crate) fn remove(&mut self, shape: &ResourceSet, task: TaskId) -> bool {
        let Some(queue) = self.classes.get_mut(shape) else {
            return false;
        };
        let Some(at) = queue.iter().position(|&queued| queued == task) else {
            return false;
        };
        queue.remove(at);
        self.len -= 1;
        self.drop_empty_classes();
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Drops the empty classes if there are too many to keep.
    fn drop_empty_classes(&mut self) {
        if self.classes.len() > KEPT_EMPTY {
            self.classes.retain(|_, queue| !queue.is_empty());
        }
    }

    /// Takes, in order, every task that fits while `available` shrinks by what each takes.
    /// A task that fits must also be admitted: `admit` (given its shape) hands out what else
    /// it needs — its GPU IDs — or refuses, which stops its class as a misfit does.
    pub(crate) fn take_fitting<A>(
        &mut self,
        available: &mut ResourceSet,
        mut admit: impl FnMut(&ResourceSet) -> Option<A>,
    ) -> Vec<(TaskId, A)> {
        let mut taken = Vec::new();
        for (shape, queue) in &mut self.classes {
            while let Some(&task) = queue.front() {
                if !shape.fits_in(available) {
                    break;
                }
                let Some(admitted) = admit(shape) else {
                    break;
                };
                queue.pop_front();
                available.subtract(shape);
                taken.push((task, admitted));
            }
        }
        self.len -= taken.len();
        self.drop_empty_classes();
        taken
    }
}

impl ReadyQueue {
    /// Takes, in order, the tasks `place` finds another node for (given each task and its
    /// shape); a class stops at its first task that finds none.
    pub(crate) fn take_placed<N>(
        &mut self,
        mut place: impl FnMut(TaskId, &ResourceSet) -> Option<N>,
    ) -> Vec<(TaskId, N)> {
        let mut taken = Vec::new();
        for (shape, queue) in &mut self.classes {
            while let Some(&task) = queue.front() {
                let Some(node) = place(task, shape) else {
                    break;
                };
                queue.pop_front();
                taken.push((task, node));
            }
        }
        self.len -= taken.len();
        self.drop_empty_classes();
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmray_core::{CPU, GPU, IdMint, NodeId};

    #[test]
    fn a_class_that_does_not_fit_does_not_block_another() {
        let mint = IdMint::new(NodeId(1));
        let gpu = ResourceSet::from_pairs([(GPU, 1.0)]).unwrap();
        let cpu = ResourceSet::from_pairs([(CPU, 1.0)]).unwrap();
        let mut queue = ReadyQueue::default();
        let (g, c1, c2) = (mint.next_task(), mint.next_task(), mint.next_task());
        queue.push(&gpu, g);
        queue.push(&cpu, c1);
        queue.push(&cpu, c2);
        let mut available = ResourceSet::from_pairs([(CPU, 1.0)]).unwrap();
        let ids = |taken: Vec<(TaskId, ())>| taken.into_iter().map(|(t, ())| t).collect::<Vec<_>>();
        assert_eq!(
            ids(queue.take_fitting(&mut available, |_| Some(()))),
            vec![c1]
        );
        assert_eq!(queue.len(), 2);
        let mut more = ResourceSet::from_pairs([(CPU, 1.0), (GPU, 1.0)]).unwrap();
        assert_eq!(
            ids(queue.take_fitting(&mut more, |_| Some(()))),
            vec![c2, g]
        );
        assert_eq!(queue.len(), 0);
    }
}
