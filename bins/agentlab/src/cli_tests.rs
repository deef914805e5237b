//! Command-line parsing tests (`Cli::try_parse_from`): flags, aliases, value parsing and the
//! usage exit code.

use std::path::PathBuf;

use agentlab_core::{JobState, SandboxState};
use clap::{CommandFactory, Parser};

use super::{Cli, Command};
use crate::commands::completion::generate;
use crate::commands::job::JobCmd;
use crate::commands::job_artifacts::ArtifactsCmd;
use crate::commands::logs::Target;
use crate::commands::profile::ProfileCmd;
use crate::commands::sandbox::{LeaseCmd, SandboxCmd};
use crate::commands::workspace::WorkspaceCmd;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("agentlab").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn parse_err(args: &[&str]) -> clap::Error {
    Cli::try_parse_from(std::iter::once("agentlab").chain(args.iter().copied()))
        .expect_err("should not parse")
}

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_defaults_and_env() {
    let cli = parse(&["status"]);
    assert_eq!(
        cli.global.socket,
        PathBuf::from("/run/agentlab/agentlabd.sock")
    );
    assert_eq!(
        cli.global.timeout, None,
        "the default (30 s) applies in ctx()"
    );
    assert!(!cli.global.json);
    let cmd = Cli::command();
    let socket = cmd
        .get_arguments()
        .find(|a| a.get_id() == "socket")
        .unwrap();
    assert_eq!(
        socket.get_env().and_then(|e| e.to_str()),
        Some("AGENTLAB_SOCKET")
    );
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let cli = parse(&[
        "sandbox",
        "ls",
        "--json",
        "--socket",
        "/tmp/x.sock",
        "--timeout",
        "5",
    ]);
    assert!(cli.global.json);
    assert_eq!(cli.global.socket, PathBuf::from("/tmp/x.sock"));
    assert_eq!(cli.global.timeout, Some(5));
}

/// `sandbox exec --timeout N` (the issue's spelling) limits the command when `--time-limit`
/// is absent; `--time-limit` wins when both are given.
#[test]
fn exec_timeout_limits_the_command() {
    let cli = parse(&[
        "sandbox",
        "exec",
        "9100",
        "--timeout",
        "7",
        "--",
        "sleep",
        "60",
    ]);
    assert_eq!(cli.global.ctx().unwrap().timeout, Some(7));
    let cli = parse(&[
        "sandbox",
        "exec",
        "9100",
        "--time-limit",
        "3",
        "--timeout",
        "7",
        "--",
        "true",
    ]);
    assert_eq!(cli.global.ctx().unwrap().timeout, Some(7));
}

#[test]
fn sandbox_new_builds_the_request() {
    let cli = parse(&[
        "sandbox",
        "new",
        "--profile",
        "dev",
        "--name",
        "box",
        "--ttl",
        "90",
        "--keepalive",
        "--workspace",
        "data",
        "--wait",
    ]);
    let Command::Sandbox(a) = cli.command else {
        panic!("not sandbox")
    };
    let SandboxCmd::New(n) = a.cmd else {
        panic!("not new")
    };
    assert!(n.wait);
    let req = n.request();
    assert_eq!(req.profile, "dev");
    assert_eq!(req.name.as_deref(), Some("box"));
    assert_eq!(req.ttl_minutes, Some(90));
    assert_eq!(req.keepalive, Some(true));
    assert_eq!(req.workspace.as_deref(), Some("data"));

    let Command::Sandbox(a) = parse(&["sb", "new", "-p", "dev"]).command else {
        panic!()
    };
    let SandboxCmd::New(n) = a.cmd else { panic!() };
    assert_eq!(
        n.request().keepalive,
        None,
        "profile default applies without --keepalive"
    );
}

#[test]
fn sandbox_list_filters_and_aliases() {
    let Command::Sandbox(a) =
        parse(&["sandbox", "ls", "--state", "ready,RUNNING", "--all"]).command
    else {
        panic!()
    };
    let SandboxCmd::List {
        state,
        all,
        profile,
    } = a.cmd
    else {
        panic!()
    };
    assert_eq!(state, vec![SandboxState::Ready, SandboxState::Running]);
    assert!(all);
    assert_eq!(profile, None);
    assert!(
        parse_err(&["sandbox", "ls", "--state", "sleepy"])
            .to_string()
            .contains("sleepy")
    );
}

