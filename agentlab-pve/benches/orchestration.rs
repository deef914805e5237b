//! Proxmox orchestration against the PVE simulator with realistic task times, printing one
//! table (metric, value, reference, ratio, target) like the `benches/` perf suite:
//!
//! - **overhead**: wall time of one sandbox's create + configure + start + destroy (as the
//!   engine calls them, one after the other) divided by the time the simulator's tasks of
//!   that sandbox ran (clone, resize, start, stop, destroy; sequential, so all on the
//!   critical path). The first cycle runs before the backend has seen any task type (its
//!   polling is not tuned yet); the others after.
//! - **detection lag**: for every task of those cycles, the time from its end in the
//!   simulator to the first `GET …/tasks/{upid}/status` answering `stopped` (the answer goes
//!   out at that moment; `Simulator::task_timings`).
//! - **200 concurrent creates** across two nodes (a template on each, `node: auto`): errors,
//!   and the most requests each node answered at once against the per-node budget.
//!
//! The simulator answers every status poll of a task (no "no such task" window: PVE's lasts
//! only the moment after the fork, and learned polls come much later).
//!
//! Task times: a clone 1.5 s (`task_duration` 0.5 s + `clone_duration` 1 s), every other task
//! 0.5 s, every API request 3 ms. The backend runs with the default poll options. The
//! concurrent creates use short tasks (20 ms, clone 40 ms: the simulator serialises clones on
//! a storage lock, so 1.5 s clones would take minutes) and the same 3 ms requests.
//!
//! Run: `cargo bench -p agentlab-pve --features sim --bench orchestration` (runs about 30 s;
//! `AGENTLAB_PVE_CYCLES`, default 6, sets the number of sequential cycles; skips without the
//! schema subset in `agentlab-pve/schema/`).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentlab_core::{Hypervisor, NetAttachment, Resources, SecretValue, VmSpec, Vmid};
use agentlab_pve::sim::{SeedVm, SimConfig, Simulator, TaskTiming, default_schema_path};
use agentlab_pve::{PollOptions, ProxmoxHypervisor, PveOptions};

const TEMPLATE: u32 = 9000;
/// The template's copy on the second node (same name: placement finds it).
const COPY: u32 = 9001;
const CONCURRENT: u32 = 200;

struct Row {
    metric: String,
    value: f64,
    reference: Option<f64>,
    unit: &'static str,
    target: &'static str,
}

fn row(metric: impl Into<String>, value: f64, unit: &'static str) -> Row {
    Row {
        metric: metric.into(),
        value,
        reference: None,
        unit,
        target: "",
    }
}

impl Row {
    fn vs(mut self, reference: f64) -> Self {
        self.reference = Some(reference);
        self
    }

    fn target(mut self, target: &'static str) -> Self {
        self.target = target;
        self
    }
}

fn spec(vmid: u32) -> VmSpec {
    let host = vmid % 60_000;
    VmSpec {
        vmid: Vmid::new(vmid).expect("vmid in range"),
        name: format!("agentlab-{vmid}"),
        template_vmid: TEMPLATE,
        node: None,
        full_clone: false,
        resources: Resources {
            cores: 1,
            memory_mb: 512,
            cpulimit: None,
            balloon_mb: None,
        },
        root_size_gb: Some(20),
        net: NetAttachment {
            bridge: "vmbr1".into(),
            model: "virtio".into(),
            mac: format!("02:a9:00:00:{:02x}:{:02x}", host / 256 % 256, host % 256),
            ip: IpAddr::V4(Ipv4Addr::new(
                10,
                77,
                (host / 250 % 250) as u8,
                (host % 250 + 2) as u8,
            )),
            prefix_len: 16,
            gateway: IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            firewall: true,
        },
        profile: "bench".into(),
        ssh_public_keys: Vec::new(),
    }
}

async fn simulator(task: Duration, clone: Duration) -> Simulator {
    let mut cfg = SimConfig::new(default_schema_path());
    cfg.task_duration = task;
    cfg.clone_duration = clone;
    cfg.request_delay = Duration::from_millis(3);
    cfg.lock_timeout = Duration::from_secs(10);
    // The simulator hides a task from its first N status polls whenever they come; PVE's
    // window is the moment right after the task is forked, and a learned first poll comes
    // long after that.
    cfg.hidden_task_polls = 0;
    let sim = Simulator::start(cfg, "127.0.0.1:0")
        .await
        .expect("simulator");
    sim.add_vm(&SeedVm::template(TEMPLATE, "pve1"));
    sim.add_vm(&SeedVm {
        name: format!("tmpl-{TEMPLATE}"),
        ..SeedVm::template(COPY, "pve2")
    });
    sim
}

