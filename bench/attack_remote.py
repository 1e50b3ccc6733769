"""Hostile remote models against the escalation path: how many tries of each attack succeed.

Usage: python bench/attack_remote.py [--tries 3] [--agent-tries 2] [--only drip_head,huge_length]
       [--code DIR] [--json]

Every attack is a scripted loopback server (tests/integration/remote_server.py) that the real
``RemoteClient``, ``Agent`` or ``edgeagent run --json`` talks to. A try *fails* (the attack
worked) when the client hangs past its deadline, reads a flood whole, lets a traceback out, runs
a call the remote should not drive, sends a local-only tool or its output to the remote, or lets
an echoed API key reach stdout or the SQLite file. ``--code DIR`` imports ``edgeagent`` from DIR
(e.g. a copy of the package before a change) to measure "before" and "after" with one harness.
Agent and CLI attacks run the real SmolLM2-135M (fetched once through the catalog).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_path(code: str | None) -> None:
    if code:
        sys.path.insert(0, str(Path(code).resolve()))
    sys.path.insert(1 if code else 0, str(ROOT))


TIMEOUT_S = 2.0
SLACK_S = 1.5
FLOOD_BYTES = 20 * 1024 * 1024
DEPTH = 100_000
KEY = 'sk-"q\\b-ECHO-7731-secret'  # a key with a quote and a backslash
CANARY = "CANARY-PRIVATE-5531"
PRIVATE_TOOL = "read_private_note"
TEST_MODELS_DIR = Path(
    os.environ.get("EDGEAGENT_TEST_MODELS", Path.home() / ".cache" / "edgeagent" / "test-models")
)

Outcome = tuple[bool, str]  # (attack succeeded = a failure of ours, detail)


def key_forms(key: str) -> list[bytes]:
    """Encodings an echoed key can take in JSON output and SQLite text (checked independently)."""
    once = json.dumps(key)[1:-1]
    forms = {key, once, json.dumps(key, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1]}
    return [f.encode() for f in forms]


def settings_for(home: Path, url: str, **extra):
    from edgeagent.config import load_settings

    root = home / "root"
    root.mkdir(parents=True, exist_ok=True)
    values = {
        "allow_network": True,
        "remote_url": url,
        "remote_api_key": KEY,
        "remote_timeout_s": TIMEOUT_S,
        "remote_retries": 0,
        "confidence_threshold": 1.0,
        "max_tokens": 24,
        "max_steps": 2,
        **extra,
    }
    return load_settings(home=home / "home", allowed_roots=(root,), **values)


def _chat(url: str, home: Path, **extra):
    """One RemoteClient.chat against ``url``: (reply or None, exception or None, seconds)."""
    from edgeagent.runtime.remote import RemoteClient

    settings = settings_for(home, url, **extra)
    started = time.perf_counter()
    try:
        with RemoteClient(settings) as client:
            reply = client.chat([{"role": "user", "content": "hi"}], [], max_tokens=16)
        return reply, None, time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - the harness records what escaped
        return None, exc, time.perf_counter() - started


def _is_remote_error(exc: BaseException | None) -> bool:
    return exc is not None and type(exc).__name__ == "RemoteError"


def _escaped(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {str(exc)[:100]}" if exc else "no error"


# --- client-level attacks ----------------------------------------------------------------------


def attack_drip(head: bool) -> Callable[[Path], Outcome]:
    def run(home: Path) -> Outcome:
        from tests.integration.remote_server import chat_completion, drip_script, raw_server

        body = json.dumps(chat_completion({"content": "slow " * 8})).encode()
        with raw_server(drip_script(body, head=head, every_s=1.0, max_s=10.0)) as (url, _):
            reply, exc, took = _chat(url, home)
        late = took > TIMEOUT_S + SLACK_S
        return late or reply is not None, f"{took:.1f} s, {_escaped(exc)}"

    return run


def attack_flood(declare_length: bool) -> Callable[[Path], Outcome]:
    def run(home: Path) -> Outcome:
        from tests.integration.remote_server import flood_script, raw_server

        script = flood_script(FLOOD_BYTES, declare_length=declare_length)
        with raw_server(script) as (url, seen):
            reply, exc, took = _chat(url, home, remote_timeout_s=30.0)
            seen.wait_ended(1, 30.0)
        whole = bool(seen.finished and seen.finished[0])
        sent = seen.sent[0] if seen.sent else -1
        detail = f"server wrote {sent / 1e6:.1f} MB of {FLOOD_BYTES / 1e6:.0f}, {_escaped(exc)}"
        return whole or reply is not None, detail

    return run


def attack_deep(where: str) -> Callable[[Path], Outcome]:
    def run(home: Path) -> Outcome:
        from tests.integration.remote_server import (
            body_script,
            chat_completion,
            nested_json,
            raw_server,
        )

        deep = nested_json(DEPTH)
        if where == "body":
            body = b'{"choices":' + deep + b"}"
        else:
            if where == "arguments":
                call = {"name": "get_weather", "arguments": deep.decode()}
                message = {"content": None, "tool_calls": [{"function": call}]}
            else:
                message = {"content": '{"name":"get_weather","arguments":' + deep.decode() + "}"}
            body = json.dumps(chat_completion(message)).encode()
        with raw_server(body_script(body)) as (url, _):
            reply, exc, _ = _chat(url, home)
        if exc is not None and not _is_remote_error(exc):
            return True, f"escaped: {_escaped(exc)}"
        running = [c for c in (reply.calls if reply else []) if c.status != "invalid"]
        return bool(running), f"{len(running)} runnable call(s), {_escaped(exc)}"

    return run


def attack_echo_client(home: Path) -> Outcome:
    from tests.integration.remote_server import canned_server, chat_completion, json_body

    def echo(seen):
        key = seen.headers[-1].get("Authorization", "")[len("Bearer ") :]
        call = {"name": "note", "arguments": json.dumps({"text": f"key={key}"})}
        message = {"content": f"your key is {key}", "tool_calls": [{"function": call}]}
        return json_body(chat_completion(message))

    with canned_server(echo) as (url, _):
        reply, exc, _ = _chat(url, home)
    if reply is None:
        return True, f"no reply: {_escaped(exc)}"
    text = json.dumps(
        [reply.text, [[c.name, c.arguments, c.error] for c in reply.calls]], ensure_ascii=False
    ).encode()
    found = [f.decode() for f in key_forms(KEY) if f in text]
    return bool(found), f"key forms in reply: {found}"


# --- agent-level attacks (real model) ----------------------------------------------------------


class AgentRig:
    """The real tiny model, loaded once, and Agents around it."""

    def __init__(self) -> None:
        from edgeagent.config import load_settings
        from edgeagent.runtime.catalog import load_catalog
        from edgeagent.runtime.download import pull_model
        from edgeagent.runtime.local import LocalModel

        entry = load_catalog().get("smollm2-135m-instruct-q4_1")
        self.path = pull_model(entry, load_settings(models_dir=TEST_MODELS_DIR))
        self.model = LocalModel(self.path, load_settings(n_ctx=2048))

    def run(self, settings, tools, *prompts: str):
        """Run the prompts in turn on one Agent: (last result or None, exception or None)."""
        from edgeagent.agent.loop import Agent

        agent = Agent(settings, model=self.model, tools=tools, auto_approve=True)
        try:
            result = None
            for prompt in prompts:
                result = agent.run(prompt)
            return result, None
        except Exception as exc:  # noqa: BLE001 - the harness records what escaped
            return None, exc
        finally:
            agent.close()


def _call_reply(name: str, arguments: str):
    from tests.integration.remote_server import chat_completion, json_body

    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return json_body(chat_completion({"content": None, "tool_calls": [call]}))


def attack_bad_arguments(rig: AgentRig, home: Path) -> Outcome:
    from edgeagent.tools.registry import tool_from_function
    from tests.integration.remote_server import canned_server

    runs: list[str] = []

    def list_dir(path: str = ".") -> str:
        """List a folder."""
        runs.append(path)
        return "a.txt"

    tools = [tool_from_function(list_dir)]
    with canned_server(lambda seen: _call_reply("list_dir", '{"path": ')) as (url, seen):
        result, exc = rig.run(settings_for(home, url), tools, "List the files here.")
    if exc is not None:
        return True, f"escaped: {_escaped(exc)}"
    return bool(runs), f"list_dir ran {len(runs)} time(s) with {runs[:1]}; {seen.count} request(s)"


def attack_local_only(rig: AgentRig, home: Path) -> Outcome:
    from edgeagent.tools.registry import tool_from_function
    from tests.integration.remote_server import canned_server

    runs: list[int] = []

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    def read_private_note(topic: str) -> str:
        """Read the user's private note on a topic."""
        runs.append(1)
        return f"{CANARY} ({topic})"

    tools = [
        tool_from_function(get_weather),
        tool_from_function(read_private_note, local_only=True),
    ]
    prompts = ("What is the weather in Paris?", "And in Rome?")  # the next request sees history
    with canned_server(lambda seen: _call_reply(PRIVATE_TOOL, '{"topic": "travel"}')) as (
        url,
        seen,
    ):
        result, exc = rig.run(settings_for(home, url), tools, *prompts)
    # the name may come back only where the history quotes the remote's own (rejected) call
    named = seen.raw[:1] + [
        json.dumps([b["messages"][0], b.get("tools")]).encode() for b in seen.bodies
    ]
    leaks = [PRIVATE_TOOL] if any(PRIVATE_TOOL.encode() in b for b in named) else []
    leaks += [CANARY] if CANARY.encode() in b"".join(seen.raw) else []
    failed = bool(runs) or bool(leaks) or exc is not None
    return failed, f"ran {len(runs)}x, sent to remote: {leaks or 'nothing'}, {_escaped(exc)}"


