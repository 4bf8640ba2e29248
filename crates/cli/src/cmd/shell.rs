//! `idtoken completions SHELL` and `idtoken man`: what a shell and `man`
//! need, generated from the same clap definition as `--help`, so they
//! cannot drift from it.

use std::io::Write as _;
use std::path::PathBuf;

use crate::Failure;

/// `idtoken completions`.
#[derive(clap::Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `idtoken man`.
#[derive(clap::Args, Debug)]
pub(crate) struct ManArgs {
    /// Write one page per command (idtoken.1, idtoken-token.1, ...) into
    /// this folder instead of printing idtoken(1) to stdout.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell` on stdout, e.g.
/// `idtoken completions bash > ~/.local/share/bash-completion/completions/idtoken`.
pub(crate) fn completions(mut cli: clap::Command, args: CompletionsArgs) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "idtoken", &mut out);
    write_stdout(&out)
}

/// Prints idtoken(1), or writes every page into `--out-dir`.
pub(crate) fn man(cli: clap::Command, args: ManArgs) -> Result<(), Failure> {
    match args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                Failure::new(
                    crate::exit::FAILURE,
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
            clap_mangen::generate_to(cli, &dir).map_err(|e| {
                Failure::new(
                    crate::exit::FAILURE,
                    format!("cannot write the man pages into {}: {e}", dir.display()),
                )
            })
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cli)
                .render(&mut out)
                .map_err(|e| Failure::new(crate::exit::FAILURE, format!("cannot render: {e}")))?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(crate::exit::FAILURE, format!("cannot write to stdout: {e}")))
}
