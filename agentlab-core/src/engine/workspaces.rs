//! Workspaces: persistent volumes that outlive sandboxes.
//!
//! Attachment is compare-and-set on the workspace record (`attached_to` None → vmid) before
//! the hypervisor call, so a workspace is never attached twice; a failed hypervisor call
//! releases the claim again.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::api::control::RebindResponse;
use crate::engine::error::EngineError;
use crate::engine::lab::Lab;
use crate::engine::provision::SandboxRequest;
use crate::event::{EventKind, NewEvent};
use crate::hypervisor::VolumeId;
use crate::ids::{Vmid, WorkspaceId};
use crate::model::Workspace;
use crate::state::SandboxState;

impl Lab {
    /// Creates a workspace and its backend volume.
    pub async fn create_workspace(
        &self,
        name: &str,
        size_gb: u32,
    ) -> Result<Workspace, EngineError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if !valid {
            return Err(EngineError::Invalid(format!(
                "workspace name {name:?}: use 1-63 lowercase letters, digits or '-'"
            )));
        }
        if size_gb == 0 {
            return Err(EngineError::Invalid("size_gb must be at least 1".into()));
        }
        let now = self.now();
        let mut ws = Workspace {
            id: WorkspaceId::generate(),
            name: name.to_owned(),
            size_gb,
            volume: None,
            attached_to: None,
            created_at: now,
            updated_at: now,
        };
        self.deps.store.insert_workspace(&ws).await?;
        match self.deps.hypervisor.create_volume(&ws.id, size_gb).await {
            Ok(vol) => {
                ws.volume = Some(vol.0);
                self.deps.store.update_workspace(&ws, None).await?;
                self.ws_event(
                    &ws,
                    None,
                    format!("workspace {} created ({size_gb} GiB)", ws.name),
                )
                .await;
                Ok(ws)
            }
            Err(source) => {
                let _ = self.deps.store.delete_workspace(&ws.id).await;
                Err(EngineError::Hypervisor {
                    call: "create_volume",
                    source,
                })
            }
        }
    }

    /// Lists workspaces.
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, EngineError> {
        Ok(self.deps.store.list_workspaces().await?)
    }

    /// Reads a workspace by id or name.
    pub async fn workspace(&self, id_or_name: &str) -> Result<Workspace, EngineError> {
        Ok(self.deps.store.get_workspace(id_or_name).await?)
    }

    /// Attaches a detached workspace to a sandbox that has a VM.
    pub async fn attach_workspace(
        &self,
        id_or_name: &str,
        vmid: Vmid,
    ) -> Result<Workspace, EngineError> {
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        if !sb.vm_created
            || sb.state.is_terminal()
            || matches!(sb.state, SandboxState::Destroying | SandboxState::Lost)
        {
            return Err(EngineError::InvalidState(format!(
                "Sandbox {vmid} is {} and has no VM",
                sb.state
            )));
        }
        if let Some(existing) = &sb.workspace {
            return Err(EngineError::Conflict(format!(
                "Sandbox {vmid} already has workspace {existing}"
            )));
        }
        let ws = self.attach_workspace_inner(vmid, id_or_name).await?;
        sb.workspace = Some(ws.id.clone());
        self.save(&mut sb).await?;
        Ok(ws)
    }

    /// Claims the workspace for `vmid` and attaches its volume (claim released on failure).
    pub(crate) async fn attach_workspace_inner(
        &self,
        vmid: Vmid,
        id_or_name: &str,
    ) -> Result<Workspace, EngineError> {
        let mut ws = self.deps.store.get_workspace(id_or_name).await?;
        if ws.attached_to == Some(vmid) {
            return Ok(ws);
        }
        if let Some(owner) = ws.attached_to {
            return Err(EngineError::Conflict(format!(
                "Workspace {} is attached to sandbox {owner}",
                ws.name
            )));
        }
        let vol = VolumeId(ws.volume.clone().ok_or_else(|| {
            EngineError::InvalidState(format!("Workspace {} has no volume", ws.name))
        })?);
        ws.attached_to = Some(vmid);
        ws.updated_at = self.now();
        self.deps.store.update_workspace(&ws, None).await?;
        if let Err(source) = self.deps.hypervisor.attach_volume(vmid, &vol).await {
            ws.attached_to = None;
            let _ = self.deps.store.update_workspace(&ws, Some(vmid)).await;
            return Err(EngineError::Hypervisor {
                call: "attach_volume",
                source,
            });
        }
        self.ws_event(
            &ws,
            Some(vmid),
            format!("workspace {} attached to {vmid}", ws.name),
        )
        .await;
        Ok(ws)
    }

    /// Detaches the volume (when the VM exists) and releases the claim.
    pub(crate) async fn release_workspace(
        &self,
        vmid: Vmid,
        id_or_name: &str,
        vm_exists: bool,
    ) -> Result<(), EngineError> {
        let mut ws = self.deps.store.get_workspace(id_or_name).await?;
        if ws.attached_to != Some(vmid) {
            return Ok(());
        }
        if vm_exists && let Some(vol) = ws.volume.clone() {
            match self
                .deps
                .hypervisor
                .detach_volume(vmid, &VolumeId(vol))
                .await
            {
                Ok(()) | Err(crate::hypervisor::HypervisorError::NotFound(_)) => {}
                Err(source) => {
                    return Err(EngineError::Hypervisor {
                        call: "detach_volume",
                        source,
                    });
                }
            }
        }
        ws.attached_to = None;
        ws.updated_at = self.now();
        self.deps.store.update_workspace(&ws, Some(vmid)).await?;
        self.ws_event(
            &ws,
            Some(vmid),
            format!("workspace {} detached from {vmid}", ws.name),
        )
        .await;
        Ok(())
    }

    /// Detaches a workspace from its sandbox.
    pub async fn detach_workspace(&self, id_or_name: &str) -> Result<Workspace, EngineError> {
        let ws = self.deps.store.get_workspace(id_or_name).await?;
        let Some(vmid) = ws.attached_to else {
            return Err(EngineError::InvalidState(format!(
                "Workspace {} is not attached",
                ws.name
            )));
        };
        let lock = self.lock_for(vmid);
        let _g = lock.lock().await;
        let mut sb = self.deps.store.get_sandbox(vmid).await?;
        self.release_workspace(vmid, ws.id.as_str(), sb.vm_created)
            .await?;
        sb.workspace = None;
        self.save(&mut sb).await?;
        Ok(self.deps.store.get_workspace(ws.id.as_str()).await?)
    }

    /// Deletes a detached workspace and frees its volume.
    pub async fn delete_workspace(&self, id_or_name: &str) -> Result<(), EngineError> {
        let ws = self.deps.store.get_workspace(id_or_name).await?;
        if let Some(v) = ws.attached_to {
            return Err(EngineError::Conflict(format!(
                "Workspace {} is attached to sandbox {v}; detach it first",
                ws.name
            )));
        }
        if let Some(vol) = &ws.volume {
            match self
                .deps
                .hypervisor
                .delete_volume(&VolumeId(vol.clone()))
                .await
            {
                Ok(()) | Err(crate::hypervisor::HypervisorError::NotFound(_)) => {}
                Err(source) => {
                    return Err(EngineError::Hypervisor {
                        call: "delete_volume",
                        source,
                    });
                }
            }
        }
        self.deps.store.delete_workspace(&ws.id).await?;
        self.ws_event(&ws, None, format!("workspace {} deleted", ws.name))
            .await;
        Ok(())
    }

    /// Moves a workspace to a new sandbox of `profile`. Returns at once; in the background the
    /// old sandbox is destroyed once the new one is READY (unless `keep_old`), or the workspace
    /// goes back to the old sandbox if provisioning fails.
    pub async fn rebind_workspace(
        self: &Arc<Self>,
        id_or_name: &str,
        profile: &str,
        keep_old: bool,
        ttl_minutes: Option<u32>,
    ) -> Result<RebindResponse, EngineError> {
        self.profile(profile)?;
        let ws = self.deps.store.get_workspace(id_or_name).await?;
        let old = ws.attached_to;
        if old.is_some() {
            self.detach_workspace(ws.id.as_str()).await?;
        }
        let (tx, rx) = oneshot::channel();
        let req = SandboxRequest {
            profile: profile.to_owned(),
            ttl_minutes,
            workspace: Some(ws.id.to_string()),
            ..SandboxRequest::default()
        };
        let new = match self.create_sandbox_notify(req, Some(tx)).await {
            Ok(sb) => sb,
            Err(e) => {
                if let Some(v) = old {
                    let _ = self.attach_workspace(ws.id.as_str(), v).await;
                }
                return Err(e);
            }
        };
        let lab = Arc::clone(self);
        let ws_id = ws.id.clone();
        self.tasks.spawn(async move {
            match (rx.await, old) {
                (Ok(Ok(_)), Some(v)) if !keep_old => {
                    let _ = lab
                        .destroy_with(v, lab.settings.shutdown_grace, "replaced by rebind")
                        .await;
                }
                (Ok(Ok(_)), _) => {}
                (_, Some(v)) => {
                    let ok = lab.attach_workspace(ws_id.as_str(), v).await.is_ok();
                    let msg = if ok {
                        "rebind failed; workspace re-attached to the old sandbox"
                    } else {
                        "rebind failed and re-attaching to the old sandbox failed"
                    };
                    lab.event(NewEvent::new(lab.now(), EventKind::Workspace, msg).sandbox(v))
                        .await;
                }
                (_, None) => {}
            }
        });
        Ok(RebindResponse {
            workspace: ws.id,
            old_vmid: old,
            new_vmid: new.vmid,
        })
    }

    async fn ws_event(&self, ws: &Workspace, vmid: Option<Vmid>, msg: String) {
        self.event(
            NewEvent::new(self.now(), EventKind::Workspace, msg)
                .sandbox_opt(vmid)
                .payload(serde_json::json!({"workspace": ws.id, "name": ws.name})),
        )
        .await;
    }
}
