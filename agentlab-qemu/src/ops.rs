//! The blocking sandbox operations behind [`crate::QemuHypervisor`]: create (qcow2 overlay over
//! the image), configure, launch (tap, QEMU), kill; the rest is in `lifecycle`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use agentlab_core::{HypervisorError, VmSpec, Vmid};

use crate::accel::Accel;
use crate::args::{VmArgs, build};
use crate::error::QemuError;
use crate::layout::{Layout, VmRecord};
use crate::net::{create_tap, delete_tap, tap_name};
use crate::options::{Boot, QemuOptions};
use crate::{proc, seed};

/// Where the bootstrap file lands in the guest (a tmpfs), as on Proxmox.
pub const GUEST_BOOTSTRAP_PATH: &str = "/run/agentlab/bootstrap.json";

/// The backend's state.
#[derive(Debug)]
pub(crate) struct Inner {
    pub opts: QemuOptions,
    pub layout: Layout,
    pub accel: Accel,
}

pub(crate) fn not_found(vmid: Vmid) -> HypervisorError {
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
pub(crate) fn console_tail(dir: &Path, n: usize) -> String {
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
}
