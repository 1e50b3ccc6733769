"""Built-in tools run through the Executor on real files, a real local HTTP server and psutil."""

from __future__ import annotations

import builtins
import datetime
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgeagent.config import load_settings
from edgeagent.errors import OfflineError, ToolExecutionError, ToolValidationError
from edgeagent.tools.builtin import BUILTIN_NAMES, make_builtin_tools
from edgeagent.tools.builtin.system import evaluate
from edgeagent.tools.context import ToolContext
from edgeagent.tools.executor import Executor
from edgeagent.tools.policy import Policy
from edgeagent.tools.registry import ToolRegistry
from edgeagent.types import ToolResult


class MemoryStore:
    """An in-memory stand-in with the NotesStore methods."""

    def __init__(self) -> None:
        self.notes: list[dict] = []

    def add_note(self, text: str, tags: list[str]) -> int:
        self.notes.append({"id": len(self.notes) + 1, "text": text, "tags": tags})
        return len(self.notes)

    def search_notes(self, query: str, limit: int) -> list[dict]:
        return [n for n in self.notes if query.lower() in n["text"].lower()][:limit]

    def list_notes(self, limit: int) -> list[dict]:
        return list(reversed(self.notes))[:limit]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "docs").mkdir(parents=True)
    (r / "docs" / "guide.md").write_text("# Guide\nInstall with pip.\nThen run it.\n", "utf-8")
    (r / "main.py").write_text("def main():\n    print('hello pip')\n", "utf-8")
    (r / "image.bin").write_bytes(b"\x89PNG\x00\x01pip\x00" * 10)
    return r.resolve()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def context(root: Path, store: MemoryStore) -> ToolContext:
    return ToolContext(load_settings(allowed_roots=(root,)), allow_network=False, store=store)


def run(context: ToolContext, name: str, policy: Policy | None = None, **args) -> ToolResult:
    """Run one built-in through the executor, pre-approved (confirmation is tested elsewhere)."""
    ex = Executor(make_builtin_tools(context), policy or Policy(auto_approve=True), context)
    from edgeagent.types import ToolCall

    return ex.run(ToolCall(name, args))


# --- the set of tools ---------------------------------------------------------------------------


def _strings(schema: dict) -> Iterator[dict]:
    if schema.get("type") == "string":
        yield schema
    for sub in (schema.get("properties") or {}).values():
        yield from _strings(sub)
    if isinstance(schema.get("items"), dict):
        yield from _strings(schema["items"])


def test_builtins_are_complete_and_grammar_friendly(context: ToolContext) -> None:
    made = make_builtin_tools(context)
    assert [t.name for t in made] == list(BUILTIN_NAMES)
    registry = ToolRegistry(made)
    assert len(registry) == 12
    risks = {t.name: t.risk for t in made}
    assert {n for n, r in risks.items() if r == "write"} == {"write_file", "add_note"}
    assert {n for n, r in risks.items() if r == "network"} == {"http_get"}
    for t in made:
        assert t.source == "builtin" and t.executable and not t.local_only
        assert 10 < len(t.description) <= 100, t.description
        for prop in _strings(t.parameters):
            assert "maxLength" in prop, (t.name, prop)


# --- files --------------------------------------------------------------------------------------


def test_list_dir(context: ToolContext, root: Path) -> None:
    result = run(context, "list_dir")
    assert result.status == "ok"
    lines = result.output.splitlines()
    assert lines[0] == ".: 3 entries"
    assert lines[1] == "docs/"  # folders first
    assert "main.py (35 B)" in lines and "image.bin (100 B)" in lines
    assert run(context, "list_dir", path="docs").output.splitlines()[1].startswith("guide.md")
    assert run(context, "list_dir", path="main.py").status == "invalid"
    assert run(context, "list_dir", path="missing").status == "invalid"


def test_read_file(context: ToolContext, root: Path) -> None:
    result = run(context, "read_file", path="docs/guide.md")
    assert result.status == "ok" and result.output == "# Guide\nInstall with pip.\nThen run it.\n"
    long_text = "word " * 100
    (root / "long.txt").write_text(long_text)
    cut = run(context, "read_file", path="long.txt", max_chars=200)
    assert cut.output.startswith(long_text[:200] + "\n[... file continues; ")
    assert run(context, "read_file", path="docs/guide.md", max_chars=7).status == "invalid"
    assert run(context, "read_file", path=str(root / "main.py")).output.startswith("def main")


