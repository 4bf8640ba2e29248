//! The library runs under valgrind: its warm path reads a coarse clock
//! through the vDSO, and finding the vDSO through the kernel's own
//! auxiliary vector crashed every program run under valgrind (which maps
//! no vDSO) with SIGSEGV on the first token read. The test runs this very
//! test binary under valgrind, for the probe below only.

use std::process::Command;

use idtoken::{Clock, SystemClock};

/// What runs under valgrind: the coarse and the precise clock reads.
#[test]
#[ignore = "run under valgrind by the_warm_clock_runs_under_valgrind"]
fn warm_clock_probe() {
    let coarse = SystemClock.now_coarse();
    let precise = SystemClock.now();
    assert!(coarse > std::time::UNIX_EPOCH && precise > std::time::UNIX_EPOCH);
}

#[test]
#[ignore = "needs valgrind (scripts/test installs it); run with --include-ignored"]
fn the_warm_clock_runs_under_valgrind() {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("valgrind")
        .args(["--error-exitcode=99", "--quiet"])
        .arg(exe)
        .args(["--include-ignored", "--exact", "valgrind::warm_clock_probe"])
        .output()
        .expect("valgrind runs: install it (apt-get install valgrind; scripts/test does)");
    assert!(
        out.status.success(),
        "under valgrind: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the probe ran: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
