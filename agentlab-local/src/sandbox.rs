//! What a local sandbox is made of: the generated `/etc`, the bootstrap file and the
//! `bwrap` command line, plus spawning it detached (its own session, not a child the daemon's
//! exit would take down) inside the sandbox's network namespace and, when cgroups are usable,
//! inside its cgroup before `bwrap` forks anything.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use agentlab_core::{BootstrapData, VmSpec, Vmid};
use zeroize::Zeroizing;

use crate::error::LocalError;
use crate::layout::Layout;
use crate::options::LocalOptions;

/// Where the runner binary appears inside the sandbox.
pub const RUNNER_PATH_INSIDE: &str = "/run/agentlab/bin/agent-runner";
/// Where the runner finds the bootstrap data inside the sandbox.
pub const BOOTSTRAP_PATH_INSIDE: &str = "/run/agentlab/bootstrap.json";

/// Where the sandbox's init script appears inside the sandbox (run as `/bin/sh <it>`).
pub const INIT_PATH_INSIDE: &str = "/run/agentlab/bin/init";

/// The sandbox's pid 1. It runs the runner the way its systemd unit does on a VM: the runner
/// is restarted after 5 s when it exits 1 ("worth retrying"). SIGTERM/SIGINT are forwarded to
/// the runner and end the sandbox once the runner is gone. After the runner is done (exit 0
/// or 2), the sandbox stays up, like a VM whose runner finished, until it is stopped.
pub(crate) const INIT_SCRIPT: &str = r#"stopping=0
pid=
trap 'stopping=1; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null' TERM INT
while :; do
  /run/agentlab/bin/agent-runner "$@" &
  pid=$!
  code=0
  while kill -0 "$pid" 2>/dev/null; do wait "$pid"; code=$?; done
  pid=
  [ "$stopping" = 1 ] && exit 0
  [ "$code" = 1 ] || break
  sleep 5 & wait $!
  [ "$stopping" = 1 ] && exit 0
done
while [ "$stopping" = 0 ]; do sleep 3600 & wait $!; done
exit 0
"#;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The bootstrap data as the runner reads it. It never touches the host's disk: [`spawn`]
/// pipes it to bwrap, which writes it into the sandbox's own `/run` tmpfs (`--file 0`), where
/// the runner deletes it after reading.
pub(crate) fn bootstrap_json(data: &BootstrapData) -> Result<Zeroizing<Vec<u8>>, LocalError> {
    serde_json::to_vec(data)
        .map(Zeroizing::new)
        .map_err(|e| LocalError::Corrupt {
            path: PathBuf::from(BOOTSTRAP_PATH_INSIDE),
            message: e.to_string(),
        })
}

/// Writes the sandbox's `/etc` files into `dir`.
pub(crate) fn write_etc(dir: &Path, spec: &VmSpec, opts: &LocalOptions) -> Result<(), LocalError> {
    Layout::mkdir(dir)?;
    let host = hostname(spec.vmid);
    let resolv: String = opts
        .nameservers
        .iter()
        .map(|ns| format!("nameserver {ns}\n"))
        .collect();
    let files = [
        (
            "passwd",
            "root:x:0:0:root:/root:/usr/sbin/nologin\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n".to_owned(),
        ),
        ("group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n".to_owned()),
        (
            "hosts",
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{host}\n", spec.net.ip),
        ),
        ("hostname", format!("{host}\n")),
        ("resolv.conf", resolv),
        (
            "nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files dns\n".to_owned(),
        ),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(LocalError::io("write", &path))?;
        // World-readable whatever the daemon's umask: the sandbox's agent reads them.
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(LocalError::io("chmod", &path))?;
    }
    Ok(())
}

fn hostname(vmid: Vmid) -> String {
    format!("sandbox-{vmid}")
}

/// bwrap resolves bind sources with the sandbox's uid (after joining its user namespace), so
/// it could not walk the root-only state directory. The sandbox is therefore launched in a
/// private mount namespace of its own where a tmpfs on this (empty) host directory holds
/// binds of the sandbox's directory (`vm`), volume (`volume`), runner (`runner`) and rootfs
/// (`rootfs`); bwrap binds from there. Nothing is mounted in the host's mount namespace.
pub(crate) const STAGE_DIR: &str = "/run/agentlab-local";

