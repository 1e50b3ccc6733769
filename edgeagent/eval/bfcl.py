"""BFCL harness: load items, convert their function docs, propose calls locally, score with BFCL.

Items come from the ``bfcl-eval`` package (``bfcl_eval/data/BFCL_v*_<category>.json`` and the
answers in ``data/possible_answer/``); scoring is BFCL's own AST checker (see
``bfcl_checker``). Each item's user turns are the messages, its functions become OpenAI tools
(BFCL's Python-flavoured types mapped to JSON Schema, ``math.factorial`` -> ``math_factorial``),
and the local model proposes calls exactly as ``propose_calls`` does (``tool_choice="auto"``,
our system prompt). A schema the grammar compiler refuses is recorded as an error item, never
a crash.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeagent.config import Settings, load_settings
from edgeagent.errors import ConfigError, EdgeAgentError, GrammarError
from edgeagent.eval.bfcl_checker import INSTALL_HINT, bfcl_version, check_ast, check_irrelevance

CATEGORY_ALIASES = {
    "simple": "simple_python",
    "simple_python": "simple_python",
    "multiple": "multiple",
    "irrelevance": "irrelevance",
}
CATEGORIES = ("simple_python", "multiple", "irrelevance")

# BFCL type -> JSON Schema type (bfcl_eval.constants.type_mappings.GORILLA_TO_OPENAPI, Python part)
GORILLA_TO_JSON = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "double": "number",
    "string": "string",
    "any": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
}
# BFCL keys that are not JSON Schema: folded into the description, as BFCL does for Gemini
NON_SCHEMA_KEYS = ("optional",)
_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class BfclItem:
    """One BFCL test: the user turns, the function docs (BFCL form) and the possible answer."""

    id: str
    category: str
    messages: list[dict]
    functions: list[dict]
    answer: list | None = None


@dataclass
class ItemResult:
    """What one item produced and how BFCL scored it."""

    id: str
    category: str
    correct: bool
    had_call: bool
    schema_valid: bool | None
    latency_s: float
    output_tokens: int = 0
    calls: list[dict] = field(default_factory=list)
    answer_text: str | None = None
    error_type: str | None = None
    error: str | None = None
    status: str = "ok"  # ok | grammar_error | error | timeout
    finish_reason: str = ""
    repaired: bool = False
    n_calls: int = 0
    n_valid_calls: int = 0
    duplicates_dropped: int = 0
    confidence: float | None = None
    confidence_parts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---- data --------------------------------------------------------------------------------


def canonical_category(name: str) -> str:
    """``simple`` -> ``simple_python``; ConfigError for a category this harness does not run."""
    key = name.strip().lower()
    if key not in CATEGORY_ALIASES:
        raise ConfigError(
            f"unknown BFCL category {name!r}",
            f"use one of: {', '.join(sorted(CATEGORY_ALIASES))}",
        )
    return CATEGORY_ALIASES[key]


def data_dir() -> Path:
    """The ``bfcl_eval/data`` directory of the installed bfcl-eval package."""
    import importlib.util

    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("bfcl-eval is not installed", INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not path.is_dir():
        raise ConfigError(f"bfcl-eval has no data directory at {path}", INSTALL_HINT)
    return path


def _data_file(directory: Path, category: str) -> Path:
    """The newest ``BFCL_v<N>_<category>.json`` in ``directory``."""
    found = []
    for path in directory.glob(f"BFCL_v*_{category}.json"):
        match = re.fullmatch(rf"BFCL_v(\d+)_{category}\.json", path.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise ConfigError(f"no BFCL data file for {category!r} in {directory}", INSTALL_HINT)
    return max(found)[1]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_items(category: str, limit: int | None = None, offset: int = 0) -> list[BfclItem]:
    """Items ``offset .. offset+limit`` of a category, each with its possible answer."""
    category = canonical_category(category)
    directory = data_dir()
    rows = _read_jsonl(_data_file(directory, category))
    end = None if limit is None else offset + limit
    rows = rows[offset:end]
    answers: dict[str, list] = {}
    if category != "irrelevance":
        answer_rows = _read_jsonl(_data_file(directory / "possible_answer", category))
        answers = {r["id"]: r["ground_truth"] for r in answer_rows}
    items = []
    for row in rows:
        messages = [dict(m) for turn in row["question"] for m in turn]
        items.append(
            BfclItem(row["id"], category, messages, row["function"], answers.get(row["id"]))
        )
    return items


# ---- function docs -> OpenAI tools ---------------------------------------------------------


def tool_name(name: str) -> str:
    """A valid OpenAI tool name for a BFCL function name (``math.factorial`` -> ``math_factorial``)."""
    return _NAME_OK.sub("_", name)


def convert_schema(schema: dict) -> dict:
    """A BFCL parameter schema as JSON Schema: types mapped, non-schema keys into the description."""
    out = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    kind = out.get("type")
    if isinstance(kind, str):
        if kind == "float" and "float" not in str(out.get("description", "")).lower():
            out["description"] = (out.get("description") or "").rstrip() + " (a float)"
        out["type"] = GORILLA_TO_JSON.get(kind, "string")
    elif kind is None and not any(k in out for k in ("enum", "const", "anyOf", "oneOf")):
        out["type"] = "string"  # BFCL's default for an untyped parameter
    for key in NON_SCHEMA_KEYS:
        if key in out:
            value = out.pop(key)
            note = f" Optional: {value}." if key == "optional" else f" {key}: {value}."
            out["description"] = (out.get("description") or "").rstrip() + note
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: convert_schema(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = convert_schema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = convert_schema(out["additionalProperties"])
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def to_openai_tools(functions: Sequence[dict]) -> tuple[list[dict], dict[str, str]]:
    """OpenAI-format tools for BFCL function docs, and the map tool name -> BFCL name."""
    tools, names = [], {}
    for fn in functions:
        name = tool_name(fn["name"])
        names[name] = fn["name"]
        parameters = convert_schema(fn.get("parameters") or {"type": "dict", "properties": {}})
        parameters["type"] = "object"
        parameters.setdefault("properties", {})
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": fn.get("description") or "",
                    "parameters": parameters,
                },
            }
        )
    return tools, names


def to_bfcl_calls(calls: Iterable, names: dict[str, str]) -> list[dict]:
    """Calls (ToolCall or ``(name, arguments)``) in the checker's ``[{bfcl_name: {arg: value}}]``."""
    out = []
    for call in calls:
        name, arguments = (call.name, call.arguments) if hasattr(call, "name") else call
        out.append({names.get(name, name): dict(arguments) if isinstance(arguments, dict) else {}})
    return out


