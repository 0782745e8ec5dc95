//! What the run prints and writes: the progress bar of an epoch, the line after each
//! epoch, the JSON-lines metrics file, and the final report.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kiln_data::CLASS_NAMES;
use kiln_nn::ConfusionMatrix;

/// Loss and accuracy over a pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Score {
    /// Mean loss per example.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// Running sums of a pass over batches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

impl Tally {
    /// Adds a batch of `n` examples with mean loss `loss` and `correct` right answers.
    pub fn add(&mut self, n: usize, loss: f32, correct: usize) {
        self.loss_sum += loss as f64 * n as f64;
        self.correct += correct;
        self.seen += n;
    }

    /// Examples counted.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Mean loss and accuracy so far.
    pub fn score(&self) -> Score {
        let n = self.seen.max(1) as f64;
        Score { loss: self.loss_sum / n, accuracy: self.correct as f64 / n }
    }
}

/// The progress bar of one epoch (drawn only on a terminal).
pub fn epoch_bar(epoch: usize, epochs: usize, batches: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(batches as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{epochs}", epoch + 1));
    bar.set_position(done as u64);
    bar
}

/// The running figures shown on the bar.
pub fn bar_message(tally: &Tally, images_per_second: f64) -> String {
    let score = tally.score();
    format!("loss {:.4} acc {:.2}% {images_per_second:.1} img/s", score.loss, 100.0 * score.accuracy)
}

/// One epoch's figures, for the epoch line and the metrics file.
#[derive(Clone, Copy, Debug)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Training loss and accuracy over the epoch.
    pub train: Score,
    /// Test loss and accuracy after the epoch.
    pub test: Score,
    /// Seconds spent training (evaluation excluded).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

impl EpochRecord {
    /// The line printed after the epoch.
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "epoch {}/{epochs}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.1} s  {:.1} img/s",
            self.epoch,
            self.train.loss,
            100.0 * self.train.accuracy,
            self.test.loss,
            100.0 * self.test.accuracy,
            self.seconds,
            self.images_per_second
        )
    }

    /// One JSON object (the metrics file's fields; see the README).
    pub fn json(&self) -> String {
        format!(
            "{{\"epoch\": {}, \"train_loss\": {:.6}, \"train_accuracy\": {:.6}, \"test_loss\": {:.6}, \"test_accuracy\": {:.6}, \"seconds\": {:.3}, \"images_per_second\": {:.3}}}",
            self.epoch,
            self.train.loss,
            self.train.accuracy,
            self.test.loss,
            self.test.accuracy,
            self.seconds,
            self.images_per_second
        )
    }
}

/// The metrics file: created fresh, or appended to when resuming.
pub fn open_metrics(path: &Path, append: bool) -> Result<File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|err| format!("cannot write metrics to {}: {err}", path.display()))
}

/// Appends one record to the metrics file.
pub fn write_metrics(file: &mut File, record: &EpochRecord) -> Result<(), String> {
    writeln!(file, "{}", record.json()).map_err(|err| format!("cannot write metrics: {err}"))
}

/// The closing report: accuracy, per-class accuracy, confusion matrix, time, speed,
/// memory.
pub fn final_report(
    matrix: &ConfusionMatrix,
    test: Score,
    training: Duration,
    images: usize,
    peak: Option<u64>,
) -> String {
    let mut out = format!(
        "test accuracy {:.2}% on {} images (loss {:.4})\nper class:\n",
        100.0 * test.accuracy,
        matrix.total(),
        test.loss
    );
    for (c, name) in CLASS_NAMES.iter().enumerate().take(matrix.classes()) {
        if let Some(accuracy) = matrix.class_accuracy(c) {
            out += &format!("  {name:<12} {:6.2}%\n", 100.0 * accuracy);
        }
    }
    out += "confusion matrix (rows: true class, columns: predicted class):\n";
    out += &matrix.render(&CLASS_NAMES);
    let seconds = training.as_secs_f64();
    if images > 0 {
        out += &format!(
            "training time {seconds:.1} s, {images} images, {:.1} images/s\n",
            images as f64 / seconds.max(1e-9)
        );
    }
    if let Some(peak) = peak {
        out += &format!("peak memory {:.2} GiB\n", peak as f64 / (1u64 << 30) as f64);
    }
    out
}
