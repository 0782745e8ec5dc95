//! Every GEMM kernel against a float64 reference, on shapes that cross each blocking
//! boundary (ragged 6×16 tiles, more than one `KC`, `MC` and `NC` block) in all four
//! transpose combinations.

use crate::test_values::values;

use super::*;

/// `op(A)·op(B)` in float64, and the sum of `|a|·|b|` per entry (the error scale).
fn reference(a: &[f32], b: &[f32], d: MatmulDims) -> (Vec<f64>, Vec<f64>) {
    let MatmulDims { m, k, n, trans_a, trans_b } = d;
    let at = |i: usize, p: usize| f64::from(if trans_a { a[p * m + i] } else { a[i * k + p] });
    let bt = |p: usize, j: usize| f64::from(if trans_b { b[j * k + p] } else { b[p * n + j] });
    let mut exact = vec![0.0; m * n];
    let mut scale = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                exact[i * n + j] += at(i, p) * bt(p, j);
                scale[i * n + j] += (at(i, p) * bt(p, j)).abs();
            }
        }
    }
    (exact, scale)
}

/// Every kernel this CPU runs; the portable one always.
fn kernels() -> Vec<GemmKernel> {
    let all = [
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx512,
        #[cfg(target_arch = "x86_64")]
        GemmKernel::Avx2Fma,
        GemmKernel::Portable,
    ];
    all.into_iter().filter(|k| k.is_available()).collect()
}

