"""Attacks with bad input: out-of-range settings, special and huge files, deep JSON, hostile tools
files, foreign values in the history. Each must end in one clear line, never a traceback or hang."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from edgeagent.cli import cli
from edgeagent.config import Settings, load_settings
from edgeagent.errors import ConfigError, GrammarError, StoreError, ToolDefinitionError
from edgeagent.inputs import json_depth, parse_json_limited, read_json_file

# ---- settings ------------------------------------------------------------------------------

OUT_OF_RANGE = [
    ("n_ctx", "1e999"),
    ("n_ctx", "inf"),
    ("n_ctx", "100000000000"),
    ("n_ctx", "0"),
    ("max_tokens", "0"),
    ("max_tokens", "-5"),
    ("temperature", "-1"),
    ("temperature", "nan"),
    ("decode_timeout_s", "nan"),
    ("decode_timeout_s", "0"),
    ("max_steps", "0"),
    ("watts_per_core", "-7.5"),
    ("confidence_threshold", "1.5"),
    ("remote_timeout_s", "inf"),
    ("tool_timeout_s", "-1"),
    ("string_cap", "5000"),
    ("remote_retries", "-1"),
    ("call_repeat_penalty", "0"),
    ("n_threads", "0"),
]


@pytest.mark.parametrize(("name", "raw"), OUT_OF_RANGE)
def test_each_setting_out_of_range_is_one_line_naming_it(monkeypatch, name, raw):
    monkeypatch.setenv(f"EDGEAGENT_{name.upper()}", raw)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = caught.value.message
    assert name in message and f"EDGEAGENT_{name.upper()}" in message
    assert "\n" not in message


@pytest.mark.parametrize(("name", "raw"), OUT_OF_RANGE)
def test_out_of_range_in_config_toml_names_the_file(isolated_home, name, raw):
    isolated_home.mkdir(parents=True, exist_ok=True)
    value = raw if raw not in ("nan", "inf", "1e999") else raw  # TOML has nan, inf and 1e999
    (isolated_home / "config.toml").write_text(f"{name} = {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert name in caught.value.message and "config.toml" in caught.value.message


def test_every_bad_field_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("EDGEAGENT_MAX_TOKENS", "0")
    monkeypatch.setenv("EDGEAGENT_MAX_STEPS", "0")
    monkeypatch.setenv("EDGEAGENT_TEMPERATURE", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    lines = caught.value.message.splitlines()
    assert len(lines) == 4  # a header and one line per bad field
    assert {"max_tokens", "max_steps", "temperature"} <= {
        line.split("=")[0].strip() for line in lines[1:]
    }


def test_settings_made_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="max_steps"):
        Settings(max_steps=0)
    with pytest.raises(ConfigError, match="watts_per_core"):
        load_settings().replace(watts_per_core=-1.0)
    with pytest.raises(ConfigError, match="decode_timeout_s"):
        Settings(decode_timeout_s=math.nan)


def test_edges_of_each_range_are_accepted(monkeypatch):
    settings = load_settings(
        n_ctx=128, max_tokens=1, temperature=0.0, max_steps=1, confidence_threshold=1.0
    )
    assert settings.n_ctx == 128
    monkeypatch.setenv("EDGEAGENT_N_CTX", "4096.0")
    monkeypatch.setenv("EDGEAGENT_N_THREADS", "auto")
    loaded = load_settings()
    assert loaded.n_ctx == 4096 and loaded.n_threads is None


def test_cli_reports_a_bad_setting_without_traceback(monkeypatch):
    monkeypatch.setenv("EDGEAGENT_N_CTX", "1e999")
    result = CliRunner().invoke(cli, ["stats"])
    assert result.exit_code == 1
    assert "n_ctx" in result.output and "Traceback" not in result.output


# ---- input files ---------------------------------------------------------------------------


def test_json_depth_is_iterative():
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_000
    assert json_depth({"a": [1, {"b": 2}]}) == 3


def test_deep_json_is_a_config_error():
    text = "[" * 1000 + "]" * 1000
    with pytest.raises(ConfigError, match="nested more than"):
        parse_json_limited(text, "schema.json")
    with pytest.raises(ConfigError, match="nested more than"):
        parse_json_limited("[" * 100_000 + "]" * 100_000, "schema.json")


def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "schema.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="FIFO"):
        read_json_file(fifo)
    assert time.monotonic() - started < 5


def test_device_and_folder_and_huge_file_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="device"):
        read_json_file("/dev/zero")
    with pytest.raises(ConfigError, match="folder"):
        read_json_file(tmp_path)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="bytes"):
        read_json_file(big)


@pytest.mark.parametrize("kind", ["deep", "fifo", "devzero", "huge"])
def test_grammar_command_on_hostile_schema_files(tmp_path, kind):
    path = tmp_path / "schema.json"
    if kind == "deep":
        path.write_text('{"type":"array","items":' * 1000 + '{"type":"string"}' + "}" * 1000)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        path = "/dev/zero"
    else:
        path.write_text(json.dumps({"type": "string", "enum": ["x" * 100] * 60_000}))
    result = CliRunner().invoke(cli, ["grammar", "--schema", str(path)])
    assert result.exit_code in (1, 2), result.output
    assert result.output.startswith("error: ")
    assert "Traceback" not in result.output


def test_compiler_refuses_a_deep_schema_from_a_library_caller():
    from edgeagent.grammar.compiler import compile_schema
    from edgeagent.grammar.envelope import build_envelope

    schema: dict = {"type": "string"}
    for _ in range(200):
        schema = {"type": "array", "items": schema}
    with pytest.raises(GrammarError, match="nested more than"):
        compile_schema(schema)
    with pytest.raises(GrammarError, match="nested more than"):
        build_envelope([("deep", {"type": "object", "properties": {"x": schema}})])


# ---- tools files ---------------------------------------------------------------------------

TOOL = "from edgeagent.tools.registry import tool\n\n@tool\ndef ping() -> str:\n    return 'pong'\n"


def test_tools_file_raising_a_base_exception_subclass(tmp_path):
    from edgeagent.tools.discovery import load_tools_file

    path = tmp_path / "boom.py"
    path.write_text("class Boom(BaseException):\n    pass\n\nraise Boom('no')\n")
    with pytest.raises(ToolDefinitionError, match="Boom"):
        load_tools_file(path)
    exits = tmp_path / "exits.py"
    exits.write_text("raise SystemExit(3)\n")
    with pytest.raises(ToolDefinitionError, match="SystemExit"):
        load_tools_file(exits)


def test_tools_file_looping_at_import_is_stopped(tmp_path, monkeypatch):
    from edgeagent.tools import discovery

    monkeypatch.setattr(discovery, "IMPORT_TIMEOUT_S", 0.5)
    path = tmp_path / "loops.py"
    # it swallows ordinary exceptions; the interruption is not one of them
    path.write_text(
        TOOL + "while True:\n    try:\n        pass\n    except Exception:\n        pass\n"
    )
    started = time.monotonic()
    with pytest.raises(ToolDefinitionError, match="took longer than 0.5 s"):
        discovery.load_tools_file(path)
    assert time.monotonic() - started < 10


def test_tools_file_sleeping_at_import_is_stopped_off_the_main_thread(tmp_path, monkeypatch):
    from edgeagent.tools import discovery

    monkeypatch.setattr(discovery, "IMPORT_TIMEOUT_S", 0.5)
    path = tmp_path / "sleeps.py"
    path.write_text("import time\ntime.sleep(30)\n" + TOOL)
    caught: list[BaseException] = []

    def load() -> None:
        try:
            discovery.load_tools_file(path)
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert caught and isinstance(caught[0], ToolDefinitionError)
    assert "took longer" in caught[0].message


def test_cli_tools_list_with_a_hostile_tools_file_exits_cleanly(tmp_path):
    path = tmp_path / "boom.py"
    path.write_text("class Boom(BaseException):\n    pass\n\nraise Boom('no')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeagent.cli", "tools", "list", "--tools", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Boom" in proc.stderr and "Traceback" not in proc.stderr


HOSTILE_IMPORTS = {
    "ignores the timer and swallows everything": (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "while True:\n    try:\n        pass\n    except BaseException:\n        pass\n"
    ),
    "swallows every interruption": (
        "while True:\n    try:\n        pass\n    except BaseException:\n        pass\n"
    ),
    "leaves a non-daemon thread spinning": (
        "import threading, time\n"
        "def spin():\n    while True:\n        time.sleep(0.05)\n"
        "threading.Thread(target=spin).start()\n" + TOOL
    ),
    "raises KeyboardInterrupt": "raise KeyboardInterrupt\n",
}


@pytest.mark.parametrize("label", list(HOSTILE_IMPORTS))
def test_cli_ends_whatever_a_tools_file_does_at_import(tmp_path, label):
    """Hostile review: a file could defeat the old SIGALRM timeout, or keep the CLI from exiting."""
    path = tmp_path / "hostile.py"
    path.write_text(HOSTILE_IMPORTS[label])
    env = {**os.environ, "EDGEAGENT_HOME": str(tmp_path / "home")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "edgeagent.cli", "tools", "list", "--tools", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert time.monotonic() - started < 60
    assert "Traceback" not in proc.stderr
    if label == "leaves a non-daemon thread spinning":
        assert proc.returncode == 0 and "ping" in proc.stdout
    else:
        assert proc.returncode == 1 and str(path) in proc.stderr, proc.stderr


def test_tools_file_that_is_a_fifo_is_refused(tmp_path):
    from edgeagent.tools.discovery import load_tools_file

    fifo = tmp_path / "tools.py"
    os.mkfifo(fifo)
    with pytest.raises(ToolDefinitionError, match="not a regular file"):
        load_tools_file(fifo)


# ---- the history ---------------------------------------------------------------------------


def test_db_path_on_a_device_says_so():
    from edgeagent.store import Store

    with pytest.raises(StoreError) as caught:
        Store(os.devnull)
    assert "not a regular file" in caught.value.message
    assert "disk space" not in str(caught.value)


def test_killed_request_is_marked_interrupted_at_next_start(tmp_path):
    from edgeagent.store import Store

    db = tmp_path / "h.db"
    script = (
        "import os, sys\n"
        "from edgeagent.store import Store\n"
        f"s = Store({str(db)!r})\n"
        "s.start_request(None, 'killed mid-request', 'm')\n"
        "print('started', flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9 and b"started" in proc.stdout
    with Store(db) as store:
        mine = store.start_request(None, "still running here", "m")
        assert store.interrupted == 1
        rows = {r["prompt"]: r for r in store.recent_requests()}
    assert rows["killed mid-request"]["status"] == "interrupted"
    assert "stopped before it finished" in rows["killed mid-request"]["error"]
    with Store(db) as again:  # a live process's request is left alone
        assert again.interrupted == 0
        assert {r["id"]: r["status"] for r in again.recent_requests()}[mine] == "running"


def _history_with_foreign_values(db):
    from edgeagent.store import Store

    with Store(db) as store:
        conversation = store.start_conversation()
        request = store.start_request(conversation, "hello", "m")
        store.finish_request(request, answer="hi", latency_s=1.5, energy_j=2.0)
        other = store.start_request(conversation, "odd", "m")
        store.finish_request(other, answer="x")
    con = sqlite3.connect(db)
    con.execute(
        "UPDATE requests SET latency_s = 'slow', energy_j = 'lots', confidence = 'high', "
        "route = 7, created_at = 'yesterday' WHERE id = ?",
        (other,),
    )
    con.commit()
    con.close()


def test_stats_and_logs_survive_foreign_values(tmp_path, monkeypatch):
    db = tmp_path / "h.db"
    _history_with_foreign_values(db)
    monkeypatch.setenv("EDGEAGENT_DB_PATH", str(db))
    runner = CliRunner()
    stats = runner.invoke(cli, ["stats", "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.output)
    assert data["latency_requests"] == 1 and data["latency_p50_s"] == 1.5
    for args in (["stats"], ["logs"], ["logs", "--json"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
    assert "hello" in runner.invoke(cli, ["logs"]).output


# ---- confidence needs evidence -------------------------------------------------------------


def test_answer_confidence_without_evidence_is_zero():
    from edgeagent.agent.confidence import answer_confidence, call_confidences
    from edgeagent.runtime.local import TokenChoice

    assert answer_confidence([]).score == 0.0
    assert answer_confidence([]).reason
    forced = [TokenChoice(1, "ok", 0.0, math.inf, True)]
    assert answer_confidence(forced).score == 0.0
    blank = [TokenChoice(1, "  ", -0.01, 5.0, False)]
    assert answer_confidence(blank).score == 0.0
    nan = [TokenChoice(1, "hi", math.nan, math.nan, False)]
    assert answer_confidence(nan).score == 0.0
    sure = [TokenChoice(1, "Paris", -0.01, 5.0, False)]
    assert answer_confidence(sure).score > 0.9
    text = '{"name":"f","arguments":{"x":"a"}}'
    nan_call = [TokenChoice(i, ch, math.nan, math.nan, False) for i, ch in enumerate(text)]
    assert call_confidences(nan_call, 1, [1.0])[0].score < 0.2


# ---- hostile review: terminal, ids, names, roots ------------------------------------------


def test_terminal_control_sequences_never_reach_the_terminal():
    from edgeagent.cli_output import terminal_safe

    hostile = "ok\x1b]52;c;SGVsbG8=\x07\x1b[2J\u202egnp.exe\x9b31m\nnext\tline"
    shown = terminal_safe(hostile)
    assert not any(c in shown for c in "\x1b\x07\x9b\u202e")
    assert shown.endswith("\nnext\tline")  # newlines and tabs are kept
    assert json.loads(terminal_safe(json.dumps(hostile, ensure_ascii=False))) == hostile


def test_logs_with_an_absurd_id_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEAGENT_DB_PATH", str(tmp_path / "h.db"))
    result = CliRunner().invoke(cli, ["logs", "--id", "a" * 100_000])
    assert result.exit_code == 1 and "is not a request id" in result.output


def test_a_name_too_long_is_an_invalid_call_not_an_oserror(tmp_path):
    from edgeagent.agent.validate import validate_call
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext
    from edgeagent.tools.registry import ToolRegistry
    from edgeagent.types import ToolCall

    context = ToolContext(load_settings(allowed_roots=(tmp_path,)))
    registry = ToolRegistry(make_builtin_tools(context))
    verdict = validate_call(ToolCall("read_file", {"path": "x" * 300}), registry, context)
    assert not verdict.valid and "cannot be used" in verdict.error
    assert "OSError" not in verdict.error


def test_allowed_roots_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEAGENT_ALLOWED_ROOTS", f"{tmp_path / 'missing'}:{tmp_path}")
    with pytest.raises(ConfigError, match="is not an existing folder"):
        load_settings()


def test_a_ref_cycle_without_a_base_case_is_noted_not_silently_dropped():
    from edgeagent.grammar.compiler import compile_schema

    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}},
        "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}},
    }
    assert any("can never finish" in note for note in compile_schema(schema).notes)
