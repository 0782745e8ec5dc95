//! The GEMM autotuner. On the first use of a (pass, shape class) on an adapter it
//! times every candidate tile shape the adapter's limits allow (by GPU timestamps where
//! the adapter has them, else by the wall clock), keeps the fastest, and remembers it in a cache file keyed by adapter, driver and Kiln version,
//! so later runs start tuned. Tile shapes without split-K give the same bits; split-K
//! rounds differently but the same way every run, so a cached choice repeats a run
//! exactly.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kiln_tensor::Result;

use crate::gemm_tiles::{GemmPass, GemmTile, Lanes};

/// How GEMM tile shapes are picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Autotune {
    /// The fixed defaults (64×64 tiles; 16×64 for products of at most 32 rows);
    /// `KILN_AUTOTUNE=off`.
    Off,
    /// Tune on first use of each pass and shape class; remember the choices in `cache`
    /// (a file) when given.
    On {
        /// The cache file.
        cache: Option<PathBuf>,
    },
    /// One tile shape for every product the adapter's limits allow it for (to test
    /// each candidate); the fixed default for the others.
    Fixed(GemmTile),
}

impl Autotune {
    /// From `KILN_AUTOTUNE` (`off` or `on`); unset, tuning is on for hardware adapters
    /// and off for software ones (lavapipe, WARP: CPU timings say nothing about GPUs,
    /// and tuning would slow every test). The cache file is
    /// `$XDG_CACHE_HOME/kiln/wgpu-autotune.tsv`, else `~/.cache/kiln/wgpu-autotune.tsv`.
    pub fn from_env(software_adapter: bool) -> Autotune {
        let on = match std::env::var("KILN_AUTOTUNE").map(|v| v.to_lowercase()) {
            Ok(v) if v == "off" || v == "0" => false,
            Ok(v) if v == "on" || v == "1" => true,
            _ => !software_adapter,
        };
        if !on {
            return Autotune::Off;
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
        Autotune::On { cache: base.map(|dir| dir.join("kiln").join("wgpu-autotune.tsv")) }
    }
}

/// How the tuner times a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamps around each dispatch: the kernels' own time.
    GpuTimestamps,
    /// The wall clock around waits for the GPU: includes submission and waiting.
    WallClock,
}

impl Clock {
    /// The name in listings (`kiln-bench`'s JSON).
    pub fn name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "gpu timestamps",
            Clock::WallClock => "wall clock",
        }
    }
}

/// A pass and its `[m, n, k]` rounded up to powers of two: products of one class share
/// their tuned tile.
type ShapeClass = (GemmPass, [u32; 3]);

fn shape_class(pass: GemmPass, [m, n, k]: [usize; 3]) -> ShapeClass {
    let up = |v: usize| v.max(1).next_power_of_two() as u32;
    (pass, [up(m), up(n), up(k)])
}

/// Timed runs of each candidate after its warm-up run.
const TIMED_RUNS: u32 = 3;

/// What the adapter allows a tile shape: workgroup memory, and the largest storage
/// binding (split-K's partial sums of a product are one binding).
#[derive(Clone, Copy, Debug)]
pub struct TileLimits {
    /// `max_compute_workgroup_storage_size`.
    pub workgroup_bytes: u32,
    /// The largest storage binding (`AdapterSummary::max_binding_bytes`).
    pub binding_bytes: u64,
}

impl TileLimits {
    /// Whether `tile` can run an `m × n` product on the adapter.
    fn allow(self, tile: GemmTile, [m, n, _]: [usize; 3]) -> bool {
        let partial_bytes = if tile.splits > 1 { (tile.splits as usize * m * n * 4) as u64 } else { 0 };
        tile.workgroup_bytes() <= self.workgroup_bytes && partial_bytes <= self.binding_bytes
    }
}

/// The tuner of one device.
pub struct Tuner {
    mode: Autotune,
    /// Adapter name, driver and Kiln version: the cache key.
    adapter: String,
    limits: TileLimits,
    clock: Clock,
    choices: Mutex<HashMap<ShapeClass, GemmTile>>,
    announced: AtomicBool,
    tuned: AtomicU64,
}

