//! A small seccomp deny-list, handed to bwrap as a classic BPF program (`--seccomp <fd>`).
//!
//! The sandbox already runs without capabilities and with `no_new_privs`; the filter removes
//! kernel surface that namespaces don't cover or that has a history of exploits: the kernel
//! keyring (not namespaced), `bpf`, `perf_event_open`, `userfaultfd`, io_uring, module and
//! kexec loading, `open_by_handle_at`, `syslog`, swap/accounting/reboot/clock setting and port
//! I/O. Denied calls fail with `EPERM`; every other call is allowed (user namespaces stay
//! available for the runner's inner bubblewrap). Calls from another ABI (32-bit, x32) fail with
//! `EPERM`. Only x86_64 has a filter; other architectures run without one.

/// `SECCOMP_RET_ALLOW`.
const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_ERRNO | EPERM`.
const RET_EPERM: u32 = 0x0005_0000 | 1;
/// `BPF_LD | BPF_W | BPF_ABS`.
const LD_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const JEQ: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const JGE: u16 = 0x35;
/// `BPF_RET | BPF_K`.
const RET: u16 = 0x06;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// `AUDIT_ARCH_X86_64`.
const ARCH_X86_64: u32 = 0xc000_003e;
/// The x32 ABI marks its syscall numbers with this bit.
const X32_BIT: u32 = 0x4000_0000;

/// Denied x86_64 syscalls (number, name).
const DENY_X86_64: [(u32, &str); 28] = [
    (103, "syslog"),
    (159, "adjtimex"),
    (163, "acct"),
    (164, "settimeofday"),
    (167, "swapon"),
    (168, "swapoff"),
    (169, "reboot"),
    (172, "iopl"),
    (173, "ioperm"),
    (175, "init_module"),
    (176, "delete_module"),
    (179, "quotactl"),
    (212, "lookup_dcookie"),
    (227, "clock_settime"),
    (246, "kexec_load"),
    (248, "add_key"),
    (249, "request_key"),
    (250, "keyctl"),
    (298, "perf_event_open"),
    (304, "open_by_handle_at"),
    (305, "clock_adjtime"),
    (313, "finit_module"),
    (320, "kexec_file_load"),
    (321, "bpf"),
    (323, "userfaultfd"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
];

fn insn(code: u16, jt: u8, jf: u8, k: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.to_ne_bytes());
    out.push(jt);
    out.push(jf);
    out.extend_from_slice(&k.to_ne_bytes());
}

/// The filter for x86_64 (`struct sock_filter` array, native endian).
fn build(arch: u32, deny: &[u32]) -> Vec<u8> {
    let mut p = Vec::new();
    // Instruction indexes: 0 ld arch, 1 jeq arch, 2 ret eperm, 3 ld nr, 4 jge x32,
    // 5.. jeq per call, then ret allow, ret eperm.
    let n = deny.len();
    let eperm = 5 + n + 1;
    insn(LD_ABS, 0, 0, OFF_ARCH, &mut p);
    insn(JEQ, 1, 0, arch, &mut p);
    insn(RET, 0, 0, RET_EPERM, &mut p);
    insn(LD_ABS, 0, 0, OFF_NR, &mut p);
    insn(JGE, jump(eperm, 4), 0, X32_BIT, &mut p);
    for (i, nr) in deny.iter().enumerate() {
        insn(JEQ, jump(eperm, 5 + i), 0, *nr, &mut p);
    }
    insn(RET, 0, 0, RET_ALLOW, &mut p);
    insn(RET, 0, 0, RET_EPERM, &mut p);
    p
}

/// The relative jump from instruction `from` to `to` (programs here are short).
fn jump(to: usize, from: usize) -> u8 {
    u8::try_from(to - from - 1).unwrap_or(u8::MAX)
}

/// The program for this architecture, or `None` where there is none.
pub(crate) fn program() -> Option<Vec<u8>> {
    if cfg!(target_arch = "x86_64") {
        let deny: Vec<u32> = DENY_X86_64.iter().map(|(nr, _)| *nr).collect();
        Some(build(ARCH_X86_64, &deny))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denied_call_jumps_to_the_eperm_return() {
        let prog = build(ARCH_X86_64, &[1, 2, 3]);
        let insns: Vec<&[u8]> = prog.chunks(8).collect();
        assert_eq!(insns.len(), 5 + 3 + 2);
        let last = insns.len() - 1;
        for (i, ins) in insns.iter().enumerate().skip(4).take(4) {
            let jt = usize::from(ins[2]);
            assert_eq!(i + jt + 1, last, "instruction {i}");
        }
        let k = |i: usize| u32::from_ne_bytes(insns[i][4..8].try_into().unwrap());
        assert_eq!(k(last), RET_EPERM);
        assert_eq!(k(last - 1), RET_ALLOW);
        assert_eq!(k(1), ARCH_X86_64);
    }
}
