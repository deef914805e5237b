#!/usr/bin/env bash
# Proves every library crate packages cleanly for crates.io (see docs/publishing.md):
#
# 1. binaries, examples and benches are `publish = false`; every other member is a library
#    crate that names a description, license, repository and readme;
# 2. no `include_str!`/`include_bytes!` in a library crate reaches outside its directory (such
#    a file would be missing from the package);
# 3. `cargo package --list` of each library crate includes README.md and LICENSE;
# 4. `cargo package --no-verify` of all of them together (cargo packages interdependent
#    workspace crates through a temporary local registry), which checks the manifests and
#    resolves every dependency against crates.io.
#
# Verification (building each packaged crate from its tarball) rebuilds the whole dependency
# tree in target/package (6 minutes on two cores here), so a local run skips it unless
# AGENTLAB_PACKAGE_VERIFY=1; CI (.ci/run) sets it, and so should a release.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "check-packages: FAILED: $*" >&2
  exit 1
}

meta=$(cargo metadata --no-deps --format-version 1 --offline 2>/dev/null ||
  cargo metadata --no-deps --format-version 1) || fail "cargo metadata"

# Members that must not be published (publish = false gives "publish": []).
unpublished=(agentlabd agentlab agent-runner agentlab-examples agentlab-benches)
for name in "${unpublished[@]}"; do
  publish=$(jq -c --arg n "$name" '.packages[] | select(.name == $n) | .publish' <<<"$meta")
  [[ -n $publish ]] || fail "$name is not a workspace member (update this script)"
  [[ $publish == "[]" ]] || fail "$name must have publish = false in its Cargo.toml"
done

mapfile -t libs < <(jq -r '.packages[] | select(.publish != []) | .name' <<<"$meta" | sort)
[[ ${#libs[@]} -gt 0 ]] || fail "no publishable crate found"
echo "==> library crates: ${libs[*]}"

for name in "${libs[@]}"; do
  pkg=$(jq -c --arg n "$name" '.packages[] | select(.name == $n)' <<<"$meta")
  for field in description license repository readme; do
    [[ $(jq -r ".$field // empty" <<<"$pkg") != "" ]] || fail "$name: no $field in Cargo.toml"
  done
  dir=$(realpath "$(dirname "$(jq -r '.manifest_path' <<<"$pkg")")")
  # include_str!/include_bytes! with a literal path, resolved against the including file.
  while IFS=: read -r file _ path; do
    target=$(realpath -m "$(dirname "$file")/$path")
    [[ $target == "$dir"/* ]] || fail "$name: $file includes $path, outside the crate directory"
  done < <(grep -rnoE 'include_(str|bytes)!\("[^"]+"\)' "$dir/src" |
    sed -E 's/include_(str|bytes)!\("([^"]+)"\)/\2/')
  list=$(cargo package --list --allow-dirty -p "$name" 2>/dev/null) ||
    fail "$name: cargo package --list (run it to see why)"
  for file in README.md LICENSE; do
    grep -qx "$file" <<<"$list" || fail "$name: $file is not in the package"
  done
done
echo "==> every library crate ships README.md and LICENSE"

args=()
for name in "${libs[@]}"; do args+=(-p "$name"); done
if [[ ${AGENTLAB_PACKAGE_VERIFY:-0} == 1 ]]; then
  echo "==> cargo package (with verification: builds every package from its tarball)"
  cargo package --allow-dirty "${args[@]}" || fail "cargo package"
else
  echo "==> cargo package --no-verify (AGENTLAB_PACKAGE_VERIFY=1 also builds each package)"
  cargo package --allow-dirty --no-verify --quiet "${args[@]}" || fail "cargo package"
fi
echo "==> all ${#libs[@]} library crates package cleanly"
