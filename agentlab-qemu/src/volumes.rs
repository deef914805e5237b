//! Workspace volumes: `<state_dir>/volumes/<workspace>.qcow2`, attached as the VM's second
//! virtio disk at its next start. Attachment lives in the VM's record; attaching or detaching
//! while the VM runs is refused (`Conflict`), as is deleting an attached volume.

use agentlab_core::{HypervisorError, Vmid, VolumeId, WorkspaceId};

use crate::layout::Layout;
use crate::ops::{Inner, run_tool};

impl Inner {
    /// The VM that has `vol` attached, if any.
    fn holder(&self, vol: &VolumeId) -> Result<Option<Vmid>, HypervisorError> {
        for vmid in self.layout.list()? {
            if self.layout.load(vmid)?.and_then(|r| r.volume).as_ref() == Some(vol) {
                return Ok(Some(vmid));
            }
        }
        Ok(None)
    }

    fn require_volume(&self, vol: &VolumeId) -> Result<(), HypervisorError> {
        let valid = !vol.0.is_empty()
            && vol
                .0
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid && self.layout.volume_path(vol).is_file() {
            Ok(())
        } else {
            Err(HypervisorError::NotFound(format!("volume {vol}")))
        }
    }

    /// Blocking.
    pub fn create_volume(
        &self,
        ws: &WorkspaceId,
        size_gb: u32,
    ) -> Result<VolumeId, HypervisorError> {
        let vol = VolumeId(ws.to_string());
        let path = self.layout.volume_path(&vol);
        if path.exists() {
            return Err(HypervisorError::AlreadyExists(format!("volume {vol}")));
        }
        Layout::mkdir(&self.layout.volumes_dir())?;
        let p = path.display().to_string();
        let size = format!("{}G", size_gb.max(1));
        run_tool(
            &self.opts.qemu_img,
            &["create", "-q", "-f", "qcow2", &p, &size],
        )?;
        Ok(vol)
    }

    /// Blocking.
    pub fn delete_volume(&self, vol: &VolumeId) -> Result<(), HypervisorError> {
        self.require_volume(vol)?;
        if let Some(vmid) = self.holder(vol)? {
            return Err(HypervisorError::Conflict(format!(
                "volume {vol} is attached to VM {vmid}"
            )));
        }
        let path = self.layout.volume_path(vol);
        std::fs::remove_file(&path)
            .map_err(crate::QemuError::io("remove", &path))
            .map_err(HypervisorError::from)
    }

    /// Blocking.
    pub fn attach_volume(&self, vmid: Vmid, vol: &VolumeId) -> Result<(), HypervisorError> {
        let mut rec = self.record(vmid)?;
        self.require_volume(vol)?;
        if let Some(other) = self.holder(vol)? {
            return Err(HypervisorError::Conflict(format!(
                "volume {vol} is attached to VM {other}"
            )));
        }
        if let Some(cur) = &rec.volume {
            return Err(HypervisorError::Conflict(format!(
                "VM {vmid} already has volume {cur}"
            )));
        }
        if self.pid(vmid).is_some() {
            return Err(HypervisorError::Conflict(format!(
                "VM {vmid} is running; attach volumes before start"
            )));
        }
        rec.volume = Some(vol.clone());
        self.layout.save(vmid, &rec)?;
        Ok(())
    }

    /// Blocking.
    pub fn detach_volume(&self, vmid: Vmid, vol: &VolumeId) -> Result<(), HypervisorError> {
        let mut rec = self.record(vmid)?;
        if rec.volume.as_ref() != Some(vol) {
            return Err(HypervisorError::NotFound(format!(
                "volume {vol} on VM {vmid}"
            )));
        }
        if self.pid(vmid).is_some() {
            return Err(HypervisorError::Conflict(format!(
                "VM {vmid} is running; stop it to detach its volume"
            )));
        }
        rec.volume = None;
        self.layout.save(vmid, &rec)?;
        Ok(())
    }
}
