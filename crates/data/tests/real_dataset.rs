//! The real Fashion-MNIST files, when present. CI installs `dataset-fashion-mnist`, so
//! there a missing dataset fails these tests instead of skipping them.

use std::path::PathBuf;

use kiln_data::locate::DEBIAN_DIR;
use kiln_data::resize::resize;
use kiln_data::{CLASS_NAMES, FashionMnist};

/// The dataset from `KILN_DATA_DIR` or Debian's location; `None` (with a printed
/// reason) only outside CI.
fn real_dataset() -> Option<FashionMnist> {
    let dir =
        std::env::var_os("KILN_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEBIAN_DIR));
    match FashionMnist::load_dir(&dir) {
        Ok(data) => Some(data),
        Err(err) if std::env::var_os("CI").is_some() => panic!("CI must provide Fashion-MNIST: {err}"),
        Err(err) => {
            eprintln!("skipping: Fashion-MNIST not available ({err}); apt-get install dataset-fashion-mnist");
            None
        }
    }
}

#[test]
fn sizes_class_balance_and_first_label() {
    let Some(data) = real_dataset() else { return };
    assert_eq!((data.train.len(), data.test.len()), (60_000, 10_000));
    assert_eq!((data.train.rows(), data.train.cols()), (28, 28));
    assert_eq!(data.train.class_counts(10), vec![6_000; 10]);
    assert_eq!(data.test.class_counts(10), vec![1_000; 10]);
    assert_eq!(data.train.label(0), 9);
    assert_eq!(CLASS_NAMES[data.train.label(0) as usize], "Ankle boot");
}

/// `(row, column, value)` of one resized pixel.
type Pixel = (usize, usize, f32);

/// Pixels of the first training image resized with PyTorch 2.15:
/// `F.interpolate(img / 255, size=(s, s), mode="bilinear", align_corners=False)`.
#[test]
fn resize_of_a_real_image_matches_pytorch() {
    let Some(data) = real_dataset() else { return };
    let image = data.train.image(0);
    let cases: [(usize, &[Pixel]); 2] = [
        (
            67,
            &[
                (0, 0, 0.0),
                (20, 33, 0.843_898_2),
                (33, 20, 0.000_526_779_8),
                (40, 40, 0.849_385_6),
                (66, 66, 0.0),
                (50, 10, 0.801_141),
            ],
        ),
        (
            224,
            &[
                (100, 100, 0.413_541_7),
                (37, 181, 0.004_381_128),
                (120, 57, 0.001_072_304),
                (200, 140, 0.307_429_6),
                (223, 0, 0.0),
            ],
        ),
    ];
    for (size, picks) in cases {
        let resized = resize(image, 28, 28, size, size);
        for &(y, x, want) in picks {
            let got = resized[y * size + x];
            assert!((got - want).abs() < 1e-5, "size {size} pixel ({y}, {x}): {got} vs PyTorch {want}");
        }
    }
}
