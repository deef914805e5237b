//! The blocking lifecycle verbs behind [`crate::LocalHypervisor`]: create, configure, start,
//! stop, destroy, status. Run on `spawn_blocking` threads; each reads and writes only its own
//! sandbox's directory.

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentlab_core::{BootstrapData, HypervisorError, PowerState, VmSpec, Vmid};
use tracing::{info, warn};

use crate::cgroup::{Cgroups, Limits};
use crate::error::LocalError;
use crate::idmap::{self, IdRange, Userns};
use crate::layout::{Layout, Record, remove_tree};
use crate::net;
use crate::options::LocalOptions;
use crate::procs::{self, Proc};
use crate::sandbox::{self, Enter, INIT_PATH_INSIDE, Mounts};

/// Shared state of a local hypervisor.
#[derive(Debug)]
pub(crate) struct Inner {
    pub opts: LocalOptions,
    pub layout: Layout,
    pub cgroups: Cgroups,
    /// Serialises volume bookkeeping (attach markers and records).
    pub volume_lock: std::sync::Mutex<()>,
    /// Serialises uid slot allocation (create, and start of records without a slot).
    pub slot_lock: std::sync::Mutex<()>,
}

/// How long a failed start waits for the exiting process chain to be reaped.
const REAP_LIMIT: Duration = Duration::from_secs(2);

fn not_found(vmid: Vmid) -> HypervisorError {
    HypervisorError::NotFound(format!("Sandbox {vmid}"))
}

impl Inner {
    pub fn new(opts: LocalOptions) -> Self {
        Self {
            layout: Layout::new(&opts.state_dir),
            cgroups: Cgroups::new(&opts.cgroup_root, &opts.cgroup_name),
            opts,
            volume_lock: std::sync::Mutex::new(()),
            slot_lock: std::sync::Mutex::new(()),
        }
    }

    /// Every host id any sandbox range may use.
    pub fn id_space(&self) -> Range<u32> {
        let end = u64::from(self.opts.uid_base) + u64::from(self.opts.uid_slots) * 65_536;
        self.opts.uid_base..u32::try_from(end).unwrap_or(u32::MAX)
    }

    /// The host ids of `slot`.
    pub fn range(&self, slot: u32) -> IdRange {
        IdRange::of_slot(self.opts.uid_base, slot)
    }

    /// The lowest slot no sandbox record holds (call with `slot_lock` held).
    fn free_slot(&self) -> Result<u32, LocalError> {
        let used: Vec<u32> = self
            .layout
            .list()?
            .into_iter()
            .filter_map(|v| self.layout.load(v).ok().flatten()?.slot)
            .collect();
        idmap::free_slot(&used, self.opts.uid_slots).ok_or(LocalError::NoUidSlot {
            slots: self.opts.uid_slots,
        })
    }