def score(item: BfclItem, bfcl_calls: list[dict]) -> dict:
    """BFCL's verdict for one item's calls (irrelevance: correct when there is no call)."""
    if item.category == "irrelevance":
        return check_irrelevance(bfcl_calls)
    if not bfcl_calls:
        return {
            "valid": False,
            "error": ["The model made no function call."],
            "error_type": "no_call",
        }
    return check_ast(item.functions, bfcl_calls, item.answer, item.category)


# ---- running ----------------------------------------------------------------------------


def _propose(
    model, tools: list[dict], messages: list[dict], settings: Settings, tool_choice: str = "auto"
):
    """What ``propose_calls`` does, keeping the whole Proposal (usage, finish reason, raw text)."""
    from edgeagent.agent.propose import LocalProposer, build_tool_registry

    registry = build_tool_registry(tools, None)
    proposer = LocalProposer(model, registry, settings)
    return proposer.propose(messages, mode=tool_choice)


def _raw_calls(proposal) -> list:
    """The calls as the model wrote them: validation fills schema defaults in, BFCL scores raw."""
    if len(proposal.written) == len(proposal.calls):
        return [(p.name, dict(p.arguments)) for p in proposal.written]
    return list(proposal.calls)


def failed_item(item, latency_s: float, status: str, error_type: str, error: str) -> ItemResult:
    """The result of an item that produced nothing scorable (refused grammar, error, timeout)."""
    return ItemResult(
        item.id,
        item.category,
        correct=False,
        had_call=False,
        schema_valid=None,
        latency_s=latency_s,
        error_type=error_type,
        error=error,
        status=status,
    )


