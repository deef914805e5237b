//! What a local sandbox is made of: the generated `/etc`, the bootstrap file and the
//! `bwrap` command line, plus spawning it detached (its own session, not a child the daemon's
//! exit would take down) inside the sandbox's network namespace and, when cgroups are usable,
//! inside its cgroup before `bwrap` forks anything.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use agentlab_core::{BootstrapData, VmSpec, Vmid};
use zeroize::Zeroizing;

use crate::error::LocalError;
use crate::layout::{Layout, write_atomic};
use crate::options::LocalOptions;

/// Where the runner binary appears inside the sandbox.
pub const RUNNER_PATH_INSIDE: &str = "/run/agentlab/bin/agent-runner";

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

/// Writes the bootstrap data (0600, atomically) where `start` binds it from.
pub(crate) fn write_bootstrap(path: &Path, data: &BootstrapData) -> Result<(), LocalError> {
    let json = Zeroizing::new(serde_json::to_vec(data).map_err(|e| LocalError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?);
    write_atomic(path, &json)
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
    }
    Ok(())
}

fn hostname(vmid: Vmid) -> String {
    format!("sandbox-{vmid}")
}

/// Inputs of [`bwrap_args`].
#[derive(Debug)]
pub(crate) struct Mounts<'a> {
    pub etc: &'a Path,
    /// The init script on the host (bound at [`INIT_PATH_INSIDE`]).
    pub init: &'a Path,
    pub home: &'a Path,
    pub bootstrap: Option<&'a Path>,
    pub volume: Option<&'a Path>,
    /// Whether a seccomp program is passed on fd 9 (see [`spawn`]).
    pub seccomp: bool,
}

/// The `bwrap` arguments (without the program) for `vmid`.
pub(crate) fn bwrap_args(vmid: Vmid, m: &Mounts<'_>, opts: &LocalOptions) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| (*s).to_owned()));
    let host = hostname(vmid);
    if m.seccomp {
        push(&["--seccomp", "9"]);
    }
    push(&["--unshare-all", "--share-net", "--cap-drop", "ALL"]);
    // uid/gid 1000 inside (mapped to the daemon's uid outside): not uid 0, so the sandbox
    // may create nested user namespaces (the runner's inner bubblewrap) without CAP_SETFCAP.
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
    match &opts.rootfs {
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
    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
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
    if opts.rootfs.is_none() {
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
    if let Some(b) = m.bootstrap {
        push(&[
            "--ro-bind",
            &b.to_string_lossy(),
            "/run/agentlab/bootstrap.json",
        ]);
    }
    push(&[
        "--ro-bind",
        &opts.runner_path.to_string_lossy(),
        RUNNER_PATH_INSIDE,
    ]);
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

/// The wrapper run before `bwrap`: joins the cgroup (`$1`, if set) so everything bwrap forks
/// is inside, opens the seccomp program (`$2`, if set) on fd 9, then execs the rest.
const WRAPPER: &str = r#"if [ -n "$1" ]; then echo $$ > "$1" || exit 97; fi
if [ -n "$2" ]; then exec 9< "$2" || exit 97; fi
shift 2
exec "$@""#;

/// Spawns `sh -c WRAPPER sh <cgroup.procs> <seccomp> setsid nsenter --net=<netns> -- bwrap
/// <args>` with output appended to `log`. `setsid` execs in place (the shell is not a group
/// leader), so the child's pid stays the pid of `bwrap`.
pub(crate) fn spawn(
    netns_path: &Path,
    args: &[String],
    cgroup_procs: Option<&PathBuf>,
    seccomp: Option<&Path>,
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
        .arg(lossy(cgroup_procs.map(PathBuf::as_path)).unwrap_or_default())
        .arg(lossy(seccomp).unwrap_or_default())
        .args(["setsid", "nsenter"])
        .arg(format!("--net={}", netns_path.display()))
        .arg("--")
        .arg(&opts.bwrap_path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    cmd.spawn().map_err(|source| LocalError::Spawn {
        program: "/bin/sh".to_owned(),
        source,
    })
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
        let m = Mounts {
            etc: Path::new("/state/1234/etc"),
            init: Path::new("/state/1234/init.sh"),
            home: Path::new("/state/1234/home"),
            bootstrap: Some(Path::new("/state/1234/bootstrap.json")),
            volume: None,
            seccomp: true,
        };
        let args = bwrap_args(vmid, &m, &opts).join(" ");
        assert!(args.contains("--ro-bind /usr /usr"));
        assert!(args.contains("--cap-drop ALL"));
        assert!(args.starts_with("--seccomp 9 "));
        assert!(args.contains("--perms 0700 --tmpfs /run/agentlab/secrets"));
        assert!(args.contains("--ro-bind /state/1234/bootstrap.json /run/agentlab/bootstrap.json"));
        assert!(args.contains("--bind /state/1234/home /home/agent"));
        assert!(!args.contains("/work"));
        assert!(!args.contains("--die-with-parent"));
        assert!(args.contains(&format!("--ro-bind /opt/runner {RUNNER_PATH_INSIDE}")));
        assert!(args.ends_with(&format!("-- /bin/sh {INIT_PATH_INSIDE} --secrets-dir /run/agentlab/secrets --work-dir /home/agent/.agentlab --agent-home /home/agent")));
    }
}
