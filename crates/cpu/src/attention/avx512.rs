//! The AVX-512 tiles of the fused attention: a block of up to [`MAX_ROWS`] query rows
//! against up to four 16-key chunks at once (up to 24 sums in registers, each key chunk
//! loaded once per depth step for all the rows, each query value broadcast once for
//! all the chunks); each score row's softmax with its chunks held in registers from the
//! maximum to the scaled store ([`crate::softmax_avx512`], rows side by side); and the
//! block's weights against up to two 16-lane chunks of the values. The lane tiles these
//! replace keep four rows by one chunk (four sums, a load per multiply-add): on 128
//! sequences × 4 heads of 50×32 the forward took 1.9–2.1 ms with them, 1.36–1.39 ms
//! with these (2 threads, Zen 4).

use std::arch::x86_64::*;

use super::{Rows, RowsMut, ScoreSource};
use crate::lanes::LANES;
use crate::softmax_avx512::{MAX_LEN, ShortRows, softmax_short_rows};
use crate::softmax_row::softmax_row;

/// Most query rows in one tile: 6 rows × 4 key chunks = 24 sums, plus the 4 key
/// chunks, fit the 32 registers.
pub const MAX_ROWS: usize = 6;

/// Key chunks of 16 one score tile covers.
const KEY_CHUNKS: usize = 4;

/// Value chunks of 16 one value tile covers.
const VALUE_CHUNKS: usize = 2;

/// `scale · q·kᵀ` of the `rows` (1 to [`MAX_ROWS`]) query rows from `first` on, row `r`
/// into `scores[r·padded..]`.
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn block_scores(rows: usize, source: ScoreSource<'_>, scores: &mut [f32]) {
    let ScoreSource { q, first, keys_t, scale } = source;
    assert!(
        (1..=MAX_ROWS).contains(&rows)
            && q.start + (first + rows - 1) * q.stride + q.width <= q.data.len()
            && keys_t.data.len() >= q.width * keys_t.padded
            && scores.len() >= rows * keys_t.padded,
        "attention scores: a block out of its operands"
    );
    let chunks = keys_t.padded / LANES;
    for group in (0..chunks).step_by(KEY_CHUNKS) {
        let tile = ScoreTile {
            q: q.data[q.start + first * q.stride..].as_ptr(),
            q_stride: q.stride,
            depth: q.width,
            keys_t: keys_t.data[group * LANES..].as_ptr(),
            padded: keys_t.padded,
            scale,
            out: scores[group * LANES..].as_mut_ptr(),
        };
        let width = KEY_CHUNKS.min(chunks - group);
        // SAFETY: the assertion above: `rows` query rows of `depth` values, `depth`
        // rows of `padded` keys, and `rows` score rows of `padded`, the tile's `width`
        // chunks from `group` lying inside each.
        unsafe { score_tile_for(rows, width)(tile) }
    }
}

/// Where a score tile reads and writes.
#[derive(Clone, Copy)]
struct ScoreTile {
    /// The tile's first query row; row `r` at `q + r·q_stride`.
    q: *const f32,
    q_stride: usize,
    depth: usize,
    /// The tile's first key chunk in the transposed keys; depth `d` at `d·padded`.
    keys_t: *const f32,
    padded: usize,
    scale: f32,
    /// The tile's first score; row `r` at `out + r·padded`.
    out: *mut f32,
}

/// The [`score_tile`] instance for `rows` rows and `width` key chunks.
fn score_tile_for(rows: usize, width: usize) -> unsafe fn(ScoreTile) {
    macro_rules! by_width {
        ($rows:literal) => {
            match width {
                1 => score_tile::<$rows, 1>,
                2 => score_tile::<$rows, 2>,
                3 => score_tile::<$rows, 3>,
                _ => score_tile::<$rows, 4>,
            }
        };
    }
    match rows {
        1 => by_width!(1),
        2 => by_width!(2),
        3 => by_width!(3),
        4 => by_width!(4),
        5 => by_width!(5),
        _ => by_width!(6),
    }
}

/// `R` rows by `W` key chunks of scores, summed down the depth in `R·W` registers.
///
/// # Safety
/// The CPU must run AVX-512F; the tile's operands must hold what [`ScoreTile`] names.
#[target_feature(enable = "avx512f")]
unsafe fn score_tile<const R: usize, const W: usize>(tile: ScoreTile) {
    let ScoreTile { q, q_stride, depth, keys_t, padded, scale, out } = tile;
    let mut sums = [[_mm512_setzero_ps(); W]; R];
    for d in 0..depth {
        // SAFETY: depth `d` of the tile's chunks and of its query rows.
        unsafe {
            let keys: [__m512; W] =
                std::array::from_fn(|c| _mm512_loadu_ps(keys_t.add(d * padded + c * LANES)));
            for (r, row) in sums.iter_mut().enumerate() {
                let query = _mm512_set1_ps(*q.add(r * q_stride + d));
                for (sum, key) in row.iter_mut().zip(keys) {
                    *sum = _mm512_fmadd_ps(query, key, *sum);
                }
            }
        }
    }
    let scale = _mm512_set1_ps(scale);
    for (r, row) in sums.into_iter().enumerate() {
        for (c, sum) in row.into_iter().enumerate() {
            // SAFETY: chunk `c` of score row `r`.
            unsafe { _mm512_storeu_ps(out.add(r * padded + c * LANES), _mm512_mul_ps(sum, scale)) }
        }
    }
}

