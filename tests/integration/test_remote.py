"""The remote path against real servers on loopback: llama_cpp.server and canned http.servers."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from edgeagent.agent.router import decide_route, escalate, route_request
from edgeagent.config import load_settings
from edgeagent.errors import OfflineError, RemoteError
from edgeagent.runtime.remote import RemoteClient
from edgeagent.tools.registry import ToolRegistry, tool_from_openai
from edgeagent.types import Message, ToolCall
from tests.integration.remote_server import (
    WEATHER,
    canned_server,
    chat_completion,
    closed_port_url,
    json_body,
    llama_server,
    server_extras_missing,
)

KEY = "sk-test-9Qz7-SECRET-4b1e0c"
SECRETS = {
    "type": "function",
    "function": {
        "name": "read_private_notes",
        "description": "Read the user's private notes",
        "parameters": {"type": "object", "properties": {}},
    },
}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def online(url: str | None, **kw):
    """Settings with the network allowed and the remote at ``url``."""
    values = {
        "allow_network": True,
        "remote_url": url,
        "remote_api_key": KEY,
        "remote_timeout_s": 5.0,
        "remote_retries": 1,
        "confidence_threshold": 0.5,
    }
    values.update(kw)
    return load_settings(**values)


def registry() -> ToolRegistry:
    return ToolRegistry([tool_from_openai(WEATHER), tool_from_openai(SECRETS, local_only=True)])


def local_calls() -> list[ToolCall]:
    return [ToolCall(name="get_weather", arguments={"city": "Pari"}, confidence=0.2)]


# --- the real llama_cpp.server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def llama(smollm_path, tmp_path_factory):
    reason = server_extras_missing()
    if reason:
        pytest.skip(reason)
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(smollm_path, log_path) as server:
        yield server


@pytest.mark.model
def test_real_server_chat_with_tool_gives_well_formed_reply(llama):
    forced = {"type": "function", "function": {"name": "get_weather"}}
    with RemoteClient(online(llama.url, remote_timeout_s=30.0)) as client:
        reply = client.chat(MESSAGES, [WEATHER], tool_choice=forced, max_tokens=32)
    assert reply.prompt_tokens > 0
    assert reply.output_tokens > 0
    assert 0 < reply.latency_s < 30
    assert reply.model
    assert reply.attempts == 1
    assert len(reply.calls) >= 1
    for call in reply.calls:
        assert call.route == "remote"
        assert call.name == "get_weather"
        assert isinstance(call.arguments, dict)
        assert call.status in ("proposed", "invalid")
        assert (call.status == "invalid") == (call.error is not None)


@pytest.mark.model
def test_real_server_escalation_below_threshold_goes_remote(llama):
    settings = online(llama.url, remote_timeout_s=60.0)
    mine = local_calls()
    outcome = route_request(settings, MESSAGES, registry(), mine, 0.2, valid=True, max_tokens=32)
    assert outcome.route == "remote", outcome.notice
    assert outcome.decision.route == "remote"
    assert "0.20" in outcome.decision.reason and "0.50" in outcome.decision.reason
    assert outcome.notice is None
    assert outcome.reply is not None and outcome.reply.prompt_tokens > 0
    assert outcome.calls is not mine
    assert all(call.route == "remote" for call in outcome.calls)
    # The 135M model may answer badly, but only get_weather was offered.
    for call in outcome.calls:
        assert call.name == "get_weather" or call.status == "invalid"


def test_remote_not_contacted_when_confident():
    with canned_server(lambda seen: json_body({})) as (url, seen):
        outcome = route_request(online(url), MESSAGES, registry(), local_calls(), 0.9, valid=True)
    assert outcome.route == "local"
    assert seen.count == 0


@pytest.fixture
def socket_spy(monkeypatch):
    """Record (and refuse) every outgoing connection attempt at the socket level."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def record(*args, **kwargs):
        attempts.append(args[1] if len(args) > 1 else args)
        raise ConnectionRefusedError("socket spy: no connection allowed in this test")

    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        return record(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    monkeypatch.setattr(socket, "create_connection", record)
    return attempts


@pytest.mark.model
@pytest.mark.parametrize("flags", [{"allow_network": False}, {"offline": True}])
def test_network_off_never_connects(llama, socket_spy, flags):
    settings = online(llama.url, **flags)
    outcome = route_request(settings, MESSAGES, registry(), local_calls(), 0.0, valid=False)
    assert outcome.route == "local"
    assert outcome.decision.reason.startswith("network off")
    with pytest.raises(OfflineError):
        RemoteClient(settings)
    decision = decide_route(0.0, valid=False, settings=online(llama.url))
    assert decision.route == "remote"
    fallback = escalate(None, MESSAGES, registry(), local_calls(), decision)
    assert fallback.route == "local_fallback"
    assert socket_spy == []
    # The spy does see a connection when the network is allowed (this test can fail).
    outcome = route_request(
        online(llama.url), MESSAGES, registry(), local_calls(), 0.0, valid=False
    )
    assert outcome.route == "local_fallback"
    assert socket_spy


# --- failures: down, slow, garbage -----------------------------------------------------------


def test_server_down_falls_back_with_notice():
    mine = local_calls()
    started = time.perf_counter()
    outcome = route_request(online(closed_port_url()), MESSAGES, registry(), mine, 0.1, valid=True)
    elapsed = time.perf_counter() - started
    assert outcome.route == "local_fallback"
    assert outcome.decision.route == "local_fallback"
    assert outcome.calls == mine
    assert outcome.calls[0] is mine[0]
    assert "cannot connect" in outcome.notice
    assert "after 2 attempts" in outcome.notice
    assert "remote failed" in outcome.decision.reason
    assert outcome.error["type"] == "RemoteError"
    assert elapsed < 3.0


def test_slow_server_times_out_quickly_without_retrying():
    def slow(seen):
        time.sleep(2.0)
        return json_body(chat_completion({"content": "late"}))

    with canned_server(slow) as (url, seen):
        settings = online(url, remote_timeout_s=0.4, remote_retries=2)
        started = time.perf_counter()
        outcome = route_request(settings, MESSAGES, registry(), local_calls(), 0.1, valid=True)
        elapsed = time.perf_counter() - started
        assert outcome.route == "local_fallback"
        assert "did not finish within 0.4 s" in outcome.notice
        assert elapsed < 1.5
        assert seen.count == 1


def test_5xx_is_retried_a_bounded_number_of_times():
    with canned_server(lambda seen: json_body({"error": "overloaded"}, 503)) as (url, seen):
        outcome = route_request(
            online(url, remote_retries=2), MESSAGES, registry(), local_calls(), 0.1, valid=True
        )
    assert outcome.route == "local_fallback"
    assert seen.count == 3
    assert "HTTP 503" in outcome.notice and "overloaded" in outcome.notice
    assert "after 3 attempts" in outcome.notice


def test_5xx_then_success_recovers():
    def flaky(seen):
        if seen.count == 1:
            return json_body({"error": "warming up"}, 502)
        return json_body(chat_completion({"content": "Sunny."}))

    with canned_server(flaky) as (url, seen), RemoteClient(online(url)) as client:
        reply = client.chat(MESSAGES, [WEATHER])
    assert reply.text == "Sunny."
    assert reply.attempts == 2
    assert seen.count == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_4xx_is_never_retried(status):
    body = {"error": {"message": "bad request: tools unsupported"}}
    with canned_server(lambda seen: json_body(body, status)) as (url, seen):
        settings = online(url, remote_retries=3)
        with RemoteClient(settings) as client, pytest.raises(RemoteError) as info:
            client.chat(MESSAGES, [WEATHER])
    assert seen.count == 1
    assert f"HTTP {status}" in info.value.message
    assert "tools unsupported" in info.value.message
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (200, "text/plain", b"not json", "not JSON"),
        (200, "application/json", b'{"foo": 1}', "no choices"),
        (200, "application/json", b"[1, 2]", "not an object"),
        (200, "application/json", b'{"choices": []}', "no choices"),
        (200, "application/json", b'{"choices": [{"index": 0}]}', "without a message"),
        (
            200,
            "application/json",
            b'{"error": {"message": "model not loaded"}}',
            "model not loaded",
        ),
        (200, "application/json", b"", "not JSON"),
    ],
)
def test_garbage_falls_back_with_clear_notice(status, content_type, body, expected):
    with canned_server(lambda seen: (status, {"Content-Type": content_type}, body)) as (url, seen):
        mine = local_calls()
        outcome = route_request(online(url), MESSAGES, registry(), mine, 0.1, valid=True)
    assert outcome.route == "local_fallback"
    assert outcome.calls == mine
    assert expected in outcome.notice
    assert "\n" not in outcome.notice
    assert seen.count == 1


