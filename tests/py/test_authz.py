"""Authorization over MCP (SPEC §8, §10: one rule for every transport), with the Python `mcp` SDK over Streamable
HTTP (`/mcp`) against the real binary. It proves that the leaks /mcp used to have are closed:

- with `--require-token`, a JWT limited to `chat:*` can neither create, change nor delete agents nor publish outside
  `chat:*` (forbidden tool errors whose text is the JSON error body, and nothing changes in the hub), reads only
  `chat:*` plus `global` and `user:<sub>` (tools, resources and resource notifications), and may not read agents;
  a JWT signed with another key, or no credentials at all, is refused with HTTP 401 at connect; the hub token
  itself can do everything;
- without `--require-token`, an anonymous session can neither publish to nor read `private-`/`presence-`
  channels, while a session that presents the token can;
- MCP sessions count against `--max-connections` like WebSocket and SSE clients (over it, an `initialize` gets
  HTTP 503 with the error body), and give their slot back when they end."""
import base64
import hashlib
import hmac
import http.client
import json
import socket
import urllib.parse

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from conftest import mcp_session, ok, text

pytestmark = pytest.mark.anyio

# The token from the leak report: subscribe to and publish on chat:* only.
CHAT = {"channels": ["chat:*"], "publish": ["chat:*"]}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
WS_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
              "Sec-WebSocket-Version": "13"}


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims: dict, key: str) -> str:
    """An HS256 JWT of `claims` signed with `key`."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def forbidden(s, tool, args) -> str:
    """Calls a tool that must be refused: a tool error whose text is the JSON body `{"error":{"code":"forbidden"}}`,
    after which the session goes on. Returns the error message."""
    r = await s.call_tool(tool, args)
    assert r.is_error, f"{tool}({args}) should be forbidden: {r}"
    body = json.loads(text(r))
    assert body["error"]["code"] == "forbidden", body
    assert body["error"]["message"], body
    assert (await ok(s, "hub_status"))["version"]
    return body["error"]["message"]


def channels(page) -> set:
    return {e["channel"] for e in page["events"]}


def owner_publish(hub, channel: str, event: str = "e", data=None) -> int:
    status, body = hub.rest("POST", "/api/events", {"channel": channel, "event": event, "data": data},
                            headers=bearer(hub.token))
    assert status == 202, (status, body)
    return body["seq"]


def owner_events(hub) -> list:
    status, body = hub.rest("GET", "/api/events?limit=1000", headers=bearer(hub.token))
    assert status == 200, (status, body)
    return body["events"]


def raw(hub, method: str, path: str, headers: dict, body: bytes | None = None):
    """One plain HTTP request: (status, parsed JSON body or None). A 101 answer is closed at once."""
    u = urllib.parse.urlsplit(hub.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        if r.status == 101:
            return 101, None
        data = r.read()
        is_json = r.getheader("content-type", "").startswith("application/json")
        return r.status, (json.loads(data) if is_json and data else None)
    finally:
        c.close()


def raw_initialize(hub, headers: dict):
    return raw(hub, "POST", "/mcp", {"content-type": "application/json",
                                     "accept": "application/json, text/event-stream", **headers},
               json.dumps(INIT).encode())


def leaves(exc: BaseException) -> list:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]


def mcp_error(excinfo) -> MCPError:
    errors = [e for e in leaves(excinfo.value) if isinstance(e, MCPError)]
    assert errors, f"no MCPError in {excinfo.value!r}"
    return errors[0]


async def health_connections(hub, want: int) -> None:
    """Waits (up to 5 s) for `/health` to count `want` connections."""
    with anyio.fail_after(5):
        while True:
            status, body = hub.rest("GET", "/health")
            assert status == 200
            if body["connections"] == want:
                return
            await anyio.sleep(0.02)


# --- --require-token: a JWT limited to chat:* ------------------------------------------------------------------


async def test_jwt_cannot_create_change_or_delete_agents(hub_with):
    hub = hub_with("--require-token")
    status, agent = hub.rest("POST", "/api/agents", {"name": "owned"}, headers=bearer(hub.token))
    assert status == 201, (status, agent)
    async with mcp_session(hub, "http", [], headers=bearer(jwt(CHAT, hub.token))) as s:
        assert "agent:" in await forbidden(s, "create_agent", {"name": "intruder"})
        assert "agent:" in await forbidden(s, "update_agent", {"id": agent["id"], "description": "changed"})
        assert "agent:" in await forbidden(s, "update_agent", {"id": agent["id"], "expected_version": 1, "status": "busy"})
        assert "agent:" in await forbidden(s, "delete_agent", {"id": agent["id"]})
    # Nothing changed: the one agent is there, untouched.
    status, page = hub.rest("GET", "/api/agents", headers=bearer(hub.token))
    assert status == 200
    assert page["agents"] == [agent], page
    assert not any(e["channel"].startswith("agent:") and e["event"] != "agent.created" for e in owner_events(hub))


async def test_jwt_publishes_only_on_its_channels(hub_with):
    hub = hub_with("--require-token")
    async with mcp_session(hub, "http", [], headers=bearer(jwt(CHAT, hub.token))) as s:
        for channel in ["global", "project:1", "private-team", "user:someone", "agent:x", "chatter"]:
            assert channel in await forbidden(s, "publish_event", {"channel": channel, "event": "sneak"})
        await forbidden(s, "ask_user", {"question": "?", "channel": "project:1", "timeout_s": 1})
        seq = (await ok(s, "publish_event", {"channel": "chat:1", "event": "hello", "data": {"n": 1}}))["seq"]
    # Only the allowed publish reached the log.
    assert [(e["seq"], e["channel"], e["event"], e["source"]) for e in owner_events(hub)] == [(seq, "chat:1", "hello", "mcp")]


async def test_jwt_reads_only_its_channels(hub_with):
    hub = hub_with("--require-token")
    status, agent = hub.rest("POST", "/api/agents", {"name": "hidden"}, headers=bearer(hub.token))
    assert status == 201
    for channel in ["project:1", "private-team", "user:bob", "global", "user:alice", "chat:2"]:
        owner_publish(hub, channel)
    visible = {"chat:1", "chat:2", "global", "user:alice"}
    async with mcp_session(hub, "http", [], headers=bearer(jwt({**CHAT, "sub": "alice"}, hub.token))) as s:
        await ok(s, "publish_event", {"channel": "chat:1", "event": "mine"})
        await forbidden(s, "publish_event", {"channel": "project:2", "event": "sneak"})
        owner_publish(hub, "project:1", "after")  # the token holder goes on publishing elsewhere

        assert channels(await ok(s, "recent_events")) == visible
        assert channels(await ok(s, "recent_events", {"limit": 1000, "since": 0})) == visible
        assert channels(await ok(s, "recent_events", {"channel": "chat:*"})) == {"chat:1", "chat:2"}
        assert channels(await ok(s, "recent_events", {"channel": "user:alice"})) == {"user:alice"}
        for pattern in ["*", "project:*", "project:1", "private-team", "user:bob", "agent:*"]:
            assert pattern in await forbidden(s, "recent_events", {"channel": pattern})
        await forbidden(s, "wait_for_event", {"channel": "project:1", "timeout_s": 1})

        # Agents need read access to agent:*.
        assert "agent:" in await forbidden(s, "list_agents", {})
        await forbidden(s, "get_agent", {"id": agent["id"]})
        for uri in ["switchboard://agents", f"switchboard://agents/{agent['id']}"]:
            with pytest.raises(MCPError) as e:
                await s.read_resource(uri)
            assert e.value.data["error"]["code"] == "forbidden", e.value.error
        listed = {str(r.uri) for r in (await s.list_resources()).resources}
        assert not any(u.startswith("switchboard://agents/") for u in listed), listed

        events = json.loads((await s.read_resource("switchboard://events")).contents[0].text)
        assert channels(events) == visible
    # The hidden events really are in the log.
    assert {"project:1", "private-team", "user:bob", f"agent:{agent['id']}"} <= {e["channel"] for e in owner_events(hub)}


async def test_foreign_jwt_and_missing_credentials_get_401(hub_with):
    hub = hub_with("--require-token")
    foreign = jwt(CHAT, "not-the-hub-token")
    for headers in [bearer(foreign), bearer("0" * 64), {}]:
        status, body = raw_initialize(hub, headers)
        assert status == 401, (headers, status, body)
        assert body["error"]["code"] == "unauthorized", body
    # The SDK's initialize fails too.
    with pytest.raises(BaseException) as e:
        async with mcp_session(hub, "http", [], headers=bearer(foreign)):
            pass
    assert mcp_error(e)
    # Control: the same request with the token, or a JWT signed with it, is accepted.
    assert raw_initialize(hub, bearer(hub.token))[0] == 200
    assert raw_initialize(hub, bearer(jwt(CHAT, hub.token)))[0] == 200


async def test_token_holder_may_do_everything(hub_with):
    hub = hub_with("--require-token")
    async with mcp_session(hub, "http", [], headers=bearer(hub.token)) as s:
        a = await ok(s, "create_agent", {"name": "mine"})
        assert (await ok(s, "update_agent", {"id": a["id"], "expected_version": 1, "status": "busy"}))["version"] == 2
        assert [x["id"] for x in (await ok(s, "list_agents"))["agents"]] == [a["id"]]
        assert (await ok(s, "get_agent", {"id": a["id"]}))["status"] == "busy"
        for channel in ["global", "project:1", "private-team", "chat:1"]:
            await ok(s, "publish_event", {"channel": channel, "event": "e"})
        everything = {"global", "project:1", "private-team", "chat:1", f"agent:{a['id']}"}
        assert channels(await ok(s, "recent_events")) == everything
        assert channels(await ok(s, "recent_events", {"channel": "*"})) == everything
        assert channels(await ok(s, "recent_events", {"channel": "private-team"})) == {"private-team"}
        agents = json.loads((await s.read_resource("switchboard://agents")).contents[0].text)
        assert [x["id"] for x in agents["agents"]] == [a["id"]]
        events = json.loads((await s.read_resource("switchboard://events")).contents[0].text)
        assert channels(events) == everything
        assert await ok(s, "delete_agent", {"id": a["id"]}) == {"id": a["id"], "deleted": True}


# --- default mode: anonymous sessions and private channels --------------------------------------------------------


async def test_anonymous_cannot_publish_to_private_channels(hub):
    async with mcp_session(hub, "http", []) as s:
        for channel in ["private-team", "presence-room"]:
            assert channel in await forbidden(s, "publish_event", {"channel": channel, "event": "sneak"})
        await forbidden(s, "ask_user", {"question": "?", "channel": "private-team", "timeout_s": 1})
        seq = (await ok(s, "publish_event", {"channel": "lobby", "event": "hi"}))["seq"]
    assert [(e["seq"], e["channel"]) for e in owner_events(hub)] == [(seq, "lobby")]


async def test_anonymous_does_not_read_private_channels(hub):
    owner_publish(hub, "private-team", "secret", {"s": 1})
    owner_publish(hub, "presence-room", "secret")
    owner_publish(hub, "lobby", "hi")
    async with mcp_session(hub, "http", []) as s:
        assert channels(await ok(s, "recent_events")) == {"lobby"}
        assert channels(await ok(s, "recent_events", {"channel": "*", "since": 0})) == {"lobby"}
        for pattern in ["private-team", "presence-room", "private-*", "presence-*"]:
            assert pattern in await forbidden(s, "recent_events", {"channel": pattern})
        await forbidden(s, "wait_for_event", {"channel": "private-team", "since": 0, "timeout_s": 1})
        events = json.loads((await s.read_resource("switchboard://events")).contents[0].text)
        assert channels(events) == {"lobby"}
    # A session that presents the token sees them.
    async with mcp_session(hub, "http", [], headers=bearer(hub.token)) as s:
        assert channels(await ok(s, "recent_events")) == {"private-team", "presence-room", "lobby"}
        team = await ok(s, "recent_events", {"channel": "private-team"})
        assert [(e["event"], e["data"]) for e in team["events"]] == [("secret", {"s": 1})]
        events = json.loads((await s.read_resource("switchboard://events")).contents[0].text)
        assert channels(events) == {"private-team", "presence-room", "lobby"}


@pytest.mark.parametrize("who", ["anonymous", "jwt"])
async def test_resource_notifications_follow_the_callers_reach(hub_with, who):
    """A subscriber to switchboard://events is told about changes on channels it may read only. The hub sends one
    session's notifications in seq order, so once the notification for the agent change (published last) is in,
    any for the hidden events before it would be in too."""
    if who == "anonymous":
        hub, headers, hidden = hub_with(), {}, ["private-team", "presence-room"]
    else:
        hub = hub_with("--require-token")
        claims = {"sub": "alice", "channels": ["chat:*", "agent:*"], "publish": ["chat:*"]}
        headers, hidden = bearer(jwt(claims, hub.token)), ["project:1", "private-team", "user:bob"]
    status, agent = hub.rest("POST", "/api/agents", {"name": "barrier"}, headers=bearer(hub.token))
    assert status == 201
    agent_uri = f"switchboard://agents/{agent['id']}"
    seen = []

    def updated(uri):
        return [m for m in seen if isinstance(m, types.ResourceUpdatedNotification) and str(m.params.uri) == uri]

    async with mcp_session(hub, "http", seen, headers=headers) as s:
        with pytest.warns(Warning):  # the SDK marks resources/subscribe as the 2025 way
            await s.subscribe_resource("switchboard://events")
            await s.subscribe_resource(agent_uri)
        for channel in hidden * 3:
            owner_publish(hub, channel)
        status, _ = hub.rest("PATCH", f"/api/agents/{agent['id']}", {"status": "running"}, headers=bearer(hub.token))
        assert status == 200
        with anyio.fail_after(10):
            while not updated(agent_uri):
                await anyio.sleep(0.02)
        assert len(updated("switchboard://events")) == 1, seen


# --- the connection cap ----------------------------------------------------------------------------------------------


async def test_mcp_sessions_count_against_the_connection_cap(hub_with):
    hub = hub_with("--max-connections", "1")
    await health_connections(hub, 0)
    async with mcp_session(hub, "http", []) as first:
        assert (await ok(first, "hub_status"))["connections"] == 1
        await health_connections(hub, 1)
        # A second MCP session cannot initialize: HTTP 503 with the error body, as for WebSocket and SSE.
        status, body = raw_initialize(hub, {})
        assert status == 503, (status, body)
        assert body["error"]["code"] == "too_many_connections", body
        with pytest.raises(BaseException) as e:
            async with mcp_session(hub, "http", []):
                pass
        assert mcp_error(e)
        # Nor can a WebSocket or SSE client connect.
        for path in ["/ws", "/ws/named-client"]:
            status, body = raw(hub, "GET", path, WS_UPGRADE)
            assert status == 503, (path, status, body)
            assert body["error"]["code"] == "too_many_connections", body
        status, body = hub.rest("GET", "/events")
        assert status == 503, (status, body)
        assert body["error"]["code"] == "too_many_connections", body
        # The first session is unharmed.
        assert (await ok(first, "hub_status"))["connections"] == 1
    # Closing it gives the slot back: a new MCP session initializes, then (once that one is gone) a WebSocket.
    await health_connections(hub, 0)
    async with mcp_session(hub, "http", []) as again:
        assert (await ok(again, "hub_status"))["connections"] == 1
        assert raw(hub, "GET", "/ws", WS_UPGRADE)[0] == 503
    await health_connections(hub, 0)
    assert raw(hub, "GET", "/ws", WS_UPGRADE)[0] == 101


async def test_an_open_websocket_at_the_cap_refuses_mcp(hub_with):
    hub = hub_with("--max-connections", "1")
    u = urllib.parse.urlsplit(hub.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as ws:
        lines = ["GET /ws HTTP/1.1", f"Host: {u.netloc}", *(f"{k}: {v}" for k, v in WS_UPGRADE.items())]
        ws.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = ws.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        await health_connections(hub, 1)
        status, body = raw_initialize(hub, {})
        assert (status, body["error"]["code"]) == (503, "too_many_connections"), body
        with pytest.raises(BaseException) as e:
            async with mcp_session(hub, "http", []):
                pass
        assert mcp_error(e)
    await health_connections(hub, 0)
    async with mcp_session(hub, "http", []) as s:
        assert (await ok(s, "hub_status"))["connections"] == 1