#[test]
fn every_kernel_matches_the_float64_product() {
    // Ragged 6×16 tiles, whole and ragged 12×32 (wide) tiles (conv1's weight gradient
    // has 121 columns: 3 wide tiles and one 25 columns wide), several KC, MC and NC
    // blocks.
    let shapes = [
        (24, 9, 121),
        (1, 1, 1),
        (7, 5, 17),
        (6, 16, 16),
        (12, 7, 32),
        (25, 3, 65),
        (24, 1300, 64),
        (8, 1100, 40),
        (13, 300, 33),
        (97, 257, 2050),
        (200, 40, 3),
    ];
    for kernel in kernels() {
        for (m, k, n) in shapes {
            for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
                let d = MatmulDims { m, k, n, trans_a, trans_b };
                let a = values(m * k, 1 + m as u64);
                let b = values(k * n, 2 + n as u64);
                let mut c = vec![f32::NAN; m * n];
                gemm_with(kernel, &a, &b, &mut c, d, Threads::Pool);
                let (exact, scale) = reference(&a, &b, d);
                for (i, ((got, want), s)) in c.iter().zip(&exact).zip(&scale).enumerate() {
                    let error = (f64::from(*got) - want).abs();
                    assert!(
                        error <= 1e-6 * s + 1e-7,
                        "{kernel:?} {d:?}: entry {i} is {got}, expected {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn an_empty_contraction_gives_zeros() {
    for kernel in kernels() {
        let mut c = vec![f32::NAN; 6];
        let d = MatmulDims { m: 2, k: 0, n: 3, trans_a: false, trans_b: false };
        gemm_with(kernel, &[], &[], &mut c, d, Threads::Pool);
        assert_eq!(c, vec![0.0; 6], "{kernel:?}");
        let bias = Epilogue { column_bias: Some(&[1.0, 2.0, 3.0]), rows: None };
        gemm_blocks(kernel, &[], &[], &mut c, d, Threads::Pool, bias);
        assert_eq!(c, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0], "{kernel:?} with a bias");
    }
}

/// A column bias goes into every entry once, after the last depth block, on every
/// kernel and path: rows read in place (strides 32, 384) and packed (300), ragged
/// and lone narrow column panels, several `KC` blocks, tasks split by rows and by
/// columns; and the AVX-512 kernels' stores add it exactly as the AVX2 path does.
#[test]
fn a_column_bias_is_added_once_by_every_kernel() {
    let shapes = [(29, 32, 50), (30, 384, 33), (13, 300, 70), (7, 5, 17), (700, 1300, 90), (40, 300, 2200)];
    for (m, k, n) in shapes {
        for trans_b in [false, true] {
            let d = MatmulDims { m, k, n, trans_a: false, trans_b };
            let (a, b, bias) = (values(m * k, 31), values(k * n, 32), values(n, 33));
            let (exact, scale) = reference(&a, &b, d);
            let mut results = vec![];
            for kernel in kernels() {
                let mut c = vec![f32::NAN; m * n];
                let epilogue = Epilogue { column_bias: Some(&bias), rows: None };
                gemm_blocks(kernel, &a, &b, &mut c, d, Threads::Pool, epilogue);
                for (i, got) in c.iter().enumerate() {
                    let want = exact[i] + f64::from(bias[i % n]);
                    let error = (f64::from(*got) - want).abs();
                    assert!(
                        error <= 1e-6 * (scale[i] + 1.0) + 1e-7,
                        "{kernel:?} {d:?}: entry {i} is {got}, not {want}"
                    );
                }
                results.push((kernel, c));
            }
            let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let avx =
                results.iter().filter(|(kernel, _)| *kernel != GemmKernel::Portable).collect::<Vec<_>>();
            if let [(_, wide), (_, narrow)] = avx[..] {
                assert!(bits(wide) == bits(narrow), "AVX-512 vs AVX2 with a bias, {d:?}");
            }
        }
    }
}

#[test]
fn a_prepacked_left_matrix_gives_the_same_product() {
    // More rows than one MC block, deeper than one KC block, ragged in both.
    let (m, k, n) = (103, 1300, 37);
    let a = values(m * k, 5);
    let b = values(k * n, 6);
    let d = MatmulDims { m, k, n, trans_a: false, trans_b: false };
    let left = Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 };
    let right = Strided { data: &b, offset: 0, row_stride: n, col_stride: 1 };
    let packed = PackedA::new(&left, m, k);
    let mut c = vec![f32::NAN; m * n];
    gemm_packed(
        m,
        k,
        n,
        Left::Packed(packed.view()),
        &right,
        &mut c,
        OutputLayout::RowMajor { ldc: n },
        false,
    );
    let (exact, scale) = reference(&a, &b, d);
    for (i, ((got, want), s)) in c.iter().zip(&exact).zip(&scale).enumerate() {
        assert!((f64::from(*got) - want).abs() <= 1e-6 * s + 1e-7, "entry {i} is {got}, expected {want}");
    }
}

#[test]
fn a_packed_element_lies_where_its_index_says() {
    // Ragged in rows (not a multiple of MR) and in depth: two blocks of the spread
    // depth (1100 = 552 + 548).
    let (m, k) = (103, 1100);
    let a = values(m * k, 7);
    let packed = PackedA::new(&Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 }, m, k);
    assert_eq!(packed.data.len(), PackedView::len(m, k));
    for i in 0..m {
        for p in 0..k {
            assert_eq!(packed.data[PackedView::index(m, k, i, p)], a[i * k + p], "element ({i}, {p})");
        }
    }
}

#[test]
fn panels_written_apart_make_the_packed_matrix() {
    let (m, k) = (103, 530);
    let a = values(m * k, 7);
    let packed = PackedA::new(&Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 }, m, k);
    let mut written = vec![f32::NAN; PackedView::len(m, k)];
    for mut panel in PackedView::panels_mut(&mut written, m, k) {
        for r in 0..MR {
            for (step, p) in panel.depth.clone().enumerate() {
                let i = panel.first_row + r;
                panel.set(r, step, if i < m { a[i * k + p] } else { 0.0 });
            }
        }
    }
    let rows = |data: &[f32]| -> Vec<f32> {
        (0..m)
            .flat_map(|i| (0..k).map(move |p| (i, p)))
            .map(|(i, p)| data[PackedView::index(m, k, i, p)])
            .collect()
    };
    assert_eq!(rows(&written), rows(&packed.data), "every element where the index says");
    assert!(written.iter().all(|v| !v.is_nan()), "the panels cover the whole layout");
}

