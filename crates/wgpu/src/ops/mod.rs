//! The backend's ops by kernel family, as in `kiln-cpu`: each module records the
//! dispatches of its `Backend` methods, which `backend.rs` forwards to.

mod channel_norm;
mod conv;
mod elementwise;
pub(crate) mod gemm;
mod indexing;
mod optim;
mod pool;
mod reduce;
mod row_norm;
