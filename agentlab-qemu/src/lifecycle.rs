//! The asynchronous half of the sandbox operations: waiting for the guest agent under the boot
//! deadline (and delivering the bootstrap file), graceful power-off, status and guest address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use agentlab_core::{BootstrapData, HypervisorError, PowerState, Vmid};

use crate::error::QemuError;
use crate::ops::{GUEST_BOOTSTRAP_PATH, Inner, blocking, console_tail, not_found};
use crate::qga::Qga;
use crate::qmp;

impl Inner {
    /// Waits for the guest agent under the boot deadline, then delivers `bootstrap`. QEMU
    /// exiting, or QMP reporting an internal error or a guest panic, ends the wait early.
    pub async fn await_agent(
        &self,
        vmid: Vmid,
        bootstrap: Option<&BootstrapData>,
    ) -> Result<(), QemuError> {
        let dir = self.dir(vmid);
        let deadline = Instant::now() + self.opts.boot_timeout;
        let json = bootstrap
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| QemuError::Tool {
                program: "serde_json".into(),
                message: e.to_string(),
            })?;
        let mut last;
        loop {
            if self.pid(vmid).is_none() {
                return Err(QemuError::Tool {
                    program: self.opts.binary.display().to_string(),
                    message: format!(
                        "VM {vmid} exited during boot (console: {})",
                        console_tail(&dir, 5)
                    ),
                });
            }
            match qmp::run_state(&dir.join("qmp.sock"), vmid.get()).await {
                Ok(s) if s == "internal-error" || s == "guest-panicked" => {
                    last = format!("QEMU reports {s}");
                    break;
                }
                _ => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = Duration::from_secs(3).min(left.max(Duration::from_millis(100)));
            match Qga::connect(&dir.join("qga.sock"), vmid.get(), attempt).await {
                Ok(agent) => match &json {
                    None => return Ok(()),
                    Some(j) => match agent.write_file(GUEST_BOOTSTRAP_PATH, j).await {
                        Ok(()) => {
                            tracing::info!(sandbox = %vmid, "bootstrap delivered through the guest agent");
                            return Ok(());
                        }
                        Err(e) => last = e.to_string(),
                    },
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(QemuError::BootTimeout {
            vmid: vmid.get(),
            what: last,
            secs: self.opts.boot_timeout.as_secs(),
            console_tail: console_tail(&dir, 5),
        })
    }

    /// Graceful power-off within `grace` (guest agent shutdown and ACPI power button).
    pub async fn graceful(&self, vmid: Vmid, grace: Duration) -> bool {
        let dir = self.dir(vmid);
        let limit = Duration::from_secs(2).min(grace);
        if let Ok(agent) = Qga::connect(&dir.join("qga.sock"), vmid.get(), limit).await {
            agent.shutdown().await;
        }
        if let Err(e) = qmp::powerdown(&dir.join("qmp.sock"), vmid.get()).await {
            tracing::debug!(sandbox = %vmid, error = %e, "system_powerdown");
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.pid(vmid).is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        qmp::quit(&dir.join("qmp.sock"), vmid.get()).await;
        false
    }

    pub async fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        let layout = self.layout.clone();
        if blocking(move || layout.load(vmid)).await?.is_none() {
            return Err(not_found(vmid));
        }
        if self.pid(vmid).is_none() {
            return Ok(PowerState::Stopped);
        }
        Ok(
            match qmp::run_state(&self.dir(vmid).join("qmp.sock"), vmid.get()).await {
                Ok(s) if s == "paused" || s == "suspended" => PowerState::Paused,
                _ => PowerState::Running,
            },
        )
    }

    pub async fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        let layout = self.layout.clone();
        let rec = blocking(move || layout.load(vmid))
            .await?
            .ok_or_else(|| not_found(vmid))?;
        if self.pid(vmid).is_none() {
            return Ok(None);
        }
        let sock = self.dir(vmid).join("qga.sock");
        let Ok(agent) = Qga::connect(&sock, vmid.get(), Duration::from_secs(3)).await else {
            return Ok(None);
        };
        let addrs = agent.addresses().await.unwrap_or_default();
        let n = &rec.spec.net;
        Ok(addrs
            .into_iter()
            .find(|ip| same_subnet(*ip, n.ip, n.prefix_len)))
    }
}

/// Whether `a` lies in `b`'s subnet of `len` bits.
fn same_subnet(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}
