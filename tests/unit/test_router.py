"""Router decisions, local-only filtering and fallback behaviour (no network involved)."""

from __future__ import annotations

import pytest

from edgeagent.agent.router import (
    HIDE_KEY,
    REMOTE_CONTENT_KEY,
    check_remote_calls,
    decide_route,
    escalate,
    rejection,
    remote_messages,
    route_request,
    screen_remote_calls,
    tools_for_remote,
)
from edgeagent.config import load_settings
from edgeagent.errors import RemoteError
from edgeagent.runtime.remote import RemoteReply, normalize_base_url, redact_url
from edgeagent.tools.registry import ToolRegistry, tool, tool_from_openai
from edgeagent.types import RouteDecision, ToolCall

URL = "http://127.0.0.1:9/v1"


def settings(**kw):
    values = {"allow_network": True, "remote_url": URL, "confidence_threshold": 0.5}
    values.update(kw)
    return load_settings(**values)


@pytest.mark.parametrize(
    ("score", "valid", "overrides", "route", "reason_part"),
    [
        (0.9, True, {}, "local", "confidence 0.90 >= threshold 0.50"),
        (0.5, True, {}, "local", ">= threshold 0.50"),
        (0.49, True, {}, "remote", "confidence 0.49 < threshold 0.50"),
        (0.0, True, {}, "remote", "< threshold"),
        (0.9, False, {}, "remote", "local result invalid (confidence 0.90, threshold 0.50)"),
        (None, False, {}, "remote", "local result invalid (confidence none"),
        (None, True, {}, "local", "without a confidence score"),
        (0.1, True, {"allow_network": False}, "local", "network off"),
        (0.1, False, {"offline": True}, "local", "network off"),
        (0.9, True, {"allow_network": False}, "local", "network off"),
        (0.1, True, {"remote_url": ""}, "local", "set EDGEAGENT_REMOTE_URL"),
        (0.1, False, {"remote_url": "   "}, "local", "no remote configured"),
        (0.7, True, {"confidence_threshold": 0.8}, "remote", "0.70 < threshold 0.80"),
        (0.7, True, {"confidence_threshold": 0.6}, "local", "0.70 >= threshold 0.60"),
        (0.0, True, {"confidence_threshold": 0.0}, "local", ">= threshold 0.00"),
        (0.99, True, {"confidence_threshold": 1.0}, "remote", "< threshold 1.00"),
    ],
)
def test_decision_table(score, valid, overrides, route, reason_part):
    s = settings(**overrides)
    decision = decide_route(score, valid=valid, settings=s)
    assert decision.route == route
    assert reason_part in decision.reason
    assert decision.score == score
    assert decision.threshold == s.confidence_threshold
    if overrides.get("allow_network") is False or overrides.get("offline"):
        assert decision.reason.startswith("network off")


def test_default_settings_are_offline():
    s = load_settings(remote_url=URL)
    assert not s.network_allowed
    assert decide_route(0.0, valid=False, settings=s).route == "local"


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return city


@tool(local_only=True)
def read_diary(day: str) -> str:
    """Read the private diary."""
    return day


OPENAI_TOOL = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}


def test_local_only_tools_are_filtered():
    reg = ToolRegistry([get_weather, read_diary, tool_from_openai(OPENAI_TOOL)])
    names = [t["function"]["name"] for t in tools_for_remote(reg)]
    assert names == ["get_weather", "search"]
    assert [t["function"]["name"] for t in tools_for_remote([read_diary, get_weather])] == [
        "get_weather"
    ]
    assert tools_for_remote([read_diary]) == []
    private = tool_from_openai(OPENAI_TOOL, local_only=True)
    assert tools_for_remote([private, OPENAI_TOOL]) == [tool_from_openai(OPENAI_TOOL).to_openai()]


