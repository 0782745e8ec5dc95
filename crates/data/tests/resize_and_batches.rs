//! Resizing worked by hand, and epochs of batches: seeded shuffles without replacement,
//! draws with replacement, partial batches, limits, augmentation (label-preserving,
//! seeded, identical across a resume), and the prefetcher's order and early stop.

use kiln_data::resize::resize;
use kiln_data::{
    Augment, BatchConfig, EpochPlan, Normalize, Order, Pass, Prefetcher, Shard, Split, make_batch,
};

#[test]
fn two_by_two_to_four_by_four_by_hand() {
    // Half-pixel centres: output x maps to source (x + 0.5)/2 − 0.5, clamped at the edges,
    // so one row [a, b] becomes [a, ¾a + ¼b, ¼a + ¾b, b].
    let resized = resize(&[0, 255, 255, 0], 2, 2, 4, 4);
    let expected = [
        0.0, 0.25, 0.75, 1.0, //
        0.25, 0.375, 0.625, 0.75, //
        0.75, 0.625, 0.375, 0.25, //
        1.0, 0.75, 0.25, 0.0,
    ];
    for (got, want) in resized.iter().zip(expected) {
        assert!((got - want).abs() < 1e-6, "{resized:?}");
    }
    let same = resize(&[0, 51, 102, 255], 2, 2, 2, 2);
    assert_eq!(same, vec![0.0, 0.2, 0.4, 1.0]);
}

/// Ten 2×2 images; image `i` has every pixel `i·10` and label `i % 10`.
fn tiny_split() -> Split {
    let images = (0..10u8).flat_map(|i| [i * 10; 4]).collect();
    Split::new(images, (0..10).collect(), 2, 2)
}

fn config(batch_size: usize, drop_last: bool) -> BatchConfig {
    BatchConfig { drop_last, ..BatchConfig::shuffled(batch_size, 2).with_seed(3) }
}

#[test]
fn shuffles_are_seeded_permutations() {
    let split = tiny_split();
    let plan = EpochPlan::new(&split, &config(4, false), 0);
    let mut seen: Vec<usize> = (0..plan.batches()).flat_map(|b| plan.indices(b).to_vec()).collect();
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
    assert_eq!(plan, EpochPlan::new(&split, &config(4, false), 0), "same seed, same order");
    assert_ne!(plan, EpochPlan::new(&split, &config(4, false), 1), "another epoch, another order");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "each example exactly once");
}

#[test]
fn last_partial_batch_kept_or_dropped_and_limits() {
    let split = tiny_split();
    let sizes = |drop_last| {
        let plan = EpochPlan::new(&split, &config(4, drop_last), 0);
        (0..plan.batches()).map(|b| plan.indices(b).len()).collect::<Vec<_>>()
    };
    assert_eq!(sizes(false), vec![4, 4, 2]);
    assert_eq!(sizes(true), vec![4, 4]);
    let limited = split.limit(3);
    assert_eq!(limited.len(), 3);
    assert_eq!(EpochPlan::new(&limited, &config(2, false), 0).batches(), 2);
}

#[test]
fn batches_carry_scaled_pixels_and_labels() {
    let split = tiny_split();
    let plan = EpochPlan::new(&split, &config(4, false), 0);
    let batch = make_batch(&split, &plan, 1, 3);
    assert_eq!(batch.inputs.len(), 4 * 9);
    for (k, &i) in plan.indices(1).iter().enumerate() {
        assert_eq!(batch.labels[k], i as i32);
        assert!(batch.inputs[k * 9..(k + 1) * 9].iter().all(|&v| (v - i as f32 * 10.0 / 255.0).abs() < 1e-6));
    }
}

#[test]
fn prefetcher_yields_the_plan_in_order_and_stops_when_dropped() {
    let split = tiny_split();
    let cfg = config(3, false);
    let plan = EpochPlan::new(&split, &cfg, 2);
    let direct: Vec<_> = (0..plan.batches()).map(|b| make_batch(&split, &plan, b, 2)).collect();
    let prefetched: Vec<_> = Prefetcher::new(&split, &cfg, Pass::epoch(2)).collect();
    assert_eq!(prefetched, direct);
    let resumed: Vec<_> = Prefetcher::new(&split, &cfg, Pass::epoch(2).from_batch(2).workers(3)).collect();
    assert_eq!(resumed, direct[2..]);
    let mut early = Prefetcher::new(&split, &cfg, Pass::epoch(2));
    assert_eq!(early.next().unwrap(), direct[0]);
    drop(early);
}

/// Twelve 4×4 images, each different and asymmetric (a flip or a shift changes it):
/// image `i` has pixel `(y, x)` = `10 + 16·y + 4·x + i`, label `i % 10`.
fn asymmetric_split() -> Split {
    let images =
        (0..12u8).flat_map(|i| (0..16u8).map(move |p| 10 + 16 * (p / 4) + 4 * (p % 4) + i)).collect();
    Split::new(images, (0..12).map(|i| i % 10).collect(), 4, 4)
}

