//! The `reqwest-middleware` integration (feature `reqwest-middleware`):
//! [`IdTokenMiddleware`] adds a token to each request, as an
//! [`attach::Tokens`](crate::attach::Tokens) policy says; [`new_client`] is
//! Go's `idtoken.NewClient`, and [`client_with`] the same for any policy.
//!
//! Redirects: reqwest follows them inside the client, below the
//! middleware, and drops `Authorization` on a hop to another origin but
//! not `X-Serverless-Authorization`.
//! [`attach::redirect_policy`](crate::attach::redirect_policy) keeps the
//! token at home in both modes; [`client_with`] and [`new_client`] use it.

mod client;
mod middleware;

pub use client::{client_with, new_client};
pub use middleware::IdTokenMiddleware;