/// Inputs of [`bwrap_args`]: bind sources as bwrap sees them.
#[derive(Debug)]
pub(crate) struct Mounts<'a> {
    pub etc: &'a Path,
    /// The init script on the host (bound at [`INIT_PATH_INSIDE`]).
    pub init: &'a Path,
    pub home: &'a Path,
    /// Whether bootstrap data arrives on bwrap's stdin (see [`bootstrap_json`]).
    pub bootstrap: bool,
    pub volume: Option<&'a Path>,
    /// The runner binary (bound at [`RUNNER_PATH_INSIDE`]).
    pub runner: &'a Path,
    /// The read-only root, if not the host's `/usr`.
    pub rootfs: Option<&'a Path>,
    /// Whether a seccomp program is passed on fd 9 (see [`spawn`]).
    pub seccomp: bool,
}

impl Mounts<'static> {
    /// The sources under [`STAGE_DIR`], where [`spawn`] binds them.
    pub fn staged(bootstrap: bool, volume: bool, rootfs: bool, seccomp: bool) -> Self {
        Self {
            etc: Path::new("/run/agentlab-local/vm/etc"),
            init: Path::new("/run/agentlab-local/vm/init.sh"),
            home: Path::new("/run/agentlab-local/vm/home"),
            bootstrap,
            volume: volume.then_some(Path::new("/run/agentlab-local/volume")),
            runner: Path::new("/run/agentlab-local/runner"),
            rootfs: rootfs.then_some(Path::new("/run/agentlab-local/rootfs")),
            seccomp,
        }
    }
}

/// The `bwrap` arguments (without the program) for `vmid`.
pub(crate) fn bwrap_args(vmid: Vmid, m: &Mounts<'_>, opts: &LocalOptions) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| (*s).to_owned()));
    let host = hostname(vmid);
    if m.seccomp {
        push(&["--seccomp", "9"]);
    }
    // The user namespace on fd 8 maps ids 0..65536 to the sandbox's own host range (see
    // `idmap`); the network namespace is entered before bwrap runs.
    push(&[
        "--userns",
        "8",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
    ]);
    push(&["--unshare-cgroup-try", "--cap-drop", "ALL"]);
    // uid/gid 1000 inside (an unprivileged id of the sandbox's range outside): not uid 0, so
    // the sandbox may create nested user namespaces (the runner's inner bubblewrap) without
    // CAP_SETFCAP.
    push(&["--uid", "1000", "--gid", "1000"]);
    push(&["--new-session", "--as-pid-1", "--hostname", &host]);
    push(&["--clearenv", "--setenv", "PATH", PATH]);
    push(&[
        "--setenv",
        "HOME",
        "/home/agent",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]);
    match m.rootfs {
        Some(root) => push(&["--ro-bind", &root.to_string_lossy(), "/"]),
        None => {
            push(&["--ro-bind", "/usr", "/usr"]);
            for dir in ["bin", "lib", "lib32", "lib64", "libx32", "sbin"] {
                // Merged-/usr hosts: /bin -> usr/bin and so on.
                if let Ok(target) = fs::read_link(Path::new("/").join(dir)) {
                    push(&["--symlink", &target.to_string_lossy(), &format!("/{dir}")]);
                }
            }
        }
    }
    push(&["--proc", "/proc"]);
    a.extend(proc_protection(Path::new("/proc")));
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| (*s).to_owned()));
    push(&["--dev", "/dev", "--tmpfs", "/tmp"]);
    for name in [
        "passwd",
        "group",
        "hosts",
        "hostname",
        "resolv.conf",
        "nsswitch.conf",
    ] {
        let src = m.etc.join(name);
        push(&["--ro-bind", &src.to_string_lossy(), &format!("/etc/{name}")]);
    }
    if m.rootfs.is_none() {
        for shared in ["/etc/ssl", "/etc/ca-certificates", "/etc/alternatives"] {
            push(&["--ro-bind-try", shared, shared]);
        }
    }
    push(&["--bind", &m.home.to_string_lossy(), "/home/agent"]);
    push(&[
        "--tmpfs",
        "/run",
        "--perms",
        "0700",
        "--tmpfs",
        "/run/agentlab/secrets",
    ]);
    if m.bootstrap {
        // Copied from stdin into the sandbox's /run tmpfs; the runner may delete it.
        push(&["--perms", "0600", "--file", "0", BOOTSTRAP_PATH_INSIDE]);
    }
    push(&["--ro-bind", &m.runner.to_string_lossy(), RUNNER_PATH_INSIDE]);
    push(&["--ro-bind", &m.init.to_string_lossy(), INIT_PATH_INSIDE]);
    if let Some(v) = m.volume {
        push(&["--bind", &v.to_string_lossy(), "/work"]);
    }
    push(&[
        "--remount-ro",
        "/",
        "--chdir",
        "/home/agent",
        "--",
        "/bin/sh",
        INIT_PATH_INSIDE,
    ]);
    a.extend(opts.runner_args.iter().cloned());
    a
}

