"""A hostile remote on loopback: each test is one attack, and asserts the attack fails.

Client-level attacks need no model: a drip of one byte a second (into the headers or the body)
must end at the total deadline; a flood must be cut at the size cap without being read whole;
JSON nested 100000 deep must give a RemoteError or an invalid call, never a traceback; an echoed
API key (with ``"`` and ``\\``) must not survive in the reply. Agent-level attacks run the real
SmolLM2-135M with ``confidence_threshold=1.0`` (always escalate), few tokens and two steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from edgeagent.agent.router import route_request
from edgeagent.config import load_settings
from edgeagent.errors import RemoteError
from edgeagent.runtime.deadline import Deadline, DeadlineBackend, deadline_scope
from edgeagent.runtime.remote import MAX_REPLY_BYTES, RemoteClient
from edgeagent.secrets import secret_variants
from edgeagent.tools.registry import tool_from_function, tool_from_openai
from edgeagent.types import ToolCall
from tests.integration.remote_server import (
    WEATHER,
    body_script,
    canned_server,
    chat_completion,
    drip_script,
    escalating_settings,
    flood_script,
    http_head,
    json_body,
    nested_json,
    raw_server,
)

KEY = 'sk-"q\\b-ECHO-7731-secret'  # a quote and a backslash: stored JSON-escaped if missed
TIMEOUT_S = 2.0
SLACK_S = 2.0
FLOOD_BYTES = 20 * 1024 * 1024
CANARY = "CANARY-PRIVATE-5531"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def online(url: str, **kw):
    values = {
        "allow_network": True,
        "remote_url": url,
        "remote_api_key": KEY,
        "remote_timeout_s": TIMEOUT_S,
        "remote_retries": 0,
        "confidence_threshold": 0.5,
    }
    values.update(kw)
    return load_settings(**values)


def chat(url: str, **kw):
    with RemoteClient(online(url, **kw)) as client:
        return client.chat(MESSAGES, [WEATHER])


def tool_reply(name: str, arguments: str, content: str | None = None):
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return json_body(chat_completion({"content": content, "tool_calls": [call]}))


def leaked(data: bytes | str, key: str = KEY) -> list[str]:
    """The forms of ``key`` found in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    return [form for form in secret_variants(key) if form.encode() in blob]


# --- time: a total deadline ----------------------------------------------------------------------


@pytest.mark.parametrize("head", [True, False], ids=["drip-headers", "drip-body"])
def test_drip_one_byte_per_second_ends_at_the_total_deadline(head):
    body = json.dumps(chat_completion({"content": "slow " * 10})).encode()
    with raw_server(drip_script(body, head=head, every_s=1.0, max_s=15.0)) as (url, seen):
        started = time.monotonic()
        with pytest.raises(RemoteError) as info:
            chat(url)
        took = time.monotonic() - started
    assert took < TIMEOUT_S + SLACK_S, took
    assert f"did not finish within {TIMEOUT_S:g} s" in info.value.message
    assert seen.count == 1


def test_drip_fallback_notice_tells_the_user_and_keeps_the_local_result():
    body = json.dumps(chat_completion({"content": "slow"})).encode()
    mine = [ToolCall("get_weather", {"city": "Pari"}, confidence=0.1)]
    with raw_server(drip_script(body, every_s=1.0, max_s=15.0)) as (url, _):
        started = time.monotonic()
        outcome = route_request(online(url), MESSAGES, [WEATHER], mine, 0.1, valid=True)
        took = time.monotonic() - started
    assert took < TIMEOUT_S + SLACK_S
    assert outcome.route == "local_fallback" and outcome.calls == mine
    assert f"did not finish within {TIMEOUT_S:g} s" in outcome.notice
    assert "kept the local result" in outcome.notice


def test_retries_and_backoff_stay_inside_the_deadline():
    def busy(seen):
        status, headers, body = json_body({"error": "busy"}, 503)
        return status, {**headers, "Retry-After": "1"}, body

    with canned_server(busy) as (url, seen):
        started = time.monotonic()
        with pytest.raises(RemoteError, match="HTTP 503"):
            chat(url, remote_retries=10)
        took = time.monotonic() - started
    assert took < TIMEOUT_S + SLACK_S
    assert 1 <= seen.count <= 3