/// Every x86 SIMD kernel computes each entry as the same chain of fused multiply-adds,
/// so the AVX-512 and AVX2 kernels agree bit for bit (what keeps runs reproducible
/// across these CPUs). On a CPU without AVX-512 only the AVX2 kernel is compared with
/// itself; the test prints which kernels it compared.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_simd_kernels_agree_bit_for_bit() {
    let simd: Vec<GemmKernel> =
        [GemmKernel::Avx512, GemmKernel::Avx2Fma].into_iter().filter(|k| k.is_available()).collect();
    eprintln!("comparing {simd:?}");
    let Some((&first, rest)) = simd.split_first() else { return };
    for (m, k, n) in [(12, 7, 32), (97, 257, 2050), (25, 600, 65), (30, 11, 121)] {
        for (trans_a, trans_b) in [(false, false), (true, true)] {
            let d = MatmulDims { m, k, n, trans_a, trans_b };
            let a = values(m * k, 11);
            let b = values(k * n, 12);
            let mut expected = vec![0.0; m * n];
            gemm_with(first, &a, &b, &mut expected, d, Threads::Caller);
            for &kernel in rest {
                let mut c = vec![0.0; m * n];
                gemm_with(kernel, &a, &b, &mut c, d, Threads::Pool);
                let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert!(bits(&c) == bits(&expected), "{kernel:?} vs {first:?}, {d:?}");
            }
        }
    }
}

/// Every count of rows left below the last 12-row tile (0 to 11, each its own AVX-512
/// kernel) against the float64 product and bit for bit against the AVX2 kernel, with
/// whole and ragged column tiles, packed and read in place.
#[test]
fn every_tail_of_rows_matches() {
    for m in 12..24 {
        for (k, n) in [(20, 64), (32, 45)] {
            let d = MatmulDims { m, k, n, trans_a: false, trans_b: false };
            let a = values(m * k, 31);
            let b = values(k * n, 32);
            let (exact, scale) = reference(&a, &b, d);
            let mut results = Vec::new();
            for kernel in kernels() {
                let mut c = vec![f32::NAN; m * n];
                gemm_with(kernel, &a, &b, &mut c, d, Threads::Caller);
                for (i, got) in c.iter().enumerate() {
                    let error = (f64::from(*got) - exact[i]).abs();
                    assert!(error <= 1e-6 * scale[i] + 1e-7, "{kernel:?} {d:?}: entry {i}");
                }
                results.push((kernel, c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()));
            }
            let simd: Vec<_> = results.iter().filter(|(kernel, _)| *kernel != GemmKernel::Portable).collect();
            for pair in simd.windows(2) {
                assert!(pair[0].1 == pair[1].1, "{:?} vs {:?}, {d:?}", pair[0].0, pair[1].0);
            }
        }
    }
}

/// Ragged column tiles are stored with masks straight into `C`: the columns between
/// `n` and the row stride keep their values, overwriting and accumulating.
#[test]
fn ragged_tiles_leave_the_columns_past_the_product_alone() {
    let (m, k, n, ldc) = (25, 20, 45, 50);
    let a = values(m * k, 41);
    let b = values(k * n, 42);
    let (exact, scale) = reference(&a, &b, MatmulDims { m, k, n, trans_a: false, trans_b: false });
    let a = Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 };
    let b = Strided { data: &b, offset: 0, row_stride: n, col_stride: 1 };
    for accumulate in [false, true] {
        let mut c = vec![7.0; m * ldc];
        gemm_packed(m, k, n, Left::Strided(&a), &b, &mut c, OutputLayout::RowMajor { ldc }, accumulate);
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j];
                if j < n {
                    let want = exact[i * n + j] + if accumulate { 7.0 } else { 0.0 };
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-6 * (scale[i * n + j] + 7.0) + 1e-7,
                        "({i}, {j})"
                    );
                } else {
                    assert_eq!(got, 7.0, "({i}, {j}) past the product, accumulate {accumulate}");
                }
            }
        }
    }
}