def test_check_remote_calls_marks_unknown_and_local_only():
    calls = [
        ToolCall("get_weather", {"city": "x"}, route="remote"),
        ToolCall("read_diary", {"day": "mon"}, route="remote"),
        ToolCall("format_disk", {}, route="remote"),
        ToolCall("get_weather", {}, route="remote", status="invalid", error="bad JSON"),
    ]
    check_remote_calls(calls, {"get_weather"}, {"read_diary"})
    assert [c.status for c in calls] == ["proposed", "invalid", "invalid", "invalid"]
    # a local-only tool is refused like an unknown one: the remote must not learn it exists
    assert (
        calls[1].error
        == "tool 'read_diary' was not offered to the remote model; offered: get_weather"
    )
    assert (
        calls[2].error
        == "tool 'format_disk' was not offered to the remote model; offered: get_weather"
    )
    assert calls[3].error == "bad JSON"
    # a local-only name is refused even if a caller lists it as offered
    (again,) = check_remote_calls([ToolCall("read_diary", {})], {"read_diary"}, {"read_diary"})
    assert again.status == "invalid"


@tool
def list_dir(path: str = ".") -> str:
    """List a folder."""
    return path


def boundary_registry() -> ToolRegistry:
    return ToolRegistry([get_weather, read_diary, list_dir])


def test_screen_rejects_by_name_before_validation():
    calls = [
        ToolCall("get_weather", {"city": "Oslo"}, route="remote"),
        ToolCall("read_diary", {"day": "mon"}, route="remote"),
        ToolCall("format_disk", {}, route="remote"),
        ToolCall("get_weather", {"city": 3}, route="remote"),
    ]
    validations = screen_remote_calls(calls, boundary_registry())
    assert [v.valid for v in validations] == [True, False, False, False]
    assert [c.status for c in calls] == ["proposed", "invalid", "invalid", "invalid"]
    assert validations[1].error == calls[1].error
    assert not validations[1].known_tool  # a local-only tool is not one the remote may know
    offered = "was not offered to the remote model; offered: get_weather, list_dir"
    assert calls[1].error == f"tool 'read_diary' {offered}"  # same as an unknown tool
    assert calls[2].error == f"tool 'format_disk' {offered}"
    assert validations[3].known_tool and not validations[3].schema_valid
    assert all(c.route == "remote" for c in calls)


def test_screen_keeps_unparseable_arguments_invalid_and_never_fills_defaults():
    # remote_parse gives such a call arguments={} and status="invalid"; list_dir's defaults
    # would make {} valid, so the call must never reach validation
    broken = ToolCall(
        "list_dir",
        {},
        status="invalid",
        error="arguments are not valid JSON (Expecting value): '{\"path\": '",
        route="remote",
    )
    (validation,) = screen_remote_calls([broken], boundary_registry())
    assert not validation.valid
    assert broken.status == "invalid" and broken.arguments == {}
    assert broken.error.startswith("arguments are not valid JSON")
    assert validation.error == broken.error
    # a well-formed empty object is a real call and does get the default
    fine = ToolCall("list_dir", {}, route="remote")
    (validation,) = screen_remote_calls([fine], boundary_registry())
    assert validation.valid and fine.arguments == {"path": "."}


def test_screen_rejects_non_object_arguments_and_nameless_invalid_calls():
    odd = ToolCall("get_weather", ["Oslo"], route="remote")  # type: ignore[arg-type]
    nameless = ToolCall("", {}, status="invalid", route="remote")
    validations = screen_remote_calls([odd, nameless], boundary_registry())
    assert [v.valid for v in validations] == [False, False]
    assert "JSON object" in odd.error
    assert nameless.error == "the remote call was malformed"


def test_rejection_is_none_only_for_offered_well_formed_calls():
    offered = {"get_weather"}
    assert rejection(ToolCall("get_weather", {"city": "x"}), offered) is None
    assert "not offered" in rejection(ToolCall("read_diary", {}), offered)
    broken = ToolCall("get_weather", {}, status="invalid", error="bad JSON")
    assert rejection(broken, offered) == "bad JSON"


