//! Deterministic randomness from the seed given by the caller: SHA-256 in counter mode. Used
//! only when a connection or subflow starts (keys, nonces, ISNs), never per packet.

use sha2::{Digest, Sha256};

pub struct Rng {
    seed: [u8; 32],
    ctr: u64,
    buf: [u8; 32],
    pos: usize,
}

impl Rng {
    pub fn new(seed: [u8; 32]) -> Rng {
        Rng {
            seed,
            ctr: 0,
            buf: [0; 32],
            pos: 32,
        }
    }

    pub fn u64(&mut self) -> u64 {
        if self.pos + 8 > 32 {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.ctr.to_be_bytes());
            self.buf.copy_from_slice(&h.finalize());
            self.ctr += 1;
            self.pos = 0;
        }
        let mut b = [0; 8];
        b.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        u64::from_be_bytes(b)
    }

    pub fn u32(&mut self) -> u32 {
        self.u64() as u32
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_and_distinct() {
        let mut a = super::Rng::new([7; 32]);
        let mut b = super::Rng::new([7; 32]);
        let xs: Vec<u64> = (0..10).map(|_| a.u64()).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.u64()).collect();
        assert_eq!(xs, ys);
        let mut s = xs.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 10);
    }
}
