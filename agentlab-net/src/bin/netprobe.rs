//! `agentlab-netprobe`: the TCP probe/listener the netns test harness runs inside namespaces.
//!
//! - `agentlab-netprobe connect <target> [--bind <ip>] [--timeout-ms <n>]` prints one outcome line.
//! - `agentlab-netprobe listen <banner> <addr>...` prints `ready` once bound and serves until its
//!   stdin closes (so it dies with the test process that spawned it).

use std::net::SocketAddr;
use std::process::ExitCode;

use agentlab_net::probe;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agentlab-netprobe: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    match args.split_first() {
        Some((cmd, rest)) if cmd == "connect" => {
            let line = agentlab_net::check::probe_main(rest).await?;
            println!("{line}");
            Ok(())
        }
        Some((cmd, rest)) if cmd == "listen" => {
            let (banner, addrs) = rest.split_first().ok_or("listen needs a banner")?;
            let addrs = addrs
                .iter()
                .map(|a| a.parse::<SocketAddr>().map_err(|e| format!("{a}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let stop = async {
                let mut sink = Vec::new();
                let _eof =
                    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
            };
            probe::serve(&addrs, banner, || println!("ready"), stop)
                .await
                .map_err(|e| e.to_string())
        }
        _ => Err("usage: agentlab-netprobe connect|listen …".to_owned()),
    }
}
