"""Numbered schema migrations, applied in order at start and recorded in ``_migrations``.

Each migration is a function ``mNNN_description(db)`` registered with ``@migration``; it runs
inside its own ``BEGIN IMMEDIATE`` transaction together with the row that records it, so a
crash mid-migration leaves the schema as it was and the next start tries again. Never edit a
migration that has shipped: add a new one.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable

from sqlite_utils import Database

from edgeagent.errors import StoreError

Migration = Callable[[Database], None]

MIGRATIONS: list[Migration] = []
MIGRATIONS_TABLE = "_migrations"

_NAME = re.compile(r"^m(\d{3})_[a-z0-9_]+$")


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration; its name must be ``mNNN_...`` with NNN increasing."""
    match = _NAME.match(fn.__name__)
    if not match:
        raise ValueError(f"migration name {fn.__name__!r} must look like m001_description")
    number = int(match.group(1))
    if number != len(MIGRATIONS) + 1:
        raise ValueError(
            f"migration {fn.__name__} is out of order (expected m{len(MIGRATIONS) + 1:03d})"
        )
    MIGRATIONS.append(fn)
    return fn


def fts5_available() -> bool:
    """Whether this SQLite build has FTS5 (some minimal builds do not)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def _create_table(
    db: Database,
    name: str,
    columns: dict[str, type],
    not_null: set[str],
    references: tuple[str, str] | None = None,
) -> None:
    """Create table ``name`` keyed on ``id``; ``references=(column, table)``: column -> table.id."""
    foreign_keys = [(references[0], references[1], "id")] if references else None
    db[name].create(columns, pk="id", foreign_keys=foreign_keys, not_null=not_null)


@migration
def m001_initial(db: Database) -> None:
    """Conversations, messages, requests, tool calls and notes (with FTS5 search when available)."""
    _create_table(
        db,
        "conversations",
        {"id": str, "title": str, "model": str, "created_at": float},
        {"created_at"},
    )
    _create_table(
        db,
        "messages",
        {
            "id": int,
            "conversation_id": str,
            "role": str,
            "content": str,
            "name": str,
            "call_id": str,
            "created_at": float,
        },
        {"conversation_id", "role", "created_at"},
        references=("conversation_id", "conversations"),
    )
    _create_table(
        db,
        "requests",
        {
            "id": str,
            "conversation_id": str,
            "prompt": str,
            "model": str,
            "status": str,
            "answer": str,
            "route": str,
            "route_reason": str,
            "confidence": float,
            "confidence_threshold": float,
            "latency_s": float,
            "ttft_s": float,
            "prompt_tokens": int,
            "cached_prompt_tokens": int,
            "output_tokens": int,
            "remote_prompt_tokens": int,
            "remote_output_tokens": int,
            "energy_j": float,
            "energy_source": str,
            "energy_estimated": int,
            "engine": str,
            "error": str,
            "created_at": float,
            "finished_at": float,
        },
        {"status", "created_at"},
        references=("conversation_id", "conversations"),
    )
    _create_table(
        db,
        "tool_calls",
        {
            "id": str,
            "request_id": str,
            "name": str,
            "arguments_json": str,
            "schema_valid": int,
            "semantic_valid": int,
            "validation_error": str,
            "repaired": int,
            "status": str,
            "confidence": float,
            "confidence_parts_json": str,
            "route": str,
            "result_digest": str,
            "result_preview": str,
            "result_chars": int,
            "error": str,
            "duration_s": float,
            "created_at": float,
        },
        {"request_id", "name", "status", "created_at"},
        references=("request_id", "requests"),
    )
    _create_table(
        db,
        "notes",
        {"id": int, "text": str, "tags_json": str, "created_at": float},
        {"text", "created_at"},
    )
    db["messages"].create_index(["conversation_id"])
    db["requests"].create_index(["created_at"])
    db["requests"].create_index(["conversation_id"])
    db["tool_calls"].create_index(["request_id"])
    db["notes"].create_index(["created_at"])
    if fts5_available():
        db["notes"].enable_fts(["text", "tags_json"], create_triggers=True, tokenize="porter")


@migration
def m002_request_owner(db: Database) -> None:
    """Which process runs a request (host, pid, process start), to mark killed ones interrupted."""
    db["requests"].add_column("owner", str)


@migration
def m003_learning(db: Database) -> None:
    """What `edgeagent adapt` learns from: the user's verdict on a request ("good" or "bad"),
    and who wrote its answer (the model, the remote, or the runtime showing results)."""
    db["requests"].add_column("feedback", str)
    db["requests"].add_column("answer_by", str)


@migration
def m004_message_search(db: Database) -> None:
    """Full-text search over the messages of past conversations (the app's conversation list)."""
    if fts5_available():
        db["messages"].enable_fts(["content"], create_triggers=True, tokenize="porter")


def known_names() -> list[str]:
    """Names of every migration this code knows, in order."""
    return [fn.__name__ for fn in MIGRATIONS]


def applied_names(db: Database) -> list[str]:
    """Names recorded in ``_migrations`` (empty when the table does not exist yet)."""
    if MIGRATIONS_TABLE not in db.table_names():
        return []
    return [row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def check_not_newer(db: Database, path: str) -> None:
    """Raise StoreError when the database records migrations this code does not know."""
    unknown = [name for name in applied_names(db) if name not in set(known_names())]
    if unknown:
        raise StoreError(
            f"{path} was written by a newer edgeagent (unknown schema migrations: "
            f"{', '.join(unknown)})",
            "upgrade edgeagent (pip install -U edgeagent), or point EDGEAGENT_DB_PATH elsewhere",
        )


def apply_migrations(db: Database) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the names applied.

    Safe against a second process starting at the same moment: each migration takes the write
    lock (``BEGIN IMMEDIATE``) and re-checks that it is still pending before running.
    """
    conn = db.conn
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    if conn.in_transaction:
        conn.commit()
    applied: list[str] = []
    for fn in MIGRATIONS:
        name = fn.__name__
        if name in applied_names(db):
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", (name,)
            ).fetchone()
            if done is None:
                fn(db)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied
