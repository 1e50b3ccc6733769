"""The agent's routing on the real local model: escalation to an OpenAI-compatible endpoint on
loopback when confidence is low and the network is allowed; fallback and notice when it fails."""

from __future__ import annotations

import json

import pytest

from edgeagent.agent.loop import Agent
from tests.integration.remote_server import (
    canned_server,
    chat_completion,
    closed_port_url,
    escalating_settings,
    json_body,
)

pytestmark = pytest.mark.model
KEY = "sk-test-SECRET-4242-never-stored"


def settings_for(tmp_path, url: str, **extra):
    return escalating_settings(tmp_path, url, KEY, **extra)


def remote_calculator(seen):
    if seen.count == 1:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {
                        "name": "calculator",
                        "arguments": json.dumps({"expression": "6*7"}),
                    },
                }
            ],
        }
    else:
        # a remote that echoes the caller's key: it reaches the answer the store is given
        message = {"role": "assistant", "content": f"The answer is 42. (your key: {KEY})"}
    return json_body(chat_completion(message))


def test_low_confidence_escalates_and_remote_calls_are_validated_and_run(smollm_model, tmp_path):
    with canned_server(remote_calculator) as (url, seen):
        settings = settings_for(tmp_path, url)
        agent = Agent(settings, model=smollm_model)
        result = agent.run("What is six times seven?")
        agent.close()
    data = result.to_dict()
    assert data["route"] == "remote"
    calc = [c for c in data["calls"] if c["name"] == "calculator"]
    assert calc and calc[0]["route"] == "remote" and calc[0]["status"] == "ok"
    assert calc[0]["result"].strip() == "42"
    assert seen.count >= 1
    # tools go out in OpenAI format; the key is sent but never stored
    assert seen.bodies[0]["tools"]
    assert (
        seen.headers[0].get("authorization", seen.headers[0].get("Authorization"))
        == f"Bearer {KEY}"
    )
    # the remote echoed the key: the client scrubs it from the reply before anyone sees it
    assert KEY not in result.answer and "(your key: ***)" in result.answer
    for suffix in ("", "-wal"):
        path = settings.db_path.with_name(settings.db_path.name + suffix)
        if path.exists():
            assert KEY.encode() not in path.read_bytes()
    # (a key the user types is scrubbed by the store: tests/integration/test_claims.py)


def test_remote_down_uses_the_local_result_and_says_so(smollm_model, tmp_path):
    settings = settings_for(tmp_path, closed_port_url())
    agent = Agent(settings, model=smollm_model, tools=[])
    result = agent.run("Say hi.")
    agent.close()
    assert result.route.route == "local_fallback"
    assert result.answer
    assert any("remote" in n.lower() for n in result.notices)


def test_offline_never_consults_the_remote(smollm_model, tmp_path):
    with canned_server(remote_calculator) as (url, seen):
        settings = settings_for(tmp_path, url, allow_network=False)
        agent = Agent(settings, model=smollm_model, tools=[])
        result = agent.run("Say hi.")
        agent.close()
    assert seen.count == 0
    assert result.route.route == "local"
    assert result.route.reason.startswith("network off")


CANARY = "CANARY-PRIVATE-5531"


def test_local_only_history_is_marked_and_never_sent(smollm_model, tmp_path):
    from edgeagent.agent.result import AgentResult
    from edgeagent.agent.router import remote_messages
    from edgeagent.tools.registry import tool_from_function
    from edgeagent.types import Message, ToolCall

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    def read_private_note(topic: str) -> str:
        """Read the user's private note on a topic."""
        return f"{CANARY} ({topic})"

    tools = [
        tool_from_function(get_weather),
        tool_from_function(read_private_note, local_only=True),
    ]
    agent = Agent(
        settings_for(tmp_path, closed_port_url()), model=smollm_model, tools=tools, store=False
    )
    agent.history.append(Message("user", "Weather in Oslo, and my note?"))
    calls = [
        ToolCall("get_weather", {"city": "Oslo"}),
        ToolCall("read_private_note", {"topic": "x"}),
    ]
    results = agent.executor.run_many(calls)
    agent._feed_back("r1", None, calls, results, AgentResult("r1", ""))
    agent._append("assistant", f"Sunny; your note says {CANARY}")  # written after seeing it
    agent.close()
    sent = remote_messages(agent.history, agent.registry)
    text = json.dumps(sent)
    assert CANARY not in text and "read_private_note" not in text
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert json.loads(sent[2]["content"]) == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert "sunny in Oslo" in sent[3]["content"]
    # the local model still sees everything
    assert CANARY in json.dumps([m.content for m in agent.history]) and len(agent.history) == 5
    assert [m.hidden for m in agent.history] == [False, False, False, True, True]
