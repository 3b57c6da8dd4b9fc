//! Which of a node's GPUs a task holds: logical IDs `0..n`, as Ray's `get_gpu_ids()` reports.
//!
//! The resource ledger counts GPUs as a quantity; this hands out the IDs behind it. A request
//! of one or more GPUs takes that many whole GPUs nobody else holds, lowest IDs first; a
//! fraction takes a share of one GPU, packed onto the fullest GPU it still fits on (so whole
//! GPUs stay free for whole requests). Two tasks never hold the same GPU unless both asked for
//! a fraction. Shares are counted in the ledger's unit, 1/10000 of a GPU.
//!
//! The ledger decides whether a task's resources fit; [`GpuIds::take`] can still refuse when
//! fractions have left no single GPU with room enough, and then the task waits as if it did
//! not fit.

/// Units of one whole GPU.
const WHOLE: u32 = 10_000;

/// The free share of each GPU.
#[derive(Debug, Clone)]
pub(crate) struct GpuIds {
    free: Vec<u32>,
}

impl GpuIds {
    /// `total` GPUs; a fraction left over (2.5 GPUs) is a last GPU of that share, which only
    /// fractional requests can use.
    pub(crate) fn new(total: f64) -> Self {
        let units = if total.is_finite() && total > 0.0 {
            Self::units(total)
        } else {
            0
        };
        let mut free = vec![WHOLE; (units / WHOLE) as usize];
        if units % WHOLE != 0 {
            free.push(units % WHOLE);
        }
        Self { free }
    }

    fn units(amount: f64) -> u32 {
        (amount * f64::from(WHOLE)).round() as u32
    }

    /// The IDs for `amount` GPUs, or `None` if no GPUs can hold it now (or ever: more than the
    /// node has, a fraction above one). Nothing is taken when it refuses.
    pub(crate) fn take(&mut self, amount: f64) -> Option<Vec<u32>> {
        let units = Self::units(amount);
        if units == 0 {
            return Some(Vec::new());
        }
        if units < WHOLE {
            let (id, _) = self
                .free
                .iter()
                .copied()
                .enumerate()
                .filter(|&(_, free)| free >= units)
                .min_by_key(|&(_, free)| free)?;
            self.free[id] -= units;
            return Some(vec![id as u32]);
        }
        if !units.is_multiple_of(WHOLE) {
            return None;
        }
        let wanted = (units / WHOLE) as usize;
        let ids: Vec<u32> = self
            .free
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, free)| free == WHOLE)
            .map(|(id, _)| id as u32)
            .take(wanted)
            .collect();
        if ids.len() < wanted {
            return None;
        }
        for &id in &ids {
            self.free[id as usize] = 0;
        }
        Some(ids)
    }

    /// Gives back what `take(amount)` returned as `ids`.
    pub(crate) fn give_back(&mut self, ids: &[u32], amount: f64) {
        let share = if ids.len() == 1 {
            Self::units(amount).min(WHOLE)
        } else {
            WHOLE
        };
        for &id in ids {
            if let Some(free) = self.free.get_mut(id as usize) {
                *free = (*free + share).min(WHOLE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_gpus_are_never_shared_and_come_back() {
        let mut gpus = GpuIds::new(2.0);
        let first = gpus.take(1.0).unwrap();
        let second = gpus.take(1.0).unwrap();
        assert_eq!((first.clone(), second), (vec![0], vec![1]));
        assert_eq!(gpus.take(1.0), None, "both held");
        gpus.give_back(&first, 1.0);
        assert_eq!(gpus.take(1.0), Some(vec![0]));
        assert_eq!(GpuIds::new(4.0).take(3.0), Some(vec![0, 1, 2]));
        assert_eq!(
            GpuIds::new(4.0).take(1.5),
            None,
            "above one, only whole GPUs"
        );
        let mut half = GpuIds::new(0.5);
        assert_eq!(half.take(1.0), None);
        assert_eq!(
            half.take(0.5),
            Some(vec![0]),
            "a node's fraction of a GPU has an ID"
        );
        assert_eq!(half.take(0.25), None);
    }

    #[test]
    fn fractions_pack_onto_one_gpu_and_leave_whole_ones_free() {
        let mut gpus = GpuIds::new(2.0);
        let a = gpus.take(0.5).unwrap();
        let b = gpus.take(0.25).unwrap();
        assert_eq!(a, b, "packed onto the same GPU");
        assert_eq!(gpus.take(1.0), Some(vec![1]), "the other stays whole");
        assert_eq!(gpus.take(0.5), None, "0.25 left on GPU 0, none on GPU 1");
        gpus.give_back(&a, 0.5);
        assert_eq!(gpus.take(0.5), Some(a));
    }
}
