//! `agentlab sandbox ssh VMID`: the system's `ssh` into a sandbox, tunnelled through the
//! sandbox's channel (`ProxyCommand` = `agentlab sandbox forward --stdio VMID PORT`), so it
//! works where the host has no route to the sandbox. The sandbox must run an SSH server that
//! accepts your key: `ssh_public_keys` in the daemon config or the profile reach the agent
//! user's `authorized_keys` (docs/sandbox-access.md#ssh).
//!
//! Host keys are not checked (`StrictHostKeyChecking=no`, nothing written to
//! `known_hosts`): the channel already guarantees which sandbox the connection reaches — the
//! daemon opens it only on that sandbox's authenticated guest-agent connection — and every
//! new sandbox has a new host key.

use std::path::PathBuf;

use anyhow::Context as _;

use agentlab_core::Vmid;

use crate::ctx::Ctx;
use crate::exit::Code;

/// Arguments of `agentlab sandbox ssh`.
#[derive(Debug, clap::Args)]
pub struct SshArgs {
    /// The sandbox.
    pub vmid: Vmid,
    /// Log in as this user.
    #[arg(long, short = 'l', default_value = "agent")]
    pub login: String,
    /// Private key file (passed to ssh as `-i`).
    #[arg(long, short = 'i')]
    pub identity: Option<PathBuf>,
    /// Port of the SSH server inside the sandbox.
    #[arg(long, short = 'p', default_value_t = 22)]
    pub port: u16,
    /// The ssh program.
    #[arg(long, default_value = "ssh")]
    pub ssh: PathBuf,
    /// Extra arguments for ssh (after `--`): options, then a remote command.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `s` quoted for `sh` (ssh runs the ProxyCommand with the user's shell).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The ssh command line.
pub fn command(exe: &str, conn: &[String], a: &SshArgs) -> Vec<String> {
    let conn: Vec<String> = conn.iter().map(|c| sh_quote(c)).collect();
    let proxy = format!(
        "{} {} sandbox forward --stdio {} {}",
        sh_quote(exe),
        conn.join(" "),
        a.vmid,
        a.port
    );
    let mut argv = vec![
        a.ssh.display().to_string(),
        "-o".into(),
        format!("ProxyCommand={proxy}"),
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "UserKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ];
    if let Some(i) = &a.identity {
        argv.extend(["-i".into(), i.display().to_string()]);
    }
    argv.push(format!("{}@sandbox-{}", a.login, a.vmid));
    argv.extend(a.args.iter().cloned());
    argv
}

/// Runs `agentlab sandbox ssh`: ssh's exit code is the CLI's.
pub async fn run(ctx: &Ctx, a: SshArgs) -> anyhow::Result<Code> {
    let exe = std::env::current_exe().context("locating the agentlab binary")?;
    let argv = command(&exe.display().to_string(), &ctx.conn_args(), &a);
    let mut ssh = tokio::process::Command::new(&argv[0]);
    if let Some(token) = &ctx.token {
        // The ProxyCommand inherits it from ssh; never on a command line.
        ssh.env("AGENTLAB_TOKEN", token);
    }
    let status = ssh
        .args(&argv[1..])
        .status()
        .await
        .with_context(|| format!("running {}", argv[0]))?;
    Ok(Code::Remote(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(255),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tunnels_through_forward_stdio() {
        let a = SshArgs {
            vmid: Vmid::new(9101).expect("vmid"),
            login: "agent".into(),
            identity: Some(PathBuf::from("/k/id")),
            port: 2222,
            ssh: PathBuf::from("ssh"),
            args: vec!["uname".into(), "-a".into()],
        };
        let argv = command(
            "/opt/it's/agentlab",
            &["--socket".into(), "/run/a.sock".into()],
            &a,
        );
        assert_eq!(
            argv[2],
            "ProxyCommand='/opt/it'\\''s/agentlab' '--socket' '/run/a.sock' sandbox forward --stdio 9101 2222"
        );
        assert!(argv.contains(&"agent@sandbox-9101".to_owned()));
        assert_eq!(&argv[argv.len() - 2..], ["uname", "-a"]);
        assert!(argv.windows(2).any(|w| w == ["-i", "/k/id"]));
    }
}
