//! The run's pictures: `training.png` (loss and accuracy against epochs, the running
//! training loss, the learning rate on a secondary axis) and `confusion.png` (the
//! row-normalized confusion matrix as a labelled heat map), drawn with plotters and
//! written as PNG with the `png` crate. Files are replaced atomically.

mod glyph_backend;

use std::io::BufWriter;
use std::path::Path;

use kiln_nn::ConfusionMatrix;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::history::History;
use glyph_backend::GlyphBackend;

/// File name of the training curves.
pub const TRAINING_FILE: &str = "training.png";
/// File name of the confusion matrix.
pub const CONFUSION_FILE: &str = "confusion.png";
/// Size of `training.png` in pixels.
pub const TRAINING_SIZE: (u32, u32) = (1400, 560);
/// Size of `confusion.png` in pixels.
pub const CONFUSION_SIZE: (u32, u32) = (900, 820);

const FONT: &str = "sans-serif";
const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const TEST_COLOR: RGBColor = RGBColor(214, 39, 40);
const RUNNING_COLOR: RGBColor = RGBColor(160, 190, 220);
const LR_COLOR: RGBColor = RGBColor(120, 120, 120);

/// A drawing error as a message naming the file.
fn failed(path: &Path, err: impl std::fmt::Display) -> String {
    format!("cannot draw {}: {err}", path.display())
}

/// Draws `size` pixels with `draw` and writes them to `path` as PNG (through a
/// temporary file renamed into place).
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<GlyphBackend, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    let mut pixels = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = GlyphBackend::new(&mut pixels, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|err| failed(path, err))?;
    }
    let partial = path.with_extension("png.partial");
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let file = std::fs::File::create(&partial)?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), size.0, size.1);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
        std::fs::rename(&partial, path)?;
        Ok(())
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write the plot {}: {err}", path.display())
    })
}

/// The upper end of an axis showing `values` (at least `floor`), with 5% headroom.
fn axis_top(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values.filter(|v| v.is_finite()).fold(floor, f64::max) * 1.05
}

/// Writes `training.png`: on the left the training loss (per epoch and running) and
/// the test loss with the learning rate on a secondary axis, on the right the training
/// and test accuracy, all against epochs.
pub fn training(path: &Path, history: &History) -> Result<(), String> {
    render(path, TRAINING_SIZE, |root| {
        let fail = |err: &dyn std::fmt::Display| failed(path, err);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let (left, right) = root.split_horizontally(TRAINING_SIZE.0 / 2);
        let last_epoch = history.epochs.last().map(|e| e.epoch as f64);
        let last_step = history.running.last().map(|r| r.at_epoch);
        let x_end = last_epoch.into_iter().chain(last_step).fold(1.0, f64::max);

        let losses = history.epochs.iter().flat_map(|e| [e.train.loss, e.test.loss]);
        let loss_top = axis_top(losses.chain(history.running.iter().map(|r| r.loss)), 0.1);
        let lr_top =
            axis_top(history.running.iter().map(|r| r.lr).chain(history.epochs.iter().map(|e| e.lr)), 1e-6);
        let mut chart = ChartBuilder::on(&left)
            .caption("Loss", (FONT, 26))
            .margin(16)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .right_y_label_area_size(76)
            .build_cartesian_2d(0.0..x_end, 0.0..loss_top)
            .map_err(|e| fail(&e))?
            .set_secondary_coord(0.0..x_end, 0.0..lr_top);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .configure_secondary_axes()
            .y_desc("learning rate")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .y_label_formatter(&|v| format!("{v:.4}"))
            .draw()
            .map_err(|e| fail(&e))?;
        let running: Vec<(f64, f64)> = history.running.iter().map(|r| (r.at_epoch, r.loss)).collect();
        chart
            .draw_series(LineSeries::new(running, RUNNING_COLOR.stroke_width(1)))
            .map_err(|e| fail(&e))?
            .label("training loss (running)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RUNNING_COLOR.stroke_width(2)));
        draw_epoch_lines(&mut chart, history, |e| (e.train.loss, e.test.loss)).map_err(|e| fail(&e))?;
        let lr: Vec<(f64, f64)> = history.running.iter().map(|r| (r.at_epoch, r.lr)).collect();
        chart
            .draw_secondary_series(LineSeries::new(lr, LR_COLOR.stroke_width(1)))
            .map_err(|e| fail(&e))?
            .label("learning rate (right axis)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], LR_COLOR.stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(|e| fail(&e))?;

        let accuracies = history.epochs.iter().flat_map(|e| [e.train.accuracy, e.test.accuracy]);
        let low = accuracies.clone().filter(|v| v.is_finite()).fold(1.0, f64::min);
        let bottom = ((low * 100.0 - 2.0).floor().max(0.0)) / 100.0;
        let mut chart = ChartBuilder::on(&right)
            .caption("Accuracy", (FONT, 26))
            .margin(16)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_end, bottom.min(0.99)..1.0)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("accuracy")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()
            .map_err(|e| fail(&e))?;
        draw_epoch_lines(&mut chart, history, |e| (e.train.accuracy, e.test.accuracy))
            .map_err(|e| fail(&e))?;
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|e| fail(&e))?;
        Ok(())
    })
}

