//! Forward values against independent expectations: small cases worked by hand, and
//! reference values computed once with PyTorch 2.15 (CPU, f32) by
//! `scripts/torch_reference_values.py`, from inputs defined by formulas so both sides
//! build the very same tensors; the loss variants' values come from Keras 3.15 /
//! TensorFlow 2.21 and PyTorch 2.15 by `scripts/loss_reference_values.py`.

// The literals are copied verbatim from PyTorch's printout, digits beyond f32 included.
#![allow(clippy::excessive_precision)]

#[macro_use]
mod common;

use common::*;
use kiln::nn::{
    AttentionMasks, BatchNorm2d, DecayScope, GroupNorm, Initializer, LayerNorm, Mode, Module,
    MultiheadAttention, RmsProp, clip_grad_norm,
};
use kiln::prelude::*;
use kiln::tensor::Gradients;
use kiln::tensor::{ConvOptions, Size2d, UnaryDomain, UnaryOp, Variance};

/// `x[i] = sin(0.37·i + 0.1)` of `shape`, computed in f64 as Python does.
fn sine_input(device: &Device, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|i| (0.37 * i as f64 + 0.1).sin() as f32).collect(), device)
}

/// `w[i] = 0.5·cos(0.11·i)` of `shape`.
fn cosine_weight(device: &Device, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), (0..n).map(|i| (0.5 * (0.11 * i as f64).cos()) as f32).collect(), device)
}

