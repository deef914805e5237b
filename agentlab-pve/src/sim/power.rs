//! Power and guest-agent handlers: `status/current|start|stop|shutdown` and the QEMU guest
//! agent's `ping`, `network-get-interfaces` and `file-write` (into a per-VM in-memory guest
//! filesystem). The boot hook sees starts, stops and file writes.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use serde_json::{Value, json};

use super::BootEvent;
use super::qemu::{HResult, check_node, vm_mut};
use super::server::{ApiErr, Ctx, SimInner};
use super::state::Power;

/// `GET …/status/current`.
pub fn current(inner: &SimInner, ctx: &Ctx) -> HResult {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    check_node(inner, node)?;
    let mut st = inner.state();
    let vm = vm_mut(&mut st, node, vmid)?;
    let (status, qmp) = match vm.power {
        Power::Stopped => ("stopped", "stopped"),
        Power::Running => ("running", "running"),
        Power::Paused => ("running", "paused"),
    };
    let mut v = json!({
        "vmid": vmid.parse::<u32>().unwrap_or_default(), "status": status, "qmpstatus": qmp,
        "name": vm.config.get("name"), "ha": {"managed": 0}, "cpus": 2, "maxmem": 2u64 << 30,
        "agent": u8::from(vm.config.get("agent").is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"))),
        "template": u8::from(vm.is_template()), "uptime": 0,
    });
    if let Some(t) = vm.config.get("tags") {
        v["tags"] = json!(t);
    }
    if let Some(l) = vm.config.get("lock") {
        v["lock"] = json!(l);
    }
    Ok((v, None))
}

/// `POST …/status/{start,stop,shutdown}`.
pub fn power(inner: &Arc<SimInner>, ctx: &Ctx, action: &'static str) -> HResult {
    let (node, vmid) = (ctx.req("node").to_owned(), ctx.req("vmid").to_owned());
    check_node(inner, &node)?;
    {
        let mut st = inner.state();
        let vm = vm_mut(&mut st, &node, &vmid)?;
        if let Some(l) = vm.config.get("lock") {
            return Err(ApiErr::internal(format!("VM is locked ({l})")));
        }
    }
    let force = ctx.flag("forceStop").unwrap_or(false);
    let sim = Arc::clone(inner);
    let id: u32 = vmid.parse().unwrap_or_default();
    let node2 = node.clone();
    let work = async move {
        let event = {
            let mut st = sim.state();
            let vm = st
                .vms
                .get_mut(&id)
                .filter(|vm| vm.node == node2)
                .ok_or_else(|| format!("VM {id} vanished"))?;
            match action {
                "start" => {
                    if vm.is_template() {
                        return Err("you can't start a vm if it's a template".into());
                    }
                    if vm.power != Power::Stopped {
                        return Err(format!("VM {id} already running"));
                    }
                    vm.power = Power::Running;
                    vm.files.clear();
                    if vm.config.contains_key("agent") {
                        vm.agent_ready_at = Some(Instant::now() + sim.config.agent_delay);
                    }
                    BootEvent::Started {
                        vmid: id,
                        node: node2.clone(),
                        config: vm.config.clone(),
                    }
                }
                _ => {
                    if action == "shutdown" && vm.power == Power::Paused && !force {
                        return Err("VM is paused - cannot shutdown".into());
                    }
                    let was_running = vm.power != Power::Stopped;
                    vm.power = Power::Stopped;
                    vm.agent_ready_at = None;
                    if !was_running {
                        return Ok(());
                    }
                    BootEvent::Stopped { vmid: id }
                }
            }
        };
        sim.emit(&event);
        Ok(())
    };
    let kind = match action {
        "start" => "qmstart",
        "stop" => "qmstop",
        _ => "qmshutdown",
    };
    let upid = inner.spawn_task(&node, kind, &vmid, ctx.task_fault.clone(), work);
    Ok((json!(upid), None))
}

pub(super) fn agent_ready(inner: &SimInner, ctx: &Ctx) -> Result<(), ApiErr> {
    let (node, vmid) = (ctx.req("node"), ctx.req("vmid"));
    check_node(inner, node)?;
    let mut st = inner.state();
    let vm = vm_mut(&mut st, node, vmid)?;
    if !vm
        .config
        .get("agent")
        .is_some_and(|a| a.starts_with('1') || a.contains("enabled=1"))
    {
        return Err(ApiErr::internal("No QEMU guest agent configured"));
    }
    if vm.power != Power::Running {
        return Err(ApiErr::internal(format!("VM {vmid} is not running")));
    }
    if vm.agent_ready_at.is_none_or(|t| Instant::now() < t) {
        return Err(ApiErr::internal("QEMU guest agent is not running"));
    }
    Ok(())
}

/// `POST …/agent/ping`.
pub fn ping(inner: &SimInner, ctx: &Ctx) -> HResult {
    agent_ready(inner, ctx)?;
    Ok((json!({"result": {}}), None))
}

/// `GET …/agent/network-get-interfaces`: `lo`, `eth0` with the `ipconfig0` address, `docker0`.
pub fn interfaces(inner: &SimInner, ctx: &Ctx) -> HResult {
    agent_ready(inner, ctx)?;
    let mut st = inner.state();
    let vm = vm_mut(&mut st, ctx.req("node"), ctx.req("vmid"))?;
    let mac = vm
        .config
        .get("net0")
        .and_then(|n| {
            n.split(',').find_map(|p| {
                p.split_once('=')
                    .map(|(_, v)| v.to_owned())
                    .filter(|v| v.len() == 17)
            })
        })
        .unwrap_or_default()
        .to_lowercase();
    let ip = vm.config.get("ipconfig0").and_then(|c| {
        c.split(',')
            .find_map(|p| p.strip_prefix("ip=").map(str::to_owned))
    });
    let mut eth0_ips = vec![
        json!({"ip-address": "fe80::be24:11ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64}),
    ];
    if let Some((addr, prefix)) = ip.as_deref().and_then(|ip| ip.split_once('/')) {
        eth0_ips.insert(0, json!({"ip-address": addr, "ip-address-type": "ipv4", "prefix": prefix.parse::<u8>().unwrap_or(24)}));
    }
    let result = json!([
        {"name": "lo", "hardware-address": "00:00:00:00:00:00",
         "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}]},
        {"name": "eth0", "hardware-address": mac, "ip-addresses": eth0_ips},
        {"name": "docker0", "hardware-address": "02:42:ac:11:00:01",
         "ip-addresses": [{"ip-address": "172.17.0.1", "ip-address-type": "ipv4", "prefix": 16}]},
    ]);
    Ok((json!({ "result": result }), None))
}

/// `POST …/agent/file-write`.
pub fn file_write(inner: &SimInner, ctx: &Ctx) -> HResult {
    agent_ready(inner, ctx)?;
    let content = ctx.req("content");
    let bytes = if ctx.flag("encode").unwrap_or(true) {
        content.as_bytes().to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| ApiErr::internal(format!("Agent error: invalid base64: {e}")))?
    };
    let vmid: u32 = ctx.req("vmid").parse().unwrap_or_default();
    let path = ctx.req("file").to_owned();
    {
        let mut st = inner.state();
        let vm = vm_mut(&mut st, ctx.req("node"), ctx.req("vmid"))?;
        vm.files.insert(path.clone(), bytes.clone());
    }
    inner.emit(&BootEvent::FileWritten {
        vmid,
        path,
        content: bytes,
    });
    Ok((Value::Null, None))
}