fn backend(sim: &Simulator, node: &str) -> ProxmoxHypervisor {
    let mut o = PveOptions::new(
        sim.url(),
        sim.config().token_id.clone(),
        SecretValue::new(sim.config().token_secret.clone()),
        "local-lvm",
    );
    o.node = node.into();
    o.bridge = Some("vmbr1".into());
    o.poll = PollOptions::default();
    ProxmoxHypervisor::new(o).expect("backend")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// One sandbox's life, as the engine drives it; returns the wall time and the tasks that ran.
async fn cycle(sim: &Simulator, hv: &ProxmoxHypervisor, vmid: u32) -> (Duration, Vec<TaskTiming>) {
    let before = sim.task_timings().len();
    let s = spec(vmid);
    let t = Instant::now();
    hv.create(&s).await.expect("create");
    hv.configure(&s).await.expect("configure");
    hv.start(s.vmid, None).await.expect("start");
    hv.destroy(s.vmid).await.expect("destroy");
    let wall = t.elapsed();
    (wall, sim.task_timings().split_off(before))
}

async fn sequential(cycles: usize) -> Vec<Row> {
    let sim = simulator(Duration::from_millis(500), Duration::from_millis(1000)).await;
    let hv = backend(&sim, "pve1");
    let mut ratios = Vec::new();
    let (mut cold_lags, mut warm_lags) = (Vec::new(), Vec::new());
    for i in 0..cycles {
        let (wall, tasks) = cycle(&sim, &hv, 200 + i as u32).await;
        let busy: Duration = tasks
            .iter()
            .map(|t| t.ended.map_or(Duration::ZERO, |e| e - t.started))
            .sum();
        let requests = sim.requests();
        let polls = requests
            .iter()
            .filter(|r| r.path.contains("/tasks/"))
            .count();
        let others = requests.len() - polls;
        sim.clear_requests();
        for t in &tasks {
            eprintln!(
                "cycle {}: {} ran {:.0} ms, seen {:.1} ms after its end",
                i + 1,
                t.kind,
                t.ended.map_or(0.0, |e| ms(e - t.started)),
                t.seen_stopped.zip(t.ended).map_or(0.0, |(s, e)| ms(s - e))
            );
        }
        eprintln!(
            "cycle {}: wall {:.0} ms, {polls} task polls, {others} other requests",
            i + 1,
            ms(wall),
        );
        let lags = tasks
            .iter()
            .filter_map(|t| Some(ms(t.seen_stopped? - t.ended?)));
        if i == 0 {
            cold_lags.extend(lags);
        } else {
            warm_lags.extend(lags);
        }
        ratios.push((ms(wall), ms(busy), tasks.len()));
    }
    let (wall0, busy0, n0) = ratios[0];
    let mut rows = vec![
        row(
            format!("PVE cycle 1 (cold, {n0} tasks): wall / busy"),
            wall0,
            "ms",
        )
        .vs(busy0)
        .target("<= 1.05x"),
    ];
    if cycles > 1 {
        let mut warm = ratios[1..].to_vec();
        warm.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
        let (w, b, _) = warm[(warm.len() - 1) / 2];
        rows.push(
            row(
                format!("PVE cycles 2-{cycles} (warm): median wall / busy"),
                w,
                "ms",
            )
            .vs(b)
            .target("<= 1.05x"),
        );
        let (w, b, _) = warm[warm.len() - 1];
        rows.push(
            row(
                format!("PVE cycles 2-{cycles} (warm): worst wall / busy"),
                w,
                "ms",
            )
            .vs(b)
            .target("<= 1.05x"),
        );
    }
    cold_lags.sort_by(f64::total_cmp);
    warm_lags.sort_by(f64::total_cmp);
    rows.push(
        row(
            format!("task end -> seen, cold (n={}) max", cold_lags.len()),
            cold_lags.last().copied().unwrap_or(0.0),
            "ms",
        )
        .target("< 100 ms"),
    );
    rows.push(row(
        format!("task end -> seen, warm (n={}) p50", warm_lags.len()),
        quantile(&warm_lags, 0.5),
        "ms",
    ));
    rows.push(
        row(
            format!("task end -> seen, warm (n={}) p99", warm_lags.len()),
            quantile(&warm_lags, 0.99),
            "ms",
        )
        .target("< 100 ms"),
    );
    rows
}

async fn concurrent() -> Vec<Row> {
    let sim = simulator(Duration::from_millis(20), Duration::from_millis(40)).await;
    let hv = Arc::new(backend(&sim, "auto"));
    let budget = hv.options().poll.max_inflight_per_node;
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for n in 0..CONCURRENT {
        let hv = Arc::clone(&hv);
        set.spawn(async move { hv.create(&spec(1000 + n)).await.map(|h| h.node) });
    }
    let mut errors = 0;
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    while let Some(r) = set.join_next().await {
        match r.expect("join") {
            Ok(node) => *per_node.entry(node).or_default() += 1,
            Err(e) => {
                errors += 1;
                eprintln!("create failed: {e}");
            }
        }
    }
    let wall = t.elapsed();
    let most = sim.max_inflight_by_node();
    eprintln!("200 creates: sandboxes per node {per_node:?}; most requests in flight {most:?}");
    let mut rows = vec![
        row(
            format!("{CONCURRENT} concurrent creates: errors"),
            errors as f64,
            "",
        )
        .target("0"),
        row(
            format!("{CONCURRENT} concurrent creates: wall"),
            ms(wall),
            "ms",
        ),
    ];
    for (node, m) in most {
        rows.push(
            row(
                format!("{CONCURRENT} creates: most in flight on {node}"),
                m as f64,
                "req",
            )
            .vs(budget as f64)
            .target("<= budget"),
        );
    }
    rows
}

fn print(rows: &[Row]) {
    let w = rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "\n{:<w$}  {:>12}  {:>12}  {:>9}  {:<6}  target",
        "metric", "value", "reference", "ratio", "unit"
    );
    println!("{}", "-".repeat(w + 62));
    for r in rows {
        let reference = r.reference.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let ratio = r
            .reference
            .filter(|v| *v > 0.0)
            .map_or("-".to_owned(), |v| format!("{:.3}x", r.value / v));
        println!(
            "{:<w$}  {:>12.3}  {:>12}  {:>9}  {:<6}  {}",
            r.metric, r.value, reference, ratio, r.unit, r.target
        );
    }
}

fn main() {
    if !default_schema_path().exists() {
        eprintln!(
            "SKIP: PVE schema not found at {}",
            default_schema_path().display()
        );
        return;
    }
    let cycles = std::env::var("AGENTLAB_PVE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6usize)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut rows = rt.block_on(sequential(cycles));
    rows.extend(rt.block_on(concurrent()));
    print(&rows);
    println!("\n(bench took {:.1} s)", started.elapsed().as_secs_f64());
}
