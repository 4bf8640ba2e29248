//! `idtoken decode`: show a token's header and claims WITHOUT verifying
//! anything, with `iat`/`exp` as dates and the time left. The text is made
//! by `render` (its own file, I/O-free, for the fuzz target `decode`).

pub(crate) mod render;

use crate::Failure;

/// Arguments of `idtoken decode`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The token (a leading `Bearer ` is ignored); `-` or nothing reads stdin.
    token: Option<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let token = super::read_token(args.token.as_deref()).await?;
    let text = render::render(&token, std::time::SystemTime::now())
        .map_err(|why| Failure::new(crate::exit::FAILURE, why))?;
    print!("{text}");
    Ok(())
}
