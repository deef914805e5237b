"""Drives agentlabd's remote MCP endpoint (streamable HTTP over TLS, `/mcp`) with the
official MCP Python SDK and prints what it saw as JSON.

Usage: mcp_http_client.py URL CA_PEM TOKEN REPO_URL PROFILE
Used by bins/agentlabd/tests/e2e_remote.rs, which asserts on the printed object.
"""

import asyncio
import json
import ssl
import sys

from mcp import ClientSession

try:  # mcp >= 2: an httpx client we build (TLS trust, token header).
    from mcp.client.streamable_http import streamable_http_client as _new_client
except ImportError:  # mcp 1.x
    _new_client = None
    from mcp.client.streamable_http import streamablehttp_client as _old_client


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def parsed(result):
    text = text_of(result)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return {"is_error": bool(result.is_error), "text": text, "json": value}


def connect(url, ca, token):
    ctx = ssl.create_default_context(cafile=ca)
    headers = {"Authorization": f"Bearer {token}"}
    if _new_client is not None:
        try:
            import httpx2 as httpx
        except ImportError:
            import httpx
        client = httpx.AsyncClient(headers=headers, verify=ctx,
                                   timeout=httpx.Timeout(300.0))
        return _new_client(url, http_client=client)

    def factory(headers=None, timeout=None, auth=None):
        import httpx
        return httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(300.0), auth=auth,
                                 verify=ctx)
    return _old_client(url, headers=headers, httpx_client_factory=factory)


async def main(url, ca, token, repo, profile):
    out = {}
    async with connect(url, ca, token) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = {"name": init.server_info.name, "version": init.server_info.version}
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["list_profiles"] = parsed(await session.call_tool("list_profiles", {}))
            run = await session.call_tool(
                "run_job",
                {"repo": repo, "task": "say hello", "profile": profile, "wait": True,
                 "timeout_secs": 240})
            out["run_job"] = parsed(run)
            out["create_sandbox"] = parsed(
                await session.call_tool("create_sandbox", {"profile": profile}))
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(*sys.argv[1:6]), timeout=300))