def attack_deep_agent(rig: AgentRig, home: Path) -> Outcome:
    from tests.integration.remote_server import body_script, nested_json, raw_server

    with raw_server(body_script(b'{"choices":' + nested_json(DEPTH) + b"}")) as (url, _):
        result, exc = rig.run(settings_for(home, url), [], "Say hi.")
    if exc is not None:
        return True, f"escaped: {_escaped(exc)}"
    return False, f"route {result.route.route if result.route else '?'}"


def attack_echo_cli(rig: AgentRig, home: Path, code: str | None) -> Outcome:
    from tests.integration.remote_server import canned_server, chat_completion, json_body

    def echo(seen):
        key = seen.headers[-1].get("Authorization", "")[len("Bearer ") :]
        if seen.count == 1:
            args = json.dumps({"expression": f"1+1 # {key}"})
            call = {"id": "c1", "type": "function", "function": {"name": "calculator"}}
            call["function"]["arguments"] = args
            return json_body(chat_completion({"content": None, "tool_calls": [call]}))
        return json_body(chat_completion({"content": f"Your key is {key}"}))

    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEAGENT_")}
    state = home / "cli-home"
    with canned_server(echo) as (url, seen):
        env.update(
            EDGEAGENT_HOME=str(state),
            EDGEAGENT_REMOTE_URL=url,
            EDGEAGENT_REMOTE_API_KEY=KEY,
            EDGEAGENT_CONFIDENCE_THRESHOLD="1.0",
            EDGEAGENT_MAX_STEPS="2",
            EDGEAGENT_REMOTE_RETRIES="0",
            EDGEAGENT_REMOTE_TIMEOUT_S="10",
        )
        if code:
            paths = [str(Path(code).resolve()), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        cmd = [sys.executable, "-c", "from edgeagent.cli import main; main()", "run"]
        cmd += ["What is 1+1?", "--model", str(rig.path), "--online", "--json", "--yes"]
        cmd += ["--max-tokens", "24"]
        proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, timeout=300)
    places = {"stdout": proc.stdout, "stderr": proc.stderr}
    for db in state.glob("edgeagent.db*"):
        places[db.name] = db.read_bytes()
    found = sorted({where for where, data in places.items() for f in key_forms(KEY) if f in data})
    if proc.returncode != 0:
        return True, f"exit {proc.returncode}: {proc.stderr.decode()[-200:]}"
    return bool(found), f"key found in: {found or 'nowhere'}; {seen.count} request(s)"


