// Tiled GEMM body shared by matmul and the three convolution kernels: C[m, n] = Σₖ A[m, k]·B[k, n].
// The including kernel defines `params` (with fields m, n, k) and the accessors
// `load_a(m, k)`, `load_b(k, n)` and `store_c(m, n, value)`; the accessors turn the
// GEMM indices into tensor indices (im2col on the fly for convolutions). It also
// defines `product_count()` and `begin_product(p)`: a dispatch computes
// `product_count()` products of the same shape (a batched matmul) stacked along z,
// and each workgroup calls `begin_product` with its own before touching the operands.
//
// A WG_X×WG_Y workgroup (256 invocations) computes a (WG_Y·ROWS)×(WG_X·COLS) tile of
// C, each invocation a ROWS×COLS block, stepping through K 16 at a time with both
// operand tiles staged in workgroup memory. The host compiles one module per tile shape,
// generating its constants WG_X, WG_Y, ROWS, COLS, SPLITS and BUFFERS (2: double-buffered
// operand tiles, the next K step loading while this one computes) in front of this file
// (GemmTile in crates/wgpu/src/gemm_tiles.rs): 16×16
// invocations with 4×4 outputs (64×64 tiles) by default, 1×4 (16×64) for products with
// few rows, 4×64 invocations (tall tiles) for products with few columns, and the larger
// shapes the autotuner tries. Each output sums over K in the same order whatever the
// shape (double-buffered or not), so those give the same bits. Both operand tiles are
// staged and read as vec4 (quads of 4 rows of A, of 4 columns of B). With SPLITS > 1
// (split-K, for long K and a small C) the workgroups along z also split K into SPLITS slices, each writing its partial sums to
// `partial`, and `split_k_sum` adds the slices in order and stores C: another rounding,
// the same for every run. The host declares `partial` (the family's last binding).
// Column tiles run along x and spill into z (a dimension holds at most 65,535
// workgroups); row tiles run along y.

const TILE_M: u32 = WG_Y * ROWS;
const TILE_N: u32 = WG_X * COLS;
const TILE_K: u32 = 16u;
// Operand tiles are staged and read as vec4: A as quads of 4 rows, B as quads of 4
// columns, so the inner loop reads one vec4 per 4 outputs instead of 4 scalars.
const A_QUADS: u32 = TILE_M * TILE_K / 4u;
const B_QUADS: u32 = TILE_N * TILE_K / 4u;
// vec4 accumulators per invocation.
const ACC: u32 = ROWS * COLS / 4u;

var<workgroup> tile_a: array<vec4<f32>, BUFFERS * A_QUADS>; // [BUFFERS][TILE_K][TILE_M / 4]
var<workgroup> tile_b: array<vec4<f32>, BUFFERS * B_QUADS>; // [BUFFERS][TILE_K][TILE_N / 4]

// A[m, k], zero outside the product and past the slice's end.
fn a_or_zero(m: u32, k: u32, k_end: u32) -> f32 {
    if (m < params.m && k < k_end) {
        return load_a(m, k);
    }
    return 0.0;
}

// B[k, n], zero outside the product and past the slice's end.
fn b_or_zero(k: u32, n: u32, k_end: u32) -> f32 {
    if (k < k_end && n < params.n) {
        return load_b(k, n);
    }
    return 0.0;
}

// Stages the operand tiles of the K step at k0 into buffer `buf`, one quad per
// invocation and round.
fn stage(buf: u32, k0: u32, k_end: u32, row0: u32, col0: u32, li: u32) {
    for (var e = li; e < A_QUADS; e += 256u) {
        // A: consecutive invocations take consecutive k (row-major A reads contiguously).
        let ak = e % TILE_K;
        let m = row0 + (e / TILE_K) * 4u;
        let k = k0 + ak;
        tile_a[(buf * TILE_K + ak) * (TILE_M / 4u) + e / TILE_K] = vec4<f32>(
            a_or_zero(m, k, k_end), a_or_zero(m + 1u, k, k_end),
            a_or_zero(m + 2u, k, k_end), a_or_zero(m + 3u, k, k_end));
    }
    for (var e = li; e < B_QUADS; e += 256u) {
        // B: consecutive invocations take consecutive quads of n.
        let bk = e / (TILE_N / 4u);
        let n = col0 + (e % (TILE_N / 4u)) * 4u;
        let k = k0 + bk;
        tile_b[buf * B_QUADS + e] = vec4<f32>(
            b_or_zero(k, n, k_end), b_or_zero(k, n + 1u, k_end),
            b_or_zero(k, n + 2u, k_end), b_or_zero(k, n + 3u, k_end));
    }
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn tiled_gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TILE_M;
    let per_product = groups.z / product_count();
    begin_product(wg.z / per_product);
    let z = wg.z % per_product;
    let split = z % SPLITS;
    let col0 = ((z / SPLITS) * groups.x + wg.x) * TILE_N;
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
            // This invocation's ROWS values of A: whole quads, then (ROWS < 4) one
            // component each.
            let a_row = (cur * TILE_K + kk) * (TILE_M / 4u);
            var a_vals: array<f32, ROWS>;
            for (var q = 0u; q < ROWS / 4u; q++) {
                let quad = tile_a[a_row + lid.y * (ROWS / 4u) + q];
                a_vals[4u * q] = quad.x;
                a_vals[4u * q + 1u] = quad.y;
                a_vals[4u * q + 2u] = quad.z;
                a_vals[4u * q + 3u] = quad.w;
            }
            for (var i = ROWS / 4u * 4u; i < ROWS; i++) {
                let m = lid.y * ROWS + i;
                a_vals[i] = tile_a[a_row + m / 4u][m % 4u];
            }
            let b_row = (cur * TILE_K + kk) * (TILE_N / 4u) + lid.x * (COLS / 4u);
            for (var c = 0u; c < COLS / 4u; c++) {
                let b = tile_b[b_row + c];
                for (var i = 0u; i < ROWS; i++) {
                    let slot = i * (COLS / 4u) + c;
                    acc[slot] = fma(vec4<f32>(a_vals[i]), b, acc[slot]);
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
    begin_product(0u);
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
