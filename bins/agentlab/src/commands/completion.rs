//! `agentlab completion bash|zsh|fish`: prints a shell completion script.
//!
//! Install with e.g. `agentlab completion bash > /etc/bash_completion.d/agentlab`.

use std::io::Write;

use clap_complete::Shell;

use crate::exit::Code;

/// Arguments of `agentlab completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// Shell to generate the script for.
    pub shell: Shell,
}

/// Writes the completion script for `cmd` (the whole CLI) to `out`. A reader that went
/// away (`agentlab completion bash | head`) is not an error.
pub fn generate(args: &CompletionArgs, cmd: &mut clap::Command, out: &mut dyn Write) -> Code {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, cmd, "agentlab", &mut script);
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Code::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Code::Ok,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            Code::Failure
        }
    }
}
