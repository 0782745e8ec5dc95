//! `--gemm-tiles` (wgpu only): GFLOP/s of every GEMM tile shape the autotuner can pick,
//! each forced on its own device, at a square product and at convolution-like shapes,
//! so a kernel change can be judged per shape rather than through the tuner's choice.

use kiln_tensor::Tensor;
use kiln_wgpu::{Autotune, GemmTile, Lanes};

use crate::best_of;

/// The measured products: name and `[m, k, n]`.
const SHAPES: [(&str, [usize; 3]); 3] = [
    ("square 4096", [4096, 4096, 4096]),
    ("conv2-like 256×2400×3000", [256, 2400, 3000]),
    ("fc1-like 128×9216×4096", [128, 9216, 4096]),
];

/// The tile's name as the autotuner lists it, e.g. `4×4, split-K 4`.
fn label(tile: GemmTile) -> String {
    let mut name = format!("{}×{}", tile.rows, tile.cols);
    if tile.lanes == Lanes::Tall {
        name.push_str(" tall");
    }
    if tile.splits > 1 {
        name.push_str(&format!(", split-K {}", tile.splits));
    }
    if tile.buffers > 1 {
        name.push_str(", double-buffered");
    }
    name
}

/// One JSON object per candidate tile: its name and GFLOP/s at each shape.
pub fn tile_figures() -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    for tile in GemmTile::CANDIDATES {
        let (device, _) = kiln_wgpu::open_with(Autotune::Fixed(tile)).map_err(|err| err.to_string())?;
        let mut figures = Vec::new();
        for (name, [m, k, n]) in SHAPES {
            let a = Tensor::randn([m, k], 1, &device);
            let b = Tensor::randn([k, n], 2, &device);
            let seconds = best_of(&device, 3, || drop(a.matmul(&b)));
            figures.push(format!("\"{name}\": {:.1}", 2.0 * (m * k * n) as f64 / seconds / 1e9));
        }
        rows.push(format!("{{\"tile\": \"{}\", {}}}", label(tile), figures.join(", ")));
    }
    Ok(rows)
}
