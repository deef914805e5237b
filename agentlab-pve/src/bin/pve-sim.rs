//! `pve-sim`: runs the PVE API simulator.
//!
//! Usage: `pve-sim [--listen ADDR] [--schema PATH] [--template VMID]`. Prints the URL and the
//! token (`PVEAPIToken=<id>=<secret>`) to use, then serves until interrupted.

use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, default_schema_path};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:8006".to_owned();
    let mut schema = default_schema_path();
    let mut template = 9000u32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--schema" => schema = value()?.into(),
            "--template" => template = value()?.parse()?,
            "-h" | "--help" => {
                println!("pve-sim [--listen ADDR] [--schema PATH] [--template VMID]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let config = SimConfig::new(schema);
    let sim = Simulator::start(config, &listen).await?;
    sim.add_vm(&SeedVm::template(template, "pve1"));
    println!("pve-sim listening on {}/api2/json", sim.url());
    println!(
        "token: PVEAPIToken={}=<secret from SimConfig>",
        sim.config().token_id
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
