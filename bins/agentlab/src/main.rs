//! `agentlab`: the AgentLab command-line client. Talks to agentlabd over its Unix socket.
//!
//! `main` parses the command line, dispatches to one module per subcommand under `commands/`,
//! prints an error chain once as `error: …` and maps the outcome to the exit codes documented
//! in `docs/cli.md` (see [`exit::Code`]).

mod commands;
mod ctx;
mod exit;
mod output;
mod term;
#[cfg(test)]
mod test_server;
mod view;

use clap::{CommandFactory, Parser, Subcommand};

use crate::exit::Code;

/// Version line: crate version, git commit and build date embedded at build time.
const VERSION: &str = env!("AGENTLAB_VERSION_LINE");

#[derive(Debug, Parser)]
#[command(name = "agentlab", version = VERSION, about = "Run AI coding agents in isolated, ephemeral sandboxes")]
struct Cli {
    #[command(flatten)]
    global: ctx::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon version, backend health and counts per state.
    Status,
    /// Create, inspect and manage sandboxes.
    #[command(visible_alias = "sb")]
    Sandbox(commands::sandbox::SandboxArgs),
    /// Run agent jobs and inspect their results and artifacts.
    Job(commands::job::JobArgs),
    /// Show (or follow) the events and agent output of a sandbox or job.
    Logs(commands::logs::LogsArgs),
    /// Manage persistent workspace volumes.
    #[command(visible_alias = "ws")]
    Workspace(commands::workspace::WorkspaceArgs),
    /// List, show and validate profiles.
    Profile(commands::profile::ProfileArgs),
    /// Print a shell completion script.
    Completion(commands::completion::CompletionArgs),
    /// Check the Proxmox connection, templates, storage and token privileges.
    Doctor(commands::doctor::DoctorArgs),
    /// Local backend tools: build a sandbox root filesystem (same as `image build`).
    Local(commands::local::LocalArgs),
    /// Build guest images (rootfs, disk.qcow2, kernel, manifest) from an image spec.
    Image(commands::image::ImageArgs),
    /// Install images as Proxmox templates.
    Template(commands::template::TemplateArgs),
    /// Network isolation: plan, apply and check the nftables policy.
    Net(commands::net::NetArgs),
    /// Manage age-encrypted secret bundles.
    Secrets(commands::secrets::SecretsArgs),
    /// Serve the AgentLab tools to an AI agent over MCP (stdio), e.g. for Claude Code.
    Mcp(commands::mcp::McpArgs),
    /// API tokens of the remote API (create, list, revoke; on the daemon's host).
    Token(commands::token::TokenArgs),
    /// Back up the daemon's state, or restore a backup while it is stopped.
    Admin(commands::admin::AdminArgs),
    /// Set this host up (as root): group, /etc/agentlab, data dir, systemd unit, start.
    Init(commands::init::InitArgs),
    /// Reverse `init` (as root); keeps config and data unless --purge.
    Uninstall(commands::uninstall::UninstallArgs),
    /// Live terminal UI: sandboxes, jobs, events and logs, with destroy/renew/shell keys.
    Top(commands::top::TopArgs),
}

/// Output into a closed pipe (`agentlab … | head`) ends the CLI quietly with 0, as when a
/// shell's reader goes away: std's `println!` panics on `EPIPE` (Rust ignores SIGPIPE), so
/// that one panic is turned into an exit; every other panic keeps the default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.contains("Broken pipe") || msg.contains("BrokenPipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Code::Failure.into();
        }
    };
    let json = cli.global.json;
    let code = match rt.block_on(dispatch(cli)) {
        Ok(code) => code.into(),
        Err(e) => {
            if json {
                eprintln!("{}", output::error_json(&e));
            } else {
                eprintln!("error: {e:#}");
            }
            Code::for_error(&e).into()
        }
    };
    // A read of the terminal (`sandbox exec`/`shell` forward stdin) may still block a
    // runtime thread: do not wait for it.
    rt.shutdown_background();
    code
}

async fn dispatch(cli: Cli) -> anyhow::Result<Code> {
    let ctx = cli.global.ctx()?;
    let code = match cli.command {
        Command::Status => commands::status::run(&ctx).await,
        Command::Sandbox(a) => commands::sandbox::run(&ctx, a).await,
        Command::Job(a) => commands::job::run(&ctx, a).await,
        Command::Logs(a) => commands::logs::run(&ctx, a).await,
        Command::Workspace(a) => commands::workspace::run(&ctx, a).await,
        Command::Profile(a) => commands::profile::run(&ctx, a).await,
        Command::Completion(a) => {
            let (mut cmd, mut out) = (Cli::command(), std::io::stdout());
            Ok(commands::completion::generate(&a, &mut cmd, &mut out))
        }
        Command::Doctor(a) => commands::doctor::run(a, ctx.json).await,
        Command::Local(a) => commands::local::run(a, ctx.json).await.map(|()| Code::Ok),
        Command::Image(a) => commands::image::run(a, ctx.json).await.map(|()| Code::Ok),
        Command::Template(a) => commands::template::run(a, ctx.json)
            .await
            .map(|()| Code::Ok),
        Command::Net(a) => commands::net::run(a, ctx.json).await.map(|()| Code::Ok),
        Command::Secrets(a) => commands::secrets::run(a, ctx.json).await.map(|()| Code::Ok),
        Command::Mcp(a) => commands::mcp::run(&ctx, a).await,
        Command::Admin(a) => commands::admin::run(&ctx, a).await,
        Command::Token(a) => commands::token::run(&ctx, a).await,
        Command::Init(a) => commands::init::run(a, ctx.json).await,
        Command::Uninstall(a) => commands::uninstall::run(a, ctx.json).await,
        Command::Top(a) => commands::top::run(&ctx, a).await,
    };
    if let Some((fingerprint, file)) = ctx.client.pinned_on_first_use() {
        eprintln!(
            "agentlab: first connection to {}: pinned its certificate (SHA-256 {fingerprint}) in \
             {}; check it against the fingerprint agentlabd logged at start",
            ctx.client.target(),
            file.display()
        );
    }
    code
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod cli_tests;
