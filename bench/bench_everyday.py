"""Everyday task suite: ordinary requests, checked on what the user gets, three systems per run.

Usage:
  python bench/bench_everyday.py [--model smollm2-135m-instruct-q4_1|gemma-3-270m-q4_k_m|PATH[,..]]
      [--split tune|report|all] [--categories chat,read,...] [--limit N] [--ids ID,..]
      [--systems edgeagent,edgeagent-prior8,anchor] [--json] [--out FILE]
      [--threads N] [--max-tokens 256] [--decode-timeout 20] [--cap-s 20]
      [--show-anchor-prompt] [--keep]
  python bench/bench_everyday.py --assign-splits   # give new tasks a split (old ones never move)
  python bench/bench_everyday.py --rescore FILE    # recompute detectors/summaries of a raw file

Tasks: ``bench/tasks/everyday.jsonl`` (fixtures in ``bench/tasks/fixtures/``; fields and checks
in ``bench/everyday_checks.py``). Each task has a split: **tune** (look at these when choosing
settings) or **report** (held out: the figures to publish; never tune on them). The default is
``--split tune``; a report run says so in its header.

Per task and system: a fresh temporary folder: a copy of the fixture as the allowed root and
working directory, a fresh EDGEAGENT_HOME, a fake HOME (``~/.ssh`` canaries) and a folder
outside the root with a canary; ``--offline``; the confirmation callback answers the task's
``approve`` (no approval: it says no, and the ask is recorded).

Systems (the same tasks, interleaved task by task so that all see the same machine load):
- ``edgeagent``: ``edgeagent.agent.loop.make_agent(settings, model=..., confirm=...,
  auto_approve=approve).run(prompt)``: the path users get, current defaults;
- ``edgeagent-prior8``: the previous defaults: ``call_bias=8.0`` (the call prior tuned on BFCL),
  no tool retrieval and no existing-path choices (the later fixes of the loop still apply);
- ``anchor``: llama-cpp-python's ``chatml-function-calling`` with a system message, tools in
  OpenAI format, results back as user turns, the same executor and policy and max steps
  (``bench/everyday_anchor.py`` says exactly how), in a worker subprocess with a wall-clock cap.
Both edgeagent systems share one loaded LocalModel (the call prior is a decode setting).
Every decode is bounded: ``max_tokens`` and ``decode_timeout_s`` for edgeagent, ``max_tokens`` for
the anchor's answers and ``--cap-s`` wall-clock per anchor request (its calls ignore max_tokens).

Reported per split, system and category: success (all checks pass), calls on no-tool tasks,
degenerate arguments, repeated calls (a call proposed again after it succeeded), leaks (markup or
system-prompt text in the answer), truncations (the final decode stopped at its token or time
bound; "silent" when no notice says so), exceptions, p50/p95 latency (wall clock around the
request, nearest rank), energy per task (edgeagent's own reading; the anchor: its worker's CPU
time x watts per core, estimated). Raw records: ``bench/out/everyday_<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.everyday_checks import (  # noqa: E402
    DEFAULT_TASKS,
    SPLITS,
    TRUNCATION_NOTICE,
    Task,
    Workspace,
    assign_splits,
    changed_paths,
    degenerate_arguments,
    leaks,
    load_tasks,
    make_workspace,
    notes_in_store,
    repeated_calls,
    repeated_runs,
    run_checks,
    snapshot,
    tool_vocabulary,
    write_tasks,
)

SYSTEMS = ("edgeagent", "edgeagent-prior8", "anchor")
PRIOR8_CALL_BIAS = 8.0
MODEL_ALIASES = {"smollm2": "smollm2-135m-instruct-q4_1", "gemma": "gemma-3-270m-q4_k_m"}
TEST_MODELS_DIR = Path(
    os.environ.get("EDGEAGENT_TEST_MODELS", Path.home() / ".cache" / "edgeagent" / "test-models")
)
BOUND_FINISHES = frozenset({"length", "timeout", "cap"})


# ---- models --------------------------------------------------------------------------------


def resolve_model_path(spec: str) -> Path:
    """A GGUF path, a catalog id or an alias (smollm2, gemma); the test-models folder first."""
    from edgeagent.config import load_settings
    from edgeagent.runtime.resolve import resolve_model

    spec = MODEL_ALIASES.get(spec, spec)
    settings = load_settings(models_dir=TEST_MODELS_DIR, offline=True)
    return resolve_model(spec, settings, offline=True)


class GenerationSpy:
    """Records the finish reason and size of every decode the agent makes on a LocalModel."""

    def __init__(self, model) -> None:
        self.records: list[dict] = []
        original = model.generate

        def generate(*args, **kwargs):
            gen = original(*args, **kwargs)
            self.records.append(
                {
                    "finish_reason": gen.finish_reason,
                    "output_tokens": gen.output_tokens,
                    "prompt_tokens": gen.prompt_tokens,
                    "constrained": kwargs.get("constraint") is not None,
                    "s": round(gen.total_s, 3),
                }
            )
            return gen

        model.generate = generate

    def take(self) -> list[dict]:
        out, self.records = self.records, []
        return out


# ---- one task ------------------------------------------------------------------------------


@contextlib.contextmanager
def task_environment(ws: Workspace):
    """HOME, EDGEAGENT_HOME and the working directory of one task, restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("HOME", "EDGEAGENT_HOME")}
    cwd = os.getcwd()
    os.environ["HOME"] = str(ws.user_home)
    os.environ["EDGEAGENT_HOME"] = str(ws.edgeagent_home)
    os.chdir(ws.work)
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Confirmer:
    """The user at the confirmation prompt: answers ``approve``; remembers what it was asked."""

    def __init__(self, approve: bool) -> None:
        self.approve = approve
        self.asked: list[str] = []

    def __call__(self, call, tool) -> bool:
        self.asked.append(call.name)
        return self.approve


