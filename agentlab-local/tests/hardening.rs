//! A sandbox cannot touch the host's kernel settings or read root-only kernel files, its
//! users are an unprivileged host id range of its own, and setuid files it leaves on the host
//! disk are out of host users' reach and lose their setuid bits at stop and destroy. Every
//! check runs from inside a real sandbox. Root, bwrap and ip required.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::Command;
    use std::time::Duration;

    use agentlab_core::{Hypervisor, WorkspaceId};

    use super::support::{Lab, privileged, wait_for_done};

    /// Root-only or host-revealing `/proc` files that must read as nothing inside.
    const MASKED: [&str; 11] = [
        "kcore",
        "kpageflags",
        "kpagecount",
        "kpagecgroup",
        "keys",
        "key-users",
        "timer_list",
        "sched_debug",
        "slabinfo",
        "vmallocinfo",
        "kmsg",
    ];

    const PROBE: &str = r#"#!/bin/sh
out=/home/agent/results.tmp
{
  if echo 17 > /proc/sys/kernel/printk_ratelimit 2>/dev/null; then echo printk=written; else echo printk=refused; fi
  if echo '|/home/agent/pwn' > /proc/sys/kernel/core_pattern 2>/dev/null; then echo core_pattern=written; else echo core_pattern=refused; fi
  if [ -e /proc/sysrq-trigger ] && echo h > /proc/sysrq-trigger 2>/dev/null; then echo sysrq=written; else echo sysrq=refused; fi
  echo proc_sys_mount=$(awk '$5 == "/proc/sys" {print substr($6, 1, 2)}' /proc/self/mountinfo)
  for f in kcore kpageflags kpagecount kpagecgroup keys key-users timer_list sched_debug slabinfo vmallocinfo kmsg; do
    if [ -e /proc/$f ]; then echo "mask_$f=$(timeout 2 head -c 64 /proc/$f 2>/dev/null | wc -c)"; fi
  done
  if ls /sys/firmware >/dev/null 2>&1; then echo firmware=visible; else echo firmware=hidden; fi
  if ls /proc/acpi/* >/dev/null 2>&1; then echo acpi=visible; else echo acpi=hidden; fi
  echo uid=$(id -u)
  touch /home/agent/made
  cp /usr/bin/id /home/agent/suid && chmod 4755 /home/agent/suid && echo suid_home=made
  if [ -d /work ]; then cp /usr/bin/id /work/suid && chmod 6755 /work/suid && echo suid_work=made; fi
  if bwrap --ro-bind / / --dev /dev --tmpfs /tmp true 2>/dev/null; then echo inner_bwrap=works; else echo inner_bwrap=fails; fi
  echo done
} > "$out" 2>&1
mv "$out" /home/agent/results
trap 'exit 0' TERM
sleep 100000 &
wait
"#;

    fn host(key: &str) -> String {
        std::fs::read_to_string(format!("/proc/sys/kernel/{key}")).unwrap()
    }

    /// The host uids of the processes inside `lab`'s sandbox `vmid`: in its network namespace
    /// and its pid namespace (not the outer `bwrap`, which stays in the host's pid namespace
    /// to wait for the sandbox).
    fn host_uids(lab: &Lab, vmid: u32) -> Vec<u32> {
        let own_pidns = std::fs::read_link("/proc/self/ns/pid").unwrap();
        let out = Command::new("ip")
            .args(["netns", "pids", &lab.netns(vmid)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns != own_pidns)
            })
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|s| {
                let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
                line.split_whitespace().nth(2)?.parse().ok()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sandbox_cannot_touch_host_kernel_settings_or_root_files() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("h", PROBE);
        let (printk, core) = (host("printk_ratelimit"), host("core_pattern"));
        let hv = lab.hv();
        let spec = lab.spec(901_700, 70);
        hv.create(&spec).await.unwrap();
        let ws = WorkspaceId::generate();
        let vol = hv.create_volume(&ws, 1).await.unwrap();
        hv.attach_volume(spec.vmid, &vol).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let home = lab.home(901_700);
        let text = wait_for_done(&home.join("results"));
        let r: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        assert_eq!(r.get("printk"), Some(&"refused"), "{text}");
        assert_eq!(r.get("core_pattern"), Some(&"refused"), "{text}");
        assert_eq!(r.get("sysrq"), Some(&"refused"), "{text}");
        assert_eq!(r.get("proc_sys_mount"), Some(&"ro"), "{text}");
        assert_eq!(
            host("printk_ratelimit"),
            printk,
            "host printk_ratelimit changed"
        );
        assert_eq!(host("core_pattern"), core, "host core_pattern changed");
        for f in MASKED {
            if std::path::Path::new("/proc").join(f).exists() {
                assert_eq!(
                    r.get(format!("mask_{f}").as_str()),
                    Some(&"0"),
                    "{f}: {text}"
                );
            }
        }
        assert_eq!(r.get("firmware"), Some(&"hidden"), "{text}");
        assert_eq!(r.get("acpi"), Some(&"hidden"), "{text}");
        assert_eq!(r.get("uid"), Some(&"1000"), "{text}");
        assert_eq!(r.get("inner_bwrap"), Some(&"works"), "{text}");

        // On the host the agent is an unprivileged uid of the sandbox's own range.
        let base = lab.opts.uid_base;
        let in_range = |uid: u32| uid >= base && uid < base + 65_536 * lab.opts.uid_slots;
        let uids = host_uids(&lab, 901_700);
        assert!(!uids.is_empty());
        assert!(uids.iter().all(|u| in_range(*u)), "host uids {uids:?}");
        let made = std::fs::metadata(home.join("made")).unwrap();
        assert!(
            in_range(made.uid()) && made.uid() % 65_536 == 1000,
            "{}",
            made.uid()
        );
        assert!(uids.contains(&made.uid()));

        // Setuid files the agent made: owned by its range, unreachable by host users (the
        // state directory is root-only), and stripped at stop.
        assert_eq!(r.get("suid_home"), Some(&"made"), "{text}");
        assert_eq!(r.get("suid_work"), Some(&"made"), "{text}");
        let suid = home.join("suid");
        let mode = std::fs::metadata(&suid).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o4000,
            0o4000,
            "the agent's chmod did not stick: {mode:o}"
        );
        let state = std::fs::metadata(&lab.opts.state_dir).unwrap();
        assert_eq!((state.uid(), state.mode() & 0o777), (0, 0o700));
        let nobody = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            // Through a shell: setpriv itself resolves its program before switching users.
            .args(["/bin/sh", "-c", "exec \"$0\""])
            .arg(&suid)
            .output()
            .unwrap();
        assert!(
            !nobody.status.success(),
            "a host user ran the agent's setuid file"
        );
        hv.stop(spec.vmid, Duration::from_secs(5)).await.unwrap();
        let mode = std::fs::metadata(&suid).unwrap().permissions().mode();
        assert_eq!(mode & 0o6000, 0, "setuid bit kept after stop: {mode:o}");

        // Destroy strips the volume too (it outlives the sandbox).
        hv.start(spec.vmid, None).await.unwrap();
        let work = lab
            .opts
            .state_dir
            .join("volumes")
            .join(&vol.0)
            .join("data/suid");
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o6755)).unwrap();
        hv.destroy(spec.vmid).await.unwrap();
        let mode = std::fs::metadata(&work).unwrap().permissions().mode();
        assert_eq!(mode & 0o6000, 0, "setuid bit kept in the volume: {mode:o}");
        hv.delete_volume(&vol).await.unwrap();
    }

    const IDLE: &str =
        "#!/bin/sh\ntouch /home/agent/made\ntrap 'exit 0' TERM\nsleep 100000 &\nwait\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn sandboxes_get_distinct_id_ranges() {
        if !privileged() {
            return;
        }
        let lab = Lab::new("r", IDLE);
        let hv = lab.hv();
        let mut owners = Vec::new();
        for (n, host) in [(901_801, 81), (901_802, 82)] {
            let spec = lab.spec(n, host);
            hv.create(&spec).await.unwrap();
            hv.start(spec.vmid, None).await.unwrap();
            let made = lab.home(n).join("made");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !made.exists() {
                assert!(std::time::Instant::now() < deadline, "{n} never wrote");
                std::thread::sleep(Duration::from_millis(20));
            }
            owners.push(std::fs::metadata(made).unwrap().uid());
        }
        assert_ne!(owners[0] / 65_536, owners[1] / 65_536, "{owners:?}");
        assert!(owners.iter().all(|u| *u >= lab.opts.uid_base), "{owners:?}");
        for n in [901_801, 901_802] {
            hv.destroy(agentlab_core::Vmid::new(n).unwrap())
                .await
                .unwrap();
        }
    }
}
