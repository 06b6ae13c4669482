//! Slot numbers for the BPF arrays (services, real servers): the lowest free one is handed out,
//! and a freed one is reused only once nothing in the kernel refers to it any more (the caller
//! frees a real server's slot after its last flow is gone).

/// A pool of slot numbers `0..capacity`.
#[derive(Debug, Clone)]
pub struct IdPool {
    capacity: u32,
    next: u32,
    free: Vec<u32>,
}

impl IdPool {
    pub fn new(capacity: u32) -> Self {
        Self { capacity, next: 0, free: Vec::new() }
    }

    /// A slot, or `None` when all `capacity` are taken.
    pub fn take(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        (self.next < self.capacity).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    /// Gives `id` back.
    pub fn give(&mut self, id: u32) {
        debug_assert!(id < self.next && !self.free.contains(&id), "slot {id} given back twice");
        self.free.push(id);
        // Lowest first, so tables stay dense.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Slots in use.
    pub fn in_use(&self) -> u32 {
        self.next - self.free.len() as u32
    }

    /// Slots still free.
    pub fn available(&self) -> u32 {
        self.capacity - self.in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_the_lowest_free_slot_and_stops_at_capacity() {
        let mut p = IdPool::new(3);
        assert_eq!((p.take(), p.take(), p.take(), p.take()), (Some(0), Some(1), Some(2), None));
        p.give(2);
        p.give(0);
        assert_eq!(p.available(), 2);
        assert_eq!(p.take(), Some(0));
        assert_eq!(p.take(), Some(2));
        assert_eq!(p.in_use(), 3);
    }
}
