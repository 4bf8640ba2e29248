//! The `idtoken` command line: print, use and debug Google ID tokens, and
//! run the emulator. A thin layer over the `idtoken` and `idtoken-emulator`
//! crates: parse, dispatch, turn errors into exit codes.

mod cmd;
mod exit;
mod token_cache;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

/// Google-signed OIDC ID tokens: mint, send, verify, emulate.
#[derive(Parser, Debug)]
#[command(name = "idtoken", version, about, long_about = None, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More of the log on stderr: -v info, -vv debug (each request to an
    /// identity endpoint), -vvv trace. Without it: IDTOKEN_LOG, then
    /// RUST_LOG (env-filter syntax), else warnings.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors in the log (no warnings). Notes a command prints itself,
    /// such as the proxy's access log, are not part of the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
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
    /// Print a completion script for bash, zsh, fish, elvish or powershell.
    Completions(cmd::shell::CompletionsArgs),
    /// Print the idtoken(1) man page (roff), or write every page with --out-dir.
    Man(cmd::shell::ManArgs),
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
    let result = match cli.command {
        // Generated from the definition above: no runtime, no logging.
        Command::Completions(args) => cmd::shell::completions(Cli::command(), args),
        Command::Man(args) => cmd::shell::man(Cli::command(), args),
        command => return run(command, log_filter(cli.verbose, cli.quiet)),
    };
    finish(result)
}

/// What the log shows: -v/-q when given, else IDTOKEN_LOG, else RUST_LOG,
/// else warnings and errors.
fn log_filter(verbose: u8, quiet: bool) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("info"),
        (false, 2) => Some("debug"),
        (false, _) => Some("trace"),
    };
    match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_env("IDTOKEN_LOG")
            .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
            .unwrap_or_else(|_| EnvFilter::new("warn")),
    }
}

fn run(command: Command, filter: tracing_subscriber::EnvFilter) -> ExitCode {
    use std::io::IsTerminal as _;
    // Colours only on a terminal, and never with NO_COLOR set (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        // After the proxy's access-log lines held so far (none elsewhere).
        .with_writer(|| {
            cmd::proxy::flush_access_log();
            std::io::stderr()
        })
        .init();
    // The proxy is I/O-bound, and a request crosses between tasks (over
    // HTTP/2 each request has its own; the pool's connections run in
    // theirs): on one thread they hand it over without waking another
    // worker (docs/BENCHMARKS.md, `idtoken proxy`).
    let mut builder = match &command {
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
        match command {
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
            // Answered by `main` before any runtime starts.
            Command::Completions(_) | Command::Man(_) => Ok(()),
        }
    });
    // Requests still running when the proxy stops end as the runtime
    // drops them, and their access lines with them: write those too.
    drop(runtime);
    cmd::proxy::flush_access_log();
    finish(result)
}

/// The exit code of a result; a failure's message on stderr.
fn finish(result: Result<(), Failure>) -> ExitCode {
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
