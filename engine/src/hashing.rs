//! A fast, unkeyed hasher for the engine's internal maps: node and field
//! indices, and the identities of documents and calls, which are always
//! compared in full on a match (a collision costs a cache miss or one more
//! call, never a wrong answer). Keys a function's answer chooses (batch
//! keys) keep the standard library's hasher.

use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-rotate hasher over 8-byte words.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

/// Builds [`FastHasher`]s, for `HashMap`s.
pub type BuildFast = BuildHasherDefault<FastHasher>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            if let Some(head) = word.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(word) ^ (rest.len() as u64) << 56);
        }
    }

    fn write_u8(&mut self, n: u8) {
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
}

/// The fast hash of a value.
pub fn hash_of(value: &impl std::hash::Hash) -> u64 {
    let mut hasher = FastHasher::default();
    value.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_texts_apart_and_is_stable() {
        assert_eq!(hash_of(&"{ a }"), hash_of(&"{ a }"));
        assert_ne!(hash_of(&"{ a }"), hash_of(&"{ b }"));
        assert_ne!(hash_of(&"abcdefgh"), hash_of(&"abcdefgh\0"));
        assert_ne!(hash_of(&(1u32, 2u32)), hash_of(&(2u32, 1u32)));
    }
}
