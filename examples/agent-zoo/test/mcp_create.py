"""Creates an agent through the hub's MCP endpoint with the Python `mcp` SDK, as an IDE would: prints the agent
as JSON once the tool call has returned. Usage: mcp_create.py HUB_URL NAME (run by test/browser.test.mjs with
tests/py/.venv's Python, which scripts/test.sh makes)."""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, name: str) -> None:
    async with streamable_http_client(url + "/mcp") as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            r = await s.call_tool("create_agent", {"name": name})
            assert not r.is_error, r
            print(json.dumps(r.structured_content), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
