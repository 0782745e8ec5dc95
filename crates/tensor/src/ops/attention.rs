//! Scaled dot-product attention as one op (PyTorch's
//! `F.scaled_dot_product_attention` without a mask or dropout): `softmax(scale ·
//! q·kᵀ) · v` over the last two dimensions, which a backend may run without writing
//! the scores out. The backward pass is the chain of the products' and the softmax's
//! gradients, from the attention weights the forward pass kept.

use super::{expect_f32, expect_same_device};
use crate::autograd::{BackwardRule, is_recording};
use crate::{AttentionDims, AxisSplit, Shape, StorageRef, Tensor};

struct AttentionBackward {
    /// The softmax's output, `[.., queries, keys]` as the query's leading dimensions.
    weights: StorageRef,
    split: AxisSplit,
    scale: f32,
}

impl BackwardRule for AttentionBackward {
    fn backward(&self, inputs: &[Tensor], _output: &Tensor, grad: Tensor) -> Vec<Option<Tensor>> {
        let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
        let device = q.device();
        let mut weights_shape = q.dims().to_vec();
        *weights_shape.last_mut().expect("rank ≥ 2") = self.split.len;
        let weights =
            Tensor::from_storage(self.weights.clone(), Shape::new(weights_shape.as_slice()), device);
        // dV = Pᵀ·dO; dP = dO·Vᵀ; dS = softmax′(P)·dP·scale; dQ = dS·K; dK = dSᵀ·Q.
        let dv = v.requires_grad().then(|| weights.matmul_with(&grad, true, false));
        let (dq, dk) = if q.requires_grad() || k.requires_grad() {
            let dp = grad.matmul_with(v, false, true);
            let ds = device.backend().softmax_backward(&self.weights, dp.storage(), self.split, false);
            let ds =
                Tensor::from_storage(ds, Shape::new(weights_shape.as_slice()), device).mul_scalar(self.scale);
            (
                q.requires_grad().then(|| ds.matmul(k)),
                k.requires_grad().then(|| ds.matmul_with(q, true, false)),
            )
        } else {
            (None, None)
        };
        vec![dq, dk, dv]
    }
}

impl Tensor {
    /// Scaled dot-product attention of queries `self` `[.., L, D]` over keys `[.., S,
    /// D]` and values `[.., S, Dv]` (the leading dimensions equal): `softmax(scale ·
    /// q·kᵀ) · v`, `[.., L, Dv]`, with `scale` `1/√D` unless given (PyTorch's
    /// `F.scaled_dot_product_attention` without a mask). One op: the CPU keeps each
    /// row's scores in cache instead of writing them out and reading them back.
    ///
    /// ```
    /// use kiln_cpu::CpuDevice;
    /// use kiln_tensor::{Device, Tensor};
    /// let device = Device::cpu();
    /// let q = Tensor::from_vec([1, 2], vec![0.0, 0.0], &device);
    /// let k = Tensor::from_vec([2, 2], vec![1.0, 0.0, 0.0, 1.0], &device);
    /// let v = Tensor::from_vec([2, 1], vec![2.0, 4.0], &device);
    /// // Equal scores: the output is the mean of the values.
    /// assert_eq!(q.scaled_dot_product_attention(&k, &v, None).to_vec().unwrap(), vec![3.0]);
    /// ```
    pub fn scaled_dot_product_attention(&self, key: &Tensor, value: &Tensor, scale: Option<f32>) -> Tensor {
        const OP: &str = "scaled_dot_product_attention";
        for t in [self, key, value] {
            expect_f32(OP, t);
            expect_same_device(OP, self, t);
        }
        let (q, k, v) = (self.dims(), key.dims(), value.dims());
        let rank = q.len();
        assert!(
            rank >= 2 && k.len() == rank && v.len() == rank,
            "{OP}: query, key and value must have the same rank (at least 2), got shapes {}, {} and {}",
            self.shape(),
            key.shape(),
            value.shape()
        );
        let leading = &q[..rank - 2];
        assert!(
            k[..rank - 2] == *leading && v[..rank - 2] == *leading,
            "{OP}: query, key and value must have the same leading dimensions, got shapes {}, {} and {}",
            self.shape(),
            key.shape(),
            value.shape()
        );
        let (queries, depth, keys, value_depth) = (q[rank - 2], q[rank - 1], k[rank - 2], v[rank - 1]);
        assert!(
            k[rank - 1] == depth && v[rank - 2] == keys,
            "{OP}: keys {} must be [.., S, {depth}] and values {} [.., S, Dv] with the same S",
            key.shape(),
            value.shape()
        );
        assert!(keys > 0, "{OP}: there must be at least one key, got shape {}", key.shape());
        let scale = scale.unwrap_or(1.0 / (depth as f32).sqrt());
        let dims =
            AttentionDims { batch: leading.iter().product(), queries, keys, depth, value_depth, scale };
        let inputs = [self, key, value];
        let keep_weights = is_recording() && inputs.iter().any(|t| t.requires_grad());
        let (output, weights) = self.device().backend().attention(
            self.storage(),
            key.storage(),
            value.storage(),
            dims,
            keep_weights,
        );
        let mut shape = q.to_vec();
        shape[rank - 1] = value_depth;
        let split = AxisSplit { outer: dims.batch * queries, len: keys, inner: 1 };
        match weights {
            Some(weights) => Tensor::from_op(
                output,
                Shape::new(shape.as_slice()),
                &inputs,
                AttentionBackward { weights, split, scale },
            ),
            None => Tensor::from_storage(output, Shape::new(shape.as_slice()), self.device()),
        }
    }
}
