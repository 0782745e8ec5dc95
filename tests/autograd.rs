//! The tape's contract: gradients of reused tensors add up, `no_grad` records nothing,
//! constants get no gradient, gradients computed in place never touch a tensor the
//! caller holds, and errors name what was wrong.

#[macro_use]
mod common;

use common::*;
use kiln::prelude::*;
use kiln::tensor::DropoutMask;

test_on_every_device! {
    fn tensor_used_twice_gets_the_sum_of_both_gradients(device: &Device) {
        let x = Tensor::from_vec([3], vec![1.0, -2.0, 0.5], device).with_requires_grad();
        // y = Σ (x·x + 3x): dy/dx = 2x + 3.
        let y = x.mul(&x).add(&(&x * 3.0)).sum();
        let grads = y.backward();
        assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![5.0, -1.0, 4.0]);
    }

    fn a_gradient_the_caller_holds_is_never_overwritten(device: &Device) {
        let x = Tensor::from_vec([4], vec![-1.0, 2.0, -3.0, 4.0], device).with_requires_grad();
        let seed = Tensor::from_vec([4], vec![10.0, 20.0, 30.0, 40.0], device);
        let grads = x.relu().backward_with(&seed);
        assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![0.0, 20.0, 0.0, 40.0]);
        assert_eq!(seed.to_vec().unwrap(), vec![10.0, 20.0, 30.0, 40.0], "the seed is unchanged");
        // Through a chain, the intermediate gradients belong to the tape and may be reused.
        let grads = x.mul_scalar(2.0).relu().tanh().sum().backward();
        let expected: Vec<f32> = [-1.0f32, 2.0, -3.0, 4.0]
            .iter()
            .map(|&v| if v > 0.0 { 2.0 * (1.0 - (2.0 * v).tanh().powi(2)) } else { 0.0 })
            .collect();
        assert_close("chain gradient", &grads.get(&x).unwrap().to_vec().unwrap(), &expected, 1e-6);
    }

    fn max_pool_without_a_tape_gives_the_recorded_values(device: &Device) {
        // Inference skips the argmax; the values must not change. Plane sizes with
        // whole and clamped windows, kernels 3 and 2, padding.
        for (dims, kernel, stride, padding) in
            [([2, 3, 9, 11], 3, 2, 0), ([1, 2, 8, 5], 3, 2, 1), ([2, 2, 6, 6], 2, 2, 0)]
        {
            let x = randn(device, &dims, 31).with_requires_grad();
            let recorded = x.max_pool2d(kernel, stride, padding);
            assert!(recorded.requires_grad());
            let inference = no_grad(|| x.max_pool2d(kernel, stride, padding));
            assert!(!inference.requires_grad());
            assert_eq!(inference.to_vec().unwrap(), recorded.to_vec().unwrap(), "{dims:?} k{kernel}");
        }
    }

    fn no_grad_records_nothing(device: &Device) {
        let w = randn(device, &[4, 3], 1).with_requires_grad();
        // Counted per thread: the process-wide live count moves with the other tests.
        let before = kiln::tensor::tape_entries_recorded_on_this_thread();
        let y = no_grad(|| w.relu().sum());
        assert!(!y.requires_grad());
        assert_eq!(kiln::tensor::tape_entries_recorded_on_this_thread(), before);
        let recorded = w.relu().sum();
        assert!(recorded.requires_grad());
        assert!(kiln::tensor::tape_entries_recorded_on_this_thread() > before);
    }

    fn constants_get_no_gradient_and_leaves_do(device: &Device) {
        let w = randn(device, &[3, 2], 2).with_requires_grad();
        let x = randn(device, &[4, 3], 3);
        let grads = x.matmul(&w).mean().backward();
        assert!(grads.get(&x).is_none());
        assert_eq!(grads.get(&w).unwrap().dims(), &[3, 2]);
        assert_eq!(grads.len(), 1);
    }

    #[should_panic(expected = "add: shapes [3, 5] and [4] do not broadcast")]
    fn shape_mismatch_names_op_and_shapes(device: &Device) {
        let _ = randn(device, &[3, 5], 1).add(&randn(device, &[4], 2));
    }

    #[should_panic(expected = "matmul: shapes [2, 3] and [4, 5]")]
    fn matmul_mismatch_names_both_shapes(device: &Device) {
        let _ = randn(device, &[2, 3], 1).matmul(&randn(device, &[4, 5], 2));
    }

    fn reading_labels_as_floats_is_a_typed_error(device: &Device) {
        let labels = Tensor::from_i32([2], vec![1, 2], device);
        let err = labels.to_vec().unwrap_err();
        assert_eq!(err.to_string(), "expected a tensor of f32, found i32");
        assert_eq!(labels.to_vec_i32().unwrap(), vec![1, 2]);
    }

    fn same_seed_same_random_values(device: &Device) {
        let a = Tensor::randn([5, 7], 42, device).to_vec().unwrap();
        let b = Tensor::randn([5, 7], 42, device).to_vec().unwrap();
        let c = Tensor::randn([5, 7], 43, device).to_vec().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let u = Tensor::rand_uniform([1000], -2.0..3.0, 1, device).to_vec().unwrap();
        assert!(u.iter().all(|v| (-2.0..3.0).contains(v)));
    }

    fn dropout_scales_kept_values_and_is_reproducible(device: &Device) {
        let x = Tensor::ones([10_000], device);
        let y = x.dropout(0.5, 7).to_vec().unwrap();
        assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
        let kept = y.iter().filter(|&&v| v == 2.0).count();
        assert!((4_700..5_300).contains(&kept), "kept {kept}");
        assert_eq!(y, x.dropout(0.5, 7).to_vec().unwrap());
        assert_ne!(y, x.dropout(0.5, 8).to_vec().unwrap());
    }

    fn dropout_shards_draw_the_whole_batch_mask(device: &Device) {
        let whole = randn(device, &[6, 35], 3);
        let full = whole.dropout(0.4, 11).to_vec().unwrap();
        let (head, tail) = full.split_at(2 * 35);
        let host = whole.to_vec().unwrap();
        let shard = |rows: std::ops::Range<usize>| {
            Tensor::from_vec([rows.len(), 35], host[rows.start * 35..rows.end * 35].to_vec(), device)
        };
        let first = shard(0..2).dropout_with(0.4, DropoutMask::new(11)).to_vec().unwrap();
        let rest = shard(2..6).dropout_with(0.4, DropoutMask::new(11).starting_at(2 * 35)).to_vec().unwrap();
        assert_eq!(first, head);
        assert_eq!(rest, tail);
        assert_ne!(rest, shard(2..6).dropout(0.4, 11).to_vec().unwrap(), "the window must move the mask");
    }
}
