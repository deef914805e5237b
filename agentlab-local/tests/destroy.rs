//! Destroy proves the sandbox is gone without trusting what its mount namespace shows: run
//! from a process whose `/run/netns` is a different (empty) mount, it still kills every
//! process (found by cgroup, pid file and netns inode), releases the network namespace
//! (unmounting its bind mount in the other mount namespace) and removes the cgroups. And a
//! crash during create leaves nothing a new backend instance does not clean. Root, bwrap, ip
//! and util-linux `unshare` required.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use agentlab_core::{Hypervisor, VmSpec, Vmid};
    use agentlab_local::{LocalHypervisor, LocalOptions};

    use super::support::{Lab, SLEEPER, privileged};

    const ENV: &str = "AGENTLAB_LOCAL_DESTROY_CHILD";

    /// Runs only inside the child, in its own mount namespace: hides `/run/netns` behind an
    /// empty tmpfs (like a daemon restarted in a new mount namespace), then destroys.
    #[tokio::test(flavor = "multi_thread")]
    async fn child_destroys_from_another_mount_namespace() {
        let Some(state) = std::env::var_os(ENV) else {
            return;
        };
        let get = |k: &str| std::env::var(k).unwrap();
        let hidden = Command::new("mount")
            .args(["-t", "tmpfs", "hide", "/run/netns"])
            .status()
            .unwrap();
        assert!(hidden.success());
        assert!(std::fs::read_dir("/run/netns").unwrap().next().is_none());
        let mut opts = LocalOptions::new(PathBuf::from(state), get("AL_RUNNER"));
        opts.bridge_netns = Some(get("AL_ROUTER"));
        opts.netns_prefix = get("AL_PREFIX");
        opts.cgroup_name = get("AL_CGROUP");
        let hv = LocalHypervisor::new(opts);
        let vmid = Vmid::new(get("AL_VMID").parse().unwrap()).unwrap();
        hv.destroy(vmid).await.unwrap();
        std::fs::write(get("AL_DONE"), "destroyed").unwrap();
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn destroy_from_another_mount_namespace_kills_and_verifies() {
        if std::env::var_os(ENV).is_some() || !privileged() {
            return;
        }
        let lab = Lab::new("d", SLEEPER);
        let hv = lab.hv();
        let spec = lab.spec(901_900, 90);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let pids: Vec<i32> = String::from_utf8(
            Command::new("ip")
                .args(["netns", "pids", &lab.netns(901_900)])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
        assert!(pids.len() >= 2, "{pids:?}");
        let done = lab.dir.path().join("destroyed");
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::child_destroys_from_another_mount_namespace",
                "--nocapture",
            ])
            .env(ENV, &lab.opts.state_dir)
            .env("AL_RUNNER", &lab.opts.runner_path)
            .env("AL_ROUTER", lab.router.name())
            .env("AL_PREFIX", &lab.opts.netns_prefix)
            .env("AL_CGROUP", &lab.opts.cgroup_name)
            .env("AL_VMID", "901900")
            .env("AL_DONE", &done)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success() && done.exists(),
            "the child's destroy failed"
        );
        for pid in &pids {
            assert!(!alive(*pid), "sandbox process {pid} survived the destroy");
        }
        assert!(lab.sandbox_netns().is_empty(), "netns left behind");
        // Once the namespace is gone, so is the veth pair.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lab.router_has_link("al901900h") {
            assert!(std::time::Instant::now() < deadline, "veth left behind");
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in ["", "memory", "cpu", "pids", "freezer"] {
            let dir = lab
                .opts
                .cgroup_root
                .join(c)
                .join(&lab.opts.cgroup_name)
                .join("901900");
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        assert!(!lab.vm_dir(901_900).exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_new_instance_removes_what_a_crashed_create_left() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("z", SLEEPER);
        let state = &lab.opts.state_dir;
        std::fs::create_dir_all(state).unwrap();
        // A crash before the rename: a build directory with a record.
        let building = state.join(".creating-902000");
        std::fs::create_dir_all(&building).unwrap();
        let spec: VmSpec = lab.spec(902_000, 91);
        std::fs::write(
            building.join("spec.json"),
            serde_json::to_vec(&serde_json::json!({ "spec": spec })).unwrap(),
        )
        .unwrap();
        // A crash of an older layout: a sandbox directory without a record, with its netns.
        let orphan = lab.vm_dir(902_001);
        std::fs::create_dir_all(orphan.join("home")).unwrap();
        let ns = lab.netns(902_001);
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success()
        );

        let hv = lab.hv();
        assert!(!building.exists(), "build directory left");
        assert!(!orphan.exists(), "record-less sandbox directory left");
        assert!(
            lab.sandbox_netns().is_empty(),
            "netns of the half-made sandbox left"
        );
        assert!(hv.list_managed().await.unwrap().is_empty());
        // Both ids are usable again.
        for (n, host) in [(902_000, 91), (902_001, 92)] {
            let spec = lab.spec(n, host);
            hv.create(&spec).await.unwrap();
            hv.destroy(spec.vmid).await.unwrap();
        }
    }
}
