//! The emulator over real HTTP on loopback, one module per endpoint family.

mod aws_imds;
mod common;
mod control;
mod endpoints;
mod github;
mod iam;
mod metadata;
mod oauth2;
mod sts;
mod user;
mod workforce;
mod x509;
