#!/usr/bin/env bash
# Runs one AgentLab job end to end on this machine, in an isolated local sandbox:
#   installs missing packages (bubblewrap, nftables, iproute2, git), builds the binaries,
#   starts agentlabd with the `local` backend (namespaces + bubblewrap + nftables) on a
#   temporary socket, serves a demo git repository on the sandbox bridge, runs
#   `agentlab job run` with a scripted agent that edits a file and commits, shows progress and
#   the result, downloads the artifacts, then stops everything and removes the bridge and the
#   nftables tables again.
#
#   ./scripts/demo.sh            local backend (needs root: namespaces, bridge, nftables)
#   ./scripts/demo.sh --fake     fake backend: no isolation, the runner is a plain process
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
backend=local
[ "${1:-}" = "--fake" ] && backend=fake

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if [ "$backend" = local ]; then
    echo "The local backend needs root (network namespaces, a bridge, nftables)." >&2
    echo "Run: sudo $0   — or try the unisolated demo: $0 --fake" >&2
    exit 1
  fi
  SUDO="sudo"
fi
need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "$backend" = local ]; then
  command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "==> installing ${need[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

echo "==> building agentlabd, agentlab, agent-runner"
cargo build -q -p agentlabd -p agentlab -p agent-runner
bin="$root/target/debug"

demo=$(mktemp -d /tmp/agentlab-demo.XXXXXX)
sock="$demo/agentlabd.sock"
bridge=agentlabdemo0
gw=10.78.0.1
cfg="$demo/config.yaml"
daemon_pid=""
gitd_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  [ -n "$gitd_pid" ] && kill "$gitd_pid" 2>/dev/null && wait "$gitd_pid" 2>/dev/null || true
  if [ "$backend" = local ]; then
    AGENTLAB_CONFIG="$cfg" "$bin/agentlab" net delete --force >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
  fi
}
trap cleanup EXIT

mkdir -p "$demo/profiles" "$demo/srv"
clone_path=/home/agent/repo
[ "$backend" = fake ] && clone_path="$demo/checkout"
cat > "$demo/profiles/demo.yaml" <<YAML
# A small profile for the demo: one job, then the sandbox is destroyed.
name: demo
template_vmid: 9000
resources:
  cores: 1
  memory_mb: 1024
behavior:
  ttl_minutes_default: 15
repo:
  clone_path: $clone_path
agent:
  command: "true"
YAML

if [ "$backend" = local ]; then
  listen="$gw:8844"
  backend_cfg="local:
  bridge: $bridge
  runner_path: $bin/agent-runner"
  net_cfg="network:
  bridge: $bridge
  subnet: 10.78.0.0/24
  gateway: $gw
  host_ports: [9418]
  table: agentlabdemo"
else
  listen="127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  gw=127.0.0.1
  backend_cfg="fake:
  work_dir: $demo/vms
  runner_path: $bin/agent-runner"
  net_cfg="network:
  manage_firewall: false"
fi
cat > "$cfg" <<YAML
socket: $sock
data_dir: $demo/data
profiles_dir: $demo/profiles
backend: $backend
guest:
  listen: $listen
vmid_range:
  start: 9100
  end: 9150
$net_cfg
$backend_cfg
secrets:
  dir: $demo/secrets
  identity: $demo/age.key
log:
  level: warn
YAML

echo "==> starting agentlabd (backend: $backend) on $sock"
[ "$backend" = fake ] && echo "    NOTE: the fake backend gives NO isolation; the runner is a plain local process."
"$bin/agentlabd" --config "$cfg" 2> "$demo/agentlabd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
  "$bin/agentlab" --socket "$sock" status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$demo/agentlabd.log" >&2; exit 1; }
  sleep 0.1
done
"$bin/agentlab" --socket "$sock" status

echo "==> creating a demo repository, served read-only by git daemon on $gw:9418"
git init -q -b main "$demo/work"
printf '# Demo\n\nA repository for the AgentLab demo.\n' > "$demo/work/README.md"
git -C "$demo/work" add README.md
git -C "$demo/work" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "Initial commit"
git clone -q --bare "$demo/work" "$demo/srv/demo.git"
git daemon --reuseaddr --export-all --base-path="$demo/srv" --listen="$gw" --port=9418 "$demo/srv" 2> "$demo/git-daemon.log" &
gitd_pid=$!
sleep 0.5

agent='echo "agent: working on: $AGENTLAB_TASK (as $(id -un); processes visible in the sandbox: $(ls /proc | grep -c "^[0-9]"))"
echo "Hello from AgentLab ($(date -u +%FT%TZ))" >> README.md
git add README.md && git -c user.name=agent -c user.email=agent@example.invalid commit -q -m "Say hello"
echo "agent: committed $(git rev-parse --short HEAD)"
echo "notes from the agent" > "$AGENTLAB_ARTIFACTS_DIR/notes.txt"'

echo "==> agentlab job run"
set +e
"$bin/agentlab" --socket "$sock" job run --repo "git://$gw/demo.git" --task "Add a greeting to the README" \
  --profile demo --agent "$agent"
code=$?
set -e

job=$("$bin/agentlab" --socket "$sock" --json job list | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mkdir -p "$demo/artifacts"
"$bin/agentlab" --socket "$sock" job artifacts download "$job" --out "$demo/artifacts" >/dev/null
tar xzf "$demo/artifacts/artifacts.tar.gz" -C "$demo/artifacts"
echo
echo "==> result: job $job exited with code $code"
echo "    artifacts: $demo/artifacts ($(cd "$demo/artifacts" && ls | tr '\n' ' '))"
echo "    the agent's commit as a patch: $demo/artifacts/changes.patch"
echo "    daemon log: $demo/agentlabd.log"
echo "    agentlabd, git daemon, the bridge and the nftables tables are removed on exit;"
echo "    remove $demo when done."
exit "$code"
