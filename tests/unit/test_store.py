"""The history store: schema, migrations, refusal of bad files, writes, notes, secret scrubbing."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading

import pytest

from edgeagent.errors import StoreError
from edgeagent.store import Store, migrations, scrub_secrets
from edgeagent.store import db as store_db
from edgeagent.types import RouteDecision, ToolCall, ToolResult, Usage

ALL_MIGRATIONS = ["m001_initial", "m002_request_owner", "m003_learning", "m004_message_search"]
EXPECTED_COLUMNS = {
    "_migrations": ["name", "applied_at"],
    "conversations": ["id", "title", "model", "created_at"],
    "messages": ["id", "conversation_id", "role", "content", "name", "call_id", "created_at"],
    "requests": [
        "id",
        "conversation_id",
        "prompt",
        "model",
        "status",
        "answer",
        "route",
        "route_reason",
        "confidence",
        "confidence_threshold",
        "latency_s",
        "ttft_s",
        "prompt_tokens",
        "cached_prompt_tokens",
        "output_tokens",
        "remote_prompt_tokens",
        "remote_output_tokens",
        "energy_j",
        "energy_source",
        "energy_estimated",
        "engine",
        "error",
        "created_at",
        "finished_at",
        "owner",
        "feedback",
        "answer_by",
    ],
    "tool_calls": [
        "id",
        "request_id",
        "name",
        "arguments_json",
        "schema_valid",
        "semantic_valid",
        "validation_error",
        "repaired",
        "status",
        "confidence",
        "confidence_parts_json",
        "route",
        "result_digest",
        "result_preview",
        "result_chars",
        "error",
        "duration_s",
        "created_at",
    ],
    "notes": ["id", "text", "tags_json", "created_at"],
}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "nested" / "dir" / "history.db"


@pytest.fixture
def store(db_path):
    with Store(db_path) as s:
        yield s


def _raw(path):
    return sqlite3.connect(str(path))


def _bytes(path):
    return path.read_bytes()


def _execute_raw(path, sql):
    """Run one statement on ``path`` through plain sqlite3 (not the Store) and commit it."""
    conn = _raw(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def _fill(path):
    """A history of 200 long messages, enough for several pages."""
    with Store(path) as s:
        conversation = s.start_conversation("long")
        for i in range(200):
            s.add_message(conversation, "user", f"{i} " + "x" * 500)


# -- schema and migrations -------------------------------------------------------------------


def test_migrations_create_exactly_the_expected_columns(store):
    user_tables = {
        t for t in store.db.table_names() if not t.startswith(("notes_fts", "messages_fts"))
    }
    assert user_tables == set(EXPECTED_COLUMNS)
    for table, columns in EXPECTED_COLUMNS.items():
        assert [c.name for c in store.db[table].columns] == columns, table
    assert store.db["tool_calls"].foreign_keys[0].other_table == "requests"
    assert {fk.other_table for fk in store.db["messages"].foreign_keys} == {"conversations"}
    if migrations.fts5_available():
        assert {"notes_fts", "messages_fts"} <= set(store.db.table_names())


def test_migrations_recorded_and_reopen_is_idempotent(db_path):
    with Store(db_path) as first:
        assert first.applied_migrations == ALL_MIGRATIONS
        first.add_note("survives reopening")
    rows = _raw(db_path).execute("SELECT name, applied_at FROM _migrations").fetchall()
    assert [r[0] for r in rows] == migrations.known_names() == ALL_MIGRATIONS
    assert isinstance(rows[0][1], float) and rows[0][1] > 1e9
    with Store(db_path) as second:
        assert second.applied_migrations == []
        assert [n["text"] for n in second.list_notes()] == ["survives reopening"]
    assert _raw(db_path).execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(
        ALL_MIGRATIONS
    )


def test_migration_registry_rejects_bad_names_and_order():
    def m007_skipped(db):  # pragma: no cover - never runs
        pass

    def bad_name(db):  # pragma: no cover - never runs
        pass

    with pytest.raises(ValueError, match="out of order"):
        migrations.migration(m007_skipped)
    with pytest.raises(ValueError, match="m001_description"):
        migrations.migration(bad_name)
    assert migrations.known_names() == ALL_MIGRATIONS


def test_failed_migration_rolls_back_and_is_retried(db_path, monkeypatch):
    def m099_broken(db):
        db["extra"].create({"id": int}, pk="id")
        raise RuntimeError("boom")

    shipped = list(migrations.MIGRATIONS)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*shipped, m099_broken])
    with pytest.raises(RuntimeError, match="boom"):
        Store(db_path)
    conn = _raw(db_path)
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations")] == ALL_MIGRATIONS
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None
    conn.close()

    def m099_fixed(db):
        db["extra"].create({"id": int}, pk="id")

    m099_fixed.__name__ = "m099_broken"
    monkeypatch.setattr(migrations, "MIGRATIONS", [*shipped, m099_fixed])
    with Store(db_path) as s:
        assert s.applied_migrations == ["m099_broken"]
        assert "extra" in s.db.table_names()


def test_newer_schema_is_refused_and_left_alone(db_path):
    Store(db_path).close()
    _execute_raw(db_path, "INSERT INTO _migrations VALUES ('m999_from_the_future', 1.0)")
    before = _bytes(db_path)
    with pytest.raises(StoreError, match="newer edgeagent") as info:
        Store(db_path)
    assert "m999_from_the_future" in info.value.message
    assert info.value.hint and "upgrade" in info.value.hint
    assert _bytes(db_path) == before


def test_wal_and_pragmas(store):
    conn = store.db.conn
    assert store.journal_mode == "wal"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_creates_parent_directories(db_path):
    assert not db_path.parent.exists()
    Store(db_path).close()
    assert db_path.is_file()


# -- refusing files that are not ours --------------------------------------------------------


def _assert_refused(path, *words):
    before = _bytes(path)
    with pytest.raises(StoreError) as info:
        Store(path)
    err = info.value
    assert "\n" not in str(err)
    assert err.hint == (f"move it aside: mv {path} {path}.corrupt; edgeagent will create a new one")
    for word in words:
        assert word in err.message
    assert _bytes(path) == before, "a refused file must not be modified"
    return err


def test_random_bytes_are_refused_untouched(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"\x00garbage" + os.urandom(4096))
    _assert_refused(path, "not an SQLite file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.db"]


def test_text_file_is_refused_untouched(tmp_path):
    path = tmp_path / "history.db"
    path.write_text("this is my shopping list, not a database\n")
    _assert_refused(path, "not an SQLite file")


def test_truncated_database_is_refused_untouched(db_path):
    _fill(db_path)
    assert not os.path.exists(f"{db_path}-wal")  # checkpointed on close
    data = _bytes(db_path)
    db_path.write_bytes(data[: len(data) // 2])
    _assert_refused(db_path, "truncated")


def test_truncated_header_is_refused(tmp_path):
    path = tmp_path / "history.db"
    Store(path).close()
    path.write_bytes(_bytes(path)[:40])
    _assert_refused(path, "truncated")


def test_corrupt_pages_are_refused_untouched(db_path):
    _fill(db_path)
    data = bytearray(_bytes(db_path))
    page_size = int.from_bytes(data[16:18], "big")
    pages = len(data) // page_size
    for page in range(pages // 2, pages):  # the schema pages stay readable; messages do not
        start = page * page_size
        data[start : start + page_size] = bytes([0xA5]) * page_size
    db_path.write_bytes(bytes(data))
    _assert_refused(db_path)


def test_foreign_sqlite_database_is_not_modified(tmp_path):
    path = tmp_path / "other.db"
    _execute_raw(path, "CREATE TABLE recipes (name TEXT)")
    before = _bytes(path)
    with pytest.raises(StoreError, match="not an edgeagent history") as info:
        Store(path)
    assert "recipes" in info.value.message
    assert _bytes(path) == before


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        Store(tmp_path)


def test_empty_file_becomes_a_new_database(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"")
    with Store(path) as s:
        assert s.applied_migrations == ALL_MIGRATIONS


# -- requests, calls, messages ---------------------------------------------------------------


def test_start_request_is_committed_at_once(store, db_path):
    conversation = store.start_conversation("chat", "smollm")
    request_id = store.start_request(conversation, "list files", "smollm")
    other = _raw(db_path)  # a second connection sees only committed data
    row = other.execute("SELECT status, prompt, model FROM requests WHERE id = ?", (request_id,))
    assert row.fetchone() == ("running", "list files", "smollm")
    other.close()


def test_finish_request_fields_and_conveniences(store):
    conversation = store.start_conversation()
    request_id = store.start_request(conversation, "p", "m")
    store.finish_request(
        request_id,
        answer="42",
        decision=RouteDecision("remote", 0.25, 0.5, "low confidence"),
        usage=Usage(prompt_tokens=100, cached_prompt_tokens=80, output_tokens=12, ttft_s=0.3),
        energy_j=3.5,
        energy_source="estimate",
        energy_estimated=True,
        remote_prompt_tokens=90,
        remote_output_tokens=9,
        engine="llguidance",
        latency_s=1.5,
    )
    row = store.recent_requests()[0]
    assert row["status"] == "done"
    assert (row["route"], row["route_reason"], row["confidence"]) == (
        "remote",
        "low confidence",
        0.25,
    )
    assert row["confidence_threshold"] == 0.5
    assert (row["prompt_tokens"], row["cached_prompt_tokens"], row["output_tokens"]) == (
        100,
        80,
        12,
    )
    assert row["ttft_s"] == 0.3 and row["latency_s"] == 1.5
    assert row["energy_estimated"] is True and row["energy_j"] == 3.5
    assert row["finished_at"] >= row["created_at"]
    assert row["n_calls"] == 0


def test_finish_request_defaults_and_errors(store):
    request_id = store.start_request(None, "p", "m")
    store.finish_request(request_id, error="model crashed")
    row = store.request_detail(request_id)
    assert row["status"] == "failed"
    assert row["latency_s"] == pytest.approx(row["finished_at"] - row["created_at"])
    with pytest.raises(StoreError, match="unknown field.*bogus"):
        store.finish_request(request_id, bogus=1)
    with pytest.raises(StoreError, match="'done', 'failed' or 'interrupted'"):
        store.finish_request(request_id, status="running")
    with pytest.raises(StoreError, match="no request with id"):
        store.finish_request("nope", answer="x")


def test_tool_calls_with_results(store):
    request_id = store.start_request(None, "read it", "m")
    call = ToolCall(
        "read_file",
        {"path": "a.txt"},
        confidence=0.8,
        confidence_parts={"name_margin": 0.9, "arg_min": 0.7},
        repaired=True,
    )
    output = "é" * 700
    result = ToolResult(call.id, "read_file", "ok", output=output, duration_s=0.25)
    assert store.add_tool_call(request_id, call, schema_valid=True, semantic_valid=True) == call.id
    pending = store.request_detail(request_id)["calls"][0]
    assert pending["status"] == "proposed" and pending["result_digest"] is None
    store.update_tool_call(call.id, result)

    invalid = ToolCall("read_file", {"path": 3}, status="invalid")
    store.add_tool_call(
        request_id,
        invalid,
        schema_valid=False,
        semantic_valid=False,
        validation_error="path: expected string",
    )
    calls = store.request_detail(request_id)["calls"]
    assert [c["id"] for c in calls] == [call.id, invalid.id]
    ok = calls[0]
    assert ok["status"] == "ok" and ok["arguments"] == {"path": "a.txt"}
    assert ok["schema_valid"] is True and ok["semantic_valid"] is True and ok["repaired"] is True
    assert ok["result_digest"] == hashlib.sha256(output.encode()).hexdigest()
    assert ok["result_preview"] == output[:500]
    assert ok["result_chars"] == 700 and ok["duration_s"] == 0.25
    assert ok["confidence"] == 0.8
    assert ok["confidence_parts"] == {"arg_min": 0.7, "name_margin": 0.9}
    bad = calls[1]
    assert (bad["schema_valid"], bad["status"], bad["validation_error"]) == (
        False,
        "invalid",
        "path: expected string",
    )
    assert store.recent_requests()[0]["n_calls"] == 2


def test_tool_call_errors(store):
    request_id = store.start_request(None, "p", "m")
    call = ToolCall("x", {})
    failed = ToolResult(call.id, "x", "error", error="disk on fire", duration_s=0.1)
    store.add_tool_call(request_id, call, schema_valid=True, semantic_valid=True, result=failed)
    row = store.request_detail(request_id)["calls"][0]
    assert (row["status"], row["error"]) == ("error", "disk on fire")
    with pytest.raises(StoreError, match="rejected"):  # same id twice
        store.add_tool_call(request_id, call, schema_valid=True, semantic_valid=True)
    with pytest.raises(StoreError, match="rejected"):  # no such request (foreign key)
        store.add_tool_call("missing", ToolCall("x", {}), schema_valid=True, semantic_valid=True)
    with pytest.raises(StoreError, match="no tool call with id"):
        store.update_tool_call("missing", failed)
    with pytest.raises(StoreError, match="unknown field"):
        store.update_tool_call(call.id, colour="red")
    store.update_tool_call(call.id, status="timeout", confidence_parts={"a": 1.0})
    row = store.request_detail(request_id)["calls"][0]
    assert (row["status"], row["confidence_parts"]) == ("timeout", {"a": 1.0})


def test_messages_and_request_detail(store):
    conversation = store.start_conversation("files", "smollm")
    first = store.add_message(conversation, "user", "list files")
    second = store.add_message(conversation, "tool", "a.txt", name="list_dir", call_id="c1")
    assert second == first + 1
    request_id = store.start_request(conversation, "list files", "smollm")
    detail = store.request_detail(request_id[:6])  # a unique prefix works
    assert detail["id"] == request_id
    assert detail["conversation"]["title"] == "files"
    assert [(m["role"], m["name"], m["call_id"]) for m in detail["messages"]] == [
        ("user", None, None),
        ("tool", "list_dir", "c1"),
    ]
    with pytest.raises(StoreError, match="no request"):
        store.request_detail("zzzz")
    with pytest.raises(StoreError, match="rejected"):
        store.add_message("no-such-conversation", "user", "hi")


def test_recent_requests_newest_first_with_limit(store):
    ids = [store.start_request(None, f"p{i}", "m") for i in range(5)]
    recent = store.recent_requests(limit=3)
    assert [r["id"] for r in recent] == ids[::-1][:3]


def test_closed_store_raises_store_error(db_path):
    with Store(db_path) as s:
        pass
    with pytest.raises(StoreError, match="closed"):
        s.add_note("late")
    s.close()  # idempotent


def test_locked_database_is_a_store_error(db_path, monkeypatch):
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 0.1)
    s = Store(db_path)
    blocker = sqlite3.connect(str(db_path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            s.add_note("blocked")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    s.add_note("after")  # the store recovers once the lock is gone
    assert [n["text"] for n in s.list_notes()] == ["after"]
    s.close()


def test_concurrent_writers_from_threads(store):
    request_id = store.start_request(None, "p", "m")

    def write(k):
        for i in range(20):
            store.add_tool_call(
                request_id, ToolCall("t", {"k": k, "i": i}), schema_valid=True, semantic_valid=True
            )

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.request_detail(request_id)["calls"]) == 80


# -- notes -----------------------------------------------------------------------------------


def test_notes_add_list_search(store):
    a = store.add_note("buy milk and eggs", ["shopping"])
    b = store.add_note("call the plumber about the leak", ["home", "urgent"])
    c = store.add_note("Milk prices went up", "news")
    assert (a, b, c) == (1, 2, 3)
    assert [n["id"] for n in store.list_notes()] == [c, b, a]
    assert [n["id"] for n in store.list_notes(limit=1)] == [c]
    assert store.list_notes()[2] == {
        "id": a,
        "text": "buy milk and eggs",
        "tags": ["shopping"],
        "created_at": store.list_notes()[2]["created_at"],
    }
    assert {n["id"] for n in store.search_notes("milk")} == {a, c}
    assert [n["id"] for n in store.search_notes("milk eggs")] == [a]  # every word must match
    assert [n["id"] for n in store.search_notes("urgent")] == [b]  # tags are searched
    assert [n["id"] for n in store.search_notes("plumb")] == [b]  # substring fallback
    assert store.search_notes("volcano") == []
    assert len(store.search_notes("milk", limit=1)) == 1
    assert [n["id"] for n in store.search_notes("  ")] == [c, b, a]  # blank: newest
    for odd in ['say "hi', "what's up?", "a AND OR NOT (", "100%", "*"]:
        assert isinstance(store.search_notes(odd), list)


@pytest.mark.skipif(not migrations.fts5_available(), reason="this SQLite has no FTS5")
def test_notes_search_is_stemmed(store):
    note = store.add_note("buying a new bicycle")
    assert [n["id"] for n in store.search_notes("buy bicycles")] == [note]


def test_notes_search_without_fts5(db_path, monkeypatch):
    monkeypatch.setattr(migrations, "fts5_available", lambda: False)
    with Store(db_path) as s:
        assert "notes_fts" not in s.db.table_names()
        note = s.add_note("Remember the 50% discount", ["deal"])
        s.add_note("unrelated")
        assert [n["id"] for n in s.search_notes("discount")] == [note]
        assert [n["id"] for n in s.search_notes("50%")] == [note]
        assert [n["id"] for n in s.search_notes("DEAL")] == [note]


# -- secrets ---------------------------------------------------------------------------------


def test_scrub_secrets_function():
    assert scrub_secrets("key=sk-abc123 and sk-abc123", ["sk-abc123"]) == (
        "key=[redacted] and [redacted]"
    )
    assert scrub_secrets(None, ["sk-abc123"]) is None
    assert scrub_secrets("", ["sk-abc123"]) == ""
    assert scrub_secrets("abc abc", ["abc", ""]) == "abc abc"  # too short to be a secret
    assert scrub_secrets("token sk-abc123-long", ["sk-abc123", "sk-abc123-long"]) == (
        "token [redacted]"
    )


def test_secrets_never_reach_the_database_files(tmp_path):
    key = "sk-live-7f3a9c0e5b2d4f6a8c1e"
    path = tmp_path / "h.db"
    with Store(path, secrets=[key, None]) as s:
        conversation = s.start_conversation(f"title {key}", "m")
        s.add_message(conversation, "user", f"my key is {key}")
        request_id = s.start_request(conversation, f"use {key}", "m")
        call = ToolCall("http_get", {"url": f"https://x/?k={key}"}, error=key)
        output = "z" * 495 + key + "tail"  # straddles the 500-char preview cut
        s.add_tool_call(
            request_id,
            call,
            schema_valid=True,
            semantic_valid=False,
            validation_error=f"bad {key}",
            result=ToolResult(call.id, "http_get", "error", output=output, error=f"401 {key}"),
        )
        s.finish_request(request_id, answer=f"done {key}", error=key, route_reason=key)
        s.add_note(f"note {key}", [key])
        detail = s.request_detail(request_id)
        assert detail["messages"][0]["content"] == "my key is [redacted]"
        assert detail["prompt"] == "use [redacted]"
        assert detail["calls"][0]["result_preview"] == "z" * 495 + "[reda"
        assert detail["calls"][0]["result_digest"] == hashlib.sha256(output.encode()).hexdigest()
        assert json.loads(detail["calls"][0]["arguments_json"]) == {
            "url": "https://x/?k=[redacted]"
        }
        with_wal = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert key.encode() not in with_wal
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"[redacted]" in everything
    assert key.encode() not in everything
    assert key[:12].encode() not in everything
