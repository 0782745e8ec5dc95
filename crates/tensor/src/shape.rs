//! `Shape`: the dimensions of a tensor, and the index arithmetic built on them.

use std::fmt;

/// The dimensions of a tensor, outermost first (NCHW for images, `[out, in]` for dense
/// weights). A scalar has no dimensions.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The shape of a scalar (no dimensions, one element).
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// How many dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// How many elements (the product of the dimensions; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Dimension `axis`; panics naming the shape if there is no such axis.
    pub fn dim(&self, axis: usize) -> usize {
        assert!(axis < self.rank(), "axis {axis} is out of range for shape {self}");
        self.0[axis]
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.rank()];
        for i in (0..self.rank().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Splits the shape around `axis` into (elements before, the axis length, elements after).
    pub fn split_at_axis(&self, axis: usize) -> AxisSplit {
        let len = self.dim(axis);
        AxisSplit { outer: self.0[..axis].iter().product(), len, inner: self.0[axis + 1..].iter().product() }
    }

    /// The shape with `axis` removed (or set to 1 when `keepdim`).
    pub fn reduced(&self, axis: usize, keepdim: bool) -> Shape {
        let mut dims = self.0.clone();
        if keepdim {
            dims[axis] = 1;
        } else {
            dims.remove(axis);
        }
        Shape(dims)
    }

    /// The NumPy/PyTorch broadcast of two shapes (trailing dimensions aligned; each pair
    /// equal or one of them 1), or `None` if they do not broadcast.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let mut dims = vec![0; rank];
        for (i, out) in dims.iter_mut().enumerate() {
            let a = self.dim_from_right(rank - 1 - i);
            let b = other.dim_from_right(rank - 1 - i);
            *out = match (a, b) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return None,
            };
        }
        Some(Shape(dims))
    }

    /// Strides for reading this shape as if broadcast to `out` (0 along the dimensions
    /// it is broadcast over), one per dimension of `out`.
    pub fn broadcast_strides(&self, out: &Shape) -> Vec<usize> {
        let lead = out.rank() - self.rank();
        let own = self.strides();
        (0..out.rank())
            .map(|axis| if axis < lead || self.dim(axis - lead) == 1 { 0 } else { own[axis - lead] })
            .collect()
    }

    /// Dimension `k` counted from the right (0 = last), or 1 past the left edge.
    fn dim_from_right(&self, k: usize) -> usize {
        if k < self.rank() { self.0[self.rank() - 1 - k] } else { 1 }
    }
}

/// A shape seen as `[outer, len, inner]` around one axis: the layout every axis-wise
/// kernel (reductions, softmax, max) works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisSplit {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Length of the axis.
    pub len: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(dims: [usize; N]) -> Self {
        Shape(dims.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(dims: Vec<usize>) -> Self {
        Shape(dims)
    }
}

impl From<&Shape> for Shape {
    fn from(shape: &Shape) -> Self {
        shape.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_rules() {
        let a = Shape::from([4, 3, 5, 7]);
        assert_eq!(a.broadcast(&Shape::from([3, 1, 1])), Some(a.clone()));
        assert_eq!(Shape::from([2, 1]).broadcast(&Shape::from([3])), Some(Shape::from([2, 3])));
        assert_eq!(a.broadcast(&Shape::scalar()), Some(a.clone()));
        assert_eq!(a.broadcast(&Shape::from([4])), None);
    }

    #[test]
    fn strides_and_axis_split() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.split_at_axis(1), AxisSplit { outer: 2, len: 3, inner: 4 });
        assert_eq!(s.reduced(1, true), Shape::from([2, 1, 4]));
        assert_eq!(s.reduced(1, false), Shape::from([2, 4]));
        assert_eq!(Shape::scalar().numel(), 1);
    }
}