    /// Fails unless limits can be enforced (or `allow_unlimited` is set).
    fn check_limits(&self) -> Result<Option<crate::cgroup::Hierarchy>, LocalError> {
        match self.cgroups.detect() {
            Ok(h) => Ok(Some(h)),
            Err(_) if self.opts.allow_unlimited => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn record(&self, vmid: Vmid) -> Result<Record, HypervisorError> {
        self.layout.load(vmid)?.ok_or_else(|| not_found(vmid))
    }

    fn netns(&self, vmid: Vmid) -> String {
        self.opts.netns_name(vmid)
    }

    /// Builds the sandbox directory (with its record and uid slot) under a temporary name and
    /// renames it into place, then plumbs the network: a crash leaves either a `.creating-*`
    /// directory (removed by the next instance) or a recorded sandbox (destroyable).
    pub fn create(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let vmid = spec.vmid;
        let netns = self.netns(vmid);
        if self.layout.vm_dir(vmid).exists() || net::netns_exists(&netns) {
            return Err(HypervisorError::AlreadyExists(format!("Sandbox {vmid}")));
        }
        self.check_limits()?;
        // The profile's bridge is a PVE notion; local sandboxes always join `opts.bridge`.
        let mut net_spec = spec.net.clone();
        net_spec.bridge.clone_from(&self.opts.bridge);
        net::require_bridge(self.opts.bridge_netns.as_deref(), &net_spec.bridge)?;
        let mut record = Record {
            spec: spec.clone(),
            volume: None,
            slot: None,
            netns_id: None,
        };
        {
            let _guard = self
                .slot_lock
                .lock()
                .map_err(|_| HypervisorError::backend("slot lock poisoned"))?;
            record.slot = Some(self.free_slot()?);
            let tmp = self.layout.creating_dir(vmid);
            remove_tree(&tmp)?;
            Layout::mkdir(&tmp)?;
            let built = crate::layout::write_atomic(
                &tmp.join("spec.json"),
                &serde_json::to_vec_pretty(&record).map_err(|e| LocalError::Corrupt {
                    path: tmp.join("spec.json"),
                    message: e.to_string(),
                })?,
            )
            .and_then(|()| {
                std::fs::rename(&tmp, self.layout.vm_dir(vmid))
                    .map_err(LocalError::io("rename", &tmp))
            });
            if let Err(err) = built {
                let _ = remove_tree(&tmp);
                return Err(err.into());
            }
        }
        agentlab_core::fail_point!("local:create:dir");
        let veth = LocalOptions::host_veth(vmid);
        let done = net::plumb(self.opts.bridge_netns.as_deref(), &netns, &veth, &net_spec)
            .and_then(|()| {
                agentlab_core::fail_point!("local:create:plumbed");
                record.netns_id = procs::ns_id(&procs::netns_path(&netns));
                self.layout.save(&record)
            })
            .and_then(|()| Layout::mkdir(&self.layout.home_dir(vmid)));
        if let Err(err) = done {
            net::unplumb(self.opts.bridge_netns.as_deref(), &netns, &veth);
            let _ = remove_tree(&self.layout.vm_dir(vmid));
            return Err(err.into());
        }
        info!(sandbox = %vmid, netns = %netns, iface = %veth, "local sandbox created");
        Ok(())
    }

    pub fn configure(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let mut record = self.record(spec.vmid)?;
        if !self.procs(spec.vmid).is_empty() {
            return Err(HypervisorError::Conflict(format!(
                "Sandbox {} is running",
                spec.vmid
            )));
        }
        record.spec = spec.clone();
        Ok(self.layout.save(&record)?)
    }

    pub fn status(&self, vmid: Vmid) -> Result<PowerState, HypervisorError> {
        self.record(vmid)?;
        Ok(if self.procs(vmid).is_empty() {
            PowerState::Stopped
        } else {
            PowerState::Running
        })
    }

    pub fn guest_address(&self, vmid: Vmid) -> Result<Option<IpAddr>, HypervisorError> {
        let record = self.record(vmid)?;
        Ok(sandbox_up(&self.procs(vmid)).then_some(record.spec.net.ip))
    }

    /// The sandbox's uid slot, allocating one for a record that has none.
    fn slot(&self, record: &mut Record) -> Result<u32, HypervisorError> {
        if let Some(slot) = record.slot {
            return Ok(slot);
        }
        let _guard = self
            .slot_lock
            .lock()
            .map_err(|_| HypervisorError::backend("slot lock poisoned"))?;
        let slot = self.free_slot()?;
        record.slot = Some(slot);
        self.layout.save(record)?;
        Ok(slot)
    }

    pub fn start(&self, vmid: Vmid, boot: Option<&BootstrapData>) -> Result<(), HypervisorError> {
        let mut record = self.record(vmid)?;
        if !self.procs(vmid).is_empty() {
            return Err(HypervisorError::Conflict(format!(
                "Sandbox {vmid} is running"
            )));
        }
        let hierarchy = self.check_limits()?;
        let range = self.range(self.slot(&mut record)?);
        let space = self.id_space();
        let l = &self.layout;
        // Bootstrap data never touches the host's disk (piped into the sandbox's tmpfs); a
        // file an older version left is removed.
        let bootstrap = boot.map(sandbox::bootstrap_json).transpose()?;
        let _ = std::fs::remove_file(l.legacy_bootstrap_path(vmid));
        sandbox::write_etc(&l.etc_dir(vmid), &record.spec, &self.opts)?;
        let volume = record.volume.as_ref().map(|v| l.volume_dir(v).join("data"));
        if let Some(v) = &volume {
            idmap::give_tree(v, range, &space)?;
        }
        let home = l.home_dir(vmid);
        Layout::mkdir(&home)?;
        idmap::give_tree(&home, range, &space)?;
        let etc = l.etc_dir(vmid);
        let seccomp = match crate::seccomp::program() {
            Some(prog) => {
                let path = l.vm_dir(vmid).join("seccomp.bpf");
                crate::layout::write_atomic(&path, &prog)?;
                Some(path)
            }
            None => {
                warn!(sandbox = %vmid, "no seccomp filter for this architecture");
                None
            }
        };
        let init = l.vm_dir(vmid).join("init.sh");
        crate::layout::write_atomic(&init, sandbox::INIT_SCRIPT.as_bytes())?;
        // bwrap walks from the staged sandbox directory as the agent: it may traverse (not
        // list) it and `etc/`, and read the files it binds. The state directory above stays
        // root-only (0700) on the host.
        for (dir, mode) in [(l.vm_dir(vmid), 0o711), (etc, 0o711), (init.clone(), 0o644)] {
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(LocalError::io("chmod", &dir))?;
        }
        let mounts = Mounts::staged(
            bootstrap.is_some(),
            volume.is_some(),
            self.opts.rootfs.is_some(),
            seccomp.is_some(),
        );
        let args = sandbox::bwrap_args(vmid, &mounts, &self.opts);
        let cgroup_procs: Vec<PathBuf> = match &hierarchy {
            Some(h) => {
                let limits = Limits::new(&record.spec.resources, self.opts.pids_max);
                self.cgroups.prepare(h, vmid, &limits)?
            }
            None => {
                warn!(sandbox = %vmid, root = %self.opts.cgroup_root.display(),
                    "local.allow_unlimited: sandbox runs without resource limits");
                Vec::new()
            }
        };
        Layout::mkdir(Path::new(sandbox::STAGE_DIR))?;
        let userns = Userns::create(range)?;
        let log = l.log_path(vmid);
        let netns_path = procs::netns_path(&self.netns(vmid));
        let enter = Enter {
            netns: &netns_path,
            cgroup_procs: &cgroup_procs,
            seccomp: seccomp.as_deref(),
            userns: &userns.path(),
            vm_dir: &l.vm_dir(vmid),
            volume: volume.as_deref(),
            bootstrap: bootstrap.as_ref().map(|b| b.as_slice()),
        };
        let mut child = sandbox::spawn(&enter, &args, &log, &self.opts)?;
        agentlab_core::fail_point!("local:start:spawned");
        if let Ok(pid) = i32::try_from(child.id()) {
            l.write_pid(vmid, pid);
        }
        // The init says "up" on the readiness pipe; no /proc polling.
        let outcome = match sandbox::wait_ready(child.stdout.take(), self.opts.start_timeout) {
            sandbox::Readiness::Up => Ok(()),
            sandbox::Readiness::Exited => {
                // Reap it, so no exited process still counts as the sandbox's.
                let t0 = std::time::Instant::now();
                while matches!(child.try_wait(), Ok(None)) && t0.elapsed() < REAP_LIMIT {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(sandbox::log_tail(&log))
            }
            sandbox::Readiness::TimedOut => {
                let _ = self.kill_all(vmid, Duration::ZERO);
                Err(format!("not running after {:?}", self.opts.start_timeout))
            }
        };
        drop(userns);
        // Reap the outer process whenever it exits; the sandbox itself does not depend on us.
        std::thread::spawn(move || child.wait());
        match outcome {
            Ok(()) => {
                info!(sandbox = %vmid, uid_base = range.base, "local sandbox started");
                Ok(())
            }
            Err(log_tail) => Err(LocalError::StartFailed {
                vmid: vmid.get(),
                log_tail,
            }
            .into()),
        }
    }

    /// Stops the sandbox, then strips setuid/setgid bits from what it could write.
    pub fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        let record = self.record(vmid)?;
        self.kill_all(vmid, grace)?;
        let mut trees = vec![self.layout.home_dir(vmid)];
        trees.extend(
            record
                .volume
                .as_ref()
                .map(|v| self.layout.volume_dir(v).join("data")),
        );
        for tree in trees {
            idmap::strip_setid(&tree)?;
        }
        Ok(())
    }

    /// Ids of sandbox directories and of namespaces carrying our prefix.
    pub fn used_ids(&self) -> Result<Vec<Vmid>, HypervisorError> {
        let mut ids = self.layout.list()?;
        if let Ok(entries) = std::fs::read_dir(Path::new("/run/netns")) {
            ids.extend(entries.filter_map(Result::ok).filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                let n = name.strip_prefix(&self.opts.netns_prefix)?.parse().ok()?;
                Vmid::new(n).ok()
            }));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

/// Whether the sandbox's init runs (bwrap has set everything up and exec'd it).
fn sandbox_up(procs: &[Proc]) -> bool {
    procs
        .iter()
        .any(|p| p.argv.iter().any(|a| a == INIT_PATH_INSIDE))
}
