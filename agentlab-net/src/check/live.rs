//! `agentlab net check`: a throwaway namespace attached to the live agent bridge plays a
//! sandbox; the probe matrix runs from it against the real host setup; everything is removed
//! afterwards (the namespace, its veth pair and its firewall elements).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use agentlab_core::{Egress, Firewall, SandboxNet, Vmid};

use super::matrix::{Expect, ProbeCommand, ProbeResult, ProbeSpec, run_probes};
use crate::bridge::attach_port;
use crate::error::NetError;
use crate::firewall::NftFirewall;
use crate::netns::{Netns, ip, link_mac};

/// What the live check probes and where it builds its fake sandbox.
#[derive(Debug, Clone)]
pub struct LiveCheckOptions {
    /// Name of the throwaway namespace (also the host-side veth name); ≤ 15 characters.
    pub name: String,
    /// Namespace holding the bridge and ruleset (`None`: this host).
    pub host_netns: Option<String>,
    /// The fake sandbox's IPv4 address (inside the agent subnet, unused).
    pub ip_v4: Ipv4Addr,
    /// The fake sandbox's IPv6 address, when the agent subnet has IPv6.
    pub ip_v6: Option<Ipv6Addr>,
    /// Internet targets that must be reachable.
    pub reach: Vec<String>,
    /// Targets that must be dropped (LAN, tailnet, metadata, other sandboxes …).
    pub blocked: Vec<String>,
    /// Host ports on the gateway that must be dropped (e.g. 22, 8006).
    pub host_ports: Vec<u16>,
    /// Whether the guest listener must answer (false when agentlabd is not running).
    pub expect_guest_listener: bool,
    /// Per-probe timeout.
    pub timeout: Duration,
}

impl LiveCheckOptions {
    /// Defaults for `cfg`: the second-to-last address of each subnet, `1.1.1.1:443` as Internet,
    /// the metadata address, and the host's :22/:8006 as blocked.
    pub fn for_config(cfg: &crate::NetConfig) -> Self {
        let last4 = u32::from(cfg.subnet_v4.broadcast()).saturating_sub(1);
        let ip_v6 = cfg
            .subnet_v6
            .map(|n| Ipv6Addr::from(u128::from(n.broadcast()).saturating_sub(1)));
        Self {
            name: format!("alchk{}", std::process::id() % 1_000_000),
            host_netns: None,
            ip_v4: Ipv4Addr::from(last4),
            ip_v6,
            reach: vec!["1.1.1.1:443".to_owned()],
            blocked: vec!["169.254.169.254:80".to_owned()],
            host_ports: vec![22, 8006],
            expect_guest_listener: true,
            timeout: Duration::from_millis(1500),
        }
    }
}

/// The live check.
#[derive(Debug)]
pub struct LiveCheck<'a> {
    firewall: &'a NftFirewall,
    probe: ProbeCommand,
    opts: LiveCheckOptions,
}

const FAKE_VMID: u32 = Vmid::MAX;

impl<'a> LiveCheck<'a> {
    /// A check using `firewall` (whose tables must already be applied) and `probe`.
    pub fn new(firewall: &'a NftFirewall, probe: ProbeCommand, opts: LiveCheckOptions) -> Self {
        Self {
            firewall,
            probe,
            opts,
        }
    }

    /// Builds the fake sandbox, runs the matrix, cleans up, returns the results.
    pub async fn run(&self) -> Result<Vec<ProbeResult>, NetError> {
        let opts = self.opts.clone();
        let cfg = self.firewall.config().clone();
        let (ns, mac) = tokio::task::spawn_blocking(move || setup(&cfg, &opts))
            .await
            .map_err(|e| NetError::Invalid(format!("setup task failed: {e}")))??;
        let result = self.probe_all(&ns, &mac).await;
        let vmid = Vmid::new(FAKE_VMID).map_err(|e| NetError::Invalid(e.to_string()))?;
        let removed = self.firewall.remove(vmid).await;
        drop(tokio::task::spawn_blocking(move || drop(ns)).await);
        removed.map_err(|e| NetError::Invalid(e.to_string()))?;
        result
    }

