"""Model resolution: a catalog id or a path to the GGUF to load, pulling it when allowed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from edgeagent.errors import ModelFileError, ModelNotFoundError
from edgeagent.runtime.catalog import Catalog, ProgressCallback, load_catalog, model_file_path
from edgeagent.runtime.download import pull_model, verify_installed

if TYPE_CHECKING:
    from edgeagent.config import Settings

__all__ = ["pull_model", "resolve_model"]


def _looks_like_path(text: str) -> bool:
    return (
        text.lower().endswith(".gguf")
        or os.sep in text
        or "/" in text
        or text.startswith(("~", "."))
    )


def resolve_model(
    id_or_path: str | os.PathLike | None,
    settings: Settings,
    *,
    offline: bool,
    progress: ProgressCallback | None = None,
    catalog: Catalog | None = None,
) -> Path:
    """The GGUF file to load for a catalog id or a path (None means ``settings.model``).

    An existing file is returned as is; a catalog id that is installed and verified returns its
    path; one that is missing is pulled, unless ``offline``, in which case ModelNotFoundError says
    exactly how to get it.
    """
    raw = str(id_or_path if id_or_path is not None else settings.model).strip()
    if not raw:
        raise ModelNotFoundError("no model given", "pass --model ID or a path to a .gguf file")
    candidate = Path(raw).expanduser()
    if candidate.is_file():
        return candidate
    catalog = catalog or load_catalog()
    if candidate.exists():
        raise ModelNotFoundError(
            f"{candidate} is a directory, not a model file", "pass a .gguf file"
        )
    if raw not in catalog and _looks_like_path(raw):
        raise ModelNotFoundError(
            f"no model file at {candidate}",
            "check the path, or use a catalog id (`edgeagent models list`)",
        )
    entry = catalog.get(raw)
    path = model_file_path(entry, settings)
    if verify_installed(entry, path):
        return path
    if offline:
        if path.exists():
            raise ModelFileError(
                f"{path} does not match the catalog entry {entry.id} (size or sha256 differ)",
                f"run `edgeagent models pull {entry.id}` while online to replace it",
            )
        raise ModelNotFoundError(
            f"model {entry.id} is not installed and offline mode forbids downloading it",
            f"run `edgeagent models pull {entry.id}` while online, or put the file at {path}",
        )
    return pull_model(entry, settings, progress)