def test_deadline_backend_cuts_every_read_to_the_time_left():
    class Slow:
        def __init__(self):
            self.timeouts = []

        def read(self, max_bytes, timeout=None):
            self.timeouts.append(timeout)
            return b"x"

    class Inner:
        def __init__(self):
            self.stream = Slow()

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return self.stream

    inner = Inner()
    backend = DeadlineBackend(inner)  # type: ignore[arg-type]
    stream = backend.connect_tcp("127.0.0.1", 1, timeout=30.0)
    stream.read(10, timeout=30.0)  # no deadline active: the given timeout
    with deadline_scope(Deadline(0.5)):
        stream.read(10, timeout=30.0)
        time.sleep(0.6)
        with pytest.raises(Exception) as info:
            stream.read(10, timeout=30.0)
    assert inner.stream.timeouts[0] == 30.0
    assert 0 < inner.stream.timeouts[1] <= 0.5
    assert len(inner.stream.timeouts) == 2  # the expired read never touched the socket
    assert "ReadTimeout" in type(info.value).__name__


# --- size and depth ------------------------------------------------------------------------------


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "until-close"])
def test_a_flood_is_cut_at_the_cap_without_reading_it_all(declare):
    with raw_server(flood_script(FLOOD_BYTES, declare_length=declare)) as (url, seen):
        with pytest.raises(RemoteError) as info:
            chat(url, remote_timeout_s=30.0)
        assert seen.wait_ended(1, 30.0)
    assert "at most 4 MB" in info.value.message
    assert "\n" not in str(info.value)
    assert seen.finished == [False]  # the server could not write the whole body
    assert seen.sent[0] < FLOOD_BYTES - MAX_REPLY_BYTES


def test_json_nested_100000_deep_is_a_remote_error_not_a_traceback():
    body = b'{"choices":' + nested_json(100_000) + b"}"
    with raw_server(body_script(body)) as (url, _), pytest.raises(RemoteError) as info:
        chat(url)
    assert "nested deeper than 64 levels" in info.value.message


def test_deep_arguments_make_an_invalid_call():
    deep = nested_json(100_000).decode()
    too_deep = "{" + '"a":{' * 70 + "}" * 70 + "}"
    with canned_server(lambda seen: tool_reply("get_weather", deep)) as (url, _):
        (call,) = chat(url).calls
    assert call.status == "invalid" and call.arguments == {}
    assert "nested deeper than 64" in call.error
    with canned_server(lambda seen: tool_reply("get_weather", too_deep)) as (url, _):
        (call,) = chat(url).calls
    assert call.status == "invalid" and "nested deeper than 64" in call.error


def test_deep_json_as_content_stays_text():
    content = '{"name":"get_weather","arguments":' + nested_json(100_000).decode() + "}"
    with canned_server(lambda seen: json_body(chat_completion({"content": content}))) as (url, _):
        reply = chat(url)
    assert reply.calls == [] and reply.text.startswith('{"name"')


def test_unparseable_arguments_stay_invalid_and_empty():
    with canned_server(lambda seen: tool_reply("get_weather", '{"city": ')) as (url, _):
        outcome = route_request(
            online(url), MESSAGES, [tool_from_openai(WEATHER)], [], 0.1, valid=True
        )
    (call,) = outcome.calls
    assert outcome.route == "remote"
    assert call.status == "invalid" and call.arguments == {}
    assert call.error.startswith("arguments are not valid JSON")


def test_an_injected_transport_still_works():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=chat_completion({"content": "mocked"}))

    settings = online("http://127.0.0.1:9/v1")
    with RemoteClient(settings, transport=httpx.MockTransport(handler)) as client:
        assert client.chat(MESSAGES, []).text == "mocked"


# --- the API key ---------------------------------------------------------------------------------


def _echo_everywhere(seen):
    key = seen.headers[-1]["Authorization"][len("Bearer ") :]
    arguments = json.dumps({"city": f"Paris {key}", key: [key, {"deep": key}]})
    return tool_reply("get_weather", arguments, content=f"your key is {key}")


def test_an_echoed_key_is_scrubbed_from_the_reply():
    with canned_server(_echo_everywhere) as (url, seen):
        reply = chat(url)
    assert KEY in seen.headers[0]["Authorization"]  # it was really sent, and echoed
    dumped = json.dumps([reply.text, [c.to_dict() for c in reply.calls]], ensure_ascii=False)
    assert leaked(dumped) == []
    assert "***" in reply.text and "***" in reply.calls[0].arguments["city"]


def test_an_echoed_key_is_scrubbed_from_invalid_calls_and_errors():
    def bad_json(seen):
        key = seen.headers[-1]["Authorization"][len("Bearer ") :]
        return tool_reply("get_weather", "{" + json.dumps(key))

    with canned_server(bad_json) as (url, _):
        (call,) = chat(url).calls
    assert call.status == "invalid" and leaked(call.error) == []

    def denied(seen):
        auth = seen.headers[-1]["Authorization"]
        return 401, {"Content-Type": "text/plain"}, json.dumps({"you sent": auth}).encode()

    with canned_server(denied) as (url, _), pytest.raises(RemoteError) as info:
        chat(url)
    assert "HTTP 401" in info.value.message
    assert leaked(str(info.value)) == [] and leaked(repr(info.value)) == []


