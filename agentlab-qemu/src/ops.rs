//! The sandbox operations behind [`crate::QemuHypervisor`]: create (qcow2 overlay over the
//! image), configure, start (tap, QEMU under the boot deadline, bootstrap through the guest
//! agent), stop, destroy, status and guest address.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agentlab_core::{BootstrapData, HypervisorError, PowerState, VmSpec, Vmid};

use crate::accel::Accel;
use crate::args::{VmArgs, build};
use crate::error::QemuError;
use crate::layout::{Layout, VmRecord};
use crate::net::{create_tap, delete_tap, tap_name};
use crate::options::{Boot, QemuOptions};
use crate::qga::Qga;
use crate::{proc, qmp, seed};

/// Where the bootstrap file lands in the guest (a tmpfs), as on Proxmox.
pub const GUEST_BOOTSTRAP_PATH: &str = "/run/agentlab/bootstrap.json";

/// The backend's state.
#[derive(Debug)]
pub(crate) struct Inner {
    pub opts: QemuOptions,
    pub layout: Layout,
    pub accel: Accel,
}

fn not_found(vmid: Vmid) -> HypervisorError {
    HypervisorError::NotFound(format!("VM {vmid}"))
}

/// Runs a blocking closure off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QemuError> + Send + 'static,
) -> Result<T, HypervisorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HypervisorError::Backend(Box::new(e)))?
        .map_err(HypervisorError::from)
}

