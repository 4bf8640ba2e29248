//! `idtoken completions SHELL` and `idtoken man`: every shell's script and
//! every man page name every subcommand that `--help` lists.

use crate::support::{idtoken, run, stdout};

/// The subcommands `idtoken --help` lists, read from its "Commands:" block.
async fn subcommands(home: &std::path::Path) -> Vec<String> {
    let out = run(idtoken(home).arg("--help")).await;
    assert!(out.status.success());
    let help = stdout(&out);
    let block = help
        .split_once("Commands:")
        .and_then(|(_, rest)| rest.split("\n\n").next())
        .expect("--help has a Commands: block")
        .to_owned();
    let names: Vec<String> = block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    names
}

#[tokio::test]
async fn every_shell_gets_a_script_naming_every_subcommand() {
    let home = tempfile::tempdir().expect("home");
    let names = subcommands(home.path()).await;
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(idtoken(home.path()).args(["completions", shell])).await;
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "{shell} script lacks {name}"
            );
        }
    }
    let out = run(idtoken(home.path()).args(["completions", "tcsh"])).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[tokio::test]
async fn the_man_page_and_one_page_per_subcommand() {
    let home = tempfile::tempdir().expect("home");
    let names = subcommands(home.path()).await;
    let out = run(idtoken(home.path()).arg("man")).await;
    assert!(out.status.success(), "{out:?}");
    let page = stdout(&out);
    assert!(page.contains(".TH idtoken 1"), "roff with a title: {page}");
    assert!(page.contains("Exit codes"), "the exit codes are in it");
    for name in &names {
        assert!(page.contains(name.as_str()), "idtoken(1) lacks {name}");
    }
    let dir = tempfile::tempdir().expect("dir");
    let out = run(idtoken(home.path())
        .args(["man", "--out-dir"])
        .arg(dir.path().join("man1")))
    .await;
    assert!(out.status.success(), "{out:?}");
    for name in
        std::iter::once("idtoken".to_owned()).chain(names.iter().map(|n| format!("idtoken-{n}")))
    {
        let path = dir.path().join("man1").join(format!("{name}.1"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains(".TH"), "{name}.1 is a man page");
    }
}