/// Draws the legend of the series labelled so far at `position`.
fn draw_legend<'a, X, Y>(
    chart: &mut ChartContext<'a, GlyphBackend<'a>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<<GlyphBackend<'a> as DrawingBackend>::ErrorType>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(position)
        .draw()
}

/// Draws the per-epoch training and test values that `pick` selects, as lines with
/// dots.
fn draw_epoch_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, GlyphBackend<'a>, Cartesian2d<X, Y>>,
    history: &History,
    pick: impl Fn(&crate::history::EpochPoint) -> (f64, f64),
) -> Result<(), DrawingAreaErrorKind<<GlyphBackend<'a> as DrawingBackend>::ErrorType>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (name, color, test) in [("training", TRAIN_COLOR, false), ("test", TEST_COLOR, true)] {
        let points: Vec<(f64, f64)> = history
            .epochs
            .iter()
            .map(|e| {
                let (train, tested) = pick(e);
                (e.epoch as f64, if test { tested } else { train })
            })
            .filter(|(_, v)| v.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
            .label(format!("{name} (per epoch)"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(3)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 5, color.filled())))?;
    }
    Ok(())
}

/// The colour of a cell holding `share` (0–1) of its row: white to dark blue.
fn heat(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0);
    let blend = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    RGBColor(blend(247.0, 8.0), blend(251.0, 48.0), blend(255.0, 107.0))
}

