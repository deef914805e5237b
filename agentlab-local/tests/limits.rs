//! Resource limits on the host's real cgroups (v1 here: memory, cpu, pids, freezer under
//! `/sys/fs/cgroup/<controller>`; v2 elsewhere): a memory hog is OOM-killed, a fork bomb stops
//! at `pids.max`, the CPU quota throttles a busy loop, and a host without the controllers
//! refuses the sandbox unless `allow_unlimited` is set. Root, bwrap and ip required.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use agentlab_core::{Hypervisor, HypervisorError, Vmid};

    use super::support::{Lab, SLEEPER, privileged, wait_for_done};

    /// The sandbox's cgroup directory of `controller` (v1), or its v2 directory.
    fn cgroup(lab: &Lab, controller: &str, vmid: u32) -> PathBuf {
        let root = &lab.opts.cgroup_root;
        let v2 = root.join("cgroup.controllers").exists();
        let base = if v2 {
            root.clone()
        } else {
            root.join(controller)
        };
        base.join(&lab.opts.cgroup_name).join(vmid.to_string())
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// Allocates 200 MB in one process (`tail` buffers the whole line).
    const HOG: &str = "#!/bin/sh\nhead -c 200000000 /dev/zero | tail > /dev/null\necho \"exit=$?\" > /home/agent/hog\necho done >> /home/agent/hog\nexec sleep 100000\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn the_memory_limit_kills_a_process_that_exceeds_it() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("m", HOG);
        let hv = lab.hv();
        let mut spec = lab.spec(900_700, 47);
        spec.resources.memory_mb = 32;
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let text = wait_for_done(&lab.home(900_700).join("hog"));
        assert!(!text.contains("exit=0"), "the hog survived: {text}");
        let dir = cgroup(&lab, "memory", 900_700);
        if dir.join("memory.limit_in_bytes").exists() {
            assert_eq!(
                read(&dir.join("memory.limit_in_bytes")),
                (32u64 << 20).to_string()
            );
            let oom = read(&dir.join("memory.oom_control"));
            let kills: u64 = oom
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(kills >= 1, "no OOM kill recorded: {oom}");
        } else {
            assert_eq!(read(&dir.join("memory.max")), (32u64 << 20).to_string());
        }
        hv.destroy(spec.vmid).await.unwrap();
        assert!(!dir.exists(), "cgroup left behind");
    }

    /// Forks 200 sleepers and reports how many forks succeeded and failed (no fork needed
    /// to report).
    const FORKS: &str = "#!/bin/sh\n/usr/bin/python3 -c '
import os, time
kids, failed = 0, 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(1000)
        os._exit(0)
    kids += 1
with open(\"/home/agent/forks\", \"w\") as f:
    f.write(f\"forked={kids}\\nfailed={failed}\\ndone\\n\")
time.sleep(100000)
'\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn a_fork_bomb_stops_at_pids_max() {
        if !privileged() {
            return;
        }
        let mut lab = Lab::new("p", FORKS);
        lab.opts.pids_max = 40;
        let hv = lab.hv();
        let spec = lab.spec(901_400, 60);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let text = wait_for_done(&lab.home(901_400).join("forks"));
        let field = |k: &str| -> u32 {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|n| n.trim().parse().ok())
                .unwrap()
        };
        assert!(field("forked=") < 40, "{text}");
        assert!(field("failed=") > 150, "{text}");
        let dir = cgroup(&lab, "pids", 901_400);
        assert_eq!(read(&dir.join("pids.max")), "40");
        let current: u32 = read(&dir.join("pids.current")).parse().unwrap();
        assert!((30..=40).contains(&current), "pids.current {current}");
        hv.destroy(spec.vmid).await.unwrap();
        assert!(!dir.exists(), "cgroup left behind");
    }

    /// Spins for about a second of wall time, then reports.
    const SPIN: &str = "#!/bin/sh\nend=$(($(date +%s) + 2))\nwhile [ $(date +%s) -lt $end ]; do :; done\necho done > /home/agent/spin\nexec sleep 100000\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn the_cpu_quota_throttles_a_busy_loop() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("q", SPIN);
        let hv = lab.hv();
        let mut spec = lab.spec(901_500, 61);
        spec.resources.cpulimit = Some(0.2);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        wait_for_done(&lab.home(901_500).join("spin"));
        let dir = cgroup(&lab, "cpu", 901_500);
        let stat = if dir.join("cpu.cfs_quota_us").exists() {
            assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "20000");
            assert_eq!(read(&dir.join("cpu.cfs_period_us")), "100000");
            read(&dir.join("cpu.stat"))
        } else {
            assert_eq!(read(&dir.join("cpu.max")), "20000 100000");
            read(&dir.join("cpu.stat"))
        };
        let throttled: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(throttled > 0, "never throttled: {stat}");
        hv.destroy(spec.vmid).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_host_without_the_controllers_refuses_unless_allowed() {
        if !privileged() {
            return;
        }
        let mut lab = Lab::new("u", SLEEPER);
        // No controller at all: an empty directory as the cgroup root.
        let empty = lab.dir.path().join("no-cgroups");
        std::fs::create_dir_all(&empty).unwrap();
        lab.opts.cgroup_root = empty;
        let hv = lab.hv();
        let spec = lab.spec(901_600, 62);
        let err = hv.create(&spec).await.unwrap_err();
        let HypervisorError::Rejected { reason } = &err else {
            panic!("not a refusal: {err:?}");
        };
        assert!(
            reason.contains("memory") && reason.contains("pids"),
            "{reason}"
        );
        assert!(reason.contains("allow_unlimited"), "{reason}");
        assert!(hv.list_managed().await.unwrap().is_empty());
        lab.opts.allow_unlimited = true;
        let hv = lab.hv();
        hv.create(&spec).await.unwrap();
        hv.start(Vmid::new(901_600).unwrap(), None).await.unwrap();
        hv.destroy(spec.vmid).await.unwrap();
    }
}
