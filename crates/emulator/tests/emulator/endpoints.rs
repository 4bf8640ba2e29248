//! The endpoint table, `ENDPOINTS`: each entry is routed and counted on its
//! counter, and docs/EMULATOR.md lists the same endpoints.

use idtoken_emulator::{ENDPOINTS, Emulator, Endpoint, EndpointInfo};

use crate::common::TestResult;

#[tokio::test]
async fn every_listed_endpoint_is_routed_and_counted_on_its_counter() -> TestResult {
    let emu = Emulator::start().await?;
    let client = reqwest::Client::new();
    let target = emu.target_service_account_email();
    for info in ENDPOINTS {
        for path in std::iter::once(info.path).chain(info.aliases.iter().copied()) {
            let path = path
                .replace("{account}", "default")
                .replace("{email}", &target)
                .replace("{role}", "idtoken-emulator-role");
            let before = emu.counters();
            let resp = client
                .request(info.method.parse()?, format!("{}{path}", emu.url()))
                .header("Metadata-Flavor", "Google")
                .send()
                .await?;
            // Every request here has valid names, so a 404 is the router's.
            assert_ne!(resp.status(), 404, "{} {path} is not routed", info.method);
            let after = emu.counters();
            match info.counter() {
                Some(e) => assert_eq!(after.get(e), before.get(e) + 1, "{path} counts on {e}"),
                None => assert_eq!(after.total(), before.total(), "{path} is not counted"),
            }
            assert!(after.total() <= before.total() + 1, "{path}: {after:?}");
        }
    }
    for e in Endpoint::ALL {
        let listed = ENDPOINTS.iter().filter(|i| i.counter() == Some(e)).count();
        assert_eq!(listed, 1, "{e} is in ENDPOINTS {listed} times");
    }
    Ok(())
}

/// The first four cells of the endpoint's row in docs/EMULATOR.md; the
/// fifth, its answer, is prose.
fn row_start(info: &EndpointInfo) -> String {
    let mut request = format!("`{} {}`", info.method, info.path);
    if !info.aliases.is_empty() {
        let aliases: Vec<String> = info.aliases.iter().map(|a| format!("`{a}`")).collect();
        request.push_str(&format!(" (also {})", aliases.join(", ")));
    }
    let google = info.google.map_or("—".to_owned(), |g| format!("`{g}`"));
    format!(
        "| `{}` | {} | {request} | {google} |",
        info.name, info.family
    )
}

#[test]
fn emulator_md_lists_the_endpoint_table() -> TestResult {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/EMULATOR.md"
    ))?;
    let section = doc
        .split_once("## Endpoints")
        .and_then(|(_, rest)| rest.split("\n## ").next())
        .ok_or("docs/EMULATOR.md has no Endpoints section")?;
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    let expected: Vec<String> = ENDPOINTS.iter().map(row_start).collect();
    let in_step = rows.len() == expected.len()
        && rows
            .iter()
            .zip(&expected)
            .all(|(row, start)| row.starts_with(start.as_str()));
    assert!(
        in_step,
        "docs/EMULATOR.md's endpoint table is not ENDPOINTS; its rows should start:\n{}",
        expected.join("\n")
    );
    Ok(())
}
