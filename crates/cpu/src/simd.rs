//! Loops compiled for the machine's vector width: [`widest`] runs a [`VectorLoop`]
//! inside a function built for AVX-512 or AVX2 + FMA (the instruction set the GEMM
//! kernel choice names, `GemmKernel::detect`), so plain-Rust elementwise and reduction
//! loops vectorize at 16 or 8 lanes instead of the build's baseline (SSE2's 4 on
//! x86-64). Without either, the loop runs as built.
//!
//! A loop struct whose `run` is `#[inline(always)]`, calling only `#[inline(always)]`
//! code per element (the unary-op table's rules are), is copied whole into each
//! instruction set's function. A closure is a `VectorLoop` too, but whether the
//! compiler copies its body there is its own choice (small loops: yes).

use crate::gemm::GemmKernel;

/// A loop to compile once per instruction set.
pub trait VectorLoop {
    /// What the loop returns.
    type Output;
    /// Runs the loop.
    fn run(self) -> Self::Output;
}

impl<R, F: FnOnce() -> R> VectorLoop for F {
    type Output = R;

    #[inline(always)]
    fn run(self) -> R {
        self()
    }
}

/// Runs `body` compiled for the widest vector instructions this process uses.
#[inline]
pub fn widest<L: VectorLoop>(body: L) -> L::Output {
    match GemmKernel::detect() {
        // SAFETY: `detect` names a kernel only where the CPU runs its instructions.
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512 => unsafe { with_avx512(body) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2Fma => unsafe { with_avx2(body) },
        GemmKernel::Portable => body.run(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn with_avx512<L: VectorLoop>(body: L) -> L::Output {
    body.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<L: VectorLoop>(body: L) -> L::Output {
    body.run()
}
