//! Stopping and destroying a sandbox, and proving it is gone. Processes are found by network
//! namespace identity, cgroup membership and pid-file ancestry ([`crate::procs`]), never by
//! what this process happens to see mounted; the network namespace is checked by its inode,
//! including bind mounts of it in other mount namespaces (a daemon restarted in a new mount
//! namespace cannot see the old `/run/netns` mounts).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agentlab_core::{HypervisorError, Vmid};
use nix::sys::signal::Signal;
use tracing::{info, warn};

use crate::error::LocalError;
use crate::layout::{Record, remove_tree};
use crate::net;
use crate::ops::Inner;
use crate::options::LocalOptions;
use crate::procs::{self, NsId, Proc, Target};

const POLL: Duration = Duration::from_millis(5);
/// How long SIGKILLed processes may take to disappear (uninterruptible sleep).
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Inner {
    /// How to recognise `vmid`'s processes right now.
    pub(crate) fn target(&self, vmid: Vmid, record: Option<&Record>) -> Target {
        let mut netns: Vec<NsId> = procs::ns_id(&procs::netns_path(&self.opts.netns_name(vmid)))
            .into_iter()
            .collect();
        netns.extend(record.and_then(|r| r.netns_id));
        Target {
            netns,
            cgroup_pids: self.cgroups.members(vmid),
            root: self.layout.read_pid(vmid),
        }
    }

    /// The sandbox's live processes.
    pub fn procs(&self, vmid: Vmid) -> Vec<Proc> {
        let record = self.layout.load(vmid).ok().flatten();
        procs::find(&self.target(vmid, record.as_ref()))
    }

    /// SIGTERM to the sandbox's init, wait up to `grace`, then kill everything in it (the
    /// cgroup first, frozen where possible). Fails when a process survives for 10 s.
    pub(crate) fn kill_all(&self, vmid: Vmid, grace: Duration) -> Result<(), HypervisorError> {
        let running = self.procs(vmid);
        if !running.is_empty() && !grace.is_zero() {
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
                return Err(LocalError::NotGone {
                    vmid: vmid.get(),
                    what: format!(
                        "{} processes survive SIGKILL (pids {:?})",
                        left.len(),
                        left.iter().map(|p| p.pid).collect::<Vec<_>>()
                    ),
                }
                .into());
            }
            self.cgroups.kill(vmid);
            for p in &left {
                procs::signal(p.pid, Signal::SIGKILL);
            }
            std::thread::sleep(POLL);
        }
        let _ = fs::remove_file(self.layout.pid_path(vmid));
        info!(sandbox = %vmid, "local sandbox stopped");
        Ok(())
    }

    /// Kills the sandbox, deletes its veth, netns and cgroups, detaches its volume and removes
    /// its directory; then verifies that no process, netns (by inode) or cgroup is left.
    /// Works on a half-made sandbox without a record.
    pub fn destroy(&self, vmid: Vmid) -> Result<(), HypervisorError> {
        let record = self.layout.load(vmid)?;
        if record.is_none() && !self.layout.vm_dir(vmid).exists() {
            return Err(HypervisorError::NotFound(format!("Sandbox {vmid}")));
        }
        let netns = self.opts.netns_name(vmid);
        let mut ids: Vec<NsId> = self.target(vmid, record.as_ref()).netns;
        self.kill_all(vmid, Duration::ZERO)?;
        agentlab_core::fail_point!("local:destroy:killed");
        net::unplumb(
            self.opts.bridge_netns.as_deref(),
            &netns,
            &LocalOptions::host_veth(vmid),
        );
        if let Some(r) = &record {
            net::flush_neighbour(
                self.opts.bridge_netns.as_deref(),
                &self.opts.bridge,
                r.spec.net.ip,
            );
        }
        agentlab_core::fail_point!("local:destroy:unplumbed");
        ids.sort_unstable();
        ids.dedup();
        for id in &ids {
            release_netns(*id).map_err(|what| LocalError::NotGone {
                vmid: vmid.get(),
                what,
            })?;
        }
        self.cgroups.remove(vmid)?;
        agentlab_core::fail_point!("local:destroy:cgroups");
        let left = self.procs(vmid);
        if !left.is_empty() {
            return Err(LocalError::NotGone {
                vmid: vmid.get(),
                what: format!("{} processes reappeared", left.len()),
            }
            .into());
        }
        if let Some(vol) = record.as_ref().and_then(|r| r.volume.as_ref()) {
            let data = self.layout.volume_dir(vol).join("data");
            if let Err(err) = crate::idmap::strip_setid(&data) {
                warn!(sandbox = %vmid, error = %err, "cannot strip setuid bits in the volume");
            }
            crate::volumes::clear_marker(&self.layout, vol);
        }
        remove_tree(&self.layout.vm_dir(vmid))?;
        info!(sandbox = %vmid, "local sandbox destroyed");
        Ok(())
    }

    /// Removes half-made sandbox directories left by a crash during `create` (or `destroy`),
    /// tearing down whatever they may have started. Run by every new backend instance.
    pub fn cleanup_incomplete(&self) {
        for (dir, vmid) in self.layout.incomplete() {
            let done = match vmid {
                Some(v) if dir == self.layout.vm_dir(v) => {
                    self.destroy(v).map_err(|e| e.to_string())
                }
                _ => remove_tree(&dir).map_err(|e| e.to_string()),
            };
            match done {
                Ok(()) => info!(dir = %dir.display(), "removed a half-made sandbox directory"),
                Err(error) => {
                    warn!(dir = %dir.display(), %error, "cannot remove a half-made sandbox directory");
                }
            }
        }
    }
}

