// Tiled GEMM body shared by matmul and the three convolution kernels: C[m, n] = Σₖ A[m, k]·B[k, n].
// The including kernel defines `params` (with fields m, n, k) and the accessors
// `load_a(m, k)`, `load_b(k, n)` and `store_c(m, n, value)`; the accessors turn the
// GEMM indices into tensor indices (im2col on the fly for convolutions).
//
// A WG_X×WG_Y workgroup (256 invocations) computes a (WG_Y·ROWS)×(WG_X·COLS) tile of
// C, each invocation a ROWS×COLS block, stepping through K 16 at a time with both
// operand tiles staged in workgroup memory. The host compiles one module per tile shape
// (GemmTile in crates/wgpu/src/gemm_tiles.rs rewrites the constants below): 16×16
// invocations with 4×4 outputs (64×64 tiles) by default, 1×4 (16×64) for products with
// few rows, 4×64 invocations (tall tiles) for products with few columns, and the larger
// shapes the autotuner tries. Each output sums over K in the same order whatever the
// shape (double-buffered or not), so those give the same bits. With SPLITS > 1 (split-K, for long K and a small C) the
// workgroups along z also split K into SPLITS slices, each writing its partial sums to
// `partial`, and `split_k_sum` adds the slices in order and stores C: another rounding,
// the same for every run. The host declares `partial` (the family's last binding).
// Column tiles run along x and spill into z (a dimension holds at most 65,535
// workgroups); row tiles run along y.

const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const ROWS: u32 = 4u;
const COLS: u32 = 4u;
const SPLITS: u32 = 1u;
// 2: double-buffered operand tiles (the next K step loads while this one computes).
const BUFFERS: u32 = 1u;
const TILE_M: u32 = WG_Y * ROWS;
const TILE_N: u32 = WG_X * COLS;
const TILE_K: u32 = 16u;
// Operand elements each of the 256 invocations stages per K step.
const A_LOADS: u32 = TILE_M * TILE_K / 256u;
const B_LOADS: u32 = TILE_N * TILE_K / 256u;
// vec4 accumulators per invocation.
const ACC: u32 = ROWS * COLS / 4u;

var<workgroup> tile_a: array<f32, BUFFERS * TILE_K * TILE_M>; // [BUFFERS][TILE_K][TILE_M]
var<workgroup> tile_b: array<f32, BUFFERS * TILE_K * TILE_N>; // [BUFFERS][TILE_K][TILE_N]

// Stages the operand tiles of the K step at k0 (zeros past the slice's end) into
// buffer `buf`.
fn stage(buf: u32, k0: u32, k_end: u32, row0: u32, col0: u32, li: u32) {
    for (var i = 0u; i < A_LOADS; i++) {
        let e = li + i * 256u;
        // A: consecutive invocations take consecutive k (row-major A reads contiguously).
        let am = e / TILE_K;
        let ak = e % TILE_K;
        var av = 0.0;
        if (row0 + am < params.m && k0 + ak < k_end) {
            av = load_a(row0 + am, k0 + ak);
        }
        tile_a[(buf * TILE_K + ak) * TILE_M + am] = av;
    }
    for (var i = 0u; i < B_LOADS; i++) {
        let e = li + i * 256u;
        // B: consecutive invocations take consecutive n.
        let bk = e / TILE_N;
        let bn = e % TILE_N;
        var bv = 0.0;
        if (k0 + bk < k_end && col0 + bn < params.n) {
            bv = load_b(k0 + bk, col0 + bn);
        }
        tile_b[(buf * TILE_K + bk) * TILE_N + bn] = bv;
    }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn tiled_gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TILE_M;
    let split = wg.z % SPLITS;
    let col0 = ((wg.z / SPLITS) * groups.x + wg.x) * TILE_N;
    // This slice of K: whole TILE_K steps, the last slice shorter (or empty).
    let slice = (params.k + SPLITS * TILE_K - 1u) / (SPLITS * TILE_K) * TILE_K;
    let k_begin = split * slice;
    let k_end = min(params.k, k_begin + slice);
    var acc: array<vec4<f32>, ACC>;
    stage(0u, k_begin, k_end, row0, col0, li);
    workgroupBarrier();
    var cur = 0u;
    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        let next = k0 + TILE_K;
        // Double buffering: the next step's tiles load while this step computes.
        if (BUFFERS == 2u && next < k_end) {
            stage(1u - cur, next, k_end, row0, col0, li);
        }
        for (var kk = 0u; kk < TILE_K; kk++) {
            for (var c = 0u; c < COLS / 4u; c++) {
                let at = (cur * TILE_K + kk) * TILE_N + lid.x * COLS + c * 4u;
                let b = vec4<f32>(tile_b[at], tile_b[at + 1u], tile_b[at + 2u], tile_b[at + 3u]);
                for (var i = 0u; i < ROWS; i++) {
                    let slot = i * (COLS / 4u) + c;
                    let a = tile_a[(cur * TILE_K + kk) * TILE_M + lid.y * ROWS + i];
                    acc[slot] = fma(vec4<f32>(a), b, acc[slot]);
                }
            }
        }
        workgroupBarrier();
        if (BUFFERS == 2u) {
            cur = 1u - cur;
        } else if (next < k_end) {
            stage(0u, next, k_end, row0, col0, li);
            workgroupBarrier();
        }
    }
    for (var i = 0u; i < ROWS; i++) {
        let m = row0 + lid.y * ROWS + i;
        for (var j = 0u; j < COLS; j++) {
            let n = col0 + lid.x * COLS + j;
            if (m < params.m && n < params.n) {
                let value = acc[i * (COLS / 4u) + j / 4u][j % 4u];
                if (SPLITS == 1u) {
                    store_c(m, n, value);
                } else {
                    partial[(split * params.m + m) * params.n + n] = value;
                }
            }
        }
    }
}

// Split-K's second pass: each invocation adds one output's SPLITS partial sums, slice
// by slice, and stores it.
@compute @workgroup_size(256)
fn split_k_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = (wg.y * groups.x + wg.x) * 256u + li;
    if (i >= params.m * params.n) {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < SPLITS; s++) {
        sum += partial[s * params.m * params.n + i];
    }
    store_c(i / params.n, i % params.n, sum);
}