def test_remote_messages_hide_local_only_tools_and_marked_history():
    history = [
        {"role": "user", "content": "weather in Oslo and my diary?"},
        {"role": "assistant", "content": '{"name":"read_diary","arguments":{}}', HIDE_KEY: True},
        {"role": "tool", "content": "<tool_result>DIARY-CANARY</tool_result>", HIDE_KEY: True},
        {
            "role": "assistant",
            "content": '[{"name":"read_diary"},{"name":"get_weather"}]',
            REMOTE_CONTENT_KEY: '{"name":"get_weather","arguments":{"city":"Oslo"}}',
        },
        {"role": "assistant", "content": "Your diary says DIARY-CANARY", HIDE_KEY: True},
        {"role": "user", "content": "thanks"},
    ]
    sent = remote_messages(history, boundary_registry())
    text = repr(sent)
    assert "read_diary" not in text and "DIARY-CANARY" not in text
    assert HIDE_KEY not in text and REMOTE_CONTENT_KEY not in text
    assert sent[0]["role"] == "system"
    assert "get_weather" in sent[0]["content"] and "list_dir" in sent[0]["content"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == '{"name":"get_weather","arguments":{"city":"Oslo"}}'
    assert all(set(m) == {"role", "content"} for m in sent)


class StubClient:
    """Records what escalate sends; answers with ``reply`` or raises ``error``."""

    def __init__(self, reply: RemoteReply | None = None, error: Exception | None = None):
        self.reply, self.error, self.sent = reply, error, []

    def chat(self, messages, tools, *, tool_choice="auto", max_tokens=512):
        self.sent.append(tools)
        if self.error:
            raise self.error
        return self.reply


MESSAGES = [{"role": "user", "content": "weather in Oslo?"}]
REMOTE = RouteDecision("remote", 0.2, 0.5, "confidence 0.20 < threshold 0.50")


def test_escalate_sends_only_remote_tools_and_checks_calls():
    reply = RemoteReply(
        text="",
        calls=[
            ToolCall("get_weather", {"city": "Oslo"}, route="remote"),
            ToolCall("read_diary", {"day": "mon"}, route="remote"),
        ],
        prompt_tokens=10,
        output_tokens=4,
        latency_s=0.1,
        model="m",
    )
    client = StubClient(reply)
    local = [ToolCall("get_weather", {"city": "Osl"})]
    outcome = escalate(client, MESSAGES, [get_weather, read_diary], local, REMOTE)
    assert [t["function"]["name"] for t in client.sent[0]] == ["get_weather"]
    assert outcome.route == "remote"
    assert outcome.decision == REMOTE
    assert outcome.reply is reply
    assert [c.status for c in outcome.calls] == ["proposed", "invalid"]
    assert outcome.notice is None


def test_escalate_falls_back_on_remote_error():
    error = RemoteError("remote model returned HTTP 500", hint="check its log")
    local = [ToolCall("get_weather", {"city": "Osl"})]
    outcome = escalate(StubClient(error=error), MESSAGES, [get_weather], local, REMOTE)
    assert outcome.route == "local_fallback"
    assert outcome.decision.route == "local_fallback"
    assert outcome.decision.reason.startswith(REMOTE.reason)
    assert "remote failed: remote model returned HTTP 500" in outcome.decision.reason
    assert outcome.calls == local and outcome.calls[0] is local[0]
    assert "HTTP 500" in outcome.notice and "check its log" in outcome.notice
    assert outcome.error == error.to_dict()


def test_escalate_without_client_falls_back():
    outcome = escalate(None, MESSAGES, [get_weather], [], REMOTE)
    assert outcome.route == "local_fallback"
    assert "EDGEAGENT_REMOTE_URL" in outcome.notice


def test_escalate_does_nothing_for_a_local_decision():
    client = StubClient(error=AssertionError("must not be called"))
    local = RouteDecision("local", 0.9, 0.5, "confident")
    outcome = escalate(client, MESSAGES, [get_weather], [], local)
    assert outcome.route == "local" and client.sent == []


def test_route_request_offline_never_builds_a_client():
    client = StubClient(error=AssertionError("must not be called"))
    s = settings(allow_network=False)
    outcome = route_request(s, MESSAGES, [get_weather], [], 0.0, valid=False, client=client)
    assert outcome.route == "local" and client.sent == []


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://h:8080", "http://h:8080"),
        ("http://h:8080/", "http://h:8080"),
        ("http://h:8080/v1", "http://h:8080"),
        ("http://h:8080/v1/", "http://h:8080"),
        ("http://h:8080/v1/chat/completions", "http://h:8080"),
        ("https://api.example.com/openai/v1", "https://api.example.com/openai"),
    ],
)
def test_normalize_base_url(given, base):
    assert normalize_base_url(given) == base


def test_redact_url_drops_credentials_and_query():
    assert redact_url("http://user:pw@h:81/v1?key=s") == "http://h:81/v1"