/// `/proc` files hidden behind `/dev/null` (unreadable: device nodes do not work on mounts
/// of a user namespace), as container runtimes do.
const MASKED_FILES: [&str; 18] = [
    "kcore",
    "kpageflags",
    "kpagecount",
    "kpagecgroup",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "slabinfo",
    "vmallocinfo",
    "latency_stats",
    "kmsg",
    "kallsyms",
    "interrupts",
    "iomem",
    "ioports",
    "pagetypeinfo",
];
/// `/proc` directories hidden behind an empty read-only tmpfs.
const MASKED_DIRS: [&str; 2] = ["acpi", "scsi"];
/// `/proc` entries bound read-only (global kernel settings).
const READ_ONLY: [&str; 6] = ["sys", "sysrq-trigger", "irq", "bus", "fs", "asound"];

/// bwrap arguments (after `--proc /proc`) making the kernel's global settings under `/proc`
/// read-only and masking what leaks host information; only entries that exist under
/// `host_proc` are named (bwrap cannot create files in procfs).
pub(crate) fn proc_protection(host_proc: &Path) -> Vec<String> {
    let mut a = Vec::new();
    let exists = |name: &str| host_proc.join(name).exists();
    for name in READ_ONLY.into_iter().filter(|n| exists(n)) {
        let p = format!("/proc/{name}");
        a.extend(["--ro-bind".to_owned(), p.clone(), p]);
    }
    for name in MASKED_FILES.into_iter().filter(|n| exists(n)) {
        a.extend(["--ro-bind", "/dev/null"].map(str::to_owned));
        a.push(format!("/proc/{name}"));
    }
    for name in MASKED_DIRS.into_iter().filter(|n| exists(n)) {
        let p = format!("/proc/{name}");
        a.extend([
            "--tmpfs".to_owned(),
            p.clone(),
            "--remount-ro".to_owned(),
            p,
        ]);
    }
    a
}

/// The wrapper run before `bwrap`: joins the `$1` cgroups that follow (`cgroup.procs` files)
/// so everything bwrap forks is inside, opens the seccomp program (if set) on fd 9 and the
/// sandbox's user namespace on fd 8, then execs the rest.
const WRAPPER: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done
if [ -n "$1" ]; then exec 9< "$1" || exit 97; fi
exec 8< "$2" || exit 97
shift 2
exec "$@""#;

/// Run in the sandbox's private mount namespace: a tmpfs on the stage directory `$1`, binds
/// of the sandbox's directory (`$2`), volume (`$3`, if set), runner (`$4`) and rootfs (`$5`,
/// if set) in it, then exec the rest (bwrap).
const STAGE: &str = r#"s=$1
mount -t tmpfs -o mode=0711,size=64k agentlab-stage "$s" || exit 97
mkdir "$s/vm" && mount --bind "$2" "$s/vm" || exit 97
if [ -n "$3" ]; then mkdir "$s/volume" && mount --bind "$3" "$s/volume" || exit 97; fi
: > "$s/runner" && mount --bind "$4" "$s/runner" || exit 97
if [ -n "$5" ]; then mkdir "$s/rootfs" && mount --bind "$5" "$s/rootfs" || exit 97; fi
chmod 0711 "$s" || exit 97
shift 5
exec "$@""#;

/// What [`spawn`] puts the sandbox into.
#[derive(Debug)]
pub(crate) struct Enter<'a> {
    /// `/run/netns/<name>`.
    pub netns: &'a Path,
    /// `cgroup.procs` files to join (empty without limits).
    pub cgroup_procs: &'a [PathBuf],
    /// The seccomp program, passed on fd 9.
    pub seccomp: Option<&'a Path>,
    /// The user namespace file, passed on fd 8.
    pub userns: &'a Path,
    /// The sandbox's directory, staged at `<STAGE_DIR>/vm`.
    pub vm_dir: &'a Path,
    /// The volume's `data` directory, staged at `<STAGE_DIR>/volume`.
    pub volume: Option<&'a Path>,
    /// Bootstrap data, piped to bwrap's stdin (`--file 0`, see [`bootstrap_json`]).
    pub bootstrap: Option<&'a [u8]>,
}

