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

    /// Takes `id` out of the free slots (a slot found in use in pinned maps). False when it is
    /// out of range or taken already.
    pub fn reserve(&mut self, id: u32) -> bool {
        if id >= self.capacity {
            return false;
        }
        if id >= self.next {
            self.free.extend(self.next..id);
            self.next = id + 1;
            self.free.sort_unstable_by(|a, b| b.cmp(a));
            return true;
        }
        match self.free.iter().position(|f| *f == id) {
            Some(i) => {
                self.free.remove(i);
                true
            }
            None => false,
        }
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

    #[test]
    fn reserved_slots_are_not_handed_out() {
        let mut p = IdPool::new(8);
        assert!(p.reserve(3));
        assert!(!p.reserve(3), "taken already");
        assert!(p.reserve(1));
        assert!(!p.reserve(8), "out of range");
        let got: Vec<u32> = (0..6).filter_map(|_| p.take()).collect();
        assert_eq!(got, [0, 2, 4, 5, 6, 7]);
        assert_eq!(p.take(), None);
    }
}
