//! The repository's PVE schema subset (`agentlab-pve/schema/`): it holds exactly the methods
//! in `methods.txt`, every one unchanged from the official schema (when `../shared/pve/` is
//! present), and every method the backend calls is in it.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use agentlab_core::hypervisor::Hypervisor;
use agentlab_core::ids::{Vmid, WorkspaceId};
use agentlab_pve::sim::{default_schema_path, full_schema_paths, pve84_schema_path};
use serde_json::Value;

fn listed() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/methods.txt"))
            .unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (m, p) = l.split_once(' ').unwrap();
            (m.to_owned(), p.to_owned())
        })
        .collect()
}

fn index(node: &Value, out: &mut Vec<(String, String, Value)>) {
    if let (Some(path), Some(info)) = (
        node.get("path").and_then(Value::as_str),
        node.get("info").and_then(Value::as_object),
    ) {
        for (m, def) in info {
            out.push((m.clone(), path.to_owned(), def.clone()));
        }
    }
    for c in node
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        index(c, out);
    }
}

fn methods(path: &Path) -> Vec<(String, String, Value)> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for tree in v.as_array().unwrap() {
        index(tree, &mut out);
    }
    out
}

#[test]
fn subset_holds_exactly_the_listed_methods_unchanged() {
    let want = listed();
    let (full91, full84) = full_schema_paths();
    for (subset, full) in [
        (default_schema_path(), full91),
        (pve84_schema_path(), full84),
    ] {
        let got = methods(&subset);
        let names: BTreeSet<(String, String)> =
            got.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
        assert_eq!(
            names,
            want,
            "{} is stale: run scripts/pve-schema-subset.py",
            subset.display()
        );
        if !full.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "full PVE schema missing at {} (required in CI)",
                full.display()
            );
            eprintln!(
                "SKIP: full schema not found at {}; subset content not compared",
                full.display()
            );
            continue;
        }
        let reference = methods(&full);
        for (m, p, def) in &got {
            let orig = reference
                .iter()
                .find(|(rm, rp, _)| rm == m && rp == p)
                .unwrap_or_else(|| panic!("{m} {p} not in {}", full.display()));
            assert_eq!(&orig.2, def, "{m} {p} differs from {}", full.display());
        }
    }
}

/// Drives every backend verb and `doctor`; any request outside the subset would be answered
/// 501 and recorded without a schema template.
#[tokio::test]
async fn every_method_the_backend_calls_is_in_the_subset() {
    let Some((sim, hv)) = common::setup(|_| {}).await else {
        return;
    };
    let s = common::spec(9050);
    hv.create(&s).await.unwrap();
    hv.configure(&s).await.unwrap();
    hv.start(s.vmid, None).await.unwrap();
    hv.status(s.vmid).await.unwrap();
    for _ in 0..200 {
        if hv.guest_address(s.vmid).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hv.list_managed().await.unwrap();
    hv.used_ids().await.unwrap();
    let ws = WorkspaceId::generate();
    let vol = hv.create_volume(&ws, 1).await.unwrap();
    hv.attach_volume(s.vmid, &vol).await.unwrap();
    hv.detach_volume(s.vmid, &vol).await.unwrap();
    hv.delete_volume(&vol).await.unwrap();
    hv.stop(s.vmid, Duration::from_secs(1)).await.unwrap();
    hv.destroy(Vmid::new(9050).unwrap()).await.unwrap();
    let _ = agentlab_pve::doctor(hv.options(), common::TEMPLATE).await;
    let outside: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.template.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        outside.is_empty(),
        "methods not in agentlab-pve/schema (add them to methods.txt and regenerate): {outside:?}"
    );
    let called: BTreeSet<(String, String)> = sim
        .requests()
        .iter()
        .filter_map(|r| Some((r.method.clone(), r.template.clone()?)))
        .collect();
    assert!(called.len() >= 15, "{called:?}");
    common::assert_schema_clean(&sim);
}
