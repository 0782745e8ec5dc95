//! Seeded random numbers: the one generator behind random tensors, initializers,
//! shuffling and the dropout mask, so a seed gives the same values on every backend.

/// A small, fast, seedable generator (SplitMix64). Not cryptographic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The internal state, to save in a checkpoint and restore with [`Rng::new`].
    pub fn state(&self) -> u64 {
        self.state
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits (every value exactly representable).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below needs n > 0");
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return (x % n) as usize;
            }
        }
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// The counter-based hash behind dropout masks: element `index` of the mask drawn with
/// `seed` is kept when this value, read as a fraction of 2^24, is at least `p`. Only
/// 32-bit integer arithmetic, so every backend (WGSL included) computes the same mask.
pub fn dropout_hash(seed: u64, index: u32) -> u32 {
    let key = mix32(mix32(seed as u32) ^ (seed >> 32) as u32);
    mix32(index ^ key) >> 8
}

/// Whether element `index` survives dropout with drop probability `p`.
pub fn dropout_keeps(seed: u64, index: u32, p: f32) -> bool {
    dropout_hash(seed, index) as f32 >= p * (1u32 << 24) as f32
}

/// One tensor's window onto a dropout mask stream: element `i` of the tensor uses
/// element `first_index + i` of the stream drawn from `seed`. A batch split across
/// processes (data-parallel training) gives each shard the window of its first sample,
/// so the shards together draw exactly the mask of the whole batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutMask {
    /// Seed of the mask stream.
    pub seed: u64,
    /// Index in the stream of the tensor's first element.
    pub first_index: u32,
}

impl DropoutMask {
    /// The stream drawn from `seed`, from its start.
    pub fn new(seed: u64) -> Self {
        DropoutMask { seed, first_index: 0 }
    }

    /// The same stream, with the tensor's first element at `first_index`.
    pub fn starting_at(self, first_index: u32) -> Self {
        DropoutMask { first_index, ..self }
    }

    /// Whether the tensor's element `i` survives with drop probability `p`.
    pub fn keeps(self, i: u32, p: f32) -> bool {
        dropout_keeps(self.seed, self.first_index.wrapping_add(i), p)
    }
}

/// A 32-bit integer finalizer with good avalanche (Chris Wellons' "lowbias32").
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = Rng::new(1);
        let xs: Vec<f64> = (0..100_000).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn dropout_mask_keeps_about_one_minus_p() {
        let kept = (0..100_000u32).filter(|&i| dropout_keeps(42, i, 0.3)).count();
        assert!((kept as f64 / 100_000.0 - 0.7).abs() < 0.01, "kept {kept}");
        let other = (0..1000u32).filter(|&i| dropout_keeps(42, i, 0.5) != dropout_keeps(43, i, 0.5));
        assert!(other.count() > 300, "different seeds must give different masks");
    }
}
