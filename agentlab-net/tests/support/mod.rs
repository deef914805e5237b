//! The netns lab: a router namespace (agent bridge + AgentLab ruleset + host services), two
//! registered sandboxes, one unregistered port, and `lan`, `tailnet` and `wan` servers — all in
//! namespaces this test creates, deleted by `Drop` even when the test panics.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agentlab_core::{Egress, SandboxNet, Vmid};
use agentlab_net::check::{Expect, ProbeCommand, ProbeResult, ProbeSpec, render_table, run_probes};
use agentlab_net::netns::{Netns, exec_in, ip, link_mac};
use agentlab_net::{NetConfig, NftFirewall, ProcessRunner, TailnetConfig, bridge};

/// Finds `nft`, or `None`.
pub fn nft_path() -> Option<PathBuf> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The privileged-test gate: `true` to run; panics under `CI` when prerequisites are missing.
pub fn privileged() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let ip_ok = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    let reason = if !root {
        Some("not running as root")
    } else if nft_path().is_none() {
        Some("nft not installed (apt-get install nftables)")
    } else if !ip_ok {
        Some("ip not installed (apt-get install iproute2)")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => {
            panic!("privileged test prerequisites missing under CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIP: {r}");
            false
        }
    }
}

pub const SBX1_V4: &str = "10.77.0.11";
pub const SBX2_V4: &str = "10.77.0.12";
pub const SBX3_V4: &str = "10.77.0.13";
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1200);

/// The lab. Field order matters: servers are killed in `Drop`, then namespaces are deleted.
pub struct Lab {
    servers: Vec<Child>,
    pub cfg: NetConfig,
    pub firewall: Arc<NftFirewall>,
    pub runtime: tokio::runtime::Runtime,
    pub probe: ProbeCommand,
    pub router: String,
    pub sbx1: String,
    pub sbx2: String,
    pub sbx3: String,
    pub lan: String,
    pub tailnet: String,
    pub wan: String,
    /// The foreign table's listing, taken before AgentLab applied anything.
    pub foreign_before: String,
    namespaces: Vec<Netns>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.servers {
            drop(child.kill());
            drop(child.wait());
        }
    }
}

fn ns_ip(ns: &str, args: &[&str]) {
    ip(Some(ns), args).unwrap_or_else(|e| panic!("ip -n {ns} {}: {e}", args.join(" ")));
}

/// Connects `ns`'s `eth0` to `peer` in `router`, with addresses and a default route.
fn wire(router: &str, ns: &str, peer: &str, v4: &str, v6: &str, gw4: &str, gw6: &str) {
    ns_ip(
        ns,
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", router,
        ],
    );
    ns_ip(ns, &["addr", "add", v4, "dev", "eth0"]);
    ns_ip(ns, &["-6", "addr", "add", v6, "dev", "eth0", "nodad"]);
    ns_ip(ns, &["link", "set", "eth0", "up"]);
    ns_ip(ns, &["route", "add", "default", "via", gw4]);
    ns_ip(ns, &["-6", "route", "add", "default", "via", gw6]);
}