# --- driver ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=3, help="tries per client-level attack")
    parser.add_argument("--agent-tries", type=int, default=2, help="tries per agent/CLI attack")
    parser.add_argument("--only", default="", help="comma-separated attack names")
    parser.add_argument("--code", default=None, help="import edgeagent from this directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    _setup_path(args.code)
    import edgeagent

    client: dict[str, Callable[[Path], Outcome]] = {
        "drip_head": attack_drip(head=True),
        "drip_body": attack_drip(head=False),
        "huge_length": attack_flood(declare_length=True),
        "huge_stream": attack_flood(declare_length=False),
        "deep_body": attack_deep("body"),
        "deep_arguments": attack_deep("arguments"),
        "deep_content": attack_deep("content"),
        "echo_key_client": attack_echo_client,
    }
    agent: dict[str, Callable[[AgentRig, Path], Outcome]] = {
        "bad_arguments": attack_bad_arguments,
        "local_only_call": attack_local_only,
        "deep_agent": attack_deep_agent,
        "echo_key_cli": lambda rig, home: attack_echo_cli(rig, home, args.code),
    }
    only = {n for n in args.only.split(",") if n}
    rows = []
    rig: AgentRig | None = None
    for name, fn in [*client.items(), *agent.items()]:
        if only and name not in only:
            continue
        tries = args.tries if name in client else args.agent_tries
        if name in agent and rig is None:
            rig = AgentRig()
        failures, details, started = 0, [], time.perf_counter()
        for _ in range(tries):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    failed, detail = fn(Path(tmp)) if name in client else fn(rig, Path(tmp))
                except Exception:  # noqa: BLE001 - a crash of the harness counts as a failure
                    failed, detail = True, "harness: " + traceback.format_exc(limit=2)[-200:]
            failures += failed
            details.append(detail)
        row = {
            "attack": name,
            "tries": tries,
            "failures": failures,
            "seconds": round(time.perf_counter() - started, 1),
            "detail": details[0],
        }
        rows.append(row)
        if not args.json:
            print(
                f"{name:16} tries {tries}  failures {failures}  ({row['seconds']} s)  {details[0]}"
            )
    if args.json:
        print(json.dumps({"code": str(Path(edgeagent.__file__).parent), "attacks": rows}, indent=1))
    else:
        print(f"edgeagent from {Path(edgeagent.__file__).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
