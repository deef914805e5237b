//! Probe specs, their parallel execution inside namespaces, and the pass/fail table.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::probe::{self, Outcome};

/// What a probe should observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The connection must succeed.
    Reach,
    /// The packets must be dropped silently (a timeout; a refusal means they got through).
    Blocked,
}

/// One probe: connect from inside `netns` to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Row label.
    pub name: String,
    /// Namespace the probe runs in.
    pub netns: String,
    /// `ip:port`, `[ip6]:port` or `[fe80::x%iface]:port`.
    pub target: String,
    /// Source address to bind, for spoofing probes.
    pub bind: Option<IpAddr>,
    /// Expected result.
    pub expect: Expect,
}

impl ProbeSpec {
    /// A probe without a fixed source address.
    pub fn new(name: &str, netns: &str, target: &str, expect: Expect) -> Self {
        Self {
            name: name.to_owned(),
            netns: netns.to_owned(),
            target: target.to_owned(),
            bind: None,
            expect,
        }
    }
}

/// A probe and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The probe.
    pub spec: ProbeSpec,
    /// What it saw.
    pub outcome: Outcome,
}

impl ProbeResult {
    /// Whether the outcome matches the expectation.
    pub fn passed(&self) -> bool {
        match self.spec.expect {
            Expect::Reach => matches!(self.outcome, Outcome::Connected(_)),
            Expect::Blocked => self.outcome == Outcome::Timeout,
        }
    }
}

/// How to start the probe program: `program <prefix…> connect <target> …`.
#[derive(Debug, Clone)]
pub struct ProbeCommand {
    /// The executable (`agentlab-netprobe`, or the `agentlab` binary itself).
    pub program: PathBuf,
    /// Arguments before `connect` (e.g. `["net", "probe"]`).
    pub prefix: Vec<String>,
}

/// Entry point of the probe program: parses `<target> [--bind ip] [--timeout-ms n]`, connects,
/// returns the outcome line.
pub async fn probe_main(args: &[String]) -> Result<String, String> {
    let (target, rest) = args.split_first().ok_or("connect needs a target")?;
    let target = probe::parse_target(target).map_err(|e| e.to_string())?;
    let (mut bind, mut timeout_ms) = (None, 1500u64);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bind" => bind = Some(value.parse::<IpAddr>().map_err(|e| e.to_string())?),
            "--timeout-ms" => timeout_ms = value.parse().map_err(|_| "bad --timeout-ms")?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(
        probe::connect(target, bind, Duration::from_millis(timeout_ms))
            .await
            .to_string(),
    )
}

async fn run_one(cmd: &ProbeCommand, spec: ProbeSpec, timeout: Duration) -> ProbeResult {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &spec.netns])
        .arg(&cmd.program)
        .args(&cmd.prefix);
    // Reachability gets room for one SYN retransmission (1 s); a success returns at once.
    let timeout = if spec.expect == Expect::Reach {
        timeout * 3
    } else {
        timeout
    };
    c.args([
        "connect",
        &spec.target,
        "--timeout-ms",
        &timeout.as_millis().to_string(),
    ]);
    if let Some(b) = spec.bind {
        c.args(["--bind", &b.to_string()]);
    }
    c.stdin(Stdio::null()).kill_on_drop(true);
    let outcome = match c.output().await {
        Ok(out) if out.status.success() => Outcome::parse_line(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or(""),
        ),
        Ok(out) => Outcome::Error(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Outcome::Error(format!("cannot start probe: {e}")),
    };
    ProbeResult { spec, outcome }
}

/// Runs all probes concurrently and returns results in spec order. `timeout` is the silence
/// after which a packet counts as dropped; probes expected to reach wait three times as long.
pub async fn run_probes(
    cmd: &ProbeCommand,
    specs: &[ProbeSpec],
    timeout: Duration,
) -> Vec<ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for (i, spec) in specs.iter().cloned().enumerate() {
        let cmd = cmd.clone();
        set.spawn(async move { (i, run_one(&cmd, spec, timeout).await) });
    }
    let mut out: Vec<Option<ProbeResult>> = vec![None; specs.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined
            && let Some(slot) = out.get_mut(i)
        {
            *slot = Some(r);
        }
    }
    out.into_iter().flatten().collect()
}

/// A fixed-width pass/fail table.
pub fn render_table(results: &[ProbeResult]) -> String {
    let w = results
        .iter()
        .map(|r| r.spec.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<w$}  {:<7}  {:<6}  {}\n",
        "PROBE", "EXPECT", "RESULT", "OBSERVED"
    );
    for r in results {
        let expect = match r.spec.expect {
            Expect::Reach => "reach",
            Expect::Blocked => "blocked",
        };
        let verdict = if r.passed() { "PASS" } else { "FAIL" };
        out.push_str(&format!(
            "{:<w$}  {expect:<7}  {verdict:<6}  {}\n",
            r.spec.name, r.outcome
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(expect: Expect, outcome: Outcome) -> ProbeResult {
        ProbeResult {
            spec: ProbeSpec::new("sbx -> wan", "ns", "1.2.3.4:80", expect),
            outcome,
        }
    }

    #[test]
    fn blocked_passes_only_on_silent_drop() {
        assert!(result(Expect::Blocked, Outcome::Timeout).passed());
        assert!(!result(Expect::Blocked, Outcome::Refused).passed());
        assert!(!result(Expect::Blocked, Outcome::Error("no route".into())).passed());
        assert!(result(Expect::Reach, Outcome::Connected("x".into())).passed());
        assert!(!result(Expect::Reach, Outcome::Timeout).passed());
    }

    #[test]
    fn table_has_one_row_per_probe() {
        let t = render_table(&[
            result(Expect::Reach, Outcome::Timeout),
            result(Expect::Blocked, Outcome::Timeout),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("FAIL") && lines[2].contains("PASS"));
    }

    #[tokio::test]
    async fn probe_main_rejects_bad_arguments() {
        assert!(probe_main(&[]).await.is_err());
        assert!(
            probe_main(&["127.0.0.1:1".into(), "--bogus".into(), "1".into()])
                .await
                .is_err()
        );
    }
}