def test_read_file_refuses_binary_and_non_utf8(context: ToolContext, root: Path) -> None:
    result = run(context, "read_file", path="image.bin")
    assert result.status == "error" and "binary" in (result.error or "")
    (root / "latin1.txt").write_bytes("café".encode("latin-1"))
    result = run(context, "read_file", path="latin1.txt")
    assert result.status == "error" and "not UTF-8" in (result.error or "")
    assert run(context, "read_file", path="docs").status == "invalid"
    assert run(context, "read_file", path="nope.txt").status == "invalid"


def test_search_files(context: ToolContext, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("pip secret outside\n", "utf-8")
    (root / "leak.txt").symlink_to(outside)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("pip in git\n", "utf-8")
    result = run(context, "search_files", query="PIP")
    assert result.status == "ok"
    assert result.output.splitlines() == [
        "main.py:2: print('hello pip')",
        "docs/guide.md:2: Install with pip.",
    ] or sorted(result.output.splitlines()) == [
        "docs/guide.md:2: Install with pip.",
        "main.py:2: print('hello pip')",
    ]
    assert "secret" not in result.output and "image.bin" not in result.output
    assert ".git" not in result.output
    only_py = run(context, "search_files", query="pip", glob="*.py")
    assert only_py.output == "main.py:2: print('hello pip')"
    in_docs = run(context, "search_files", query="run", path="docs")
    assert in_docs.output == "docs/guide.md:3: Then run it."
    assert run(context, "search_files", query="zebra").output.startswith("no matches for 'zebra'")


def test_search_files_stops_at_max_results(context: ToolContext, root: Path) -> None:
    (root / "many.txt").write_text("needle\n" * 50, "utf-8")
    result = run(context, "search_files", query="needle", max_results=3)
    assert result.output.splitlines() == [
        "many.txt:1: needle",
        "many.txt:2: needle",
        "many.txt:3: needle",
        "[stopped at 3 results]",
    ]


def test_file_info(context: ToolContext, root: Path) -> None:
    info = json.loads(run(context, "file_info", path="main.py").output)
    assert info["path"] == "main.py" and info["type"] == "file"
    assert info["size_bytes"] == 35 and info["text"] is True
    modified = datetime.datetime.fromisoformat(info["modified"])
    assert abs(modified.timestamp() - (root / "main.py").stat().st_mtime) < 2
    assert json.loads(run(context, "file_info", path="image.bin").output)["text"] is False
    folder = json.loads(run(context, "file_info", path="docs").output)
    assert folder["type"] == "folder" and folder["entries"] == 1


def test_write_file(context: ToolContext, root: Path) -> None:
    result = run(context, "write_file", path="out/new.txt", content="héllo\n")
    assert result.status == "ok" and result.output == "wrote 6 characters to out/new.txt"
    assert (root / "out" / "new.txt").read_text("utf-8") == "héllo\n"
    again = run(context, "write_file", path="out/new.txt", content="other")
    assert again.status == "invalid" and "already exists" in (again.error or "")
    assert "overwrite=true" in (again.error or "")
    assert (root / "out" / "new.txt").read_text("utf-8") == "héllo\n"
    (root / "out" / "new.txt").chmod(0o640)
    replaced = run(context, "write_file", path="out/new.txt", content="other", overwrite=True)
    assert replaced.status == "ok" and (root / "out" / "new.txt").read_text("utf-8") == "other"
    assert (root / "out" / "new.txt").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in (root / "out").iterdir()] == ["new.txt"]  # no temp file left
    assert run(context, "write_file", path="docs", content="x", overwrite=True).status == "invalid"


def test_file_tools_recheck_paths_even_without_validation(context: ToolContext) -> None:
    by_name = {t.name: t for t in make_builtin_tools(context)}
    for name, args in [
        ("read_file", {"path": "/etc/passwd"}),
        ("list_dir", {"path": "../.."}),
        ("write_file", {"path": "../escape.txt", "content": "x"}),
    ]:
        with pytest.raises(ToolValidationError, match="outside the allowed roots"):
            by_name[name].call(args)  # call() skips semantic validators
    assert not (context.root.parent / "escape.txt").exists()


# --- notes --------------------------------------------------------------------------------------


def test_notes(context: ToolContext, store: MemoryStore) -> None:
    assert run(context, "list_notes").output == "no notes yet"
    added = run(context, "add_note", text="Buy oat milk", tags=["shopping", " shopping ", ""])
    assert added.status == "invalid"  # empty tag refused by the schema (minLength 1)
    added = run(context, "add_note", text="Buy oat milk", tags=["shopping", " shopping "])
    assert added.output == "saved note 1"
    assert store.notes[0]["tags"] == ["shopping"]
    run(context, "add_note", text="Call the dentist")
    found = json.loads(run(context, "search_notes", query="milk").output)
    assert [n["text"] for n in found] == ["Buy oat milk"]
    assert run(context, "search_notes", query="zebra").output == "no notes match 'zebra'"
    listed = json.loads(run(context, "list_notes", limit=1).output)
    assert [n["text"] for n in listed] == ["Call the dentist"]


