//! Server-side integrations, each behind its own cargo feature.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "tower")]
pub mod tower;
