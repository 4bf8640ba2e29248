//! Integration tests of the `idtoken` library, over real loopback HTTP
//! against the emulator. One binary, a module per area, to keep link time down.

mod attacks;
mod aws;
mod cache;
mod chain_errors;
#[cfg(feature = "reqwest-middleware")]
mod client_reqwest;
#[cfg(feature = "tower")]
mod client_tower;
mod common;
mod crosscheck;
mod discovery;
mod errors;
mod flows;
#[cfg(feature = "tower")]
mod grpc;
mod hostile_numbers;
mod impersonation;
mod insecure_endpoints;
mod keycache;
#[cfg(feature = "axum")]
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod new_client;
#[cfg(feature = "axum")]
mod push_receiver;
mod requests;
mod supplier;
#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
mod upstream;
mod valgrind;
mod verified_cache;
mod verify;
#[cfg(feature = "x509")]
mod x509;
