#![cfg(test)]
//! Engine: replacing the profile set while sandboxes run (`Lab::replace_profiles`).

#[path = "engine/common.rs"]
mod common;

use agentlab_core::SandboxState;
use agentlab_core::engine::{EngineError, SandboxRequest};
use agentlab_core::profile::Profiles;
use common::{profiles, rig};

fn req(profile: &str) -> SandboxRequest {
    SandboxRequest {
        profile: profile.into(),
        ..SandboxRequest::default()
    }
}

/// The default set with `interactive-dev` removed, `yolo-workspace` given 7 cores and a new
/// profile `extra`.
fn edited() -> Profiles {
    let mut list: Vec<_> = profiles()
        .iter()
        .filter(|p| p.name != "interactive-dev")
        .cloned()
        .collect();
    for p in &mut list {
        if p.name == "yolo-workspace" {
            p.resources.cores = 7;
        }
    }
    let mut extra = list[0].clone();
    extra.name = "extra".into();
    list.push(extra);
    Profiles::from_profiles(list).unwrap()
}

#[tokio::test]
async fn replace_reports_changes_and_live_sandboxes_keep_their_profile() {
    let r = rig().await;
    let sb = r.lab.create_sandbox(req("interactive-dev")).await.unwrap();
    r.lab.wait_idle().await;
    let before = r.lab.profiles().get("interactive-dev").cloned().unwrap();

    let changes = r.lab.replace_profiles(edited());
    assert_eq!(changes.added, vec!["extra".to_owned()]);
    assert_eq!(changes.removed, vec!["interactive-dev".to_owned()]);
    assert_eq!(changes.changed, vec!["yolo-workspace".to_owned()]);
    assert_eq!(changes.unchanged, 1);

    // The new set is what new requests see.
    assert!(r.lab.profiles().get("interactive-dev").is_none());
    assert_eq!(
        r.lab
            .profiles()
            .get("yolo-workspace")
            .unwrap()
            .resources
            .cores,
        7
    );
    let err = r
        .lab
        .create_sandbox(req("interactive-dev"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::NotFound {
                kind: "profile",
                ..
            }
        ),
        "{err:?}"
    );

    // The running sandbox keeps the profile it was created with.
    let kept = r.lab.sandbox_profile(sb.vmid, &sb.profile).unwrap();
    assert_eq!(*kept, before);

    // Once destroyed, its pin is gone and the name resolves against the current set.
    r.lab.destroy_sandbox(sb.vmid).await.unwrap();
    assert_eq!(r.state(sb.vmid).await, SandboxState::Destroyed);
    assert!(r.lab.sandbox_profile(sb.vmid, &sb.profile).is_none());
}

#[tokio::test]
async fn replacing_with_the_same_set_changes_nothing() {
    let r = rig().await;
    let changes = r.lab.replace_profiles(profiles());
    assert!(changes.added.is_empty() && changes.removed.is_empty() && changes.changed.is_empty());
    assert_eq!(changes.unchanged, profiles().len());
}
