//! The `idtoken` command line: print, use and debug Google ID tokens, and
//! run the emulator. A thin layer over the `idtoken` and `idtoken-emulator`
//! crates: parse, dispatch, turn errors into exit codes.

mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Google-signed OIDC ID tokens: mint, send, verify, emulate.
#[derive(Parser, Debug)]
#[command(name = "idtoken", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print an ID token for an audience (like `gcloud auth print-identity-token`).
    Token(cmd::token::Args),
    /// Make an HTTP request carrying an ID token (curl-like).
    Curl(cmd::curl::Args),
    /// Run a local reverse proxy that adds an ID token to every request to one target.
    #[command(after_help = cmd::proxy::AFTER_HELP)]
    Proxy(cmd::proxy::Args),
    /// Verify a token (signature, issuer, audience, times) and print its claims.
    Verify(cmd::verify::Args),
    /// Show a token's header and claims WITHOUT verifying them.
    Decode(cmd::decode::Args),
    /// Explain where credentials come from and how a token is minted, then mint one.
    Doctor(cmd::doctor::Args),
    /// Run the local Google identity emulator.
    Emulator(cmd::emulator::Args),
    /// Start the emulator and a protected service, and show authenticated requests succeed.
    Demo(cmd::demo::Args),
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<idtoken::Error> for Failure {
    fn from(e: idtoken::Error) -> Self {
        Failure::new(crate::exit::FAILURE, e.to_string())
    }
}

impl From<idtoken::verify::BuildError> for Failure {
    fn from(e: idtoken::verify::BuildError) -> Self {
        Failure::new(crate::exit::FAILURE, e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IDTOKEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The proxy is I/O-bound and forwards each request through two tasks
    // (the client's connection and the pooled connection to the target):
    // on one thread they hand the request over without waking another
    // worker (docs/BENCHMARKS.md, `idtoken proxy`).
    let mut builder = match &cli.command {
        Command::Proxy(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idtoken: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Token(args) => cmd::token::run(args).await,
            // Flags are checked and resolved before anything is read,
            // fetched or bound.
            Command::Curl(args) => match cmd::curl::resolve(args) {
                Ok(config) => cmd::curl::run(config).await,
                Err(f) => Err(f),
            },
            Command::Proxy(args) => match cmd::proxy::resolve(args) {
                Ok(config) => cmd::proxy::run(config).await,
                Err(f) => Err(f),
            },
            Command::Verify(args) => cmd::verify::run(args).await,
            Command::Decode(args) => cmd::decode::run(args).await,
            Command::Doctor(args) => cmd::doctor::run(args).await,
            Command::Emulator(args) => cmd::emulator::run(args).await,
            Command::Demo(args) => cmd::demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("idtoken: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
