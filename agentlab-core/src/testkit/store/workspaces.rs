//! Conformance checks for workspaces (unique names, CAS on `attached_to`, delete rules) and
//! single-use bootstrap tokens.

use futures::future::join_all;

use super::{ok, plus_secs, sample_workspace, t0, vmid};
use crate::model::BootstrapToken;
use crate::store::{StateStore, StateStoreError};
use crate::token::hash_token;

pub(super) async fn workspaces(store: &dyn StateStore) {
    let mut ws = sample_workspace("ws-conf-beta", t0());
    ws.volume = Some("local-lvm:vm-0-disk-ws".to_owned());
    ok(store.insert_workspace(&ws).await, "insert_workspace");
    let alpha = sample_workspace("ws-conf-alpha", t0());
    ok(store.insert_workspace(&alpha).await, "insert_workspace");
    let same_name = sample_workspace("ws-conf-beta", t0());
    assert_err!(
        store.insert_workspace(&same_name).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "duplicate workspace name"
    );
    let mut same_id = ws.clone();
    same_id.name = "ws-conf-gamma".to_owned();
    assert_err!(
        store.insert_workspace(&same_id).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "duplicate workspace id"
    );
    assert_eq!(
        ok(
            store.get_workspace(ws.id.as_str()).await,
            "get_workspace by id"
        ),
        ws,
        "workspace round trip"
    );
    assert_eq!(
        ok(
            store.get_workspace("ws-conf-beta").await,
            "get_workspace by name"
        ),
        ws,
        "get by name"
    );
    assert_err!(
        store.get_workspace("ws-conf-nope").await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "get missing workspace"
    );
    let names: Vec<String> = ok(store.list_workspaces().await, "list_workspaces")
        .into_iter()
        .map(|w| w.name)
        .filter(|n| n.starts_with("ws-conf-"))
        .collect();
    assert_eq!(
        names,
        ["ws-conf-alpha", "ws-conf-beta"],
        "workspaces ordered by name"
    );

    let v = vmid(1001);
    ws.attached_to = Some(v);
    ok(store.update_workspace(&ws, None).await, "attach");
    assert_eq!(
        ok(store.get_workspace(ws.id.as_str()).await, "get_workspace").attached_to,
        Some(v),
        "attached"
    );
    let mut other = ws.clone();
    other.attached_to = Some(vmid(1002));
    assert_err!(
        store.update_workspace(&other, None).await,
        StateStoreError::Conflict {
            kind: "workspace",
            ..
        },
        "attach an attached workspace"
    );
    assert_err!(
        store.delete_workspace(&ws.id).await,
        StateStoreError::Conflict {
            kind: "workspace",
            ..
        },
        "delete while attached"
    );
    let mut renamed = alpha.clone();
    renamed.name = "ws-conf-beta".to_owned();
    assert_err!(
        store.update_workspace(&renamed, None).await,
        StateStoreError::AlreadyExists {
            kind: "workspace",
            ..
        },
        "rename onto a taken name"
    );
    ws.attached_to = None;
    ok(store.update_workspace(&ws, Some(v)).await, "detach");
    ok(store.delete_workspace(&ws.id).await, "delete_workspace");
    assert_err!(
        store.delete_workspace(&ws.id).await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "delete twice"
    );
    assert_err!(
        store.update_workspace(&ws, None).await,
        StateStoreError::NotFound {
            kind: "workspace",
            ..
        },
        "update deleted workspace"
    );
    assert_err!(
        store.get_workspace("ws-conf-beta").await,
        StateStoreError::NotFound { .. },
        "deleted workspace is gone"
    );
}

pub(super) async fn tokens(store: &dyn StateStore) {
    let (a, b) = (vmid(1301), vmid(1302));
    let expires_at = plus_secs(t0(), 600);
    for (vm, secret) in [(a, "tok-a1"), (a, "tok-a2"), (b, "tok-b")] {
        let token = BootstrapToken {
            vmid: vm,
            hash: hash_token(secret),
            expires_at,
        };
        ok(
            store.put_bootstrap_token(&token).await,
            "put_bootstrap_token",
        );
    }
    let nf = |r: Result<(), StateStoreError>, what: &str| match r {
        Err(StateStoreError::NotFound {
            kind: "bootstrap token",
            id,
        }) => {
            assert!(
                id == a.to_string() || id == b.to_string(),
                "{what}: id is the vmid, got {id}"
            );
        }
        other => panic!("state store conformance: {what} should be NotFound, got {other:?}"),
    };
    nf(
        store.consume_bootstrap_token(a, "tok-b", t0()).await,
        "token of another vmid",
    );
    nf(
        store.consume_bootstrap_token(a, "wrong", t0()).await,
        "unknown token",
    );
    nf(
        store.consume_bootstrap_token(a, "tok-a1", expires_at).await,
        "expired token",
    );
    ok(
        store.consume_bootstrap_token(a, "tok-a1", t0()).await,
        "consume",
    );
    nf(
        store.consume_bootstrap_token(a, "tok-a1", t0()).await,
        "consumed token",
    );
    ok(
        store
            .consume_bootstrap_token(a, "tok-a2", plus_secs(expires_at, -1))
            .await,
        "second token of the vmid",
    );
    ok(
        store.delete_bootstrap_tokens(b).await,
        "delete_bootstrap_tokens",
    );
    nf(
        store.consume_bootstrap_token(b, "tok-b", t0()).await,
        "deleted token",
    );
    ok(
        store.delete_bootstrap_tokens(b).await,
        "delete_bootstrap_tokens is idempotent",
    );

    let c = vmid(1303);
    let token = BootstrapToken {
        vmid: c,
        hash: hash_token("tok-c"),
        expires_at,
    };
    ok(
        store.put_bootstrap_token(&token).await,
        "put_bootstrap_token",
    );
    let results = join_all((0..16).map(|_| store.consume_bootstrap_token(c, "tok-c", t0()))).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "exactly one concurrent consumer wins: {results:?}"
    );
}