impl Lab {
    /// Builds the topology and applies the base ruleset plus sbx1/sbx2 (dual stack, nat).
    pub fn new(tag: &str, tailnet_ssh: bool) -> Self {
        let prefix = format!("al{}-{tag}", std::process::id());
        let names = ["router", "sbx1", "sbx2", "sbx3", "lan", "tailnet", "wan"]
            .map(|n| format!("{prefix}-{n}"));
        let mut namespaces = Vec::new();
        for n in &names {
            namespaces.push(Netns::create(n).unwrap_or_else(|e| panic!("netns {n}: {e}")));
        }
        let [router, sbx1, sbx2, sbx3, lan, tailnet, wan] = names;
        let nft = nft_path().unwrap();
        let cfg = NetConfig {
            uplink: "uplink".into(),
            tailnet: TailnetConfig {
                iface: Some("tailscale0".into()),
                ssh: tailnet_ssh,
            },
            nft_path: nft.clone(),
            // Every sandbox port of the lab's agent bridge (sbx3's stays unregistered).
            agent_ports: vec!["tap1*".to_owned()],
            ..NetConfig::default()
        };
        // A table AgentLab does not own, present before and after everything.
        let foreign = "table inet foreign {\n\tchain forward_filter {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tip daddr 192.0.2.1 drop\n\t}\n}\n";
        run_nft_stdin(&nft, &router, foreign);
        let foreign_before = exec_in(&router, nft.to_str().unwrap(), &["list", "ruleset"]).unwrap();

        bridge::create_bridge(&cfg, Some(&router)).unwrap();
        ns_ip(
            &router,
            &["-6", "addr", "add", "fe80::1/64", "dev", "vmbr1", "nodad"],
        );
        exec_in(&router, "sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"]).unwrap();
        for (ns, port, v4, v6, ll) in [
            (&sbx1, "tap101i0", SBX1_V4, "fd77::11", "fe80::11"),
            (&sbx2, "tap102i0", SBX2_V4, "fd77::12", "fe80::12"),
            (&sbx3, "tap103i0", SBX3_V4, "fd77::13", "fe80::13"),
        ] {
            wire(
                &router,
                ns,
                port,
                &format!("{v4}/16"),
                &format!("{v6}/64"),
                "10.77.0.1",
                "fd77::1",
            );
            ns_ip(
                ns,
                &[
                    "-6",
                    "addr",
                    "add",
                    &format!("{ll}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            );
            bridge::attach_port(Some(&router), "vmbr1", port).unwrap();
        }
        // Extra, unbound addresses on sbx1 for source-spoofing probes.
        ns_ip(&sbx1, &["addr", "add", "10.77.0.99/16", "dev", "eth0"]);
        ns_ip(
            &sbx1,
            &[
                "-6",
                "addr",
                "add",
                "fd77::99/64",
                "dev",
                "eth0",
                "nodad",
                "preferred_lft",
                "0",
            ],
        );

        wire(
            &router,
            &lan,
            "lan0",
            "192.168.50.10/24",
            "fd12::10/64",
            "192.168.50.1",
            "fd12::1",
        );
        ns_ip(&router, &["addr", "add", "192.168.50.1/24", "dev", "lan0"]);
        ns_ip(
            &router,
            &["-6", "addr", "add", "fd12::1/64", "dev", "lan0", "nodad"],
        );
        ns_ip(&router, &["link", "set", "lan0", "up"]);

        wire(
            &router,
            &tailnet,
            "tailscale0",
            "100.64.0.10/24",
            "fd7a:115c:a1e0::10/64",
            "100.64.0.1",
            "fd7a:115c:a1e0::1",
        );
        ns_ip(
            &router,
            &["addr", "add", "100.64.0.1/24", "dev", "tailscale0"],
        );
        ns_ip(
            &router,
            &[
                "-6",
                "addr",
                "add",
                "fd7a:115c:a1e0::1/64",
                "dev",
                "tailscale0",
                "nodad",
            ],
        );
        ns_ip(&router, &["link", "set", "tailscale0", "up"]);

        wire(
            &router,
            &wan,
            "uplink",
            "203.0.113.10/24",
            "2001:db8:113::10/64",
            "203.0.113.1",
            "2001:db8:113::1",
        );
        ns_ip(&router, &["addr", "add", "203.0.113.1/24", "dev", "uplink"]);
        ns_ip(
            &router,
            &[
                "-6",
                "addr",
                "add",
                "2001:db8:113::1/64",
                "dev",
                "uplink",
                "nodad",
            ],
        );
        ns_ip(&router, &["link", "set", "uplink", "up"]);
        // Private/metadata addresses that are reachable through the uplink (must stay blocked).
        for a in ["169.254.169.254/32", "172.16.5.10/32"] {
            ns_ip(&wan, &["addr", "add", a, "dev", "eth0"]);
            ns_ip(&router, &["route", "add", a, "via", "203.0.113.10"]);
        }
        ns_ip(
            &wan,
            &[
                "-6",
                "addr",
                "add",
                "fd00:bad::10/128",
                "dev",
                "eth0",
                "nodad",
            ],
        );
        ns_ip(
            &router,
            &[
                "-6",
                "route",
                "add",
                "fd00:bad::10/128",
                "via",
                "2001:db8:113::10",
            ],
        );
        ns_ip(
            &wan,
            &["route", "add", "10.77.0.0/16", "via", "203.0.113.1"],
        );

        let runner = Arc::new(ProcessRunner::in_netns(nft, router.clone()));
        let firewall = Arc::new(NftFirewall::with_runner(cfg.clone(), runner).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let probe = ProbeCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_agentlab-netprobe")),
            prefix: vec![],
        };
        let mut lab = Lab {
            servers: Vec::new(),
            cfg,
            firewall,
            runtime,
            probe,
            router,
            sbx1,
            sbx2,
            sbx3,
            lan,
            tailnet,
            wan,
            foreign_before,
            namespaces,
        };
        lab.serve(&lab.router.clone(), "host", &[8844, 8006, 22]);
        lab.serve(&lab.sbx1.clone(), "sbx1", &[22, 8080]);
        lab.serve(&lab.sbx2.clone(), "sbx2", &[22]);
        lab.serve(&lab.lan.clone(), "lan", &[80]);
        lab.serve(&lab.tailnet.clone(), "tailnet", &[80]);
        lab.serve(&lab.wan.clone(), "wan", &[80]);
        lab.apply_base_and_sandboxes();
        lab
    }

    fn serve(&mut self, ns: &str, banner: &str, ports: &[u16]) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(&self.probe.program)
            .args(["listen", banner]);
        cmd.args(ports.iter().map(|p| format!("[::]:{p}")));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "listener in {ns} did not start");
        self.servers.push(child);
    }

