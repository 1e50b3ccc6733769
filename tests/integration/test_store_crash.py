"""SIGKILL a process that is writing history: every write it reported committed survives."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeagent.store import Store

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from edgeagent.store import Store
    from edgeagent.types import ToolCall, ToolResult

    store = Store(Path(sys.argv[1]))
    conversation = store.start_conversation("crash test", "m")
    print("conversation", conversation, flush=True)
    i = 0
    while True:
        request_id = store.start_request(conversation, f"prompt {i}", "m")
        store.add_message(conversation, "user", f"message {i} " + "x" * 3000)
        call = ToolCall("read_file", {"path": f"file{i}.txt"})
        store.add_tool_call(request_id, call, schema_valid=True, semantic_valid=True)
        store.update_tool_call(call.id, ToolResult(call.id, "read_file", "ok", output="y" * 5000))
        store.finish_request(request_id, answer=f"answer {i}", route="local", latency_s=0.1)
        print("committed", i, request_id, call.id, flush=True)
        i += 1
    """
)

OPEN_TRANSACTION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from edgeagent.store import Store

    store = Store(Path(sys.argv[1]))
    store.add_note("committed before the kill")
    conn = store.db.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO notes (text, tags_json, created_at) VALUES ('in flight', '[]', 0)")
    print("in-transaction", flush=True)
    time.sleep(60)
    """
)


def _spawn(script: str, db: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill(proc: subprocess.Popen) -> list[str]:
    """SIGKILL the child and return every complete line it printed before dying."""
    os.kill(proc.pid, signal.SIGKILL)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return [line for line in rest.splitlines(keepends=True) if line.endswith("\n")]


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(str(db))
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("kill_after", [1, 25])
def test_sigkill_mid_stream_loses_nothing_committed(tmp_path, kill_after):
    db = tmp_path / "home" / "edgeagent.db"
    proc = _spawn(WRITER, db)
    try:
        lines = [proc.stdout.readline()]
        assert lines[0].startswith("conversation"), proc.stderr.read()
        while sum(line.startswith("committed") for line in lines) < kill_after:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        lines += _kill(proc)  # lines printed between our last read and the kill count too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Path(f"{db}-wal").exists(), "the child died with an open WAL, as intended"
    conversation = lines[0].split()[1]
    committed = [line.split() for line in lines[1:]]
    assert len(committed) >= kill_after

    assert _integrity(db) == "ok"
    with Store(db) as store:
        assert store.integrity_check() == "ok"
        messages = store.messages(conversation)
        assert len(messages) >= len(committed)
        for _, i, request_id, call_id in committed:
            detail = store.request_detail(request_id)
            assert detail["status"] == "done"
            assert detail["answer"] == f"answer {i}"
            assert [(c["id"], c["status"], c["result_chars"]) for c in detail["calls"]] == [
                (call_id, "ok", 5000)
            ]
            assert messages[int(i)]["content"].startswith(f"message {i} ")
        # the write in progress may be there partly (e.g. a request still 'running'), never more
        statuses = [r["status"] for r in store.recent_requests(limit=1000)]
        assert statuses.count("done") in (len(committed), len(committed) + 1)
        assert statuses.count("running") <= 1
        # and the store is fully usable afterwards
        store.finish_request(store.start_request(conversation, "after", "m"), answer="ok")
    assert _integrity(db) == "ok"


def test_sigkill_inside_a_transaction_rolls_it_back(tmp_path):
    db = tmp_path / "edgeagent.db"
    proc = _spawn(OPEN_TRANSACTION, db)
    try:
        line = proc.stdout.readline()
        assert line == "in-transaction\n", proc.stderr.read()
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _integrity(db) == "ok"
    with Store(db) as store:
        assert [n["text"] for n in store.list_notes()] == ["committed before the kill"]
        store.add_note("the lock died with the process")
        assert len(store.list_notes()) == 2
