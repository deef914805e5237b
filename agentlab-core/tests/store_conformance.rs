//! Both state stores pass the conformance kit.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

use agentlab_core::fake::store::MemoryStore;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::state_store_conformance;

#[tokio::test]
async fn memory_store_conforms() {
    state_store_conformance(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    state_store_conformance(&store).await;
}

#[tokio::test]
async fn sqlite_store_conforms_on_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    state_store_conformance(&store).await;
}

#[tokio::test]
async fn both_stores_keep_api_tokens_alike() {
    use agentlab_core::testkit::api_tokens::api_token_store_conformance;
    api_token_store_conformance(&MemoryStore::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    api_token_store_conformance(&store).await;
}
