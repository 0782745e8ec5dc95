//! Training-time augmentation of the source images, before resizing: a random
//! horizontal flip and a random translation (a crop of the image padded with black),
//! each drawn from a generator seeded by the run seed, the epoch and the example's
//! position in the epoch, so a resumed run sees exactly the images an uninterrupted one
//! would, whichever worker thread builds the batch.

use kiln_tensor::Rng;

/// The random changes made to each training image (none for evaluation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Mirror left–right with probability 1/2.
    pub flip: bool,
    /// Shift by up to this many source pixels in each direction (the image padded with
    /// black on every side by this much, then cropped back to its size at a random
    /// offset); 0 for no shift.
    pub crop_padding: usize,
}

impl Augment {
    /// No change.
    pub const NONE: Augment = Augment { flip: false, crop_padding: 0 };

    /// Whether this changes anything.
    pub fn is_active(&self) -> bool {
        self.flip || self.crop_padding > 0
    }

    /// The generator of the example at `position` in epoch `epoch` of a run seeded
    /// with `seed`.
    pub fn rng(seed: u64, epoch: usize, position: usize) -> Rng {
        let epoch_key = (epoch as u64).wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407);
        let position_key = (position as u64).wrapping_add(1).wrapping_mul(0x9FB2_1C65_1E98_DF25);
        Rng::new(seed ^ epoch_key ^ position_key.rotate_left(29))
    }

    /// Writes the augmented `rows × cols` image `source` into `out` (same size), with
    /// the random choices drawn from `rng`.
    pub fn apply(&self, source: &[u8], rows: usize, cols: usize, rng: &mut Rng, out: &mut [u8]) {
        let flip = self.flip && rng.below(2) == 1;
        let pad = self.crop_padding as isize;
        let mut shift = || if pad > 0 { rng.below(2 * pad as usize + 1) as isize - pad } else { 0 };
        let (dy, dx) = (shift(), shift());
        for y in 0..rows {
            for x in 0..cols {
                let sy = y as isize + dy;
                let mirrored = if flip { cols - 1 - x } else { x };
                let sx = mirrored as isize + dx;
                let inside = (0..rows as isize).contains(&sy) && (0..cols as isize).contains(&sx);
                out[y * cols + x] = if inside { source[sy as usize * cols + sx as usize] } else { 0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flip_mirrors_and_a_shift_fills_with_black() {
        let source: Vec<u8> = (1..=9).collect(); // 3×3: 1 2 3 / 4 5 6 / 7 8 9
        let mut out = [0u8; 9];
        let flip = Augment { flip: true, crop_padding: 0 };
        let mut saw = [false; 2];
        for position in 0..64 {
            flip.apply(&source, 3, 3, &mut Augment::rng(1, 0, position), &mut out);
            if out == [3, 2, 1, 6, 5, 4, 9, 8, 7] {
                saw[1] = true;
            } else {
                assert_eq!(out.to_vec(), source, "a flip either mirrors or keeps the image");
                saw[0] = true;
            }
        }
        assert_eq!(saw, [true, true], "both outcomes occur");

        let shift = Augment { flip: false, crop_padding: 1 };
        let mut shapes = std::collections::BTreeSet::new();
        for position in 0..200 {
            shift.apply(&source, 3, 3, &mut Augment::rng(1, 0, position), &mut out);
            let kept: Vec<u8> = out.iter().copied().filter(|&v| v != 0).collect();
            // A shift keeps a contiguous window of the source and blacks out the rest.
            assert!(kept.len() == 9 || kept.len() == 6 || kept.len() == 4, "{out:?}");
            shapes.insert(out);
        }
        assert_eq!(shapes.len(), 9, "all nine offsets in [-1, 1]² occur");
    }
}
