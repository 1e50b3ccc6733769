"""Past conversations: list (newest first), search their messages, rename, delete, export.

Search finds a conversation by its title or any of its messages: substring matches (so a word
half typed in the app's search box already finds it), plus stemmed whole-word matches from the
full-text index on messages (migration ``m004_message_search``) when this SQLite has FTS5.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from edgeagent.errors import StoreError
from edgeagent.store.db import _like_escape
from edgeagent.types import Message

TITLE_CHARS = 60


@dataclass(frozen=True)
class ConversationSummary:
    """One row of the conversation list."""

    id: str
    title: str
    model: str
    created_at: float
    last_at: float
    requests: int

    def label(self) -> str:
        """The title, or "(empty)" for a conversation without one."""
        return self.title or "(empty)"


def _title_from(prompt: str | None) -> str:
    flat = " ".join((prompt or "").split())
    return flat if len(flat) <= TITLE_CHARS else flat[: TITLE_CHARS - 1] + "…"


def _matching_ids(store, query: str) -> set[str] | None:
    """Conversation ids whose title or messages contain ``query``, or whose messages match it
    word by word, stemmed (FTS5); None for an empty query."""
    query = (query or "").strip()
    if not query:
        return None
    ids: set[str] = set()
    if "messages_fts" in store.db.table_names():
        words = " ".join(json.dumps(w) for w in query.split())  # every word, quoted
        try:
            rows = store.query(
                "SELECT DISTINCT m.conversation_id AS id FROM messages_fts f "
                "JOIN messages m ON m.rowid = f.rowid WHERE messages_fts MATCH ?",
                (words,),
            )
            ids = {r["id"] for r in rows}
        except StoreError:
            ids = set()
    pattern = f"%{_like_escape(query)}%"
    rows = store.query(
        "SELECT id FROM conversations WHERE title LIKE ? ESCAPE '\\' UNION "
        "SELECT conversation_id FROM messages WHERE content LIKE ? ESCAPE '\\'",
        (pattern, pattern),
    )
    return ids | {r["id"] for r in rows}


def list_conversations(store, limit: int = 50, query: str = "") -> list[ConversationSummary]:
    """Conversations that have at least one request, newest activity first; with ``query``,
    only those whose messages or title contain it."""
    rows = store.query(
        "SELECT c.id, c.title, c.model, c.created_at, "
        "MAX(r.created_at) AS last_at, COUNT(r.id) AS n, "
        "(SELECT prompt FROM requests WHERE conversation_id = c.id "
        " ORDER BY created_at LIMIT 1) AS first_prompt "
        "FROM conversations c JOIN requests r ON r.conversation_id = c.id "
        "GROUP BY c.id ORDER BY last_at DESC"
    )
    wanted = _matching_ids(store, query)
    out = []
    for row in rows:
        if wanted is not None and row["id"] not in wanted:
            continue
        title = row["title"] or _title_from(row["first_prompt"])
        out.append(
            ConversationSummary(
                row["id"], title, row["model"] or "", row["created_at"], row["last_at"], row["n"]
            )
        )
        if len(out) >= limit:
            break
    return out


def _require(store, conversation_id: str) -> None:
    if not store.query("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)):
        raise StoreError(
            f"no conversation with id {conversation_id!r} in the history",
            "pick one from the list of conversations",
        )


def rename_conversation(store, conversation_id: str, title: str) -> None:
    """Give a conversation a title (blank: back to its first request's words)."""
    _require(store, conversation_id)
    with store._op(write=True) as conn:
        conn.execute(
            "UPDATE conversations SET title = ? WHERE id = ?",
            (" ".join(title.split())[:200], conversation_id),
        )


def delete_conversation(store, conversation_id: str) -> None:
    """Delete a conversation with its messages, requests and tool calls (one transaction)."""
    _require(store, conversation_id)
    with store._op(write=True) as conn:
        requests = "SELECT id FROM requests WHERE conversation_id = ?"
        conn.execute(f"DELETE FROM tool_calls WHERE request_id IN ({requests})", (conversation_id,))
        conn.execute("DELETE FROM requests WHERE conversation_id = ?", (conversation_id,))
        conn.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
        conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


def conversation_record(store, conversation_id: str) -> dict:
    """The conversation, its messages and its requests (with their calls), as plain data."""
    _require(store, conversation_id)
    (head,) = store.query("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
    requests = store.query(
        "SELECT id, prompt, answer, status, route, confidence, latency_s, energy_j, "
        "energy_source, model, created_at FROM requests WHERE conversation_id = ? "
        "ORDER BY created_at",
        (conversation_id,),
    )
    for request in requests:
        request["calls"] = store.query(
            "SELECT name, arguments_json, status, confidence, route, duration_s, error "
            "FROM tool_calls WHERE request_id = ? ORDER BY created_at",
            (request["id"],),
        )
    messages = store.query(
        "SELECT role, content, name, call_id, created_at FROM messages "
        "WHERE conversation_id = ? ORDER BY id",
        (conversation_id,),
    )
    return {"conversation": head, "messages": messages, "requests": requests}


def export_json(store, conversation_id: str) -> str:
    """The conversation as JSON (``conversation_record``)."""
    record = conversation_record(store, conversation_id)
    return json.dumps(record, ensure_ascii=False, indent=2, default=str)


def cost_line(request: dict) -> str:
    """``local · 2.10 s · 34.60 J (estimate)`` for a request of ``conversation_record``."""
    return (
        f"{request.get('route') or 'local'} · {request.get('latency_s') or 0:.2f} s · "
        f"{request.get('energy_j') or 0:.2f} J ({request.get('energy_source') or '?'})"
    )


def export_markdown(store, conversation_id: str) -> str:
    """The conversation as markdown: each request, its calls, the answer and what it cost."""
    record = conversation_record(store, conversation_id)
    head = record["conversation"]
    title = head.get("title") or _title_from(
        record["requests"][0]["prompt"] if record["requests"] else ""
    )
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(head.get("created_at") or 0))
    lines = [f"# {title or 'Conversation'}", "", f"{when} · {head.get('model') or ''}", ""]
    for request in record["requests"]:
        lines += [f"**You:** {request['prompt']}", ""]
        for call in request["calls"]:
            lines.append(
                f"- `{call['name']}({call['arguments_json']})`: {call['status']}"
                + (f" ({call['error']})" if call.get("error") else "")
            )
        if request["calls"]:
            lines.append("")
        lines += [request.get("answer") or "(no answer)", ""]
        lines += [f"_{cost_line(request)}_", ""]
    return "\n".join(lines).rstrip() + "\n"


def resumed_history(store, conversation_id: str) -> list[Message]:
    """The stored turns of a conversation, oldest first, as the agent's working history.

    Which turns held local-only data was not stored, so every turn but the user's own words
    is marked hidden (never sent to the remote model).
    """
    _require(store, conversation_id)
    rows = store.query(
        "SELECT role, content, name, call_id FROM messages WHERE conversation_id = ? ORDER BY id",
        (conversation_id,),
    )
    return [
        Message(
            row["role"],
            row["content"] or "",
            name=row["name"],
            call_id=row["call_id"],
            hidden=row["role"] != "user",
        )
        for row in rows
    ]


__all__ = [
    "ConversationSummary",
    "conversation_record",
    "cost_line",
    "delete_conversation",
    "export_json",
    "export_markdown",
    "list_conversations",
    "rename_conversation",
    "resumed_history",
]
