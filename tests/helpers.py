"""Small helpers shared by several test modules (plain functions, not fixtures)."""

from __future__ import annotations

from pathlib import Path


def make_tree(directory: Path, files: dict[str, str] | None = None) -> Path:
    """Create ``directory`` with ``files`` (relative path -> UTF-8 text); return it resolved."""
    directory.mkdir(parents=True, exist_ok=True)
    for relative, text in (files or {}).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory.resolve()
