//! What the AVX-512 row kernels (softmax, layer-norm gradient) share: the choice of a
//! kernel pair by a row's chunk count, the mask of a row's last 16-lane chunk, and the
//! walk over a run of rows in blocks of rows in flight, then one row at a time.

use std::arch::x86_64::__mmask16;

use crate::lanes::LANES;

/// The lanes of a row of `len` values' last 16-lane chunk that hold values.
pub fn last_chunk_mask(len: usize) -> __mmask16 {
    let last_lanes = len - (len - 1) / LANES * LANES;
    ((1u32 << last_lanes) - 1) as __mmask16
}

/// Calls `run(first, several)` for each block of `in_flight` rows from row 0, then
/// `run(first, single)` for each row left.
pub fn each_block<K: Copy>(
    rows: usize,
    in_flight: usize,
    [single, several]: [K; 2],
    mut run: impl FnMut(usize, K),
) {
    let whole = rows / in_flight * in_flight;
    (0..whole).step_by(in_flight).for_each(|first| run(first, several));
    (whole..rows).for_each(|first| run(first, single));
}

/// `[kernel::<W, 1>, kernel::<W, IN_FLIGHT>]` for the `W` 16-lane chunks of rows of
/// `len` values, `W` one of the listed counts (rows of more chunks than the last get
/// the last): the kernels for one row and for a block of rows in flight.
macro_rules! one_and_several {
    ($kernel:ident, $len:expr, $in_flight:expr; $($chunks:literal)* ; $most:literal) => {
        match $len.div_ceil($crate::lanes::LANES) {
            $($chunks => [$kernel::<$chunks, 1>, $kernel::<$chunks, $in_flight>],)*
            _ => [$kernel::<$most, 1>, $kernel::<$most, $in_flight>],
        }
    };
}
pub(crate) use one_and_several;
