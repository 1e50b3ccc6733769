"""The history database: conversations, messages, requests, tool calls and notes in SQLite.

One ``Store`` per process opens the file with sqlite-utils in WAL mode with
``synchronous=FULL`` and applies the numbered migrations. Every write is its own committed
transaction, so a crash or SIGKILL loses at most the write in progress; FULL (rather than
NORMAL) also keeps committed writes through a power cut, at about 1 ms per commit.
Timestamps are Unix seconds (REAL). Secrets passed to the constructor are replaced by
``[redacted]`` in every text column before it is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from edgeagent.errors import StoreError
from edgeagent.store.migrations import MIGRATIONS_TABLE, apply_migrations, check_not_newer
from edgeagent.types import ToolCall, ToolResult, new_id

if TYPE_CHECKING:
    from edgeagent.config import Settings

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 5.0
QUICK_CHECK_MAX_BYTES = 256 * 1024 * 1024
PREVIEW_CHARS = 500
REDACTED = "[redacted]"
MIN_SECRET_LEN = 4
REQUEST_STATUSES = ("running", "done", "failed", "interrupted")
INTERRUPTED_ERROR = (
    "the process running this request stopped before it finished (killed or crashed)"
)

# Columns that finish_request / update_tool_call may not set (identity and creation time);
# every other column of the table is accepted, including ones later migrations add.
FEEDBACK_VERDICTS = ("good", "bad", None)
_REQUEST_FIXED = frozenset({"id", "conversation_id", "prompt", "created_at", "owner"})
_CALL_FIXED = frozenset({"id", "request_id", "created_at"})
# Text columns that are identifiers: never scrubbed (a reference must stay intact).
_ID_COLUMNS = frozenset({"id", "conversation_id", "request_id", "call_id", "result_digest"})
_FLAG_COLUMNS = ("schema_valid", "semantic_valid", "repaired", "energy_estimated")
# finish_request conveniences: keyword -> {requests column: attribute of the object passed}.
_CONVENIENCES: dict[str, dict[str, str]] = {
    "decision": {
        "route": "route",
        "route_reason": "reason",
        "confidence": "score",
        "confidence_threshold": "threshold",
    },
    "usage": {c: c for c in ("prompt_tokens", "cached_prompt_tokens", "output_tokens", "ttft_s")},
    "energy": {"energy_j": "joules", "energy_source": "source", "energy_estimated": "estimated"},
}


def scrub_secrets(text: str | None, secrets: Iterable[str]) -> str | None:
    """``text`` with each secret, in any encoding (``edgeagent.secrets``), replaced by ``[redacted]``.

    Secrets shorter than ``MIN_SECRET_LEN`` characters are ignored: replacing every "ab" in the
    history would destroy it and such a string protects nothing. Longer forms go first so one
    secret containing another is redacted whole; JSON-escaped, URL-encoded, base64 and
    HTML-escaped forms are redacted too (a key with ``"`` is stored as ``\\"`` inside JSON).
    """
    from edgeagent.secrets import scrub

    if not text:
        return text
    return scrub(text, [s for s in secrets if s and len(s) >= MIN_SECRET_LEN], REDACTED)


def output_digest(output: str) -> str:
    """sha256 hex digest of a tool's output text (UTF-8)."""
    return hashlib.sha256(output.encode("utf-8", "surrogatepass")).hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _corrupt(path: Path, reason: str) -> StoreError:
    return StoreError(
        f"{path} is not a readable edgeagent database: {reason}",
        f"move it aside: mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.corrupt')}; "
        "edgeagent will create a new one",
    )


