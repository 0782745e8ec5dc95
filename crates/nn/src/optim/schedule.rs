//! Learning-rate schedules: the rate for each epoch, applied with
//! `optimizer.set_learning_rate(schedule.learning_rate(epoch))`.

/// The learning rate as a function of the (0-based) epoch.
pub trait LrSchedule {
    /// The rate to use during `epoch`.
    fn learning_rate(&self, epoch: usize) -> f32;
}

/// The same rate every epoch.
#[derive(Clone, Copy, Debug)]
pub struct Constant(pub f32);

impl LrSchedule for Constant {
    fn learning_rate(&self, _epoch: usize) -> f32 {
        self.0
    }
}

/// `base · gamma^(epoch / every)`: multiply by `gamma` every `every` epochs.
#[derive(Clone, Copy, Debug)]
pub struct StepDecay {
    /// Rate of the first epochs.
    pub base: f32,
    /// Factor applied at each decay.
    pub gamma: f32,
    /// Epochs between decays.
    pub every: usize,
}

impl LrSchedule for StepDecay {
    fn learning_rate(&self, epoch: usize) -> f32 {
        self.base * self.gamma.powi((epoch / self.every.max(1)) as i32)
    }
}

/// Cosine annealing from `base` at epoch 0 to `min` at epoch `epochs`.
#[derive(Clone, Copy, Debug)]
pub struct Cosine {
    /// Starting rate.
    pub base: f32,
    /// Final rate.
    pub min: f32,
    /// Length of the schedule in epochs.
    pub epochs: usize,
}

impl LrSchedule for Cosine {
    fn learning_rate(&self, epoch: usize) -> f32 {
        let progress = (epoch as f32 / self.epochs.max(1) as f32).min(1.0);
        self.min + 0.5 * (self.base - self.min) * (1.0 + (std::f32::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let step = StepDecay { base: 0.1, gamma: 0.5, every: 2 };
        assert_eq!([0, 1, 2, 5].map(|e| step.learning_rate(e)), [0.1, 0.1, 0.05, 0.025]);
        let cosine = Cosine { base: 1.0, min: 0.0, epochs: 4 };
        assert!((cosine.learning_rate(0) - 1.0).abs() < 1e-6);
        assert!((cosine.learning_rate(2) - 0.5).abs() < 1e-6);
        assert!(cosine.learning_rate(4).abs() < 1e-6);
        assert_eq!(Constant(0.3).learning_rate(9), 0.3);
    }
}
