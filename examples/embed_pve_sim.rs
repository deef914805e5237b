//! Scripting template: try the Proxmox path with no Proxmox host — one job on the PVE API
//! simulator, in this process, without agentlabd.
//!
//! Use it to see (or test in CI) what `backend: pve` does before pointing AgentLab at a real
//! cluster, or as the starting point of a program that embeds the engine on Proxmox. It starts
//! `agentlab_pve::sim::Simulator` (nodes `pve1`/`pve2`, template 9000 on `pve1`; every request is
//! validated against the official PVE API schema), makes a simulated VM's boot run the real
//! `agent-runner` as a host process, builds an AgentLab config for `backend: pve` pointing at the
//! simulator (parsed and validated by the normal loader), starts [`agentlab_host::Host`], runs
//! one job on `--repo`, prints its state, exit code, summary, log, artifacts, that its sandbox
//! was destroyed, and how many API requests the backend sent (listing any the schema rejects),
//! and exits 0 only when the job COMPLETED and every request was valid.
//!
//! `--runner` defaults to the `agent-runner` built next to this example (`target/debug`), else
//! the one on `PATH`. Build both, then run (a `file://` repository works):
//!
//! ```text
//! cargo build -p agent-runner -p agentlab-examples --example embed_pve_sim
//! cargo run -p agentlab-examples --example embed_pve_sim -- \
//!     --repo https://github.com/you/app.git --task "say hello"
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::config::Config;
use agentlab_core::engine::JobRequest;
use agentlab_core::fake::boot::ProcessBootHook;
use agentlab_core::profile::Profiles;
use agentlab_core::{EventKind, EventQuery, JobState, SandboxState};
use agentlab_host::Host;
use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, default_schema_path, process_boot_hook};
use clap::Parser;

/// The profile the job runs with: a linked clone of the simulator's template 9000. The runner
/// runs in the VM's own directory, so the checkout goes there.
const PROFILE: &str = "name: sim\ntemplate_vmid: 9000\nresources:\n  cores: 1\n  memory_mb: 512\n\
    behavior:\n  ttl_minutes_default: 10\n  job_timeout_minutes: 5\n\
    repo:\n  clone_path: /proc/self/cwd/checkout\nagent:\n  command: {agent}\n";

/// Runs one job on the PVE simulator, in this process.
#[derive(Debug, Parser)]
struct Args {
    /// Repository URL to clone.
    #[arg(long)]
    repo: String,
    /// The task for the agent.
    #[arg(long, default_value = "say hello")]
    task: String,
    /// The agent command (shell) run in the simulated VM.
    #[arg(
        long,
        default_value = "echo agent ran on the pve simulator; git log --oneline | head -1; \
            mkdir -p \"$AGENTLAB_ARTIFACTS_DIR\"; echo done > \"$AGENTLAB_ARTIFACTS_DIR/result.txt\""
    )]
    agent: String,
    /// The `agent-runner` binary a booted VM runs.
    #[arg(long)]
    runner: Option<PathBuf>,
    /// Where state, artifacts and the VMs' directories go (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The PVE API schema the simulator validates against.
    #[arg(long, default_value_os_t = default_schema_path())]
    schema: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = args.data_dir.clone().unwrap_or_else(|| tmp.path().into());
    let runner = args.runner.clone().unwrap_or_else(default_runner);

    let sim = Simulator::start(SimConfig::new(&args.schema), "127.0.0.1:0").await?;
    sim.add_vm(&SeedVm::template(9000, "pve1"));
    let hook = ProcessBootHook::agent_runner(dir.join("vms"), runner.display().to_string());
    sim.set_boot_hook(process_boot_hook(Arc::new(hook)));
    eprintln!("pve simulator at {}", sim.url());

    let cfg = Config::from_yaml_str(&config_yaml(&sim, &dir)?, "embed_pve_sim")?;
    // A JSON string is a valid double-quoted YAML scalar.
    let agent = serde_json::to_string(&args.agent)?;
    let profiles = Profiles::from_yaml_str(&PROFILE.replace("{agent}", &agent), "embed_pve_sim")?;
    let host = Host::builder(cfg, profiles).start().await?;
    let lab = Arc::clone(host.lab());

    let req = JobRequest {
        repo: args.repo.clone(),
        task: args.task.clone(),
        profile: "sim".into(),
        ..JobRequest::default()
    };
    let job = lab.run_job(req).await?;
    eprintln!("{}: queued ({})", job.id, job.repo);
    let job = agentlab_examples::wait_for_job_in(&lab, &job.id).await?;

    let outcome = job.outcome.clone().unwrap_or_default();
    println!("job {} {}", job.id, job.state);
    println!(
        "exit code: {}",
        outcome.exit_code.map_or("-".into(), |c| c.to_string())
    );
    println!("summary: {}", outcome.summary.as_deref().unwrap_or("-"));
    if let Some(e) = &outcome.error {
        println!("error: {e}");
    }
    let log = EventQuery {
        job: Some(job.id.clone()),
        kinds: vec![EventKind::JobLog],
        ..EventQuery::default()
    };
    for ev in lab.events(&log).await? {
        println!("log: {}", ev.message);
    }
    for a in lab.deps().store.list_artifacts(&job.id).await? {
        println!("artifact: {} ({} bytes)", a.name, a.size);
    }
    // The job's ephemeral sandbox is torn down after the job: wait for it (up to 30 s).
    if let Some(vmid) = job.sandbox {
        let mut changes = lab.subscribe_changes();
        for _ in 0..30 {
            let sb = lab.sandbox(vmid).await?;
            if sb.state == SandboxState::Destroyed {
                println!("sandbox {vmid} {}", sb.state);
                break;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), changes.recv()).await;
        }
    }
    let requests = sim.requests();
    let invalid: Vec<_> = requests.iter().filter(|r| r.validation.is_err()).collect();
    println!(
        "pve api requests: {} ({} invalid against the schema)",
        requests.len(),
        invalid.len()
    );
    for r in &invalid {
        println!("invalid: {} {}: {:?}", r.method, r.path, r.validation);
    }
    host.shutdown().await;
    Ok(if job.state == JobState::Completed && invalid.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The AgentLab config for the simulator: its URL, node, token and storage; everything this
/// run writes under `dir`; the guest listener on a free loopback port (its guests are host
/// processes).
fn config_yaml(sim: &Simulator, dir: &Path) -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let sc = sim.config();
    Ok(format!(
        "data_dir: {d}/data\nprofiles_dir: {d}/profiles\nbackend: pve\n\
         guest:\n  listen: 127.0.0.1:{port}\nnetwork:\n  manage_firewall: false\n\
         secrets:\n  dir: {d}/secrets\n  identity: {d}/age.key\nlimits:\n  allow_file_repos: true\n\
         pve:\n  url: {url}\n  node: pve1\n  token_id: \"{id}\"\n  token_secret: \"{secret}\"\n  \
         storage: local-lvm\n",
        d = dir.display(),
        url = sim.url(),
        id = sc.token_id,
        secret = sc.token_secret,
    ))
}

/// `agent-runner` next to this example's directory (`target/debug/examples/..`), or next to
/// the executable, else the name alone (looked up on `PATH`).
fn default_runner() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("agent-runner"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("agent-runner"))
}