def _check_file(path: Path) -> None:
    """Read-only checks before SQLite touches the file: magic bytes and truncation."""
    if path.is_dir():
        raise StoreError(
            f"{path} is a directory, not a database file",
            "point EDGEAGENT_DB_PATH at a file path",
        )
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_one_line(exc)}", "check its permissions") from exc
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(
            f"{path} is not a regular file (a device, FIFO or socket), so it cannot hold the history",
            "point EDGEAGENT_DB_PATH at a file path, e.g. ~/.local/share/edgeagent/edgeagent.db",
        )
    size = info.st_size
    if size == 0:
        return  # SQLite treats an empty file as a new database
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {_one_line(exc)}", "check its permissions") from exc
    if header[:16] != SQLITE_MAGIC[: len(header[:16])]:
        raise _corrupt(path, "not an SQLite file")
    if len(header) < 100:
        raise _corrupt(path, f"truncated ({size} bytes, shorter than the SQLite header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    change_counter = header[24:28]
    valid_for = header[92:96]
    wal = Path(f"{path}-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if page_count and change_counter == valid_for and not wal_pending:
        expected = page_size * page_count
        if size < expected:
            raise _corrupt(path, f"truncated ({size} bytes, the header says {expected})")


def probe_database(conn: sqlite3.Connection, path: Path) -> None:
    """Read-only: refuse a corrupt file or an SQLite database that is not ours."""
    try:
        rows = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        if rows and path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
            verdict = conn.execute("PRAGMA quick_check").fetchone()
            if verdict is None or verdict[0] != "ok":
                reason = " ".join(str(verdict[0] if verdict else "quick_check failed").split())
                raise _corrupt(path, reason)
    except sqlite3.DatabaseError as exc:
        raise translate_sqlite_error(exc, path) from exc
    tables = {name for kind, name in rows if kind == "table"}
    if tables and MIGRATIONS_TABLE not in tables:
        raise StoreError(
            f"{path} is an SQLite database but not an edgeagent history "
            f"(tables: {', '.join(sorted(tables)[:5])})",
            "point EDGEAGENT_DB_PATH at another file; edgeagent will not modify this one",
        )


def translate_sqlite_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """A one-line StoreError with a hint for an sqlite3 exception."""
    text = _one_line(exc)
    low = text.lower()
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in low:
        return StoreError("the history database is closed", "open a new Store")
    if "locked" in low or "busy" in low:
        return StoreError(
            f"{path} is locked by another process ({text})",
            "wait for the other edgeagent process to finish, or close it, and try again",
        )
    if any(w in low for w in ("malformed", "not a database", "corrupt", "file is encrypted")):
        return _corrupt(path, text)
    if "disk is full" in low:
        return StoreError(f"cannot write {path}: {text}", "free some disk space")
    if "disk i/o" in low:
        return StoreError(
            f"cannot write {path}: {text}",
            "check that it is a regular file on a local, healthy file system",
        )
    if "readonly" in low or "read-only" in low:
        return StoreError(f"cannot write {path}: {text}", "check its permissions")
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreError(
            f"history write rejected: {text}",
            "a referenced conversation, request or call id does not exist or is reused",
        )
    return StoreError(f"history database error: {text}", "run `edgeagent doctor`")


def inspect_database(path: Path | str) -> dict[str, Any]:
    """The checks ``Store`` makes before it writes, read-only: raises StoreError if ``run`` would.

    Returns the size, the migrations applied and pending, and the request counts by status.
    A missing file is fine (it is created on first run): ``{"exists": False}``.
    """
    path = Path(path).expanduser()
    _check_file(path)
    if not path.exists():
        return {"exists": False, "path": str(path)}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, path) from exc
    try:
        probe_database(conn, path)
        db = Database(conn, execute_plugins=False)
        check_not_newer(db, str(path))
        from edgeagent.store.migrations import applied_names, known_names

        applied = applied_names(db)
        statuses: dict[str, int] = {}
        if "requests" in db.table_names():
            for status, count in conn.execute(
                "SELECT status, count(*) FROM requests GROUP BY status"
            ):
                statuses[str(status)] = count
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc, path) from exc
    finally:
        conn.close()
    return {
        "exists": True,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "migrations_applied": applied,
        "migrations_pending": [n for n in known_names() if n not in applied],
        "requests_by_status": statuses,
    }