    async fn probe_all(&self, ns: &Netns, mac: &str) -> Result<Vec<ProbeResult>, NetError> {
        let cfg = self.firewall.config();
        let o = &self.opts;
        let vmid = Vmid::new(FAKE_VMID).map_err(|e| NetError::Invalid(e.to_string()))?;
        let ips: Vec<IpAddr> = [Some(IpAddr::V4(o.ip_v4)), o.ip_v6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect();
        for ip in &ips {
            let sbx = SandboxNet {
                vmid,
                iface: o.name.clone(),
                mac: mac.to_owned(),
                ip: *ip,
                egress: Egress::Nat,
            };
            self.firewall
                .allow(&sbx)
                .await
                .map_err(|e| NetError::Invalid(e.to_string()))?;
        }
        let n = ns.name();
        let mut specs: Vec<ProbeSpec> = o
            .reach
            .iter()
            .map(|t| ProbeSpec::new(&format!("-> internet {t}"), n, t, Expect::Reach))
            .collect();
        let mut gws = vec![IpAddr::V4(cfg.gateway_v4)];
        gws.extend(cfg.gateway_v6.filter(|_| o.ip_v6.is_some()).map(IpAddr::V6));
        for gw in &gws {
            let host = |p: u16| {
                if gw.is_ipv6() {
                    format!("[{gw}]:{p}")
                } else {
                    format!("{gw}:{p}")
                }
            };
            if o.expect_guest_listener {
                for p in &cfg.guest_ports {
                    specs.push(ProbeSpec::new(
                        &format!("-> guest listener {}", host(*p)),
                        n,
                        &host(*p),
                        Expect::Reach,
                    ));
                }
            }
            for p in &o.host_ports {
                specs.push(ProbeSpec::new(
                    &format!("-> host service {}", host(*p)),
                    n,
                    &host(*p),
                    Expect::Blocked,
                ));
            }
        }
        specs.extend(
            o.blocked
                .iter()
                .map(|t| ProbeSpec::new(&format!("-> {t}"), n, t, Expect::Blocked)),
        );
        if let Some(first) = o.reach.first() {
            let spoof = Ipv4Addr::from(u32::from(o.ip_v4).saturating_sub(1));
            let mut s = ProbeSpec::new(
                &format!("spoofed source {spoof} -> {first}"),
                n,
                first,
                Expect::Blocked,
            );
            s.bind = Some(IpAddr::V4(spoof));
            specs.push(s);
        }
        let mut results = run_probes(&self.probe, &specs, o.timeout).await;
        if let Some(first) = o.reach.first() {
            let name = n.to_owned();
            tokio::task::spawn_blocking(move || {
                ip(
                    Some(&name),
                    &["link", "set", "dev", "eth0", "address", "02:00:5e:00:53:99"],
                )
            })
            .await
            .map_err(|e| NetError::Invalid(format!("spoof task failed: {e}")))??;
            let spec = ProbeSpec::new(
                &format!("spoofed MAC -> {first}"),
                n,
                first,
                Expect::Blocked,
            );
            results.extend(run_probes(&self.probe, &[spec], o.timeout).await);
        }
        Ok(results)
    }
}

fn setup(cfg: &crate::NetConfig, o: &LiveCheckOptions) -> Result<(Netns, String), NetError> {
    let ns = Netns::create(&o.name)?;
    let host = o.host_netns.as_deref();
    // Created where the bridge lives, with the sandbox end moved straight into the namespace.
    let peer = [
        "link", "add", "name", &o.name, "type", "veth", "peer", "name", "eth0", "netns",
    ];
    let mut args = peer.to_vec();
    args.push(ns.name());
    ip(host, &args)?;
    attach_port(host, &cfg.bridge, &o.name)?;
    let n = Some(ns.name());
    let spoof = Ipv4Addr::from(u32::from(o.ip_v4).saturating_sub(1));
    let p4 = cfg.subnet_v4.prefix_len();
    ip(
        n,
        &["addr", "add", &format!("{}/{p4}", o.ip_v4), "dev", "eth0"],
    )?;
    ip(n, &["addr", "add", &format!("{spoof}/{p4}"), "dev", "eth0"])?;
    ip(n, &["link", "set", "dev", "eth0", "up"])?;
    ip(
        n,
        &[
            "route",
            "add",
            "default",
            "via",
            &cfg.gateway_v4.to_string(),
        ],
    )?;
    if let (Some(v6), Some(net), Some(gw)) = (o.ip_v6, cfg.subnet_v6, cfg.gateway_v6) {
        ip(
            n,
            &[
                "-6",
                "addr",
                "add",
                &format!("{v6}/{}", net.prefix_len()),
                "dev",
                "eth0",
                "nodad",
            ],
        )?;
        ip(
            n,
            &["-6", "route", "add", "default", "via", &gw.to_string()],
        )?;
    }
    let mac = link_mac(n, "eth0")?;
    Ok((ns, mac))
}
