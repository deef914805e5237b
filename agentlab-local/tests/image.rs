//! `agentlab local image build` for real: mmdebstrap builds a Debian root filesystem, it is
//! prepared for AgentLab, and a sandbox runs on it (the image's own python3 and marker file
//! visible, the host's /usr not). Needs root, bwrap, ip and mmdebstrap (or debootstrap) with
//! the host's apt sources reachable; skips (panics under `CI`) otherwise.

#[cfg(test)]
mod support;

#[cfg(test)]
mod tests {
    use agentlab_core::Hypervisor;
    use agentlab_local::image::{self, ImageSpec};

    use super::support::{Lab, privileged, wait_for_done};

    const PROBE: &str = r#"#!/bin/sh
out=/home/agent/results
{
  echo "marker=$(cat /etc/agentlab-image 2>/dev/null | head -1)"
  echo "python=$(python3 -c 'print(1+1)' 2>/dev/null)"
  echo "git=$(git --version 2>/dev/null | cut -d' ' -f1)"
  echo "whoami=$(id -un)"
  echo done
} > "$out.tmp" && mv "$out.tmp" "$out"
sleep 100000 &
wait
"#;

    fn builder_available() -> bool {
        let found = ["mmdebstrap", "debootstrap"].iter().any(|p| {
            std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        });
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "mmdebstrap/debootstrap missing (required in CI)"
            );
            eprintln!("SKIP: neither mmdebstrap nor debootstrap is installed");
        }
        found
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sandbox_runs_on_a_built_image() {
        if !privileged() || !builder_available() {
            return;
        }
        let mut lab = Lab::new("img", PROBE);
        let out = lab.dir.path().join("rootfs");
        let spec = ImageSpec {
            out: out.clone(),
            suite: image::host_suite(),
            extra_packages: vec![],
            force: false,
        };
        let built = tokio::task::spawn_blocking(move || image::build(&spec))
            .await
            .unwrap()
            .unwrap();
        assert!(built.join("etc/agentlab-image").is_file());
        assert!(built.join("home/agent").is_dir() && built.join("work").is_dir());
        lab.opts.rootfs = Some(built);
        let hv = lab.hv();
        let spec = lab.spec(900_900, 90);
        hv.create(&spec).await.unwrap();
        hv.configure(&spec).await.unwrap();
        hv.start(spec.vmid, None).await.unwrap();
        let text = wait_for_done(&lab.home(900_900).join("results"));
        assert!(text.contains("marker=built-by: agentlab"), "{text}");
        assert!(text.contains("python=2"), "{text}");
        assert!(text.contains("git=git"), "{text}");
        assert!(text.contains("whoami=agent"), "{text}");
        hv.destroy(spec.vmid).await.unwrap();
    }
}
