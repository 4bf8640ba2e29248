//! HTTP requests per flow (docs/BENCHMARKS.md): each flow's first token
//! costs its chain once; 100 further calls on a warm source cost nothing.
//! `cargo test -p idtoken --test it requests -- --nocapture` prints the table.

use idtoken::{Credentials, Impersonate};
use idtoken_emulator::{Counters, Endpoint};

use crate::common::*;

/// The endpoints called between two snapshots, e.g. `token 1, sts 1`.
fn requests(before: &Counters, after: &Counters) -> String {
    Endpoint::ALL
        .iter()
        .map(|e| (e, after.get(*e) - before.get(*e)))
        .filter(|(_, n)| *n > 0)
        .map(|(e, n)| format!("{e} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn each_flow_makes_requests_for_its_first_token_only() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let load = |p: &std::path::Path| Credentials::from_file(p).expect("loads");
    let to_target = Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url());
    let flows: Vec<(&str, Credentials, u64)> = vec![
        ("service_account", load(&files.service_account), 1),
        (
            "metadata server",
            Credentials::metadata_server(&emu.metadata_host()),
            1,
        ),
        ("authorized_user", load(&files.authorized_user), 1),
        (
            "impersonated_service_account (key source)",
            load(&files.impersonated_from_service_account),
            2,
        ),
        (
            "impersonated_service_account (user source)",
            load(&files.impersonated_from_user),
            2,
        ),
        (
            "external_account (file source)",
            load(&files.external_account_file),
            2,
        ),
        (
            "external_account (URL source)",
            load(&files.external_account_url),
            3,
        ),
        (
            "external_account (AWS, IMDSv2)",
            load(&files.external_account_aws),
            6,
        ),
        (
            "external_account (subject token supplier, reading the URL)",
            crate::supplier::supplier_credentials(&emu),
            3,
        ),
        (
            "impersonated_service_account (workforce user source)",
            load(&files.impersonated_from_workforce_user),
            2,
        ),
        (
            "metadata server + impersonate",
            Credentials::metadata_server(&emu.metadata_host()).impersonate(to_target),
            2,
        ),
    ];
    println!("| flow | first token | requests | 100 further calls |\n|---|---|---|---|");
    for (name, creds, expected) in flows {
        let before = emu.counters();
        let source = creds.token_source("https://svc.example");
        source.token().await.expect("first token");
        let first = emu.counters();
        for _ in 0..100 {
            source.token().await.expect("cached token");
        }
        let after = emu.counters().total();
        let first_total = first.total() - before.total();
        let which = requests(&before, &first);
        assert_eq!(first_total, expected, "{name}: {which}");
        assert_eq!(after - first.total(), 0, "{name}: warm calls made requests");
        println!("| {name} | {first_total} | {which} | 0 |");
    }
}