/// A row-major `A` whose row stride has rows kernels is read in place (even tiles of
/// 6 to 12 rows, or whole 12-row tiles with the ragged rows below packed): against the
/// float64 product, overwriting and accumulating, and bit for bit against the AVX2
/// kernel, for a wide and ragged second column panel (a panel and a half where it
/// holds at most 8 columns: `n` 50 and 20), a lone narrow one, several `MC` and `KC`
/// blocks, tiles of one height and of two, blocks too short for a tile.
#[test]
fn rows_read_in_place_give_the_packed_product() {
    if !GemmKernel::Avx512.is_available() {
        eprintln!("no AVX-512: no rows kernel to test");
        return;
    }
    for (m, k, n) in [
        (29, 32, 50),
        (12, 16, 16),
        (100, 128, 40),
        (30, 384, 33),
        (13, 256, 70),
        (13, 1536, 40),
        (50, 32, 50),
        (47, 64, 20),
        (5, 32, 40),
        (119, 48, 36),
    ] {
        assert!(
            (GemmKernel::Avx512.kernels().rows)(k, 12, packed::RowsWidth::TwoPanels).is_some(),
            "no rows kernel for stride {k}"
        );
        let a = values(m * k, 21);
        let b = values(k * n, 22);
        let initial = values(m * n, 23);
        let d = MatmulDims { m, k, n, trans_a: false, trans_b: false };
        let (exact, scale) = reference(&a, &b, d);
        let check = |c: &[f32], start: &[f32]| {
            for (i, got) in c.iter().enumerate() {
                let want = exact[i] + f64::from(start[i]);
                let error = (f64::from(*got) - want).abs();
                assert!(error <= 1e-6 * (scale[i] + f64::from(start[i]).abs()) + 1e-7, "{d:?}: entry {i}");
            }
        };
        let mut overwritten = vec![f32::NAN; m * n];
        gemm_with(GemmKernel::Avx512, &a, &b, &mut overwritten, d, Threads::Caller);
        check(&overwritten, &vec![0.0; m * n]);
        let mut accumulated = initial.clone();
        let a_rows = Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 };
        let b_rows = Strided { data: &b, offset: 0, row_stride: n, col_stride: 1 };
        let block = packed::OutputBlock {
            ptr: accumulated.as_mut_ptr(),
            row_stride: n,
            columns: packed::Columns::Contiguous,
            accumulate: true,
            column_bias: std::ptr::null(),
        };
        packed::gemm(GemmKernel::Avx512, [m, k, n], Left::Strided(&a_rows), &b_rows, block, None);
        check(&accumulated, &initial);
        if GemmKernel::Avx2Fma.is_available() {
            let mut packed = vec![0.0; m * n];
            gemm_with(GemmKernel::Avx2Fma, &a, &b, &mut packed, d, Threads::Caller);
            let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert!(bits(&overwritten) == bits(&packed), "in place vs packed, {d:?}");
        }
    }
}

