"""BFCL simple / multiple / irrelevance: our propose path vs llama-cpp-python's function calling.

Usage:
  python bench/bench_bfcl.py [--simple 20] [--multiple 10] [--irrelevance 10]
      [--offset 0] [--models smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m] [--cap-s 20]
      [--threads 1]
      [--sequential] [--out bench/out/bfcl_DATE.json]

For each model the same items (N of each category, from ``--offset``) go through two methods:
- ours: ``edgeagent.eval.bfcl.run_item`` (what ``propose_calls`` does, ``tool_choice="auto"``,
  our system prompt, grammar-constrained greedy decode, validation, one repair turn);
- anchor: ``Llama(chat_format="chatml-function-calling").create_chat_completion(messages,
  tools, tool_choice="auto", temperature=0)``, given its best shot: its template shows the tools
  only inside a system message, so an item without one gets ``ANCHOR_SYSTEM`` (one line) first;
  without it the anchor is asked to call functions it was never shown. It ignores max_tokens internally, so each anchor
  item runs in a worker subprocess with a wall-clock cap; on overrun the worker is killed and
  restarted, the item counts as wrong and its latency as the cap.
Both are scored by BFCL's own AST checker; schema validity of both uses our validator.
By default the two methods run side by side (one thread each) so they see the same machine
load; ``--sequential`` runs the anchor after ours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the anchor's template renders the tool list only inside a system message (issue 9)
ANCHOR_SYSTEM = "You are a helpful assistant."

from edgeagent.eval.bfcl import (  # noqa: E402
    ItemResult,
    failed_item,
    load_items,
    run_item,
    score,
    summarize_by_category,
    to_bfcl_calls,
    to_openai_tools,
)
from edgeagent.eval.bfcl_checker import bfcl_version  # noqa: E402

MODELS = ("smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m")
TEST_MODELS_DIR = Path(
    os.environ.get("EDGEAGENT_TEST_MODELS", Path.home() / ".cache" / "edgeagent" / "test-models")
)
ANCHOR_MAX_TOKENS = 256  # passed, but the chatml-function-calling handler ignores it


# ---- the anchor, in a worker subprocess -----------------------------------------------------


def load_anchor(model_path: str, threads: int, n_ctx: int):
    """llama-cpp-python's own function calling on ``model_path``, with edgeagent's CPU quirks."""
    import llama_cpp

    from edgeagent.runtime.cpu_quirks import apply_cpu_quirks

    apply_cpu_quirks()  # the same kernels as edgeagent (no AMX where it crashes)
    return llama_cpp.Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        chat_format="chatml-function-calling",
        verbose=False,
    )


def anchor_worker(model_path: str, threads: int, n_ctx: int) -> None:
    """Read one JSON request per line on stdin, answer one JSON line on stdout (private fd)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything llama.cpp prints goes to stderr, never into the protocol
    llm = load_anchor(model_path, threads, n_ctx)
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        reply: dict = {"id": request["id"]}
        try:
            response = llm.create_chat_completion(
                messages=request["messages"],
                tools=request["tools"],
                tool_choice="auto",
                max_tokens=ANCHOR_MAX_TOKENS,
                temperature=0.0,
            )
            choice = response["choices"][0]
            message = choice["message"]
            reply["tool_calls"] = [
                [c["function"]["name"], c["function"]["arguments"]]
                for c in message.get("tool_calls") or []
            ]
            reply["content"] = message.get("content")
            reply["finish_reason"] = choice.get("finish_reason")
            reply["output_tokens"] = (response.get("usage") or {}).get("completion_tokens", 0)
        except Exception as exc:  # noqa: BLE001 - reported per item, the worker keeps going
            reply["error"] = f"{type(exc).__name__}: {exc}"
        reply["worker_s"] = time.perf_counter() - started
        out.write(json.dumps(reply) + "\n")


