#!/usr/bin/env bash
# The performance suite in one command (docs/performance.md): builds the release daemon the
# control API and memory rows need, then runs the store/follow/API/memory suite and the
# Proxmox orchestration bench on the simulator; each prints its table (metric, value,
# reference, ratio, target). Sizes come from the AGENTLAB_PERF_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> cargo build --release -p agentlabd"
cargo build --release -p agentlabd
echo "==> store, follow, control API and memory (benches/perf.rs)"
cargo bench -p agentlab-benches --bench perf
echo "==> Proxmox orchestration on the simulator (agentlab-pve/benches/orchestration.rs)"
cargo bench -p agentlab-pve --features sim --bench orchestration
