//! Parameter initialization: the schemes (Glorot/Xavier, Kaiming/He, zeros) and the
//! seeded `Initializer` that layers draw their weights from, so a seed gives the same
//! model on every backend.

use kiln_tensor::{Device, Normal, Rng, Shape, Tensor};

/// How weights are drawn. Biases always start at zero (as in Keras).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// Uniform in ±√(6 / (fan_in + fan_out)): Keras' default.
    #[default]
    GlorotUniform,
    /// Uniform in ±√(6 / fan_in): suited to ReLU networks.
    HeUniform,
    /// Normal with standard deviation √(2 / fan_in).
    HeNormal,
    /// All zeros.
    Zeros,
}

impl Init {
    /// A tensor of `shape` initialized by this scheme from `seed`.
    pub fn tensor(
        self,
        shape: impl Into<Shape>,
        fan_in: usize,
        fan_out: usize,
        seed: u64,
        device: &Device,
    ) -> Tensor {
        let shape = shape.into();
        match self {
            Init::GlorotUniform => {
                let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
                Tensor::rand_uniform(shape, -limit..limit, seed, device)
            }
            Init::HeUniform => {
                let limit = (6.0 / fan_in as f32).sqrt();
                Tensor::rand_uniform(shape, -limit..limit, seed, device)
            }
            Init::HeNormal => {
                Tensor::normal(shape, Normal { mean: 0.0, std: (2.0 / fan_in as f32).sqrt() }, seed, device)
            }
            Init::Zeros => Tensor::zeros(shape, device),
        }
    }
}

/// Where new layers get their parameters: the device, the scheme, and a seeded stream
/// that gives each layer its own seed in construction order.
///
/// ```
/// use kiln_cpu::CpuDevice;
/// use kiln_nn::{Dense, Init, Initializer};
/// use kiln_tensor::Device;
///
/// let mut init = Initializer::new(&Device::cpu(), 42).with_scheme(Init::HeUniform);
/// let layer = Dense::new(&mut init, 784, 10);
/// assert_eq!(layer.weight().dims(), &[10, 784]);
/// ```
#[derive(Clone, Debug)]
pub struct Initializer {
    device: Device,
    scheme: Init,
    rng: Rng,
}

impl Initializer {
    /// Glorot-uniform weights on `device`, seeded by `seed`.
    pub fn new(device: &Device, seed: u64) -> Self {
        Initializer { device: device.clone(), scheme: Init::default(), rng: Rng::new(seed) }
    }

    /// Uses `scheme` for the weights of layers built from now on.
    pub fn with_scheme(mut self, scheme: Init) -> Self {
        self.scheme = scheme;
        self
    }

    /// The device parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A weight of `shape` (a parameter: it requires grad).
    pub fn weight(&mut self, shape: impl Into<Shape>, fan_in: usize, fan_out: usize) -> Tensor {
        let seed = self.rng.next_u64();
        self.scheme.tensor(shape, fan_in, fan_out, seed, &self.device).with_requires_grad()
    }

    /// The next seed of this initializer's stream (for layers that draw their own).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A zero bias of `len` elements (a parameter).
    pub fn bias(&mut self, len: usize) -> Tensor {
        Tensor::zeros([len], &self.device).with_requires_grad()
    }
}
