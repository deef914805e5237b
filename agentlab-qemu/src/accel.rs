//! Choosing the accelerator: `kvm` only when the CPU has vmx/svm and `/dev/kvm` opens read-write
//! (for `auto`; `kvm` demands it), `tcg` otherwise. A KVM that passes these checks can still be
//! broken (a software KVM on which guests hang, QEMU pausing after an internal KVM error): every
//! boot therefore runs under the backend's boot deadline, and a VM that QMP reports as
//! `internal-error` is killed at once.

use std::path::Path;

use agentlab_core::config::QemuAccel;

use crate::error::QemuError;

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    /// QEMU's `-accel` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// Why KVM is not usable here, or `None` when it is. `cpuinfo` is `/proc/cpuinfo`'s text.
pub fn kvm_unusable(cpuinfo: &str, dev_kvm: &Path) -> Option<String> {
    let has_flag = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if !has_flag {
        return Some("the CPU shows no vmx/svm flag".to_owned());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev_kvm)
    {
        Ok(_) => None,
        Err(e) => Some(format!("{} does not open: {e}", dev_kvm.display())),
    }
}

/// Resolves `wanted` on this host. `auto` falls back to TCG with a warning; `kvm` fails when
/// KVM is unusable.
pub fn choose(wanted: QemuAccel) -> Result<Accel, QemuError> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let why = kvm_unusable(&cpuinfo, Path::new("/dev/kvm"));
    match (wanted, why) {
        (QemuAccel::Tcg, _) => Ok(Accel::Tcg),
        (QemuAccel::Kvm | QemuAccel::Auto, None) => Ok(Accel::Kvm),
        (QemuAccel::Kvm, Some(why)) => Err(QemuError::Missing(format!(
            "qemu.accel is kvm but KVM is unusable: {why}"
        ))),
        (QemuAccel::Auto, Some(why)) => {
            tracing::warn!(reason = %why, "KVM unusable; QEMU sandboxes use TCG (slow)");
            Ok(Accel::Tcg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_needs_the_cpu_flag_and_the_device() {
        let none = "processor: 0\nflags\t\t: fpu sse2 hypervisor\n";
        assert!(kvm_unusable(none, Path::new("/dev/null")).is_some_and(|w| w.contains("vmx")));
        let vmx = "flags\t\t: fpu vmx sse2\n";
        assert!(
            kvm_unusable(vmx, Path::new("/nonexistent/kvm"))
                .is_some_and(|w| w.contains("/nonexistent/kvm"))
        );
        assert_eq!(kvm_unusable(vmx, Path::new("/dev/null")), None);
    }

    #[test]
    fn tcg_is_always_possible() {
        assert_eq!(choose(QemuAccel::Tcg).expect("tcg"), Accel::Tcg);
    }
}
