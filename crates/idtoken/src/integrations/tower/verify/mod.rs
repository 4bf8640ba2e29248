//! [`VerifyLayer`], [`VerifyService`] and [`VerifyFuture`]: the incoming
//! half of the tower integration (see the parent module).

mod future;
mod layer;
mod service;

pub use future::VerifyFuture;
pub use layer::VerifyLayer;
pub use service::VerifyService;
