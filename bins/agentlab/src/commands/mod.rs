//! One module per subcommand.

pub mod admin;
pub mod admin_restore;
pub mod completion;
pub mod doctor;
pub mod image;
pub mod job;
pub mod job_artifacts;
pub mod job_run;
pub mod local;
pub mod logs;
pub mod mcp;
pub mod mcp_install;
pub mod net;
pub mod profile;
pub mod sandbox;
pub mod sandbox_cp;
pub mod sandbox_exec;
pub mod sandbox_forward;
pub mod sandbox_new;
pub mod sandbox_ssh;
pub mod secrets;
pub mod status;
pub mod template;
pub mod token;
pub mod top;
pub mod workspace;