    pub fn sandbox(&self, vmid: u32, ns: &str, port: &str, ip: &str, egress: Egress) -> SandboxNet {
        SandboxNet {
            vmid: Vmid::new(vmid).unwrap(),
            iface: port.into(),
            mac: link_mac(Some(ns), "eth0").unwrap(),
            ip: ip.parse().unwrap(),
            egress,
        }
    }

    pub fn apply_base_and_sandboxes(&self) {
        use agentlab_core::Firewall;
        let s = [
            self.sandbox(101, &self.sbx1, "tap101i0", SBX1_V4, Egress::Nat),
            self.sandbox(101, &self.sbx1, "tap101i0", "fd77::11", Egress::Nat),
            self.sandbox(102, &self.sbx2, "tap102i0", SBX2_V4, Egress::Nat),
            self.sandbox(102, &self.sbx2, "tap102i0", "fd77::12", Egress::Nat),
        ];
        self.runtime.block_on(async {
            self.firewall.ensure_base().await.unwrap();
            for sbx in &s {
                self.firewall.allow(sbx).await.unwrap();
            }
        });
    }

    /// Runs the probes in parallel, prints the table, returns the results.
    pub fn probe(&self, specs: &[ProbeSpec]) -> Vec<ProbeResult> {
        let results = self
            .runtime
            .block_on(run_probes(&self.probe, specs, PROBE_TIMEOUT));
        eprintln!("{}", render_table(&results));
        results
    }

    /// Asserts every probe passed.
    pub fn assert_all(&self, specs: &[ProbeSpec]) -> Vec<ProbeResult> {
        let results = self.probe(specs);
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.passed())
            .map(|r| format!("{} => {}", r.spec.name, r.outcome))
            .collect();
        assert!(failed.is_empty(), "failed probes:\n{}", failed.join("\n"));
        results
    }

    pub fn nft(&self, args: &[&str]) -> String {
        exec_in(&self.router, self.cfg.nft_path.to_str().unwrap(), args).unwrap()
    }

    /// Both AgentLab tables as listed by the kernel.
    pub fn agentlab_listing(&self) -> String {
        format!(
            "{}{}",
            self.nft(&["list", "table", "inet", "agentlab"]),
            self.nft(&["list", "table", "bridge", "agentlab"])
        )
    }
}

fn run_nft_stdin(nft: &Path, ns: &str, script: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Shorthand for a probe spec.
pub fn p(name: &str, ns: &str, target: &str, expect: Expect) -> ProbeSpec {
    ProbeSpec::new(name, ns, target, expect)
}
