"""Notes kept in the history database: add_note, search_notes, list_notes.

add_note is in the "write" tier (it needs confirmation unless ``--yes``). Adding a note is
low-risk local app data, but tiers describe effects, not severity, and notes are read back into
the model's context later: a prompt-injected add_note would be a persistent injection, so it must
not happen silently. search_notes and list_notes are read-only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import Field

from edgeagent.errors import ToolExecutionError
from edgeagent.tools.context import ToolContext
from edgeagent.tools.registry import Tool, tool_from_function

Tag = Annotated[str, Field(min_length=1, max_length=40)]
Limit = Annotated[int, Field(ge=1, le=50)]


@contextmanager
def open_store(context: ToolContext) -> Iterator[Any]:
    """``context.store``, else the history ``Store`` at ``settings.db_path`` opened for one call."""
    if context.store is not None:
        yield context.store
        return
    try:
        from edgeagent.store import Store  # lazy: the store pulls in sqlite-utils
    except ImportError as exc:
        raise ToolExecutionError(
            "the notes database is not available", hint="this build has no edgeagent.store.Store"
        ) from exc
    opener = getattr(Store, "from_settings", None)  # scrubs the remote API key from what it stores
    store = opener(context.settings) if opener else Store(context.settings.db_path)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def make_notes_tools(context: ToolContext) -> list[Tool]:
    """add_note (write tier), search_notes and list_notes (read tier)."""

    def add_note(
        text: Annotated[str, Field(min_length=1, max_length=2000)],
        tags: Annotated[list[Tag], Field(max_length=8)] = [],  # noqa: B006 - never mutated
    ) -> str:
        """Save a short note for later.

        Args:
            text: the note
            tags: optional labels, e.g. ["shopping"]
        """
        clean = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        with open_store(context) as store:
            note_id = store.add_note(text, clean)
        return f"saved note {note_id}"

    def search_notes(
        query: Annotated[str, Field(min_length=1, max_length=200)], limit: Limit = 10
    ) -> list[dict] | str:
        """Find saved notes containing some words.

        Args:
            query: words to look for
            limit: at most this many notes
        """
        with open_store(context) as store:
            found = store.search_notes(query, limit)
        return list(found) or f"no notes match {query!r}"

    def list_notes(limit: Limit = 10) -> list[dict] | str:
        """The most recent saved notes.

        Args:
            limit: at most this many notes
        """
        with open_store(context) as store:
            found = store.list_notes(limit)
        return list(found) or "no notes yet"

    return [
        tool_from_function(add_note, risk="write"),
        tool_from_function(search_notes),
        tool_from_function(list_notes),
    ]
