//! Limits that depend on the machine: how many CPU threads make sense, and whether a
//! training step at the requested image and batch size fits in memory. Both are checked
//! from arithmetic alone, before any device or model exists.

use kiln_nn::models::{Footprint, VitConfig, alexnet_footprint};

use kiln_train::memory::{human_bytes, total_memory_bytes};

use crate::args::ModelChoice;

/// How many threads per available core `--threads` may ask for: beyond a few, extra
/// threads only add switching overhead.
const THREADS_PER_CORE: usize = 4;

/// Input channels and classes of Fashion-MNIST.
const CHANNELS: usize = 1;
const CLASSES: usize = 10;

/// The largest `--threads` value accepted on this machine.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    THREADS_PER_CORE * cores
}

/// Rejects a `--threads` value beyond [`max_threads`].
pub fn check_threads(threads: usize) -> Result<(), String> {
    let limit = max_threads();
    if threads > limit {
        return Err(format!(
            "--threads {threads} is more than this machine can use: at most {limit} ({THREADS_PER_CORE} per available core)"
        ));
    }
    Ok(())
}

/// Approximate bytes of one training step: parameters with their gradients and
/// optimizer state (three copies), every activation and its gradient, and the input.
fn training_step_bytes(footprint: &Footprint, batch: usize, image_size: usize) -> Option<u64> {
    let input = (image_size as u64).checked_mul(image_size as u64)?;
    let per_image = (footprint.activations_per_image as u64).checked_mul(2)?.checked_add(input)?;
    let per_batch = per_image.checked_mul(batch as u64)?;
    let values = (footprint.parameters as u64).checked_mul(3)?.checked_add(per_batch)?;
    values.checked_mul(4)
}

/// The smallest image a ResNet's small-image stem takes (its last stage sees 1×1).
const RESNET_MIN_IMAGE: usize = 8;

/// Rejects an image size the model cannot take: for AlexNet one too small, or whose
/// training step at `batch` images cannot fit in this machine's memory (saying the
/// largest size that fits); for the ViT one its patches do not tile.
pub fn check_image_size(model: ModelChoice, image_size: usize, batch: usize) -> Result<(), String> {
    match model {
        ModelChoice::Alexnet => check_alexnet_image_size(image_size, batch),
        ModelChoice::Resnet if image_size < RESNET_MIN_IMAGE => {
            Err(format!("--image-size {image_size} is too small for resnet: at least {RESNET_MIN_IMAGE}"))
        }
        ModelChoice::Vit
            if image_size == 0 || !image_size.is_multiple_of(VitConfig::FASHION_MNIST.patch_size) =>
        {
            Err(format!(
                "--image-size {image_size} does not fit vit's {0}×{0} patches: use a multiple of {0}",
                VitConfig::FASHION_MNIST.patch_size
            ))
        }
        ModelChoice::Resnet | ModelChoice::Vit => Ok(()),
    }
}

/// AlexNet's image size checks (see [`check_image_size`]).
fn check_alexnet_image_size(image_size: usize, batch: usize) -> Result<(), String> {
    let footprint = alexnet_footprint(CHANNELS, CLASSES, image_size).map_err(|err| err.to_string())?;
    let Some(memory) = total_memory_bytes() else { return Ok(()) };
    let fits = |size: usize| {
        alexnet_footprint(CHANNELS, CLASSES, size)
            .ok()
            .and_then(|f| training_step_bytes(&f, batch, size))
            .is_some_and(|bytes| bytes <= memory)
    };
    if fits(image_size) {
        return Ok(());
    }
    let needed = training_step_bytes(&footprint, batch, image_size)
        .map_or_else(|| "more than 16 EiB".to_string(), |bytes| format!("about {}", human_bytes(bytes)));
    let minimum = (1..image_size).find(|&size| alexnet_footprint(CHANNELS, CLASSES, size).is_ok());
    let largest = minimum.and_then(|minimum| largest_fitting(minimum, image_size, fits));
    let advice = match largest {
        Some(size) => format!("the largest size that fits at this batch size is {size}"),
        None => "no size fits at this batch size: lower --batch-size".to_string(),
    };
    Err(format!(
        "--image-size {image_size} needs {needed} for a training step at --batch-size {batch} (weights, gradients, \
         optimizer state and activations), more than this machine's {} of memory; {advice}",
        human_bytes(memory)
    ))
}

/// The largest size in `low..high` for which `fits` holds, assuming it holds for all
/// sizes below one that fits.
fn largest_fitting(low: usize, high: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if !fits(low) {
        return None;
    }
    let (mut good, mut bad) = (low, high);
    while bad - good > 1 {
        let middle = good + (bad - good) / 2;
        if fits(middle) { good = middle } else { bad = middle }
    }
    Some(good)
}