def run_item(item: BfclItem, model, settings: Settings, tool_choice: str = "auto") -> ItemResult:
    """Propose calls for one item with the local model and score them with BFCL's checker.

    ``tool_choice`` is ``auto`` for the benchmark (the model decides); ``required`` forces a
    call, which separates the call decision from argument quality in diagnostics.
    """
    tools, names = to_openai_tools(item.functions)
    started = time.perf_counter()
    try:
        proposal = _propose(model, tools, item.messages, settings, tool_choice)
    except GrammarError as exc:
        return failed_item(
            item, time.perf_counter() - started, "grammar_error", "grammar_error", exc.message
        )
    except EdgeAgentError as exc:
        return failed_item(
            item, time.perf_counter() - started, "error", type(exc).__name__, str(exc)
        )
    latency = time.perf_counter() - started
    bfcl_calls = to_bfcl_calls(_raw_calls(proposal), names)
    verdict = score(item, bfcl_calls)
    n_valid = sum(1 for v in proposal.validations if v.valid)
    errors = verdict.get("error") or []
    error_type = verdict.get("error_type") if not verdict["valid"] else None
    if error_type == "no_call" and proposal.answer is None and proposal.error:
        error_type = "unparsed_output"
    return ItemResult(
        item.id,
        item.category,
        correct=bool(verdict["valid"]),
        had_call=bool(proposal.calls),
        schema_valid=(n_valid == len(proposal.calls)) if proposal.calls else None,
        latency_s=latency,
        output_tokens=proposal.usage.output_tokens,
        calls=bfcl_calls,
        answer_text=proposal.answer,
        error_type=error_type,
        error=(proposal.error or "; ".join(map(str, errors))) if not verdict["valid"] else None,
        finish_reason=proposal.finish_reason,
        repaired=proposal.repaired,
        n_calls=len(proposal.calls),
        n_valid_calls=n_valid,
        duplicates_dropped=proposal.duplicates_dropped,
        confidence=proposal.confidence,
        confidence_parts=_weakest_parts(proposal),
    )


def _weakest_parts(proposal) -> dict:
    """The confidence parts of the least confident call (what the proposal's score is)."""
    if not proposal.calls:
        return {}
    weakest = min(proposal.calls, key=lambda c: c.confidence or 0.0)
    return dict(weakest.confidence_parts)


FAILURE_KINDS = {
    "no_call": "answered instead of calling",
    "unparsed_output": "output was neither a call nor an answer",
    "called_when_irrelevant": "called a tool on an irrelevant request",
    "wrong_function": "wrong function",
    "wrong_count": "wrong number of calls",
    "missing_required": "missing a required argument",
    "hallucinated_arg": "an argument the function does not have or the answer does not use",
    "missing_optional": "left out an argument the answer needs",
    "wrong_type": "wrong argument type",
    "wrong_value": "wrong argument value",
    "grammar_error": "schema refused by the grammar compiler",
    "error": "error",
    "timeout": "hit the wall-clock cap",
    "other": "other",
}


def failure_kind(result) -> str | None:
    """Why an item failed, in the words of ``FAILURE_KINDS`` (None when it is correct)."""
    row = result.to_dict() if hasattr(result, "to_dict") else result
    if row["correct"]:
        return None
    status, kind = row.get("status"), row.get("error_type") or ""
    if status in ("grammar_error", "timeout", "error"):
        return status
    if kind.startswith("irrelevance_error"):
        return "called_when_irrelevant"
    for prefix, name in (
        ("no_call", "no_call"),
        ("unparsed_output", "unparsed_output"),
        ("simple_function_checker:wrong_func_name", "wrong_function"),
        ("simple_function_checker:missing_required", "missing_required"),
        ("simple_function_checker:unexpected_param", "hallucinated_arg"),
        ("simple_function_checker:missing_optional", "missing_optional"),
        ("type_error", "wrong_type"),
        ("value_error", "wrong_value"),
    ):
        if kind.startswith(prefix):
            return name
    if kind.endswith("wrong_count"):
        return "wrong_count"
    return "other"


def summarize(results: Sequence) -> dict:
    """Accuracy, share with a call, schema validity, latency p50/p95/max of item results.

    Schema validity is the share of proposed calls that passed validation (None: no calls).
    Accepts ItemResult objects or their dicts.
    """
    from edgeagent.metrics.stats import percentile

    rows = [r.to_dict() if hasattr(r, "to_dict") else r for r in results]
    n = len(rows)
    latencies = [r["latency_s"] for r in rows]
    calls = sum(r.get("n_calls", 0) for r in rows)
    valid = sum(r.get("n_valid_calls", 0) for r in rows)

    def share(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "n": n,
        "correct": sum(1 for r in rows if r["correct"]),
        "accuracy": share(sum(1 for r in rows if r["correct"]), n),
        "with_call": share(sum(1 for r in rows if r["had_call"]), n),
        "calls": calls,
        "schema_validity": share(valid, calls),
        "latency_p50_s": rounded(percentile(latencies, 50)),
        "latency_p95_s": rounded(percentile(latencies, 95)),
        "latency_max_s": rounded(max(latencies) if latencies else None),
        "output_tokens_mean": rounded(
            sum(r.get("output_tokens", 0) for r in rows) / n if n else None
        ),
        "grammar_errors": sum(1 for r in rows if r.get("status") == "grammar_error"),
        "errors": sum(1 for r in rows if r.get("status") == "error"),
        "timeouts": sum(1 for r in rows if r.get("status") == "timeout"),
        "failures": dict(Counter(k for r in rows if (k := failure_kind(r))).most_common()),
    }


