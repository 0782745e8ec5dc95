//! `Embedding`: a lookup table of vectors indexed by i32 ids (`torch.nn.Embedding`).

use kiln_tensor::{DType, Shape, Tensor};

use crate::{Initializer, Mode, Module, NnError, Result, SummaryStyle};

/// A table of `count` vectors of `dim` values (`weight` `[count, dim]`, drawn from
/// N(0, 1) as PyTorch's). Its input is an i32 tensor of ids of any shape; the output
/// appends `dim`. Its gradient adds into the rows used (`scatter_add`).
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Embedding, Initializer, Mode, Module};
/// use kiln_tensor::{Device, Tensor};
///
/// let device = Device::cpu();
/// let table = Embedding::new(&mut Initializer::new(&device, 0), 100, 8);
/// let ids = Tensor::from_i32([2, 3], vec![1, 5, 99, 0, 0, 7], &device);
/// assert_eq!(table.forward(&ids, Mode::Eval).dims(), &[2, 3, 8]);
/// ```
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// `count` vectors of `dim` values.
    pub fn new(init: &mut Initializer, count: usize, dim: usize) -> Self {
        let seed = init.next_seed();
        let weight = Tensor::randn([count, dim], seed, init.device()).with_requires_grad();
        Embedding { weight }
    }

    /// The table, `[count, dim]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor, _mode: Mode) -> Tensor {
        assert_eq!(ids.dtype(), DType::I32, "Embedding: the ids must be an i32 tensor, got {ids:?}");
        let dim = self.weight.dims()[1];
        let rows = self.weight.index_select(0, &ids.reshape([ids.numel()]));
        rows.reshape(ids.dims().iter().copied().chain([dim]).collect::<Vec<_>>())
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape> {
        if input.rank() == 0 && input.numel() == 0 {
            return Err(NnError::Shape(format!("embedding: expects ids, got {input}")));
        }
        Ok(Shape::new(input.dims().iter().copied().chain([self.weight.dims()[1]]).collect::<Vec<_>>()))
    }

    fn summary_style(&self) -> SummaryStyle {
        SummaryStyle::Row(format!("embedding {}×{}", self.weight.dims()[0], self.weight.dims()[1]))
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&format!("{prefix}weight"), &self.weight);
    }

    fn visit_parameters_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&format!("{prefix}weight"), &mut self.weight);
    }
}
