#!/usr/bin/env bash
# The whole test suite: formatting, lints (warnings are errors), docs, and every test.
# Privileged tests (network namespaces, nftables) need root; outside CI they skip with a
# printed reason when a prerequisite is missing, in CI (CI set) they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

echo "==> packages (every library crate packages cleanly for crates.io)"
scripts/check-packages.sh

echo "==> cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

echo "==> cargo build (all targets, incl. examples and benches)"
cargo build --workspace --all-targets --all-features

echo "==> tests ($(df -h --output=avail . | tail -1 | tr -d ' ') free on the disk)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  cargo test --workspace --all-features --no-fail-fast
fi

# nextest does not run doc tests: the crate-level examples (agentlab-core, agentlab-host, …)
# are programs that must keep compiling and passing.
echo "==> doc tests"
cargo test --workspace --all-features --doc
