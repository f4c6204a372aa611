"""Fixtures: a real `switchboard serve` on 127.0.0.1:0 in a temp dir, and MCP client sessions over stdio
(`switchboard mcp`) and Streamable HTTP (`/mcp`), made with the Python `mcp` SDK."""
import json
import os
import subprocess
import tempfile
import urllib.request
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

BIN = os.environ.get("SWITCHBOARD_BIN", "")


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Hub:
    def __init__(self, url: str, data_dir: str, proc: subprocess.Popen):
        self.url, self.data_dir, self.proc = url, data_dir, proc

    def rest(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                text = res.read().decode()
                return res.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")


@pytest.fixture
def hub():
    assert BIN, "SWITCHBOARD_BIN must name the switchboard binary"
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([BIN, "serve", "--port", "0", "--data-dir", d], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline().strip()
        assert line.startswith("switchboard listening on "), line
        yield Hub(line.removeprefix("switchboard listening on "), d, proc)
        proc.terminate()
        proc.wait(timeout=20)


@asynccontextmanager
async def mcp_session(hub: Hub, transport: str, notifications: list):
    async def on_message(msg):
        notifications.append(msg)

    if transport == "stdio":
        params = StdioServerParameters(command=BIN, args=["--data-dir", hub.data_dir, "mcp", "--hub", hub.url], env=dict(os.environ, RUST_LOG="warn"))
        with open(os.path.join(hub.data_dir, "bridge.log"), "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as s:
                    await s.initialize()
                    yield s
    else:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300)) as hc:
            async with streamable_http_client(hub.url + "/mcp", http_client=hc) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as s:
                    await s.initialize()
                    yield s
