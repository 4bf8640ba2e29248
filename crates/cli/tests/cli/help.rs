//! What `idtoken --help` says for every subcommand.

use crate::support::{idtoken, run, stdout};

#[tokio::test]
async fn help_ends_with_the_exit_codes_the_readme_lists() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).arg("--help")).await;
    assert!(out.status.success());
    let help = stdout(&out);
    let table = help
        .split_once("Exit codes:")
        .map(|(_, t)| format!("Exit codes:{t}"))
        .expect("--help lists the exit codes");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    assert!(
        readme.contains(table.trim_end()),
        "README and --help disagree on exit codes:\n{table}"
    );
    for code in ["  7 ", "  22 ", "  28 "] {
        assert!(table.contains(code), "{table}");
    }
}
