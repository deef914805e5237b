//! Workspace volumes: plain directories `<state_dir>/volumes/<workspace>/data`, bind-mounted
//! at `/work` by the next start of the sandbox they are attached to. The `attached` file in the
//! volume directory names that sandbox; the sandbox's record names the volume. `size_gb` is
//! not enforced (no quota on plain directories). Rules match the fake's: attaching or deleting
//! an attached volume is `Conflict`, detaching a detached one is a no-op, unknown volumes are
//! `NotFound`; destroying a sandbox detaches its volume and keeps it.

use std::fs;
use std::io::ErrorKind;

use agentlab_core::{HypervisorError, Vmid, VolumeId, WorkspaceId};

use crate::error::LocalError;
use crate::layout::{Layout, remove_tree};
use crate::ops::Inner;

fn missing(volume: &VolumeId) -> HypervisorError {
    HypervisorError::NotFound(format!("Volume {volume}"))
}

fn marker(layout: &Layout, volume: &VolumeId) -> std::path::PathBuf {
    layout.volume_dir(volume).join("attached")
}

fn attached_to(layout: &Layout, volume: &VolumeId) -> Option<String> {
    fs::read_to_string(marker(layout, volume))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Removes the volume's `attached` marker (the sandbox holding it is being destroyed).
pub(crate) fn clear_marker(layout: &Layout, volume: &VolumeId) {
    let path = marker(layout, volume);
    if let Err(e) = fs::remove_file(&path)
        && e.kind() != ErrorKind::NotFound
    {
        tracing::warn!(volume = %volume, error = %e, "cannot clear volume attachment");
    }
}

fn valid(volume: &VolumeId) -> Result<(), HypervisorError> {
    let ok = !volume.0.is_empty()
        && volume
            .0
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(HypervisorError::Rejected {
            reason: format!("Invalid local volume id {volume:?}"),
        })
    }
}

impl Inner {
    pub fn create_volume(&self, ws: &WorkspaceId) -> Result<VolumeId, HypervisorError> {
        let volume = VolumeId(ws.as_str().to_owned());
        valid(&volume)?;
        let dir = self.layout.volume_dir(&volume);
        if dir.exists() {
            return Err(HypervisorError::AlreadyExists(format!("Volume {volume}")));
        }
        Layout::mkdir(&dir.join("data"))?;
        Ok(volume)
    }

    pub fn delete_volume(&self, volume: &VolumeId) -> Result<(), HypervisorError> {
        valid(volume)?;
        let _guard = self.volume_lock.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.layout.volume_dir(volume);
        if !dir.is_dir() {
            return Err(missing(volume));
        }
        if let Some(vm) = attached_to(&self.layout, volume) {
            return Err(HypervisorError::Conflict(format!(
                "Volume {volume} is attached to sandbox {vm}"
            )));
        }
        Ok(remove_tree(&dir)?)
    }

    pub fn attach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        valid(volume)?;
        let _guard = self.volume_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.record(vmid)?;
        if !self.layout.volume_dir(volume).is_dir() {
            return Err(missing(volume));
        }
        if let Some(vm) = attached_to(&self.layout, volume) {
            return Err(HypervisorError::Conflict(format!(
                "Volume {volume} is attached to sandbox {vm}"
            )));
        }
        if let Some(other) = &record.volume {
            return Err(HypervisorError::Conflict(format!(
                "Sandbox {vmid} already has volume {other}"
            )));
        }
        let path = marker(&self.layout, volume);
        fs::write(&path, vmid.to_string()).map_err(LocalError::io("write", &path))?;
        record.volume = Some(volume.clone());
        Ok(self.layout.save(&record)?)
    }

    pub fn detach_volume(&self, vmid: Vmid, volume: &VolumeId) -> Result<(), HypervisorError> {
        valid(volume)?;
        let _guard = self.volume_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.record(vmid)?;
        if !self.layout.volume_dir(volume).is_dir() {
            return Err(missing(volume));
        }
        if record.volume.as_ref() != Some(volume) {
            return match attached_to(&self.layout, volume) {
                Some(vm) if vm != vmid.to_string() => Err(HypervisorError::Conflict(format!(
                    "Volume {volume} is attached to sandbox {vm}"
                ))),
                _ => Ok(()),
            };
        }
        record.volume = None;
        self.layout.save(&record)?;
        clear_marker(&self.layout, volume);
        Ok(())
    }
}