/// The softmax of each of the `rows` score rows in `scores` (`padded` apart) over
/// their first `keys` values, into `weights` (`keys` apart): rows of up to
/// [`MAX_LEN`] keys stay in registers from the maximum to the scaled store
/// ([`softmax_short_rows`]); longer rows go through [`softmax_row`].
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn block_softmax(rows: usize, scores: &[f32], padded: usize, keys: usize, weights: &mut [f32]) {
    assert!(
        keys > 0
            && padded == keys.next_multiple_of(LANES)
            && scores.len() >= rows * padded
            && weights.len() >= rows * keys,
        "attention softmax: a block out of its operands"
    );
    if keys <= MAX_LEN {
        let score_rows = ShortRows { input: scores, input_stride: padded, len: keys, out_stride: keys };
        // SAFETY: the CPU runs AVX-512F (the caller's contract).
        return unsafe { softmax_short_rows(rows, score_rows, weights, false) };
    }
    for (r, row) in weights.chunks_exact_mut(keys).take(rows).enumerate() {
        softmax_row(row, &scores[r * padded..][..keys], false);
    }
}

/// `out[first + r] = Σⱼ weights[r][j] · v[j]` for the `rows` (1 to [`MAX_ROWS`])
/// softmax rows of `keys` weights each in `weights`.
///
/// # Safety
/// The CPU must run AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn block_values(rows: usize, weights: &[f32], v: Rows<'_>, out: &mut RowsMut<'_>, first: usize) {
    let keys = weights.len() / rows.max(1);
    let width = v.width;
    assert!(
        (1..=MAX_ROWS).contains(&rows)
            && weights.len() == rows * keys
            && (keys == 0 || v.start + (keys - 1) * v.stride + width <= v.data.len())
            && out.start + (first + rows - 1) * out.stride + width <= out.data.len(),
        "attention values: a block out of its operands"
    );
    for chunk in (0..width).step_by(VALUE_CHUNKS * LANES) {
        let lanes = |from: usize| -> __mmask16 {
            let count = width.saturating_sub(chunk + from).min(LANES);
            ((1u32 << count) - 1) as __mmask16
        };
        let tile = ValueTile {
            weights: weights.as_ptr(),
            keys,
            v: v.data[v.start + chunk..].as_ptr(),
            v_stride: v.stride,
            masks: [lanes(0), lanes(LANES)],
            out: out.data[out.start + first * out.stride + chunk..].as_mut_ptr(),
            out_stride: out.stride,
        };
        let chunks = (width - chunk).div_ceil(LANES).min(VALUE_CHUNKS);
        // SAFETY: the assertion above: `rows` rows of `keys` weights, `keys` value rows
        // and `rows` output rows of `width`, the masks covering only lanes below it.
        unsafe { value_tile_for(rows, chunks)(tile) }
    }
}

/// Where a value tile reads and writes.
#[derive(Clone, Copy)]
struct ValueTile {
    /// Softmax row `r` at `weights + r·keys`.
    weights: *const f32,
    keys: usize,
    /// The tile's first value lane in value row 0; row `j` at `v + j·v_stride`.
    v: *const f32,
    v_stride: usize,
    /// The lanes of each chunk inside the rows.
    masks: [__mmask16; VALUE_CHUNKS],
    /// The tile's first output lane in its first row; row `r` at `out + r·out_stride`.
    out: *mut f32,
    out_stride: usize,
}

/// The [`value_tile`] instance for `rows` rows and `chunks` value chunks.
fn value_tile_for(rows: usize, chunks: usize) -> unsafe fn(ValueTile) {
    macro_rules! by_chunks {
        ($rows:literal) => {
            match chunks {
                1 => value_tile::<$rows, 1>,
                _ => value_tile::<$rows, 2>,
            }
        };
    }
    match rows {
        1 => by_chunks!(1),
        2 => by_chunks!(2),
        3 => by_chunks!(3),
        4 => by_chunks!(4),
        5 => by_chunks!(5),
        _ => by_chunks!(6),
    }
}

/// `R` output rows by `C` value chunks, summed over the keys in `R·C` registers.
///
/// # Safety
/// The CPU must run AVX-512F; the tile's operands must hold what [`ValueTile`] names.
#[target_feature(enable = "avx512f")]
unsafe fn value_tile<const R: usize, const C: usize>(tile: ValueTile) {
    let ValueTile { weights, keys, v, v_stride, masks, out, out_stride } = tile;
    let mut sums = [[_mm512_setzero_ps(); C]; R];
    for j in 0..keys {
        // SAFETY: value row `j`'s lanes under the masks, and weight `j` of each row.
        unsafe {
            let values: [__m512; C] =
                std::array::from_fn(|c| _mm512_maskz_loadu_ps(masks[c], v.add(j * v_stride + c * LANES)));
            for (r, row) in sums.iter_mut().enumerate() {
                let weight = _mm512_set1_ps(*weights.add(r * keys + j));
                for (sum, value) in row.iter_mut().zip(values) {
                    *sum = _mm512_fmadd_ps(weight, value, *sum);
                }
            }
        }
    }
    for (r, row) in sums.into_iter().enumerate() {
        for (c, sum) in row.into_iter().enumerate() {
            // SAFETY: output row `r`'s lanes under chunk `c`'s mask.
            unsafe { _mm512_mask_storeu_ps(out.add(r * out_stride + c * LANES), masks[c], sum) }
        }
    }
}
