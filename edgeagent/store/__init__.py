"""edgeagent.store: the SQLite history (conversations, requests, tool calls, notes)."""

from edgeagent.store.db import Store, scrub_secrets

__all__ = ["Store", "scrub_secrets"]