def test_add_note_needs_confirmation(context: ToolContext, store: MemoryStore) -> None:
    result = run(context, "add_note", policy=Policy(), text="planted by a web page")
    assert result.status == "declined" and store.notes == []


def test_notes_open_the_real_store_when_none_is_given(root: Path) -> None:
    context = ToolContext(load_settings(allowed_roots=(root,)))
    assert context.store is None
    assert run(context, "add_note", text="remember the keys", tags=["home"]).status == "ok"
    listed = run(context, "list_notes")
    assert listed.status == "ok" and "remember the keys" in listed.output
    assert context.settings.db_path is not None and context.settings.db_path.exists()


# --- calculator ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("-(3 - 5)", "2"),
        ("+4", "4"),
        ("sqrt(16)", "4.0"),
        ("round(pi, 3)", "3.142"),
        ("abs(-2.5)", "2.5"),
        ("log(100, 10)", "2.0"),
        ("max(1, 5, 3)", "5"),
        ("exp(0) + cos(0) + sin(0)", "2.0"),
        ("1e3 + 0.5", "1000.5"),
    ],
)
def test_calculator_computes(context: ToolContext, expression: str, value: str) -> None:
    result = run(context, "calculator", expression=expression)
    assert result.status == "ok" and result.output == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo pwned')",
        "().__class__.__bases__",
        "(1).real",
        "os",
        "x + 1",
        "sqrt",
        "open('/etc/passwd')",
        "'a' * 3",
        "True + 1",
        "1j * 2",
        "lambda: 1",
        "[1, 2]",
        "1 if 1 else 2",
        "1 < 2",
        "1 << 4",
        "~1",
        "sqrt(x=4)",
        "sqrt(1, 2)",
        "2 +",
        "a = 1",
        "sqrt(*[4])",
    ],
)
def test_calculator_refuses_anything_but_arithmetic(context: ToolContext, expression: str) -> None:
    result = run(context, "calculator", expression=expression)
    assert result.status == "invalid", (expression, result)
    assert "expression" in (result.error or "")


def test_calculator_never_uses_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        pytest.fail("eval/exec was called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert evaluate("2 * (3 + 4)") == 14


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "too large"),
        ("2**100000", "too large"),
        ("(10**3000) * (10**3000)", "too large"),
        ("10.0 ** 400", "too large"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "cannot compute"),
        ("(-8) ** 0.5", "not a real number"),
        ("round(1.5, 10**6)", "round() digits"),
    ],
)
def test_calculator_bounds_and_math_errors(
    context: ToolContext, expression: str, message: str
) -> None:
    start = time.perf_counter()
    result = run(context, "calculator", expression=expression)
    assert time.perf_counter() - start < 1.0
    assert result.status == "error" and message in (result.error or ""), result


def test_calculator_length_is_bounded(context: ToolContext) -> None:
    assert run(context, "calculator", expression="1+" * 150 + "1").status == "invalid"


# --- time and system ----------------------------------------------------------------------------


def test_current_time(context: ToolContext) -> None:
    utc = json.loads(run(context, "current_time", timezone="UTC").output)
    parsed = datetime.datetime.fromisoformat(utc["iso"])
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert abs(parsed.timestamp() - time.time()) < 5
    assert utc["timezone"] == "UTC" and utc["weekday"] == parsed.strftime("%A")
    # in words too, the way a small model can copy it into an answer
    assert utc["date"] == f"{parsed:%A}, {parsed.day} {parsed:%B %Y}"
    assert utc["time"] == f"{parsed:%H:%M}"
    paris = json.loads(run(context, "current_time", timezone="Europe/Paris").output)
    offset = datetime.datetime.fromisoformat(paris["iso"]).utcoffset()
    assert offset in (datetime.timedelta(hours=1), datetime.timedelta(hours=2))
    local = json.loads(run(context, "current_time").output)
    assert datetime.datetime.fromisoformat(local["iso"]).tzinfo is not None


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "../../etc/passwd", "not a zone", "/etc/localtime"]
)
def test_current_time_rejects_unknown_zones(context: ToolContext, zone: str) -> None:
    result = run(context, "current_time", timezone=zone)
    assert result.status == "invalid" and "unknown time zone" in (result.error or "")


