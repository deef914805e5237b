//! Property test: random (expected, next) sandbox transitions applied to both stores. A store
//! accepts a step exactly when `expected -> next` is legal (or a same-state write) and
//! `expected` is the stored state; the stored state only ever moves along legal edges.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

use agentlab_core::fake::store::MemoryStore;
use agentlab_core::sqlite::SqliteStore;
use agentlab_core::testkit::store::{sample_sandbox, t0, vmid};
use agentlab_core::{SandboxState, StateStore, StateStoreError};
use proptest::prelude::*;

/// One step: `expected` is either the true stored state (when `use_actual`) or `guess`.
#[derive(Debug, Clone)]
struct Step {
    use_actual: bool,
    guess: SandboxState,
    next: SandboxState,
}

fn state() -> impl Strategy<Value = SandboxState> {
    prop::sample::select(SandboxState::ALL.to_vec())
}

fn step() -> impl Strategy<Value = Step> {
    (any::<bool>(), state(), state()).prop_map(|(use_actual, guess, next)| Step {
        use_actual,
        guess,
        next,
    })
}

/// Applies `steps` to `store`, checking each result against the model.
async fn run(store: &dyn StateStore, steps: &[Step]) -> Result<(), TestCaseError> {
    let id = vmid(100);
    let mut sb = sample_sandbox(id, t0());
    store
        .insert_sandbox(&sb)
        .await
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let mut actual = SandboxState::Requested;
    for (i, s) in steps.iter().enumerate() {
        let expected = if s.use_actual { actual } else { s.guess };
        sb.state = s.next;
        sb.last_error = Some(format!("step {i}"));
        let result = store.update_sandbox(&sb, expected).await;
        let legal = expected == s.next || expected.can_transition_to(s.next);
        match (&result, legal, expected == actual) {
            (Ok(()), true, true) => {
                prop_assert!(actual == s.next || actual.can_transition_to(s.next));
                actual = s.next;
            }
            (Err(StateStoreError::IllegalTransition { .. }), false, _) => {}
            (
                Err(StateStoreError::Conflict {
                    actual: reported, ..
                }),
                true,
                false,
            ) => {
                prop_assert_eq!(reported, &actual.to_string());
            }
            _ => prop_assert!(
                false,
                "step {i}: {expected} -> {} with stored {actual} gave {result:?}",
                s.next
            ),
        }
        let stored = store
            .get_sandbox(id)
            .await
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(stored.state, actual, "step {}", i);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stores_accept_exactly_the_legal_transitions(steps in prop::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            run(&MemoryStore::new(), &steps).await?;
            let dir = tempfile::tempdir().unwrap();
            let sqlite = SqliteStore::open(&dir.path().join("state.db")).await.unwrap();
            run(&sqlite, &steps).await
        })?;
    }
}