/// Writing the product as NCHW image planes gives each entry where the row-major
/// product has it, reordered: for planes narrower and wider than a tile, planes that
/// tiles straddle, and row counts that are not multiples of any tile, overwriting and
/// accumulating.
#[test]
fn image_plane_output_matches_the_row_major_product() {
    for (m, k, plane, images) in [
        (13, 9, 7, 5),
        (25, 40, 144, 3),
        (12, 300, 33, 4),
        (30, 17, 676, 2),
        (24, 20, 29, 3),
        (13, 20, 16, 4),
    ] {
        let n = plane * images;
        let a = values(m * k, 21);
        let b = values(k * n, 22);
        let left = Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 };
        let right = Strided { data: &b, offset: 0, row_stride: n, col_stride: 1 };
        let mut row_major = vec![0.0; m * n];
        gemm_packed(
            m,
            k,
            n,
            Left::Strided(&left),
            &right,
            &mut row_major,
            OutputLayout::RowMajor { ldc: n },
            false,
        );
        let start: Vec<f32> = values(m * n, 23);
        for accumulate in [false, true] {
            let mut planes = start.clone();
            let layout = OutputLayout::ImagePlanes { plane };
            gemm_packed(m, k, n, Left::Strided(&left), &right, &mut planes, layout, accumulate);
            for image in 0..images {
                for r in 0..m {
                    for x in 0..plane {
                        let at = image * m * plane + r * plane + x;
                        let base = if accumulate { start[at] } else { 0.0 };
                        let want = base + row_major[r * n + image * plane + x];
                        assert!(
                            (planes[at] - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "m {m} plane {plane}: image {image} row {r} pixel {x}: {} vs {want}",
                            planes[at]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_row_epilogue_sees_every_finished_row_once_with_its_indices() {
    // Large enough to split across threads (by rows, then by columns), with ragged
    // MC, NC and KC blocks: every element must be visited once, after its last sum.
    for (m, k, n) in [(700, 1300, 90), (40, 300, 2200)] {
        let d = MatmulDims { m, k, n, trans_a: false, trans_b: true };
        let (a, b) = (values(m * k, 3), values(k * n, 4));
        let mut plain = vec![0.0; m * n];
        gemm(&a, &b, &mut plain, d, Threads::Pool);
        let mut fused = vec![0.0; m * n];
        // Adds 1000·row + column: a wrong index or a second visit shows.
        let epilogue = |row: usize, first: usize, values: &mut [f32]| {
            for (j, v) in values.iter_mut().enumerate() {
                *v += (1000 * row + first + j) as f32;
            }
        };
        gemm_then(
            &a,
            &b,
            &mut fused,
            d,
            Threads::Pool,
            Epilogue { column_bias: None, rows: Some(&epilogue) },
        );
        for (i, (f, p)) in fused.iter().zip(&plain).enumerate() {
            let want = p + (1000 * (i / n) + i % n) as f32;
            assert_eq!(*f, want, "{m}x{k}x{n} element {i}");
        }
    }
}

/// The depth blocks cover the product without a block deeper than an eighth over
/// the usual depth, spread a small remainder over the whole blocks (the 3×3
/// convolutions' 576 in one block, 1100 in two of 552 and 548), and leave a larger
/// remainder as a last block of its own (1300 = 512 + 512 + 276).
#[test]
fn depth_blocks_spread_only_a_small_remainder() {
    let usual = packed::depth_block(4096);
    assert_eq!(usual, 512);
    for k in 1..5000 {
        let block = packed::depth_block(k);
        assert!(block > 0 && block <= usual + usual / 8, "depth {k}: block {block}");
        let blocks = k.div_ceil(block);
        let last = k - (blocks - 1) * block;
        if block != usual {
            // Spread: equal blocks but for the rounding to 8.
            assert!(last + 8 * blocks >= block, "depth {k}: blocks of {block} end in {last}");
        }
    }
    assert_eq!(packed::depth_block(576), 576);
    assert_eq!(packed::depth_block(1100), 552);
    assert_eq!(packed::depth_block(1300), 512);
}

/// A block of rows read in place splits into as few tiles as 12-row tiles allow, their
/// heights differing by at most one, covering every row once in order (no packed
/// tail), wherever rows kernels exist for those heights (blocks of 6 rows and more);
/// shorter blocks are left to the packed tail kernels, and a stride without rows
/// kernels to the packed path.
#[test]
fn rows_in_place_split_into_even_tiles() {
    if !GemmKernel::Avx512.is_available() {
        eprintln!("no AVX-512: no rows kernel to test");
        return;
    }
    let rows_kernel = GemmKernel::Avx512.kernels().rows;
    for rows in 0..=200 {
        let tiles = packed::RowTiles::new(rows_kernel, 32, rows).expect("rows kernels for stride 32");
        let each: Vec<(usize, usize)> =
            tiles.each(packed::RowsWidth::TwoPanels).map(|(first, height, _)| (first, height)).collect();
        if rows < 6 {
            assert!(each.is_empty() && tiles.rows() == 0, "{rows} rows: {each:?}");
            continue;
        }
        assert_eq!((each.len(), tiles.rows()), (rows.div_ceil(12), rows), "{rows} rows: {each:?}");
        let mut next = 0;
        for &(first, height) in &each {
            assert_eq!(first, next, "{rows} rows: {each:?}");
            next += height;
        }
        let (lowest, highest) = (each.iter().map(|t| t.1).min(), each.iter().map(|t| t.1).max());
        assert!(highest <= Some(12) && highest <= lowest.map(|h| h + 1), "{rows} rows: {each:?}");
    }
    assert!(packed::RowTiles::new(rows_kernel, 33, 50).is_none());
}

/// A row-major `B` that also writes its blocks as rows (with NaN past the block's
/// columns, which must only reach discarded columns of `C`).
struct WritesRows<'a>(Strided<'a>);

impl PackB for WritesRows<'_> {
    fn pack(&self, first_row: usize, rows: usize, first_col: usize, cols: usize, panel: &mut [f32]) {
        self.0.pack(first_row, rows, first_col, cols, panel);
    }

    fn pack_rows(
        &self,
        first_row: usize,
        rows: usize,
        first_col: usize,
        cols: usize,
        stride: usize,
        out: &mut [f32],
    ) -> bool {
        for (p, row) in out.chunks_exact_mut(stride).take(rows).enumerate() {
            row.fill(f32::NAN);
            let start = (first_row + p) * self.0.row_stride + first_col;
            row[..cols].copy_from_slice(&self.0.data[start..start + cols]);
        }
        true
    }
}

/// The AVX-512 kernels reading `B`'s rows in place give the same bits as reading its
/// packed panels: packed and in-place `A`, wide, ragged (17–31) and lone last panels,
/// several `KC`, `MC` and `NC` blocks, overwriting, accumulating and with a bias.
#[test]
fn rows_of_b_in_place_give_the_panels_product() {
    if !GemmKernel::Avx512.is_available() {
        eprintln!("no AVX-512: no kernel reads rows of B");
        return;
    }
    for (m, k, n) in [(29, 32, 50), (13, 300, 70), (100, 1300, 40), (7, 20, 2100), (24, 576, 784)] {
        let (a, b, initial) = (values(m * k, 31), values(k * n, 32), values(m * n, 33));
        let bias = values(n, 34);
        let a_rows = Strided { data: &a, offset: 0, row_stride: k, col_stride: 1 };
        let b_rows = Strided { data: &b, offset: 0, row_stride: n, col_stride: 1 };
        let prepacked = PackedA::new(&a_rows, m, k);
        for left in [Left::Strided(&a_rows), Left::Packed(prepacked.view())] {
            for (accumulate, column_bias) in [(false, std::ptr::null()), (true, bias.as_ptr())] {
                let product = |source: &dyn Fn(packed::OutputBlock)| {
                    let mut c = initial.clone();
                    let block = packed::OutputBlock {
                        ptr: c.as_mut_ptr(),
                        row_stride: n,
                        columns: packed::Columns::Contiguous,
                        accumulate,
                        column_bias,
                    };
                    source(block);
                    c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                };
                let panels =
                    product(&|block| packed::gemm(GemmKernel::Avx512, [m, k, n], left, &b_rows, block, None));
                let rows = product(&|block| {
                    packed::gemm(GemmKernel::Avx512, [m, k, n], left, &WritesRows(b_rows), block, None)
                });
                let kind = if matches!(left, Left::Packed(_)) { "packed" } else { "in place" };
                assert!(panels == rows, "{m}×{k}×{n}, A {kind}, accumulate {accumulate}: rows of B differ");
                assert!(
                    rows.iter().all(|bits| f32::from_bits(*bits).is_finite()),
                    "{m}×{k}×{n}: a NaN column reached C"
                );
            }
        }
    }
}
