"""One plain chat request end to end: resolve the model, load it, answer, measure."""

from __future__ import annotations

import sys

from edgeagent.config import Settings


def load_local_model(settings: Settings, *, progress: bool = False):
    """Resolve ``settings.model`` (pulling a catalog model on first use unless offline) and load it."""
    from edgeagent.runtime.catalog import check_ram, resolve_model
    from edgeagent.runtime.download import make_progress_bar
    from edgeagent.runtime.local import LocalModel

    bar = make_progress_bar(settings.model) if progress else None
    path = resolve_model(settings.model, settings, offline=settings.offline, progress=bar)
    warning = check_ram(path.stat().st_size)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return LocalModel(path, settings)


_LOADED: dict[tuple, object] = {}


def cached_local_model(settings: Settings):
    """One loaded model per (model, n_ctx, threads) in this process (library and eval use)."""
    key = (settings.model, str(settings.models_dir), settings.n_ctx, settings.n_threads)
    model = _LOADED.get(key)
    if model is None:
        model = load_local_model(settings)
        _LOADED[key] = model
    return model
