//! Reductions over any set of axes, built from the single-axis kernels: `sum_axes`,
//! `mean_axes`, `var_axes` (population or sample variance), and the minimum along an
//! axis with its position. Their gradients follow from the ops they are made of.

use crate::Tensor;

/// Which variance [`Tensor::var_axes`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variance {
    /// Divided by `N` (what normalization layers use; PyTorch's `correction=0`).
    Population,
    /// Divided by `N − 1` (PyTorch's default, `correction=1`).
    Sample,
}

impl Tensor {
    /// Checks `axes` against this tensor's rank and returns them sorted, deduplicated.
    fn reduction_axes(&self, op: &str, axes: &[usize]) -> Vec<usize> {
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert!(
            sorted.last().is_none_or(|&a| a < self.shape().rank()),
            "{op}: axes {axes:?} out of range for shape {}",
            self.shape()
        );
        sorted
    }

    /// The shape without `axes` (or with them as 1s when `keepdim`).
    fn reduced_dims(&self, axes: &[usize], keepdim: bool) -> Vec<usize> {
        let dims = self.dims().iter().enumerate();
        if keepdim {
            dims.map(|(k, &d)| if axes.contains(&k) { 1 } else { d }).collect()
        } else {
            dims.filter(|(k, _)| !axes.contains(k)).map(|(_, &d)| d).collect()
        }
    }

    /// Sum over every axis in `axes` (PyTorch's `sum(dim=axes, keepdim)`).
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let axes = self.reduction_axes("sum_axes", axes);
        let mut out = self.clone();
        // Each run of adjacent axes is one merged axis summed by one kernel (a global
        // average pool's H and W are one axis of H·W).
        for run in adjacent_runs(&axes).into_iter().rev() {
            let dims = out.dims().to_vec();
            let merged: Vec<usize> = dims[..run.start]
                .iter()
                .copied()
                .chain([dims[run.clone()].iter().product()])
                .chain(dims[run.end..].iter().copied())
                .collect();
            let mut kept = dims;
            kept[run.clone()].fill(1);
            out = out.reshape(merged).sum_axis(run.start, true).reshape(kept);
        }
        out.reshape(self.reduced_dims(&axes, keepdim))
    }

    /// Number of elements the reduction over `axes` combines.
    fn reduced_count(&self, axes: &[usize]) -> usize {
        axes.iter().map(|&a| self.dims()[a]).product()
    }

    /// Mean over every axis in `axes`.
    pub fn mean_axes(&self, axes: &[usize], keepdim: bool) -> Tensor {
        let axes = self.reduction_axes("mean_axes", axes);
        let count = self.reduced_count(&axes);
        self.sum_axes(&axes, keepdim).mul_scalar(1.0 / count as f32)
    }

    /// Variance over every axis in `axes`: the mean squared deviation from the mean,
    /// divided by `N` or `N − 1` as `variance` says.
    pub fn var_axes(&self, axes: &[usize], variance: Variance, keepdim: bool) -> Tensor {
        let axes = self.reduction_axes("var_axes", axes);
        let count = self.reduced_count(&axes);
        let divisor = match variance {
            Variance::Population => count,
            Variance::Sample => count.saturating_sub(1).max(1),
        };
        let centered = self.sub(&self.mean_axes(&axes, true));
        centered.mul(&centered).sum_axes(&axes, keepdim).mul_scalar(1.0 / divisor as f32)
    }

    /// Minimum along `axis` (the gradient goes to the first minimal element).
    pub fn min_axis(&self, axis: usize, keepdim: bool) -> Tensor {
        self.neg().max_axis(axis, keepdim).neg()
    }

    /// Position of the minimum along `axis`, as an i32 tensor without that axis.
    pub fn argmin(&self, axis: usize) -> Tensor {
        crate::no_grad(|| self.neg()).argmax(axis)
    }
}

/// Sorted, distinct `axes` as runs of adjacent axes (`[1, 2, 4]` → `1..3`, `4..5`).
fn adjacent_runs(axes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for &axis in axes {
        match runs.last_mut() {
            Some(run) if run.end == axis => run.end += 1,
            _ => runs.push(axis..axis + 1),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::adjacent_runs;

    #[test]
    fn adjacent_axes_form_one_run() {
        assert_eq!(adjacent_runs(&[1, 2, 4]), vec![1..3, 4..5]);
        assert_eq!(adjacent_runs(&[0, 1, 2, 3]), vec![0..4]);
        assert_eq!(adjacent_runs(&[]), Vec::<std::ops::Range<usize>>::new());
    }
}