# --- the agent: real model, always escalating ----------------------------------------------------


def agent_settings(tmp_path, url: str, **extra):
    return escalating_settings(tmp_path, url, KEY, **{"max_tokens": 24, **extra})


def private_tools(runs: list[str]):
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    def read_private_note(topic: str) -> str:
        """Read the user's private note on a topic."""
        runs.append(topic)
        return f"{CANARY} ({topic})"

    return [tool_from_function(get_weather), tool_from_function(read_private_note, local_only=True)]


@pytest.mark.model
def test_agent_never_runs_unparseable_remote_calls_with_defaults(smollm_model, tmp_path):
    from edgeagent.agent.loop import Agent

    runs: list[str] = []

    def list_dir(path: str = ".") -> str:
        """List a folder."""
        runs.append(path)
        return "a.txt"

    with canned_server(lambda seen: tool_reply("list_dir", '{"path": ')) as (url, seen):
        agent = Agent(
            agent_settings(tmp_path, url), model=smollm_model, tools=[tool_from_function(list_dir)]
        )
        result = agent.run("List the files here.")
        agent.close()
    assert runs == []
    assert seen.count >= 1
    remote = [c for c in result.calls if c.route == "remote"]
    assert remote and all(c.status == "invalid" and c.arguments == {} for c in remote)
    assert all("not valid JSON" in c.error for c in remote)


@pytest.mark.model
def test_agent_local_only_tool_never_runs_for_the_remote_and_never_reaches_it(
    smollm_model, tmp_path
):
    from edgeagent.agent.loop import Agent
    from edgeagent.agent.result import AgentResult

    runs: list[str] = []

    def reply(seen):
        return tool_reply("read_private_note", '{"topic": "travel"}')

    with canned_server(reply) as (url, seen):
        settings = agent_settings(tmp_path, url)
        agent = Agent(settings, model=smollm_model, tools=private_tools(runs), store=False)
        agent.run("What is the weather in Paris?")
        assert runs == []  # the remote asked for it: rejected by name, never run
        # the local model's own call to the local-only tool, fed back as the loop does it
        call = ToolCall("read_private_note", {"topic": "diary"})
        results = agent.executor.run_many([call])
        agent._feed_back("r0", None, [call], results, AgentResult("r0", ""))
        assert runs == ["diary"]
        agent.run("And in Rome?")
    assert seen.count >= 2
    # before the remote said anything, the local-only tool is nowhere in what it was sent
    assert b"read_private_note" not in seen.raw[0]
    for body in seen.bodies:  # later, only where the history quotes the remote's own call
        assert "read_private_note" not in body["messages"][0]["content"]
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert CANARY.encode() not in b"".join(seen.raw)  # its output never


@pytest.mark.model
def test_agent_falls_back_on_a_deep_reply_without_a_traceback(smollm_model, tmp_path):
    from edgeagent.agent.loop import Agent
    from edgeagent.store import Store

    body = b'{"choices":' + nested_json(100_000) + b"}"
    with raw_server(body_script(body)) as (url, _):
        settings = agent_settings(tmp_path, url)
        agent = Agent(settings, model=smollm_model, tools=[])
        result = agent.run("Say hi.")
        agent.close()
    assert result.route.route == "local_fallback"
    assert any("nested deeper than 64" in n for n in result.notices)
    store = Store(settings.db_path)
    try:
        (row,) = list(store.db["requests"].rows)
    finally:
        store.close()
    assert row["status"] == "done" and row["route"] == "local_fallback"


