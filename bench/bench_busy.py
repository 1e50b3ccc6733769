"""Requests on a busy machine (issue 9): llama.cpp threads from the current load vs all cores.

The same requests run four ways, interleaved round by round so both see the same machine:
threads chosen per decode from the load (the default, ``n_threads`` unset) and a fixed thread
count equal to the physical cores (the old default), each on a quiet machine and while this
script keeps ``--busy`` cores busy with spinning processes of its own. Reports the median
request latency of each way and the busy/quiet ratio (target: at most 1.5x with one core busy).

    python bench/bench_busy.py [--model PATH] [--rounds 3] [--busy 1] [--json]

Run it on an otherwise quiet machine (``../shared/tools/quiet.sh``): its own load is the point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUESTS = (
    "What is 17 times 23?",
    "What time is it in UTC?",
    "Name two colours of the rainbow.",
)
SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy_cores(count: int):
    """``count`` processes spinning on the CPU for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let the scheduler see them
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_requests(model_path: Path, threads: int | None, home: Path) -> list[float]:
    """Latency of each request through ``Agent.run`` with a fresh model (``threads`` or auto)."""
    from edgeagent.agent.loop import Agent
    from edgeagent.config import load_settings
    from edgeagent.runtime.local import LocalModel

    settings = load_settings(
        home=home, allowed_roots=(home,), offline=True, n_threads=threads, max_tokens=64
    )
    model = LocalModel(model_path, settings)
    try:
        agent = Agent(settings, model=model, store=False)
        agent.run("Say OK.")  # warm the prefix cache: steady-state requests are measured
        return [agent.run(text).latency_s for text in REQUESTS]
    finally:
        model.close()


def main() -> None:
    from edgeagent.runtime.cpu_quirks import apply_cpu_quirks
    from edgeagent.runtime.threads import physical_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model = Path.home() / ".cache/edgeagent/test-models/SmolLM2-135M-Instruct.Q4_1.gguf"
    parser.add_argument("--model", type=Path, default=default_model)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="cores to keep busy")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    apply_cpu_quirks()
    cores = physical_cores()
    ways = {"auto": None, f"fixed-{cores}": cores}
    latencies: dict[str, list[float]] = {}
    for _round in range(args.rounds):
        for name, threads in ways.items():
            for load in ("quiet", "busy"):
                with tempfile.TemporaryDirectory() as tmp:
                    context = busy_cores(args.busy) if load == "busy" else contextlib.nullcontext()
                    with context:
                        found = run_requests(args.model, threads, Path(tmp))
                latencies.setdefault(f"{name}/{load}", []).extend(found)
    medians = {key: statistics.median(values) for key, values in latencies.items()}
    ratios = {name: medians[f"{name}/busy"] / medians[f"{name}/quiet"] for name in ways}
    report = {
        "model": args.model.name,
        "physical_cores": cores,
        "busy_cores": args.busy,
        "rounds": args.rounds,
        "requests": list(REQUESTS),
        "median_latency_s": {k: round(v, 3) for k, v in medians.items()},
        "busy_over_quiet": {k: round(v, 2) for k, v in ratios.items()},
        "raw_s": {k: [round(x, 3) for x in v] for k, v in latencies.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.model.name}: {cores} physical cores, {args.busy} kept busy, {args.rounds} rounds")
    print("| threads | quiet p50 s | busy p50 s | busy / quiet |")
    print("|---|---|---|---|")
    for name in ways:
        quiet, busy = medians[f"{name}/quiet"], medians[f"{name}/busy"]
        print(f"| {name} | {quiet:.2f} | {busy:.2f} | {ratios[name]:.2f}x |")


if __name__ == "__main__":
    main()
