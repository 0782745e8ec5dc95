//! The weights' transform: `U = G·g·Gᵀ` for every kernel, into the GEMM's packed
//! left-hand layout.

use super::*;

/// The transformed weights `U[ξ]`: `N²` `[O, C]` matrices in the GEMM's packed
/// left-hand layout, `stride` floats apart in one buffer from the device's memory.
pub(super) struct TransformedWeights<'m> {
    pub(super) data: Scratch<'m>,
    pub(super) stride: usize,
    pub(super) o: usize,
    pub(super) c: usize,
}

impl TransformedWeights<'_> {
    /// `U[ξ]` as a GEMM's left-hand side.
    pub(super) fn at(&self, xi: usize) -> Left<'_> {
        Left::Packed(PackedView::new(&self.data[xi * self.stride..], self.o, self.c))
    }
}

/// `U[ξ] = G·g·Gᵀ` for every kernel, written straight into the packed layout (no
/// intermediate matrices, no second packing pass), in parallel: each task owns one
/// packed panel (rows of output channels × a depth block of input channels) in all `N²`
/// matrices.
pub(super) fn transform_weights<
    'm,
    const N: usize,
    const M: usize,
    const R: usize,
    A: Transformed<N, M, R>,
>(
    mem: &'m HostMemory,
    w: &[f32],
    o: usize,
    c: usize,
) -> TransformedWeights<'m> {
    let stride = PackedView::len(o, c) + SKEW;
    let mut u = mem.scratch(N * N * stride);
    // The same panel of every position's matrix, gathered per task.
    let mut tasks: Vec<Vec<PackedPanel>> = Vec::new();
    for matrix in u.chunks_exact_mut(stride) {
        let panels = PackedView::panels_mut(matrix, o, c);
        tasks.resize_with(panels.len(), Vec::new);
        tasks.iter_mut().zip(panels).for_each(|(task, panel)| task.push(panel));
    }
    tasks.into_par_iter().for_each(|mut positions| {
        let (first_row, depth) = (positions[0].first_row, positions[0].depth.clone());
        for r in 0..MR {
            let oc = first_row + r;
            for (k, channel) in depth.clone().enumerate() {
                // Rows past `o` in the last panel only produce discarded rows: zeros.
                let values: [[f32; N]; N] = if oc < o {
                    let g = &w[(oc * c + channel) * R * R..][..R * R];
                    // G·g, column by column: N×R; then (G·g)·Gᵀ, row by row: N×N.
                    let columns: [[f32; N]; R] =
                        gather(|col| times(&A::TRANSFORMS.kernel, &gather(|k| g[k * R + col])));
                    gather(|row| times(&A::TRANSFORMS.kernel, &gather(|k| columns[k][row])))
                } else {
                    [[0.0; N]; N]
                };
                for (panel, value) in positions.iter_mut().zip(values.iter().flatten()) {
                    panel.set(r, k, *value);
                }
            }
        }
    });
    TransformedWeights { data: u, stride, o, c }
}