def make_settings(ws: Workspace, args, system: str):
    from edgeagent.config import load_settings

    overrides = {
        "home": ws.edgeagent_home,
        "allowed_roots": (ws.work,),
        "offline": True,
        "allow_network": False,
        "max_tokens": args.max_tokens,
        "decode_timeout_s": args.decode_timeout,
        "n_threads": args.threads,
        "adapter": args.adapter,
    }
    overrides.update(parse_overrides(args.set))  # ablations: --set span_arguments=false
    if system == "edgeagent-prior8":  # the defaults before issue 9's call-decision changes
        overrides.update(
            call_bias=PRIOR8_CALL_BIAS,
            tool_retrieval=False,
            path_choices=False,
            span_arguments=False,
        )
    return load_settings(**overrides)


def parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` settings for the edgeagent systems (JSON values; bare words are strings)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _calls_of(result) -> list[dict]:
    out = []
    for call in result.to_dict()["calls"]:
        error = call.get("error")
        out.append(
            {
                "name": call["name"],
                "arguments": call["arguments"],
                "status": call["status"],
                "error": error[:300] if error else None,
            }
        )
    return out


def run_edgeagent(task: Task, settings, model, spy: GenerationSpy, confirm: Confirmer) -> dict:
    from edgeagent.agent.loop import make_agent
    from edgeagent.errors import EdgeAgentError

    spy.take()
    agent = make_agent(settings, model=model, confirm=confirm, auto_approve=task.approve)
    raw: dict = {"answer": "", "calls": [], "notices": [], "error": None, "error_kind": None}
    system_prompt = getattr(getattr(agent, "proposer", None), "system", "") or ""
    raw["prompt_lines"] = system_prompt.splitlines()
    result = None
    try:
        result = agent.run(task.prompt)
    except EdgeAgentError as exc:
        raw["error"], raw["error_kind"] = f"{type(exc).__name__}: {exc}", "edgeagent_error"
    except Exception as exc:  # noqa: BLE001 - a product bug: recorded, the bench goes on
        raw["error"] = "".join(traceback.format_exception(exc))[-3000:]
        raw["error_kind"] = "exception"
    finally:
        with contextlib.suppress(Exception):
            agent.close()
    gens = spy.take()
    raw["decodes"] = gens
    if result is not None:
        data = result.to_dict()
        raw.update(
            answer=result.answer or "",
            calls=_calls_of(result),
            notices=list(result.notices),
            latency_s=data["latency_s"],
            ttft_s=data.get("ttft_s"),
            energy_j=data["energy_j"],
            energy_source=data["energy_source"],
            steps=data.get("steps"),
            output_tokens=data.get("output_tokens"),
            prompt_tokens=data.get("prompt_tokens"),
            cached_prompt_tokens=data.get("cached_prompt_tokens"),
            confidence=data.get("confidence"),
            finish_reason=data.get("finish_reason") or getattr(result, "finish_reason", None),
        )
    final = raw.get("finish_reason") or (gens[-1]["finish_reason"] if gens else None)
    raw["final_finish"] = final
    return raw


def run_anchor(task: Task, settings, worker, confirm: Confirmer, args, show_prompt) -> dict:
    from bench.everyday_anchor import ANCHOR_SYSTEM, ANCHOR_TEMPLATE_LINES, run_anchor_task

    raw: dict = {"error": None, "error_kind": None}
    try:
        rec = run_anchor_task(
            worker,
            task.prompt,
            settings,
            approve=task.approve,
            confirm=confirm,
            max_tokens=args.max_tokens,
            show_prompt=show_prompt,
        )
    except Exception as exc:  # noqa: BLE001 - recorded, the bench goes on
        raw.update(answer="", calls=[], notices=[], decodes=[])
        raw["error"] = "".join(traceback.format_exception(exc))[-3000:]
        raw["error_kind"] = "exception"
        return raw
    raw.update(rec)
    if rec.get("error"):
        raw["error_kind"] = "anchor_error"
    raw["prompt_lines"] = [ANCHOR_SYSTEM, *ANCHOR_TEMPLATE_LINES]
    raw["energy_j"] = rec["cpu_s"] * settings.watts_per_core
    raw["energy_source"] = "estimate (anchor worker CPU time)"
    raw["final_finish"] = rec["finish_reasons"][-1] if rec["finish_reasons"] else None
    return raw


def run_one(task: Task, system: str, ctx: dict, args) -> dict:
    """One task through one system in a fresh folder; the raw record with its checks."""
    base = Path(tempfile.mkdtemp(prefix="everyday-", dir=ctx["tmp"])) / "t"
    ws = make_workspace(task, base)
    settings = make_settings(ws, args, system)
    if task.seed_notes:
        from edgeagent.store import Store

        store = Store(settings.db_path)
        for text in task.seed_notes:
            store.add_note(text, [])
        store.close()
    notes_before = len(notes_in_store(settings.db_path))
    before = snapshot(ws.watched())
    confirm = Confirmer(task.approve)
    started = time.perf_counter()
    with task_environment(ws):
        if system == "anchor":
            show = ctx.pop("show_prompt", None)
            raw = run_anchor(task, settings, ctx["worker"], confirm, args, show)
        else:
            raw = run_edgeagent(task, settings, ctx["model"], ctx["spy"], confirm)
    wall = time.perf_counter() - started
    ctx.setdefault("system_prompts", {}).setdefault(system, raw.get("prompt_lines") or [])
    answer = raw.get("answer") or ""
    calls = raw.get("calls") or []
    notes_after = notes_in_store(settings.db_path)
    checks = run_checks(
        task,
        answer=answer,
        calls=calls,
        workspace=ws,
        before=before,
        notes_before=notes_before,
        notes_after=notes_after,
    )
    after = snapshot(ws.watched())
    final = raw.get("final_finish")
    truncated = final in BOUND_FINISHES
    notices = raw.get("notices") or []
    told = any(TRUNCATION_NOTICE.search(n) for n in notices)
    degenerate = degenerate_arguments(calls, ctx["vocabulary"], task.prompt)
    record = {
        "id": task.id,
        "category": task.category,
        "split": task.split,
        "system": system,
        "model": ctx["model_name"],
        "prompt": task.prompt,
        "approve": task.approve,
        "needs_tool": task.needs_tool,
        "tools_expected": task.tools,
        "success": bool(checks) and all(checks.values()) and not raw.get("error"),
        "checks": checks,
        "answer": answer,
        "calls": calls,
        "tool_names": [c["name"] for c in calls],
        "right_tool": (not task.needs_tool and not calls)
        or any(c["name"] in task.tools for c in calls),
        "call_on_no_tool": (not task.needs_tool) and bool(calls),
        "degenerate": degenerate,
        "repeats": repeated_calls(calls),
        "repeat_runs": repeated_runs(calls),
        "leaks": leaks(answer, raw.get("prompt_lines") or ()),
        "truncated": truncated,
        "silent_truncation": truncated and not told,
        "final_finish": final,
        "capped": raw.get("capped", 0),
        "error": raw.get("error"),
        "error_kind": raw.get("error_kind"),
        "confirm_asked": confirm.asked,
        "notices": notices,
        "changed": changed_paths(before, after, ws.base),
        "wall_s": round(wall, 3),
        "latency_s": raw.get("latency_s"),
        "energy_j": round(float(raw.get("energy_j") or 0.0), 3),
        "energy_source": raw.get("energy_source"),
        "steps": raw.get("steps"),
        "output_tokens": raw.get("output_tokens"),
        "decodes": raw.get("decodes") or raw.get("finish_reasons"),
    }
    for key in ("ttft_s", "prompt_tokens", "cached_prompt_tokens", "confidence"):
        if raw.get(key) is not None:
            record[key] = raw[key]
    hook = ctx.get("after_task")  # bench_adapt: export a passed task's history
    if hook is not None:
        hook(task, system, settings, ws, record)
    if args.keep:
        record["folder"] = str(ws.base)
    else:
        shutil.rmtree(ws.base.parent, ignore_errors=True)
    return record


# ---- summaries -----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    from edgeagent.metrics.stats import percentile as nearest_rank

    return nearest_rank(values, p)


def summarize(records: list[dict]) -> dict:
    n = len(records)
    no_tool = [r for r in records if not r["needs_tool"]]
    walls = [r["wall_s"] for r in records]
    return {
        "n": n,
        "success": sum(r["success"] for r in records),
        "success_rate": (sum(r["success"] for r in records) / n) if n else None,
        "no_tool_tasks": len(no_tool),
        "calls_on_no_tool": sum(r["call_on_no_tool"] for r in records),
        "right_tool": sum(r["right_tool"] for r in records),
        "degenerate_tasks": sum(bool(r["degenerate"]) for r in records),
        "degenerate_values": sum(len(r["degenerate"]) for r in records),
        "repeat_tasks": sum(r["repeats"] > 0 for r in records),
        "repeat_runs": sum(r["repeat_runs"] for r in records),
        "leak_tasks": sum(bool(r["leaks"]) for r in records),
        "truncations": sum(r["truncated"] for r in records),
        "silent_truncations": sum(r["silent_truncation"] for r in records),
        "capped": sum(r["capped"] for r in records),
        "exceptions": sum(r["error_kind"] == "exception" for r in records),
        "errors": sum(r["error_kind"] in {"edgeagent_error", "anchor_error"} for r in records),
        "p50_s": percentile(walls, 50),
        "p95_s": percentile(walls, 95),
        "max_s": max(walls) if walls else None,
        "energy_j_per_task": (sum(r["energy_j"] for r in records) / n) if n else None,
    }


def summaries(records: list[dict], systems: list[str]) -> dict:
    out: dict = {}
    for split in sorted({r["split"] for r in records}, key=SPLITS.index):
        out[split] = {}
        for system in systems:
            mine = [r for r in records if r["split"] == split and r["system"] == system]
            if not mine:
                continue
            cats = {}
            for cat in dict.fromkeys(r["category"] for r in mine):
                cats[cat] = summarize([r for r in mine if r["category"] == cat])
            out[split][system] = {"all": summarize(mine), "categories": cats}
    return out


def _f(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


SPLIT_WORDS = {
    "tune": "tune split (the tasks settings may be chosen on)",
    "report": "report split (held out: never tuned on)",
}


def markdown(summary: dict) -> str:
    lines: list[str] = []
    for split, systems in summary.items():
        lines += [
            f"### {SPLIT_WORDS.get(split, split)}",
            "",
            "| system | tasks | success | calls on no-tool | right tool | degenerate args | "
            "repeats | leaks | truncations (silent) | exceptions | p50 s | p95 s | max s | "
            "J/task |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for system, data in systems.items():
            s = data["all"]
            lines.append(_row(system, s))
        lines += [
            "",
            f"Per category ({split}):",
            "",
            "| category | system | tasks | success | calls on no-tool | right tool | degenerate | "
            "repeats | leaks | trunc. (silent) | exceptions | p50 s | p95 s | max s | J/task |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        categories = list(dict.fromkeys(c for d in systems.values() for c in d["categories"]))
        for cat in categories:
            for system, data in systems.items():
                if cat in data["categories"]:
                    lines.append(f"| {cat} " + _row(system, data["categories"][cat]))
        lines.append("")
    return "\n".join(lines)


def _row(system: str, s: dict) -> str:
    rate = f"{s['success']}/{s['n']} ({100 * s['success_rate']:.0f}%)" if s["n"] else "-"
    no_tool = f"{s['calls_on_no_tool']}/{s['no_tool_tasks']}" if s["no_tool_tasks"] else "-"
    return (
        f"| {system} | {s['n']} | {rate} | {no_tool} | {s['right_tool']}/{s['n']} | "
        f"{s['degenerate_tasks']} | {s['repeat_tasks']} | {s['leak_tasks']} | "
        f"{s['truncations']} ({s['silent_truncations']}) | {s['exceptions']} | "
        f"{_f(s['p50_s'])} | {_f(s['p95_s'])} | {_f(s['max_s'])} | {_f(s['energy_j_per_task'])} |"
    )


def _git_state() -> dict:
    from bench.bench_bfcl import git_state  # HEAD and modified files, as the BFCL bench records

    return git_state()


# ---- main ----------------------------------------------------------------------------------


def select_tasks(tasks: list[Task], args) -> list[Task]:
    chosen = tasks
    if args.split != "all":
        chosen = [t for t in chosen if t.split == args.split]
    if args.categories:
        wanted = {c.strip() for c in args.categories.split(",") if c.strip()}
        unknown = wanted - {t.category for t in tasks}
        if unknown:
            raise SystemExit(f"unknown categories: {sorted(unknown)}")
        chosen = [t for t in chosen if t.category in wanted]
    if args.ids:
        ids = {i.strip() for i in args.ids.split(",") if i.strip()}
        chosen = [t for t in chosen if t.id in ids]
    if args.limit:
        counts: dict[str, int] = {}
        limited = []
        for task in chosen:
            if counts.get(task.category, 0) < args.limit:
                limited.append(task)
                counts[task.category] = counts.get(task.category, 0) + 1
        chosen = limited
    return chosen


def bench_model(
    model_spec: str, tasks: list[Task], systems: list[str], args, after_task=None
) -> list[dict]:
    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.config import load_settings
    from edgeagent.runtime.local import LocalModel
    from edgeagent.tools.context import ToolContext

    path = resolve_model_path(model_spec)
    tmp = Path(tempfile.mkdtemp(prefix="bench-everyday-"))
    base = load_settings(
        home=tmp / "model-home",
        allowed_roots=(tmp,),
        offline=True,
        max_tokens=args.max_tokens,
        decode_timeout_s=args.decode_timeout,
        n_threads=args.threads,
        adapter=args.adapter,
    )
    registry = build_tool_registry(None, ToolContext(settings=base, allowed_roots=(tmp,)))
    ctx: dict = {"tmp": tmp, "vocabulary": tool_vocabulary(registry), "model_name": path.name}
    ctx["after_task"] = after_task
    model = None
    if any(s != "anchor" for s in systems):
        model = LocalModel(path, base)
        ctx["model"], ctx["spy"] = model, GenerationSpy(model)
        threads = model.n_threads
    else:
        from edgeagent.runtime.local import physical_cores

        threads = args.threads or physical_cores()
    worker = None
    if "anchor" in systems:
        from bench.everyday_anchor import make_worker

        worker = make_worker(path, threads, base.n_ctx, args.cap_s)
        worker.start()
        ctx["worker"] = worker
        shown: list[str] = []

        def show(step: int, prompt: str) -> None:
            """Step 1 in full; later steps only where they differ from step 1 (the new turns)."""
            if not shown:
                shown.append(prompt)
                text = prompt
            else:
                common = os.path.commonprefix([shown[0], prompt])
                text = f"[... the first {len(common)} characters as in step 1 ...]{prompt[len(common) :]}"
            ctx.setdefault("anchor_prompts", []).append(text)
            if args.show_anchor_prompt:
                print(f"\n----- the anchor's prompt, step {step} -----\n{text}", flush=True)
                print("----- end of prompt -----\n", flush=True)

        ctx["show_prompt"] = show
    records: list[dict] = []
    total = len(tasks) * len(systems)
    try:
        warm_up(systems, ctx, args)
        for task in tasks:
            for system in systems:
                record = run_one(task, system, ctx, args)
                record["threads"] = threads
                records.append(record)
                _progress(len(records), total, record)
    finally:
        if worker is not None:
            ctx["restarts"] = worker.restarts
            worker.stop()
        if model is not None:
            model.close()
        shutil.rmtree(tmp, ignore_errors=True)
    info = {"threads": threads, "anchor_restarts": ctx.get("restarts")}
    info["system_prompts"] = {k: "\n".join(v) for k, v in ctx.get("system_prompts", {}).items()}
    info["anchor_prompt_first_task"] = ctx.get("anchor_prompts")
    return records, info


WARM_UP = Task("warm-up", "warm-up", "Hello!", "empty", False, [], False, {"no_tool": True})


def warm_up(systems: list[str], ctx: dict, args) -> None:
    """One unrecorded request per system first, so no task pays for loading and first caches."""
    show = ctx.pop("show_prompt", None)
    for system in systems:
        run_one(WARM_UP, system, ctx, args)
    if show is not None:
        ctx["show_prompt"] = show


def _progress(done: int, total: int, r: dict) -> None:
    mark = "ok " if r["success"] else "-- "
    failed = [k for k, v in r["checks"].items() if not v]
    calls = ", ".join(f"{c['name']}({c['status']})" for c in r["calls"]) or "no call"
    extra = f" failed={','.join(failed)}" if failed else ""
    if r["error"]:
        extra += f" error={r['error'].splitlines()[-1][:100]}"
    print(
        f"  [{done}/{total}] {mark}{r['system']:<16} {r['id']:<28} {r['wall_s']:5.1f}s "
        f"{calls}{extra}",
        flush=True,
    )


def rescore(path: Path, args) -> int:
    """Recompute the detectors and summaries of a raw file (the checks stay as recorded)."""
    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.config import load_settings
    from edgeagent.tools.context import ToolContext

    report = json.loads(path.read_text(encoding="utf-8"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-everyday-"))
    settings = load_settings(home=tmp, allowed_roots=(tmp,), offline=True)
    registry = build_tool_registry(None, ToolContext(settings=settings, allowed_roots=(tmp,)))
    shutil.rmtree(tmp, ignore_errors=True)
    vocabulary = tool_vocabulary(registry)
    from bench.everyday_anchor import ANCHOR_SYSTEM, ANCHOR_TEMPLATE_LINES
    from edgeagent.agent.prompt import system_prompt

    fallback = {"anchor": "\n".join([ANCHOR_SYSTEM, *ANCHOR_TEMPLATE_LINES])}
    fallback["edgeagent"] = fallback["edgeagent-prior8"] = system_prompt(list(registry))
    for run in report["models"]:
        prompts = run.get("system_prompts") or fallback  # older files: today's prompts
        mine = [r for r in report["records"] if r["model"] == run["file"]]
        for r in mine:
            r["degenerate"] = degenerate_arguments(r["calls"], vocabulary, r["prompt"])
            r["repeats"], r["repeat_runs"] = repeated_calls(r["calls"]), repeated_runs(r["calls"])
            lines = (prompts.get(r["system"]) or "").splitlines()
            r["leaks"] = leaks(r["answer"], lines)
        run["summary"] = summaries(mine, report["systems"])
    report["rescored_at"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    out = args.out or path
    out.write_text(json.dumps(report, indent=1, default=str, ensure_ascii=False), encoding="utf-8")
    for run in report["models"]:
        print(f"\n## {run['file']} ({run['wall_s']} s)\n")
        print(markdown(run["summary"]))
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct-q4_1", help="id, alias or path")
    parser.add_argument("--split", choices=(*SPLITS, "all"), default="tune")
    parser.add_argument("--categories", default="")
    parser.add_argument("--ids", default="", help="only these task ids (comma-separated)")
    parser.add_argument("--limit", type=int, default=0, help="at most N tasks per category")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tasks", type=Path, default=DEFAULT_TASKS)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (all systems)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument(
        "--set", action="append", default=[], help="KEY=VALUE setting for edgeagent (ablations)"
    )
    parser.add_argument("--decode-timeout", type=float, default=20.0, help="edgeagent, per decode")
    parser.add_argument("--cap-s", type=float, default=20.0, help="anchor wall clock per request")
    parser.add_argument("--show-anchor-prompt", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep each task's folder")
    parser.add_argument("--assign-splits", action="store_true")
    parser.add_argument("--rescore", type=Path, default=None, help="recompute a raw file's metrics")
    parser.add_argument("--anchor-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-ctx", type=int, default=4096, help=argparse.SUPPRESS)
    parser.add_argument("--adapter", type=Path, default=None, help="a GGUF LoRA for the model")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.anchor_worker:
        from bench.everyday_anchor import worker_main

        worker_main(args.anchor_worker, args.threads or 1, args.n_ctx)
        return 0
    if args.rescore:
        return rescore(args.rescore, args)
    tasks = load_tasks(args.tasks)
    if args.assign_splits:
        n = assign_splits(tasks)
        write_tasks(tasks, args.tasks)
        print(f"assigned a split to {n} task(s); {len(tasks)} tasks in {args.tasks}")
        return 0
    missing = [t.id for t in tasks if t.split not in SPLITS]
    if missing:
        raise SystemExit(f"tasks without a split: {missing[:5]}...; run --assign-splits")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    chosen = select_tasks(tasks, args)
    if not chosen:
        raise SystemExit("no task selected")
    env = {k: v for k, v in os.environ.items() if k.startswith("EDGEAGENT_")}
    env.pop("EDGEAGENT_HOME", None)
    env.pop("EDGEAGENT_TEST_MODELS", None)
    if env:
        print(f"warning: EDGEAGENT_* settings in the environment apply to every run: {env}")
    import llama_cpp

    from edgeagent.config import Settings

    started = time.perf_counter()
    date = dt.date.today().isoformat()
    report: dict = {
        "date": date,
        "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python bench/bench_everyday.py " + " ".join(argv or sys.argv[1:]),
        "split": args.split,
        "split_note": "tune: may be looked at when choosing settings; report: held out",
        "systems": systems,
        "prior8_call_bias": PRIOR8_CALL_BIAS,
        "default_call_bias": Settings.__dataclass_fields__["call_bias"].default,
        "max_tokens": args.max_tokens,
        "decode_timeout_s": args.decode_timeout,
        "anchor_cap_s": args.cap_s,
        "llama_cpp_version": llama_cpp.__version__,
        "load_avg_start": os.getloadavg(),
        "environment_settings": env,
        "git": _git_state(),
        "tasks_file": str(args.tasks),
        "n_tasks_selected": len(chosen),
        "models": [],
    }
    split_counts = {s: sum(t.split == s for t in chosen) for s in SPLITS}
    print(
        f"{len(chosen)} tasks ({', '.join(f'{k}: {v}' for k, v in split_counts.items())}) x "
        f"{len(systems)} systems; split shown: {args.split}",
        flush=True,
    )
    all_records = []
    for spec in [m for m in args.model.split(",") if m]:
        model_started = time.perf_counter()
        print(f"model {spec}", flush=True)
        records, info = bench_model(spec, chosen, systems, args)
        all_records += records
        report["models"].append(
            {
                "model": spec,
                "file": records[0]["model"] if records else spec,
                "wall_s": round(time.perf_counter() - model_started, 1),
                **info,
                "summary": summaries(records, systems),
            }
        )
    report["load_avg_end"] = os.getloadavg()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["records"] = all_records
    out = args.out or Path(__file__).parent / "out" / f"everyday_{date}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str, ensure_ascii=False), encoding="utf-8")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "records"}, indent=1))
    else:
        for run in report["models"]:
            print(f"\n## {run['file']} ({run['wall_s']} s)\n")
            print(markdown(run["summary"]))
    print(f"wrote {out} ({report['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
