//! Finite-difference gradient checks for every differentiable op, on odd shapes with
//! batch > 1 and every stride/padding AlexNet uses.

#[macro_use]
mod common;

use common::*;
use kiln::prelude::*;
use kiln::tensor::{DropoutMask, UnaryOp, Variance};

/// One convolution configuration: input `[n, c, h, w]`, `o` filters of `k×k`.
fn conv_case(
    device: &Device,
    name: &str,
    input: [usize; 4],
    o: usize,
    k: usize,
    stride: (usize, usize),
    padding: (usize, usize),
) {
    let x = randn(device, &input, 15);
    let w = randn(device, &[o, input[1], k, k], 16).mul_scalar(0.3);
    let b = randn(device, &[o], 17);
    check_gradients(name, [x.clone(), w.clone(), b], |t| t[0].conv2d(&t[1], Some(&t[2]), stride, padding));
    check_gradients(&format!("{name} without bias"), [x, w], |t| t[0].conv2d(&t[1], None, stride, padding));
}

test_on_every_device! {
    fn matmul_all_transposes(device: &Device) {
        let (m, k, n) = (5, 7, 3);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = randn(device, &if ta { [k, m] } else { [m, k] }, 1);
            let b = randn(device, &if tb { [n, k] } else { [k, n] }, 2);
            check_gradients(&format!("matmul {ta} {tb}"), [a, b], |x| x[0].matmul_with(&x[1], ta, tb));
        }
    }

    fn broadcasting_arithmetic(device: &Device) {
        let cases: [(&[usize], &[usize]); 4] =
            [(&[3, 5], &[5]), (&[3, 5, 7, 9], &[5, 1, 1]), (&[4, 1], &[1, 5]), (&[3, 5], &[])];
        for (sa, sb) in cases {
            let a = randn(device, sa, 3);
            let b = uniform(device, sb, 0.5, 2.0, 4);
            check_gradients("add", [a.clone(), b.clone()], |x| x[0].add(&x[1]));
            check_gradients("sub", [a.clone(), b.clone()], |x| x[0].sub(&x[1]));
            check_gradients("mul", [a.clone(), b.clone()], |x| x[0].mul(&x[1]));
            check_gradients("div", [a.clone(), b.clone()], |x| x[0].div(&x[1]));
            check_gradients("div reversed", [b.clone(), uniform(device, sa, 0.5, 2.0, 5)], |x| x[0].div(&x[1]));
        }
    }

    fn unary_functions(device: &Device) {
        // Every op of the table (`UnaryOp::examples()`), so a new op is checked by
        // being added; inputs on the op's domain, kinks avoided.
        let shape = [3, 5, 7];
        for (op, domain) in UnaryOp::examples() {
            let mut values = randn(device, &shape, 6).mul_scalar(2.0).to_vec().unwrap();
            domain.place(&mut values, 0.1);
            let input = Tensor::from_vec(shape.to_vec(), values, device);
            check_gradients(op.method_name(), [input], |x| x[0].unary(op));
        }
        let any = randn(device, &shape, 6);
        check_gradients("add_scalar and sub", [any.clone()], |x| (&x[0] + 2.0) - 0.5);
        check_gradients("div scalar", [any], |x| &x[0] / 4.0);
    }

    fn reductions(device: &Device) {
        let x = randn(device, &[3, 5, 7], 9);
        check_gradients("sum", [x.clone()], |x| x[0].sum());
        check_gradients("mean", [x.clone()], |x| x[0].mean());
        for axis in 0..3 {
            check_gradients("sum_axis keepdim", [x.clone()], |x| x[0].sum_axis(axis, true));
            check_gradients("mean_axis", [x.clone()], |x| x[0].mean_axis(axis, false));
            check_gradients("max_axis", [distinct(device, &[3, 5, 7], 10)], |x| x[0].max_axis(axis, false));
        }
    }

    fn softmax_family_and_loss(device: &Device) {
        let x = randn(device, &[3, 5, 7], 11);
        for axis in [1, 2] {
            check_gradients("softmax", [x.clone()], |x| x[0].softmax(axis));
            check_gradients("log_softmax", [x.clone()], |x| x[0].log_softmax(axis));
        }
        let logits = randn(device, &[5, 7], 12);
        let labels = Tensor::from_i32([5], vec![0, 6, 3, 3, 1], device);
        check_gradients("cross_entropy", [logits.clone(), labels.clone()], |x| x[0].cross_entropy(&x[1]));
        check_gradients("cross_entropy_smoothed", [logits.clone(), labels.clone()], |x| {
            x[0].cross_entropy_smoothed(&x[1], 0.1)
        });
        check_gradients("probability_cross_entropy of sigmoid", [logits, labels], |x| {
            x[0].sigmoid().probability_cross_entropy(&x[1])
        });
    }

    fn clamp_inside_and_outside_its_bounds(device: &Device) {
        // Values are multiples of 0.1 and the bounds sit halfway between two of them, so
        // no finite-difference step crosses a bound.
        check_gradients("clamp", [distinct(device, &[4, 6], 17)], |x| x[0].clamp(-0.45, 0.95));
    }

    fn shape_ops(device: &Device) {
        let x = randn(device, &[3, 5, 7], 13);
        check_gradients("reshape", [x.clone()], |x| x[0].reshape([7, 15]).mul(&randn(device, &[7, 15], 1)));
        check_gradients("flatten", [x.clone()], |x| x[0].flatten(1).mul(&randn(device, &[3, 35], 2)));
        check_gradients("broadcast_to", [randn(device, &[5, 1], 14)], |x| x[0].broadcast_to([3, 5, 7]));
    }

    fn conv2d_alexnet_11x11_stride4(device: &Device) {
        conv_case(device, "conv 11x11/4", [2, 1, 23, 27], 3, 11, (4, 4), (0, 0));
    }

    fn conv2d_alexnet_5x5_pad2(device: &Device) {
        conv_case(device, "conv 5x5 pad 2", [2, 3, 7, 9], 5, 5, (1, 1), (2, 2));
    }

    fn conv2d_alexnet_3x3_pad1(device: &Device) {
        conv_case(device, "conv 3x3 pad 1", [3, 5, 7, 9], 3, 3, (1, 1), (1, 1));
    }

    fn conv2d_asymmetric_stride2_pad1(device: &Device) {
        conv_case(device, "conv 3x3/2 pad 1 non-square", [2, 3, 9, 6], 4, 3, (2, 2), (1, 1));
        conv_case(device, "conv mixed stride and padding", [2, 2, 8, 7], 3, 3, (2, 1), (1, 0));
    }

    /// The fused convolution + ReLU. Biases of ±1 per channel keep every output well away
    /// from ReLU's kink (the convolution adds about ±0.3), so both the passing and the
    /// blocking side of the mask are checked and no ±eps step crosses it.
    fn conv2d_relu_fused(device: &Device) {
        for (stride, padding) in [(1, 1), (2, 0)] {
            let x = randn(device, &[2, 3, 7, 9], 20);
            let w = randn(device, &[4, 3, 3, 3], 21).mul_scalar(0.05);
            let b = Tensor::from_vec([4], vec![1.0, -1.0, 1.0, -1.0], device);
            check_gradients("conv+relu", [x, w, b], |t| t[0].conv2d_relu(&t[1], Some(&t[2]), stride, padding));
        }
    }

    /// The dense layer's fused op, plain, with ReLU and with ReLU and dropout (biases of
    /// ±1 keep the outputs off ReLU's kink, as for the convolution).
    fn linear_and_linear_relu(device: &Device) {
        let x = randn(device, &[5, 7], 22);
        let w = randn(device, &[6, 7], 23).mul_scalar(0.05);
        let b = Tensor::from_vec([6], vec![1.0, -1.0, 1.0, -1.0, 1.0, -1.0], device);
        check_gradients("linear", [x.clone(), w.clone(), b.clone()], |t| t[0].linear(&t[1], Some(&t[2])));
        check_gradients("linear without bias", [x.clone(), w.clone()], |t| t[0].linear(&t[1], None));
        check_gradients("linear+relu", [x.clone(), w.clone(), b.clone()], |t| t[0].linear_relu(&t[1], Some(&t[2])));
        let mask = DropoutMask::new(1234).starting_at(3);
        check_gradients("linear+relu+dropout", [x, w, b], |t| t[0].linear_relu_dropout(&t[1], Some(&t[2]), 0.4, mask));
    }

    fn max_pool2d_alexnet_and_padded(device: &Device) {
        check_gradients("max-pool 3/2", [distinct(device, &[3, 5, 7, 9], 18)], |x| x[0].max_pool2d(3, 2, 0));
        check_gradients("max-pool 3/2 pad 1", [distinct(device, &[2, 3, 8, 5], 19)], |x| x[0].max_pool2d(3, 2, 1));
        check_gradients("max-pool 2/2", [distinct(device, &[2, 3, 6, 6], 20)], |x| x[0].max_pool2d(2, 2, 0));
    }

    fn dropout_with_fixed_mask(device: &Device) {
        check_gradients("dropout", [randn(device, &[3, 5, 7], 21)], |x| x[0].dropout(0.4, 1234));
    }

    fn composite_chain(device: &Device) {
        // A small network end to end: the chain rule across several ops at once. (No
        // max-pool here: moving a weight moves every pooled value and can swap a window's
        // winner inside the step; max-pool has its own check on well-separated inputs.)
        let x = randn(device, &[2, 2, 9, 9], 22);
        let w1 = randn(device, &[3, 2, 3, 3], 23).mul_scalar(0.4);
        let w2 = randn(device, &[5, 75], 24).mul_scalar(0.2);
        let labels = Tensor::from_i32([2], vec![4, 1], device);
        check_gradients("conv-tanh-dense-loss", [x, w1, w2, labels], |t| {
            let h = t[0].conv2d(&t[1], None, 2, 1).tanh().flatten(1);
            h.matmul_with(&t[2], false, true).cross_entropy(&t[3])
        });
    }

    fn views_permute_narrow_cat_stack_split(device: &Device) {
        let x = randn(device, &[3, 5, 7], 21);
        check_gradients("permute", [x.clone()], |t| t[0].permute(&[2, 0, 1]));
        check_gradients("transpose", [x.clone()], |t| t[0].transpose(0, 2));
        check_gradients("narrow middle", [x.clone()], |t| t[0].narrow(1, 1, 3));
        check_gradients("narrow last", [x.clone()], |t| t[0].narrow(2, 4, 3));
        let (a, b) = (randn(device, &[3, 2, 7], 22), randn(device, &[3, 4, 7], 23));
        check_gradients("cat axis 1", [a.clone(), b.clone()], |t| Tensor::cat(&[&t[0], &t[1]], 1));
        check_gradients("cat axis 0", [x.clone(), randn(device, &[2, 5, 7], 24)], |t| Tensor::cat(&[&t[0], &t[1]], 0));
        let c = randn(device, &[3, 2, 7], 25);
        check_gradients("stack", [a.clone(), c], |t| Tensor::stack(&[&t[0], &t[1]], 1));
        // Each piece weighted differently, so every piece's gradient path is checked.
        check_gradients("split", [x.clone()], |t| {
            let pieces = t[0].split(2, 1);
            assert_eq!(pieces.iter().map(|p| p.dims()[1]).collect::<Vec<_>>(), [2, 2, 1]);
            Tensor::cat(&[&pieces[2], &pieces[0].mul_scalar(2.0), &pieces[1].exp()], 1)
        });
        check_gradients("chunk", [x], |t| {
            let pieces = t[0].chunk(3, 2);
            assert_eq!(pieces.iter().map(|p| p.dims()[2]).collect::<Vec<_>>(), [3, 3, 1]);
            pieces[0].mul(&pieces[1]).add(&pieces[2])
        });
    }

    fn reductions_over_several_axes(device: &Device) {
        let x = randn(device, &[3, 5, 4, 2], 26);
        check_gradients("sum_axes", [x.clone()], |t| t[0].sum_axes(&[0, 2], false));
        check_gradients("mean_axes keepdim", [x.clone()], |t| t[0].mean_axes(&[1, 3], true));
        check_gradients("var_axes population", [x.clone()], |t| t[0].var_axes(&[0, 2, 3], Variance::Population, false));
        check_gradients("var_axes sample", [x.clone()], |t| t[0].var_axes(&[3], Variance::Sample, true));
        check_gradients("min_axis", [distinct(device, &[3, 5, 4], 27)], |t| t[0].min_axis(1, false));
    }

    fn losses_and_average_pooling(device: &Device) {
        // The target stays at least 0.1 from the prediction: |d| has a kink at 0.
        let prediction = randn(device, &[4, 6], 28).mul_scalar(2.0);
        let target = prediction.sub(&away_from_zero(device, &[4, 6], 29));
        let probability = uniform(device, &[4, 6], 0.0, 1.0, 30);
        check_gradients("mse_loss", [prediction.clone(), target.clone()], |t| t[0].mse_loss(&t[1]));
        check_gradients("l1_loss", [prediction.clone(), target.clone()], |t| t[0].l1_loss(&t[1]));
        check_gradients("huber_loss", [prediction.clone(), target], |t| t[0].huber_loss(&t[1], 0.7));
        check_gradients("bce_with_logits", [prediction, probability], |t| t[0].bce_with_logits(&t[1]));
        let x = randn(device, &[2, 3, 7, 9], 31);
        check_gradients("avg_pool2d 3/2 pad 1", [x.clone()], |t| t[0].avg_pool2d(3, 2, 1));
        check_gradients("avg_pool2d 2/2", [x.clone()], |t| t[0].avg_pool2d(2, 2, 0));
        check_gradients("global_avg_pool2d", [x], |t| t[0].global_avg_pool2d());
    }

    fn normalization_layers(device: &Device) {
        use kiln::nn::{BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, Mode, Module};
        let x = randn(device, &[3, 4, 5, 3], 32).mul_scalar(1.5).add_scalar(0.3);
        let bn = BatchNorm2d::new(device, 4);
        check_gradients("batch norm 2d, training", [x.clone()], |t| bn.forward(&t[0], Mode::train(0)));
        check_gradients("batch norm 2d, evaluation", [x.clone()], |t| bn.forward(&t[0], Mode::Eval));
        let bn1 = BatchNorm1d::new(device, 5);
        check_gradients("batch norm 1d", [randn(device, &[6, 5], 33)], |t| bn1.forward(&t[0], Mode::train(0)));
        // The fused op itself, with a scale and shift that are not ones and zeros, on
        // [batch, channels], [batch, channels, length] and images, and given statistics.
        use kiln::tensor::BatchStatistics;
        let (weight, bias) = (uniform(device, &[4], 0.5, 2.0, 50), randn(device, &[4], 51));
        for shape in [&[6, 4][..], &[3, 4, 5], &[2, 4, 3, 5]] {
            let input = randn(device, shape, 52).mul_scalar(1.5).add_scalar(0.3);
            check_gradients(&format!("batch_norm {shape:?}"), [input.clone(), weight.clone(), bias.clone()], |t| {
                t[0].batch_norm(&t[1], &t[2], BatchStatistics::Batch, 1e-5).output
            });
            let (mean, var) = (randn(device, &[4], 53), uniform(device, &[4], 0.5, 2.0, 54));
            let given = BatchStatistics::Given { mean: &mean, var: &var };
            check_gradients(&format!("batch_norm {shape:?}, given statistics"), [input, weight.clone(), bias.clone()], |t| {
                t[0].batch_norm(&t[1], &t[2], given, 1e-5).output
            });
        }
        // The fused layer-norm op with each combination of scale and shift.
        let (scale, shift) = (uniform(device, &[5, 3], 0.5, 2.0, 55), randn(device, &[5, 3], 56));
        check_gradients("layer_norm, weight and bias", [x.clone(), scale.clone(), shift.clone()], |t| {
            t[0].layer_norm(&[5, 3], Some(&t[1]), Some(&t[2]), 1e-5)
        });
        check_gradients("layer_norm, weight", [x.clone(), scale], |t| t[0].layer_norm(&[5, 3], Some(&t[1]), None, 1e-5));
        check_gradients("layer_norm, bias", [x.clone(), shift], |t| t[0].layer_norm(&[3], None, Some(&t[1].narrow(0, 0, 1).reshape([3])), 1e-5));
        check_gradients("layer_norm, neither", [x.clone()], |t| t[0].layer_norm(&[4, 5, 3], None, None, 1e-5));
        let group = GroupNorm::new(device, 2, 4);
        check_gradients("group norm", [x.clone()], |t| group.forward(&t[0], Mode::Eval));
        let layer = LayerNorm::new(device, &[5, 3]);
        check_gradients("layer norm", [x], |t| layer.forward(&t[0], Mode::Eval));
    }

    fn batched_matmul_with_broadcast_batches(device: &Device) {
        check_gradients("[2, 3, 4, 5] · [2, 3, 5, 6]", [randn(device, &[2, 3, 4, 5], 34), randn(device, &[2, 3, 5, 6], 35)], |t| t[0].matmul(&t[1]));
        check_gradients("[3, 4, 5] · [5, 6], one right matrix", [randn(device, &[3, 4, 5], 36), randn(device, &[5, 6], 37)], |t| t[0].matmul(&t[1]));
        check_gradients("[2, 1, 4, 5] · [3, 6, 5]ᵀ, both broadcast", [randn(device, &[2, 1, 4, 5], 38), randn(device, &[3, 6, 5], 39)], |t| {
            t[0].matmul_with(&t[1], false, true)
        });
        check_gradients("[2, 5, 4]ᵀ · [2, 5, 3]", [randn(device, &[2, 5, 4], 40), randn(device, &[2, 5, 3], 41)], |t| t[0].matmul_with(&t[1], true, false));
    }

    fn scaled_dot_product_attention(device: &Device) {
        check_gradients("attention [2, 3, 4] over [2, 5, 4] of [2, 5, 3]", [randn(device, &[2, 3, 4], 60), randn(device, &[2, 5, 4], 61), randn(device, &[2, 5, 3], 62)], |t| {
            t[0].scaled_dot_product_attention(&t[1], &t[2], None)
        });
        check_gradients("attention scale 0.7, one query", [randn(device, &[1, 2, 1, 3], 63), randn(device, &[1, 2, 4, 3], 64), randn(device, &[1, 2, 4, 2], 65)], |t| {
            t[0].scaled_dot_product_attention(&t[1], &t[2], Some(0.7))
        });
    }

    fn packed_self_attention(device: &Device) {
        // [batch 2, len 3, 3 parts × 2 heads × head_dim 2].
        check_gradients("packed self-attention, 2 heads", [randn(device, &[2, 3, 12], 66)], |t| t[0].packed_self_attention(2));
        // The same values as the heads copied out and attended one by one.
        let qkv = randn(device, &[2, 3, 12], 67);
        let heads = qkv.reshape([2, 3, 3, 2, 2]).permute(&[2, 0, 3, 1, 4]);
        let [q, k, v] = [0, 1, 2].map(|part| heads.narrow(0, part, 1).squeeze(0));
        let want = q.scaled_dot_product_attention(&k, &v, None).permute(&[0, 2, 1, 3]).reshape([2, 3, 4]);
        let (got, want) = (qkv.packed_self_attention(2).to_vec().unwrap(), want.to_vec().unwrap());
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6), "{got:?} vs {want:?}");
    }

    fn multihead_attention(device: &Device) {
        use kiln::nn::{AttentionMasks, Initializer, Mode, Module, MultiheadAttention};
        let attention = MultiheadAttention::new(&mut Initializer::new(device, 3), 6, 2).batch_first();
        check_gradients("self-attention", [randn(device, &[2, 4, 6], 42)], |t| attention.forward(&t[0], Mode::Eval));
        let sequence_first = MultiheadAttention::new(&mut Initializer::new(device, 4), 6, 3);
        let causal = AttentionMasks { causal: true, ..Default::default() };
        check_gradients("causal, query and memory", [randn(device, &[3, 2, 6], 43), randn(device, &[5, 2, 6], 44)], |t| {
            sequence_first.attend(&t[0], &t[1], &t[1], AttentionMasks { causal: false, ..causal })
        });
        check_gradients("causal self-attention", [randn(device, &[4, 2, 6], 45)], |t| sequence_first.attend(&t[0], &t[0], &t[0], causal));
    }

    fn linear_on_sequences(device: &Device) {
        check_gradients("linear [2, 3, 5] · [4, 5]ᵀ", [randn(device, &[2, 3, 5], 46), randn(device, &[4, 5], 47), randn(device, &[4], 48)], |t| {
            t[0].linear(&t[1], Some(&t[2]))
        });
    }

    fn indexing_and_embedding(device: &Device) {
        use kiln::nn::{Embedding, Initializer, Mode, Module};
        let x = randn(device, &[3, 5, 4], 49);
        let ids = Tensor::from_i32([6], vec![4, 0, 4, 2, 1, 4], device);
        check_gradients("index_select", [x.clone()], |t| t[0].index_select(1, &ids));
        let index = Tensor::from_i32([3, 2, 4], (0..24).map(|i| i * 7 % 5).collect(), device);
        check_gradients("gather", [x.clone()], |t| t[0].gather(1, &index));
        check_gradients("scatter_add", [x, randn(device, &[3, 2, 4], 50)], |t| t[0].scatter_add(1, &index, &t[1]));
        let labels = Tensor::from_i32([4], vec![1, 4, 0, 2], device);
        check_gradients("nll_loss", [randn(device, &[4, 5], 51)], |t| t[0].nll_loss(&labels));
        let table = Embedding::new(&mut Initializer::new(device, 5), 7, 3);
        let ids = Tensor::from_i32([2, 3], vec![6, 0, 6, 2, 3, 0], device);
        let y = table.forward(&ids, Mode::Eval);
        let grad = y.mul(&randn(device, &[2, 3, 3], 52)).sum().backward();
        let rows = grad.get(table.weight()).unwrap().to_vec().unwrap();
        assert!(rows[3..6].iter().all(|&g| g == 0.0) && rows[6..9].iter().any(|&g| g != 0.0), "unused rows get no gradient");
    }

    fn maximum_minimum_and_selection(device: &Device) {
        // Values 0.1 apart, so a ±eps step never changes which side wins.
        let a = distinct(device, &[3, 4], 53);
        let b = distinct(device, &[3, 4], 54).add_scalar(0.05);
        check_gradients("maximum", [a.clone(), b.clone()], |t| t[0].maximum(&t[1]));
        check_gradients("minimum", [a.clone(), b.clone()], |t| t[0].minimum(&t[1]));
        check_gradients("maximum broadcast", [a.clone(), b.narrow(0, 0, 1)], |t| t[0].maximum(&t[1]));
        // Sums lie 0.05 or more from 0, so a ±eps step never crosses the ReLU's kink.
        check_gradients("add_relu", [a.clone(), b.clone()], |t| t[0].add_relu(&t[1]));
        check_gradients("add_relu broadcast", [a.clone(), b.narrow(0, 0, 1)], |t| t[0].add_relu(&t[1]));
        let mask = a.gt(&b);
        check_gradients("where_mask", [a.clone(), b], |t| Tensor::where_mask(&mask, &t[0], &t[1].mul_scalar(3.0)));
        check_gradients("masked_fill", [a], |t| t[0].masked_fill(&mask, -5.0).exp());
    }

    fn grouped_and_dilated_convolutions(device: &Device) {
        use kiln::tensor::{ConvOptions, Size2d};
        let x = randn(device, &[2, 4, 7, 6], 55);
        let grouped = ConvOptions { padding: Size2d(1, 1), groups: 2, ..Default::default() };
        check_gradients("conv groups 2", [x.clone(), randn(device, &[6, 2, 3, 3], 56).mul_scalar(0.3), randn(device, &[6], 57)], |t| {
            t[0].conv2d_with(&t[1], Some(&t[2]), grouped)
        });
        let depthwise = ConvOptions { stride: Size2d(2, 2), padding: Size2d(1, 1), groups: 4, ..Default::default() };
        check_gradients("depthwise stride 2", [x.clone(), randn(device, &[4, 1, 3, 3], 58)], |t| t[0].conv2d_with(&t[1], None, depthwise));
        let dilated = ConvOptions { padding: Size2d(2, 1), dilation: 2, ..Default::default() };
        check_gradients("dilation 2", [x, randn(device, &[3, 4, 3, 2], 59).mul_scalar(0.3)], |t| t[0].conv2d_with(&t[1], None, dilated));
    }

    fn normalize_along_an_axis(device: &Device) {
        let x = randn(device, &[3, 7, 5], 60).mul_scalar(2.0).add_scalar(0.5);
        for axis in 0..3 {
            check_gradients("normalize_axis", [x.clone()], |t| t[0].normalize_axis(axis, 1e-5));
        }
        // Against the same normalization written with reductions.
        let fused = x.normalize_axis(1, 1e-5).to_vec().unwrap();
        let mean = x.mean_axes(&[1], true);
        let var = x.var_axes(&[1], Variance::Population, true);
        let composed = x.sub(&mean).div(&var.add_scalar(1e-5).sqrt()).to_vec().unwrap();
        for (a, b) in fused.iter().zip(&composed) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
