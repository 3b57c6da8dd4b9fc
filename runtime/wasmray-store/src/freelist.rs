//! First-fit allocation of page-aligned ranges inside a fixed capacity, with coalescing.
//!
//! Pure bookkeeping over offsets: it never touches memory, so it is tested on its own. The
//! arena (`arena.rs`) puts bytes behind the ranges it hands out.

use std::collections::BTreeMap;

/// Granularity of every range: one page, so that ranges can be mapped and released alone.
pub const PAGE: u64 = 4096;

/// Free ranges of `[0, capacity)`, keyed by offset; adjacent free ranges are always merged.
#[derive(Debug)]
pub(crate) struct FreeList {
    capacity: u64,
    free: BTreeMap<u64, u64>,
    used: u64,
}

/// `len` rounded up to whole pages.
pub(crate) fn page_round(len: u64) -> u64 {
    len.div_ceil(PAGE).max(1) * PAGE
}

impl FreeList {
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = capacity / PAGE * PAGE;
        let mut free = BTreeMap::new();
        if capacity > 0 {
            free.insert(0, capacity);
        }
        Self {
            capacity,
            free,
            used: 0,
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Reserves `page_round(len)` bytes; returns the offset, or `None` if no free range is
    /// large enough.
    pub(crate) fn allocate(&mut self, len: u64) -> Option<u64> {
        let size = page_round(len);
        let (&offset, &free_len) = self.free.iter().find(|(_, free_len)| **free_len >= size)?;
        self.free.remove(&offset);
        if free_len > size {
            self.free.insert(offset + size, free_len - size);
        }
        self.used += size;
        Some(offset)
    }

    /// Returns the range allocated at `offset` for `len` bytes.
    pub(crate) fn release(&mut self, offset: u64, len: u64) {
        let mut start = offset;
        let mut size = page_round(len);
        self.used -= size;
        if let Some((&prev, &prev_len)) = self.free.range(..start).next_back()
            && prev + prev_len == start
        {
            self.free.remove(&prev);
            start = prev;
            size += prev_len;
        }
        if let Some(next_len) = self.free.remove(&(start + size)) {
            size += next_len;
        }
        self.free.insert(start, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_page_aligned_and_disjoint() {
        let mut list = FreeList::new(10 * PAGE);
        let a = list.allocate(1).unwrap();
        let b = list.allocate(PAGE + 1).unwrap();
        let c = list.allocate(PAGE).unwrap();
        assert_eq!((a, b, c), (0, PAGE, 3 * PAGE));
        assert_eq!(list.used(), 4 * PAGE);
    }

    #[test]
    fn freed_neighbours_merge_so_large_ranges_come_back() {
        let mut list = FreeList::new(4 * PAGE);
        let a = list.allocate(PAGE).unwrap();
        let b = list.allocate(PAGE).unwrap();
        let c = list.allocate(2 * PAGE).unwrap();
        assert_eq!(list.allocate(1), None, "full");
        list.release(b, PAGE);
        list.release(a, PAGE);
        list.release(c, 2 * PAGE);
        assert_eq!(list.used(), 0);
        assert_eq!(list.allocate(4 * PAGE), Some(0));
    }

    #[test]
    fn a_request_larger_than_any_free_range_fails() {
        let mut list = FreeList::new(3 * PAGE);
        let a = list.allocate(PAGE).unwrap();
        let _b = list.allocate(PAGE).unwrap();
        list.release(a, PAGE);
        assert_eq!(list.allocate(2 * PAGE), None, "fragmented");
        assert!(list.allocate(PAGE).is_some());
    }
}