/// Runs a tool to completion; its stderr is the error.
pub(crate) fn run_tool(program: &Path, args: &[&str]) -> Result<(), QemuError> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| QemuError::Tool {
            program: program.display().to_string(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(QemuError::Tool {
            program: program.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// The last `n` lines of the console log.
fn console_tail(dir: &Path, n: usize) -> String {
    let text = std::fs::read(dir.join("console.log")).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

impl Inner {
    pub fn new(opts: QemuOptions, accel: Accel) -> Self {
        let layout = Layout {
            root: opts.state_dir.clone(),
        };
        Self {
            opts,
            layout,
            accel,
        }
    }

    pub fn dir(&self, vmid: Vmid) -> PathBuf {
        self.layout.vm_dir(vmid)
    }

    pub fn record(&self, vmid: Vmid) -> Result<VmRecord, HypervisorError> {
        self.layout.load(vmid)?.ok_or_else(|| not_found(vmid))
    }

    pub fn pid(&self, vmid: Vmid) -> Option<i32> {
        proc::running_pid(&self.dir(vmid), vmid.get())
    }

    /// Removes directories without `vm.json` (a create that died midway). Blocking.
    pub fn cleanup_incomplete(&self) {
        let Ok(dirs) = self.layout.dirs() else { return };
        for (vmid, complete) in dirs {
            if !complete {
                let dir = self.dir(vmid);
                tracing::warn!(sandbox = %vmid, dir = %dir.display(), "removing half-created VM");
                proc::kill_and_wait(&dir, vmid.get());
                delete_tap(self.opts.bridge_netns.as_deref(), &tap_name(vmid));
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    /// Blocking.
    pub fn create(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let dir = self.dir(spec.vmid);
        if dir.exists() {
            return Err(HypervisorError::AlreadyExists(format!("VM {}", spec.vmid)));
        }
        Layout::mkdir(&self.layout.root)?;
        let base = self.opts.image.join("disk.qcow2");
        if !base.is_file() {
            return Err(QemuError::Missing(format!(
                "image disk {} not found (agentlab image build --out {})",
                base.display(),
                self.opts.image.display()
            ))
            .into());
        }
        Layout::mkdir(&dir)?;
        let overlay = dir.join("root.qcow2");
        let made = (|| {
            let b = base.display().to_string();
            let o = overlay.display().to_string();
            run_tool(
                &self.opts.qemu_img,
                &["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", &b, &o],
            )?;
            self.resize(spec, &overlay)?;
            let rec = VmRecord {
                spec: spec.clone(),
                configured: false,
                volume: None,
            };
            self.layout.save(spec.vmid, &rec)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        made.map_err(HypervisorError::from)
    }

    fn resize(&self, spec: &VmSpec, overlay: &Path) -> Result<(), QemuError> {
        let Some(gb) = spec.root_size_gb else {
            return Ok(());
        };
        let info = std::process::Command::new(&self.opts.qemu_img)
            .args(["info", "--output=json"])
            .arg(overlay)
            .output()
            .map_err(|e| QemuError::Tool {
                program: "qemu-img info".into(),
                message: e.to_string(),
            })?;
        let size = serde_json::from_slice::<serde_json::Value>(&info.stdout)
            .ok()
            .and_then(|v| v.get("virtual-size")?.as_u64())
            .unwrap_or(0);
        let want = u64::from(gb) << 30;
        if want > size {
            let o = overlay.display().to_string();
            run_tool(
                &self.opts.qemu_img,
                &["resize", "-q", &o, &format!("{gb}G")],
            )?;
        }
        Ok(())
    }

    /// Blocking.
    pub fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let mut rec = self.record(spec.vmid)?;
        if self.pid(spec.vmid).is_some() {
            return Err(HypervisorError::Conflict(format!(
                "VM {} is running",
                spec.vmid
            )));
        }
        self.resize(spec, &self.dir(spec.vmid).join("root.qcow2"))?;
        rec.spec = spec.clone();
        rec.configured = true;
        self.layout.save(spec.vmid, &rec)?;
        Ok(())
    }

    /// The kernel command line for direct boot.
    fn cmdline(&self, spec: &VmSpec) -> String {
        let base = self.opts.kernel_cmdline.clone().unwrap_or_else(|| {
            std::fs::read(self.opts.image.join("manifest.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("cmdline")?.as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        let tsc = (self.accel == Accel::Tcg)
            .then(seed::host_tsc_khz)
            .flatten();
        seed::cmdline(&base, spec, tsc, self.opts.kernel_args.as_deref())
    }

    /// Creates the tap and launches QEMU (which daemonizes once its devices are set up).
    /// Blocking.
    pub fn launch(&self, vmid: Vmid) -> Result<(), QemuError> {
        let rec = self
            .layout
            .load(vmid)?
            .ok_or_else(|| QemuError::Missing(format!("VM {vmid} has no record")))?;
        let dir = self.dir(vmid);
        for f in ["qmp.sock", "qga.sock", "qemu.pid"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let seed_dir = dir.join("seed");
        if self.opts.cloud_init_seed {
            seed::write(&seed_dir, &rec.spec)?;
        }
        let tap = tap_name(vmid);
        let netns = self.opts.bridge_netns.as_deref();
        create_tap(netns, &tap, &rec.spec.net.bridge)?;
        let a = VmArgs {
            spec: &rec.spec,
            dir: &dir,
            accel: self.accel,
            machine: self.opts.machine,
            boot: self.opts.boot,
            kernel: (self.opts.boot == Boot::Kernel).then(|| {
                (
                    self.opts.image.join("vmlinuz"),
                    self.opts.image.join("initrd.img"),
                )
            }),
            cmdline: self.cmdline(&rec.spec),
            tap: &tap,
            volume: rec.volume.as_ref().map(|v| self.layout.volume_path(v)),
            seed: self.opts.cloud_init_seed.then_some(seed_dir),
        };
        let argv = build(&a);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = std::process::Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.opts.binary);
                c
            }
            None => std::process::Command::new(&self.opts.binary),
        };
        tracing::info!(sandbox = %vmid, accel = self.accel.as_str(), machine = %self.opts.machine, "starting QEMU");
        let out = cmd
            .args(&argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| QemuError::Tool {
                program: self.opts.binary.display().to_string(),
                message: e.to_string(),
            });
        let failed = match out {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(QemuError::Tool {
                program: self.opts.binary.display().to_string(),
                message: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            }),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            delete_tap(netns, &tap);
            return Err(e);
        }
        Ok(())
    }

    /// Kills QEMU and removes the tap and sockets. Blocking.
    pub fn kill(&self, vmid: Vmid) -> Result<(), QemuError> {
        let dir = self.dir(vmid);
        if !proc::kill_and_wait(&dir, vmid.get()) {
            return Err(QemuError::Tool {
                program: "kill".into(),
                message: format!("QEMU of VM {vmid} survives SIGKILL"),
            });
        }
        self.after_exit(vmid);
        Ok(())
    }

    /// What stays behind after QEMU exits: tap, sockets, pid file.
    pub fn after_exit(&self, vmid: Vmid) {
        delete_tap(self.opts.bridge_netns.as_deref(), &tap_name(vmid));
        let dir = self.dir(vmid);
        for f in ["qmp.sock", "qga.sock", "qemu.pid"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }

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
