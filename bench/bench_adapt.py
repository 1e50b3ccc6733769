"""Does a LoRA adapter trained on the agent's own traces make the small model better, held out?

    python bench/bench_adapt.py [--work DIR] [--steps 400] [--minutes 30] [--stage all]

Stages (each reuses the previous one's files in ``--work``):
1. ``collect``: the base model runs the everyday suite's *tune* split through edgeagent with a
   real store per task; a task that passed its checks is marked ``good`` in its history and
   exported with ``edgeagent.adapt.export`` (the product's path: scrubbed, deduplicated). BFCL
   items that are never reported (simple/multiple/irrelevance outside the offsets 0.. and 40..
   that bench_bfcl reports) become records from their possible answers (first acceptable value,
   optional arguments left out; irrelevance: a "decision" turn, which teaches not to call a
   tool without teaching any words: a canned refusal as text made the first adapter refuse
   every chat request).
2. ``train``: ``edgeagent.adapt.train`` on those records (base = the same GGUF), time-bounded.
3. ``eval``: base vs adapter, same prompts, same run: the everyday *report* split (84 tasks,
   never trained on) and BFCL held-out (offset 40: 20 simple, 10 multiple, 10 irrelevance),
   plus load time and decode speed with and without the adapter.
Writes ``bench/out/adapt_DATE.json``; the adapter and datasets stay in ``--work`` (not in git).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_everyday as everyday  # noqa: E402

REPORTED_OFFSETS = {"simple_python": (0, 60), "multiple": (0, 50), "irrelevance": (0, 50)}
IRRELEVANT_ANSWER = "None of the tools I have can do that, so I cannot help with it here."


def _settings(work: Path, **extra):
    from edgeagent.config import load_settings

    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    return load_settings(home=home, allowed_roots=(work,), offline=True, **extra)


# ---- 1. collect -------------------------------------------------------------------------------


def collect_everyday(
    model: str, work: Path, limit: int, temperature: float = 0.0
) -> tuple[list[dict], dict]:
    """Run the tune split; export the history of each task that passed (marked good).

    With ``temperature`` > 0 the model samples: a task the greedy model fails may pass in a
    sampled run, which is a lesson the greedy traces do not hold (rejection sampling).
    """
    from edgeagent.adapt.export import export_history
    from edgeagent.store import Store

    argv = ["--split", "tune", "--systems", "edgeagent", "--limit", str(limit)]
    if temperature:
        argv += ["--set", f"temperature={temperature}"]
    args = everyday.build_parser().parse_args(argv)
    tasks = everyday.select_tasks(everyday.load_tasks(args.tasks), args)
    records: list[dict] = []
    skipped: dict = {}

    def after_task(task, system, settings, ws, record) -> None:
        if task.id == "warm-up" or not record["success"]:
            return
        from edgeagent.agent.propose import build_tool_registry
        from edgeagent.tools.context import ToolContext

        context = ToolContext(settings=settings, allowed_roots=settings.allowed_roots)
        tools = build_tool_registry(None, context).to_openai()
        with Store(settings.db_path) as store:
            for row in store.query("SELECT id FROM requests"):
                store.set_feedback(row["id"], "good")
            result = export_history(store, tools, roots=settings.allowed_roots, only_confirmed=True)
        for reason, count in result.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        for item in result.records:
            item["metadata"].update(task=task.id, category=task.category, source="everyday-tune")
            records.append(item)

    runs, _ = everyday.bench_model(model, tasks, ["edgeagent"], args, after_task=after_task)
    passed = sum(r["success"] for r in runs)
    return records, {"tasks": len(runs), "passed": passed, "skipped": skipped}


def _first_value(values):
    """The first acceptable value of a BFCL possible answer (dicts: recursively)."""
    value = values[0] if isinstance(values, list) and values else values
    if isinstance(value, dict):
        return {k: _first_value(v) for k, v in value.items() if not _optional(v)}
    return value


def _optional(values) -> bool:
    return isinstance(values, list) and "" in values


def bfcl_records(per_category: dict[str, int]) -> list[dict]:
    """Training records from BFCL items outside the reported offsets."""
    from edgeagent.eval.bfcl import load_items, to_openai_tools, tool_name

    records = []
    for category, count in per_category.items():
        start = REPORTED_OFFSETS[category][1]
        for item in load_items(category, count, start):
            tools, _ = to_openai_tools(item.functions)
            messages = [
                {"role": m["role"], "content": m["content"]}
                for m in item.messages
                if m.get("content")
            ]
            if category == "irrelevance":  # only "no call here" is learned, not these words
                answer = {"role": "assistant", "content": IRRELEVANT_ANSWER, "learn": "decision"}
            else:
                calls = []
                for n, truth in enumerate(item.answer or []):
                    ((name, params),) = truth.items()
                    arguments = {k: _first_value(v) for k, v in params.items() if not _optional(v)}
                    calls.append(
                        {
                            "id": f"call_{n + 1}",
                            "type": "function",
                            "function": {
                                "name": tool_name(name),
                                "arguments": json.dumps(arguments, ensure_ascii=False),
                            },
                        }
                    )
                if not calls:
                    continue
                answer = {"role": "assistant", "content": None, "tool_calls": calls}
            records.append(
                {
                    "messages": [*messages, answer],
                    "tools": tools,
                    "metadata": {"source": f"bfcl-{category}", "id": item.id},
                }
            )
    return records


# ---- 3. eval ----------------------------------------------------------------------------------


def eval_everyday(model: str, adapter: Path | None, limit: int) -> dict:
    argv = ["--split", "report", "--systems", "edgeagent", "--limit", str(limit)]
    args = everyday.build_parser().parse_args(argv)
    args.adapter = adapter
    tasks = everyday.select_tasks(everyday.load_tasks(args.tasks), args)
    runs, _ = everyday.bench_model(model, tasks, ["edgeagent"], args)
    summary = everyday.summarize(runs)
    summary["per_task"] = {r["id"]: r["success"] for r in runs}
    return summary


def eval_bfcl(model_path: Path, adapter: Path | None, counts: dict[str, int]) -> dict:
    from edgeagent.eval.bfcl import load_items, run_item, summarize_by_category
    from edgeagent.runtime.local import LocalModel

    settings = _settings(Path(os.environ.get("TMPDIR", "/tmp")), adapter=adapter)
    model = LocalModel(model_path, settings)
    try:
        items = [i for c, n in counts.items() for i in load_items(c, n, 40)]
        results = [run_item(item, model, settings) for item in items]
    finally:
        model.close()
    summary = summarize_by_category(results)
    summary["per_item"] = {r.id: r.correct for r in results}
    return summary


def speed(model_path: Path, adapter: Path | None, runs: int = 5) -> dict:
    """Load time and decode tokens/s (greedy, no grammar, 64 tokens), median of ``runs``."""
    from edgeagent.runtime.local import LocalModel

    settings = _settings(Path(os.environ.get("TMPDIR", "/tmp")), adapter=adapter)
    loads, rates = [], []
    for _ in range(runs):
        started = time.perf_counter()
        model = LocalModel(model_path, settings)
        loads.append(time.perf_counter() - started)
        try:
            gen = model.chat(
                [{"role": "user", "content": "Write a short story about a lighthouse keeper."}],
                max_tokens=64,
                temperature=0.0,
            )
            rates.append(gen.tokens_per_s)
        finally:
            model.close()
    return {"load_s": statistics.median(loads), "tokens_per_s": statistics.median(rates)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct-q4_1")
    parser.add_argument(
        "--work", type=Path, default=Path.home() / ".cache" / "edgeagent" / "bench-adapt"
    )
    parser.add_argument(
        "--stage", choices=("all", "collect", "train", "eval", "speed"), default="all"
    )
    parser.add_argument("--speed-rounds", type=int, default=3, help="speed: interleaved rounds")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--everyday-repeat", type=int, default=3, help="copies of each tune trace")
    parser.add_argument("--samples", type=int, default=0, help="sampled runs of the tune split")
    parser.add_argument("--temperature", type=float, default=0.8, help="for the sampled runs")
    parser.add_argument("--bfcl", default="simple_python=340,multiple=150,irrelevance=100")
    parser.add_argument("--limit", type=int, default=0, help="everyday tasks per category (0: all)")
    parser.add_argument("--eval-bfcl", default="simple_python=20,multiple=10,irrelevance=10")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    model_path = everyday.resolve_model_path(args.model)
    data = work / "train.jsonl"
    adapter = work / "adapter.gguf"
    report_path = args.out or ROOT / "bench" / "out" / f"adapt_{dt.date.today().isoformat()}.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    report.update(
        command="python bench/bench_adapt.py " + " ".join(argv or sys.argv[1:]),
        model=model_path.name,
        git=everyday._git_state(),
    )

    def save() -> None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")

    from edgeagent.adapt.dataset import clusters, curate, write_jsonl

    if args.stage in ("all", "collect"):
        started = time.perf_counter()
        traces, info = collect_everyday(args.model, work, args.limit)
        info["sampled_runs"] = []
        for run in range(args.samples):
            sampled, more = collect_everyday(args.model, work, args.limit, args.temperature)
            traces += sampled
            info["sampled_runs"].append({"temperature": args.temperature, **more})
            print(f"sampled run {run + 1}: {more['passed']} passed", flush=True)
        counts = {k: int(v) for k, v in (p.split("=") for p in args.bfcl.split(",") if p)}
        bfcl = bfcl_records(counts)
        records, left_out = curate([*traces, *bfcl])
        everyday_records = [r for r in records if r["metadata"]["source"] == "everyday-tune"]
        records += everyday_records * (
            args.everyday_repeat - 1
        )  # the product's own traces weigh more
        write_jsonl(records, data)
        report["collect"] = {
            **info,
            "everyday_records": len(everyday_records),
            "bfcl_records": len(bfcl),
            "records_written": len(records),
            "clusters": dict(clusters(records).most_common()),
            "left_out": dict(left_out),
            "wall_s": round(time.perf_counter() - started, 1),
        }
        save()
        print(json.dumps(report["collect"], indent=1), flush=True)
    if args.stage in ("all", "train"):
        from edgeagent.adapt.train import TrainConfig, train_adapter
        from edgeagent.agent.propose import build_tool_registry
        from edgeagent.tools.context import ToolContext

        settings = _settings(work)
        registry = build_tool_registry(None, ToolContext(settings=settings, allowed_roots=(work,)))
        config = TrainConfig(
            base=model_path,
            data=data,
            out=adapter,
            steps=args.steps,
            rank=args.rank,
            alpha=2.0 * args.rank,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            time_budget_s=args.minutes * 60,
        )
        result = train_adapter(config, settings, registry)
        report["train"] = {**result.to_dict(), "adapter_bytes": adapter.stat().st_size}
        save()
        print(json.dumps(report["train"], indent=1), flush=True)
    if args.stage in ("all", "eval"):
        counts = {k: int(v) for k, v in (p.split("=") for p in args.eval_bfcl.split(",") if p)}
        evaluation = {}
        for name, lora in (("base", None), ("adapter", adapter)):
            started = time.perf_counter()
            evaluation[name] = {
                "speed": speed(model_path, lora),
                "bfcl_heldout": eval_bfcl(model_path, lora, counts),
                "everyday_report": eval_everyday(args.model, lora, args.limit),
            }
            evaluation[name]["wall_s"] = round(time.perf_counter() - started, 1)
            report["eval"] = evaluation
            save()
            print(
                name,
                json.dumps({k: v for k, v in evaluation[name].items()}, default=str)[:2000],
                flush=True,
            )
    if args.stage == "speed":  # base and adapter interleaved, so drifting load hits both alike
        rounds = {"base": [], "adapter": []}
        for _ in range(args.speed_rounds):
            for name, lora in (("base", None), ("adapter", adapter)):
                rounds[name].append(speed(model_path, lora, runs=7))
        report["speed"] = {
            name: {
                "load_s": statistics.median(r["load_s"] for r in runs),
                "tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
                "rounds": runs,
            }
            for name, runs in rounds.items()
        }
        print(json.dumps(report["speed"], indent=1), flush=True)
    save()
    print(f"wrote {report_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
