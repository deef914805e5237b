//! Conformance checks for [`StateStore::redeem_bootstrap_token`]: the token's use and the
//! runner token are one transaction, refusals name their reason, used and expired rows stay.

use futures::future::join_all;

use super::{ok, plus_secs, sample_job, t0, vmid};
use crate::model::BootstrapToken;
use crate::state::JobState;
use crate::store::{RunnerTokenIssue, StateStore, StateStoreError, TokenCheck};
use crate::token::hash_token;

pub(super) async fn redeem(store: &dyn StateStore) {
    let (a, b) = (vmid(1401), vmid(1402));
    let expires_at = plus_secs(t0(), 600);
    for (vm, secret) in [(a, "red-a"), (b, "red-b")] {
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
    let mut job = sample_job(t0());
    job.sandbox = Some(a);
    job.runner_token_hash = None;
    ok(store.insert_job(&job).await, "insert_job");
    let issue = RunnerTokenIssue {
        job: job.id.clone(),
        hash: hash_token("runner-of-a"),
    };
    let check = |r: Result<TokenCheck, StateStoreError>, want: TokenCheck, what: &str| {
        let got = ok(r, what);
        assert_eq!(got, want, "state store conformance: {what}");
    };
    check(
        store
            .redeem_bootstrap_token(a, "red-b", t0(), Some(&issue))
            .await,
        TokenCheck::Unknown,
        "token of another vmid is unknown",
    );
    check(
        store
            .redeem_bootstrap_token(b, "red-b", expires_at, None)
            .await,
        TokenCheck::Expired,
        "token at its expiry is expired",
    );
    assert_eq!(
        ok(store.bootstrap_tokens(b).await, "bootstrap_tokens")
            .iter()
            .map(|t| t.consumed)
            .collect::<Vec<_>>(),
        [false],
        "state store conformance: an expired token row is kept, unused"
    );
    // The job is not QUEUED: nothing is written, the token stays usable.
    let mut running = ok(store.get_job(&job.id).await, "get_job");
    running.state = JobState::Running;
    ok(
        store.update_job(&running, JobState::Queued).await,
        "QUEUED -> RUNNING",
    );
    assert!(
        matches!(
            store
                .redeem_bootstrap_token(a, "red-a", t0(), Some(&issue))
                .await,
            Err(StateStoreError::Conflict { kind: "job", .. })
        ),
        "state store conformance: redeem for a job that is not QUEUED is a job Conflict"
    );
    assert!(
        ok(store.bootstrap_tokens(a).await, "bootstrap_tokens")
            .iter()
            .all(|t| !t.consumed),
        "state store conformance: a refused redeem does not use the token"
    );
    assert_eq!(
        ok(store.get_job(&job.id).await, "get_job").runner_token_hash,
        None,
        "state store conformance: a refused redeem stores no runner token"
    );
    // A QUEUED job: the token's use and the runner token land together, concurrently once.
    let mut job2 = sample_job(t0());
    job2.sandbox = Some(a);
    job2.runner_token_hash = None;
    ok(store.insert_job(&job2).await, "insert_job");
    let issue2 = RunnerTokenIssue {
        job: job2.id.clone(),
        hash: hash_token("runner-of-a2"),
    };
    let results = join_all(
        (0..8).map(|_| store.redeem_bootstrap_token(a, "red-a", plus_secs(t0(), 1), Some(&issue2))),
    )
    .await;
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Ok(TokenCheck::Accepted)))
        .count();
    assert_eq!(
        accepted, 1,
        "state store conformance: exactly one concurrent redeem wins: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(TokenCheck::Accepted | TokenCheck::Used))),
        "state store conformance: the losers see `Used`: {results:?}"
    );
    assert_eq!(
        ok(store.get_job(&job2.id).await, "get_job").runner_token_hash,
        Some(issue2.hash.clone()),
        "state store conformance: the runner token is stored with the token's use"
    );
    let rows = ok(store.bootstrap_tokens(a).await, "bootstrap_tokens");
    assert!(
        rows.len() == 1 && rows[0].consumed && rows[0].expires_at == expires_at,
        "state store conformance: a used token row is kept (hash only): {rows:?}"
    );
    check(
        store
            .redeem_bootstrap_token(a, "red-a", plus_secs(t0(), 2), None)
            .await,
        TokenCheck::Used,
        "replay is `Used`",
    );
    check(
        store
            .redeem_bootstrap_token(a, "red-a", plus_secs(expires_at, 5), None)
            .await,
        TokenCheck::Used,
        "a used token stays `Used` after its expiry",
    );
    ok(
        store.delete_bootstrap_tokens(a).await,
        "delete_bootstrap_tokens",
    );
    check(
        store.redeem_bootstrap_token(a, "red-a", t0(), None).await,
        TokenCheck::Unknown,
        "a deleted token is unknown",
    );
    assert!(
        ok(store.bootstrap_tokens(a).await, "bootstrap_tokens").is_empty(),
        "state store conformance: no rows after delete"
    );
}
