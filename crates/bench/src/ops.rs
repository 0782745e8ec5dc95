//! `kiln-bench --ops`: the forward and forward+backward time of single ops at the
//! shapes a small-image ResNet-18 and a small ViT use (batch 128), for comparison with
//! `bench/pytorch_ops.py`, which measures the same list in PyTorch.

use kiln_nn::{BatchNorm2d, Mode, Module};
use kiln_tensor::{Device, Normal, Tensor};

use crate::best_of;

/// The function of its inputs an op case computes.
type OpFn = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// One measured op: its name, the shapes of its inputs, and what it computes.
struct OpCase {
    name: &'static str,
    inputs: Vec<Vec<usize>>,
    run: OpFn,
}

/// The op list; `bench/pytorch_ops.py` mirrors it entry for entry.
fn cases(device: &Device) -> Vec<OpCase> {
    let conv = |input: [usize; 4], out: usize, k: usize, stride: usize, pad: usize, seed: u64| -> OpCase {
        let weight = Tensor::normal([out, input[1], k, k], Normal { mean: 0.0, std: 0.05 }, seed, device);
        OpCase {
            name: "",
            inputs: vec![input.to_vec()],
            run: Box::new(move |x| x[0].conv2d(&weight, None, stride, pad)),
        }
    };
    let bn = BatchNorm2d::new(device, 64);
    vec![
        OpCase { name: "conv 3x3/2 64->128 28x28", ..conv([128, 64, 28, 28], 128, 3, 2, 1, 1) },
        OpCase { name: "conv 1x1/2 64->128 28x28", ..conv([128, 64, 28, 28], 128, 1, 2, 0, 2) },
        OpCase { name: "conv 1x1 128->128 14x14", ..conv([128, 128, 14, 14], 128, 1, 1, 0, 3) },
        OpCase {
            name: "batch norm 64 28x28 (training)",
            inputs: vec![vec![128, 64, 28, 28]],
            run: Box::new(move |x| bn.forward(&x[0], Mode::train(0))),
        },
        OpCase {
            name: "avg pool 2x2 64 28x28",
            inputs: vec![vec![128, 64, 28, 28]],
            run: Box::new(|x| x[0].avg_pool2d(2, 2, 0)),
        },
        OpCase {
            name: "global avg pool 512 4x4",
            inputs: vec![vec![128, 512, 4, 4]],
            run: Box::new(|x| x[0].global_avg_pool2d()),
        },
        OpCase {
            name: "batched matmul q·kT 128x4 50x32",
            inputs: vec![vec![128, 4, 50, 32], vec![128, 4, 50, 32]],
            run: Box::new(|x| x[0].matmul_with(&x[1], false, true)),
        },
        OpCase {
            name: "softmax 128x4x50x50 last axis",
            inputs: vec![vec![128, 4, 50, 50]],
            run: Box::new(|x| x[0].softmax(3)),
        },
        OpCase {
            name: "layer norm 128x50x128",
            inputs: vec![vec![128, 50, 128]],
            run: {
                let norm = kiln_nn::LayerNorm::new(device, &[128]);
                Box::new(move |x| norm.forward(&x[0], Mode::Eval))
            },
        },
        OpCase { name: "gelu 128x50x512", inputs: vec![vec![128, 50, 512]], run: Box::new(|x| x[0].gelu()) },
        OpCase {
            name: "attention 128x4 50x32",
            inputs: vec![vec![128, 4, 50, 32]; 3],
            run: Box::new(|x| x[0].scaled_dot_product_attention(&x[1], &x[2], None)),
        },
    ]
}

/// JSON objects `{"op", "forward_ms", "forward_backward_ms"}`, best of `reps`.
pub fn op_figures(device: &Device, reps: usize) -> Vec<String> {
    cases(device)
        .into_iter()
        .enumerate()
        .map(|(i, case)| {
            let inputs: Vec<Tensor> = case
                .inputs
                .iter()
                .enumerate()
                .map(|(j, shape)| Tensor::randn(shape.clone(), (10 * i + j) as u64, device))
                .collect();
            let forward = best_of(device, reps, || {
                kiln_tensor::no_grad(|| (case.run)(&inputs));
            });
            let leaves: Vec<Tensor> = inputs.iter().map(Tensor::with_requires_grad).collect();
            let both = best_of(device, reps, || {
                let grads = (case.run)(&leaves).sum().backward();
                assert!(grads.get(&leaves[0]).is_some(), "{}: no gradient", case.name);
            });
            format!(
                "{{\"op\": \"{}\", \"forward_ms\": {:.3}, \"forward_backward_ms\": {:.3}}}",
                case.name,
                forward * 1e3,
                both * 1e3
            )
        })
        .collect()
}
