//! The blocking lifecycle verbs behind [`crate::LocalHypervisor`]: create, configure, start,
//! stop, destroy, status. Run on `spawn_blocking` threads; each reads and writes only its own
//! sandbox's directory.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use agentlab_core::{BootstrapData, HypervisorError, PowerState, VmSpec, Vmid};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::cgroup::Cgroups;
use crate::error::LocalError;
use crate::layout::{Layout, Record, remove_tree};
use crate::net;
use crate::options::LocalOptions;
use crate::procs::{self, Proc};
use crate::sandbox::{self, INIT_PATH_INSIDE, Mounts};

const POLL: Duration = Duration::from_millis(5);
/// How long SIGKILLed processes may take to disappear (uninterruptible sleep).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Shared state of a local hypervisor.
#[derive(Debug)]
pub(crate) struct Inner {
    pub opts: LocalOptions,
    pub layout: Layout,
    pub cgroups: Cgroups,
    /// Serialises volume bookkeeping (attach markers and records).
    pub volume_lock: std::sync::Mutex<()>,
}

fn not_found(vmid: Vmid) -> HypervisorError {
    HypervisorError::NotFound(format!("Sandbox {vmid}"))
}

impl Inner {
    pub fn new(opts: LocalOptions) -> Self {
        Self {
            layout: Layout::new(&opts.state_dir),
            cgroups: Cgroups::new(&opts.cgroup_root),
            opts,
            volume_lock: std::sync::Mutex::new(()),
        }
    }

    pub fn record(&self, vmid: Vmid) -> Result<Record, HypervisorError> {
        self.layout.load(vmid)?.ok_or_else(|| not_found(vmid))
    }

    fn netns(&self, vmid: Vmid) -> String {
        self.opts.netns_name(vmid)
    }

    pub fn procs(&self, vmid: Vmid) -> Vec<Proc> {
        procs::in_netns(&self.netns(vmid))
    }

    pub fn create(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
        let vmid = spec.vmid;
        let netns = self.netns(vmid);
        if self.layout.vm_dir(vmid).exists() || net::netns_exists(&netns) {
            return Err(HypervisorError::AlreadyExists(format!("Sandbox {vmid}")));
        }
        // The profile's bridge is a PVE notion; local sandboxes always join `opts.bridge`.
        let mut net_spec = spec.net.clone();
        net_spec.bridge.clone_from(&self.opts.bridge);
        net::require_bridge(self.opts.bridge_netns.as_deref(), &net_spec.bridge)?;
        Layout::mkdir(&self.layout.home_dir(vmid))?;
        let record = Record {
            spec: spec.clone(),
            volume: None,
        };
        let veth = LocalOptions::host_veth(vmid);
        let done = self
            .layout
            .save(&record)
            .and_then(|()| net::plumb(self.opts.bridge_netns.as_deref(), &netns, &veth, &net_spec));
        if let Err(err) = done {
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

    pub fn start(&self, vmid: Vmid, boot: Option<&BootstrapData>) -> Result<(), HypervisorError> {
        let record = self.record(vmid)?;
        if !self.procs(vmid).is_empty() {
            return Err(HypervisorError::Conflict(format!(
                "Sandbox {vmid} is running"
            )));
        }
        let l = &self.layout;
        let bootstrap = l.bootstrap_path(vmid);
        if let Some(data) = boot {
            sandbox::write_bootstrap(&bootstrap, data)?;
        }
        sandbox::write_etc(&l.etc_dir(vmid), &record.spec, &self.opts)?;
        let volume = record.volume.as_ref().map(|v| l.volume_dir(v).join("data"));
        let home = l.home_dir(vmid);
        Layout::mkdir(&home)?;
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
        let mounts = Mounts {
            etc: &etc,
            init: &init,
            home: &home,
            bootstrap: bootstrap.is_file().then_some(bootstrap.as_path()),
            volume: volume.as_deref(),
            seccomp: seccomp.is_some(),
        };
        let args = sandbox::bwrap_args(vmid, &mounts, &self.opts);
        let cgroup = self.limits(&record.spec);
        let log = l.log_path(vmid);
        let netns_path = procs::netns_path(&self.netns(vmid));
        let mut child = sandbox::spawn(
            &netns_path,
            &args,
            cgroup.as_ref(),
            seccomp.as_deref(),
            &log,
            &self.opts,
        )?;
        let _ = std::fs::write(l.pid_path(vmid), child.id().to_string());
        let deadline = Instant::now() + self.opts.start_timeout;
        let outcome = loop {
            if sandbox_up(&self.procs(vmid)) {
                break Ok(());
            }
            if let Ok(Some(_)) = child.try_wait() {
                break Err(sandbox::log_tail(&log));
            }
            if Instant::now() > deadline {
                let _ = self.kill_all(vmid, Duration::ZERO);
                break Err(format!("not running after {:?}", self.opts.start_timeout));
            }
            std::thread::sleep(POLL);
        };
        // Reap the outer process whenever it exits; the sandbox itself does not depend on us.
        std::thread::spawn(move || child.wait());
        match outcome {
            Ok(()) => {
                info!(sandbox = %vmid, "local sandbox started");
                Ok(())
            }
            Err(log_tail) => Err(LocalError::StartFailed {
                vmid: vmid.get(),
                log_tail,
            }
            .into()),
        }
    }

    /// The sandbox's cgroup (`cgroup.procs` path) when limits can be applied.
    fn limits(&self, spec: &VmSpec) -> Option<std::path::PathBuf> {
        if !self.cgroups.usable() {
            warn!(sandbox = %spec.vmid, root = %self.opts.cgroup_root.display(),
                "cgroup v2 hierarchy not writable: sandbox runs without resource limits");
            return None;
        }
        match self
            .cgroups
            .prepare(spec.vmid, &spec.resources, self.opts.pids_max)
        {
            Ok(procs) => Some(procs),
            Err(err) => {
                warn!(sandbox = %spec.vmid, error = %err,
                    "cannot set up the sandbox cgroup: sandbox runs without resource limits");
                None
            }
        }
    }

    pub fn stop(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        self.record(vmid)?;
        self.kill_all(vmid, grace)
    }

    /// SIGTERM to the sandbox's init, wait up to `grace`, then SIGKILL everything in it.
    fn kill_all(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        let running = self.procs(vmid);
        if running.is_empty() {
            return Ok(());
        }
        if !grace.is_zero() {
            for pid in procs::inits(&running) {
                procs::signal(pid, Signal::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while !self.procs(vmid).is_empty() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            let left = self.procs(vmid);
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(HypervisorError::Timeout(format!(
                    "Sandbox {vmid}: {} processes survive SIGKILL",
                    left.len()
                )));
            }
            for p in &left {
                procs::signal(p.pid, Signal::SIGKILL);
            }
            std::thread::sleep(POLL);
        }
        let _ = std::fs::remove_file(self.layout.pid_path(vmid));
        info!(sandbox = %vmid, "local sandbox stopped");
        Ok(())
    }

    pub fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        let record = self.record(vmid)?;
        self.kill_all(vmid, Duration::ZERO)?;
        let veth = LocalOptions::host_veth(vmid);
        net::unplumb(self.opts.bridge_netns.as_deref(), &self.netns(vmid), &veth);
        self.cgroups.remove(vmid);
        if let Some(vol) = &record.volume {
            crate::volumes::clear_marker(&self.layout, vol);
        }
        remove_tree(&self.layout.vm_dir(vmid))?;
        info!(sandbox = %vmid, "local sandbox destroyed");
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
