//! A daemon killed with SIGKILL: a child process (this test binary re-run on its helper test)
//! creates and starts a sandbox, then is SIGKILLed; a fresh backend over the same state
//! directory finds the sandbox still running and destroys it. Root, bwrap and ip required.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use agentlab_core::{Hypervisor, PowerState};
    use agentlab_local::{LocalHypervisor, LocalOptions};

    use super::support::{Lab, SLEEPER, privileged};

    const ENV: &str = "AGENTLAB_LOCAL_TEST_CHILD";

    /// Runs only inside the child: starts sandbox 901000 with the options passed in the
    /// environment, reports `started`, then waits to be killed.
    #[tokio::test(flavor = "multi_thread")]
    async fn child_starts_a_sandbox_and_hangs() {
        let Some(state) = std::env::var_os(ENV) else {
            return;
        };
        let state = PathBuf::from(state);
        let get = |k: &str| std::env::var(k).unwrap();
        let mut opts = LocalOptions::new(state.join("state"), get("AL_RUNNER"));
        opts.bridge_netns = Some(get("AL_ROUTER"));
        opts.netns_prefix = get("AL_PREFIX");
        opts.cgroup_name = get("AL_CGROUP");
        opts.runner_args = Vec::new();
        let hv = LocalHypervisor::new(opts);
        let lab_spec: agentlab_core::VmSpec = serde_json::from_str(&get("AL_SPEC")).unwrap();
        hv.create(&lab_spec).await.unwrap();
        hv.start(lab_spec.vmid, None).await.unwrap();
        std::fs::write(state.join("started"), "yes").unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sigkilled_daemon_leaves_a_sandbox_a_new_one_finds() {
        if std::env::var_os(ENV).is_some() || !privileged() {
            return;
        }
        let lab = Lab::new("k", SLEEPER);
        let spec = lab.spec(901_000, 51);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::child_starts_a_sandbox_and_hangs",
                "--nocapture",
            ])
            .env(ENV, lab.dir.path())
            .env("AL_RUNNER", &lab.opts.runner_path)
            .env("AL_ROUTER", lab.router.name())
            .env("AL_PREFIX", &lab.opts.netns_prefix)
            .env("AL_CGROUP", &lab.opts.cgroup_name)
            .env("AL_SPEC", serde_json::to_string(&spec).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let started = lab.dir.path().join("started");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !started.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the child exited early"
            );
            assert!(
                Instant::now() < deadline,
                "the child never started its sandbox"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let hv = lab.hv();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
        let managed = hv.list_managed().await.unwrap();
        assert_eq!(managed.len(), 1);
        assert_eq!(managed[0].power, PowerState::Running);
        hv.destroy(spec.vmid).await.unwrap();
        assert!(lab.sandbox_netns().is_empty());
        assert!(hv.list_managed().await.unwrap().is_empty());
    }
}
