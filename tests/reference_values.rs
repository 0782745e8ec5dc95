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
use kiln::prelude::*;

/// `x[i] = sin(0.37·i + 0.1)` of `shape`, computed in f64 as Python does.
fn sine_input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|i| (0.37 * i as f64 + 0.1).sin() as f32).collect(),
        &device(),
    )
}

/// `w[i] = 0.5·cos(0.11·i)` of `shape`.
fn cosine_weight(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape.to_vec(),
        (0..n).map(|i| (0.5 * (0.11 * i as f64).cos()) as f32).collect(),
        &device(),
    )
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
    fn matmul_by_hand_with_transposes() {
        let a = Tensor::from_vec([2, 2], vec![1.0, 2.0, 3.0, 4.0], &device());
        let b = Tensor::from_vec([2, 2], vec![5.0, 6.0, 7.0, 8.0], &device());
        assert_eq!(a.matmul(&b).to_vec().unwrap(), vec![19.0, 22.0, 43.0, 50.0]);
        assert_eq!(a.matmul_with(&b, true, false).to_vec().unwrap(), vec![26.0, 30.0, 38.0, 44.0]);
        assert_eq!(a.matmul_with(&b, false, true).to_vec().unwrap(), vec![17.0, 23.0, 39.0, 53.0]);
        let tall = Tensor::from_vec([3, 1], vec![1.0, 2.0, 3.0], &device());
        let wide = Tensor::from_vec([1, 2], vec![10.0, 20.0], &device());
        assert_eq!(tall.matmul(&wide).to_vec().unwrap(), vec![10.0, 20.0, 20.0, 40.0, 30.0, 60.0]);
    }

    fn broadcasting_by_hand() {
        let m = Tensor::from_vec([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &device());
        let row = Tensor::from_vec([3], vec![10.0, 20.0, 30.0], &device());
        let col = Tensor::from_vec([2, 1], vec![100.0, 200.0], &device());
        assert_eq!(m.add(&row).to_vec().unwrap(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
        assert_eq!(m.mul(&col).to_vec().unwrap(), vec![100.0, 200.0, 300.0, 800.0, 1000.0, 1200.0]);
        assert_eq!(m.sum_axis(0, false).to_vec().unwrap(), vec![5.0, 7.0, 9.0]);
        assert_eq!(m.sum_axis(1, true).dims(), &[2, 1]);
        assert_eq!(m.max_axis(1, false).to_vec().unwrap(), vec![3.0, 6.0]);
        assert_eq!(m.argmax(0).to_vec_i32().unwrap(), vec![1, 1, 1]);
        assert_eq!(m.mean().item().unwrap(), 3.5);
    }

    fn softmax_and_cross_entropy_by_hand() {
        let x = Tensor::from_vec([1, 3], vec![1.0, 2.0, 3.0], &device());
        assert_close(
            "softmax",
            &x.softmax(1).to_vec().unwrap(),
            &[0.090_030_57, 0.244_728_47, 0.665_240_96],
            1e-6,
        );
        // Rows [0, 0] with label 0 and [ln 3, 0] with label 1: losses ln 2 and ln 4.
        let logits = Tensor::from_vec([2, 2], vec![0.0, 0.0, 3f32.ln(), 0.0], &device());
        let labels = Tensor::from_i32([2], vec![0, 1], &device());
        let loss = logits.cross_entropy(&labels).item().unwrap();
        assert!((loss - 1.5 * 2f32.ln()).abs() < 1e-6, "loss {loss}");
        // Large logits stay finite (the maximum is subtracted first).
        let huge = Tensor::from_vec([1, 2], vec![1000.0, 0.0], &device());
        let loss = huge.cross_entropy(&Tensor::from_i32([1], vec![1], &device())).item().unwrap();
        assert!((loss - 1000.0).abs() < 1e-3, "loss {loss}");
    }

    fn conv2d_and_pool_by_hand() {
        let x = Tensor::from_vec([1, 1, 3, 3], (1..=9).map(|v| v as f32).collect(), &device());
        let w = Tensor::from_vec([1, 1, 2, 2], vec![1.0, 0.0, 0.0, -1.0], &device());
        let b = Tensor::from_vec([1], vec![0.5], &device());
        // x[i,j] − x[i+1,j+1] + 0.5 = −3.5 everywhere.
        assert_eq!(x.conv2d(&w, Some(&b), 1, 0).to_vec().unwrap(), vec![-3.5; 4]);
        // Stride 2, padding 1: windows at (−1,−1), (−1,1), (1,−1), (1,1).
        assert_eq!(x.conv2d(&w, Some(&b), 2, 1).to_vec().unwrap(), vec![-0.5, -2.5, -6.5, -3.5]);
        let grid = Tensor::from_vec([1, 1, 4, 4], (0..16).map(|v| v as f32).collect(), &device());
        assert_eq!(grid.max_pool2d(2, 2, 0).to_vec().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
        let grid = grid.with_requires_grad();
        let grads = grid.max_pool2d(2, 2, 0).sum().backward();
        let routed = grads.get(&grid).unwrap().to_vec().unwrap();
        let winners: Vec<usize> = (0..16).filter(|&i| routed[i] == 1.0).collect();
        assert_eq!(winners, vec![5, 7, 13, 15]);
    }

    fn conv2d_matches_pytorch() {
        let b = Tensor::from_vec([4], (0..4).map(|o| 0.1 * o as f32 - 0.2).collect(), &device());
        let y = sine_input(&[2, 3, 7, 9]).conv2d(&cosine_weight(&[4, 3, 3, 3]), Some(&b), 2, 1);
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
        let y = sine_input(&[1, 1, 27, 31]).conv2d(&cosine_weight(&[2, 1, 11, 11]), None, 4, 0);
        assert_reference(
            "conv 11x11/4",
            &y,
            &[1, 2, 5, 6],
            -17.130_657,
            &[(0, 0.542_990_33), (13, 4.843_082_9), (29, -3.948_054_1), (41, 2.445_416_9), (59, -0.449_154_53)],
        );
        let y = sine_input(&[2, 3, 8, 9]).conv2d(&cosine_weight(&[5, 3, 5, 5]), None, 1, 2);
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

    fn max_pool2d_matches_pytorch() {
        let y = sine_input(&[1, 2, 9, 11]).max_pool2d(3, 2, 0);
        assert_reference(
            "max-pool 3/2",
            &y,
            &[1, 2, 4, 5],
            37.974_67,
            &[(0, 0.926_415_5), (5, 0.926_415_5), (17, 0.999_335_29), (23, 0.998_745_68), (39, 0.997_009_93)],
        );
    }

    fn cross_entropy_matches_pytorch() {
        let logits = sine_input(&[4, 5]).mul_scalar(3.0).detach().with_requires_grad();
        let labels = Tensor::from_i32([4], vec![1, 4, 0, 2], &device());
        let loss = logits.cross_entropy(&labels);
        assert!((loss.item().unwrap() - 2.559_712_9).abs() < 1e-5);
        let grad = loss.backward().get(&logits).unwrap().to_vec().unwrap();
        for (i, want) in
            [(0, 6.585_593_8e-3), (1, -0.231_007_52), (9, -0.246_523_08), (10, -0.155_187_76), (19, 0.153_329_7)]
        {
            assert!((grad[i] - want).abs() < 1e-6, "grad[{i}]: {} vs PyTorch {want}", grad[i]);
        }
    }

    fn clamp_by_hand() {
        let x = Tensor::from_vec([5], vec![-2.0, -0.5, 0.0, 0.7, 3.0], &device()).with_requires_grad();
        let y = x.clamp(-0.5, 0.5);
        assert_eq!(y.to_vec().unwrap(), [-0.5, -0.5, 0.0, 0.5, 0.5]);
        // The gradient passes where min ≤ x ≤ max, bounds included (TensorFlow's rule).
        let grad = y.sum().backward().get(&x).unwrap().to_vec().unwrap();
        assert_eq!(grad, [0.0, 1.0, 1.0, 0.0, 0.0]);
    }

    /// Label smoothing 0.1 against PyTorch 2.15's
    /// `F.cross_entropy(z, y, label_smoothing=0.1)` and its gradient, for the logits below
    /// (the same numbers as `probability_cross_entropy_matches_keras`).
    fn label_smoothing_matches_pytorch() {
        let logits = keras_case_logits().with_requires_grad();
        let labels = Tensor::from_i32([3], vec![2, 0, 1], &device());
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
    fn probability_cross_entropy_matches_keras() {
        let probabilities = Tensor::from_vec([1, 3], vec![0.5, 0.5, 0.2], &device());
        let labels = Tensor::from_i32([1], vec![0], &device());
        let loss = probabilities.probability_cross_entropy(&labels).item().unwrap();
        assert!((loss - 0.875_468_8).abs() < 1e-6, "−ln(0.5 / 1.2) vs {loss}");

        let logits = keras_case_logits().with_requires_grad();
        let labels = Tensor::from_i32([3], vec![2, 0, 1], &device());
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
fn keras_case_logits() -> Tensor {
    let values = vec![0.3, -1.2, 2.0, 0.5, -0.7, 0.1, 0.4, -2.2, 20.0, -20.0, 0.0, 1.0];
    Tensor::from_vec([3, 4], values, &device())
}
