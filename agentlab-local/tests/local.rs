//! The local backend for real (root, bwrap, ip): the hypervisor conformance suite, what a
//! sandbox can and cannot see, graceful stop, destroy leaving no trace, a daemon restart and the
//! memory limit. Every test skips (or panics under `CI`) without its prerequisites; see
//! `support::privileged`.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use agentlab_core::testkit::hypervisor::hypervisor_conformance;
    use agentlab_core::{
        BootstrapData, Hypervisor, HypervisorError, PowerState, SecretValue, Vmid, WorkspaceId,
    };

    use agentlab_net::netns::ip;

    use super::support::{Lab, SLEEPER, privileged, wait_for_done};

    fn vmid(n: u32) -> Vmid {
        Vmid::new(n).unwrap()
    }

    fn boot(n: u32) -> BootstrapData {
        BootstrapData {
            channel_key: None,
            ssh_public_keys: Vec::new(),
            controller_url: "http://10.77.0.1:8844".to_owned(),
            token: SecretValue::new("local-test-token-not-real"),
            vmid: vmid(n),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conformance() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("c", SLEEPER);
        let hv = lab.hv();
        hypervisor_conformance(&hv, &lab.env()).await;
        assert!(lab.sandbox_netns().is_empty(), "netns left behind");
    }

    /// The runner script: each check prints `name=value`; the file ends with `done`.
    const PROBE: &str = r#"#!/bin/sh
out=/home/agent/results.tmp
{
  echo "args=$*"
  if cat "$(cat /run/agentlab/marker-path 2>/dev/null || echo /root/marker)" >/dev/null 2>&1; then echo root_marker=readable; else echo root_marker=hidden; fi
  if [ -e /root ]; then echo root_dir=present; else echo root_dir=absent; fi
  if touch /usr/agentlab-probe 2>/dev/null; then echo usr=writable; else echo usr=readonly; fi
  if touch /etc/agentlab-probe 2>/dev/null; then echo etc=writable; else echo etc=readonly; fi
  if touch /agentlab-probe 2>/dev/null; then echo rootdir=writable; else echo rootdir=readonly; fi
  if touch /tmp/probe && touch /home/agent/probe; then echo scratch=writable; else echo scratch=readonly; fi
  echo procs=$(ls -d /proc/[0-9]* | wc -l)
  echo user=$(id -un):$(id -u):$(id -g)
  if touch /run/agentlab/secrets/probe && rm /run/agentlab/secrets/probe; then echo secrets_rw=writable; else echo secrets_rw=readonly; fi
  if bwrap --ro-bind / / --dev /dev --tmpfs /tmp true 2>/dev/null; then echo inner_bwrap=works; else echo inner_bwrap=fails; fi
  echo pid1=$(tr '\0' ' ' < /proc/1/cmdline)
  echo secrets_fs=$(stat -f -c %T /run/agentlab/secrets)
  echo secrets_mode=$(stat -c %a /run/agentlab/secrets)
  if grep -q local-test-token-not-real /run/agentlab/bootstrap.json; then echo bootstrap=readable; else echo bootstrap=missing; fi
  echo bootstrap_mode=$(stat -c %a /run/agentlab/bootstrap.json)
  echo bootstrap_fs=$(stat -f -c %T /run/agentlab/bootstrap.json)
  if [ -e /etc/shadow ]; then echo shadow=present; else echo shadow=absent; fi
  echo hostname=$(hostname)
  echo addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
  echo mac=$(ip -o link show dev eth0 | sed 's/.*link\/ether \([^ ]*\).*/\1/')
  echo route=$(ip -4 route show default | awk '{print $3}')
  echo caps=$(awk '/^CapEff/ {print $2}' /proc/self/status)
  echo nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)
  if echo hi > /work/from-sandbox 2>/dev/null; then echo work=writable; else echo work=absent; fi
  echo git=$(git --version | cut -d' ' -f1)
  echo seccomp=$(/usr/bin/python3 -c 'import ctypes
l = ctypes.CDLL(None, use_errno=True)
out = []
for nr in (250, 298, 321, 323, 425, 0x40000027, 39):
    v = l.syscall(nr, 0, 0, 0, 0, 0)
    out.append(str(ctypes.get_errno()) if v == -1 else "ok")
print(",".join(out))')
  echo done
} > "$out" 2>&1
mv "$out" /home/agent/results
trap 'exit 0' TERM
sleep 100000 &
wait
"#;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sandbox_sees_only_its_own_world() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("i", PROBE);
        let marker = std::path::Path::new("/root")
            .join(format!("agentlab-local-marker-{}", std::process::id()));
        std::fs::write(&marker, "host secret").unwrap();
        let hv = lab.hv();
        let spec = lab.spec(900_200, 42);
        let handle = hv.create(&spec).await.unwrap();
        assert_eq!(handle.iface.as_deref(), Some("al900200h"));
        let ws = WorkspaceId::generate();
        let vol = hv.create_volume(&ws, 1).await.unwrap();
        hv.attach_volume(spec.vmid, &vol).await.unwrap();
        hv.start(spec.vmid, Some(&boot(900_200))).await.unwrap();
        assert_eq!(
            hv.guest_address(spec.vmid).await.unwrap(),
            Some(spec.net.ip)
        );
        let text = wait_for_done(&lab.home(900_200).join("results"));
        let _ = std::fs::remove_file(&marker);
        let r: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let want = [
            ("args", "--from-test"),
            ("root_marker", "hidden"),
            ("root_dir", "absent"),
            ("usr", "readonly"),
            ("etc", "readonly"),
            ("rootdir", "readonly"),
            ("scratch", "writable"),
            ("user", "agent:1000:1000"),
            ("secrets_rw", "writable"),
            ("inner_bwrap", "works"),
            ("secrets_fs", "tmpfs"),
            ("secrets_mode", "700"),
            ("bootstrap", "readable"),
            ("bootstrap_mode", "600"),
            ("bootstrap_fs", "tmpfs"),
            ("shadow", "absent"),
            ("hostname", "sandbox-900200"),
            ("addr", "10.77.0.42/16"),
            ("mac", spec.net.mac.as_str()),
            ("route", "10.77.0.1"),
            ("caps", "0000000000000000"),
            ("nnp", "1"),
            ("work", "writable"),
            ("git", "git"),
            // keyctl, perf_event_open, bpf, userfaultfd, io_uring_setup, x32 getpid: EPERM;
            // getpid: allowed.
            ("seccomp", "1,1,1,1,1,1,ok"),
        ];
        for (key, value) in want {
            assert_eq!(r.get(key).copied(), Some(value), "{key} in:\n{text}");
        }
        let procs: u32 = r["procs"].parse().unwrap();
        assert!(procs < 10, "pid namespace shows {procs} processes:\n{text}");
        assert!(r["pid1"].contains("/run/agentlab/bin/init"), "{text}");
        let on_host = lab
            .opts
            .state_dir
            .join("volumes")
            .join(&vol.0)
            .join("data/from-sandbox");
        assert_eq!(std::fs::read_to_string(on_host).unwrap(), "hi\n");
        hv.destroy(spec.vmid).await.unwrap();
        // Destroy detaches the workspace and keeps it; a second detach is a no-op.
        let data = lab.opts.state_dir.join("volumes").join(&vol.0).join("data");
        assert!(data.join("from-sandbox").is_file());
        let other = lab.spec(900_201, 49);
        hv.create(&other).await.unwrap();
        hv.detach_volume(other.vmid, &vol).await.unwrap();
        hv.attach_volume(other.vmid, &vol).await.unwrap();
        hv.destroy(other.vmid).await.unwrap();
        hv.delete_volume(&vol).await.unwrap();
        assert!(!data.exists());
    }

    const TERM_REPORTER: &str = "#!/bin/sh\ntrap 'echo term > /home/agent/stopped; exit 0' TERM\necho up > /home/agent/up\nsleep 100000 &\nwait\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn stop_sends_sigterm_to_the_runner_first() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("s", TERM_REPORTER);
        let hv = lab.hv();
        let spec = lab.spec(900_300, 43);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
        assert!(matches!(
            hv.start(spec.vmid, None).await,
            Err(HypervisorError::Conflict(_))
        ));
        hv.stop(spec.vmid, Duration::from_secs(30)).await.unwrap();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Stopped);
        let stopped = std::fs::read_to_string(lab.home(900_300).join("stopped")).unwrap();
        assert_eq!(stopped, "term\n");
        assert_eq!(hv.guest_address(spec.vmid).await.unwrap(), None);
        // Start again: same home directory, running again.
        hv.start(spec.vmid, None).await.unwrap();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
        hv.destroy(spec.vmid).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn destroy_leaves_no_trace() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("d", ESCAPER);
        let hv = lab.hv();
        let spec = lab.spec(900_400, 44);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, Some(&boot(900_400))).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while escaped_sleepers().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the escaper never ran"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(lab.router_has_link("al900400h"));
        assert_eq!(lab.sandbox_netns(), vec![lab.netns(900_400)]);
        // The bootstrap data went into the sandbox's tmpfs, never onto the host's disk.
        assert!(!lab.vm_dir(900_400).join("bootstrap.json").exists());
        // What traffic from the sandbox leaves on the bridge: a neighbour entry for its address.
        let router = Some(lab.router.name());
        let neigh = |args: &[&str]| ip(router, args).unwrap();
        neigh(&[
            "neigh",
            "replace",
            "10.77.0.44",
            "lladdr",
            &spec.net.mac,
            "dev",
            "agentlab0",
            "nud",
            "reachable",
        ]);
        assert!(
            neigh(&["neigh", "show", "to", "10.77.0.44", "dev", "agentlab0"]).contains("lladdr")
        );
        hv.destroy(spec.vmid).await.unwrap();
        assert_eq!(
            neigh(&["neigh", "show", "to", "10.77.0.44", "dev", "agentlab0"]).trim(),
            "",
            "neighbour entry of the destroyed sandbox left behind"
        );
        assert!(!lab.router_has_link("al900400h"), "veth left behind");
        assert!(lab.sandbox_netns().is_empty(), "netns left behind");
        assert!(!lab.vm_dir(900_400).exists(), "sandbox files left behind");
        for c in ["", "memory", "cpu", "pids", "freezer"] {
            let cgroup = lab
                .opts
                .cgroup_root
                .join(c)
                .join(&lab.opts.cgroup_name)
                .join("900400");
            assert!(!cgroup.exists(), "cgroup {} left behind", cgroup.display());
        }
        assert!(matches!(
            hv.status(spec.vmid).await,
            Err(HypervisorError::NotFound(_))
        ));
        assert!(!hv.used_ids().await.unwrap().contains(&spec.vmid));
        assert_eq!(
            escaped_sleepers(),
            Vec::<String>::new(),
            "a process survived"
        );
    }

    /// A runner that also leaves a process in a network namespace of its own.
    const ESCAPER: &str =
        "#!/bin/sh\ntrap 'exit 0' TERM\nunshare -U -n sleep 100123 &\nsleep 100000 &\nwait\n";

    /// Live (non-zombie) processes running `sleep 100123`.
    fn escaped_sleepers() -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c == b"sleep\x00100123\x00")
                    && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| !s.contains(") Z "))
            })
            .map(|pid| pid.to_string())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_restarted_daemon_finds_its_sandboxes() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("r", SLEEPER);
        let spec = lab.spec(900_500, 45);
        {
            let first = lab.hv();
            first.create(&spec).await.unwrap();
            first.start(spec.vmid, Some(&boot(900_500))).await.unwrap();
        }
        let second = lab.hv();
        assert_eq!(second.status(spec.vmid).await.unwrap(), PowerState::Running);
        let managed = second.list_managed().await.unwrap();
        assert!(
            managed
                .iter()
                .any(|m| m.vmid == spec.vmid && m.power == PowerState::Running),
            "{managed:?}"
        );
        assert!(second.used_ids().await.unwrap().contains(&spec.vmid));
        assert_eq!(
            second.guest_address(spec.vmid).await.unwrap(),
            Some(spec.net.ip)
        );
        second.destroy(spec.vmid).await.unwrap();
        assert!(lab.sandbox_netns().is_empty());
        assert!(second.list_managed().await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failing_sandbox_start_is_reported_with_its_log() {
        if !privileged() {
            return;
        }
        let mut lab = Lab::new("f", SLEEPER);
        lab.opts.runner_path = lab.dir.path().join("no-such-runner");
        let hv = lab.hv();
        let spec = lab.spec(900_600, 46);
        hv.create(&spec).await.unwrap();
        let err = hv.start(spec.vmid, None).await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("no-such-runner"), "{text}");
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Stopped);
        hv.destroy(spec.vmid).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn limits_go_through_the_cgroup_before_bwrap_runs() {
        if !privileged() {
            return;
        }
        // A stand-in hierarchy (plain files): checks the plumbing, not the kernel.
        let mut lab = Lab::new("g", SLEEPER);
        let root = lab.dir.path().join("cgroup");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.subtree_control"), "").unwrap();
        lab.opts.cgroup_root = root.clone();
        lab.opts.pids_max = 99;
        let hv = lab.hv();
        let mut spec = lab.spec(900_900, 50);
        spec.resources.cores = 2;
        spec.resources.cpulimit = Some(1.5);
        spec.resources.memory_mb = 256;
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let dir = root.join(&lab.opts.cgroup_name).join("900900");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("memory.max"), (256u64 << 20).to_string());
        assert_eq!(read("pids.max"), "99");
        let pid: i32 = read("cgroup.procs").trim().parse().unwrap();
        assert!(pid > 1);
        // The pid written is the process that became bwrap (same pid through the execs).
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(String::from_utf8_lossy(&cmd).starts_with("/usr/bin/bwrap"));
        hv.destroy(spec.vmid).await.unwrap();
    }

    /// Exits 1 on its first run, 0 on its second (then the sandbox idles).
    const FLAKY: &str = "#!/bin/sh\nif [ -e /home/agent/first ]; then echo done >> /home/agent/first; exit 0; fi\necho first > /home/agent/first\nexit 1\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn the_init_restarts_a_runner_that_exits_1_and_keeps_the_sandbox_up() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("x", FLAKY);
        let hv = lab.hv();
        let spec = lab.spec(901_100, 52);
        hv.create(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let text = wait_for_done(&lab.home(901_100).join("first"));
        assert_eq!(text, "first\ndone\n");
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Running);
        assert_eq!(
            hv.guest_address(spec.vmid).await.unwrap(),
            Some(spec.net.ip)
        );
        hv.stop(spec.vmid, Duration::from_secs(30)).await.unwrap();
        assert_eq!(hv.status(spec.vmid).await.unwrap(), PowerState::Stopped);
        hv.destroy(spec.vmid).await.unwrap();
    }
}