class AnchorWorker:
    """A persistent anchor subprocess per model; killed and restarted when an item overruns."""

    def __init__(self, model_path: Path, threads: int, n_ctx: int, cap_s: float) -> None:
        self.args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--anchor-worker",
            str(model_path),
            "--threads",
            str(threads),
            "--n-ctx",
            str(n_ctx),
        ]
        self.cap_s = cap_s
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue = queue.Queue()
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()
        try:
            ready = self.lines.get(timeout=180)
        except queue.Empty:
            ready = None
        if not ready or not ready.get("ready"):
            self.stop()
            raise RuntimeError("the anchor worker did not start")

    @staticmethod
    def _read(proc: subprocess.Popen, lines: queue.Queue) -> None:
        for line in proc.stdout:
            try:
                lines.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        lines.put(None)

    def ask(self, request: dict) -> dict | None:
        """The worker's reply, or None when it overran the cap (the worker is then restarted)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + self.cap_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                reply = self.lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                reply = None
            if reply is None:  # overran the cap, or the worker died: restart it now
                self.stop()
                self.restarts += 1
                self.start()
                return None
            if reply.get("id") == request["id"]:
                return reply

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


def anchor_item(worker: AnchorWorker, item) -> ItemResult:
    """Run one item through the anchor and score it like ours."""
    from edgeagent.agent.propose import build_tool_registry
    from edgeagent.agent.validate import validate_call
    from edgeagent.types import ToolCall

    tools, names = to_openai_tools(item.functions)
    started = time.perf_counter()
    messages = list(item.messages)
    if not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": ANCHOR_SYSTEM}, *messages]
    reply = worker.ask({"id": item.id, "messages": messages, "tools": tools})
    latency = time.perf_counter() - started
    if reply is None:
        return failed_item(
            item, worker.cap_s, "timeout", "timeout", f"no reply within {worker.cap_s:.0f} s"
        )
    if "error" in reply:
        return failed_item(item, latency, "error", "error", reply["error"])
    registry = build_tool_registry(tools, None)
    calls, n_valid = [], 0
    for name, raw in reply.get("tool_calls") or []:
        try:
            arguments = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            arguments = None
        if not isinstance(arguments, dict):
            calls.append((name, {}))
            continue
        call = ToolCall(name, arguments)
        if validate_call(call, registry).valid:
            n_valid += 1
        calls.append((name, arguments))
    bfcl_calls = to_bfcl_calls(calls, names)
    verdict = score(item, bfcl_calls)
    return ItemResult(
        item.id,
        item.category,
        correct=bool(verdict["valid"]),
        had_call=bool(calls),
        schema_valid=(n_valid == len(calls)) if calls else None,
        latency_s=latency,
        output_tokens=int(reply.get("output_tokens") or 0),
        calls=bfcl_calls,
        answer_text=reply.get("content"),
        error_type=None if verdict["valid"] else verdict.get("error_type"),
        error=None if verdict["valid"] else "; ".join(map(str, verdict.get("error") or [])),
        finish_reason=str(reply.get("finish_reason") or ""),
        n_calls=len(calls),
        n_valid_calls=n_valid,
    )


# ---- one model, both methods ----------------------------------------------------------------


def _progress(label: str, total: int):
    count = [0]

    def report(result: ItemResult) -> None:
        count[0] += 1
        mark = "ok " if result.correct else "-- "
        print(
            f"  [{label} {count[0]}/{total}] {mark}{result.id} {result.latency_s:.1f}s "
            f"{result.status if result.status != 'ok' else ''}",
            flush=True,
        )

    return report


def bench_model(model_id: str, items: list, args) -> dict:
    """Ours and the anchor on ``items`` with one model; side by side unless --sequential."""
    from edgeagent.config import load_settings
    from edgeagent.runtime.catalog import load_catalog
    from edgeagent.runtime.download import pull_model
    from edgeagent.runtime.local import LocalModel

    settings = load_settings(models_dir=TEST_MODELS_DIR, n_threads=args.threads)
    path = pull_model(load_catalog().get(model_id), settings)
    worker = AnchorWorker(path, args.threads, settings.n_ctx, args.cap_s)
    anchor_results: list[ItemResult] = []
    anchor_started = [0.0, 0.0]

    def anchor_lane() -> None:
        report = _progress("anchor", len(items))
        anchor_started[0] = time.perf_counter()
        try:
            worker.start()
            for item in items:
                result = anchor_item(worker, item)
                anchor_results.append(result)
                report(result)
        finally:
            worker.stop()
            anchor_started[1] = time.perf_counter() - anchor_started[0]

    lane = threading.Thread(target=anchor_lane, daemon=True)
    if args.no_anchor:
        lane = threading.Thread(target=lambda: None)
    if not args.sequential:
        lane.start()
    started = time.perf_counter()
    model = LocalModel(path, settings)
    ours: list[ItemResult] = []
    report = _progress("ours", len(items))
    for item in items:
        result = run_item(item, model, settings, args.tool_choice)
        ours.append(result)
        report(result)
    ours_wall = time.perf_counter() - started
    model.close()
    if args.sequential:
        lane.start()
    lane.join()
    return {
        "model": model_id,
        "file": path.name,
        "ours": {
            "wall_s": round(ours_wall, 1),
            "summary": summarize_by_category(ours),
            "items": [r.to_dict() for r in ours],
        },
        "anchor": {
            "wall_s": round(anchor_started[1], 1),
            "cap_s": args.cap_s,
            "capped": sum(1 for r in anchor_results if r.status == "timeout"),
            "restarts": worker.restarts,
            "summary": summarize_by_category(anchor_results),
            "items": [r.to_dict() for r in anchor_results],
        },
    }


# ---- report --------------------------------------------------------------------------------


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _sec(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_table(report: dict) -> str:
    """The README table: per model and method, all items and per category accuracy."""
    lines = [
        "| model | method | accuracy | simple | multiple | irrelevance | with a call | "
        "schema valid | p50 s | p95 s | max s | capped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["models"]:
        for method in ("ours", "anchor"):
            data = run[method]
            s = data["summary"]
            overall = s["all"]

            def cat(name: str, s=s) -> str:
                c = s.get(name)
                return f"{c['correct']}/{c['n']}" if c else "-"

            lines.append(
                f"| {run['model']} | {method} | {_pct(overall['accuracy'])} | "
                f"{cat('simple_python')} | {cat('multiple')} | {cat('irrelevance')} | "
                f"{_pct(overall['with_call'])} | {_pct(overall['schema_validity'])} | "
                f"{_sec(overall['latency_p50_s'])} | {_sec(overall['latency_p95_s'])} | "
                f"{_sec(overall['latency_max_s'])} | {data.get('capped', '-')} |"
            )
    return "\n".join(lines)


def git_state() -> dict:
    """HEAD and the modified files of the checkout (the code measured may be uncommitted)."""
    root = Path(__file__).resolve().parents[1]

    def git(*cmd: str) -> str:
        try:
            done = subprocess.run(
                ["git", *cmd], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "modified": git("status", "--porcelain").splitlines()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--simple", type=int, default=20)
    parser.add_argument("--multiple", type=int, default=10)
    parser.add_argument("--irrelevance", type=int, default=10)
    parser.add_argument(
        "--offset", type=int, default=0, help="skip this many items of each category (held-out)"
    )
    parser.add_argument("--cap-s", type=float, default=20.0, help="anchor wall-clock cap per item")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads per method")
    parser.add_argument("--sequential", action="store_true", help="anchor after ours")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--tool-choice", default="auto", help="ours only; 'required' is a diagnostic, not BFCL"
    )
    parser.add_argument("--no-anchor", action="store_true", help="ours only (diagnostics)")
    parser.add_argument("--anchor-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-ctx", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.anchor_worker:
        anchor_worker(args.anchor_worker, args.threads, args.n_ctx)
        return 0

    import llama_cpp

    items = [
        *load_items("simple_python", args.simple, args.offset),
        *load_items("multiple", args.multiple, args.offset),
        *load_items("irrelevance", args.irrelevance, args.offset),
    ]
    started = time.perf_counter()
    report = {
        "date": dt.date.today().isoformat(),
        "command": "python bench/bench_bfcl.py " + " ".join(argv or sys.argv[1:]),
        "bfcl_eval_version": bfcl_version(),
        "llama_cpp_version": llama_cpp.__version__,
        "items": {
            "simple_python": args.simple,
            "multiple": args.multiple,
            "irrelevance": args.irrelevance,
            "offset": args.offset,
        },
        "threads_per_method": args.threads,
        "side_by_side": not args.sequential,
        "tool_choice_ours": args.tool_choice,
        "anchor_run": not args.no_anchor,
        "anchor_cap_s": args.cap_s,
        "load_avg_start": os.getloadavg(),
        "git": git_state(),
        "models": [],
    }
    for model_id in [m for m in args.models.split(",") if m]:
        print(f"{model_id}: {len(items)} items", flush=True)
        report["models"].append(bench_model(model_id, items, args))
    report["load_avg_end"] = os.getloadavg()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    out = args.out or Path(__file__).parent / "out" / f"bfcl_{report['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(markdown_table(report))
    for run in report["models"]:
        for method in ("ours", "anchor"):
            print(f"{run['model']} {method} failures: {run[method]['summary']['all']['failures']}")
    print(f"wrote {out} ({report['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
