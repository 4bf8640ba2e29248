//! Integration tests of the `idtoken` library, over real loopback HTTP
//! against the emulator. One binary, a module per area, to keep link time down.

mod cache;
mod chain_errors;
mod common;
mod discovery;
mod errors;
mod flows;
mod impersonation;
mod requests;
mod verify;