/// Spawns `sh -c WRAPPER sh <n> <cgroup.procs>… <seccomp> <userns> setsid nsenter
/// --net=<netns> -- unshare --mount --propagation private -- sh -c STAGE sh <stage> <vm dir>
/// <volume> <runner> <rootfs> bwrap <args>` with output appended to `log`. `setsid` execs in place (the
/// shell is not a group leader), so the child's pid stays the pid of `bwrap`.
pub(crate) fn spawn(
    enter: &Enter<'_>,
    args: &[String],
    log: &Path,
    opts: &LocalOptions,
) -> Result<Child, LocalError> {
    let out = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(log)
        .map_err(LocalError::io("open", log))?;
    let err = out.try_clone().map_err(LocalError::io("open", log))?;
    let lossy = |p: Option<&Path>| p.map(|p| p.to_string_lossy().into_owned());
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", WRAPPER, "sh"])
        .arg(enter.cgroup_procs.len().to_string())
        .args(enter.cgroup_procs)
        .arg(lossy(enter.seccomp).unwrap_or_default())
        .arg(enter.userns)
        .args(["setsid", "nsenter"])
        .arg(format!("--net={}", enter.netns.display()))
        .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
        .args(["/bin/sh", "-c", STAGE, "sh", STAGE_DIR])
        .arg(enter.vm_dir)
        .arg(lossy(enter.volume).unwrap_or_default())
        .arg(&opts.runner_path)
        .arg(lossy(opts.rootfs.as_deref()).unwrap_or_default())
        .arg(&opts.bwrap_path)
        .args(args)
        .stdin(if enter.bootstrap.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out)
        .stderr(err);
    let mut child = cmd.spawn().map_err(|source| LocalError::Spawn {
        program: "/bin/sh".to_owned(),
        source,
    })?;
    if let (Some(data), Some(mut pipe)) = (enter.bootstrap, child.stdin.take()) {
        // A few hundred bytes: the pipe buffer takes them before bwrap reads. Dropping the
        // pipe closes it, so bwrap sees the end of the data.
        if let Err(source) = pipe.write_all(data) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LocalError::Spawn {
                program: "bwrap (bootstrap data on stdin)".to_owned(),
                source,
            });
        }
    }
    Ok(child)
}

/// The last ~20 lines of the log (bwrap's own errors end up there).
pub(crate) fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_binds_only_what_the_sandbox_needs() {
        let opts = LocalOptions::new("/state", "/opt/runner");
        let vmid = Vmid::new(1234).unwrap();
        let m = Mounts::staged(true, false, false, true);
        let args = bwrap_args(vmid, &m, &opts).join(" ");
        assert!(args.contains("--ro-bind /usr /usr"));
        assert!(args.contains("--cap-drop ALL"));
        assert!(args.contains("--userns 8 "));
        assert!(!args.contains("--unshare-all") && !args.contains("--unshare-user"));
        assert!(args.starts_with("--seccomp 9 "));
        assert!(args.contains("--perms 0700 --tmpfs /run/agentlab/secrets"));
        assert!(args.contains("--perms 0600 --file 0 /run/agentlab/bootstrap.json"));
        assert!(
            !args.contains("vm/bootstrap.json"),
            "no bootstrap file on the host"
        );
        assert!(args.contains("--bind /run/agentlab-local/vm/home /home/agent"));
        assert!(args.contains("--ro-bind /run/agentlab-local/vm/etc/passwd /etc/passwd"));
        assert!(!args.contains("/work"));
        assert!(!args.contains("--die-with-parent"));
        assert!(args.contains(&format!(
            "--ro-bind /run/agentlab-local/runner {RUNNER_PATH_INSIDE}"
        )));
        assert!(args.ends_with(&format!("-- /bin/sh {INIT_PATH_INSIDE} --secrets-dir /run/agentlab/secrets --work-dir /home/agent/.agentlab --agent-home /home/agent")));
    }
}

#[cfg(test)]
mod proc_tests {
    use super::*;

    #[test]
    fn proc_protection_names_only_existing_entries() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["sys", "slabinfo", "acpi"] {
            fs::create_dir(dir.path().join(f)).unwrap();
        }
        let args = proc_protection(dir.path()).join(" ");
        assert_eq!(
            args,
            "--ro-bind /proc/sys /proc/sys --ro-bind /dev/null /proc/slabinfo \
             --tmpfs /proc/acpi --remount-ro /proc/acpi"
        );
    }
}
