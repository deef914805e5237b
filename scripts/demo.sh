#!/usr/bin/env bash
# Runs one AgentLab job end to end on this machine:
#   builds the binaries, starts agentlabd (fake backend: the guest runner is a local process,
#   NO ISOLATION) on a temporary socket, creates a demo git repository, runs
#   `agentlab job run` with a scripted agent that edits a file and commits, shows progress and
#   the result, downloads the artifacts, and stops the daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need[@]}"
fi

echo "==> building agentlabd, agentlab, agent-runner"
cargo build -q -p agentlabd -p agentlab -p agent-runner
bin="$root/target/debug"

demo=$(mktemp -d /tmp/agentlab-demo.XXXXXX)
sock="$demo/agentlabd.sock"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18844)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

mkdir -p "$demo/profiles"
cat > "$demo/profiles/demo.yaml" <<YAML
# A small profile for the demo: one job, then the sandbox is destroyed.
name: demo
template_vmid: 9000
resources:
  cores: 1
  memory_mb: 512
behavior:
  ttl_minutes_default: 15
repo:
  # The fake backend runs the guest as a local process, so the checkout lives on this host.
  clone_path: $demo/checkout
agent:
  command: "true"
YAML

cat > "$demo/config.yaml" <<YAML
socket: $sock
data_dir: $demo/data
profiles_dir: $demo/profiles
backend: fake
guest:
  listen: 127.0.0.1:$port
network:
  manage_firewall: false
secrets:
  dir: $demo/secrets
  identity: $demo/age.key
fake:
  work_dir: $demo/vms
  runner_path: $bin/agent-runner
log:
  level: warn
YAML

echo "==> starting agentlabd (backend: fake — no isolation) on $sock"
"$bin/agentlabd" --config "$demo/config.yaml" 2> "$demo/agentlabd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
  "$bin/agentlab" --socket "$sock" status >/dev/null 2>&1 && break
  sleep 0.1
done
"$bin/agentlab" --socket "$sock" status

echo "==> creating a demo repository in $demo/repo"
git init -q -b main "$demo/repo"
printf '# Demo\n\nA repository for the AgentLab demo.\n' > "$demo/repo/README.md"
git -C "$demo/repo" add README.md
git -C "$demo/repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "Initial commit"

agent='echo "agent: working on: $AGENTLAB_TASK"; echo "Hello from AgentLab ($(date -u +%FT%TZ))" >> README.md; git add README.md; git -c user.name=agent -c user.email=agent@example.invalid commit -q -m "Say hello"; echo "agent: committed $(git rev-parse --short HEAD)"; echo "notes from the agent" > "$AGENTLAB_ARTIFACTS_DIR/notes.txt"'

echo "==> agentlab job run"
set +e
"$bin/agentlab" --socket "$sock" job run --repo "file://$demo/repo" --task "Add a greeting to the README" \
  --profile demo --agent "$agent"
code=$?
set -e

job=$("$bin/agentlab" --socket "$sock" --json job list | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mkdir -p "$demo/artifacts"
"$bin/agentlab" --socket "$sock" job artifacts download "$job" --out "$demo/artifacts" >/dev/null
echo
echo "==> result: job $job exited with code $code"
echo "    artifacts: $demo/artifacts ($(ls "$demo/artifacts" | tr '\n' ' '))"
echo "    daemon log: $demo/agentlabd.log"
echo "    the daemon is stopped now; remove $demo when done."
exit "$code"
