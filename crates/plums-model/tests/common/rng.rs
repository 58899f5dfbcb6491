//! Reproducible random numbers for the tests that kill, crash or race (seeded from
//! `PMF_SEED` when set, printed so that a failing run can be replayed).

/// xorshift64*: reproducible random numbers without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("PMF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        println!("{test}: seed {seed} (replay with PMF_SEED={seed})");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// `size` bytes of their own for `seed`: a random 64 KiB block repeated, each copy starting
/// with its index (fast even for 64 MiB in a debug build).
pub fn content(seed: u64, size: usize) -> Vec<u8> {
    repeated_block(&mut Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1), size)
}

/// `size` bytes: a random 64 KiB block drawn from `rng`, repeated, each copy starting with its
/// index (content of its own, made fast even in a debug build).
pub fn repeated_block(rng: &mut Rng, size: usize) -> Vec<u8> {
    let block = rng.bytes(64 << 10);
    let mut out = Vec::with_capacity(size + block.len());
    let mut i = 0u64;
    while out.len() < size {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&block[8..]);
        i += 1;
    }
    out.truncate(size);
    out
}