/// Checks the shape, the sum and the listed `(flat index, value)` pairs of `y`.
fn assert_reference(name: &str, y: &Tensor, shape: &[usize], sum: f32, picks: &[(usize, f32)]) {
    assert_eq!(y.dims(), shape, "{name}: shape");
    let values = y.to_vec().unwrap();
    let total: f32 = values.iter().sum();
    assert!((total - sum).abs() < 1e-4 * (1.0 + sum.abs()), "{name}: sum {total}, PyTorch {sum}");
    for &(i, want) in picks {
        assert!(
            (values[i] - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{name}[{i}]: {} vs PyTorch {want}",
            values[i]
        );
    }
}

test_on_every_device! {
    fn matmul_by_hand_with_transposes(device: &Device) {
        let a = Tensor::from_vec([2, 2], vec![1.0, 2.0, 3.0, 4.0], device);
        let b = Tensor::from_vec([2, 2], vec![5.0, 6.0, 7.0, 8.0], device);
        assert_eq!(a.matmul(&b).to_vec().unwrap(), vec![19.0, 22.0, 43.0, 50.0]);
        assert_eq!(a.matmul_with(&b, true, false).to_vec().unwrap(), vec![26.0, 30.0, 38.0, 44.0]);
        assert_eq!(a.matmul_with(&b, false, true).to_vec().unwrap(), vec![17.0, 23.0, 39.0, 53.0]);
        let tall = Tensor::from_vec([3, 1], vec![1.0, 2.0, 3.0], device);
        let wide = Tensor::from_vec([1, 2], vec![10.0, 20.0], device);
        assert_eq!(tall.matmul(&wide).to_vec().unwrap(), vec![10.0, 20.0, 20.0, 40.0, 30.0, 60.0]);
    }

    fn broadcasting_by_hand(device: &Device) {
        let m = Tensor::from_vec([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], device);
        let row = Tensor::from_vec([3], vec![10.0, 20.0, 30.0], device);
        let col = Tensor::from_vec([2, 1], vec![100.0, 200.0], device);
        assert_eq!(m.add(&row).to_vec().unwrap(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        assert_eq!(m.mul(&col).to_vec().unwrap(), vec![100.0, 200.0, 300.0, 800.0, 1000.0, 1200.0]);
        assert_eq!(m.sum_axis(0, false).to_vec().unwrap(), vec![5.0, 7.0, 9.0]);
        assert_eq!(m.sum_axis(1, true).dims(), &[2, 1]);
        assert_eq!(m.max_axis(1, false).to_vec().unwrap(), vec![3.0, 6.0]);
        assert_eq!(m.argmax(0).to_vec_i32().unwrap(), vec![1, 1, 1]);
        assert_eq!(m.mean().item().unwrap(), 3.5);
    }

    fn softmax_and_cross_entropy_by_hand(device: &Device) {
        let x = Tensor::from_vec([1, 3], vec![1.0, 2.0, 3.0], device);
        assert_close(
            "softmax",
            &x.softmax(1).to_vec().unwrap(),
            &[0.090_030_57, 0.244_728_47, 0.665_240_96],
            1e-6,
        );
        // Rows [0, 0] with label 0 and [ln 3, 0] with label 1: losses ln 2 and ln 4.
        let logits = Tensor::from_vec([2, 2], vec![0.0, 0.0, 3f32.ln(), 0.0], device);
        let labels = Tensor::from_i32([2], vec![0, 1], device);
        let loss = logits.cross_entropy(&labels).item().unwrap();
        assert!((loss - 1.5 * 2f32.ln()).abs() < 1e-6, "loss {loss}");
        // Large logits stay finite (the maximum is subtracted first).
        let huge = Tensor::from_vec([1, 2], vec![1000.0, 0.0], device);
        let loss = huge.cross_entropy(&Tensor::from_i32([1], vec![1], device)).item().unwrap();
        assert!((loss - 1000.0).abs() < 1e-3, "loss {loss}");
    }

    fn conv2d_and_pool_by_hand(device: &Device) {
        let x = Tensor::from_vec([1, 1, 3, 3], (1..=9).map(|v| v as f32).collect(), device);
        let w = Tensor::from_vec([1, 1, 2, 2], vec![1.0, 0.0, 0.0, -1.0], device);
        let b = Tensor::from_vec([1], vec![0.5], device);
        // x[i,j] − x[i+1,j+1] + 0.5 = −3.5 everywhere.
        assert_eq!(x.conv2d(&w, Some(&b), 1, 0).to_vec().unwrap(), vec![-3.5; 4]);
        // Stride 2, padding 1: windows at (−1,−1), (−1,1), (1,−1), (1,1).
        assert_eq!(x.conv2d(&w, Some(&b), 2, 1).to_vec().unwrap(), vec![-0.5, -2.5, -6.5, -3.5]);
        let grid = Tensor::from_vec([1, 1, 4, 4], (0..16).map(|v| v as f32).collect(), device);
        assert_eq!(grid.max_pool2d(2, 2, 0).to_vec().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
        let grid = grid.with_requires_grad();
        let grads = grid.max_pool2d(2, 2, 0).sum().backward();
        let routed = grads.get(&grid).unwrap().to_vec().unwrap();
        let winners: Vec<usize> = (0..16).filter(|&i| routed[i] == 1.0).collect();
        assert_eq!(winners, vec![5, 7, 13, 15]);
    }

    fn conv2d_matches_pytorch(device: &Device) {
        let b = Tensor::from_vec([4], (0..4).map(|o| 0.1 * o as f32 - 0.2).collect(), device);
        let y = sine_input(device, &[2, 3, 7, 9]).conv2d(&cosine_weight(device, &[4, 3, 3, 3]), Some(&b), 2, 1);
        assert_reference(
            "conv 3x3/2 pad 1",
            &y,
            &[2, 4, 4, 5],
            -8.094_674_1,
            &[
                (0, -0.709_042_55),
                (7, -2.016_667_1),
                (33, 0.613_586_49),
                (79, 0.635_938_41),
                (101, 0.089_596_95),
                (159, 0.661_313_24),
            ],
        );
        let y = sine_input(device, &[1, 1, 27, 31]).conv2d(&cosine_weight(device, &[2, 1, 11, 11]), None, 4, 0);
        assert_reference(
            "conv 11x11/4",
            &y,
            &[1, 2, 5, 6],
            -17.130_657,
            &[(0, 0.542_990_33), (13, 4.843_082_9), (29, -3.948_054_1), (41, 2.445_416_9), (59, -0.449_154_53)],
        );
        let y = sine_input(device, &[2, 3, 8, 9]).conv2d(&cosine_weight(device, &[5, 3, 5, 5]), None, 1, 2);
        assert_reference(
            "conv 5x5 pad 2",
            &y,
            &[2, 5, 8, 9],
            4.097_354_4,
            &[
                (0, -0.549_791_69),
                (77, -0.373_713_64),
                (200, -0.478_293_03),
                (555, -1.193_056_9),
                (719, 1.008_480_3),
            ],
        );
    }

    fn max_pool2d_matches_pytorch(device: &Device) {
        let y = sine_input(device, &[1, 2, 9, 11]).max_pool2d(3, 2, 0);
        assert_reference(
            "max-pool 3/2",
            &y,
            &[1, 2, 4, 5],
            37.974_67,
            &[(0, 0.926_415_5), (5, 0.926_415_5), (17, 0.999_335_29), (23, 0.998_745_68), (39, 0.997_009_93)],
        );
    }

    fn cross_entropy_matches_pytorch(device: &Device) {
        let logits = sine_input(device, &[4, 5]).mul_scalar(3.0).detach().with_requires_grad();
        let labels = Tensor::from_i32([4], vec![1, 4, 0, 2], device);
        let loss = logits.cross_entropy(&labels);
        assert!((loss.item().unwrap() - 2.559_712_9).abs() < 1e-5);
        let grad = loss.backward().get(&logits).unwrap().to_vec().unwrap();
        for (i, want) in
            [(0, 6.585_593_8e-3), (1, -0.231_007_52), (9, -0.246_523_08), (10, -0.155_187_76), (19, 0.153_329_7)]
        {
            assert!((grad[i] - want).abs() < 1e-6, "grad[{i}]: {} vs PyTorch {want}", grad[i]);
        }
    }

    /// Every op of the unary table against PyTorch 2.15, forward and gradient of
    /// `y.sum()`: the table's examples (same parameters) on `3·sin(0.37·i + 0.1)`
    /// (`|x| + 0.5` where the op needs positive inputs). An op without a PyTorch row
    /// fails: add it to `scripts/torch_reference_values.py`.
    fn every_unary_op_matches_pytorch(device: &Device) {
        for (op, domain) in UnaryOp::examples() {
            let name = op.method_name();
            let Some((_, rows)) = ACTIVATIONS.iter().find(|(n, _)| *n == name) else {
                panic!("no PyTorch reference for `{name}`: add it to scripts/torch_reference_values.py")
            };
            let mut x = sine_input(device, &[24]).mul_scalar(3.0);
            if domain == UnaryDomain::Positive {
                x = x.abs().add_scalar(0.5);
            }
            let x = x.with_requires_grad();
            let y = x.unary(op);
            let grad = y.sum().backward().get(&x).unwrap().to_vec().unwrap();
            let values = y.to_vec().unwrap();
            for &(i, want, want_grad) in rows {
                let close = |got: f32, want: f32| (got - want).abs() <= 1e-5 * (1.0 + want.abs());
                assert!(close(values[i], want), "{name}[{i}]: {} vs PyTorch {want}", values[i]);
                assert!(close(grad[i], want_grad), "{name}' [{i}]: {} vs PyTorch {want_grad}", grad[i]);
            }
        }
    }

    /// PyTorch's semantics of the view ops on `arange`, worked by hand.
    fn views_by_hand(device: &Device) {
        let x = Tensor::from_vec([2, 3, 4], (0..24).map(|v| v as f32).collect(), device);
        let p = x.permute(&[2, 0, 1]);
        assert_eq!(p.dims(), [4, 2, 3]);
        assert_eq!(p.to_vec().unwrap()[..7], [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0]);
        assert_eq!(x.transpose(0, 1).to_vec().unwrap()[..8], [0.0, 1.0, 2.0, 3.0, 12.0, 13.0, 14.0, 15.0]);
        let n = x.narrow(2, 1, 2);
        assert_eq!(n.dims(), [2, 3, 2]);
        assert_eq!(n.to_vec().unwrap(), [1.0, 2.0, 5.0, 6.0, 9.0, 10.0, 13.0, 14.0, 17.0, 18.0, 21.0, 22.0]);
        let two = Tensor::from_vec([2, 1], vec![-1.0, -2.0], device);
        let three = Tensor::from_vec([2, 2], vec![7.0, 8.0, 9.0, 10.0], device);
        assert_eq!(Tensor::cat(&[&two, &three], 1).to_vec().unwrap(), [-1.0, 7.0, 8.0, -2.0, 9.0, 10.0]);
        let stacked = Tensor::stack(&[&three, &three.neg()], 0);
        assert_eq!(stacked.dims(), [2, 2, 2]);
        assert_eq!(stacked.to_vec().unwrap(), [7.0, 8.0, 9.0, 10.0, -7.0, -8.0, -9.0, -10.0]);
        let pieces = x.chunk(2, 1);
        assert_eq!(pieces.iter().map(|p| p.dims().to_vec()).collect::<Vec<_>>(), [vec![2, 2, 4], vec![2, 1, 4]]);
        assert_eq!(pieces[1].to_vec().unwrap(), [8.0, 9.0, 10.0, 11.0, 20.0, 21.0, 22.0, 23.0]);
    }

    #[should_panic(expected = "cat: shape [2, 3] does not join shape [2, 1] along axis 0")]
    fn cat_mismatch_names_both_shapes(device: &Device) {
        let a = Tensor::zeros([2, 1], device);
        let _ = Tensor::cat(&[&a, &Tensor::zeros([2, 3], device)], 0);
    }

    #[should_panic(expected = "narrow: positions 2..5 of axis 1 are outside shape [2, 4]")]
    fn narrow_outside_names_the_shape(device: &Device) {
        let _ = Tensor::zeros([2, 4], device).narrow(1, 2, 3);
    }

    /// `torch.var(x, dim, correction)` and friends on a small case worked by hand.
    fn several_axis_reductions_by_hand(device: &Device) {
        let x = Tensor::from_vec([2, 2, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], device);
        assert_eq!(x.sum_axes(&[0, 2], false).to_vec().unwrap(), [14.0, 22.0]);
        assert_eq!(x.mean_axes(&[1, 2], true).dims(), [2, 1, 1]);
        assert_eq!(x.mean_axes(&[1, 2], true).to_vec().unwrap(), [2.5, 6.5]);
        // Values 1, 2, 3, 4: mean 2.5, squared deviations sum to 5.
        let population = x.var_axes(&[1, 2], Variance::Population, false).to_vec().unwrap();
        let sample = x.var_axes(&[1, 2], Variance::Sample, false).to_vec().unwrap();
        assert!((population[0] - 1.25).abs() < 1e-6 && (sample[0] - 5.0 / 3.0).abs() < 1e-6, "{population:?} {sample:?}");
        assert_eq!(x.min_axis(2, false).to_vec().unwrap(), [1.0, 3.0, 5.0, 7.0]);
        assert_eq!(x.argmin(0).to_vec_i32().unwrap(), [0, 0, 0, 0]);
    }

    /// The regression and binary losses (mean reduction) and their gradients, and
    /// average pooling, against PyTorch 2.15 (`scripts/torch_reference_values.py`).
    fn losses_and_avg_pool_match_pytorch(device: &Device) {
        let target = cosine_weight(device, &[4, 6]).mul_scalar(4.0);
        let probability = cosine_weight(device, &[4, 6]).add_scalar(0.5).clamp(0.0, 1.0);
        type Loss = fn(&Tensor, &Tensor, &Tensor) -> Tensor;
        let cases: [(&str, Loss, f32, [f32; 5]); 4] = [
            ("mse_loss", |p, t, _| p.mse_loss(t), 6.078_446_87, [-1.417_083_1e-1, 9.015_250_2e-2, -2.729_560_7e-1, 7.577_948_3e-2, 3.183_490_9e-1]),
            ("l1_loss", |p, t, _| p.l1_loss(t), 2.066_176_65, [-4.166_666_8e-2, 4.166_666_8e-2, -4.166_666_8e-2, 4.166_666_8e-2, 4.166_666_8e-2]),
            ("huber_loss", |p, t, _| p.huber_loss(t, 1.0), 1.606_443_29, [-4.166_666_8e-2, 4.166_666_8e-2, -4.166_666_8e-2, 3.788_974_1e-2, 4.166_666_8e-2]),
            ("bce_with_logits", |p, _, q| p.bce_with_logits(q), 1.126_282_33, [-1.773_665_1e-2, 6.541_833_3e-4, -2.522_408_2e-2, 9.444_323_4e-3, 3.366_892_4e-2]),
        ];
        for (name, loss, want, want_grad) in cases {
            let prediction = sine_input(device, &[4, 6]).mul_scalar(3.0).with_requires_grad();
            let value = loss(&prediction, &target, &probability);
            let grad = value.backward().get(&prediction).unwrap().to_vec().unwrap();
            let value = value.item().unwrap();
            assert!((value - want).abs() < 1e-5 * want.abs(), "{name}: {value} vs PyTorch {want}");
            for (&i, want) in [0, 5, 11, 17, 23].iter().zip(want_grad) {
                assert!((grad[i] - want).abs() < 1e-6, "{name} grad[{i}]: {} vs PyTorch {want}", grad[i]);
            }
        }
        let x = sine_input(device, &[2, 3, 7, 9]);
        let picks = [(0, -3.817_376_5e-2), (7, -2.844_370_6e-1), (33, -2.914_523_5e-1), (79, 5.676_017_6e-4), (101, 1.914_991_3e-2)];
        assert_reference("avg_pool2d 3/2 pad 1", &x.avg_pool2d(3, 2, 1), &[2, 3, 4, 5], -1.150_878_9, &picks);
        let picks = [(0, 5.725_417_7e-2), (2, -6.803_038e-2), (5, -4.316_404_8e-2)];
        assert_reference("global_avg_pool2d", &x.global_avg_pool2d(), &[2, 3, 1, 1], 4.187_376_4e-2, &picks);
    }

    /// BatchNorm2d (training output, running statistics after the step, evaluation
    /// output), GroupNorm and LayerNorm against PyTorch 2.15's `torch.nn` layers with
    /// their default parameters.
    fn normalization_layers_match_pytorch(device: &Device) {
        let x = sine_input(device, &[2, 4, 3, 3]).mul_scalar(2.0).add_scalar(0.5);
        let close = |name: &str, y: &Tensor, picks: &[(usize, f32)]| {
            let values = y.to_vec().unwrap();
            for &(i, want) in picks {
                assert!((values[i] - want).abs() < 2e-5 * (1.0 + want.abs()), "{name}[{i}]: {} vs PyTorch {want}", values[i]);
            }
        };
        let bn = BatchNorm2d::new(device, 4);
        let train = bn.forward(&x, Mode::train(0));
        close("batch norm train", &train, &[(0, -8.985_187_4e-1), (10, -2.735_783_8e-1), (37, 9.073_791_5e-1), (71, 2.003_869_1)]);
        let (mean, var) = bn.running_stats();
        close("running mean", &mean, &[(0, 1.536_050_0e-1), (1, -4.388_536_1e-2), (2, 1.308_429_1e-1), (3, -1.493_921_1e-2)]);
        close("running var", &var, &[(0, 9.917_433_9e-1), (1, 1.014_795_7), (2, 1.042_163_6), (3, 1.070_006_8)]);
        let eval = bn.forward(&x, Mode::Eval);
        close("batch norm eval", &eval, &[(0, 5.483_274_5e-1), (10, -6.748_529_7e-1), (37, 2.236_315_7), (71, 2.324_711_6)]);
        let group = GroupNorm::new(device, 2, 4).forward(&x, Mode::Eval);
        close("group norm", &group, &[(0, 1.367_699_4e-1), (10, -8.988_016_8e-1), (37, 1.266_575_5), (71, 1.237_199_5)]);
        let layer = LayerNorm::new(device, &[9]).forward(&x.reshape([8, 9]), Mode::Eval);
        close("layer norm", &layer, &[(0, -1.514_656_5), (10, -6.260_197_6e-2), (37, 9.085_307_1e-1), (71, 1.533_719_8)]);
    }

    /// The fused `batch_norm` (batch statistics) and `layer_norm` with a scale and a
    /// shift, and their gradients, against PyTorch 2.15's `F.batch_norm` and
    /// `F.layer_norm`.
    fn fused_normalizations_match_pytorch(device: &Device) {
        use kiln::tensor::BatchStatistics;
        type Picks<'a> = &'a [(usize, f32)];
        let close = |name: &str, t: &Tensor, picks: Picks| {
            let values = t.to_vec().unwrap();
            for &(i, want) in picks {
                assert!((values[i] - want).abs() < 2e-5 * (1.0 + want.abs()), "{name}[{i}]: {} vs PyTorch {want}", values[i]);
            }
        };
        let cases: [(&str, &[usize], [Picks; 4]); 2] = [
            ("batch_norm", &[4], [
                &[(0, -1.317_828_2), (10, -2.736_749_4e-1), (37, 1.391_018_9), (71, 3.232_426_2)],
                &[(0, 5.543_392_9e-1), (10, 8.744_245e-2), (37, -6.933_011_4e-1), (71, 6.175_445_4e-2)],
                &[(0, -2.523_106_3e-1), (3, 7.959_653_7e-1)],
                &[(0, 2.581_236_1), (3, -2.155_516_1)],
            ]),
            ("layer_norm", &[3, 3], [
                &[(0, -2.242_034_7), (10, 4.215_211_4e-2), (37, 1.495_916_4), (71, 2.046_776_1)],
                &[(0, 2.512_152_8e-1), (10, 3.241_416_2e-1), (37, -6.097_120_8e-2), (71, -9.587_734_9e-3)],
                &[(0, -6.439_217_9e-1), (3, 2.470_933e-1)],
                &[(0, 7.285_943e-1), (3, 6.101_476e-1)],
            ]),
        ];
        for (name, features, [y_picks, dx_picks, dweight_picks, dbias_picks]) in cases {
            let x = sine_input(device, &[2, 4, 3, 3]).mul_scalar(2.0).add_scalar(0.5).with_requires_grad();
            let weight = cosine_weight(device, features).add_scalar(1.0).with_requires_grad();
            let bias = sine_input(device, features).mul_scalar(0.3).with_requires_grad();
            let y = match name {
                "batch_norm" => x.batch_norm(&weight, &bias, BatchStatistics::Batch, 1e-5).output,
                _ => x.layer_norm(features, Some(&weight), Some(&bias), 1e-5),
            };
            let grads = y.mul(&cosine_weight(device, &[2, 4, 3, 3])).sum().backward();
            close(name, &y, y_picks);
            close(&format!("{name} dx"), grads.get(&x).unwrap(), dx_picks);
            close(&format!("{name} dweight"), grads.get(&weight).unwrap(), dweight_picks);
            close(&format!("{name} dbias"), grads.get(&bias).unwrap(), dbias_picks);
        }
    }

    /// `F.scaled_dot_product_attention` (default scale) and its gradients for the query,
    /// key and value, against PyTorch 2.15.
    fn scaled_dot_product_attention_matches_pytorch(device: &Device) {
        let q = sine_input(device, &[2, 3, 5, 4]).with_requires_grad();
        let k = cosine_weight(device, &[2, 3, 6, 4]).with_requires_grad();
        let v = sine_input(device, &[2, 3, 6, 3]).mul_scalar(2.0).add_scalar(0.5).with_requires_grad();
        let y = q.scaled_dot_product_attention(&k, &v, None);
        assert_eq!(y.dims(), &[2, 3, 5, 3]);
        let grads = y.mul(&cosine_weight(device, &[2, 3, 5, 3])).sum().backward();
        type Case<'a> = (&'a str, &'a Tensor, [(usize, f32); 4]);
        let cases: [Case; 4] = [
            ("output", &y, [(0, 8.120_347_9e-1), (11, 1.908_400_4e-1), (47, 4.198_476_7e-1), (89, 7.591_838_2e-1)]),
            ("dq", grads.get(&q).unwrap(), [(0, 1.966_771_6e-1), (13, 8.035_014_6e-2), (57, -3.656_803_2e-3), (119, 7.598_251_8e-2)]),
            ("dk", grads.get(&k).unwrap(), [(0, 4.898_493_7e-2), (17, -7.055_953_9e-2), (71, 1.102_855_2e-1), (143, 2.098_121_5e-1)]),
            ("dv", grads.get(&v).unwrap(), [(0, 3.410_186_8e-1), (19, -2.663_774_5e-1), (61, 3.115_957_7e-1), (107, -3.880_181_3e-1)]),
        ];
        for (name, t, picks) in cases {
            let values = t.to_vec().unwrap();
            for (i, want) in picks {
                assert!((values[i] - want).abs() < 2e-5 * (1.0 + want.abs()), "{name}[{i}]: {} vs PyTorch {want}", values[i]);
            }
        }
    }

    /// `MultiheadAttention(8, 2, batch_first=True)` against PyTorch 2.15 with the same
    /// parameters (from formulas): key padding, and a causal mask.
    fn multihead_attention_matches_pytorch(device: &Device) {
        let mut attention = MultiheadAttention::new(&mut Initializer::new(device, 0), 8, 2).batch_first();
        attention.visit_parameters_mut("", &mut |name, param| {
            *param = match name {
                "in_proj_weight" => cosine_weight(device, &[24, 8]),
                "in_proj_bias" => sine_input(device, &[24]).mul_scalar(0.1),
                "out_proj.weight" => cosine_weight(device, &[8, 8]).mul_scalar(0.8),
                _ => sine_input(device, &[8]).mul_scalar(0.05),
            }
        });
        let x = sine_input(device, &[2, 3, 8]);
        let padding = Tensor::from_vec([2, 3], vec![0.0, 0.0, 0.0, 0.0, 0.0, 1.0], device);
        let padded = AttentionMasks { key_padding: Some(&padding), ..Default::default() };
        let causal = AttentionMasks { causal: true, ..Default::default() };
        let cases = [
            ("padded", padded, [(0, -3.562_673_6e-1), (9, 8.813_113_6e-1), (22, 4.819_657_2e-1), (30, 7.866_184_4e-2), (47, 6.397_001_7e-1)]),
            ("causal", causal, [(0, -3.582_506_2e-1), (9, 8.811_164_5e-1), (22, 4.819_657_2e-1), (30, 5.863_265_7e-2), (47, 6.306_859_3e-1)]),
            ("unmasked", AttentionMasks::default(), [(0, -3.562_673_6e-1), (9, 8.813_113_6e-1), (22, 4.819_657_2e-1), (30, 1.190_420_8e-1), (47, 6.306_859_3e-1)]),
        ];
        // Self-attention takes one fused projection (unmasked: attended in place by
        // packed_self_attention); the same values as a separate key and value tensor
        // take three projections.
        let memory = x.mul_scalar(1.0);
        for (name, masks, picks) in cases {
            for (path, key) in [("self", &x), ("separate", &memory)] {
                let y = attention.attend(&x, key, key, masks).to_vec().unwrap();
                for (i, want) in picks {
                    assert!((y[i] - want).abs() < 1e-5, "{name} {path} attention[{i}]: {} vs PyTorch {want}", y[i]);
                }
            }
        }
    }

    /// Batched products over broadcast batch dimensions, worked by hand.
    fn batched_matmul_by_hand(device: &Device) {
        let a = Tensor::from_vec([2, 1, 2], vec![1.0, 2.0, 3.0, 4.0], device);
        let b = Tensor::from_vec([2, 1], vec![10.0, 100.0], device);
        assert_eq!(a.matmul(&b).to_vec().unwrap(), [210.0, 430.0], "[2, 1, 2] · [2, 1]");
        let c = Tensor::from_vec([3, 1, 1, 1], vec![1.0, 2.0, 3.0], device);
        let y = c.matmul(&Tensor::from_vec([2, 1, 1], vec![5.0, 7.0], device));
        assert_eq!(y.dims(), [3, 2, 1, 1]);
        assert_eq!(y.to_vec().unwrap(), [5.0, 7.0, 10.0, 14.0, 15.0, 21.0]);
    }

    /// `index_select`, `gather`, `scatter_add` and `nll_loss`, and their gradients (of
    /// the result weighted elementwise), against PyTorch 2.15.
    fn indexing_matches_pytorch(device: &Device) {
        let close = |name: &str, values: &[f32], picks: &[(usize, f32)]| {
            for &(i, want) in picks {
                assert!((values[i] - want).abs() < 1e-6, "{name}[{i}]: {} vs PyTorch {want}", values[i]);
            }
        };
        let weighted_sum = |y: &Tensor| y.mul(&cosine_weight(device, y.dims())).sum();
        let x = sine_input(device, &[3, 4, 2]).with_requires_grad();
        let ids = Tensor::from_i32([5], vec![3, 0, 3, 1, 2], device);
        let y = x.index_select(1, &ids);
        assert_eq!(y.dims(), [3, 5, 2]);
        close("index_select", &y.to_vec().unwrap(), &[(0, 7.322_314_4e-1), (7, 9.356_160_2e-1), (13, -2.844_257_1e-1), (29, 9.998_717_3e-1)]);
        let grad = weighted_sum(&y).backward().get(&x).unwrap().to_vec().unwrap();
        close("index_select grad", &grad, &[(0, 4.879_487_2e-1), (3, 3.589_553_2e-1), (6, 9.523_758_3e-1), (7, 9.232_403e-1), (21, -4.994_142_9e-1)]);

        let index = Tensor::from_i32([3, 2, 2], vec![1, 0, 3, 3, 2, 2, 0, 1, 3, 1, 1, 0], device);
        let y = x.gather(1, &index);
        close("gather", &y.to_vec().unwrap(), &[(0, 7.446_430_9e-1), (3, 4.363_990_7e-1), (6, 8.150_215_4e-2), (11, 1.066_116_9e-1)]);
        let grad = weighted_sum(&y).backward().get(&x).unwrap().to_vec().unwrap();
        close("gather grad", &grad, &[(0, 0.0), (2, 0.5), (7, 4.730_211_8e-1), (14, 0.0), (19, 2.743_449_2e-1)]);

        let src = sine_input(device, &[3, 2, 2]).mul_scalar(2.0).add_scalar(1.0).with_requires_grad();
        let y = cosine_weight(device, &[3, 4, 2]).scatter_add(1, &index, &src);
        close("scatter_add", &y.to_vec().unwrap(), &[(0, 0.5), (3, 4.730_211_8e-1), (6, 2.884_282_4), (14, 1.539_573e-2), (23, -4.093_672_9e-1)]);
        let grad = y.mul(&sine_input(device, &[3, 4, 2])).sum().backward().get(&src).unwrap().to_vec().unwrap();
        close("scatter_add grad", &grad, &[(0, 7.446_430_9e-1), (3, 4.363_990_7e-1), (6, 8.150_215_4e-2), (11, 1.066_116_9e-1)]);

        let log_probs = sine_input(device, &[4, 5]).mul_scalar(3.0).log_softmax(1).with_requires_grad();
        let loss = log_probs.nll_loss(&Tensor::from_i32([4], vec![1, 4, 0, 2], device));
        assert!((loss.item().unwrap() - 2.559_712_9).abs() < 1e-5);
        let grad = loss.backward().get(&log_probs).unwrap().to_vec().unwrap();
        close("nll_loss grad", &grad, &[(1, -0.25), (9, -0.25), (10, -0.25), (17, -0.25), (0, 0.0)]);
    }

    /// An index outside the axis picks NaN and scatters nothing (rather than reading
    /// another tensor's memory), on every device.
    fn out_of_range_indices_pick_nan_and_scatter_nothing(device: &Device) {
        let x = Tensor::from_vec([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], device);
        let ids = Tensor::from_i32([3], vec![2, 3, -1], device);
        let y = x.index_select(1, &ids).to_vec().unwrap();
        assert_eq!(y[0], 3.0);
        assert!(y[1].is_nan() && y[2].is_nan(), "{y:?}");
        let index = Tensor::from_i32([2, 1], vec![7, 0], device);
        let ones = Tensor::ones([2, 1], device);
        assert_eq!(Tensor::zeros([2, 3], device).scatter_add(1, &index, &ones).to_vec().unwrap(), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    /// RMSprop's three steps and gradient clipping to a global norm, against PyTorch
    /// 2.15's `RMSprop` and `clip_grad_norm_` on the same problem.
    fn rmsprop_and_clipping_match_pytorch(device: &Device) {
        let (model, _) = quadratic_problem(device);
        let mut rmsprop = RmsProp::new(0.01).with_weight_decay(0.1, DecayScope::All);
        for _ in 0..3 {
            let w = model.weight();
            let loss = w.mul(&cosine_weight(device, &[5]).reshape([1, 5])).sum().add(&w.mul(w).sum());
            rmsprop.step(&model, &loss.backward());
        }
        let want = [-9.817_315_6e-2, 2.373_738e-1, 5.248_529_3e-1, 7.142_759_6e-1, 7.782_542_1e-1];
        for (got, want) in model.weight().to_vec().unwrap().iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "RMSprop: {got} vs PyTorch {want}");
        }

        let (model, mut grads) = quadratic_problem(device);
        let norm = clip_grad_norm(&model, &mut grads, 0.5).unwrap().item().unwrap();
        assert!((norm - 4.227_996_8).abs() < 1e-5, "norm {norm}");
        let clipped = grads.get(model.weight()).unwrap().to_vec().unwrap();
        let want = [8.274_210_2e-2, 1.658_882_9e-1, 2.338_263_8e-1, 2.772_297_3e-1, 2.900_061_9e-1];
        for (got, want) in clipped.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "clipped gradient: {got} vs PyTorch {want}");
        }
    }

    /// Weight decay limited to matrices leaves one-dimensional parameters (biases,
    /// normalization scales) alone, for every optimizer that decays.
    fn decay_scope_leaves_biases_alone(device: &Device) {
        let optimizers: Vec<(&str, Box<dyn Optimizer>)> = vec![
            ("sgd", Box::new(Sgd::new(0.1).with_weight_decay(0.5).with_decay_scope(DecayScope::MatricesOnly))),
            ("adamw", Box::new(Adam::adamw(0.1, 0.5).with_decay_scope(DecayScope::MatricesOnly))),
            ("rmsprop", Box::new(RmsProp::new(0.1).with_weight_decay(0.5, DecayScope::MatricesOnly))),
        ];
        for (name, mut optimizer) in optimizers {
            let mut model = Dense::new(&mut Initializer::new(device, 1), 3, 2);
            model.visit_parameters_mut("", &mut |n, p| {
                if n == "bias" {
                    *p = Tensor::ones([2], device).with_requires_grad();
                }
            });
            let weight_before = model.weight().to_vec().unwrap();
            // Zero gradients: only weight decay can move a parameter.
            let zero = model.weight().sum().add(&model.bias().unwrap().sum()).mul_scalar(0.0);
            optimizer.step(&model, &zero.backward());
            assert_eq!(model.bias().unwrap().to_vec().unwrap(), [1.0, 1.0], "{name}: the bias is not decayed");
            assert_ne!(model.weight().to_vec().unwrap(), weight_before, "{name}: the weight is decayed");
        }
    }

    /// Comparisons, `maximum`/`minimum` (NaN propagates, as PyTorch's), `add_relu`,
    /// `where_mask` and `masked_fill` with an infinite fill, by hand.
    fn comparisons_and_selection_by_hand(device: &Device) {
        let a = Tensor::from_vec([5], vec![1.0, -2.0, 3.0, f32::NAN, 0.5], device);
        let b = Tensor::from_vec([5], vec![1.0, 2.0, -3.0, 0.0, 0.25], device);
        assert_eq!(a.gt(&b).to_vec().unwrap(), [0.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(a.ge(&b).to_vec().unwrap(), [1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(a.lt(&b).to_vec().unwrap(), [0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(a.eq_elementwise(&b).to_vec().unwrap(), [1.0, 0.0, 0.0, 0.0, 0.0]);
        let max = a.maximum(&b).to_vec().unwrap();
        assert_eq!([max[0], max[1], max[2], max[4]], [1.0, 2.0, 3.0, 0.5]);
        assert!(max[3].is_nan(), "NaN propagates: {max:?}");
        let min = a.minimum(&b).to_vec().unwrap();
        assert_eq!([min[0], min[1], min[2], min[4]], [1.0, -2.0, -3.0, 0.25]);
        assert!(min[3].is_nan());
        let sum = Tensor::from_vec([2, 2], vec![1.0, -2.0, 3.0, 0.5], device);
        let residual = Tensor::from_vec([2], vec![1.0, -3.5], device);
        assert_eq!(sum.add_relu(&residual).to_vec().unwrap(), [2.0, 0.0, 4.0, 0.0], "relu(a + b), broadcast");
        let scores = Tensor::from_vec([2, 3], vec![0.5, 1.0, 2.0, 3.0, f32::INFINITY, -1.0], device);
        let hide = Tensor::from_vec([3], vec![0.0, 1.0, 0.0], device);
        let filled = scores.masked_fill(&hide, f32::NEG_INFINITY).to_vec().unwrap();
        assert_eq!(filled, [0.5, f32::NEG_INFINITY, 2.0, 3.0, f32::NEG_INFINITY, -1.0]);
        let chosen = Tensor::where_mask(&hide, &Tensor::full([], 7.0, device), &scores).to_vec().unwrap();
        assert_eq!(chosen, [0.5, 7.0, 2.0, 3.0, 7.0, -1.0], "the hidden infinity does not leak");
    }

    /// Grouped, depthwise and dilated convolutions against PyTorch 2.15's `conv2d`.
    fn grouped_and_dilated_conv2d_match_pytorch(device: &Device) {
        let x = sine_input(device, &[2, 4, 9, 8]);
        type Case = (&'static str, [usize; 4], ConvOptions, [usize; 4], f32, [(usize, f32); 5]);
        let options = |stride: usize, padding: usize, dilation: usize, groups: usize| ConvOptions {
            stride: Size2d(stride, stride),
            padding: Size2d(padding, padding),
            dilation,
            groups,
        };
        let cases: [Case; 3] = [
            ("groups 2", [6, 2, 3, 3], options(1, 1, 1, 2), [2, 6, 9, 8], 4.288_346_9e1,
             [(0, 2.978_345_8e-1), (7, -4.325_394_6e-1), (33, -1.783_398_4e-1), (79, 3.347_198_7e-1), (101, -1.225_341_4)]),
            ("depthwise stride 2", [4, 1, 3, 3], options(2, 1, 1, 4), [2, 4, 5, 4], -4.305_619e1,
             [(0, -2.314_488_6e-2), (7, -1.204_376_9), (33, -3.038_746_4e-1), (79, 2.500_104_6e-1), (101, 3.329_982_2e-1)]),
            ("dilation 2", [3, 4, 3, 3], options(1, 2, 2, 1), [2, 3, 9, 8], -3.810_183_3e1,
             [(0, 1.904_548_4), (7, 1.769_197_9), (33, 2.654_568_2), (79, -2.344_155_8), (101, 4.126_641_8)]),
        ];
        for (name, w_shape, options, out_shape, sum, picks) in cases {
            let bias = Tensor::from_vec([w_shape[0]], (0..w_shape[0]).map(|o| 0.1 * o as f32 - 0.2).collect(), device);
            let y = x.conv2d_with(&cosine_weight(device, &w_shape), Some(&bias), options);
            assert_reference(name, &y, &out_shape, sum, &picks);
        }
    }

    fn clamp_by_hand(device: &Device) {
        let x = Tensor::from_vec([5], vec![-2.0, -0.5, 0.0, 0.7, 3.0], device).with_requires_grad();
        let y = x.clamp(-0.5, 0.5);
        assert_eq!(y.to_vec().unwrap(), [-0.5, -0.5, 0.0, 0.5, 0.5]);
        // The gradient passes where min ≤ x ≤ max, bounds included (TensorFlow's rule).
        let grad = y.sum().backward().get(&x).unwrap().to_vec().unwrap();
        assert_eq!(grad, [0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    /// Label smoothing 0.1 against PyTorch 2.15's
    /// `F.cross_entropy(z, y, label_smoothing=0.1)` and its gradient, for the logits below
    /// (the same numbers as `probability_cross_entropy_matches_keras`).
    fn label_smoothing_matches_pytorch(device: &Device) {
        let logits = keras_case_logits(device).with_requires_grad();
        let labels = Tensor::from_i32([3], vec![2, 0, 1], device);
        let loss = logits.cross_entropy_smoothed(&labels, 0.1);
        // By hand for row 3 alone (z = [20, −20, 0, 1], label 1): log Σe^z ≈ 20, so
        // 0.9·(20 − (−20)) + 0.1·mean_k(20 − z_k) = 36 + 0.1·79/4 = 37.975; the three
        // rows' mean is PyTorch's 13.452906.
        assert!((loss.item().unwrap() - 13.452_905_65).abs() < 2e-5, "{}", loss.item().unwrap());
        let grad = loss.backward().get(&logits).unwrap().to_vec().unwrap();
        let torch = [
            0.033_762_28, 0.001_059_47, -0.077_904_11, 0.043_082_37, -0.256_676_44, 0.106_631_12, 0.146_852_45,
            0.003_192_87, 0.324_999_96, -0.308_333_3, -0.008_333_33, -0.008_333_33,
        ];
        assert_close("label smoothing gradient", &grad, &torch, 1e-6);
    }

    /// Keras 3.15 (TensorFlow 2.21 backend) `sparse_categorical_crossentropy` of sigmoid
    /// outputs, as the notebook's model computes it; loss and gradient by
    /// `tf.GradientTape` of `reduce_mean(scce(y, sigmoid(z)))`. Row 3 saturates: both
    /// sigmoid outputs land outside the clip range, so their gradients are exactly 0.
    fn probability_cross_entropy_matches_keras(device: &Device) {
        let probabilities = Tensor::from_vec([1, 3], vec![0.5, 0.5, 0.2], device);
        let labels = Tensor::from_i32([1], vec![0], device);
        let loss = probabilities.probability_cross_entropy(&labels).item().unwrap();
        assert!((loss - 0.875_468_8).abs() < 1e-6, "−ln(0.5 / 1.2) vs {loss}");

        let logits = keras_case_logits(device).with_requires_grad();
        let labels = Tensor::from_i32([3], vec![2, 0, 1], device);
        let loss = logits.sigmoid().probability_cross_entropy(&labels);
        assert!((loss.item().unwrap() - 6.476_399_9).abs() < 2e-5, "{}", loss.item().unwrap());
        let grad = loss.backward().get(&logits).unwrap().to_vec().unwrap();
        let keras = [
            0.035_287_99, 0.025_679_38, -0.024_578_3, 0.033_923_2, -0.175_209_39, 0.053_448_92, 0.051_495_24,
            0.019_246_96, 0.0, 0.0, 0.037_351_47, 0.029_374_98,
        ];
        assert_close("Keras loss gradient", &grad, &keras, 1e-6);
    }
}

/// The logits of the Keras and label-smoothing reference cases: `[3, 4]`, the last row
/// saturated.
fn keras_case_logits(device: &Device) -> Tensor {
    let values = vec![0.3, -1.2, 2.0, 0.5, -0.7, 0.1, 0.4, -2.2, 20.0, -20.0, 0.0, 1.0];
    Tensor::from_vec([3, 4], values, device)
}

/// `(index, y[index], dy/dx[index])` of one op on one input.
type ReferencePoint = (usize, f32, f32);

/// PyTorch 2.15's values of every unary op, printed by
/// `scripts/torch_reference_values.py`: `(index, y[index], dy/dx[index])`.
const ACTIVATIONS: &[(&str, [ReferencePoint; 6])] = &[
    (
        "neg",
        [
            (0, -2.99500227e-01, -1.00000000e+00),
            (3, -2.80684805e+00, -1.00000000e+00),
            (7, -1.30919719e+00, -1.00000000e+00),
            (12, 2.95553327e+00, -1.00000000e+00),
            (18, -1.37685442e+00, -1.00000000e+00),
            (23, -2.18271971e+00, -1.00000000e+00),
        ],
    ),
    (
        "relu",
        [
            (0, 2.99500227e-01, 1.00000000e+00),
            (3, 2.80684805e+00, 1.00000000e+00),
            (7, 1.30919719e+00, 1.00000000e+00),
            (12, 0.00000000e+00, 0.00000000e+00),
            (18, 1.37685442e+00, 1.00000000e+00),
            (23, 2.18271971e+00, 1.00000000e+00),
        ],
    ),
    (
        "sigmoid",
        [
            (0, 5.74320376e-01, 2.44476482e-01),
            (3, 9.43044782e-01, 5.37113212e-02),
            (7, 7.87378848e-01, 1.67413399e-01),
            (12, 4.94756438e-02, 4.70278040e-02),
            (18, 7.98485339e-01, 1.60906509e-01),
            (23, 8.98686945e-01, 9.10487175e-02),
        ],
    ),
    (
        "tanh",
        [
            (0, 2.90855199e-01, 9.15403247e-01),
            (3, 9.92731392e-01, 1.44843822e-02),
            (7, 8.64072144e-01, 2.53379315e-01),
            (12, -9.94596064e-01, 1.07786693e-02),
            (18, 8.80244911e-01, 2.25168899e-01),
            (23, 9.74900842e-01, 4.95683476e-02),
        ],
    ),
    (
        "exp",
        [
            (0, 1.34918439e+00, 1.34918439e+00),
            (3, 1.65576477e+01, 1.65576477e+01),
            (7, 3.70319963e+00, 3.70319963e+00),
            (12, 5.20508960e-02, 5.20508960e-02),
            (18, 3.96241784e+00, 3.96241784e+00),
            (23, 8.87039852e+00, 8.87039852e+00),
        ],
    ),
    (
        "log",
        [
            (0, -2.23768473e-01, 1.25078142e+00),
            (3, 1.19599545e+00, 3.02402765e-01),
            (7, 5.92883229e-01, 5.52731335e-01),
            (12, 1.23997676e+00, 2.89390922e-01),
            (18, 6.29597187e-01, 5.32806396e-01),
            (23, 9.86831069e-01, 3.72756064e-01),
        ],
    ),
    (
        "sqrt",
        [
            (0, 8.94147754e-01, 5.59191704e-01),
            (3, 1.81847417e+00, 2.74955779e-01),
            (7, 1.34506404e+00, 3.71729523e-01),
            (12, 1.85890639e+00, 2.68975347e-01),
            (18, 1.36998332e+00, 3.64967942e-01),
            (23, 1.63790107e+00, 3.05268735e-01),
        ],
    ),
    (
        "powf",
        [
            (0, 5.71539819e-01, 1.78717840e+00),
            (3, 1.98854580e+01, 1.50335445e+01),
            (7, 4.40265608e+00, 6.08371496e+00),
            (12, 2.21966629e+01, 1.60587826e+01),
            (18, 4.82587957e+00, 6.42814827e+00),
            (23, 1.17879486e+01, 1.09850731e+01),
        ],
    ),
    (
        "mul_scalar",
        [
            (0, 8.98500681e-01, 3.00000000e+00),
            (3, 8.42054367e+00, 3.00000000e+00),
            (7, 3.92759156e+00, 3.00000000e+00),
            (12, -8.86660004e+00, 3.00000000e+00),
            (18, 4.13056326e+00, 3.00000000e+00),
            (23, 6.54815912e+00, 3.00000000e+00),
        ],
    ),
    (
        "add_scalar",
        [
            (0, 2.29950023e+00, 1.00000000e+00),
            (3, 4.80684805e+00, 1.00000000e+00),
            (7, 3.30919719e+00, 1.00000000e+00),
            (12, -9.55533266e-01, 1.00000000e+00),
            (18, 3.37685442e+00, 1.00000000e+00),
            (23, 4.18271971e+00, 1.00000000e+00),
        ],
    ),
    (
        "clamp",
        [
            (0, 2.99500227e-01, 1.00000000e+00),
            (3, 9.49999988e-01, 0.00000000e+00),
            (7, 9.49999988e-01, 0.00000000e+00),
            (12, -4.49999988e-01, 0.00000000e+00),
            (18, 9.49999988e-01, 0.00000000e+00),
            (23, 9.49999988e-01, 0.00000000e+00),
        ],
    ),
    (
        "abs",
        [
            (0, 2.99500227e-01, 1.00000000e+00),
            (3, 2.80684805e+00, 1.00000000e+00),
            (7, 1.30919719e+00, 1.00000000e+00),
            (12, 2.95553327e+00, -1.00000000e+00),
            (18, 1.37685442e+00, 1.00000000e+00),
            (23, 2.18271971e+00, 1.00000000e+00),
        ],
    ),
    (
        "gelu",
        [
            (0, 1.85007513e-01, 7.31963634e-01),
            (3, 2.79982686e+00, 1.01929355e+00),
            (7, 1.18451738e+00, 1.12644553e+00),
            (12, -4.61248914e-03, -1.33922100e-02),
            (18, 1.26081502e+00, 1.12860680e+00),
            (23, 2.15100861e+00, 1.06589127e+00),
        ],
    ),
    (
        "gelu_tanh",
        [
            (0, 1.85005039e-01, 7.31931508e-01),
            (3, 2.80029130e+00, 1.01913476e+00),
            (7, 1.18428612e+00, 1.12635851e+00),
            (12, -4.18494036e-03, -1.30670751e-02),
            (18, 1.26058149e+00, 1.12862742e+00),
            (23, 2.15126133e+00, 1.06668532e+00),
        ],
    ),
    (
        "silu",
        [
            (0, 1.72009081e-01, 6.47541106e-01),
            (3, 2.64698339e+00, 1.09380436e+00),
            (7, 1.03083420e+00, 1.00655603e+00),
            (12, -1.46226913e-01, -8.95165950e-02),
            (18, 1.09939802e+00, 1.02003026e+00),
            (23, 1.96158171e+00, 1.09742081e+00),
        ],
    ),
    (
        "leaky_relu",
        [
            (0, 2.99500227e-01, 1.00000000e+00),
            (3, 2.80684805e+00, 1.00000000e+00),
            (7, 1.30919719e+00, 1.00000000e+00),
            (12, -2.95553327e-01, 1.00000001e-01),
            (18, 1.37685442e+00, 1.00000000e+00),
            (23, 2.18271971e+00, 1.00000000e+00),
        ],
    ),
    (
        "softplus",
        [
            (0, 8.54068220e-01, 5.74320316e-01),
            (3, 2.86548972e+00, 9.43044782e-01),
            (7, 1.54824305e+00, 7.87378848e-01),
            (12, 5.07414937e-02, 4.94756401e-02),
            (18, 1.60189307e+00, 7.98485339e-01),
            (23, 2.28954029e+00, 8.98686945e-01),
        ],
    ),
    (
        "elu",
        [
            (0, 2.99500227e-01, 1.00000000e+00),
            (3, 2.80684805e+00, 1.00000000e+00),
            (7, 1.30919719e+00, 1.00000000e+00),
            (12, -1.42192364e+00, 7.80763477e-02),
            (18, 1.37685442e+00, 1.00000000e+00),
            (23, 2.18271971e+00, 1.00000000e+00),
        ],
    ),
];

/// A one-row dense layer whose weight is `sin(0.37·i + 0.1)`, `i < 5`, and the
/// gradient of `Σ p·w + Σ p²` for its weight (the bias gets none).
fn quadratic_problem(device: &Device) -> (Dense, Gradients) {
    let mut model = Dense::new(&mut Initializer::new(device, 0), 5, 1);
    model.visit_parameters_mut("", &mut |name, p| {
        if name == "weight" {
            *p = sine_input(device, &[5]).reshape([1, 5]).with_requires_grad();
        }
    });
    let w = model.weight();
    let loss = w.mul(&cosine_weight(device, &[5]).reshape([1, 5])).sum().add(&w.mul(w).sum());
    let grads = loss.backward();
    (model, grads)
}