impl Tuner {
    /// A tuner for the adapter `adapter` (name, driver, version) with `limits`, timing
    /// by `clock`, loading the cache's choices for that adapter.
    pub fn new(mode: Autotune, adapter: String, limits: TileLimits, clock: Clock) -> Self {
        let choices = match &mode {
            Autotune::On { cache: Some(path) } => load_cache(path, &adapter),
            _ => HashMap::new(),
        };
        Tuner {
            mode,
            adapter,
            limits,
            clock,
            choices: Mutex::new(choices),
            announced: AtomicBool::new(false),
            tuned: AtomicU64::new(0),
        }
    }

    /// How candidates are timed.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Shape classes tuned by this process (not loaded from the cache).
    pub fn tuned(&self) -> u64 {
        self.tuned.load(Ordering::Relaxed)
    }

    /// The choices so far, as `pass m×n×k → rows×cols` lines (shape classes).
    pub fn choices(&self) -> Vec<String> {
        let choices = self.choices.lock().expect("tuner lock");
        let mut lines: Vec<String> = choices
            .iter()
            .map(|((pass, [m, n, k]), t)| {
                let split = if t.splits > 1 { format!(", split-K {}", t.splits) } else { String::new() };
                let tall = if t.lanes == Lanes::Tall { " tall" } else { "" };
                let double = if t.buffers == 2 { ", double-buffered" } else { "" };
                format!("{} {m}×{n}×{k} → {}×{}{tall}{split}{double}", pass.name(), t.rows, t.cols)
            })
            .collect();
        lines.sort();
        lines
    }

    /// Records a pass of shape `dims` (`[m, n, k]`) through `run`, which records it
    /// with the tile shape it is given; `fixed` is the shape when nothing is tuned. On
    /// the first use of its shape class with tuning on, `run` is called for every
    /// candidate and timed with `time` (which measures the GPU work of what it runs,
    /// without taking the errors wgpu reported); the last run's output stands, as every
    /// shape computes the same product.
    pub fn record(
        &self,
        pass: GemmPass,
        dims: [usize; 3],
        fixed: GemmTile,
        mut run: impl FnMut(GemmTile),
        time: impl Fn(&mut dyn FnMut()) -> Result<Duration>,
    ) {
        let cache = match &self.mode {
            Autotune::Off => return run(fixed),
            Autotune::Fixed(tile) => return run(if self.limits.allow(*tile, dims) { *tile } else { fixed }),
            Autotune::On { cache } => cache,
        };
        let class = shape_class(pass, dims);
        let known = self.choices.lock().expect("tuner lock").get(&class).copied();
        if let Some(tile) = known {
            return run(tile);
        }
        self.announce(cache.as_deref());
        let Some(best) = self.time_candidates(dims, &mut run, &time) else {
            return run(fixed);
        };
        self.tuned.fetch_add(1, Ordering::Relaxed);
        self.choices.lock().expect("tuner lock").insert(class, best);
        if let Some(path) = cache {
            // The cache only saves tuning time: a run that cannot write it tunes again
            // next time and computes the same results.
            let _ = append_cache(path, &self.adapter, class, best);
        }
    }

    /// The fastest candidate, or `None` when waiting for the GPU failed.
    fn time_candidates(
        &self,
        dims: [usize; 3],
        run: &mut impl FnMut(GemmTile),
        time: &impl Fn(&mut dyn FnMut()) -> Result<Duration>,
    ) -> Option<GemmTile> {
        let mut best: Option<(Duration, GemmTile)> = None;
        for tile in GemmTile::CANDIDATES.into_iter().filter(|&t| self.limits.allow(t, dims)) {
            // The warm-up run compiles the pipeline.
            time(&mut || run(tile)).ok()?;
            let took = time(&mut || {
                for _ in 0..TIMED_RUNS {
                    run(tile);
                }
            })
            .ok()?;
            if best.is_none_or(|(fastest, _)| took < fastest) {
                best = Some((took, tile));
            }
        }
        best.map(|(_, tile)| tile)
    }

