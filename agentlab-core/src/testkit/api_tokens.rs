//! [`api_token_store_conformance`]: the contract of [`ApiTokenStore`].

use crate::api_token::{ApiTokenStore, NewApiToken, Scope, split_token};
use crate::store::StateStoreError;
use crate::time::Timestamp;

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("timestamp")
}

fn new(name: &str) -> NewApiToken {
    NewApiToken {
        name: name.to_owned(),
        scopes: vec![Scope::parse("job:*").expect("scope")],
        profiles: vec!["p".to_owned()],
        ttl_secs: Some(3600),
    }
}

/// Runs the suite against a fresh, empty store; panics naming the first violation.
/// Called by `tests/store_conformance.rs` for both stores.
pub async fn api_token_store_conformance(store: &dyn ApiTokenStore) {
    assert!(
        store.list_api_tokens().await.expect("list").is_empty(),
        "a fresh store lists no token"
    );
    let (a, text) = new("ci").issue(at(0)).expect("issue");
    store.insert_api_token(&a).await.expect("insert");
    let got = store.get_api_token(&a.id).await.expect("get");
    assert_eq!(got, a, "a token reads back as stored, hash included");
    let (_, secret) = split_token(text.expose()).expect("split");
    got.check(secret, at(1))
        .expect("the stored hash checks the secret");

    let (dup, _) = new("ci").issue(at(1)).expect("issue");
    assert!(
        matches!(
            store.insert_api_token(&dup).await,
            Err(StateStoreError::AlreadyExists { .. })
        ),
        "a second active token with the same name is AlreadyExists"
    );
    assert!(
        matches!(
            store.get_api_token("000000000000").await,
            Err(StateStoreError::NotFound { .. })
        ),
        "an unknown id is NotFound"
    );

    store.touch_api_token(&a.id, at(5)).await.expect("touch");
    assert_eq!(
        store.get_api_token(&a.id).await.expect("get").last_used_at,
        Some(at(5)),
        "touch records the time of use"
    );

    let revoked = store
        .revoke_api_token("ci", at(10))
        .await
        .expect("revoke by name");
    assert_eq!(revoked.id, a.id);
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let again = store
        .revoke_api_token(&a.id, at(20))
        .await
        .expect("revoke by id");
    assert_eq!(
        again.revoked_at,
        Some(at(10)),
        "revoking twice keeps the first time"
    );
    assert!(
        matches!(
            store.revoke_api_token("ci", at(30)).await,
            Err(StateStoreError::NotFound { .. })
        ),
        "a revoked token's name no longer names a token to revoke"
    );
    store
        .insert_api_token(&dup)
        .await
        .expect("the name is free again once revoked");
    let all = store.list_api_tokens().await.expect("list");
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str(), dup.id.as_str()],
        "list is oldest first and keeps revoked tokens"
    );
}
