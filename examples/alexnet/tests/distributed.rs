//! `--distributed`: data-parallel training under `mpirun` against one process.
//!
//! With the `mpi` feature (the README's test command enables it; CI installs Open MPI),
//! two processes with a global batch of 64 must compute what one process with batch
//! 64 computes, up to float summation order; a distributed run must resume; and
//! impossible settings are one-line errors. A missing `mpirun` fails these tests, it
//! never skips them. Without the feature, `--distributed` must say how to get it.

mod common;

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::path::Path;
    use std::process::{Command, Output};

    use crate::common::{BINARY, data_dir, field, temp_dir, tensors};

    /// The test configuration: 67×67, 1,024 training images, 2 epochs, global batch 64,
    /// one thread per process. Glorot init, standardized pixels and a constant lr 0.01
    /// keep the first steps calm: with the default recipe (He init on [0, 1] pixels, lr
    /// up to 0.05) ReLU units whose input is an all-black patch sit exactly at their
    /// zero bias, and rounding-level differences flip them, so even one process on 1
    /// and on 2 threads ends 1% apart in test accuracy. Here 1 and 2 threads agree to
    /// 1e-5 in every loss and exactly in accuracy.
    fn settings(data: &Path, dir: &Path) -> Vec<String> {
        settings_with(data, dir, 64, 1)
    }

    /// [`settings`] with another global batch size and threads per process.
    fn settings_with(data: &Path, dir: &Path, batch: usize, threads: usize) -> Vec<String> {
        let flags = "--backend cpu --image-size 67 --train-limit 1024 --test-limit 512 --epochs 2 \
                     --lr 0.01 --schedule constant --init glorot --normalize --label-smoothing 0 --augment none";
        let mut args: Vec<String> = flags.split_whitespace().map(String::from).collect();
        args.extend(["--batch-size".into(), batch.to_string(), "--threads".into(), threads.to_string()]);
        args.extend(["--data-dir".into(), data.display().to_string()]);
        args.extend(["--checkpoint".into(), dir.join("alexnet.safetensors").display().to_string()]);
        args.extend(["--metrics".into(), dir.join("metrics.jsonl").display().to_string()]);
        args
    }

    fn one_process(args: &[String]) -> Output {
        Command::new(BINARY).args(args).output().expect("the binary runs")
    }

    /// `mpirun` starting `processes` copies of the binary with `--distributed`.
    fn mpirun_command(processes: usize) -> Command {
        let mut command = Command::new("mpirun");
        // Containers often forbid the cross-memory attach Open MPI's shared-memory
        // transport tries first; copying through the shared segment always works.
        command.env("OMPI_MCA_btl_vader_single_copy_mechanism", "none").args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            &processes.to_string(),
            BINARY,
            "--distributed",
        ]);
        command
    }

    const NO_MPIRUN: &str =
        "mpirun must be installed for the distributed tests (apt-get install openmpi-bin)";

    fn mpirun(processes: usize, args: &[String]) -> Output {
        mpirun_command(processes).args(args).output().expect(NO_MPIRUN)
    }

    fn succeeded(what: &str, output: &Output) {
        assert!(
            output.status.success(),
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The fields of a metrics line the distributed tests compare, in order.
    const EPOCH_KEYS: [&str; 6] =
        ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"];

    /// The timing-free fields of every epoch's metrics line.
    fn epochs(dir: &Path) -> Vec<Vec<f64>> {
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        text.lines().map(|line| EPOCH_KEYS.iter().map(|k| field(line, k)).collect()).collect()
    }

    /// A checkpoint's model parameters (optimizer state left out) as f32 by name.
    fn parameters(dir: &Path) -> Vec<(String, Vec<f32>)> {
        tensors(&dir.join("alexnet.safetensors"))
            .into_iter()
            .filter(|(name, _)| !name.starts_with("optimizer."))
            .map(|(name, bytes)| {
                let values =
                    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                (name, values)
            })
            .collect()
    }

    #[test]
    fn a_resnet_with_batch_norm_trains_data_parallel() {
        let Some(data) = data_dir() else { return };
        let dir = temp_dir("dist-resnet");
        let flags = "--model resnet --backend cpu --threads 1 --train-limit 128 --test-limit 64 --epochs 1 --batch-size 32";
        let mut args: Vec<String> = flags.split_whitespace().map(String::from).collect();
        args.extend(["--data-dir".into(), data.display().to_string()]);
        args.extend(["--checkpoint".into(), dir.join("resnet.safetensors").display().to_string()]);
        let output = mpirun(2, &args);
        succeeded("mpirun -n 2 --model resnet", &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("each 16 of every batch of 32") && stdout.contains("epoch 1/1"), "{stdout}");
        let names: Vec<String> =
            tensors(&dir.join("resnet.safetensors")).into_iter().map(|(n, _)| n).collect();
        assert!(
            names.iter().any(|n| n == "layer1.0.bn1.running_mean"),
            "rank 0's statistics are saved: {names:?}"
        );
        // Both processes evaluate with rank 0's statistics: the loss rank 0's model
        // gives alone on the same images.
        let loss = |text: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with("test accuracy ")).unwrap();
            line.rsplit("(loss ").next().unwrap().trim_end_matches(')').parse().unwrap()
        };
        let mut alone: Vec<String> =
            ["--model", "resnet", "--backend", "cpu", "--eval-only", "--test-limit", "64"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        alone.extend(["--data-dir".into(), data.display().to_string()]);
        alone.extend(["--checkpoint".into(), dir.join("resnet.safetensors").display().to_string()]);
        let output = one_process(&alone);
        succeeded("--eval-only of rank 0's checkpoint", &output);
        let (together, rank0) = (loss(&stdout), loss(&String::from_utf8_lossy(&output.stdout)));
        assert!((together - rank0).abs() <= 1e-4 * rank0, "{together} against {rank0}");
    }

    #[test]
    fn two_processes_compute_what_one_process_computes() {
        let Some(data) = data_dir() else { return };
        let (single, double) = (temp_dir("dist-single"), temp_dir("dist-double"));
        let other_threads = temp_dir("dist-two-threads");
        succeeded("one process", &one_process(&settings(&data, &single)));
        succeeded("one process on 2 threads", &one_process(&settings_with(&data, &other_threads, 64, 2)));
        let output = mpirun(2, &settings(&data, &double));
        succeeded("two processes", &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(stdout.matches("per class:").count(), 1, "only rank 0 reports:\n{stdout}");
        assert!(stdout.contains("2 processes, each 32 of every batch of 64"), "{stdout}");

        // Losses agree to 1e-3; an accuracy is a count of images, and the rounding
        // that moves parameters apart (below) can flip one borderline image's class,
        // so accuracies may differ by up to 3 of the 1,024 training or 512 test images.
        let (want, got) = (epochs(&single), epochs(&double));
        assert_eq!(want.len(), 2);
        for (w, g) in want.iter().zip(&got) {
            for (key, (a, b)) in EPOCH_KEYS.iter().zip(w.iter().zip(g)) {
                let tolerance = if key.ends_with("accuracy") { 3.0 / 512.0 } else { 1e-3 * a.abs() };
                assert!(
                    (a - b).abs() <= tolerance,
                    "epoch metrics differ in {key}: one process {w:?}, two {g:?}"
                );
            }
        }
        // Parameters: float summation order differs (shards of 32 summed across the
        // processes against one sum over 64), and 32 steps of SGD amplify rounding:
        // small sums of many cancelling terms, such as the biases' gradients, end a
        // few percent apart. The yardstick is what changing the thread count of one
        // process does, which changes only the summation order too: two processes
        // must stay within 3 times that of the one-process run.
        let (want, got, yardstick) = (parameters(&single), parameters(&double), parameters(&other_threads));
        assert_eq!(want.len(), 16);
        let distance =
            |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt();
        for (((name, w), (_, g)), (_, t)) in want.iter().zip(&got).zip(&yardstick) {
            let (apart, natural) = (distance(w, g), distance(w, t));
            assert!(
                apart <= 3.0 * natural + 1e-7,
                "{name}: two processes {apart} from one, 2 threads {natural}"
            );
        }
    }

    #[test]
    fn a_distributed_run_resumes_to_the_uninterrupted_result() {
        let Some(data) = data_dir() else { return };
        let (whole, split) = (temp_dir("dist-whole"), temp_dir("dist-split"));
        succeeded("the uninterrupted run", &mpirun(2, &settings(&data, &whole)));
        let mut paused = settings(&data, &split);
        paused.extend(["--max-steps".into(), "20".into()]);
        let output = mpirun(2, &paused);
        succeeded("the first part", &output);
        assert!(String::from_utf8_lossy(&output.stderr).contains("continue with --resume"));
        let mut resumed = settings(&data, &split);
        resumed.push("--resume".into());
        succeeded("the resumed part", &mpirun(2, &resumed));
        assert_eq!(
            parameters(&split),
            parameters(&whole),
            "resumed and uninterrupted runs end bit-identical"
        );
        assert_eq!(epochs(&split), epochs(&whole));
    }

    /// Two processes training with a checkpoint every step, their stderr piped, once
    /// the first checkpoint exists (so they are inside the training loop).
    fn launch_checkpointing_every_step(data: &Path, dir: &Path) -> std::process::Child {
        let mut args = settings(data, dir);
        args.extend(["--checkpoint-every".into(), "1".into()]);
        let child = mpirun_command(2)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect(NO_MPIRUN);
        let checkpoint = dir.join("alexnet.safetensors");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !checkpoint.exists() {
            assert!(std::time::Instant::now() < deadline, "the first checkpoint never appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    #[test]
    fn sigusr1_to_mpirun_pauses_every_process_with_a_checkpoint() {
        let Some(data) = data_dir() else { return };
        let dir = temp_dir("dist-pause");
        let child = launch_checkpointing_every_step(&data, &dir);
        let status = Command::new("kill").args(["-USR1", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(stderr.matches("continue with --resume").count(), 1, "rank 0 alone says so: {stderr}");
        assert!(stderr.contains("interrupted: checkpoint saved"), "{stderr}");
    }

    /// The processes whose parent is `parent` (the ranks `mpirun` started).
    fn children(parent: u32) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after the `)`.
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
            if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
                found.push(entry.file_name().to_string_lossy().parse().unwrap());
            }
        }
        found
    }

    #[test]
    fn sigterm_to_every_process_stops_them_at_one_step_and_rank_0_saves() {
        let Some(data) = data_dir() else { return };
        let dir = temp_dir("dist-sigterm");
        let child = launch_checkpointing_every_step(&data, &dir);
        let checkpoint = dir.join("alexnet.safetensors");
        // What a scheduler does (Slurm signals every task): each process gets SIGTERM.
        let ranks = children(child.id());
        assert_eq!(ranks.len(), 2, "mpirun started 2 processes: {ranks:?}");
        for rank in ranks {
            let status = Command::new("kill").args(["-TERM", &rank.to_string()]).status().unwrap();
            assert!(status.success());
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(143), "{stderr}");
        assert_eq!(stderr.matches("continue with --resume").count(), 1, "rank 0 alone says so: {stderr}");
        assert!(stderr.contains("interrupted: checkpoint saved"), "{stderr}");
        assert!(!stderr.contains("MPI_ABORT"), "the processes stopped together: {stderr}");
        let step = crate::common::saved_metadata(&checkpoint, "step");
        assert!(stderr.contains(&format!("(step {step})")), "{stderr}");
        let mut resumed = settings(&data, &dir);
        resumed.push("--resume".into());
        succeeded("resuming after SIGTERM", &mpirun(2, &resumed));
    }

    #[test]
    fn a_diverging_distributed_run_stops_every_process_with_one_message() {
        let Some(data) = data_dir() else { return };
        let dir = temp_dir("dist-nan");
        let mut args = settings(&data, &dir);
        let lr = args.iter().position(|a| a == "--lr").unwrap();
        args[lr + 1] = "10000".into();
        let output = mpirun(2, &args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(ours.len(), 1, "rank 0 alone reports it: {stderr}");
        assert!(ours[0].contains("the loss became") && ours[0].contains("Try a lower --lr"), "{stderr}");
        assert!(!stderr.contains("MPI_ABORT"), "a shared stop ends cleanly, without aborting: {stderr}");
    }

    /// The lines of `output`'s stderr that start with `error`, and the whole stderr.
    fn error_lines(output: &Output) -> (Vec<String>, String) {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (stderr.lines().filter(|l| l.starts_with("error")).map(String::from).collect(), stderr)
    }

    #[test]
    fn impossible_distributed_settings_are_one_line_errors() {
        let Some(data) = data_dir() else { return };
        let dir = temp_dir("dist-errors");
        // Every process finds this error; which exits first is up to the scheduler, so
        // the run is repeated: rank 0 alone must report it, whole, every time.
        for attempt in 1..=20 {
            let output = mpirun(2, &settings_with(&data, &dir, 63, 1));
            assert_eq!(output.status.code(), Some(2), "attempt {attempt}");
            let (ours, stderr) = error_lines(&output);
            assert_eq!(
                ours,
                ["error: the batch size 63 does not divide evenly over 2 processes; use a multiple of 2"],
                "attempt {attempt}: {stderr}"
            );
        }

        // An error only rank 0 can see (its output path is a directory) ends every
        // process alike, reported once, without aborting.
        let taken = dir.join("taken");
        std::fs::create_dir_all(&taken).unwrap();
        let mut args = settings(&data, &dir);
        let at = args.iter().position(|a| a == "--checkpoint").unwrap();
        args[at + 1] = taken.display().to_string();
        let output = mpirun(2, &args);
        assert!(!output.status.success());
        let (ours, stderr) = error_lines(&output);
        assert_eq!(ours.len(), 1, "{stderr}");
        assert!(
            ours[0].starts_with("error: cannot save the checkpoint") && ours[0].contains("is a directory"),
            "{stderr}"
        );
        assert!(!stderr.contains("MPI_ABORT"), "{stderr}");

        let alone = Command::new(BINARY).arg("--distributed").output().unwrap();
        assert_eq!(alone.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&alone.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("needs an MPI launcher") && stderr.contains("mpirun -n N"), "{stderr}");
    }
}

#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_the_mpi_feature_says_how_to_get_it() {
    use std::process::Command;
    let output = Command::new(common::BINARY).arg("--distributed").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--features mpi"), "{stderr}");
}
