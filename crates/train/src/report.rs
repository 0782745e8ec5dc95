//! What the run prints and writes: the progress bar of an epoch, the line after each
//! epoch, the JSON-lines metrics file, and the final report.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kiln_nn::ConfusionMatrix;

/// Loss and accuracy over a pass.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Mean loss per example.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
}

/// Checkpoint metadata keys of an epoch's running sums.
const TALLY_LOSS_SUM: &str = "epoch_loss_sum";
const TALLY_CORRECT: &str = "epoch_correct";
const TALLY_SEEN: &str = "epoch_seen";

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

    /// Loss sum, right answers and examples, as numbers to add up across processes.
    pub fn sums(&self) -> [f64; 3] {
        [self.loss_sum, self.correct as f64, self.seen as f64]
    }

    /// The tally of [`Tally::sums`] added up.
    pub fn from_sums([loss_sum, correct, seen]: [f64; 3]) -> Self {
        Tally { loss_sum, correct: correct as usize, seen: seen as usize }
    }

    /// The tally as checkpoint metadata (exact: floats are written so they read back
    /// bit for bit).
    pub fn write_metadata(&self, meta: &mut BTreeMap<String, String>) {
        meta.insert(TALLY_LOSS_SUM.into(), self.loss_sum.to_string());
        meta.insert(TALLY_CORRECT.into(), self.correct.to_string());
        meta.insert(TALLY_SEEN.into(), self.seen.to_string());
    }

    /// The tally stored by [`Tally::write_metadata`]; an empty one when the checkpoint has
    /// none (saved at an epoch boundary, or by an older Kiln).
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Tally, String> {
        if !meta.contains_key(TALLY_SEEN) {
            return Ok(Tally::default());
        }
        let field = |key: &str| meta.get(key).ok_or_else(|| format!("the checkpoint lacks `{key}`"));
        let bad = |key: &str| format!("the checkpoint's `{key}` is not a number");
        Ok(Tally {
            loss_sum: field(TALLY_LOSS_SUM)?.parse().map_err(|_| bad(TALLY_LOSS_SUM))?,
            correct: field(TALLY_CORRECT)?.parse().map_err(|_| bad(TALLY_CORRECT))?,
            seen: field(TALLY_SEEN)?.parse().map_err(|_| bad(TALLY_SEEN))?,
        })
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
    /// Learning rate of the epoch's last step.
    pub lr: f64,
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

    /// One JSON object (the metrics file's fields; see docs/guide.md). A value that is
    /// NaN or infinite is written as `null`, which every JSON parser accepts.
    pub fn json(&self) -> String {
        format!(
            "{{\"epoch\": {}, \"train_loss\": {}, \"train_accuracy\": {}, \"test_loss\": {}, \"test_accuracy\": {}, \"seconds\": {}, \"images_per_second\": {}, \"lr\": {}}}",
            self.epoch,
            json_number(self.train.loss, 6),
            json_number(self.train.accuracy, 6),
            json_number(self.test.loss, 6),
            json_number(self.test.accuracy, 6),
            json_number(self.seconds, 3),
            json_number(self.images_per_second, 3),
            json_number(self.lr, 8)
        )
    }
}

/// `value` with `decimals` decimals as a JSON number, or `null` when it is not finite.
fn json_number(value: f64, decimals: usize) -> String {
    if value.is_finite() { format!("{value:.decimals$}") } else { "null".to_string() }
}

/// The metrics file: created fresh, or appended to when `append` (resuming; also how
/// its writability is checked without truncating it).
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

/// The closing report: accuracy, per-class accuracy, confusion matrix (classes named
/// by `class_names`), time, speed, memory.
pub fn final_report(
    matrix: &ConfusionMatrix,
    class_names: &[String],
    test: Score,
    training: Duration,
    images: usize,
    peak: Option<u64>,
) -> String {
    let mut out = format!(
        "test accuracy {:.2}% on {} images (loss {:.6})\nper class:\n",
        100.0 * test.accuracy,
        matrix.total(),
        test.loss
    );
    for (c, name) in class_names.iter().enumerate().take(matrix.classes()) {
        if let Some(accuracy) = matrix.class_accuracy(c) {
            out += &format!("  {name:<12} {:6.2}%\n", 100.0 * accuracy);
        }
    }
    out += "confusion matrix (rows: true class, columns: predicted class):\n";
    let names: Vec<&str> = class_names.iter().map(String::as_str).collect();
    out += &matrix.render(&names);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_metrics_are_written_as_null() {
        let record = EpochRecord {
            epoch: 2,
            train: Score { loss: f64::NAN, accuracy: 0.5 },
            test: Score { loss: f64::INFINITY, accuracy: 0.25 },
            seconds: 1.5,
            images_per_second: 10.0,
            lr: 0.01,
        };
        let json = record.json();
        assert!(json.contains("\"train_loss\": null") && json.contains("\"test_loss\": null"), "{json}");
        assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        assert!(json.contains("\"train_accuracy\": 0.500000"), "{json}");
    }

    #[test]
    fn a_tally_survives_checkpoint_metadata_exactly() {
        let mut tally = Tally::default();
        tally.add(32, 0.1 + 0.2, 7);
        tally.add(17, 1.0 / 3.0, 11);
        let mut meta = BTreeMap::new();
        tally.write_metadata(&mut meta);
        let back = Tally::from_metadata(&meta).unwrap();
        assert_eq!(back.loss_sum.to_bits(), tally.loss_sum.to_bits());
        assert_eq!((back.correct, back.seen), (18, 49));
        assert_eq!(Tally::from_metadata(&BTreeMap::new()).unwrap().seen(), 0);
        meta.insert("epoch_correct".into(), "many".into());
        assert!(Tally::from_metadata(&meta).unwrap_err().contains("epoch_correct"));
    }
}
