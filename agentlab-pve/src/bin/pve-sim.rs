//! `pve-sim`: runs the PVE API simulator.
//!
//! Usage: `pve-sim [--listen ADDR] [--schema PATH] [--template VMID] [--https --ca-out PATH]`.
//! Prints the URL, the token to use and, with `--https`, the certificate fingerprint; the
//! generated CA is written to `--ca-out`. Serves until interrupted. `POST /_sim/nodes/{node}/offline`
//! (and `…/online`) with the token takes a node down and back.

use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, default_schema_path};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:8006".to_owned();
    let mut schema = default_schema_path();
    let mut template = 9000u32;
    let mut https = false;
    let mut ca_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--schema" => schema = value()?.into(),
            "--template" => template = value()?.parse()?,
            "--https" => https = true,
            "--ca-out" => ca_out = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "pve-sim [--listen ADDR] [--schema PATH] [--template VMID] [--https --ca-out PATH]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let config = SimConfig::new(schema);
    let sim = if https {
        Simulator::start_https(config, &listen).await?
    } else {
        Simulator::start(config, &listen).await?
    };
    sim.add_vm(&SeedVm::template(template, "pve1"));
    println!(
        "pve-sim listening on {}/api2/json (nodes pve1, pve2; template {template} on pve1)",
        sim.url()
    );
    // The simulator's fixed development token; it grants nothing anywhere else.
    println!(
        "token: PVEAPIToken={}={}",
        sim.config().token_id,
        sim.config().token_secret
    );
    if let Some(tls) = sim.tls() {
        println!("certificate fingerprint: {}", tls.fingerprint);
        if let Some(path) = ca_out {
            std::fs::write(&path, &tls.ca_pem)?;
            println!("CA written to {path}");
        }
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