@pytest.mark.model
def test_cli_json_never_prints_nor_stores_an_echoed_key(smollm_path, tmp_path):
    def echo(seen):
        key = seen.headers[-1]["Authorization"][len("Bearer ") :]
        if seen.count == 1:
            return tool_reply("calculator", json.dumps({"expression": f"1+1 # {key}"}))
        return json_body(chat_completion({"content": f"Your key is {key} ({json.dumps(key)})"}))

    home = tmp_path / "cli-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEAGENT_")}
    with canned_server(echo) as (url, seen):
        env.update(
            EDGEAGENT_HOME=str(home),
            EDGEAGENT_REMOTE_URL=url,
            EDGEAGENT_REMOTE_API_KEY=KEY,
            EDGEAGENT_CONFIDENCE_THRESHOLD="1.0",
            EDGEAGENT_MAX_STEPS="2",
            EDGEAGENT_REMOTE_RETRIES="0",
            EDGEAGENT_REMOTE_TIMEOUT_S="10",
        )
        cmd = [sys.executable, "-c", "from edgeagent.cli import main; main()", "run"]
        cmd += ["What is 1+1?", "--model", str(smollm_path), "--online", "--json", "--yes"]
        cmd += ["--max-tokens", "24"]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    data = json.loads(proc.stdout)
    assert data["route"] == "remote" and seen.count >= 1
    assert KEY in seen.headers[0]["Authorization"]  # the key was sent and echoed back
    assert leaked(proc.stdout) == [] and leaked(proc.stderr) == []
    files = sorted(home.glob("edgeagent.db*"))
    assert files
    for path in files:
        assert leaked(path.read_bytes()) == [], path.name


# --- hostile review: quadratic parsing, stacked encodings, floods of calls -----------------------


@pytest.mark.parametrize(
    "content",
    [
        "```" + " " * 20_000 + "x",  # cubic under the old fence regex
        "<tool_call>" * 50_000,  # quadratic under the old block regex
    ],
    ids=["fence", "tool_call"],
)
def test_hostile_content_parses_in_linear_time(content):
    body = json.dumps(chat_completion({"content": content})).encode()
    with raw_server(body_script(body)) as (url, _):
        started = time.monotonic()
        reply = chat(url)
    assert time.monotonic() - started < TIMEOUT_S + SLACK_S
    assert reply.calls == [] or all(c.status == "invalid" for c in reply.calls)


def test_escaped_quotes_after_deep_brackets_parse_in_linear_time():
    body = b"[" * 65 + b'"' + b'\\"' * 200_000
    with raw_server(body_script(body)) as (url, _), pytest.raises(RemoteError):
        started = time.monotonic()
        try:
            chat(url)
        finally:
            assert time.monotonic() - started < TIMEOUT_S + SLACK_S


def _gzip(data: bytes, layers: int) -> bytes:
    import gzip

    for _ in range(layers):
        data = gzip.compress(data, 9)
    return data


def _gzip_spaces(megabytes: int) -> bytes:
    """A gzip stream of ``megabytes`` MB of spaces, built without holding them in memory."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1024 * 1024)
    out = [packer.compress(block) for _ in range(megabytes)]
    return b"".join([*out, packer.flush()])


def test_stacked_content_encodings_are_refused_before_expanding():
    bomb = _gzip(_gzip_spaces(200), 1)  # two layers: a few hundred bytes, 200 MB inside
    assert len(bomb) < 300_000

    def script(seen, reply):
        head = http_head(200, len(bomb), Content_Encoding="gzip, gzip")
        return reply.send(head + bomb)

    with raw_server(script) as (url, _), pytest.raises(RemoteError, match="content encoding"):
        chat(url)


def test_a_single_gzip_layer_is_decompressed_only_up_to_the_cap():
    import resource

    bomb = _gzip_spaces(300)  # 300 KB on the wire, 300 MB inside

    def script(seen, reply):
        return reply.send(http_head(200, len(bomb), Content_Encoding="gzip") + bomb)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with raw_server(script) as (url, _), pytest.raises(RemoteError, match="more than"):
        chat(url)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 40  # the old reader grew by a whole decoded chunk (64+ MB)


def test_a_well_formed_gzip_reply_still_works():
    body = _gzip(json.dumps(chat_completion({"content": "Sunny."})).encode(), 1)

    def script(seen, reply):
        return reply.send(http_head(200, len(body), Content_Encoding="gzip") + body)

    with raw_server(script) as (url, _):
        assert chat(url).text == "Sunny."


def test_a_reply_with_thousands_of_calls_gets_at_most_the_local_bound():
    from edgeagent.agent.router import screen_remote_calls
    from edgeagent.grammar.envelope import MAX_CALLS
    from edgeagent.tools.registry import ToolRegistry, tool_from_openai

    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        for i in range(3000)
    ]
    calls = [
        {**c, "function": {**c["function"], "arguments": json.dumps({"city": f"C{i}"})}}
        for i, c in enumerate(calls)
    ]

    def responder(seen):
        return json_body(chat_completion({"content": None, "tool_calls": calls}))

    with canned_server(responder) as (url, _):
        reply = chat(url)
    validations = screen_remote_calls(reply.calls, ToolRegistry([tool_from_openai(WEATHER)]))
    assert sum(v.valid for v in validations) == MAX_CALLS
    assert "at most 4 are considered" in (reply.calls[-1].error or "")
