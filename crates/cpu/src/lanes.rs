//! Sixteen `f32` lanes as a plain array, with the lane-by-lane and horizontal
//! operations of the row kernels (softmax, sums). Inside a loop compiled for AVX-512
//! ([`crate::simd::widest`]) an array is one register and each operation one or a few
//! instructions; every function is `#[inline(always)]` so that it is compiled there.

/// Lanes of the row kernels: one AVX-512 register, two AVX2 ones.
pub const LANES: usize = 16;

/// One chunk of a row, kept in registers.
pub type Lanes = [f32; LANES];

/// The `LANES` values starting at `values[0]`.
#[inline(always)]
pub fn load(values: &[f32]) -> Lanes {
    *values.first_chunk::<LANES>().expect("a whole chunk")
}

/// Writes `lanes` over `out[..LANES]`.
#[inline(always)]
pub fn store(out: &mut [f32], lanes: Lanes) {
    *out.first_chunk_mut::<LANES>().expect("a whole chunk") = lanes;
}

/// The larger of each pair of lanes.
#[inline(always)]
pub fn maximum(mut a: Lanes, b: Lanes) -> Lanes {
    for (a, b) in a.iter_mut().zip(b) {
        *a = a.max(b);
    }
    a
}

/// `a + b` lane by lane.
#[inline(always)]
pub fn add(mut a: Lanes, b: Lanes) -> Lanes {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
    a
}

/// `a · b` lane by lane.
#[inline(always)]
pub fn multiply(mut a: Lanes, b: Lanes) -> Lanes {
    for (a, b) in a.iter_mut().zip(b) {
        *a *= b;
    }
    a
}

/// `lanes · factor`.
#[inline(always)]
pub fn scale(mut lanes: Lanes, factor: f32) -> Lanes {
    for v in lanes.iter_mut() {
        *v *= factor;
    }
    lanes
}

/// `lanes − shift`.
#[inline(always)]
pub fn subtract(mut lanes: Lanes, shift: f32) -> Lanes {
    for v in lanes.iter_mut() {
        *v -= shift;
    }
    lanes
}

/// The largest lane, in halving steps (16 → 8 → 4 → 2 → 1) on a register's halves.
#[inline(always)]
pub fn horizontal_max(lanes: Lanes) -> f32 {
    let mut width = LANES;
    let mut lanes = lanes;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] = lanes[i].max(lanes[i + width]);
        }
    }
    lanes[0]
}

/// The sum of the lanes, in halving steps as [`horizontal_max`].
#[inline(always)]
pub fn horizontal_sum(lanes: Lanes) -> f32 {
    let mut width = LANES;
    let mut lanes = lanes;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] += lanes[i + width];
        }
    }
    lanes[0]
}