class Store:
    """The history database (conversations, messages, requests, tool calls, notes).

    Thread-safe (one lock around the connection). Every write commits before the method
    returns. Every failure is a ``StoreError`` with a one-line message and a hint; a corrupt,
    foreign or newer-schema file is reported and left exactly as it was.
    """

    def __init__(self, path: Path | str, *, secrets: Iterable[str | None] = ()) -> None:
        self.path = Path(path).expanduser()
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.RLock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory for {self.path}: {_one_line(exc)}",
                "set EDGEAGENT_HOME or EDGEAGENT_DB_PATH to a writable place",
            ) from exc
        _check_file(self.path)
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open {self.path}: {_one_line(exc)}",
                "check that the directory is writable",
            ) from exc
        try:
            self._probe(conn)
            self.db = Database(conn, execute_plugins=False)
            check_not_newer(self.db, str(self.path))
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            self.journal_mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            conn.execute("PRAGMA synchronous = FULL")
            self.applied_migrations = apply_migrations(self.db)
            self.request_fields = frozenset(self.db["requests"].columns_dict) - _REQUEST_FIXED
            self.call_fields = frozenset(self.db["tool_calls"].columns_dict) - _CALL_FIXED
            self.interrupted = _mark_interrupted(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store at ``settings.db_path``, scrubbing the remote API key if one is set."""
        return cls(settings.db_path, secrets=(settings.remote_api_key,))

    # -- opening ---------------------------------------------------------------------------

    def add_secret(self, secret: str) -> None:
        """Scrub ``secret`` too from every row written from now on (a key set while running)."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def _probe(self, conn: sqlite3.Connection) -> None:
        probe_database(conn, self.path)

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        return translate_sqlite_error(exc, self.path)

    # -- plumbing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _op(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """Hold the lock; for writes, one BEGIN IMMEDIATE ... COMMIT; translate sqlite errors."""
        with self._lock:
            if self._closed:
                raise StoreError("the history database is closed", "open a new Store")
            conn = self._conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                if write:
                    conn.execute("COMMIT")
            except BaseException as exc:
                if write and conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise

    def _clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """Scrub secrets from text values and turn flags into 0/1."""
        out: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, str) and key not in _ID_COLUMNS and self._secrets:
                value = scrub_secrets(value, self._secrets)
            elif isinstance(value, bool):
                value = int(value)
            out[key] = value
        return out

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one scrubbed row in its own committed transaction; return its rowid."""
        with self._op(write=True):
            return int(self.db[table].insert(self._clean(row)).last_rowid)

    def _update(self, conn: sqlite3.Connection, table: str, key: str, values: dict) -> None:
        values = self._clean(values)
        assignments = ", ".join(f"{col} = ?" for col in values)
        cur = conn.execute(
            f"UPDATE {table} SET {assignments} WHERE id = ?", (*values.values(), key)
        )
        if cur.rowcount == 0:
            raise StoreError(
                f"no {table[:-1].replace('_', ' ')} with id {key!r} in the history",
                "pass an id returned by the store",
            )

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict]:
        """Rows of a read-only SQL query as dicts (used by metrics and `edgeagent logs`)."""
        with self._op() as conn:
            cur = conn.execute(sql, params if isinstance(params, dict) else tuple(params))
            names = [c[0] for c in cur.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def integrity_check(self) -> str:
        """``ok`` or SQLite's first complaint from ``PRAGMA integrity_check``."""
        with self._op() as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Close the connection (idempotent); SQLite checkpoints the WAL on the last close."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- conversations and messages --------------------------------------------------------

    def start_conversation(
        self, title: str = "", model: str = "", *, conversation_id: str | None = None
    ) -> str:
        """Create a conversation (under ``conversation_id`` if given); return its id."""
        conversation_id = conversation_id or new_id()
        row = {"id": conversation_id, "title": title, "model": model, "created_at": time.time()}
        self._insert("conversations", row)
        return conversation_id

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        name: str | None = None,
        call_id: str | None = None,
    ) -> int:
        """Append a message to a conversation; return its integer id."""
        row = {
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "name": name,
            "call_id": call_id,
            "created_at": time.time(),
        }
        return self._insert("messages", row)

    def messages(self, conversation_id: str) -> list[dict]:
        """A conversation's messages, oldest first."""
        return self.query(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )

    # -- requests --------------------------------------------------------------------------

    def start_request(
        self, conversation_id: str | None, prompt: str, model: str, *, request_id: str | None = None
    ) -> str:
        """Record a request as ``running`` (committed at once, under ``request_id`` if given);
        return its id."""
        request_id = request_id or new_id()
        row = {
            "id": request_id,
            "conversation_id": conversation_id,
            "prompt": prompt,
            "model": model,
            "status": "running",
            "owner": process_owner(),
            "created_at": time.time(),
        }
        self._insert("requests", row)
        return request_id

    def finish_request(self, request_id: str, **fields: Any) -> None:
        """Mark a request done or failed and store its metrics.

        ``fields`` are ``requests`` columns (``self.request_fields``: every column but id,
        conversation_id, prompt and created_at), plus three conveniences that expand into
        columns (explicit columns win): ``decision`` (a RouteDecision: route,
        route_reason, confidence, confidence_threshold), ``usage`` (a Usage: prompt_tokens,
        cached_prompt_tokens, output_tokens, ttft_s) and ``energy`` (an EnergyReading:
        energy_j, energy_source, energy_estimated). ``status`` defaults to ``failed`` when
        ``error`` is given, else ``done``; ``finished_at`` to now; ``latency_s`` to
        finished_at - created_at. An unknown field raises StoreError.
        """
        values = _expand_conveniences(fields)
        _check_fields("finish_request", "requests", fields, self.request_fields)
        values.update(fields)
        values.setdefault("status", "failed" if values.get("error") else "done")
        if values["status"] not in REQUEST_STATUSES[1:]:
            raise StoreError(
                f"finish_request status must be 'done', 'failed' or 'interrupted', "
                f"got {values['status']!r}",
                "pass status='done' or status='failed'",
            )
        values.setdefault("finished_at", time.time())
        with self._op(write=True) as conn:
            if values.get("latency_s") is None:
                row = conn.execute(
                    "SELECT created_at FROM requests WHERE id = ?", (request_id,)
                ).fetchone()
                if row is not None:
                    values["latency_s"] = max(0.0, values["finished_at"] - row[0])
            self._update(conn, "requests", request_id, values)

    def set_feedback(self, request_id: str, verdict: str | None) -> None:
        """Record the user's verdict on a request: ``good``, ``bad`` or None (no verdict)."""
        if verdict not in FEEDBACK_VERDICTS:
            raise StoreError(
                f"feedback must be 'good' or 'bad', got {verdict!r}", "say good or bad"
            )
        with self._op(write=True) as conn:
            self._update(conn, "requests", request_id, {"feedback": verdict})

    def recent_requests(self, limit: int = 20) -> list[dict]:
        """The newest requests first, each with ``n_calls`` (its number of tool calls)."""
        rows = self.query(
            "SELECT r.*, (SELECT count(*) FROM tool_calls c WHERE c.request_id = r.id) AS n_calls "
            "FROM requests r ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?",
            (int(limit),),
        )
        return [_flags(row) for row in rows]

    def request_detail(self, request_id: str) -> dict:
        """One request with ``calls`` (oldest first), ``conversation`` and its ``messages``.

        ``request_id`` may be a unique prefix of an id (as `edgeagent logs` prints them).
        """
        if not (0 < len(request_id) <= 64 and request_id.isascii() and request_id.isalnum()):
            raise StoreError(
                f"{request_id[:40]!r}{'...' if len(request_id) > 40 else ''} is not a request id",
                "request ids are the letters and digits `edgeagent logs` prints",
            )
        rows = self.query("SELECT * FROM requests WHERE id = ?", (request_id,))
        if not rows and request_id:
            rows = self.query(
                "SELECT * FROM requests WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (_like_escape(request_id) + "%",),
            )
            if len(rows) > 1:
                raise StoreError(
                    f"request id prefix {request_id!r} is ambiguous", "give more characters"
                )
        if not rows:
            raise StoreError(
                f"no request with id {request_id!r} in the history",
                "list recent ones with `edgeagent logs`",
            )
        detail = _flags(rows[0])
        calls = self.query(
            "SELECT * FROM tool_calls WHERE request_id = ? ORDER BY created_at, rowid",
            (detail["id"],),
        )
        detail["calls"] = [_call_out(call) for call in calls]
        conversation_id = detail.get("conversation_id")
        detail["conversation"] = None
        detail["messages"] = []
        if conversation_id:
            found = self.query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
            detail["conversation"] = found[0] if found else None
            detail["messages"] = self.messages(conversation_id)
        return detail

    # -- tool calls ------------------------------------------------------------------------

    def add_tool_call(
        self,
        request_id: str,
        call: ToolCall,
        *,
        schema_valid: bool,
        semantic_valid: bool,
        validation_error: str | None = None,
        result: ToolResult | None = None,
    ) -> str:
        """Record a proposed call with its validation outcome (and result if it ran); return its id.

        The row's id is ``call.id``; ids must be unique across the whole history (the default
        ``ToolCall`` id is random). Status and error come from ``result`` when given, else
        from ``call``.
        """
        row = {
            "id": call.id,
            "request_id": request_id,
            "name": call.name,
            "arguments_json": call.arguments_json(),
            "schema_valid": bool(schema_valid),
            "semantic_valid": bool(semantic_valid),
            "validation_error": validation_error,
            "repaired": bool(call.repaired),
            "status": call.status,
            "error": call.error,
            "confidence": call.confidence,
            "confidence_parts_json": json.dumps(call.confidence_parts, sort_keys=True),
            "route": call.route,
            "created_at": time.time(),
        }
        if result is not None:
            row.update(self._result_columns(result))
        self._insert("tool_calls", row)
        return call.id

    def update_tool_call(
        self, call_id: str, result: ToolResult | None = None, **fields: Any
    ) -> None:
        """Store a call's result (status, error, digest, preview, duration) and/or other columns.

        ``fields`` may be any column but id, request_id and created_at (``self.call_fields``);
        ``confidence_parts`` (a dict) is accepted too. An unknown field or call id raises
        StoreError.
        """
        if "confidence_parts" in fields:
            fields["confidence_parts_json"] = json.dumps(
                fields.pop("confidence_parts"), sort_keys=True
            )
        _check_fields("update_tool_call", "tool_calls", fields, self.call_fields)
        values = self._result_columns(result) if result is not None else {}
        values.update(fields)
        if not values:
            return
        with self._op(write=True) as conn:
            self._update(conn, "tool_calls", call_id, values)

    def _result_columns(self, result: ToolResult) -> dict[str, Any]:
        """Columns describing a result; the preview is cut after scrubbing, never before."""
        output = result.output or ""
        preview = scrub_secrets(output, self._secrets) if self._secrets else output
        return {
            "status": result.status,
            "error": result.error,
            "result_digest": output_digest(output),
            "result_preview": (preview or "")[:PREVIEW_CHARS],
            "result_chars": len(output),
            "duration_s": result.duration_s,
        }

    # -- notes -----------------------------------------------------------------------------

    def add_note(self, text: str, tags: Iterable[str] | str = ()) -> int:
        """Save a note with tags; return its integer id."""
        tag_list = [tags] if isinstance(tags, str) else [str(t) for t in tags]
        row = {
            "text": text,
            "tags_json": json.dumps(tag_list, ensure_ascii=False),
            "created_at": time.time(),
        }
        return self._insert("notes", row)

    def search_notes(self, query: str, limit: int = 10) -> list[dict]:
        """Notes matching ``query``: full-text (all words, stemmed) when FTS5 is there, best first;
        substring match on text and tags when that finds nothing or FTS5 is missing."""
        query = (query or "").strip()
        if not query:
            return self.list_notes(limit)
        rows: list[dict] = []
        with self._op():
            if "notes_fts" in self.db.table_names():
                try:
                    rows = list(self.db["notes"].search(query, limit=int(limit), quote=True))
                except sqlite3.OperationalError:
                    rows = []
            if not rows:
                pattern = "%" + _like_escape(query) + "%"
                rows = self.query(
                    "SELECT * FROM notes WHERE text LIKE ? ESCAPE '\\' OR tags_json LIKE ? "
                    "ESCAPE '\\' ORDER BY created_at DESC, id DESC LIMIT ?",
                    (pattern, pattern, int(limit)),
                )
        return [_note_out(row) for row in rows]

    def list_notes(self, limit: int = 10) -> list[dict]:
        """The newest notes first."""
        rows = self.query(
            "SELECT * FROM notes ORDER BY created_at DESC, id DESC LIMIT ?", (int(limit),)
        )
        return [_note_out(row) for row in rows]


