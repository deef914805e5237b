#!/usr/bin/env python3
"""Extract the PVE API methods AgentLab uses from the official schema into the repository.

Reads agentlab-pve/schema/methods.txt ("METHOD /path" per line) and the full pve-docs schemas
(default: shared/pve/ in the nearest ancestor directory that has it, i.e. outside the
repository), and
writes agentlab-pve/schema/apidoc-9.1.json and apidoc-8.4.json: a flat list of
{"path", "text", "leaf", "info": {METHOD: <method exactly as in the source>}} nodes, which the
simulator's schema loader reads like the full tree. Also writes SOURCES.txt with the sha256 of
every input and output. Fails when a listed method is missing from a source schema.

Usage: scripts/pve-schema-subset.py [--shared DIR]
"""
import argparse
import hashlib
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "agentlab-pve" / "schema"
SOURCES = [("apidoc.json", "apidoc-9.1.json"), ("apidoc-pve8.4.json", "apidoc-8.4.json")]


def wanted_methods():
    out = []
    for line in (OUT / "methods.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            method, path = line.split()
            out.append((method, path))
    return out


def index(tree, by_path):
    if "path" in tree:
        by_path[tree["path"]] = tree
    for child in tree.get("children", []):
        index(child, by_path)


def subset(full, wanted):
    by_path = {}
    for tree in full:
        index(tree, by_path)
    nodes = {}
    for method, path in wanted:
        node = by_path.get(path)
        if node is None or method not in node.get("info", {}):
            sys.exit(f"{method} {path} is not in the source schema")
        entry = nodes.setdefault(
            path, {"path": path, "text": node.get("text"), "leaf": node.get("leaf"), "info": {}}
        )
        entry["info"][method] = node["info"][method]
    return [nodes[p] for p in sorted(nodes)]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found = [a / "shared" / "pve" for a in ROOT.parents if (a / "shared" / "pve" / "apidoc.json").is_file()]
    ap.add_argument("--shared", default=str(found[0] if found else ROOT.parent / "shared" / "pve"))
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)
    wanted = wanted_methods()
    lines = []
    for src_name, out_name in SOURCES:
        src = shared / src_name
        full = json.loads(src.read_text())
        part = subset(full, wanted)
        dst = OUT / out_name
        dst.write_text(json.dumps(part, indent=1, sort_keys=True) + "\n")
        lines.append(f"{src_name} sha256 {sha256(src)} -> {out_name} sha256 {sha256(dst)}")
        print(f"{dst.relative_to(ROOT)}: {len(wanted)} methods from {src}")
    (OUT / "SOURCES.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
