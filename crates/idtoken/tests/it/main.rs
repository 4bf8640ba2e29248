//! Integration tests of the `idtoken` library, over real loopback HTTP
//! against the emulator. One binary, a module per area, to keep link time down.

mod cache;
#[cfg(feature = "reqwest-middleware")]
mod client_reqwest;
#[cfg(feature = "tower-client")]
mod client_tower;
mod common;
mod discovery;
mod errors;
mod flows;
#[cfg(any(feature = "reqwest-middleware", feature = "tower-client"))]
mod upstream;
mod verify;
