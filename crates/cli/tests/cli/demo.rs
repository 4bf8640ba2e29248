//! `idtoken demo`: every flow passes.

use crate::support::{idtoken, run, stderr, stdout};

#[tokio::test]
async fn demo_exits_0_after_all_checks_pass() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).arg("demo")).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("8 passed, 0 failed"), "{text}");
    for flow in [
        "metadata server",
        "service account key",
        "impersonated_service_account",
        "external_account",
        "authorized_user",
        "gcloud user login + impersonation",
    ] {
        assert!(text.contains(flow), "no row for {flow}: {text}");
    }
    assert!(text.contains("-> 401"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
