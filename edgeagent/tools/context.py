"""What tools may touch: the allowed roots, the network switch and the notes store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgeagent.config import Settings


class NotesStore(Protocol):
    """The part of ``edgeagent.store.Store`` that the notes tools use."""

    def add_note(self, text: str, tags: list[str]) -> int: ...

    def search_notes(self, query: str, limit: int) -> list[dict]: ...

    def list_notes(self, limit: int) -> list[dict]: ...


@dataclass(frozen=True)
class ToolContext:
    """Passed to semantic validators and closed over by the built-in tools.

    ``allowed_roots`` (resolved, absolute) defaults to ``settings.allowed_roots`` and
    ``allow_network`` to ``settings.network_allowed``. ``store`` is an
    object with the ``NotesStore`` methods; when None the notes tools open
    ``edgeagent.store.Store(settings.db_path)`` for each call and close it afterwards. Tools run
    in a worker thread: a store passed here must accept calls from another thread.
    """

    settings: Settings
    allowed_roots: tuple[Path, ...] = ()
    allow_network: bool | None = None
    store: Any | None = None

    def __post_init__(self) -> None:
        roots = self.allowed_roots or self.settings.allowed_roots
        resolved = tuple(Path(r).expanduser().resolve() for r in roots)
        object.__setattr__(self, "allowed_roots", resolved)
        if self.allow_network is None:
            allow = self.settings.network_allowed
            object.__setattr__(self, "allow_network", allow)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: Any | None = None,
        allow_network: bool | None = None,
        allowed_roots: tuple[Path, ...] = (),
    ) -> ToolContext:
        """A context from settings, with optional overrides (e.g. ``--online``)."""
        return cls(
            settings=settings, allowed_roots=allowed_roots, allow_network=allow_network, store=store
        )

    @property
    def root(self) -> Path:
        """The first allowed root: relative paths are relative to it."""
        return self.allowed_roots[0]