#[test]
fn sandbox_actions_take_a_vmid() {
    let Command::Sandbox(a) = parse(&["sandbox", "rm", "101"]).command else {
        panic!()
    };
    assert!(matches!(a.cmd, SandboxCmd::Destroy { vmid } if vmid.get() == 101));
    let Command::Sandbox(a) = parse(&["sandbox", "lease", "renew", "101", "--ttl", "30"]).command
    else {
        panic!()
    };
    let SandboxCmd::Lease {
        cmd: LeaseCmd::Renew { vmid, ttl },
    } = a.cmd
    else {
        panic!()
    };
    assert_eq!((vmid.get(), ttl), (101, Some(30)));
    let err = parse_err(&["sandbox", "show", "abc"]);
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    assert_eq!(err.exit_code(), 2, "usage errors exit 2");
    assert_eq!(
        parse_err(&["sandbox", "show", "5"]).kind(),
        clap::error::ErrorKind::ValueValidation
    );
}

#[test]
fn job_run_builds_the_request() {
    let cli = parse(&[
        "job",
        "run",
        "--repo",
        "https://example.com/r.git",
        "--task",
        "fix the bug",
        "--profile",
        "dev",
        "--ref",
        "main",
        "--agent",
        "claude",
        "--ttl",
        "60",
        "--keepalive",
        "--workspace",
        "ws-1",
        "--detach",
    ]);
    let Command::Job(a) = cli.command else {
        panic!()
    };
    let JobCmd::Run(r) = a.cmd else { panic!() };
    assert!(r.detach);
    let req = r.request();
    assert_eq!(req.repo, "https://example.com/r.git");
    assert_eq!(req.task, "fix the bug");
    assert_eq!(req.git_ref.as_deref(), Some("main"));
    assert_eq!(req.agent.as_deref(), Some("claude"));
    assert_eq!((req.ttl_minutes, req.keepalive), (Some(60), Some(true)));
    assert_eq!(req.workspace.as_deref(), Some("ws-1"));
    assert_eq!(req.result, None, "no result flag, no override");
    let cli = parse(&[
        "job",
        "run",
        "--repo",
        "r",
        "--task",
        "t",
        "--profile",
        "p",
        "--push",
        "--branch",
        "bots/{job}",
        "--open-pr",
        "--pr-base",
        "dev",
        "--no-commit-leftovers",
    ]);
    let Command::Job(a) = cli.command else {
        panic!()
    };
    let JobCmd::Run(r) = a.cmd else { panic!() };
    let result = r.request().result.unwrap();
    assert_eq!((result.push, result.open_pr), (Some(true), Some(true)));
    assert_eq!(result.branch.as_deref(), Some("bots/{job}"));
    assert_eq!(result.commit_leftovers, Some(false));
    assert_eq!(result.pr_base.as_deref(), Some("dev"));
    assert_eq!(result.pr_title, None);
    let err = parse_err(&["job", "run", "--repo", "r", "--profile", "p"]);
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
}

#[test]
fn job_list_and_logs() {
    let Command::Job(a) = parse(&["job", "ls", "--state", "running", "--limit", "5"]).command
    else {
        panic!()
    };
    let JobCmd::List { state, limit } = a.cmd else {
        panic!()
    };
    assert_eq!((state, limit), (vec![JobState::Running], Some(5)));
    let Command::Job(a) = parse(&["job", "logs", "job-ab12", "-f", "--tail", "3"]).command else {
        panic!()
    };
    let JobCmd::Logs { job, opts } = a.cmd else {
        panic!()
    };
    assert_eq!(
        (job.as_str(), opts.follow, opts.tail),
        ("job-ab12", true, Some(3))
    );
    assert!(
        parse_err(&["job", "show", "ws-1"])
            .to_string()
            .contains("job-")
    );
}

