//! Fused optimizer updates: one parallel pass over each parameter and its state.

use kiln_tensor::{AdamStep, SgdStep};
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

/// SGD with optional momentum, Nesterov and weight decay (PyTorch's formulation).
pub fn sgd(param: &mut [f32], grad: &[f32], velocity: Option<&mut [f32]>, s: SgdStep) {
    match velocity {
        Some(velocity) => param
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(velocity.par_chunks_mut(CHUNK))
            .for_each(|((p, g), v)| {
                for ((p, g), v) in p.iter_mut().zip(g).zip(v) {
                    let d = g + s.weight_decay * *p;
                    *v = s.momentum * *v + d;
                    *p -= s.lr * if s.nesterov { d + s.momentum * *v } else { *v };
                }
            }),
        None => param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).for_each(|(p, g)| {
            for (p, g) in p.iter_mut().zip(g) {
                *p -= s.lr * (g + s.weight_decay * *p);
            }
        }),
    }
}

/// Adam, or AdamW when `decoupled`, with bias correction.
pub fn adam(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
    let bias1 = 1.0 - s.beta1.powi(s.step as i32);
    let bias2 = 1.0 - s.beta2.powi(s.step as i32);
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                let g = if s.decoupled { *g } else { g + s.weight_decay * *p };
                if s.decoupled {
                    *p *= 1.0 - s.lr * s.weight_decay;
                }
                *m = s.beta1 * *m + (1.0 - s.beta1) * g;
                *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
                *p -= s.lr * (*m / bias1) / ((*v / bias2).sqrt() + s.eps);
            }
        });
}
