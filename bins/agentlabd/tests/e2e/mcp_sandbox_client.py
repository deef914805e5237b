"""Drives `agentlab mcp`'s sandbox tools with the official MCP Python SDK and prints what it
saw as JSON.

Usage: mcp_sandbox_client.py AGENTLAB SOCKET VMID
Used by bins/agentlabd/tests/e2e_sandbox_access.rs, which asserts on the printed object.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def parsed(result):
    text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return {"is_error": bool(result.is_error), "text": text, "json": value}


async def main(agentlab, socket, vmid):
    vmid = int(vmid)
    server = StdioServerParameters(command=agentlab, args=["--socket", socket, "mcp"])
    out = {}
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()

            async def call(key, tool, args):
                out[key] = parsed(await session.call_tool(tool, args))

            await call("exec_exit", "exec", {
                "vmid": vmid, "argv": ["sh", "-c", "echo out; echo err >&2; exit 7"]})
            await call("exec_stdin", "exec", {
                "vmid": vmid, "argv": ["cat"], "stdin": "through stdin\n"})
            await call("exec_env", "exec", {
                "vmid": vmid, "argv": ["sh", "-c", "echo \"$GREETING\" in $(pwd)"],
                "env": {"GREETING": "hi there"}, "cwd": "/tmp"})
            await call("write_file", "write_file", {
                "vmid": vmid, "path": "/home/agent/mcp/notes.txt",
                "content": "héllo\nfrom mcp\n"})
            await call("read_file", "read_file", {
                "vmid": vmid, "path": "/home/agent/mcp/notes.txt"})
            await call("exec_stat", "exec", {
                "vmid": vmid, "argv": ["stat", "-c", "%a %u %s", "/home/agent/mcp/notes.txt"]})
            await call("read_missing", "read_file", {
                "vmid": vmid, "path": "/home/agent/no-such-file"})
            await call("read_binary", "read_file", {"vmid": vmid, "path": "/usr/bin/env"})
            await call("destroy", "destroy_sandbox", {"vmid": vmid})
            await call("exec_gone", "exec", {"vmid": vmid, "argv": ["true"]})
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), timeout=120))
