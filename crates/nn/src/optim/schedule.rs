//! Learning-rate schedules: the rate as a pure function of the optimizer step, applied
//! with `optimizer.set_learning_rate(schedule.learning_rate(step))` before each step.
//! Being pure, a schedule resumes exactly: a run restarted at step `s` gets the rate an
//! uninterrupted run had at `s`.

use std::f32::consts::PI;

/// The learning rate as a function of the (0-based) optimizer step.
///
/// ```
/// use kiln_nn::{Cosine, LrSchedule, Optimizer, Sgd, Warmup};
///
/// // 100 steps of linear warmup to 0.1, then cosine annealing to 0 over 1,000 steps.
/// let schedule = Warmup { steps: 100, then: Cosine { base: 0.1, min: 0.0, steps: 1000 } };
/// let mut sgd = Sgd::new(0.0).with_momentum(0.9);
/// for step in 0..3 {
///     sgd.set_learning_rate(schedule.learning_rate(step));
///     // … forward, backward, sgd.step(&model, &grads) …
/// }
/// assert!((schedule.learning_rate(49) - 0.05).abs() < 1e-6);
/// assert!((schedule.learning_rate(100) - 0.1).abs() < 1e-6);
/// assert!((schedule.learning_rate(600) - 0.05).abs() < 1e-6);
/// ```
pub trait LrSchedule: Send + Sync {
    /// The rate to use for step `step`.
    fn learning_rate(&self, step: usize) -> f32;
}

/// The same rate at every step.
#[derive(Clone, Copy, Debug)]
pub struct Constant(pub f32);

impl LrSchedule for Constant {
    fn learning_rate(&self, _step: usize) -> f32 {
        self.0
    }
}

/// `base · gamma^(step / every)`: multiply by `gamma` every `every` steps (PyTorch's
/// `StepLR`).
#[derive(Clone, Copy, Debug)]
pub struct StepDecay {
    /// Rate of the first steps.
    pub base: f32,
    /// Factor applied at each decay.
    pub gamma: f32,
    /// Steps between decays.
    pub every: usize,
}

impl LrSchedule for StepDecay {
    fn learning_rate(&self, step: usize) -> f32 {
        self.base * self.gamma.powi((step / self.every.max(1)) as i32)
    }
}

/// `base`, multiplied by `gamma` at each of the `milestones` steps (PyTorch's
/// `MultiStepLR`).
#[derive(Clone, Debug)]
pub struct MultiStep {
    /// Rate before the first milestone.
    pub base: f32,
    /// Factor applied at each milestone.
    pub gamma: f32,
    /// Steps at which the rate drops.
    pub milestones: Vec<usize>,
}

impl LrSchedule for MultiStep {
    fn learning_rate(&self, step: usize) -> f32 {
        let passed = self.milestones.iter().filter(|&&m| step >= m).count();
        self.base * self.gamma.powi(passed as i32)
    }
}

/// Cosine annealing from `base` at step 0 to `min` at step `steps` (and after).
#[derive(Clone, Copy, Debug)]
pub struct Cosine {
    /// Starting rate.
    pub base: f32,
    /// Final rate.
    pub min: f32,
    /// Length of the schedule in steps.
    pub steps: usize,
}

impl LrSchedule for Cosine {
    fn learning_rate(&self, step: usize) -> f32 {
        let progress = (step as f32 / self.steps.max(1) as f32).min(1.0);
        self.min + 0.5 * (self.base - self.min) * (1.0 + (PI * progress).cos())
    }
}

/// The one-cycle policy (Smith 2018; PyTorch's `OneCycleLR` with its defaults): over
/// the first `rise_steps` the rate climbs from `max / 25` to `max` along a half cosine,
/// then falls along a half cosine to `max / 25 / 10⁴` at step `steps`.
#[derive(Clone, Copy, Debug)]
pub struct OneCycle {
    /// Peak rate.
    pub max: f32,
    /// Steps of the rising phase.
    pub rise_steps: usize,
    /// Length of the whole schedule in steps.
    pub steps: usize,
}

impl OneCycle {
    /// Ratio of the peak to the starting rate (PyTorch's `div_factor`).
    pub const START_DIVISOR: f32 = 25.0;
    /// Ratio of the starting to the final rate (PyTorch's `final_div_factor`).
    pub const FINAL_DIVISOR: f32 = 1e4;
}

