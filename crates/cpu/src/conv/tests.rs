//! The convolution kernels against a direct float64 convolution, on geometries that
//! exercise each path: groups of several images (output pixels of one GEMM panel
//! spanning two images), rows wider than a panel, strides with padding, the flipped-
//! kernel input gradient (stride 1) and the col2im one (strided, or padding of a kernel
//! size or more), and weight gradients summed over several groups in one task.

use kiln_tensor::{Activation, Conv2dGeometry};

use crate::memory::HostMemory;
use crate::test_values::values;

use super::{backward_input, backward_weight, forward};

/// Calls `f(n, o, c, y, x, kh, kw, input_index)` for every in-bounds multiply-add.
fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut([usize; 5], usize, usize, usize)) {
    for n in 0..g.batch {
        for o in 0..g.out_channels {
            for c in 0..g.in_channels {
                for y in 0..g.out_h() {
                    for x in 0..g.out_w() {
                        for kh in 0..g.kernel_h {
                            for kw in 0..g.kernel_w {
                                let ih = (y * g.stride.0 + kh) as isize - g.padding.0 as isize;
                                let iw = (x * g.stride.1 + kw) as isize - g.padding.1 as isize;
                                if ih < 0 || iw < 0 || ih >= g.in_h as isize || iw >= g.in_w as isize {
                                    continue;
                                }
                                let input =
                                    ((n * g.in_channels + c) * g.in_h + ih as usize) * g.in_w + iw as usize;
                                let weight = ((o * g.in_channels + c) * g.kernel_h + kh) * g.kernel_w + kw;
                                let output = ((n * g.out_channels + o) * g.out_h() + y) * g.out_w() + x;
                                f([n, o, c, y, x], input, weight, output);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn assert_close(what: &str, got: &[f32], want: &[f64], g: &Conv2dGeometry) {
    assert_eq!(got.len(), want.len(), "{what} length for {g:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what} {i}: {a} vs {b} for {g:?}");
    }
}

fn check(g: Conv2dGeometry) {
    let x = values(g.batch * g.in_channels * g.in_h * g.in_w, 1);
    let w = values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 2);
    let bias = values(g.out_channels, 3);
    let out_len = g.batch * g.out_channels * g.out_h() * g.out_w();
    let dy = values(out_len, 4);
    let plane = g.out_h() * g.out_w();
    let mut out = vec![0.0; out_len];
    for (i, v) in out.iter_mut().enumerate() {
        *v = f64::from(bias[i / plane % g.out_channels]);
    }
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    for_each_tap(&g, |_, input, weight, output| {
        out[output] += f64::from(x[input]) * f64::from(w[weight]);
        dx[input] += f64::from(dy[output]) * f64::from(w[weight]);
        dw[weight] += f64::from(dy[output]) * f64::from(x[input]);
    });
    let db: Vec<f64> = (0..g.out_channels)
        .map(|o| (0..out_len).filter(|i| i / plane % g.out_channels == o).map(|i| f64::from(dy[i])).sum())
        .collect();
    assert_close(
        "forward",
        &forward(&HostMemory::default(), &x, &w, Some(&bias), &g, Activation::Identity),
        &out,
        &g,
    );
    assert_close("input gradient", &backward_input(&HostMemory::default(), &dy, &w, &g), &dx, &g);
    let (got_dw, got_db) = backward_weight(&HostMemory::default(), &x, &dy, &g, true);
    assert_close("weight gradient", &got_dw, &dw, &g);
    assert_close("bias gradient", &got_db.expect("asked for"), &db, &g);
}

fn geometry(
    input: [usize; 4],
    o: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Conv2dGeometry {
    let [batch, in_channels, in_h, in_w] = input;
    Conv2dGeometry {
        batch,
        in_channels,
        in_h,
        in_w,
        out_channels: o,
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride,
        padding,
    }
}

#[test]
fn groups_of_small_images_with_padding() {
    check(geometry([9, 3, 5, 4], 7, (3, 3), (1, 1), (1, 1)));
    check(geometry([5, 4, 6, 7], 5, (5, 5), (1, 1), (2, 2)));
}

#[test]
fn rows_wider_than_a_panel() {
    check(geometry([2, 2, 9, 41], 3, (3, 5), (1, 1), (0, 2)));
}

#[test]
fn strided_convolutions() {
    check(geometry([3, 1, 23, 27], 4, (11, 11), (4, 4), (0, 0)));
    check(geometry([2, 3, 9, 20], 4, (3, 3), (2, 3), (1, 2)));
    // Unpadded: read in place, every second pixel of rows wider than a panel.
    check(geometry([2, 3, 9, 41], 5, (3, 3), (2, 2), (0, 0)));
}

#[test]
fn kernels_smaller_than_their_stride() {
    // ResNet's 1×1/2 shortcut reads its input in place; padded, only the stride phases
    // the kernel reaches are copied.
    check(geometry([3, 5, 14, 14], 6, (1, 1), (2, 2), (0, 0)));
    check(geometry([2, 3, 11, 10], 4, (2, 1), (3, 2), (1, 1)));
}

#[test]
fn padding_of_a_kernel_size_or_more() {
    check(geometry([2, 2, 4, 5], 3, (2, 2), (1, 1), (2, 2)));
}

#[test]
fn several_groups_accumulate_in_one_task() {
    // Planes of 33×33 pixels make one-image groups, so each task sums several groups.
    check(geometry([9, 2, 33, 33], 2, (3, 3), (1, 1), (1, 1)));
}

#[test]
fn an_empty_batch_has_zero_weight_gradients() {
    check(geometry([0, 2, 5, 5], 3, (3, 3), (1, 1), (1, 1)));
}

/// The largest error of Winograd's forward pass, input gradient and weight gradient on
/// `g`, each entry's error divided by the sum of the magnitudes of its products
/// (`Σ|w·x|`, the scale any float32 convolution's rounding grows with).
fn winograd_relative_error(g: Conv2dGeometry) -> [f64; 3] {
    assert!(super::winograd::algorithm(&g).is_some(), "{g:?} must take the Winograd path");
    let x = values(g.batch * g.in_channels * g.in_h * g.in_w, 5);
    let w = values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 6);
    let out_len = g.batch * g.out_channels * g.out_h() * g.out_w();
    let dy = values(out_len, 7);
    let (mut out, mut out_scale) = (vec![0.0; out_len], vec![0.0; out_len]);
    let (mut dx, mut dx_scale) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dw, mut dw_scale) = (vec![0.0; w.len()], vec![0.0; w.len()]);
    for_each_tap(&g, |_, input, weight, output| {
        let (xv, wv, dyv) = (f64::from(x[input]), f64::from(w[weight]), f64::from(dy[output]));
        out[output] += xv * wv;
        out_scale[output] += (xv * wv).abs();
        dx[input] += dyv * wv;
        dx_scale[input] += (dyv * wv).abs();
        dw[weight] += dyv * xv;
        dw_scale[weight] += (dyv * xv).abs();
    });
    let worst = |got: &[f32], want: &[f64], scale: &[f64]| {
        got.iter()
            .zip(want)
            .zip(scale)
            .map(|((a, b), s)| (f64::from(*a) - b).abs() / s.max(1e-30))
            .fold(0.0, f64::max)
    };
    let memory = HostMemory::default();
    let (got_dw, _) = backward_weight(&memory, &x, &dy, &g, false);
    [
        worst(&forward(&memory, &x, &w, None, &g, Activation::Identity), &out, &out_scale),
        worst(&backward_input(&memory, &dy, &w, &g), &dx, &dx_scale),
        worst(&got_dw, &dw, &dw_scale),
    ]
}

/// Runs [`winograd_relative_error`] on every geometry, printing each, and asserts
/// that forward pass and both gradients stay within `bound`.
fn assert_winograd_within(bound: f64, geometries: &[Conv2dGeometry]) {
    for g in geometries {
        let errors = winograd_relative_error(*g);
        eprintln!("{g:?}: forward, input gradient, weight gradient {errors:?}");
        assert!(errors.iter().all(|e| *e <= bound), "{g:?}: {errors:?}");
    }
}

/// Winograd F(4×4, 3×3) against the float64 direct convolution, forward and both
/// gradients: odd plane sizes (a last tile partly outside), paddings 0 to 2, channel
/// counts that are not multiples of any tile, several groups of images, and AlexNet's
/// conv3–conv5 at 224×224 (12×12 planes) and 67×67 (3×3). Its output transform has
/// coefficients up to 8, so rounding grows more than in F(2×2, 3×3) (worst 5.3e-7 when
/// Kiln ran that): the bound is 1e-5 of `Σ|w·x|`; the worst measured value is 3.6e-6
/// (forward, 6×11 plane padded by 2), at most 2.3e-6 on AlexNet's shapes.
#[test]
fn winograd_3x3_stays_within_its_error_bound() {
    assert_winograd_within(
        1e-5,
        &[
            geometry([3, 17, 7, 9], 19, (3, 3), (1, 1), (1, 1)),
            geometry([2, 16, 5, 6], 16, (3, 3), (1, 1), (0, 0)),
            geometry([1, 20, 6, 11], 18, (3, 3), (1, 1), (2, 2)),
            geometry([1, 256, 12, 12], 384, (3, 3), (1, 1), (1, 1)),
            geometry([1, 384, 12, 12], 384, (3, 3), (1, 1), (1, 1)),
            geometry([1, 384, 12, 12], 256, (3, 3), (1, 1), (1, 1)),
            geometry([4, 256, 3, 3], 384, (3, 3), (1, 1), (1, 1)),
            geometry([23, 16, 7, 7], 17, (3, 3), (1, 1), (1, 1)),
        ],
    );
}

/// Winograd F(3×3, 5×5) against the float64 direct convolution, forward and both
/// gradients: odd plane sizes, paddings 0 to 4, odd channel counts, several groups of
/// images, and AlexNet's conv2 at 224×224 (26×26 planes), 99×99 (11×11) and 67×67
/// (7×7). Its interpolation points reach ±2 and 1/2, so the transforms scale values by
/// up to 12 and rounding grows as in F(4×4, 3×3): the bound is 1e-5 of `Σ|w·x|`; the
/// worst measured value is 3.9e-6 (weight gradient; forward at most 1.3e-6) where
/// F(2×2, 5×5) had reached 5.2e-6.
#[test]
fn winograd_5x5_stays_within_its_error_bound() {
    assert_winograd_within(
        1e-5,
        &[
            geometry([3, 17, 9, 11], 19, (5, 5), (1, 1), (2, 2)),
            geometry([2, 16, 8, 7], 16, (5, 5), (1, 1), (0, 0)),
            geometry([1, 20, 6, 9], 18, (5, 5), (1, 1), (4, 4)),
            geometry([1, 21, 7, 8], 23, (5, 5), (1, 1), (1, 3)),
            geometry([1, 96, 26, 26], 256, (5, 5), (1, 1), (2, 2)),
            geometry([2, 96, 11, 11], 256, (5, 5), (1, 1), (2, 2)),
            geometry([5, 96, 7, 7], 256, (5, 5), (1, 1), (2, 2)),
        ],
    );
}

/// A fused ReLU equals the convolution followed by ReLU, bit for bit, on the implicit
/// GEMM path and on the Winograd path.
#[test]
fn a_fused_relu_equals_relu_after_the_convolution() {
    for g in [
        geometry([3, 4, 9, 7], 5, (3, 3), (1, 1), (1, 1)),
        geometry([2, 16, 7, 6], 17, (3, 3), (1, 1), (1, 1)),
    ] {
        let memory = HostMemory::default();
        let x = values(g.batch * g.in_channels * g.in_h * g.in_w, 8);
        let w = values(g.out_channels * g.in_channels * 9, 9);
        let bias = values(g.out_channels, 10);
        let plain = forward(&memory, &x, &w, Some(&bias), &g, Activation::Identity);
        let fused = forward(&memory, &x, &w, Some(&bias), &g, Activation::Relu);
        let expected: Vec<u32> = plain.iter().map(|v| v.max(0.0).to_bits()).collect();
        assert_eq!(fused.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected, "{g:?}");
        assert!(plain.iter().any(|v| *v < 0.0), "the case has negative outputs to clip");
    }
}
