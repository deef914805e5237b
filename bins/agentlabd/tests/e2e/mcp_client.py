"""Drives `agentlab mcp` with the official MCP Python SDK and prints what it saw as JSON.

Usage: mcp_client.py AGENTLAB SOCKET REPO_URL PROFILE
Used by bins/agentlabd/tests/e2e_mcp.rs, which asserts on the printed object.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def parsed(result):
    text = text_of(result)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return {"is_error": bool(result.is_error), "text": text, "json": value}


async def main(agentlab, socket, repo, profile):
    server = StdioServerParameters(command=agentlab, args=["--socket", socket, "mcp"])
    out = {"progress": []}

    async def on_progress(progress, total, message):
        out["progress"].append({"progress": progress, "message": message})

    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = {"name": init.server_info.name, "version": init.server_info.version}
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["list_profiles"] = parsed(await session.call_tool("list_profiles", {}))
            run = await session.call_tool(
                "run_job",
                {"repo": repo, "task": "say hello", "profile": profile, "wait": True,
                 "timeout_secs": 240},
                progress_callback=on_progress,
            )
            out["run_job"] = parsed(run)
            job_id = out["run_job"]["json"]["job"]["id"]
            out["job_status"] = parsed(await session.call_tool("job_status", {"job_id": job_id}))
            out["job_logs"] = parsed(await session.call_tool("job_logs", {"job_id": job_id}))
            arts = parsed(await session.call_tool("list_artifacts", {"job_id": job_id}))
            out["list_artifacts"] = arts
            if arts["json"]:
                name = arts["json"][0]["name"]
                out["read_artifact"] = parsed(
                    await session.call_tool("read_artifact", {"job_id": job_id, "name": name}))
                out["read_notes"] = parsed(await session.call_tool(
                    "read_artifact",
                    {"job_id": job_id, "name": name, "path": "artifacts/notes.txt"}))
            out["unknown_profile"] = parsed(await session.call_tool(
                "run_job", {"repo": repo, "task": "t", "profile": "no-such-profile"}))
            out["missing_sandbox"] = parsed(
                await session.call_tool("show_sandbox", {"vmid": 999999}))
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:5]), timeout=300))
