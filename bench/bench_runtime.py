"""Load time, time to first token and decode speed of the local runtime, per model.

Usage: python bench/bench_runtime.py [--runs 5] [--models smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m]

Each model is loaded ``runs`` times (cold load from the page cache) and answers the same prompt
with a fixed output length; the anchor is llama-cpp-python's own ``create_completion`` on the
same prompt in the same process, so the ratio shows what our decode loop costs or saves.
Medians are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeagent.config import load_settings  # noqa: E402
from edgeagent.runtime.catalog import load_catalog  # noqa: E402
from edgeagent.runtime.download import pull_model  # noqa: E402
from edgeagent.runtime.local import LocalModel  # noqa: E402

PROMPT = "Write two sentences about why small language models are useful on laptops."
OUTPUT_TOKENS = 64


def bench_model(model_id: str, runs: int, models_dir: Path) -> dict:
    """Median load, ttft and tokens/s for ours and for llama-cpp-python's create_completion."""
    settings = load_settings(models_dir=models_dir)
    path = pull_model(load_catalog().get(model_id), settings)
    loads, ttfts, speeds, anchor_ttfts, anchor_speeds = [], [], [], [], []
    for _ in range(runs):
        model = LocalModel(path, settings)
        loads.append(model.load_s)
        prompt = model.render([{"role": "user", "content": PROMPT}])
        gen = model.generate(prompt, max_tokens=OUTPUT_TOKENS, temperature=0.0)
        ttfts.append(gen.ttft_s)
        speeds.append(gen.tokens_per_s)
        # anchor: llama-cpp-python's completion API on the same context, cache cleared
        llm = model.llama
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        started = time.perf_counter()
        first = None
        count = 0
        for _chunk in llm.create_completion(
            prompt, max_tokens=OUTPUT_TOKENS, temperature=0.0, stream=True
        ):
            count += 1
            if first is None:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        anchor_ttfts.append(first or total)
        anchor_speeds.append((count - 1) / max(1e-9, total - (first or total)))
        model.close()
    med = statistics.median
    return {
        "model": model_id,
        "runs": runs,
        "load_s": round(med(loads), 3),
        "ttft_s": round(med(ttfts), 3),
        "tokens_per_s": round(med(speeds), 1),
        "anchor_ttft_s": round(med(anchor_ttfts), 3),
        "anchor_tokens_per_s": round(med(anchor_speeds), 1),
        "speed_ratio_vs_anchor": round(med(speeds) / max(1e-9, med(anchor_speeds)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", default="smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m")
    parser.add_argument(
        "--models-dir", type=Path, default=Path.home() / ".cache/edgeagent/test-models"
    )
    args = parser.parse_args()
    rows = [bench_model(m, args.runs, args.models_dir) for m in args.models.split(",")]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