# --- what is sent, and how replies are read --------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_request_shape_and_url_forms(suffix):
    reply_body = chat_completion({"content": "ok"})
    with canned_server(lambda seen: json_body(reply_body)) as (url, seen):
        base = url.removesuffix("/v1") + suffix
        settings = online(base, remote_model="big-model")
        route_request(settings, MESSAGES, registry(), local_calls(), 0.1, valid=True, max_tokens=40)
    assert seen.paths == ["/v1/chat/completions"]
    headers = {k.lower(): v for k, v in seen.headers[0].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    body = seen.bodies[0]
    assert body["model"] == "big-model"
    assert body["max_tokens"] == 40
    assert body["tool_choice"] == "auto"
    assert body["messages"] == MESSAGES
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]


def test_message_objects_are_converted():
    with canned_server(lambda seen: json_body(chat_completion({"content": "ok"}))) as (url, seen):
        msgs = [
            Message("user", "hi"),
            Message("tool", '{"temp": 20}', name="get_weather", call_id="abc"),
        ]
        with RemoteClient(online(url)) as client:
            client.chat(msgs, [])
    sent = seen.bodies[0]
    assert sent["messages"][1] == {"role": "tool", "content": '{"temp": 20}', "tool_call_id": "abc"}
    assert "tools" not in sent and "tool_choice" not in sent


