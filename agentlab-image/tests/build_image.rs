//! A real image build (root, mmdebstrap, the Debian mirror, minutes): built once into the
//! shared test-image cache, then checked.
#![cfg(test)] // integration-test crate; keeps clippy::tests_outside_test_module satisfied

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use agentlab_image::manifest::file_sha256;
use agentlab_image::testing::shared_test_image;
use agentlab_image::tools::REQUIRED_TOOLS;
use agentlab_image::{Manifest, rootfs};

/// Opt-in: a real build takes 10–20 minutes on a 2-core machine (mmdebstrap dominates).
const OPT_IN: &str = "AGENTLAB_IMAGE_BUILD_TEST";

fn image() -> Option<std::path::PathBuf> {
    if std::env::var_os(OPT_IN).is_none() {
        eprintln!(
            "SKIP: set {OPT_IN}=1 to build a real image (10-20 min; root, the Debian mirror, \
             loop devices)"
        );
        return None;
    }
    if !support::require(REQUIRED_TOOLS) {
        return None;
    }
    if !support::npm_registry_reachable() {
        support::skip_or_fail("the npm registry is unreachable");
        return None;
    }
    let runner = support::runner_binary();
    Some(shared_test_image(&runner).unwrap())
}

fn chroot_as_agent(root: &Path, script: &str) -> String {
    let out = Command::new("chroot")
        .arg("--userspec=1000:1000")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env("HOME", "/home/agent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn built_image_has_manifest_user_units_disk_and_works_as_a_rootfs() {
    let Some(dir) = image() else { return };
    let runner = support::runner_binary();
    let m = Manifest::load(&dir).unwrap();
    let root = dir.join("rootfs");

    // Manifest: spec hash, packages with versions, runner, npm, every output's sha256.
    assert!(m.spec_hash.starts_with("sha256:"));
    assert_eq!(m.spec.npm_packages, ["is-number@7.0.0"]);
    let has = |p: &str| {
        m.packages
            .iter()
            .any(|v| v.name == p && !v.version.is_empty())
    };
    for p in [
        "systemd",
        "linux-image-cloud-amd64",
        "qemu-guest-agent",
        "cloud-init",
        "git",
        "bubblewrap",
        "openssh-server",
        "nodejs",
    ] {
        assert!(has(p), "package {p} missing from the manifest");
    }
    assert_eq!(
        m.runner.sha256,
        file_sha256(&root.join(rootfs::RUNNER_PATH)).unwrap()
    );
    assert_eq!(m.runner.sha256, file_sha256(&runner).unwrap());
    assert!(
        m.runner.version.starts_with("agent-runner"),
        "{}",
        m.runner.version
    );
    assert_eq!(m.npm.len(), 1);
    assert_eq!(
        (m.npm[0].name.as_str(), m.npm[0].version.as_str()),
        ("is-number", "7.0.0")
    );
    for out in ["disk.qcow2", "vmlinuz", "initrd.img"] {
        assert_eq!(
            m.outputs[out],
            file_sha256(&dir.join(out)).unwrap(),
            "{out}"
        );
    }
    assert_eq!(
        m.outputs["rootfs/"],
        agentlab_image::manifest::tree_sha256(&root).unwrap()
    );
    assert!(m.cmdline.contains("root=UUID=") && m.cmdline.contains("console=ttyS0"));

    // The agent user and its home.
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("agent:x:1000:1000:") && l.contains(":/home/agent:")),
        "{passwd}"
    );
    assert!(
        fs::read_to_string(root.join("etc/group"))
            .unwrap()
            .lines()
            .any(|l| l.starts_with("agent:x:1000:"))
    );
    assert_eq!(fs::metadata(root.join("home/agent")).unwrap().uid(), 1000);

    // Units installed and enabled; ssh off; no baked-in host keys or machine id.
    for (rel, content) in rootfs::SHIPPED_FILES {
        assert_eq!(
            &fs::read_to_string(root.join(rel)).unwrap(),
            content,
            "{rel}"
        );
    }
    // Enable links are absolute: they resolve inside the image, not on the host.
    let wants = |target: &str, unit: &str| {
        let link = root
            .join("etc/systemd/system")
            .join(format!("{target}.wants"))
            .join(unit);
        fs::read_link(&link).is_ok_and(|t| {
            [
                "/etc/systemd/system",
                "/lib/systemd/system",
                "/usr/lib/systemd/system",
            ]
            .iter()
            .any(|d| t == Path::new(d).join(unit))
        })
    };
    assert!(wants("multi-user.target", "agent-runner.service"));
    assert!(wants("local-fs.target", "run-agentlab-secrets.mount"));
    assert!(wants("multi-user.target", "agentlab-ssh-if-keys.service"));
    assert!(
        !wants("multi-user.target", "ssh.service"),
        "sshd must be off by default"
    );
    assert!(!root.join("etc/ssh/ssh_host_ed25519_key").exists());
    assert_eq!(fs::read(root.join("etc/machine-id")).unwrap(), b"");
    let cloud = fs::read_to_string(root.join("etc/cloud/cloud.cfg.d/99-agentlab.cfg")).unwrap();
    assert!(cloud.contains("NoCloud") && cloud.contains("ConfigDrive"));

    // The disk: qcow2 of the spec's size with an MBR, a bootable partition and extlinux.
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(dir.join("disk.qcow2"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 2u64 << 30);
    let raw = tempfile::tempdir().unwrap();
    let raw_path = raw.path().join("d.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(dir.join("disk.qcow2"))
        .arg(&raw_path)
        .status()
        .unwrap();
    assert!(st.success());
    let mbr = fs::read(&raw_path).unwrap();
    assert_eq!(&mbr[510..512], &[0x55, 0xaa], "MBR signature");
    assert_eq!(mbr[446], 0x80, "first partition is bootable");
    assert_eq!(mbr[446 + 4], 0x83, "Linux partition type");
    assert!(mbr[..440].iter().any(|b| *b != 0), "MBR boot code");
    assert!(root.join("boot/extlinux/extlinux.conf").is_file());

    // As `local.rootfs`: tools run as the agent (uid 1000) inside it.
    let out = chroot_as_agent(
        &root,
        "id -u; id -g; git --version; node -e 'console.log(require(\"/usr/local/lib/node_modules/is-number\")(5))'",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"], "{out}");
    assert!(lines[2].starts_with("git version"), "{out}");
    assert_eq!(lines[3], "true", "{out}");
    let v = Command::new("chroot")
        .arg(&root)
        .args(["/usr/local/bin/agent-runner", "--version"])
        .output()
        .unwrap();
    assert!(v.status.success());
}

#[test]
fn missing_prerequisites_are_named() {
    // Not root and missing tools are clear errors before anything is written.
    let err = agentlab_image::tools::check(&[("agentlab-no-such-tool", "no-such-package")]);
    if agentlab_image::tools::is_root() {
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("agentlab-no-such-tool") && msg.contains("no-such-package"),
            "{msg}"
        );
    } else {
        assert!(err.unwrap_err().to_string().contains("root"));
    }
}

/// Two builds of the same spec from the same package versions (one CI run, one mirror state)
/// list the same packages with the same versions in their manifests: a second, rootfs-only
/// build of the shared test image's spec (the same `SOURCE_DATE_EPOCH`).
#[test]
fn a_second_build_of_the_same_spec_lists_the_same_packages() {
    let Some(dir) = image() else { return };
    let first = Manifest::load(&dir).unwrap();
    let out = tempfile::tempdir().unwrap();
    let opts = agentlab_image::BuildOptions {
        spec: agentlab_image::ImageSpec::from_yaml(
            agentlab_image::testing::TEST_SPEC,
            "<test spec>",
        )
        .unwrap(),
        out: out.path().join("again"),
        runner: support::runner_binary(),
        npm: agentlab_image::npm::NpmOptions {
            cache: agentlab_image::testing::cache_root().join("npm-cache"),
            ..agentlab_image::npm::NpmOptions::default()
        },
        force: true,
        rootfs_only: true,
        source_date_epoch: Some(first.source_date_epoch),
    };
    agentlab_image::build(&opts, &mut |p| eprintln!("{p}")).unwrap();
    let second = Manifest::load(&out.path().join("again")).unwrap();
    assert_eq!(second.spec_hash, first.spec_hash);
    let names = |m: &Manifest| {
        m.packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
    };
    assert!(!first.packages.is_empty());
    assert_eq!(names(&first), names(&second), "package lists differ");
}
