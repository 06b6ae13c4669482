//! The hash of the data planes' hot lookups: unkeyed and cheap, for keys that clients do not
//! choose (configured addresses, sequence numbers), and the map type that uses it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed with [`UnkeyedHasher`].
pub type UnkeyedMap<K, V> = HashMap<K, V, BuildHasherDefault<UnkeyedHasher>>;

/// An unkeyed multiply-rotate hash (FxHash's), for keys no client chooses: configured real
/// server addresses, connection sequence numbers. Where SipHash would cost more than the rest
/// of a lookup on the per-request or per-connection path.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnkeyedHasher(u64);

impl UnkeyedHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for UnkeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