def process_owner(pid: int | None = None) -> str:
    """``host:pid:start`` of a process (this one by default): who runs a request."""
    import psutil

    pid = os.getpid() if pid is None else pid
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0
    return f"{socket.gethostname()}:{pid}:{started:.2f}"


def _owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``owner`` still runs (another host's: assumed alive)."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid_text, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return process_owner(pid) == owner


def _mark_interrupted(conn: sqlite3.Connection) -> int:
    """Mark ``running`` requests whose process is gone as ``interrupted``; return how many."""
    rows = conn.execute("SELECT id, owner FROM requests WHERE status = 'running'").fetchall()
    dead = [request_id for request_id, owner in rows if not _owner_alive(owner)]
    if not dead:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = time.time()
        conn.executemany(
            "UPDATE requests SET status = 'interrupted', error = ?, finished_at = ? "
            "WHERE id = ? AND status = 'running'",
            [(INTERRUPTED_ERROR, now, request_id) for request_id in dead],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(dead)


def _expand_conveniences(fields: dict[str, Any]) -> dict[str, Any]:
    """Pop ``decision``, ``usage`` and ``energy`` from ``fields``; return the columns they fill."""
    values: dict[str, Any] = {}
    for key, columns in _CONVENIENCES.items():
        source = fields.pop(key, None)
        if source is not None:
            values.update({column: getattr(source, attr) for column, attr in columns.items()})
    if "energy_estimated" in values:
        values["energy_estimated"] = bool(values["energy_estimated"])
    return values


def _check_fields(method: str, table: str, fields: dict[str, Any], allowed: frozenset[str]) -> None:
    """Raise StoreError naming the ``fields`` that are not settable columns of ``table``."""
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise StoreError(
            f"{method} got unknown field(s): {', '.join(unknown)}",
            f"use columns of the {table} table: {', '.join(sorted(allowed))}",
        )


def _like_escape(text: str) -> str:
    """``text`` with LIKE wildcards escaped (for ``ESCAPE '\\'``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _flags(row: dict) -> dict:
    """Integer flag columns as booleans (None stays None)."""
    for key in _FLAG_COLUMNS:
        if key in row and row[key] is not None:
            row[key] = bool(row[key])
    return row


def _loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _call_out(row: dict) -> dict:
    """A tool_calls row with flags as booleans and ``arguments``/``confidence_parts`` parsed."""
    row = _flags(row)
    row["arguments"] = _loads(row.get("arguments_json"), {})
    row["confidence_parts"] = _loads(row.get("confidence_parts_json"), {})
    return row


def _note_out(row: dict) -> dict:
    return {
        "id": row["id"],
        "text": row["text"],
        "tags": _loads(row.get("tags_json"), []),
        "created_at": row["created_at"],
    }
