//! The cloud-init NoCloud seed of a sandbox (`meta-data`, `user-data`, `network-config`): the
//! engine's address, prefix and gateway for the NIC with the engine's MAC. QEMU shows the
//! directory to the guest as a read-only FAT disk labelled `cidata`. Also the kernel command
//! line for direct kernel boot.

use std::path::Path;

use agentlab_core::VmSpec;

use crate::error::QemuError;

/// `(file name, content)` of the seed files.
pub fn files(spec: &VmSpec) -> Vec<(&'static str, String)> {
    let vmid = spec.vmid;
    let n = &spec.net;
    let meta = format!("instance-id: agentlab-{vmid}\nlocal-hostname: agentlab-{vmid}\n");
    let user = user_data(&spec.ssh_public_keys);
    let gw_key = if n.gateway.is_ipv4() {
        "gateway4"
    } else {
        "gateway6"
    };
    let net = format!(
        "version: 2\nethernets:\n  agentlab:\n    match:\n      macaddress: \"{mac}\"\n    addresses: [\"{ip}/{len}\"]\n    {gw_key}: {gw}\n",
        mac = n.mac.to_ascii_lowercase(),
        ip = n.ip,
        len = n.prefix_len,
        gw = n.gateway,
    );
    vec![
        ("meta-data", meta),
        ("user-data", user),
        ("network-config", net),
    ]
}

/// `user-data`: the SSH keys for the image's `agent` user (cloud-init adds them to an
/// existing user; the image's `agentlab-ssh-if-keys.service` then starts sshd). Keys were
/// validated by the engine (`agentlab_core::ssh_key`) and are written as JSON strings.
fn user_data(keys: &[String]) -> String {
    if keys.is_empty() {
        return "#cloud-config\n{}\n".to_owned();
    }
    let mut out =
        String::from("#cloud-config\nusers:\n  - name: agent\n    ssh_authorized_keys:\n");
    for k in keys {
        let quoted = serde_json::to_string(k).unwrap_or_default();
        out.push_str(&format!("      - {quoted}\n"));
    }
    out
}

/// Writes the seed files into `dir` (created).
pub fn write(dir: &Path, spec: &VmSpec) -> Result<(), QemuError> {
    crate::layout::Layout::mkdir(dir)?;
    for (name, text) in files(spec) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(QemuError::io("write", &path))?;
    }
    Ok(())
}

/// The kernel command line for direct boot: `base` (the image's), the serial console, the
/// address for images without cloud-init (`agentlab.ip=`, `agentlab.gw=`) and, under TCG,
/// `tsc_early_khz=` (the kernel can hang calibrating the TSC otherwise).
pub fn cmdline(base: &str, spec: &VmSpec, tsc_khz: Option<u64>, extra: Option<&str>) -> String {
    let n = &spec.net;
    let mut out = base.trim().to_owned();
    let mut add = |s: &str| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
    };
    if !base.contains("console=ttyS0") {
        add("console=ttyS0");
    }
    add(&format!(
        "agentlab.ip={}/{} agentlab.gw={}",
        n.ip, n.prefix_len, n.gateway
    ));
    if let Some(khz) = tsc_khz {
        add(&format!("tsc_early_khz={khz}"));
    }
    if let Some(e) = extra.filter(|e| !e.trim().is_empty()) {
        add(e.trim());
    }
    out
}

/// The host's TSC frequency in kHz (`cpu MHz` of `/proc/cpuinfo`); TCG's guest TSC runs at it.
pub fn host_tsc_khz() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    let khz = (mhz * 1000.0).round();
    (1.0..1e9)
        .contains(&khz)
        .then(|| format!("{khz:.0}").parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentlab_core::Vmid;
    use agentlab_core::testkit::hypervisor::ConformanceEnv;

    #[test]
    fn seed_and_cmdline_carry_the_engines_address() {
        let spec = ConformanceEnv::fake().spec(Vmid::new(9100).expect("vmid"));
        let f = files(&spec);
        let net = &f[2].1;
        assert!(net.contains("macaddress: \"02:00:00:00:23:8c\""), "{net}");
        assert!(net.contains("addresses: [\"10.77.0.100/16\"]"), "{net}");
        assert!(net.contains("gateway4: 10.77.0.1"), "{net}");
        assert!(f[0].1.contains("instance-id: agentlab-9100"));
        assert_eq!(f[1].1, "#cloud-config\n{}\n", "no keys: empty user-data");
        let mut keyed = spec.clone();
        keyed.ssh_public_keys = vec!["ssh-ed25519 AAAAC3 a@h".into()];
        assert_eq!(
            files(&keyed)[1].1,
            "#cloud-config\nusers:\n  - name: agent\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAAAC3 a@h\"\n"
        );
        let c = cmdline("root=UUID=x ro", &spec, Some(2_000_000), Some("quiet"));
        assert_eq!(
            c,
            "root=UUID=x ro console=ttyS0 agentlab.ip=10.77.0.100/16 agentlab.gw=10.77.0.1 tsc_early_khz=2000000 quiet"
        );
    }
}
