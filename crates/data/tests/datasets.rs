//! The `Dataset` implementations: batch counts, shuffles that are seeded permutations,
//! shards that add up to the whole batch, resuming at a batch, shapes, class names, and
//! the errors of examples that do not fit together.

use kiln_data::{
    Augment, Dataset, EpochRequest, ImageDataset, Order, Pass, Prefetcher, Shard, Split, TensorDataset,
};

/// Seven examples of shape [2]; example `i` is `[i, -i]` with label `i % 3`.
fn seven() -> TensorDataset {
    let inputs = (0..7).flat_map(|i| [i as f32, -(i as f32)]).collect();
    TensorDataset::new(inputs, [2], (0..7).map(|i| i % 3).collect()).unwrap()
}

/// The first value of every example of every batch of a pass.
fn firsts(data: &dyn Dataset, request: EpochRequest) -> Vec<Vec<f32>> {
    data.epoch(request).map(|b| b.inputs.chunks(2).map(|e| e[0]).collect()).collect()
}

#[test]
fn a_tensor_dataset_in_order_and_shuffled() {
    let data = seven();
    assert_eq!((data.len(), data.batches_per_epoch(3)), (7, 3));
    assert_eq!(data.class_names(), ["0", "1", "2"]);
    assert_eq!(firsts(&data, EpochRequest::new(0, 3)), [vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0], vec![6.0]]);
    let batch = data.epoch(EpochRequest::new(0, 3)).nth(1).unwrap();
    assert_eq!((batch.index, batch.labels.clone(), batch.example_shape.dims()), (1, vec![0, 1, 2], &[2][..]));
    assert_eq!(batch.inputs, [3.0, -3.0, 4.0, -4.0, 5.0, -5.0], "examples keep their values together");

    let shuffled = seven().shuffled();
    let request = EpochRequest { seed: 9, ..EpochRequest::new(0, 3) };
    let order: Vec<f32> = firsts(&shuffled, request).concat();
    let mut sorted = order.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(sorted, (0..7).map(|i| i as f32).collect::<Vec<_>>(), "a permutation");
    assert_ne!(order, sorted, "shuffled");
    assert_eq!(firsts(&shuffled, request), firsts(&shuffled, request), "seeded");
    assert_ne!(firsts(&shuffled, request), firsts(&shuffled, EpochRequest { epoch: 1, ..request }));
    let resumed = firsts(&shuffled, EpochRequest { first_batch: 1, ..request });
    assert_eq!(resumed, firsts(&shuffled, request)[1..], "a resumed epoch continues the same order");
}

#[test]
fn shards_of_every_batch_add_up_to_the_batch() {
    let data = seven().shuffled();
    let request = EpochRequest { seed: 2, ..EpochRequest::new(3, 4) };
    let whole: Vec<_> = data.epoch(request).collect();
    for count in [2, 3] {
        let shards: Vec<Vec<_>> = (0..count)
            .map(|i| data.epoch(EpochRequest { shard: Shard::new(i, count), ..request }).collect())
            .collect();
        for (b, batch) in whole.iter().enumerate() {
            let inputs: Vec<f32> = shards.iter().flat_map(|s| s[b].inputs.clone()).collect();
            let labels: Vec<i32> = shards.iter().flat_map(|s| s[b].labels.clone()).collect();
            assert_eq!(
                (inputs, labels),
                (batch.inputs.clone(), batch.labels.clone()),
                "batch {b} of {count} shards"
            );
            for shard in &shards {
                assert_eq!(shard[b].whole_len, batch.len());
            }
            assert_eq!(shards[1][b].first_sample, shards[0][b].len());
        }
    }
}

#[test]
fn examples_that_do_not_fit_together_are_refused() {
    let short = TensorDataset::new(vec![0.0; 5], [2], vec![0, 1, 2]).unwrap_err().to_string();
    assert!(short.contains("need 6 values, got 5"), "{short}");
    let negative = TensorDataset::new(vec![0.0; 4], [2], vec![0, -1]).unwrap_err().to_string();
    assert!(negative.contains("label -1 of example 1 is negative"), "{negative}");
}

/// Ten 2×2 images; image `i` has every pixel `i·10` and label `i % 5`.
fn tiny_split() -> Split {
    let images = (0..10u8).flat_map(|i| [i * 10; 4]).collect();
    Split::new(images, (0..10).map(|i| i % 5).collect(), 2, 2)
}

#[test]
fn an_image_dataset_gives_the_prefetchers_batches() {
    let data = ImageDataset::new(tiny_split(), 3)
        .shuffled()
        .with_augment(Augment { flip: true, crop_padding: 1 })
        .with_class_names(&["a", "b", "c", "d", "e"]);
    assert_eq!(
        (data.len(), data.example_shape().dims(), data.class_names()[4].as_str()),
        (10, &[1, 3, 3][..], "e")
    );
    assert_eq!(ImageDataset::new(tiny_split(), 2).class_names(), ["0", "1", "2", "3", "4"]);
    let request = EpochRequest { seed: 5, ..EpochRequest::new(2, 4) };
    let batches: Vec<_> = data.epoch(request).collect();
    assert_eq!((batches.len(), data.batches_per_epoch(4)), (3, 3));
    let config = kiln_data::BatchConfig {
        augment: Augment { flip: true, crop_padding: 1 },
        ..kiln_data::BatchConfig::shuffled(4, 3).with_seed(5)
    };
    let direct: Vec<_> = Prefetcher::new(&tiny_split(), &config, Pass::epoch(2)).collect();
    assert_eq!(batches, direct);
    let drawn = ImageDataset::new(tiny_split(), 2).with_order(Order::WithReplacement { draws: 25 });
    assert_eq!(drawn.batches_per_epoch(10), 3);
    assert_eq!(drawn.epoch(EpochRequest::new(0, 10)).map(|b| b.len()).sum::<usize>(), 25);
}
