#![cfg(test)]
//! Engine: workspaces (create, attach, detach, rebind with rollback, delete).

#[path = "engine/common.rs"]
mod common;

use agentlab_core::SandboxState;
use agentlab_core::engine::{EngineError, SandboxRequest};
use agentlab_core::fake::hypervisor::{FakeOp, Fault, FaultKind};
use common::rig;

fn req(profile: &str) -> SandboxRequest {
    SandboxRequest {
        profile: profile.into(),
        ..SandboxRequest::default()
    }
}

#[tokio::test]
async fn workspace_is_never_attached_twice() {
    let r = rig().await;
    let ws = r.lab.create_workspace("proj", 10).await.unwrap();
    assert!(ws.volume.is_some());
    assert!(matches!(
        r.lab.create_workspace("proj", 10).await,
        Err(EngineError::Store(_) | EngineError::Conflict(_))
    ));
    assert!(matches!(
        r.lab.create_workspace("Bad Name", 10).await,
        Err(EngineError::Invalid(_))
    ));
    let a = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    let b = r.lab.create_sandbox(req("yolo-ephemeral")).await.unwrap();
    r.lab.wait_idle().await;
    r.lab.attach_workspace("proj", a.vmid).await.unwrap();
    assert!(matches!(
        r.lab.attach_workspace("proj", b.vmid).await,
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        r.lab.delete_workspace("proj").await,
        Err(EngineError::Conflict(_))
    ));
    let d = r.lab.detach_workspace("proj").await.unwrap();
    assert_eq!(d.attached_to, None);
    assert!(r.lab.sandbox(a.vmid).await.unwrap().workspace.is_none());
    r.lab.attach_workspace("proj", b.vmid).await.unwrap();
    // Destroying the sandbox releases the workspace but keeps the volume.
    r.lab.destroy_sandbox(b.vmid).await.unwrap();
    let ws = r.lab.workspace("proj").await.unwrap();
    assert_eq!(ws.attached_to, None);
    assert_eq!(r.hv.volumes().len(), 1);
    r.lab.delete_workspace("proj").await.unwrap();
    assert!(r.hv.volumes().is_empty());
    assert!(r.lab.workspace("proj").await.is_err());
}

#[tokio::test]
async fn rebind_moves_the_workspace_and_destroys_the_old_sandbox() {
    let r = rig().await;
    r.lab.create_workspace("proj", 10).await.unwrap();
    let old = r
        .lab
        .create_sandbox(SandboxRequest {
            workspace: Some("proj".into()),
            ..req("yolo-workspace")
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    assert_eq!(
        r.lab.workspace("proj").await.unwrap().attached_to,
        Some(old.vmid)
    );
    let resp = r
        .lab
        .rebind_workspace("proj", "interactive-dev", false, None)
        .await
        .unwrap();
    assert_eq!(resp.old_vmid, Some(old.vmid));
    r.lab.wait_idle().await;
    assert_eq!(r.state(resp.new_vmid).await, SandboxState::Ready);
    assert_eq!(r.state(old.vmid).await, SandboxState::Destroyed);
    assert_eq!(
        r.lab.workspace("proj").await.unwrap().attached_to,
        Some(resp.new_vmid)
    );
}

#[tokio::test]
async fn failed_rebind_rolls_back_to_the_old_sandbox() {
    let r = rig().await;
    r.lab.create_workspace("proj", 10).await.unwrap();
    let old = r
        .lab
        .create_sandbox(SandboxRequest {
            workspace: Some("proj".into()),
            ..req("yolo-workspace")
        })
        .await
        .unwrap();
    r.lab.wait_idle().await;
    r.hv.fail_once(
        FakeOp::Configure,
        Fault::new(FaultKind::Backend, "disk full"),
    );
    let resp = r
        .lab
        .rebind_workspace("proj", "interactive-dev", false, None)
        .await
        .unwrap();
    r.lab.wait_idle().await;
    assert_eq!(r.state(resp.new_vmid).await, SandboxState::Failed);
    assert_eq!(r.state(old.vmid).await, SandboxState::Ready);
    assert_eq!(
        r.lab.workspace("proj").await.unwrap().attached_to,
        Some(old.vmid)
    );
    assert_eq!(
        r.lab
            .sandbox(old.vmid)
            .await
            .unwrap()
            .workspace
            .map(|w| w.to_string()),
        Some(r.lab.workspace("proj").await.unwrap().id.to_string())
    );
}

#[tokio::test]
async fn attach_profile_creates_a_workspace_that_outlives_the_sandbox() {
    let r = rig().await;
    let sb = r.lab.create_sandbox(req("yolo-workspace")).await.unwrap();
    r.lab.wait_idle().await;
    let sb = r.lab.sandbox(sb.vmid).await.unwrap();
    assert_eq!(sb.state, SandboxState::Ready);
    let ws = r
        .lab
        .workspace(sb.workspace.unwrap().as_str())
        .await
        .unwrap();
    let size = r
        .lab
        .profiles()
        .get("yolo-workspace")
        .unwrap()
        .storage
        .workspace_size_gb
        .unwrap();
    assert_eq!((ws.size_gb, ws.attached_to), (size, Some(sb.vmid)));
    r.lab.destroy_sandbox(sb.vmid).await.unwrap();
    let ws = r.lab.workspace(ws.id.as_str()).await.unwrap();
    assert_eq!(ws.attached_to, None);
    assert_eq!(r.hv.volumes().len(), 1);
}