/// Writes `confusion.png`: rows are true classes, columns predicted ones (labelled
/// with `class_names`), each cell the percentage of its row, coloured by it.
pub fn confusion(path: &Path, matrix: &ConfusionMatrix, class_names: &[String]) -> Result<(), String> {
    let classes = matrix.classes();
    let names: Vec<&str> = (0..classes).map(|c| class_names.get(c).map_or("?", String::as_str)).collect();
    render(path, CONFUSION_SIZE, |root| {
        let fail = |err: &dyn std::fmt::Display| failed(path, err);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let title = format!(
            "Confusion matrix: {} test images, {:.2}% correct (cells: % of the true class)",
            matrix.total(),
            100.0 * matrix.accuracy()
        );
        let n = classes as i32;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(16)
            .x_label_area_size(64)
            .y_label_area_size(110)
            .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(|e| fail(&e))?;
        // `0..n − 1` is inclusive in plotters' discrete coordinates: n segments. Row
        // `truth` is drawn at y = n − 1 − truth, so class 0 is at the top.
        let label = |v: &SegmentValue<i32>, from_top: bool| match *v {
            SegmentValue::CenterOf(i) if (0..n).contains(&i) => {
                names[if from_top { (n - 1 - i) as usize } else { i as usize }].to_string()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(classes)
            .y_labels(classes)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_desc("predicted class")
            .y_desc("true class")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 17))
            .draw()
            .map_err(|e| fail(&e))?;
        for truth in 0..classes {
            let row_total: u64 = (0..classes).map(|p| matrix.count(truth, p)).sum();
            for predicted in 0..classes {
                let share = matrix.count(truth, predicted) as f64 / row_total.max(1) as f64;
                let (x, y) = (predicted as i32, n - 1 - truth as i32);
                let corners = [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ];
                chart.draw_series([Rectangle::new(corners, heat(share).filled())]).map_err(|e| fail(&e))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let style = TextStyle::from((FONT, 15).into_font())
                    .color(&ink)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let centre = (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y));
                chart
                    .draw_series([Text::new(format!("{:.1}", 100.0 * share), centre, style)])
                    .map_err(|e| fail(&e))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EpochPoint, RunningPoint};
    use crate::report::Score;

    /// The size and pixels of a PNG file.
    fn decode(path: &Path) -> ((u32, u32), Vec<u8>) {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        ((info.width, info.height), pixels)
    }

    fn history(test_accuracy: f64) -> History {
        let mut history = History::default();
        for step in 0..40 {
            let at = (step + 1) as f64 / 20.0;
            let point = RunningPoint { loss: 2.0 / (1.0 + at), at_epoch: at, lr: 0.01 * (1.0 - at / 2.0) };
            history.add_step(point, step % 4 == 3);
        }
        for epoch in 1..=2 {
            let score = |loss, accuracy| Score { loss, accuracy };
            let test = score(0.5 / epoch as f64, test_accuracy + 0.02 * epoch as f64);
            history.epochs.push(EpochPoint { epoch, train: score(0.6 / epoch as f64, 0.8), test, lr: 0.005 });
        }
        history
    }

    /// A scratch directory for one test's pictures, removed when dropped.
    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("kiln-plots-").tempdir().unwrap()
    }

    #[test]
    fn training_curves_are_a_png_of_their_size_that_follows_the_data() {
        let dir = scratch();
        let (a, b) = (dir.path().join("a-training.png"), dir.path().join("b-training.png"));
        training(&a, &history(0.85)).unwrap();
        training(&b, &history(0.70)).unwrap();
        let (size, pixels_a) = decode(&a);
        assert_eq!(size, TRAINING_SIZE);
        let (_, pixels_b) = decode(&b);
        assert_ne!(pixels_a, pixels_b, "other accuracies draw another picture");
        let ink = pixels_a.chunks(3).filter(|p| p.iter().any(|&c| c < 200)).count();
        assert!(ink > 10_000, "axes, text and curves are drawn ({ink} dark pixels)");
        assert!(!a.with_extension("png.partial").exists(), "no temporary file is left");
    }

    #[test]
    fn the_confusion_heat_map_is_a_png_that_follows_the_counts() {
        let mut matrix = ConfusionMatrix::new(10);
        for c in 0..10 {
            (0..9).for_each(|_| matrix.add(c, c));
            matrix.add(c, (c + 1) % 10);
        }
        let dir = scratch();
        let (a, b) = (dir.path().join("a-confusion.png"), dir.path().join("b-confusion.png"));
        let names: Vec<String> = (0..10).map(|c| format!("class {c}")).collect();
        confusion(&a, &matrix, &names).unwrap();
        matrix.add(3, 4);
        confusion(&b, &matrix, &names).unwrap();
        let (size, pixels_a) = decode(&a);
        assert_eq!(size, CONFUSION_SIZE);
        assert_ne!(pixels_a, decode(&b).1, "another count draws another picture");
        // The 90% diagonal cells are dark blue: many pixels of the heat colour of 0.9.
        let RGBColor(r, g, bl) = heat(0.9);
        let dark = pixels_a.chunks(3).filter(|p| p == &[r, g, bl]).count();
        assert!(dark > 10 * 1000, "{dark} pixels of the diagonal's colour");
    }

    #[test]
    fn an_unwritable_plot_is_an_error_naming_it() {
        let err = training(Path::new("/proc/kiln/training.png"), &history(0.8)).unwrap_err();
        assert!(err.contains("/proc/kiln/training.png"), "{err}");
    }
}
