//! The `alexnet-example` binary end to end on the real dataset (CI installs it; a
//! missing dataset fails there and skips elsewhere): a small run that learns, writes
//! metrics, a checkpoint, the best checkpoint and the plots; resume equality (schedule
//! and augmentation included); the notebook recipe; bad flags; a missing data
//! directory; a diverging run; and the wgpu backend following the CPU backend's run
//! step for step.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BINARY, ScratchDir, data_dir, field, saved_metadata, temp_dir, tensors};

/// The binary with the environment of a newcomer's shell on a headless machine: no
/// dataset variable, and no `NODEVICE_SELECT` silencing Mesa's device-select layer.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("KILN_DATA_DIR")
        .env_remove("NODEVICE_SELECT")
        .env_remove("XDG_RUNTIME_DIR");
    command
}

fn run(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Flags of a small CPU run on `data`, writing into `dir`.
fn small_run(data: &Path, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--backend",
        "cpu",
        "--image-size",
        "67",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.0003",
        "--seed",
        "7",
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(data.display().to_string());
    args.extend(["--checkpoint".to_string(), dir.join("alexnet.safetensors").display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run_strings(args: &[String]) -> Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Asserts `output` failed with `code` and exactly one line on stderr containing
/// `message`, and no panic.
fn assert_one_line_error(output: &Output, code: i32, message: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    assert!(err.contains(message), "expected `{message}` in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn a_small_run_learns_and_writes_metrics_and_a_checkpoint() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("small");
    let metrics = dir.join("metrics.jsonl");
    // Trained on standardized pixels; --eval-only below is not told, and must take the
    // standardization from the checkpoint to report the same accuracy.
    let train = ["--train-limit", "2000", "--test-limit", "500", "--epochs", "2", "--normalize"];
    let mut args = small_run(&data, &dir, &train);
    args.extend(["--metrics".to_string(), metrics.display().to_string()]);
    let output = run_strings(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("46,764,746") || stdout.contains("total"), "the summary is printed: {stdout}");
    assert!(stdout.contains("confusion matrix") && stdout.contains("Ankle boot"), "{stdout}");
    let lines: Vec<String> = std::fs::read_to_string(&metrics).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "one JSON object per epoch");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(field(line, "epoch"), (i + 1) as f64);
        for key in ["train_loss", "train_accuracy", "test_loss", "seconds", "images_per_second"] {
            assert!(field(line, key).is_finite());
        }
    }
    let accuracy = field(&lines[1], "test_accuracy");
    assert!(accuracy > 0.70, "test accuracy {accuracy}");
    assert!(dir.join("alexnet.safetensors").is_file());

    // The best epoch's model is kept beside the checkpoint and named in the summary.
    let best_epoch =
        if field(&lines[1], "test_accuracy") > field(&lines[0], "test_accuracy") { 2 } else { 1 };
    let best = dir.join("alexnet-best.safetensors");
    assert_eq!(saved_metadata(&best, "epoch"), best_epoch.to_string());
    assert!(
        stdout.contains(&format!("best checkpoint: {} (epoch {best_epoch},", best.display())),
        "{stdout}"
    );
    // The plots are PNG files (signature, then the IHDR chunk's width and height).
    for (name, size) in [("training.png", (1400, 560)), ("confusion.png", (900, 820))] {
        let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|_| panic!("{name} is written"));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
        let dimension = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!((dimension(16), dimension(20)), size, "{name}'s size");
    }

    let mut eval = small_run(&data, &dir, &["--test-limit", "500", "--eval-only"]);
    eval.retain(|a| a != "--resume");
    let output = run_strings(&eval);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = format!("test accuracy {:.2}%", 100.0 * accuracy);
    assert!(String::from_utf8_lossy(&output.stdout).contains(&expected), "eval-only reports {expected}");
}

/// The fields of a metrics line that do not depend on timing.
fn results(line: &str) -> Vec<f64> {
    ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"]
        .iter()
        .map(|k| field(line, k))
        .collect()
}

#[test]
fn an_interrupted_and_resumed_run_ends_bit_identical() {
    let Some(data) = data_dir() else { return };
    let common = ["--train-limit", "200", "--test-limit", "50", "--epochs", "2"];
    let with_metrics = |dir: &Path, extra: &[&str]| {
        let mut args = small_run(&data, dir, &common);
        args.extend(["--metrics".to_string(), dir.join("metrics.jsonl").display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let straight = temp_dir("straight");
    let output = run_strings(&with_metrics(&straight, &[]));
    assert!(output.status.success(), "{}", stderr(&output));

    let split = temp_dir("split");
    let output = run_strings(&with_metrics(&split, &["--max-steps", "4"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("reached --max-steps"), "{}", stderr(&output));
    let output = run_strings(&with_metrics(&split, &["--resume"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("resuming from"));

    let (a, b) =
        (tensors(&straight.join("alexnet.safetensors")), tensors(&split.join("alexnet.safetensors")));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|(name, _)| name.starts_with("optimizer.")), "optimizer state is saved");
    for ((name_a, bytes_a), (name_b, bytes_b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert!(bytes_a == bytes_b, "{name_a} differs between the straight and the resumed run");
    }
    let file = |dir: &Path| std::fs::read(dir.join("alexnet.safetensors")).unwrap();
    assert!(file(&straight) == file(&split), "identical runs write byte-identical checkpoints");

    let lines = |dir: &Path| -> Vec<Vec<f64>> {
        std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(results).collect()
    };
    let (straight_lines, split_lines) = (lines(&straight), lines(&split));
    assert_eq!(straight_lines.len(), 2);
    assert_eq!(split_lines, straight_lines, "the resumed epoch reports what the uninterrupted one did");
}

#[test]
fn impossible_flags_are_rejected_with_one_line() {
    let cases: [(&[&str], &str); 17] = [
        (&["--batch-size", "0"], "--batch-size must be at least 1"),
        (&["--lr", "0"], "--lr must be a positive number"),
        (&["--lr", "NaN"], "--lr must be a positive number"),
        (&["--train-limit", "0"], "--train-limit must be at least 1"),
        (&["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
        (&["--warmup-epochs=-0.5"], "--warmup-epochs must be 0 or more"),
        (&["--nesterov", "--momentum", "0"], "--nesterov needs --optimizer sgd with a --momentum above 0"),
        (&["--schedule", "exponential"], "invalid value 'exponential' for '--schedule"),
        (&["--backend", "tpu"], "invalid value 'tpu' for '--backend"),
        (
            &["--image-size", "40"],
            "image size 40 is too small for AlexNet's three poolings: the minimum is 67",
        ),
        (&["--resume", "--eval-only"], "--resume and --eval-only exclude each other"),
        (&["--model", "mlp"], "invalid value 'mlp' for '--model"),
        (&["--model", "vit", "--image-size", "30"], "--image-size 30 does not fit vit's 4×4 patches"),
        (&["--model", "resnet", "--image-size", "4"], "--image-size 4 is too small for resnet: at least 8"),
        (&["--image-size", "100000"], "the largest size that fits at this batch size is"),
        (&["--threads", "100000"], "--threads 100000 is more than this machine can use: at most"),
        (
            &["--checkpoint", "run/a.safetensors", "--metrics", "run/../run/./a.safetensors"],
            "--metrics and --checkpoint are the same file",
        ),
    ];
    for (args, message) in cases {
        let started = std::time::Instant::now();
        let output = run(args);
        assert_one_line_error(&output, 2, message);
        assert!(started.elapsed().as_secs() < 10, "{args:?} is rejected at once");
    }
}

#[test]
fn resnet_and_vit_train_on_28_pixel_images_with_their_own_recipes() {
    let Some(data) = data_dir() else { return };
    for (model, header, recipe) in [
        ("resnet", "ResNet-18 for 1×28×28", "sgd lr 0.1 onecycle"),
        ("vit", "Vision Transformer for 1×28×28", "adamw lr 0.001 onecycle"),
    ] {
        let dir = temp_dir(model);
        let data = data.display().to_string();
        let flags = [
            "--model",
            model,
            "--backend",
            "cpu",
            "--train-limit",
            "96",
            "--test-limit",
            "64",
            "--epochs",
            "1",
        ];
        let output =
            command(&[&flags[..], &["--data-dir", &data]].concat()).current_dir(&dir).output().unwrap();
        assert!(output.status.success(), "{model}: {}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(header) && stdout.contains(recipe), "{model}: {stdout}");
        assert!(stdout.contains("resized 28→28") && stdout.contains("test accuracy"), "{model}: {stdout}");
        let checkpoint = dir.join(format!("checkpoints/{model}.safetensors"));
        assert_eq!(
            saved_metadata(&checkpoint, "model"),
            model,
            "the default checkpoint is named for the model"
        );
        assert!(dir.join(format!("checkpoints/{model}-best.safetensors")).is_file());
    }
}

#[test]
fn metrics_at_the_checkpoint_path_leave_the_checkpoint_untouched() {
    let dir = temp_dir("same-path");
    let checkpoint = dir.join("alexnet.safetensors");
    std::fs::write(&checkpoint, b"a checkpoint worth keeping").unwrap();
    let path = checkpoint.display().to_string();
    let output = run(&["--backend", "cpu", "--image-size", "67", "--checkpoint", &path, "--metrics", &path]);
    assert_one_line_error(&output, 2, "--metrics and --checkpoint are the same file");
    assert_eq!(std::fs::read(&checkpoint).unwrap(), b"a checkpoint worth keeping");
}

#[test]
fn an_unwritable_checkpoint_path_is_found_before_training() {
    let output = run(&["--backend", "cpu", "--image-size", "67", "--checkpoint", "/proc/kiln/x.safetensors"]);
    assert_one_line_error(&output, 1, "cannot save the checkpoint /proc/kiln/x.safetensors");
    assert!(!stderr(&output).contains("not a valid"), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "nothing runs before the check");

    let output = run(&["--backend", "cpu", "--image-size", "67", "--metrics", "/proc/kiln/metrics.jsonl"]);
    assert_one_line_error(&output, 1, "/proc/kiln");
    assert!(output.stdout.is_empty(), "nothing runs before the check");

    let output = run(&["--backend", "cpu", "--image-size", "67", "--plots", "/proc/kiln/plots"]);
    assert_one_line_error(&output, 1, "cannot create the plots directory /proc/kiln/plots");
    assert!(output.stdout.is_empty(), "nothing runs before the check");
}

#[test]
fn resuming_or_evaluating_a_missing_checkpoint_is_one_line() {
    for flag in ["--resume", "--eval-only"] {
        let output = run(&["--backend", "cpu", flag, "--checkpoint", "/nonexistent/alexnet.safetensors"]);
        assert_one_line_error(
            &output,
            1,
            &format!("{flag} needs the checkpoint /nonexistent/alexnet.safetensors"),
        );
    }
}

#[test]
fn a_missing_gpu_adapter_is_one_line_without_a_doubled_prefix() {
    let output = command(&["--backend", "wgpu", "--image-size", "67"])
        .env("KILN_WGPU_ADAPTER", "no-such-gpu")
        .output()
        .unwrap();
    assert_one_line_error(&output, 1, "KILN_WGPU_ADAPTER=no-such-gpu matches no adapter");
    assert_eq!(stderr(&output).matches("device error").count(), 1, "{}", stderr(&output));
}

/// A Fashion-MNIST directory whose two image files have these header dimensions (and
/// the pixels they claim, when that is small) and whose label files hold `count` labels.
fn crafted_dataset(test: &str, dims: [u32; 3], count: u32) -> ScratchDir {
    let dir = temp_dir(test);
    let mut images = vec![0, 0, 8, 3];
    dims.iter().for_each(|d| images.extend(d.to_be_bytes()));
    let claimed = dims.iter().map(|&d| d as u64).product::<u64>();
    images.extend(std::iter::repeat_n(0u8, claimed.min(1 << 16) as usize));
    let mut labels = vec![0, 0, 8, 1];
    labels.extend(count.to_be_bytes());
    labels.extend(std::iter::repeat_n(1u8, count as usize));
    for split in ["train", "t10k"] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte.gz")), &images).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte.gz")), &labels).unwrap();
    }
    dir
}

#[test]
fn crafted_dataset_headers_are_one_line_errors() {
    let cases = [
        ("overflow", [4, 1 << 31, 1 << 31], 4, "more data than memory can address"),
        ("zero-pixels", [60000, 0, 0], 60000, "images are 0×0, expected 28×28"),
        ("empty", [0, 28, 28], 0, "holds no images"),
    ];
    for (test, dims, count, message) in cases {
        let data = crafted_dataset(test, dims, count);
        let output =
            run(&["--backend", "cpu", "--image-size", "67", "--data-dir", &data.display().to_string()]);
        assert_one_line_error(&output, 1, message);
        assert!(
            stderr(&output).contains("train-images-idx3-ubyte.gz"),
            "names the file: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_data_directory_is_one_clear_error() {
    let output = run(&["--backend", "cpu", "--image-size", "67", "--data-dir", "/nonexistent/fashion"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("/nonexistent/fashion") && err.contains("--data-dir lacks"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Flags of a small plain-SGD CPU run on `data` checkpointing to `dir`; `extra` flags
/// replace the value of a flag already given, or are added.
fn plain_sgd_run(data: &Path, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--backend",
        "cpu",
        "--image-size",
        "67",
        "--batch-size",
        "32",
        "--train-limit",
        "512",
        "--test-limit",
        "50",
        "--epochs",
        "1",
        "--momentum",
        "0",
        "--schedule",
        "constant",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--data-dir".into(), data.display().to_string()]);
    args.extend(["--checkpoint".into(), dir.join("alexnet.safetensors").display().to_string()]);
    let mut rest = extra.iter().peekable();
    while let Some(flag) = rest.next() {
        let value = rest.next_if(|v| !v.starts_with("--"));
        match (args.iter().position(|a| a == flag), value) {
            (Some(at), Some(value)) => args[at + 1] = value.to_string(),
            (_, value) => args.extend(std::iter::once(flag).chain(value).map(|s| s.to_string())),
        }
    }
    args
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("nan");
    let output = run_strings(&plain_sgd_run(&data, &dir, &["--lr", "10", "--checkpoint-every", "1"]));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("the loss became") && err.contains("is intact"), "{err}");
    assert!(!tensors(&dir.join("alexnet.safetensors")).is_empty(), "the last good checkpoint loads");
}

/// The training step a checkpoint was saved at, from its metadata.
fn saved_step(path: &Path) -> String {
    saved_metadata(path, "step")
}

#[test]
fn parameters_that_become_nan_are_never_saved() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("nan-weights");
    let output = run_strings(&plain_sgd_run(&data, &dir, &["--lr", "0.01", "--max-steps", "2"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let checkpoint = dir.join("alexnet.safetensors");
    let good = std::fs::read(&checkpoint).unwrap();
    assert_eq!(saved_step(&checkpoint), "2");

    // One update at this rate overflows the weights while the loss before it is finite.
    let output = run_strings(&plain_sgd_run(
        &data,
        &dir,
        &["--lr", "3e38", "--weight-decay", "100", "--checkpoint-every", "1", "--resume"],
    ));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("the loss became") && err.contains("at step 4"), "{err}");
    assert!(err.contains("the last good checkpoint") && err.contains("(step 2), is intact"), "{err}");
    assert!(std::fs::read(&checkpoint).unwrap() == good, "the file on disk is the last finite state");
    for (name, bytes) in tensors(&checkpoint) {
        let finite = bytes.chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
        assert!(finite, "{name} is finite");
    }
}

#[test]
fn the_notebook_recipe_trains_in_draws_and_scores_5000_random_test_images() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("notebook");
    let metrics = dir.join("metrics.jsonl");
    let flags = [
        "--recipe",
        "notebook",
        "--backend",
        "cpu",
        "--image-size",
        "67",
        "--train-limit",
        "300",
        "--epochs",
        "1",
    ];
    let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    for (flag, path) in
        [("--data-dir", data.clone()), ("--checkpoint", dir.join("nb.safetensors")), ("--metrics", metrics)]
    {
        args.extend([flag.to_string(), path.display().to_string()]);
    }
    let output = run_strings(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let header =
        "recipe notebook: 1 epoch, batch 32 (draws of 128 with replacement), sgd lr 0.01 constant schedule";
    assert!(stdout.contains(header), "{stdout}");
    assert!(stdout.contains(
        "momentum 0, weight decay 0, sigmoid with keras' cross-entropy, augment none, glorot init"
    ));
    // 300 images make 2 draws of 128: 256 images in 8 steps of 32.
    assert_eq!(saved_step(&dir.join("nb.safetensors")), "8");
    assert!(stdout.contains("training time") && stdout.contains("256 images,"), "{stdout}");
    assert!(stdout.contains("on 5000 images"), "scored on the notebook's 5,000 random test images: {stdout}");
    let line = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let loss = field(&line, "test_loss");
    assert!(loss > 0.5 && loss < 20.0, "Keras' loss of sigmoid outputs: {loss}");
}

/// Waits until `path` exists (a checkpoint the running binary saves).
fn wait_for(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn sigterm_saves_a_checkpoint_as_ctrl_c_does_and_exits_with_143() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("sigterm");
    let checkpoint = dir.join("alexnet.safetensors");
    let args = plain_sgd_run(&data, &dir, &["--checkpoint-every", "1", "--threads", "1"]);
    let child = command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&checkpoint);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(143), "128 + SIGTERM: {err}");
    assert!(
        err.contains("interrupted: checkpoint saved to") && err.contains("continue with --resume"),
        "{err}"
    );
    let step = saved_step(&checkpoint);
    assert!(err.contains(&format!("(step {step})")), "the message names the saved step {step}: {err}");

    let mut resume = args.clone();
    resume.push("--resume".into());
    let output = run_strings(&resume);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&format!("(step {step})")));
}

/// The path in `the last good checkpoint, PATH (step N), is intact`.
fn good_checkpoint_named_in(err: &str) -> std::path::PathBuf {
    let start =
        err.find("the last good checkpoint, ").unwrap_or_else(|| panic!("no good checkpoint named: {err}"));
    let rest = &err[start + "the last good checkpoint, ".len()..];
    std::path::PathBuf::from(&rest[..rest.find(" (step ").unwrap()])
}

/// The test loss an `--eval-only` report prints: `(loss X)`.
fn reported_test_loss(stdout: &str) -> f64 {
    let start = stdout.find("(loss ").unwrap_or_else(|| panic!("no test loss in {stdout}")) + "(loss ".len();
    let text = &stdout[start..start + stdout[start..].find(')').unwrap()];
    text.parse().unwrap_or_else(|_| panic!("test loss `{text}`"))
}

#[test]
fn the_checkpoint_called_good_after_a_divergence_evaluates_finite_and_trains_on() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("good-after-divergence");
    let small = ["--train-limit", "256", "--lr", "0.01"];
    let output = run_strings(&plain_sgd_run(&data, &dir, &small));
    assert!(output.status.success(), "{}", stderr(&output));

    // An absurd rate: the first update leaves weights that are finite but broken, and
    // a later step's loss is NaN.
    let diverge =
        ["--train-limit", "256", "--epochs", "2", "--lr", "1e6", "--checkpoint-every", "1", "--resume"];
    let output = run_strings(&plain_sgd_run(&data, &dir, &diverge));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let good = good_checkpoint_named_in(&stderr(&output));

    let good_path = good.display().to_string();
    let output = run_strings(&plain_sgd_run(
        &data,
        &dir,
        &["--train-limit", "256", "--checkpoint", &good_path, "--eval-only"],
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let loss = reported_test_loss(&String::from_utf8_lossy(&output.stdout));
    assert!(loss.is_finite() && loss < 10.0, "the good checkpoint's test loss is {loss}");

    let calm =
        ["--train-limit", "256", "--epochs", "2", "--lr", "0.001", "--checkpoint", &good_path, "--resume"];
    let output = run_strings(&plain_sgd_run(&data, &dir, &calm));
    assert!(
        output.status.success(),
        "resuming the good checkpoint with a lower rate trains on: {}",
        stderr(&output)
    );
}

#[test]
fn an_output_path_that_is_a_directory_is_refused_before_training() {
    let dir = temp_dir("directory-outputs");
    let taken = dir.join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    let checkpoint = dir.join("alexnet.safetensors").display().to_string();
    let base = ["--backend", "cpu", "--image-size", "67"];
    let cases: [(Vec<String>, &Path); 4] = [
        (vec!["--checkpoint".into(), taken.display().to_string()], &taken),
        (
            vec!["--checkpoint".into(), dir.join("run.safetensors").display().to_string()],
            &dir.join("run-best.safetensors"),
        ),
        (
            vec!["--checkpoint".into(), checkpoint.clone(), "--metrics".into(), taken.display().to_string()],
            &taken,
        ),
        (
            vec!["--checkpoint".into(), checkpoint.clone(), "--plots".into(), dir.display().to_string()],
            &dir.join("training.png"),
        ),
    ];
    for (flags, directory) in &cases {
        std::fs::create_dir_all(directory).unwrap();
        let mut args: Vec<&str> = base.to_vec();
        args.extend(flags.iter().map(String::as_str));
        let started = std::time::Instant::now();
        let output = run(&args);
        let err = stderr(&output);
        assert_one_line_error(&output, 1, &directory.display().to_string());
        assert!(err.contains("directory"), "{flags:?}: {err}");
        assert!(output.stdout.is_empty(), "{flags:?}: nothing runs before the check");
        assert!(started.elapsed().as_secs() < 10, "{flags:?} is refused at once");
    }
}

/// Sends SIGINT to process `pid`.
fn interrupt(pid: u32) {
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_during_evaluation_stops_promptly_and_resume_finishes_the_epoch() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("ctrl-c-eval");
    let checkpoint = dir.join("alexnet.safetensors");
    let metrics = dir.join("metrics.jsonl");
    let metrics_path = metrics.display().to_string();
    let args = plain_sgd_run(
        &data,
        &dir,
        &["--batch-size", "128", "--train-limit", "256", "--test-limit", "10000", "--checkpoint-every", "1"],
    );
    let mut args = args;
    args.extend(["--threads".to_string(), "1".to_string(), "--metrics".to_string(), metrics_path]);
    let child = command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first step's checkpoint is written once the second step's loss shows its
    // model finite; the second step's update and evaluation of 10,000 images follow.
    wait_for(&checkpoint);
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupt(child.id());
    let signalled = std::time::Instant::now();
    let output = child.wait_with_output().unwrap();
    let waited = signalled.elapsed();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted during evaluation"), "{}", stderr(&output));
    assert!(waited.as_secs_f64() < 3.0, "exited {waited:?} after Ctrl-C");

    let mut resume = args.clone();
    resume.push("--resume".into());
    let output = run_strings(&resume);
    assert!(output.status.success(), "{}", stderr(&output));
    let line = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(field(&line, "train_loss") > 0.0 && field(&line, "test_accuracy") > 0.0, "{line}");
}

#[test]
fn an_auto_run_prints_no_driver_noise() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("auto-quiet");
    let mut args =
        plain_sgd_run(&data, &dir, &["--train-limit", "8", "--test-limit", "8", "--batch-size", "8"]);
    args[1] = "auto".into();
    let output = run_strings(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "driver noise on stderr: {err}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("recipe kiln: 1 epoch,"), "singular epoch");
}

/// Whether a GPU adapter exists; without one the wgpu test skips, unless it runs under
/// CI or with `KILN_REQUIRE_GPU` set, which makes it a failure.
fn gpu_available() -> bool {
    let required = std::env::var_os("KILN_REQUIRE_GPU").is_some() || std::env::var_os("CI").is_some();
    match kiln_wgpu::shared() {
        Ok(_) => true,
        Err(err) if required => panic!("a GPU adapter is required (CI or KILN_REQUIRE_GPU): {err}"),
        Err(err) => {
            eprintln!("skipping wgpu test: {err}");
            false
        }
    }
}

/// The same tiny run (same seed, so the same weights, batches and dropout masks) on
/// both backends must produce the same metrics. Software Vulkan runs AlexNet at about
/// 0.4 images/s on this machine, far too slow to train it to a good accuracy in CI, so
/// this checks that the GPU run *is* the CPU run, whose learning the test above checks.
#[test]
fn the_wgpu_backend_follows_the_cpu_run() {
    let Some(data) = data_dir() else { return };
    if !gpu_available() {
        return;
    }
    let tiny = ["--train-limit", "16", "--test-limit", "16", "--epochs", "1"];
    let metrics_of = |backend: &str| {
        let dir = temp_dir(&format!("follow-{backend}"));
        let metrics = dir.join("metrics.jsonl");
        let mut args = small_run(&data, &dir, &tiny);
        let at = args.iter().position(|a| a == "cpu").unwrap();
        args[at] = backend.to_string();
        let batch = args.iter().position(|a| a == "--batch-size").unwrap() + 1;
        args[batch] = "8".to_string();
        args.extend(["--metrics".to_string(), metrics.display().to_string()]);
        let output = run_strings(&args);
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        if backend == "wgpu" {
            assert!(String::from_utf8_lossy(&output.stdout).contains("device: wgpu:"), "the GPU is named");
        }
        std::fs::read_to_string(&metrics).unwrap()
    };
    let (cpu, gpu) = (metrics_of("cpu"), metrics_of("wgpu"));
    for key in ["train_loss", "test_loss"] {
        let (c, g) = (field(&cpu, key), field(&gpu, key));
        assert!(((g - c) / c).abs() < 1e-3, "{key}: wgpu {g} vs cpu {c}");
    }
    for key in ["train_accuracy", "test_accuracy"] {
        let (c, g) = (field(&cpu, key), field(&gpu, key));
        assert!((g - c).abs() <= 1.0 / 16.0 + 1e-9, "{key}: wgpu {g} vs cpu {c}");
    }
}
