"""Getting a model to run: resolve an id or path (pulling on first use), load it, warn."""

from __future__ import annotations

import sys
from pathlib import Path

from edgeagent.config import Settings


def load_model(model, settings: Settings, *, progress: bool = False, cached: bool = False):
    """The one factory: a ``Model`` as given, or one loaded from a catalog id or GGUF path
    (``None``: ``settings.model``); ``cached`` shares one loaded model per process."""
    if model is not None and not isinstance(model, (str, Path)):
        return model  # already a Model (LocalModel, FakeModel, ...)
    if model is not None:
        settings = settings.replace(model=str(model))
    if cached:
        return cached_local_model(settings)
    return load_local_model(settings, progress=progress)


def load_local_model(settings: Settings, *, progress: bool = False):
    """Resolve ``settings.model`` (pulling a catalog model on first use unless offline) and load it."""
    from edgeagent.runtime.catalog import check_ram
    from edgeagent.runtime.download import make_progress_bar
    from edgeagent.runtime.local import LocalModel
    from edgeagent.runtime.resolve import resolve_model

    bar = make_progress_bar(settings.model) if progress else None
    path = resolve_model(settings.model, settings, offline=settings.offline, progress=bar)
    for warning in (check_ram(path.stat().st_size), base_model_warning(path)):
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    return LocalModel(path, settings)


_INSTRUCT_MARKERS = ("instruct", "chat", "-it", "_it", ".it", "-fc", "hermes", "assistant")


def base_model_warning(path) -> str | None:
    """A warning when the model is a base (not instruction-tuned) model: it will not chat well.

    The catalog says so for its models; for other files the GGUF's name is the clue.
    """
    from pathlib import Path

    from edgeagent.runtime.catalog import load_catalog

    name = Path(path).name
    entry = next((e for e in load_catalog().entries if e.file == name), None)
    if entry is not None:
        base = not entry.instruct
    else:
        base = not any(marker in name.lower() for marker in _INSTRUCT_MARKERS)
    if not base:
        return None
    return (
        f"{name} looks like a base model, not an instruction-tuned one: it continues text rather "
        "than following requests, so expect it to echo the prompt or tool results; choose an "
        "instruct model (edgeagent models recommend)"
    )


_LOADED: dict[tuple, object] = {}


def cached_local_model(settings: Settings):
    """One loaded model per (model, n_ctx, threads) in this process (library and eval use)."""
    key = (settings.model, str(settings.models_dir), settings.n_ctx, settings.n_threads)
    model = _LOADED.get(key)
    if model is None:
        model = load_local_model(settings)
        _LOADED[key] = model
    return model