def _reply_with(message: dict):
    return lambda seen: json_body(chat_completion(message, usage=(30, 7)))


def _chat(message: dict):
    with canned_server(_reply_with(message)) as (url, _), RemoteClient(online(url)) as client:
        return client.chat(MESSAGES, [WEATHER])


def test_native_tool_calls_are_parsed():
    reply = _chat(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": '},
                },
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "[1]"},
                },
                {
                    "id": "c4",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                },
            ],
        }
    )
    assert (reply.prompt_tokens, reply.output_tokens) == (30, 7)
    assert reply.model == "canned"
    assert reply.text == ""
    ok, broken, listy, as_dict = reply.calls
    assert (ok.name, ok.arguments, ok.status, ok.route) == (
        "get_weather",
        {"city": "Paris"},
        "proposed",
        "remote",
    )
    assert broken.status == "invalid" and "not valid JSON" in broken.error
    assert listy.status == "invalid" and "JSON object" in listy.error
    assert as_dict.arguments == {"city": "Oslo"} and as_dict.status == "proposed"
    assert len({c.id for c in reply.calls}) == 4


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '```json\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n```',
        '[{"name": "get_weather", "parameters": {"city": "Paris"}}]',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    ],
)
def test_calls_written_as_content_are_accepted(content):
    reply = _chat({"content": content})
    assert [(c.name, c.arguments, c.status) for c in reply.calls] == [
        ("get_weather", {"city": "Paris"}, "proposed")
    ]
    assert reply.text == ""


def test_plain_json_content_is_not_a_call():
    reply = _chat({"content": '{"city": "Paris"}'})
    assert reply.calls == []
    assert reply.text == '{"city": "Paris"}'


def test_remote_calls_to_unoffered_or_local_only_tools_are_invalid():
    message = {
        "content": None,
        "tool_calls": [
            {"function": {"name": "read_private_notes", "arguments": "{}"}},
            {"function": {"name": "rm_rf", "arguments": "{}"}},
            {"function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ],
    }
    with canned_server(_reply_with(message)) as (url, seen):
        outcome = route_request(online(url), MESSAGES, registry(), local_calls(), 0.1, valid=True)
    assert outcome.route == "remote"
    private, unknown, good = outcome.calls
    # refused alike, so a remote cannot probe for the names of local-only tools
    assert private.status == "invalid" and "'read_private_notes' was not offered" in private.error
    assert unknown.status == "invalid" and "'rm_rf' was not offered" in unknown.error
    assert good.status == "proposed" and good.arguments == {"city": "Rome"}
    sent = [t["function"]["name"] for t in seen.bodies[0]["tools"]]
    assert sent == ["get_weather"]


def test_missing_url_is_a_remote_error_with_hint():
    with pytest.raises(RemoteError) as info:
        RemoteClient(online(None))
    assert "EDGEAGENT_REMOTE_URL" in info.value.hint


# --- the API key never leaks -------------------------------------------------------------------


def _echo_headers(status: int):
    def respond(seen):
        return json_body(
            {"error": {"message": f"denied, you sent {seen.headers[-1].get('Authorization')}"}},
            status,
        )

    return respond


def test_api_key_never_appears_in_errors_notices_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def collect(outcome):
        texts.extend([outcome.notice or "", outcome.decision.reason, str(outcome.error)])

    for status in (401, 500):
        with canned_server(_echo_headers(status)) as (url, seen):
            settings = online(url, remote_retries=1)
            collect(route_request(settings, MESSAGES, registry(), local_calls(), 0.1, valid=True))
            with RemoteClient(settings) as client, pytest.raises(RemoteError) as info:
                client.chat(MESSAGES, [WEATHER])
            texts += [str(info.value), repr(info.value), info.value.message, repr(client)]
            texts += [repr(settings), str(settings)]
        # The key was really sent, and the server really echoed it back.
        assert any(KEY in v for h in seen.headers for v in h.values())
        assert "Bearer ***" in str(info.value)
        assert info.value.__cause__ is None
    collect(route_request(online(closed_port_url()), MESSAGES, registry(), [], 0.1, valid=True))

    def slow(seen):
        time.sleep(1.0)
        return json_body({})

    with canned_server(slow) as (url, _):
        collect(
            route_request(
                online(url, remote_timeout_s=0.2), MESSAGES, registry(), [], 0.1, valid=True
            )
        )

    with pytest.raises(RemoteError) as info:
        RemoteClient(online("http://127.0.0.1:1/v1", remote_api_key=KEY + "\r\nX-Evil: 1"))
    texts.append(str(info.value))
    with pytest.raises(RemoteError) as info:
        RemoteClient(online(f"ftp://user:{KEY}@example.invalid/v1"))
    texts.append(str(info.value))
    with pytest.raises(RemoteError, match="carries credentials") as info:
        RemoteClient(online(f"http://user:{KEY}@127.0.0.1:1/v1"))
    texts.append(str(info.value))

    records = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert records  # retries and fallbacks were logged
    for text in texts + records:
        assert KEY not in text, text
