"""The learning loop's bookkeeping: which adapters exist, what they scored, which one is active.

``adapters/index.json`` under the edgeagent home lists every adapter `adapt train` wrote (its
base, the newest request it learned from, its training figures, its evaluation). ``evaluate``
scores base and adapter in llama.cpp on held-out examples, teacher-forced: the mean log-prob of
the target tokens and the share of them that are the model's greedy choice (for a call, every
token of it must be right for the call to be right, so token accuracy is what moves call
accuracy). ``activate`` writes ``adapter = PATH`` to config.toml only for an adapter that scores
at least as well as the base on both figures.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeagent.errors import AdapterError

INDEX_NAME = "index.json"


def adapters_dir(settings) -> Path:
    return Path(settings.home) / "adapters"


def read_index(settings) -> list[dict]:
    """Every adapter entry, oldest first (an unreadable index is an error, never overwritten)."""
    path = adapters_dir(settings) / INDEX_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(
            f"{path} is not readable JSON ({exc})", "fix it or move it away; adapters stay"
        ) from exc
    if not isinstance(data, list):
        raise AdapterError(f"{path} must hold a list of adapters", "fix it or move it away")
    return data


def write_index(settings, entries: list[dict]) -> None:
    folder = adapters_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (INDEX_NAME + ".part")
    tmp.write_text(json.dumps(entries, indent=2, default=str), encoding="utf-8")
    tmp.replace(folder / INDEX_NAME)


def record_adapter(settings, entry: dict) -> None:
    """Add or update (by path) an adapter's entry."""
    entries = [e for e in read_index(settings) if e.get("path") != entry["path"]]
    entries.append(entry)
    write_index(settings, entries)


def entry_for(settings, path: Path) -> dict | None:
    target = str(Path(path).expanduser().resolve())
    return next((e for e in read_index(settings) if e.get("path") == target), None)


@dataclass
class Score:
    """Teacher-forced figures of one model (with or without adapter) on some examples."""

    examples: int
    tokens: int
    mean_logprob: float
    token_accuracy: float
    exact: float  # share of examples whose every target token is the greedy choice

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def score_examples(
    model_path: Path, adapter: Path | None, examples, threads: int | None = None
) -> Score:
    """Score token sequences (``adapt.render.Example``) in llama.cpp, with or without adapter
    (exactly that adapter: a configured one is not applied)."""
    from edgeagent.config import Settings
    from edgeagent.runtime.local import LocalModel

    examples = [e for e in examples if not e.decision]  # no words to score (adapt.render)
    if not examples:
        return Score(0, 0, 0.0, 0.0, 0.0)
    longest = max(len(e.tokens) for e in examples)
    settings = Settings(adapter=adapter, n_threads=threads, decode_timeout_s=600)
    model = LocalModel(model_path, settings, n_ctx=max(512, longest + 8))
    logprob_sum, right, tokens, exact = 0.0, 0, 0, 0
    try:
        for example in examples:
            scored = model.score(example.tokens, example.prompt_len)
            logprob_sum += sum(lp for lp, _ in scored)
            right += sum(hit for _, hit in scored)
            tokens += len(scored)
            exact += all(hit for _, hit in scored)
    finally:
        model.close()
    return Score(
        examples=len(examples),
        tokens=tokens,
        mean_logprob=logprob_sum / max(1, tokens),
        token_accuracy=right / max(1, tokens),
        exact=exact / max(1, len(examples)),
    )


def held_out(
    records: list[dict], share: float = 0.2, seed: int = 0
) -> tuple[list[dict], list[dict]]:
    """(train, held-out) split of records, stable for the same records (by content digest)."""
    import hashlib

    from edgeagent.adapt.dataset import dedup_key

    train, test = [], []
    for record in records:
        key = hashlib.sha256(f"{seed}:{dedup_key(record)}".encode()).digest()
        (test if key[0] / 256 < share else train).append(record)
    return train, test


def verdict(base: Score, adapted: Score) -> tuple[bool, str]:
    """Whether the adapter may be activated, and why in one line."""
    better_lp = adapted.mean_logprob >= base.mean_logprob
    better_acc = adapted.token_accuracy >= base.token_accuracy
    if better_lp and better_acc:
        return True, (
            f"adapter scores at least as well as the base on held-out examples (token accuracy "
            f"{base.token_accuracy:.1%} -> {adapted.token_accuracy:.1%}, mean log-prob "
            f"{base.mean_logprob:.3f} -> {adapted.mean_logprob:.3f})"
        )
    worse = []
    if not better_acc:
        worse.append(f"token accuracy {base.token_accuracy:.1%} -> {adapted.token_accuracy:.1%}")
    if not better_lp:
        worse.append(f"mean log-prob {base.mean_logprob:.3f} -> {adapted.mean_logprob:.3f}")
    return False, "adapter scores worse than the base: " + ", ".join(worse)


def evaluate(settings, base: Path, adapter: Path, records: list[dict], registry=None) -> dict:
    """Base vs adapter on ``records`` (held-out ones), teacher-forced in llama.cpp."""
    from edgeagent.adapt.render import TrainingRenderer
    from edgeagent.runtime.adapter import check_adapter

    check_adapter(base, adapter)
    renderer = TrainingRenderer(base, settings, registry)
    try:
        examples, _ = renderer.examples(records)
    finally:
        renderer.close()
    if not examples:
        raise AdapterError("no held-out example to evaluate on", "export more history first")
    base_score = score_examples(base, None, examples, settings.n_threads)
    adapted = score_examples(base, adapter, examples, settings.n_threads)
    ok, why = verdict(base_score, adapted)
    return {
        "base": base_score.to_dict(),
        "adapter": adapted.to_dict(),
        "better": ok,
        "verdict": why,
        "evaluated_at": time.time(),
    }


def activate(settings, adapter: Path | None) -> Path:
    """Write (or, with None, remove) ``adapter = PATH`` in config.toml; returns the file."""
    from edgeagent.config import set_config_value

    value = str(Path(adapter).expanduser().resolve()) if adapter is not None else None
    return set_config_value(settings.home, "adapter", value)


def bfcl_compare(settings, base: Path, adapter: Path, per_category: int, offset: int = 40) -> dict:
    """Base vs adapter on BFCL items (simple, multiple, irrelevance; ``per_category`` of each
    from ``offset``), the same proposals the benchmark scores. Needs ``bfcl-eval``."""
    from edgeagent.eval.bfcl import load_items, run_item
    from edgeagent.runtime.local import LocalModel

    items = [
        item
        for category in ("simple_python", "multiple", "irrelevance")
        for item in load_items(category, per_category, offset)
    ]
    out = {}
    for name, lora in (("base", None), ("adapter", adapter)):
        model = LocalModel(base, settings.replace(adapter=lora))
        try:
            correct = sum(run_item(item, model, settings).correct for item in items)
        finally:
            model.close()
        out[name] = round(correct / len(items), 4)
    out["items"] = len(items)
    out["offset"] = offset
    return out
