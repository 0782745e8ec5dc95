//! Winograd convolutions for stride-1 3×3 and 5×5 kernels: each `M×M` block of output
//! pixels comes from an `N×N` input tile through `N²` products instead of `M²·R²`:
//! F(4×4, 3×3) does 36 products instead of 144 (4× less GEMM work; AlexNet's
//! conv3–conv5), F(3×3, 5×5) 49 instead of 225 (4.6×; conv2). Forward pass, input
//! gradient (through the flipped-kernel form, itself a forward convolution) and weight
//! gradient all run this way.
//!
//! With `G`, `Bᵀ`, `Aᵀ` the algorithm's transforms ([`transforms`]), the weights
//! become `U = G·g·Gᵀ` (`N²` matrices `[O, C]`, one per tile position ξ), each input
//! tile `V = Bᵀ·d·B` (`N²` matrices `[C, tiles]`), the products `M[ξ] = U[ξ]·V[ξ]` run
//! on the packed GEMM, and each output block is `Y = Aᵀ·m·A`. Every step runs in a
//! fixed order, so results are identical from run to run. The transforms add rounding:
//! the tests bound the error against a float64 direct convolution.
//!
//! Files by job: this one chooses the algorithm and holds the shared sizes; `weights`
//! (the weight transform), `tiling` (tile grid and layouts), `input` (the input
//! transform), `forward` (the forward driver and output transform), `weight_gradient`
//! (the weight gradient), `transforms` (the algorithms' matrices).

mod forward;
mod input;
mod tiling;
mod transforms;
mod weight_gradient;
mod weights;

use kiln_tensor::{Activation, Conv2dGeometry};
use rayon::prelude::*;

use crate::gemm::{GemmKernel, Left, MR, NR, OutputLayout, PackB, PackedPanel, PackedView, gemm_packed};
use crate::memory::{HostMemory, Scratch};
use crate::thread_buffer::with_thread_buffer;
use transforms::{Algorithm as Transformed, F3x5, F4x3, LANES, Lanes, gather, times, times_transposed};

/// Output columns (tiles) a group's GEMMs aim for.
const TARGET_TILES: usize = 256;

/// Bytes of products the forward pass computes before their output transform, so that
/// they are still in the L2 cache when it reads them (512 KiB and 2 MiB measured the
/// same; computing a whole group's products first, up to 13 MB, was 6–9% slower).
const PRODUCT_RUN_BYTES: usize = 1 << 20;

/// Floats added between the matrices of a transform, so that they do not start at
/// addresses a multiple of 4 KiB apart: the streams written (and read) together would
/// otherwise all map to the same cache sets and evict each other.
const SKEW: usize = 16;

/// Fewest channels (in and out) for which the transforms pay for themselves.
const MIN_CHANNELS: usize = 16;

/// A Winograd algorithm Kiln runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// F(4×4, 3×3): 6×6 tiles, 36 products.
    F4x3,
    /// F(3×3, 5×5): 7×7 tiles, 49 products.
    F3x5,
}

/// The algorithm that runs convolution `g`, if any: square 3×3 or 5×5 kernels, stride
/// 1, padding below the kernel size, and enough channels.
pub fn algorithm(g: &Conv2dGeometry) -> Option<Algorithm> {
    let algorithm = match (g.kernel_h, g.kernel_w) {
        (3, 3) => Algorithm::F4x3,
        (5, 5) => Algorithm::F3x5,
        _ => return None,
    };
    let fits = g.stride == (1, 1)
        && g.padding.0 < g.kernel_h
        && g.padding.1 < g.kernel_w
        && g.in_channels >= MIN_CHANNELS
        && g.out_channels >= MIN_CHANNELS
        && g.out_h() > 0
        && g.out_w() > 0;
    fits.then_some(algorithm)
}

pub use forward::forward;
use input::*;
use tiling::*;
pub use weight_gradient::backward_weight;
use weights::*;

/// Runs `work` compiled for AVX-512F when the process's GEMM kernel is the AVX-512 one
/// (the transforms' 16-lane values then take one register instead of four), else for
/// the build's baseline. `work` and the transforms it calls are inlined into the
/// AVX-512 copy (`#[inline(always)]`); the arithmetic is the same, so are the results.
#[inline(always)]
fn vectorized<T>(work: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    if GemmKernel::detect() == GemmKernel::Avx512 {
        #[target_feature(enable = "avx512f")]
        fn with_avx512<T>(work: impl FnOnce() -> T) -> T {
            work()
        }
        // SAFETY: the AVX-512 GEMM kernel is only chosen on CPUs that run AVX-512F.
        return unsafe { with_avx512(work) };
    }
    work()
}

/// Tiles whose products (`positions · o` floats each) are computed and turned into
/// output at a time: a multiple of the widest GEMM tile (32 columns), the products
/// taking about [`PRODUCT_RUN_BYTES`].
fn product_run(positions: usize, o: usize) -> usize {
    (PRODUCT_RUN_BYTES / (positions * o * size_of::<f32>())).next_multiple_of(2 * NR)
}

/// Images per group: about [`TARGET_TILES`] tiles, and at least one group per thread.
fn images_per_group(g: &Conv2dGeometry, per_image: usize) -> usize {
    let per_thread = g.batch.div_ceil(rayon::current_num_threads()).max(1);
    TARGET_TILES.div_ceil(per_image).clamp(1, per_thread)
}