/// The half cosine from `from` at `progress` 0 to `to` at 1.
fn anneal(from: f32, to: f32, progress: f32) -> f32 {
    to + 0.5 * (from - to) * (1.0 + (PI * progress.clamp(0.0, 1.0)).cos())
}

impl LrSchedule for OneCycle {
    fn learning_rate(&self, step: usize) -> f32 {
        let start = self.max / Self::START_DIVISOR;
        let end = start / Self::FINAL_DIVISOR;
        if step < self.rise_steps {
            anneal(start, self.max, step as f32 / self.rise_steps as f32)
        } else {
            let fall = self.steps.saturating_sub(self.rise_steps).max(1);
            anneal(self.max, end, (step - self.rise_steps) as f32 / fall as f32)
        }
    }
}

/// A linear warmup before another schedule: during the first `steps` steps the rate
/// rises linearly to `then`'s first rate (step `s` gets `(s + 1) / steps` of it), then
/// `then` runs from its own step 0.
pub struct Warmup<S> {
    /// Steps of the warmup.
    pub steps: usize,
    /// The schedule after the warmup.
    pub then: S,
}

impl<S: LrSchedule> LrSchedule for Warmup<S> {
    fn learning_rate(&self, step: usize) -> f32 {
        if step < self.steps {
            self.then.learning_rate(0) * (step + 1) as f32 / self.steps as f32
        } else {
            self.then.learning_rate(step - self.steps)
        }
    }
}

impl LrSchedule for Box<dyn LrSchedule> {
    fn learning_rate(&self, step: usize) -> f32 {
        self.as_ref().learning_rate(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1e-3)
    }

    #[test]
    fn each_schedule_at_known_steps() {
        let step = StepDecay { base: 0.1, gamma: 0.5, every: 2 };
        assert_eq!([0, 1, 2, 5].map(|s| step.learning_rate(s)), [0.1, 0.1, 0.05, 0.025]);
        let multi = MultiStep { base: 0.1, gamma: 0.1, milestones: vec![50, 75] };
        let rates = [0, 49, 50, 74, 75, 99].map(|s| multi.learning_rate(s));
        assert!(
            rates.iter().zip([0.1, 0.1, 0.01, 0.01, 0.001, 0.001]).all(|(&a, b)| close(a, b)),
            "{rates:?}"
        );
        // Cosine from 1 to 0 over 4 steps: cos(π·s/4) halfway-shifted: 1, 0.853553, 0.5, 0.146447, 0.
        let cosine = Cosine { base: 1.0, min: 0.0, steps: 4 };
        let want = [1.0, 0.853_553_4, 0.5, 0.146_446_6, 0.0, 0.0];
        for (s, w) in want.into_iter().enumerate() {
            assert!((cosine.learning_rate(s) - w).abs() < 1e-6, "cosine at {s}");
        }
        assert_eq!(Constant(0.3).learning_rate(9), 0.3);
    }

    #[test]
    fn one_cycle_rises_then_falls_like_pytorch() {
        // max 0.1, 10 steps, 3 rising: starts at 0.004, peaks at step 3, ends at 4e-7.
        let cycle = OneCycle { max: 0.1, rise_steps: 3, steps: 10 };
        assert!(close(cycle.learning_rate(0), 0.004));
        // Step 1: 0.1 + 0.5·(0.004 − 0.1)·(1 + cos(π/3)) = 0.1 − 0.048·1.5 = 0.028.
        assert!(close(cycle.learning_rate(1), 0.028));
        assert!(close(cycle.learning_rate(3), 0.1));
        // Step 3 + 7/2 is the fall's midpoint; at 10 it reaches max / 25 / 1e4.
        assert!(close(cycle.learning_rate(10), 4e-7));
        let mid = OneCycle { max: 0.1, rise_steps: 3, steps: 11 }.learning_rate(7);
        assert!(close(mid, 0.5 * (0.1 + 4e-7)), "{mid}");
    }

    #[test]
    fn warmup_ramps_linearly_then_hands_over() {
        let schedule = Warmup { steps: 4, then: Cosine { base: 0.2, min: 0.0, steps: 10 } };
        let rates: Vec<f32> = (0..6).map(|s| schedule.learning_rate(s)).collect();
        let want = [0.05, 0.1, 0.15, 0.2, 0.2, 0.2 * 0.5 * (1.0 + (PI / 10.0).cos())];
        assert!(rates.iter().zip(want).all(|(&a, b)| close(a, b)), "{rates:?}");
        assert!(close(schedule.learning_rate(14), 0.0));
    }
}