#[test]
fn job_artifacts_list_and_download() {
    let Command::Job(a) = parse(&["job", "artifacts", "job-1"]).command else {
        panic!()
    };
    let JobCmd::Artifacts(a) = a.cmd else {
        panic!()
    };
    assert!(a.cmd.is_none());
    assert_eq!(a.job.unwrap().as_str(), "job-1");

    let cli = parse(&[
        "job",
        "artifacts",
        "download",
        "job-1",
        "--name",
        "logs.tar.gz",
        "--out",
        "/tmp/o",
    ]);
    let Command::Job(a) = cli.command else {
        panic!()
    };
    let JobCmd::Artifacts(a) = a.cmd else {
        panic!()
    };
    let Some(ArtifactsCmd::Download { job, name, out }) = a.cmd else {
        panic!()
    };
    assert_eq!(job.as_str(), "job-1");
    assert_eq!(name.as_deref(), Some("logs.tar.gz"));
    assert_eq!(out, Some(PathBuf::from("/tmp/o")));

    parse_err(&["job", "artifacts"]);
}

#[test]
fn logs_target_is_a_vmid_or_a_job() {
    let Command::Logs(a) = parse(&["logs", "101", "--follow", "--tail", "20"]).command else {
        panic!()
    };
    assert!(matches!(a.target, Target::Sandbox(v) if v.get() == 101));
    assert!(a.opts.follow);
    assert_eq!(a.opts.tail, Some(20));
    assert_eq!(a.target.events_path(), "/v1/sandboxes/101/events");
    let Command::Logs(a) = parse(&["logs", "job-4f1c"]).command else {
        panic!()
    };
    assert_eq!(a.target.events_path(), "/v1/jobs/job-4f1c/events");
    assert!(!a.opts.follow);
    let err = parse_err(&["logs", "mybox"]);
    assert!(err.to_string().contains("neither a vmid"), "{err}");
    assert!(
        parse_err(&["logs", "job-UPPER"])
            .to_string()
            .contains("lowercase")
    );
}

#[test]
fn workspace_commands() {
    let Command::Workspace(a) = parse(&["workspace", "create", "data", "--size", "20"]).command
    else {
        panic!()
    };
    assert!(matches!(a.cmd, WorkspaceCmd::Create { ref name, size_gb: 20 } if name == "data"));
    let cli = parse(&[
        "ws",
        "rebind",
        "data",
        "--profile",
        "big",
        "--keep-old",
        "--ttl",
        "120",
    ]);
    let Command::Workspace(a) = cli.command else {
        panic!()
    };
    let WorkspaceCmd::Rebind {
        workspace,
        profile,
        keep_old,
        ttl,
    } = a.cmd
    else {
        panic!()
    };
    assert_eq!(
        (workspace.as_str(), profile.as_str(), keep_old, ttl),
        ("data", "big", true, Some(120))
    );
    let Command::Workspace(a) = parse(&["workspace", "attach", "data", "101"]).command else {
        panic!()
    };
    assert!(matches!(a.cmd, WorkspaceCmd::Attach { vmid, .. } if vmid.get() == 101));
    let Command::Workspace(a) = parse(&["workspace", "rm", "data"]).command else {
        panic!()
    };
    assert!(matches!(a.cmd, WorkspaceCmd::Rm { .. }));
}

#[test]
fn profile_commands() {
    let Command::Profile(a) = parse(&["profile", "validate", "p.yaml"]).command else {
        panic!()
    };
    assert!(
        matches!(a.cmd, ProfileCmd::Validate { ref files } if files == &[PathBuf::from("p.yaml")])
    );
    let Command::Profile(a) = parse(&["profile", "reload"]).command else {
        panic!()
    };
    assert!(matches!(a.cmd, ProfileCmd::Reload));
    let Command::Profile(a) = parse(&["profile", "ls"]).command else {
        panic!()
    };
    assert!(matches!(a.cmd, ProfileCmd::List));
}

#[test]
fn completion_scripts_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let Command::Completion(a) = parse(&["completion", shell]).command else {
            panic!()
        };
        let mut out = Vec::new();
        generate(&a, &mut Cli::command(), &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("agentlab"), "{shell}");
        assert!(
            script.contains("sandbox") && script.contains("workspace"),
            "{shell}"
        );
    }
    assert!(
        parse_err(&["completion", "tcsh"])
            .to_string()
            .contains("tcsh")
    );
}

/// Every positional argument of every subcommand says what it is in `--help`.
#[test]
fn every_positional_argument_has_help_text() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_positionals() {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} <{}>", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&Cli::command(), "agentlab", &mut missing);
    assert!(missing.is_empty(), "positionals without help: {missing:?}");
}
