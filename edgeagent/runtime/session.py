"""One plain chat request end to end: resolve the model, load it, answer, measure."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

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


def answer_once(
    settings: Settings,
    prompt: str,
    *,
    progress: bool = False,
    on_text: Callable[[str], None] | None = None,
    system: str | None = None,
) -> dict:
    """Answer ``prompt`` with the local model; returns the fields `edgeagent run --json` prints."""
    from edgeagent.metrics.energy import select_energy_meter

    started = time.perf_counter()
    model = load_local_model(settings, progress=progress)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    meter = select_energy_meter(settings)
    meter.start()
    try:
        generation = model.chat(messages, on_text=on_text, repeat_penalty=1.15)
    finally:
        energy = meter.stop()
    result = {
        "answer": generation.text.strip(),
        "model": model.path.name,
        "model_path": str(model.path),
        "route": "local",
        "finish_reason": generation.finish_reason,
        "latency_s": round(time.perf_counter() - started, 4),
        "load_s": round(model.load_s, 4),
        "ttft_s": round(generation.ttft_s, 4),
        "tokens_per_s": round(generation.tokens_per_s, 2),
        "prompt_tokens": generation.prompt_tokens,
        "output_tokens": generation.output_tokens,
        "energy_j": round(energy.joules, 4),
        "energy_source": energy.source,
        "energy_estimated": energy.estimated,
        "calls": [],
    }
    model.close()
    return result