#[test]
fn draws_with_replacement_are_seeded_and_sized() {
    let split = tiny_split();
    let config = BatchConfig { order: Order::WithReplacement { draws: 32 }, ..config(8, false) };
    let plan = EpochPlan::new(&split, &config, 0);
    assert_eq!(plan.batches(), 4);
    let drawn: Vec<usize> = (0..4).flat_map(|b| plan.indices(b).to_vec()).collect();
    assert_eq!(drawn.len(), 32);
    assert!(drawn.iter().all(|&i| i < 10));
    let mut distinct = drawn.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() < 32, "32 draws from 10 examples repeat some");
    let again: Vec<usize> =
        (0..4).flat_map(|b| EpochPlan::new(&split, &config, 0).indices(b).to_vec()).collect();
    assert_eq!(drawn, again, "same seed and epoch, same draws");
    let next: Vec<usize> =
        (0..4).flat_map(|b| EpochPlan::new(&split, &config, 1).indices(b).to_vec()).collect();
    assert_ne!(drawn, next, "another epoch draws anew");
}

#[test]
fn augmentation_preserves_labels_and_is_seeded() {
    let split = asymmetric_split();
    let plain = BatchConfig { image_size: 4, ..config(4, false) };
    let augmented = BatchConfig { augment: Augment { flip: true, crop_padding: 1 }, ..plain };
    let (mut changed, batches) = (0, EpochPlan::new(&split, &plain, 2).batches());
    for b in 0..batches {
        let before = make_batch(&split, &EpochPlan::new(&split, &plain, 2), b, 4);
        let after = make_batch(&split, &EpochPlan::new(&split, &augmented, 2), b, 4);
        assert_eq!(before.labels, after.labels, "augmentation keeps every label");
        let again = make_batch(&split, &EpochPlan::new(&split, &augmented, 2), b, 4);
        assert_eq!(after, again, "the same seed, epoch and batch give the same images");
        for (x, y) in before.inputs.chunks(16).zip(after.inputs.chunks(16)) {
            changed += usize::from(x != y);
            // A flip and a shift only move pixels or black them out.
            assert!(y.iter().all(|v| *v == 0.0 || x.contains(v)), "{x:?} → {y:?}");
        }
    }
    assert!(changed >= 6, "most of the 12 images changed, {changed} did");
}

#[test]
fn a_resumed_epoch_sees_the_same_augmented_batches() {
    let split = asymmetric_split();
    let config =
        BatchConfig { image_size: 6, augment: Augment { flip: true, crop_padding: 1 }, ..config(3, false) };
    let whole: Vec<_> = Prefetcher::new(&split, &config, Pass::epoch(1)).collect();
    let resumed: Vec<_> = Prefetcher::new(&split, &config, Pass::epoch(1).from_batch(2).workers(3)).collect();
    assert_eq!(whole.len(), 4);
    assert_eq!(resumed, whole[2..], "batches 2.. match whatever the workers and the start");
}

#[test]
fn a_sample_is_a_seeded_subset_without_repeats() {
    let split = asymmetric_split();
    let sample = split.sample(5, 9);
    assert_eq!(sample.len(), 5);
    let firsts: Vec<u8> = (0..5).map(|i| sample.image(i)[0]).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "kept in file order, no repeats: {firsts:?}");
    for i in 0..5 {
        let original = (sample.image(i)[0] - 10) as usize;
        assert_eq!(sample.image(i), split.image(original));
        assert_eq!(sample.label(i), split.label(original));
    }
    let again: Vec<u8> = (0..5).map(|i| split.sample(5, 9).image(i)[0]).collect();
    assert_eq!(again, firsts, "seeded");
    assert_eq!(split.sample(100, 9).len(), 12);
}

#[test]
fn normalized_batches_are_standardized_pixels() {
    let split = tiny_split();
    let plain = config(5, false);
    let normalize = Normalize { mean: 0.25, std: 0.5 };
    let standardized = BatchConfig { normalize: Some(normalize), ..plain };
    let a = make_batch(&split, &EpochPlan::new(&split, &plain, 0), 0, 2);
    let b = make_batch(&split, &EpochPlan::new(&split, &standardized, 0), 0, 2);
    assert_eq!(a.labels, b.labels);
    for (x, y) in a.inputs.iter().zip(&b.inputs) {
        assert!((y - (x - 0.25) / 0.5).abs() < 1e-6, "{x} → {y}");
    }
}

#[test]
fn shards_of_every_batch_together_are_the_whole_batch() {
    let split = asymmetric_split();
    // 12 examples in batches of 5: 5, 5 and a last partial batch of 2, split three ways
    // (so one shard of the last batch is empty).
    let whole_config =
        BatchConfig { image_size: 6, augment: Augment { flip: true, crop_padding: 1 }, ..config(5, false) };
    let whole: Vec<_> = Prefetcher::new(&split, &whole_config, Pass::epoch(1)).collect();
    let shards: Vec<Vec<_>> = (0..3)
        .map(|index| {
            let config = BatchConfig { shard: Shard::new(index, 3), ..whole_config };
            Prefetcher::new(&split, &config, Pass::epoch(1).workers(1)).collect()
        })
        .collect();
    for (b, batch) in whole.iter().enumerate() {
        let parts: Vec<_> = shards.iter().map(|shard| &shard[b]).collect();
        let images: Vec<f32> = parts.iter().flat_map(|p| p.inputs.clone()).collect();
        let labels: Vec<i32> = parts.iter().flat_map(|p| p.labels.clone()).collect();
        assert_eq!((images, labels), (batch.inputs.clone(), batch.labels.clone()), "batch {b}");
        let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "sizes {sizes:?}");
        let mut first = 0;
        for part in &parts {
            assert_eq!((part.first_sample, part.whole_len), (first, batch.len()));
            first += part.len();
        }
    }
    assert_eq!(shards[0][2].len(), 0, "2 examples over 3 shards leave the first one empty");
}
