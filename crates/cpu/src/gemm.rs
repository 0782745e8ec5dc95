//! Single-precision GEMM on `matrixmultiply` (SIMD kernels picked at run time, AVX-512
//! included), split over rayon's pool when called from outside it and big enough.

use kiln_tensor::MatmulDims;
use rayon::prelude::*;

/// Below this many multiply-adds a GEMM runs on the calling thread.
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// Raw pointers handed to rayon tasks that write disjoint blocks of `C`.
#[derive(Clone, Copy)]
struct Operands {
    a: *const f32,
    b: *const f32,
    c: *mut f32,
}

// Accessors, so closures capture the whole (Send + Sync) struct, not bare pointers.
impl Operands {
    fn a(self) -> *const f32 {
        self.a
    }
    fn b(self) -> *const f32 {
        self.b
    }
    fn c(self) -> *mut f32 {
        self.c
    }
}

// SAFETY: each task reads the shared inputs and writes a disjoint block of `c`.
unsafe impl Send for Operands {}
unsafe impl Sync for Operands {}

/// `C = op(A)·op(B) + beta·C` with `C` row-major `[m, n]` (see [`MatmulDims`]).
pub fn gemm(a: &[f32], b: &[f32], c: &mut [f32], d: MatmulDims, beta: f32) {
    let MatmulDims { m, k, n, trans_a, trans_b } = d;
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "gemm: buffers too small for {d:?}");
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if trans_a { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if trans_b { (1, k as isize) } else { (n as isize, 1) };
    let ops = Operands { a: a.as_ptr(), b: b.as_ptr(), c: c.as_mut_ptr() };
    let block = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
        // SAFETY: the ranges lie inside the matrices checked above, and concurrent
        // calls receive disjoint ranges of C.
        unsafe {
            let a = ops.a().offset(rows.start as isize * rsa);
            let b = ops.b().offset(cols.start as isize * csb);
            let c = ops.c().add(rows.start * n + cols.start);
            matrixmultiply::sgemm(
                rows.len(),
                k,
                cols.len(),
                1.0,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                beta,
                c,
                n as isize,
                1,
            );
        }
    };
    let threads = rayon::current_num_threads();
    let inside_pool = rayon::current_thread_index().is_some();
    if inside_pool || threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        block(0..m, 0..n);
    } else if m >= n {
        let step = m.div_ceil(threads * 2).next_multiple_of(16);
        (0..m.div_ceil(step)).into_par_iter().for_each(|i| block(i * step..((i + 1) * step).min(m), 0..n));
    } else {
        let step = n.div_ceil(threads * 2).next_multiple_of(16);
        (0..n.div_ceil(step)).into_par_iter().for_each(|j| block(0..m, j * step..((j + 1) * step).min(n)));
    }
}