    fn announce(&self, cache: Option<&Path>) {
        if !self.announced.swap(true, Ordering::Relaxed) {
            let remembered = cache.map(|p| format!("; remembered in {}", p.display())).unwrap_or_default();
            eprintln!(
                "kiln-wgpu: tuning GEMM tile shapes on {} by {} (first use of each shape, a few seconds{remembered})",
                self.adapter,
                self.clock.name()
            );
        }
    }
}

fn load_cache(path: &Path, adapter: &str) -> HashMap<ShapeClass, GemmTile> {
    let Ok(text) = std::fs::read_to_string(path) else { return HashMap::new() };
    text.lines().filter_map(|line| parse_line(line, adapter)).collect()
}

/// One cache line: adapter, pass, m, n, k, lanes, rows, cols, splits, buffers,
/// tab-separated.
fn parse_line(line: &str, adapter: &str) -> Option<(ShapeClass, GemmTile)> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [key, pass, m, n, k, lanes, rows, cols, splits, buffers] = fields[..] else { return None };
    if key != adapter {
        return None;
    }
    let pass = GemmPass::ALL.into_iter().find(|p| p.name() == pass)?;
    let number = |v: &str| v.parse::<u32>().ok();
    let lanes = [Lanes::Square, Lanes::Tall].into_iter().find(|l| l.name() == lanes)?;
    let tile = GemmTile {
        lanes,
        rows: number(rows)?,
        cols: number(cols)?,
        splits: number(splits)?,
        buffers: number(buffers)?,
    };
    GemmTile::CANDIDATES.contains(&tile).then_some(((pass, [number(m)?, number(n)?, number(k)?]), tile))
}

fn append_cache(
    path: &Path,
    adapter: &str,
    (pass, [m, n, k]): ShapeClass,
    tile: GemmTile,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let GemmTile { lanes, rows, cols, splits, buffers } = tile;
    let lanes = lanes.name();
    writeln!(file, "{adapter}\t{}\t{m}\t{n}\t{k}\t{lanes}\t{rows}\t{cols}\t{splits}\t{buffers}", pass.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_tried_only_where_the_adapter_allows_it() {
        let limits = TileLimits { workgroup_bytes: 16_384, binding_bytes: 1 << 20 };
        let split = GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 16, buffers: 1 };
        assert!(limits.allow(split, [64, 64, 100_000]), "16 × 64 × 64 partial sums fit in 1 MiB");
        assert!(!limits.allow(split, [512, 512, 100_000]), "16 MiB of partial sums do not");
        assert!(limits.allow(GemmTile::DEFAULT, [4096, 4096, 4096]), "no split, no partial buffer");
        let small = TileLimits { workgroup_bytes: 8_192, ..limits };
        assert!(
            !small.allow(
                GemmTile { lanes: Lanes::Square, rows: 8, cols: 8, splits: 1, buffers: 1 },
                [64, 64, 64]
            ),
            "16 KiB of tiles"
        );
    }

    #[test]
    fn cache_lines_round_trip_and_other_adapters_are_ignored() {
        let line = "gpu A | drv | kiln 0.1.0\tconv_weight_grad\t256\t4096\t65536\tsquare\t4\t4\t16\t1";
        let (class, tile) = parse_line(line, "gpu A | drv | kiln 0.1.0").unwrap();
        assert_eq!(class, (GemmPass::ConvWeightGrad, [256, 4096, 65536]));
        assert_eq!(tile, GemmTile { lanes: Lanes::Square, rows: 4, cols: 4, splits: 16, buffers: 1 });
        assert!(parse_line(line, "gpu B | drv | kiln 0.1.0").is_none());
        assert!(parse_line("gpu A\tmatmul\t1\t2", "gpu A").is_none(), "a short line is skipped");
    }
}
