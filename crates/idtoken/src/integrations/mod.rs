//! Framework integrations, one folder per framework, each behind one
//! feature named after it; both directions of a framework live together.
//! The framework-independent cores are [`attach`](crate::attach) (the
//! token policy for outgoing requests) and [`verify`](crate::verify).
//!
//! | module | feature | attach (outgoing) | verify (incoming) |
//! |---|---|---|---|
//! | `tower` | `tower` | `AddIdTokenLayer` | `VerifyLayer` |
//! | `axum` | `axum` (implies `tower`) | | `VerifiedClaims` |
//! | `reqwest_middleware` | `reqwest-middleware` | `IdTokenMiddleware`, `new_client`, `client_with` | |

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub mod reqwest_middleware;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