/// Where the network namespace `id` is still bind-mounted: `(a pid in that mount namespace,
/// mount point)`, one entry per mount namespace and mount point.
fn netns_mounts(id: NsId) -> Vec<(i32, String)> {
    let root = format!("net:[{}]", id.1);
    let mut seen_ns = BTreeSet::new();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(mnt) = fs::metadata(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !seen_ns.insert((mnt.dev(), mnt.ino())) {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        for line in info.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let fstype = line.split(" - ").nth(1).and_then(|r| r.split(' ').next());
            if f.get(3) == Some(&root.as_str()) && fstype == Some("nsfs") {
                found.push((pid, f.get(4).copied().unwrap_or_default().to_owned()));
            }
        }
    }
    found
}

/// Makes sure nothing keeps the network namespace `id` alive: no process in it (the caller
/// killed them) and no bind mount of it in any mount namespace (unmounted through `nsenter`,
/// and the mount point file under `/run/netns` removed). `Err` says what is left.
fn release_netns(id: NsId) -> Result<(), String> {
    for _ in 0..3 {
        let mounts = netns_mounts(id);
        if mounts.is_empty() {
            break;
        }
        for (pid, point) in mounts {
            let point = point.replace("\\040", " ");
            let ns = format!("--mount=/proc/{pid}/ns/mnt");
            let out = Command::new("/usr/bin/nsenter")
                .args([ns.as_str(), "--", "umount", &point])
                .output();
            if !out.is_ok_and(|o| o.status.success()) {
                warn!(pid, mount = %point, "cannot unmount a sandbox netns in another mount namespace");
            } else if Path::new(&point).starts_with("/run/netns") {
                let _ = Command::new("/usr/bin/nsenter")
                    .args([ns.as_str(), "--", "rm", "-f", &point])
                    .output();
            }
        }
    }
    let mounts = netns_mounts(id);
    let users = procs::find(&Target {
        netns: vec![id],
        ..Target::default()
    });
    if mounts.is_empty() && users.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "network namespace net:[{}] still held by {} mounts and {} processes",
            id.1,
            mounts.len(),
            users.len()
        ))
    }
}