def test_system_status(context: ToolContext) -> None:
    import psutil

    status = json.loads(run(context, "system_status").output)
    assert 0.0 <= float(status["cpu_load"].removesuffix("%")) <= 100.0
    assert status["cpu_cores"] == psutil.cpu_count()
    total = round(psutil.virtual_memory().total / 2**20)
    assert status["memory_total"].startswith(f"{total} MB (")
    assert 0 < int(status["memory_available"].removesuffix(" MB")) <= total
    assert status["memory_used"].endswith("%")
    assert status["battery"]  # "no battery found" here, "80% (charging)" on laptops


# --- http_get -----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/hello":
            self._send(200, "text/plain; charset=utf-8", "hello from loopback ✓".encode())
        elif self.path == "/big":
            self._send(200, "text/html", b"a" * 50_000)
        elif self.path == "/bin":
            self._send(200, "application/octet-stream", b"\x00\x01" * 100)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/hello")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"nothing here")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def online(root: Path, store: MemoryStore) -> ToolContext:
    return ToolContext(load_settings(allowed_roots=(root,)), allow_network=True, store=store)


def test_http_get_online(online: ToolContext, server: str) -> None:
    policy = Policy(auto_approve=True, allow_network=True)
    result = run(online, "http_get", policy=policy, url=f"{server}/hello")
    assert result.status == "ok", result
    assert result.output.startswith("HTTP 200 OK\n")
    assert result.output.endswith("\n\nhello from loopback ✓")
    moved = run(online, "http_get", policy=policy, url=f"{server}/moved")
    assert f"URL: {server}/hello" in moved.output and "hello from loopback" in moved.output
    missing = run(online, "http_get", policy=policy, url=f"{server}/missing")
    assert missing.status == "ok" and missing.output.startswith("HTTP 404")
    big = run(online, "http_get", policy=policy, url=f"{server}/big", max_bytes=1000)
    body = big.output.split("\n\n", 1)[1]
    assert body == "a" * 1000 + "\n[... body cut at 1000 bytes]"
    binary = run(online, "http_get", policy=policy, url=f"{server}/bin")
    assert "[binary content (200 bytes read), not shown]" in binary.output


def test_http_get_needs_confirmation_when_online(online: ToolContext, server: str) -> None:
    result = run(online, "http_get", policy=Policy(allow_network=True), url=f"{server}/hello")
    assert result.status == "declined" and result.output == ""


def test_http_get_connection_failure_is_an_error(online: ToolContext) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    policy = Policy(auto_approve=True, allow_network=True)
    result = run(online, "http_get", policy=policy, url=f"http://127.0.0.1:{port}/")
    assert result.status == "error" and "could not fetch" in (result.error or "")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "example.org", "http://", "javascript:1"]
)
def test_http_get_only_http_urls(online: ToolContext, url: str) -> None:
    policy = Policy(auto_approve=True, allow_network=True)
    result = run(online, "http_get", policy=policy, url=url)
    assert result.status == "invalid" and "http or https" in (result.error or "")


def test_http_get_tool_itself_refuses_when_context_is_offline(
    context: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if a caller bypassed the policy, the offline context stops it before any socket."""
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("connected"))
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    http_get = next(t for t in make_builtin_tools(context) if t.name == "http_get")
    with pytest.raises(OfflineError, match=re.escape("the network is off; run with --online")):
        http_get.call({"url": "http://127.0.0.1:9/"})
    # and through an executor whose policy wrongly allows the network: still an error, no socket
    ex = Executor([http_get], Policy(auto_approve=True, allow_network=True), context)
    from edgeagent.types import ToolCall

    result = ex.run(ToolCall("http_get", {"url": "http://127.0.0.1:9/"}))
    assert result.status == "error" and result.error_type == "OfflineError"


def test_errors_are_typed(context: ToolContext) -> None:
    by_name = {t.name: t for t in make_builtin_tools(context)}
    with pytest.raises(ToolExecutionError, match="binary"):
        by_name["read_file"].call({"path": "image.bin"})


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("divide 355 by 113", 355 / 113),
        ("Subtract 86.25 from 1000", 913.75),
        ("the square root of 1764", 42),
        ("the average of 10, 20 and 45", 25),
        ("sum of 1,2, 3 and 4", 10),
        ("12 squared", 144),
        ("multiply 6 by 7", 42),
    ],
)
def test_calculator_takes_everyday_phrasings(context: ToolContext, expression, value) -> None:
    result = run(context, "calculator", expression=expression)
    assert result.ok and float(result.output) == pytest.approx(value)
