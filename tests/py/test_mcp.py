"""The Python MCP SDK against the real binary, over stdio (`switchboard mcp`) and Streamable HTTP (`/mcp`):
tool schemas, every tool, tool errors that leave the session usable, and resource notifications caused over REST."""
import threading
import time

import anyio
import mcp_types as types
import pytest

from conftest import mcp_session, ok, text

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("transport", ["stdio", "http"])]

TOOLS = {"ask_user", "create_agent", "delete_agent", "get_agent", "hub_status", "list_agents", "publish_event",
         "recent_events", "update_agent", "wait_for_event"}


async def fails(s, tool, args) -> str:
    r = await s.call_tool(tool, args)
    assert r.is_error, f"{tool} should fail: {r}"
    # The session goes on.
    assert (await ok(s, "hub_status"))["version"]
    return text(r)


async def test_tools_have_schemas_and_annotations(hub, transport):
    async with mcp_session(hub, transport, []) as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == TOOLS
        for t in tools.values():
            assert t.input_schema["type"] == "object", t.name
            assert t.output_schema and t.output_schema["type"] == "object", t.name
            assert t.annotations is not None, t.name
        assert tools["get_agent"].annotations.read_only_hint is True
        assert tools["delete_agent"].annotations.destructive_hint is True
        assert tools["create_agent"].input_schema["required"] == ["name"]
        assert "version" in tools["update_agent"].output_schema["properties"]


async def test_every_tool(hub, transport):
    async with mcp_session(hub, transport, []) as s:
        a = await ok(s, "create_agent", {"name": "py", "tags": ["sdk"]})
        assert a["version"] == 1 and a["status"] == "idle"
        assert await ok(s, "get_agent", {"id": a["id"]}) == a
        u = await ok(s, "update_agent", {"id": a["id"], "expected_version": 1, "description": "from python"})
        assert u["version"] == 2 and u["description"] == "from python"
        assert [x["id"] for x in (await ok(s, "list_agents", {"q": "py"}))["agents"]] == [a["id"]]
        seq = (await ok(s, "publish_event", {"channel": "py", "event": "hello", "data": [1, 2]}))["seq"]
        recent = await ok(s, "recent_events", {"channel": "py"})
        assert recent["events"][-1]["seq"] == seq and recent["events"][-1]["data"] == [1, 2]
        w = await ok(s, "wait_for_event", {"channel": "py", "since": seq - 1, "timeout_s": 5})
        assert w["event"]["event"] == "hello"
        assert await ok(s, "wait_for_event", {"channel": "silence", "timeout_s": 1}) == {"timed_out": True}

        def answer():
            for _ in range(500):
                _, body = hub.rest("GET", "/api/questions")
                if body["questions"]:
                    qid = body["questions"][0]["question_id"]
                    status, _ = hub.rest("POST", f"/api/questions/{qid}/answer", {"answer": {"choice": 2}})
                    assert status == 202
                    return
                time.sleep(0.02)

        t = threading.Thread(target=answer)
        t.start()
        assert await ok(s, "ask_user", {"question": "Pick one", "timeout_s": 20}) == {"answer": {"choice": 2}, "answered_by": "rest"}
        t.join()
        status = await ok(s, "hub_status")
        assert status["url"] == hub.url and status["last_seq"] >= seq
        assert await ok(s, "delete_agent", {"id": a["id"]}) == {"id": a["id"], "deleted": True}


async def test_errors_are_tool_errors(hub, transport):
    async with mcp_session(hub, transport, []) as s:
        assert "not_found" in await fails(s, "get_agent", {"id": "missing"})
        a = await ok(s, "create_agent", {"name": "conflicted"})
        await ok(s, "update_agent", {"id": a["id"], "status": "busy"})
        assert "version_conflict" in await fails(s, "update_agent", {"id": a["id"], "expected_version": 1, "status": "idle"})
        assert "status" in await fails(s, "update_agent", {"id": a["id"], "status": "Not Lowercase"})
        assert "timed_out" in await fails(s, "ask_user", {"question": "Hello?", "timeout_s": 1})
        assert await fails(s, "create_agent", {"name": 12})


async def test_rest_changes_reach_resource_subscribers(hub, transport):
    seen = []
    async with mcp_session(hub, transport, seen) as s:
        a = await ok(s, "create_agent", {"name": "watched"})
        uri = f"switchboard://agents/{a['id']}"
        with pytest.warns(Warning):  # the SDK marks resources/subscribe as the 2025 way
            await s.subscribe_resource(uri)
        status, _ = hub.rest("PATCH", f"/api/agents/{a['id']}", {"status": "running"})
        assert status == 200
        with anyio.fail_after(10):
            while not any(isinstance(m, types.ResourceUpdatedNotification) and str(m.params.uri) == uri for m in seen):
                await anyio.sleep(0.02)
        read = await s.read_resource(uri)
        assert '"running"' in read.contents[0].text
