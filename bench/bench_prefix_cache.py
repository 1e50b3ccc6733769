"""Time to first token with the system prompt + 10 tool schemas: cold vs warm (disk, memory).

Usage: python bench/bench_prefix_cache.py [--runs 5]

cold:   a fresh context evaluates the whole prompt (system + tools + user turn);
disk:   a fresh context restores the prefix's KV state from disk (PrefixCache), then evaluates
        only the user turn: what a new process pays;
memory: the same context answers a second, different user turn: what the next turn pays.
All three are measured in the same run, per model; medians and ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tool_schemas import TEN_TOOLS  # noqa: E402
from edgeagent.agent.prompt import system_prompt  # noqa: E402
from edgeagent.config import load_settings  # noqa: E402
from edgeagent.runtime.catalog import load_catalog  # noqa: E402
from edgeagent.runtime.download import pull_model  # noqa: E402
from edgeagent.runtime.local import LocalModel  # noqa: E402
from edgeagent.runtime.prefix_cache import PrefixCache, stable_prefix_text  # noqa: E402


class _Tool:
    def __init__(self, spec: dict) -> None:
        self.name, self.description = spec["name"], spec["description"]
        self.parameters = spec["parameters"]


def _ttft(model: LocalModel, messages: list[dict]) -> float:
    started = time.perf_counter()
    model.generate(model.render(messages), max_tokens=1, temperature=0.0)
    return time.perf_counter() - started


def bench_model(model_id: str, runs: int, models_dir: Path) -> dict:
    settings = load_settings(models_dir=models_dir, n_ctx=2048)
    path = pull_model(load_catalog().get(model_id), settings)
    system = system_prompt([_Tool(t) for t in TEN_TOOLS])
    cold, disk, memory = [], [], []
    prefix_tokens = 0
    with tempfile.TemporaryDirectory() as tmp:
        cache = PrefixCache(Path(tmp))
        for run in range(runs):
            user = [{"role": "user", "content": f"What's the weather in Paris? ({run})"}]
            messages = [{"role": "system", "content": system}, *user]
            model = LocalModel(path, settings)
            cold.append(_ttft(model, messages))
            prefix = stable_prefix_text(model, system)
            cache.warm(model, prefix)  # writes the state file (first run) or finds it in memory
            model.close()
            model = LocalModel(path, settings)
            started = time.perf_counter()
            result = cache.warm(model, prefix)
            assert result.source == "disk", result
            prefix_tokens = result.prefix_tokens
            model.generate(model.render(messages), max_tokens=1, temperature=0.0)
            disk.append(time.perf_counter() - started)
            second = [messages[0], {"role": "user", "content": f"Convert 5 km to miles ({run})"}]
            memory.append(_ttft(model, second))
            model.close()
    med = statistics.median
    return {
        "model": model_id,
        "runs": runs,
        "prefix_tokens": prefix_tokens,
        "cold_ttft_s": round(med(cold), 3),
        "disk_warm_ttft_s": round(med(disk), 3),
        "memory_warm_ttft_s": round(med(memory), 3),
        "disk_speedup": round(med(cold) / med(disk), 1),
        "memory_speedup": round(med(cold) / med(memory), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", default="smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m")
    parser.add_argument(
        "--models-dir", type=Path, default=Path.home() / ".cache/edgeagent/test-models"
    )
    args = parser.parse_args()
    print(
        json.dumps(
            [bench_model(m, args.runs, args.models_dir) for m in args.models.split(",")], indent=2
        )
    )


if __name__ == "__main__":
    main()