def summarize_by_category(results: Sequence) -> dict:
    """``summarize`` per category, plus ``"all"``."""
    rows = [r.to_dict() if hasattr(r, "to_dict") else r for r in results]
    out = {}
    for category in dict.fromkeys(r["category"] for r in rows):
        out[category] = summarize([r for r in rows if r["category"] == category])
    out["all"] = summarize(rows)
    return out


def run_bfcl(
    categories: Sequence[str] | str = CATEGORIES,
    limit: int | None = None,
    model=None,
    settings: Settings | None = None,
    offset: int = 0,
    on_item: Callable[[ItemResult], None] | None = None,
    tool_choice: str = "auto",
) -> dict:
    """Run BFCL ``categories`` (items ``offset .. offset+limit`` of each) through the local model.

    ``categories``: names or a comma-separated string (``simple``/``simple_python``,
    ``multiple``, ``irrelevance``); ``model``: catalog id, GGUF path, loaded ``LocalModel`` or
    None for ``settings.model``. ``on_item`` is called after each item (progress);
    ``tool_choice`` stays ``auto`` for BFCL figures (``required`` is a diagnostic).

    Returns ``{"model", "bfcl_eval_version", "categories", "limit", "offset", "settings",
    "wall_s", "summary": {category: summary, ..., "all": summary}, "items": [item dicts]}``
    where a summary is ``summarize``'s dict and an item dict has ``id, category, correct,
    had_call, schema_valid, latency_s, output_tokens, calls, answer_text, error_type, error,
    status, finish_reason, repaired, n_calls, n_valid_calls``.
    """
    from edgeagent.runtime.session import load_model

    if isinstance(categories, str):
        categories = [c for c in categories.split(",") if c.strip()]
    names = list(dict.fromkeys(canonical_category(c) for c in categories))
    if not names:
        raise ConfigError("no BFCL category given", "pass e.g. simple,multiple,irrelevance")
    if (limit is not None and limit < 0) or offset < 0:
        raise ConfigError("limit and offset must not be negative", "pass --limit 10")
    items = [item for c in names for item in load_items(c, limit, offset)]
    settings = settings or load_settings()
    model = load_model(model, settings, cached=True)
    started = time.perf_counter()
    results = []
    for item in items:
        result = run_item(item, model, settings, tool_choice)
        results.append(result)
        if on_item is not None:
            on_item(result)
    return {
        "model": model.path.name,
        "bfcl_eval_version": bfcl_version(),
        "categories": names,
        "limit": limit,
        "offset": offset,
        "tool_choice": tool_choice,
        "settings": {
            "n_ctx": model.n_ctx,
            "max_tokens": settings.max_tokens,
            "string_cap": settings.string_cap,
            "decode_timeout_s": settings.decode_timeout_s,
        },
        "wall_s": round(time.perf_counter() - started, 3),
        "summary": summarize_by_category(results),
        "items": [r.to_dict() for r in results],
    }


def format_report(report: dict) -> str:
    """A short text table of ``run_bfcl``'s summaries (what the CLI prints without --json)."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    def sec(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [
        f"BFCL ({report.get('bfcl_eval_version')}) on {report['model']}",
        f"{'category':<14}{'n':>4}{'acc':>6}{'call':>6}{'valid':>7}{'p50 s':>8}{'p95 s':>8}"
        f"{'max s':>8}{'errors':>8}",
    ]
    for category, s in report["summary"].items():
        lines.append(
            f"{category:<14}{s['n']:>4}{pct(s['accuracy']):>6}{pct(s['with_call']):>6}"
            f"{pct(s['schema_validity']):>7}{sec(s['latency_p50_s']):>8}"
            f"{sec(s['latency_p95_s']):>8}{sec(s['latency_max_s']):>8}"
            f"{s['grammar_errors'] + s['errors']:>8}"
        )
    return "\n".join(lines)
