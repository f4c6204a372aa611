"""Fixtures: a real `switchboard serve` on 127.0.0.1:0 in a temp dir (`hub`, or `hub_with(*flags)` for extra
flags such as `--require-token`), and MCP client sessions over stdio (`switchboard mcp`) and Streamable HTTP
(`/mcp`, optionally with extra HTTP headers such as `Authorization`), made with the Python `mcp` SDK."""
import gc
import hashlib
import json
import os
import subprocess
import tempfile
import urllib.request
from contextlib import ExitStack, asynccontextmanager, contextmanager

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

    @property
    def token(self) -> str:
        """The hub token from `<data dir>/token`."""
        with open(os.path.join(self.data_dir, "token")) as f:
            return f.read().strip()

    def rest(self, method: str, path: str, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                text = res.read().decode()
                return res.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")


def store_args(data_dir: str) -> list[str]:
    """The suite's PostgreSQL pass (SWITCHBOARD_TEST_STORE=postgres://…, set by scripts/test.sh): `--store` naming a
    database of this data dir's own. Without the variable: nothing, and the hub keeps its SQLite file."""
    base = os.environ.get("SWITCHBOARD_TEST_STORE")
    if not base:
        return []
    name = hashlib.sha256(data_dir.encode()).hexdigest()[:16]
    return ["--store", f"{base.rstrip('/')}/sb_{name}"]


@contextmanager
def running_hub(*flags: str):
    """Runs `switchboard serve --port 0` with `flags` in a fresh data dir until the block ends."""
    assert BIN, "SWITCHBOARD_BIN must name the switchboard binary"
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([BIN, "serve", "--port", "0", "--data-dir", d, *store_args(d), *flags], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("switchboard listening on "), line
            yield Hub(line.removeprefix("switchboard listening on "), d, proc)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture
def hub():
    with running_hub() as h:
        yield h


@pytest.fixture
def hub_with():
    """A factory: `hub_with("--require-token")` starts a hub with those flags, stopped when the test ends."""
    with ExitStack() as stack:
        yield lambda *flags: stack.enter_context(running_hub(*flags))


def text(result) -> str:
    """The text of a tool result (a tool error's message)."""
    return " ".join(c.text for c in result.content if getattr(c, "text", None))


async def ok(s, tool, args=None):
    """Calls a tool that must succeed; returns its structured result."""
    r = await s.call_tool(tool, args or {})
    assert not r.is_error, f"{tool}: {text(r)}"
    return r.structured_content


@asynccontextmanager
async def mcp_session(hub: Hub, transport: str, notifications: list, headers: dict | None = None):
    """An initialized MCP `ClientSession`. `headers` (HTTP only) go on every request, e.g. `Authorization`."""
    async def on_message(msg):
        notifications.append(msg)

    if transport == "stdio":
        assert not headers, "headers apply to the HTTP transport only"
        params = StdioServerParameters(command=BIN, args=["--data-dir", hub.data_dir, "mcp", "--hub", hub.url], env=dict(os.environ, RUST_LOG="warn"))
        with open(os.path.join(hub.data_dir, "bridge.log"), "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as s:
                    await s.initialize()
                    yield s
    else:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300), headers=headers or {}) as hc:
            async with streamable_http_client(hub.url + "/mcp", http_client=hc) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as s:
                    await s.initialize()
                    yield s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A failed MCP test leaves async generators and task groups for the garbage collector; when their finalizers run
    # in the middle of pytest formatting the failure (which parses source with `ast`), CPython 3.11.7 raises
    # "SystemError: AST constructor recursion depth mismatch" and pytest stops with INTERNALERROR. Collecting first
    # keeps failures readable.
    gc.collect()
    yield
