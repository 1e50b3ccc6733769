"""Fit the call decision on the everyday suite's tune split; show what it does on the report split.

For every task whose request brings tools into view (agent.retrieval), the model's own first-token
log-odds of starting a call (``{``) rather than text are read once, without any prior, from the
prompt edgeagent really renders. The call prior ``call_bias`` is a threshold on those log-odds: the
model calls when ``log-odds + call_bias > 0``. The script lists, per threshold, the calls made on
tasks that need no tool and the tool tasks left unanswered by a tool, and how many requests of
each kind reach a given retrieval score (``STRONG_MATCH`` makes a call required), on the split it
fits on and, separately, on the other one (never used to choose).

    python bench/fit_call_decision.py [--model ID] [--fit tune]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TASKS = ROOT / "bench" / "tasks" / "everyday.jsonl"
FIXTURES = ROOT / "bench" / "tasks" / "fixtures"
BIASES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12)
SCORES = (0.5, 1.0, 1.1, 1.5, 2.0)


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def first_token_odds(model, prompt: str) -> float:
    """log P(the first token starts a call) - log P(it does not), with no prior."""
    tokens = model.tokenize(prompt)
    model._reuse_prefix(tokens)  # noqa: SLF001 - a bench reading the model's own logits
    done = model.llama.n_tokens
    model._eval(tokens[done:], deadline=float("inf"))  # noqa: SLF001
    logits = model._last_logits()  # noqa: SLF001
    start = np.zeros(len(logits), dtype=bool)
    start[model.call_start_tokens()] = True
    return _logsumexp(logits[start]) - _logsumexp(logits[~start])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct-q4_1")
    parser.add_argument("--fit", choices=("tune", "report"), default="tune")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from bench.bench_everyday import resolve_model_path
    from edgeagent.agent.paths import named_kinds
    from edgeagent.agent.propose import LocalProposer
    from edgeagent.agent.retrieval import match_tools, tools_in_view
    from edgeagent.agent.spans import lacks_named_path
    from edgeagent.config import load_settings
    from edgeagent.runtime.session import load_local_model
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext
    from edgeagent.tools.registry import ToolRegistry

    home = Path(tempfile.mkdtemp(prefix="fit-call-"))
    model_path = str(resolve_model_path(args.model))
    settings = load_settings(home=home, model=model_path, offline=True)
    model = load_local_model(settings)
    tools = make_builtin_tools(ToolContext(settings))
    by_name = {t.name: t for t in tools}
    proposer = LocalProposer(model, ToolRegistry(tools), settings)
    rows = []
    for line in TASKS.read_text().splitlines():
        task = json.loads(line)
        named = named_kinds(task["prompt"], FIXTURES / task["fixture"])
        matches = match_tools(task["prompt"], tools, named)
        matches = [m for m in matches if not lacks_named_path(by_name[m.name], task["prompt"])]
        view = tools_in_view(matches)
        if not view:
            continue  # answered in text whatever the prior: not part of this decision
        # decided by evidence before the model: a named existing path, arithmetic
        forced = bool(named & set(matches[0].shared)) or "__arithmetic__" in matches[0].shared
        messages = [
            {"role": "system", "content": proposer.system},
            {"role": "user", "content": task["prompt"]},
        ]
        odds = first_token_odds(model, model.render(messages))
        rows.append(
            {
                "id": task["id"],
                "split": task["split"],
                "needs_tool": task["needs_tool"],
                "forced": forced,
                "score": matches[0].score,
                "odds": round(odds, 3),
            }
        )
    model.close()
    print(f"{len(rows)} tasks with tools in view; log-odds of a call, no prior")
    for split in (args.fit, "report" if args.fit == "tune" else "tune"):
        chosen = [r for r in rows if r["split"] == split and not r["forced"]]
        no_tool = [r for r in chosen if not r["needs_tool"]]
        tool = [r for r in chosen if r["needs_tool"]]
        role = "fit on" if split == args.fit else "held out"
        print(f"\n{split} ({role}): {len(no_tool)} no-tool, {len(tool)} tool tasks decided here")
        print("| call_bias | calls on no-tool | tool tasks without a call |")
        print("|---|---|---|")
        for bias in BIASES:
            false_calls = sum(r["odds"] + bias > 0 for r in no_tool)
            missed = sum(r["odds"] + bias <= 0 for r in tool)
            print(f"| {bias} | {false_calls}/{len(no_tool)} | {missed}/{len(tool)} |")
        print("\n| best match score at least | requests above it: no-tool | tool |")
        print("|---|---|---|")
        for floor in SCORES:
            over_no = sum(r["score"] >= floor for r in no_tool)
            over_tool = sum(r["score"] >= floor for r in tool)
            print(f"| {floor} | {over_no}/{len(no_tool)} | {over_tool}/{len(tool)} |")
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
