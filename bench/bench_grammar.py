"""Constrained decoding: time to a complete, valid tool call, ours against llama.cpp's GBNF.

Usage: python bench/bench_grammar.py [--runs 3] [--threads 1] [--models ID,ID]

For each model and each case (one tool schema, one user request; the prompt is the agent's
system prompt listing that tool plus the request, in the model's chat template, tokenized once
and given as the same token list to every method), three methods produce one call
``{"name":..,"arguments":{..}}``, greedy, in this order in every run:

- ``ours``: ``LocalModel.generate`` under ``LLGuidanceEngine.constraint(envelope.gbnf)``, the
  envelope built for that tool in named mode (exactly one call); forced tokens are
  fast-forwarded and evaluated in one batch. Timed from matcher creation to the end.
- ``gbnf``: the anchor, ``Llama.create_completion(tokens, grammar=LlamaGrammar.from_json_schema(
  call_schema))`` where ``call_schema`` is the JSON schema of the whole call object.
- ``free``: unconstrained greedy decoding of exactly as many tokens as ``gbnf`` produced in the
  same run, through llama-cpp-python's own C sampler loop (``Llama.generate``; end-of-generation
  tokens do not stop it, so the count is exact). This is the fastest free decoding available.
- ``free_same``: the same, for as many tokens as ``ours`` produced (our compact calls are
  shorter than the anchor's, whose grammar lets the model add spaces).

The anchor's grammar is first parsed by llama.cpp: when it refuses it (llama-cpp-python's
converter unrolls ``maxLength`` into nested optionals; 2000 is too many), passing it to
``create_completion`` would crash the process, so the case is reported as refused and left
out of the ratios. The anchor is also stopped after ``ANCHOR_TIMEOUT_S`` (then invalid).

Runs are ``warm``: the prompt except its last token is already in the KV cache (as with the
agent's prefix cache), and every method evaluates the last prompt token and decodes. The prefill
(the whole prompt from an empty cache) is timed separately per case; it is the same work for
every method, so a cold request costs prefill + warm. ``--cold`` also times every method from an
empty cache (slow: it multiplies the prefill by the number of methods). Every call is validated
with jsonschema (formats checked). Medians over runs; ratios per case, of the summed medians over
the cases, and the median of the per-case ratios. ``--threads 1`` (default) because on a shared 2-core machine
llama.cpp with 2 threads swings up to 5x between identical runs when another process is busy. Also: envelope compile time for 20 tools, llguidance grammar
compile and matcher creation, and a profile of where our decode loop spends its time.
Writes ``bench/out/grammar_<date>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tool_schemas import TEN_TOOLS  # noqa: E402
from edgeagent.agent.prompt import system_prompt  # noqa: E402
from edgeagent.config import Settings, load_settings  # noqa: E402
from edgeagent.grammar.envelope import build_envelope, parse_envelope  # noqa: E402
from edgeagent.runtime.catalog import load_catalog  # noqa: E402
from edgeagent.runtime.download import pull_model  # noqa: E402
from edgeagent.runtime.local import LocalModel  # noqa: E402

MODELS = "smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m"
MAX_TOKENS = 160
STRING_CAP = Settings().string_cap
METHODS = ("ours", "gbnf", "free", "free_same")
ANCHOR_TIMEOUT_S = 30.0

CASES = [
    ("read_file", "Show me the first 500 characters of notes/todo.txt."),
    ("search_notes", "Find my notes about the dentist appointment, at most 5 of them."),
    ("calculator", "What is 17 * 23 + 4?"),
    ("add_note", "Add a note: buy milk and eggs. Tag it shopping."),
    ("get_weather", "What's the weather in Paris, in celsius?"),
    ("search_flights", "Find flights from JFK to LAX on 2025-03-14 for 2 passengers."),
    ("convert_units", "Convert 12.5 km to mi."),
    ("set_thermostat", "Set the thermostat to 21.5 degrees in heat mode."),
]


def tool_specs() -> dict[str, SimpleNamespace]:
    """Every benchmark tool by name: the built-ins and the BFCL-like TEN_TOOLS."""
    from edgeagent.tools.builtin import make_builtin_tools
    from edgeagent.tools.context import ToolContext

    specs = {
        t.name: SimpleNamespace(name=t.name, description=t.description, parameters=t.parameters)
        for t in make_builtin_tools(ToolContext(settings=Settings()))
    }
    for t in TEN_TOOLS:
        specs[t["name"]] = SimpleNamespace(**t)
    return specs


def call_schema(name: str, parameters: dict) -> dict:
    """The JSON schema of a whole call object: the name as a const, then the arguments."""
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def make_validator(schema: dict):
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def is_valid_call(text: str, validator) -> bool:
    """True when ``text`` is exactly one JSON call object that satisfies the call schema."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return validator.is_valid(data)


def _prepare(llm, tokens: list[int], cache: str) -> None:
    """Clear the KV cache; for ``warm``, evaluate all prompt tokens but the last (untimed)."""
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    if cache == "warm":
        llm.eval(tokens[:-1])


def run_ours(model: LocalModel, engine, gbnf: str, tokens: list[int]) -> dict:
    started = time.perf_counter()
    constraint = engine.constraint(gbnf)
    gen = model.generate(tokens, constraint=constraint, max_tokens=MAX_TOKENS, temperature=0.0)
    elapsed = time.perf_counter() - started
    return {
        "s": elapsed,
        "tokens": gen.output_tokens,
        "sampled": len(gen.sampled),
        "cached_prompt_tokens": gen.cached_prompt_tokens,
        "finish": gen.finish_reason,
        "text": gen.text,
    }


def anchor_grammar(llm, name: str, parameters: dict):
    """llama-cpp-python's grammar for the call schema, or None when llama.cpp refuses it."""
    import llama_cpp
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_json_schema(json.dumps(call_schema(name, parameters)))
    sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar._grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        return None
    llama_cpp.llama_sampler_free(sampler)
    return grammar


def run_gbnf(llm, grammar, tokens: list[int]) -> dict:
    from llama_cpp import StoppingCriteriaList

    started = time.perf_counter()
    deadline = started + ANCHOR_TIMEOUT_S
    stop = StoppingCriteriaList([lambda _ids, _logits: time.perf_counter() > deadline])
    out = llm.create_completion(
        tokens,
        grammar=grammar,
        max_tokens=MAX_TOKENS,
        temperature=0.0,
        repeat_penalty=1.0,
        stopping_criteria=stop,
    )
    elapsed = time.perf_counter() - started
    finish = out["choices"][0]["finish_reason"]
    return {
        "s": elapsed,
        "tokens": out["usage"]["completion_tokens"],
        "sampled": out["usage"]["completion_tokens"],
        "finish": "timeout" if elapsed > ANCHOR_TIMEOUT_S else finish,
        "text": out["choices"][0]["text"],
    }


def run_free(model: LocalModel, tokens: list[int], count: int) -> dict:
    llm = model.llama
    started = time.perf_counter()
    out = list(itertools.islice(llm.generate(tokens, temp=0.0, repeat_penalty=1.0), count))
    elapsed = time.perf_counter() - started
    end = next((i for i, t in enumerate(out) if model.is_end_of_generation(t)), len(out))
    text = llm.detokenize(out[:end]).decode("utf-8", errors="replace")
    return {"s": elapsed, "tokens": len(out), "sampled": len(out), "finish": "count", "text": text}


def _clear_compiler_caches() -> None:
    """Every functools cache in the grammar package (the envelope's, the compiler's helpers)."""
    from edgeagent.grammar import charsets, compiler, envelope, regex_gbnf, schema_types

    for module in (charsets, compiler, envelope, regex_gbnf, schema_types):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def bench_envelope_compile(repeats: int = 20) -> dict:
    """``build_envelope`` for 20 (and 22) tools: first call, uncached, cached, in ms."""
    from edgeagent.grammar import envelope as envelope_mod

    specs = tool_specs()
    builtins = [s for s in specs.values() if s.name not in {t["name"] for t in TEN_TOOLS}]
    sets = {
        "20": [(t["name"], t["parameters"]) for t in TEN_TOOLS]
        + [(s.name, s.parameters) for s in builtins[:10]],
        "22": [(t["name"], t["parameters"]) for t in TEN_TOOLS]
        + [(s.name, s.parameters) for s in builtins],
    }
    kwargs = {"mode": "auto", "max_calls": 4, "answer_cap": 1200, "string_cap": STRING_CAP}
    out = {}
    for label, tools in sets.items():
        _clear_compiler_caches()
        started = time.perf_counter()
        env = build_envelope(tools, **kwargs)
        first = time.perf_counter() - started
        all_cleared, envelope_cleared, cached = [], [], []
        for _ in range(repeats):
            _clear_compiler_caches()
            started = time.perf_counter()
            build_envelope(tools, **kwargs)
            all_cleared.append(time.perf_counter() - started)
        for _ in range(repeats):
            envelope_mod._build_cached.cache_clear()
            started = time.perf_counter()
            build_envelope(tools, **kwargs)
            envelope_cleared.append(time.perf_counter() - started)
        for _ in range(repeats):
            started = time.perf_counter()
            build_envelope(tools, **kwargs)
            cached.append(time.perf_counter() - started)
        out[label] = {
            "tools": len(tools),
            "gbnf_chars": len(env.gbnf),
            "gbnf_rules": env.gbnf.count("::="),
            "first_call_ms": round(first * 1000, 3),
            "uncached_all_caches_cleared_ms": _median_ms(all_cleared),
            "uncached_envelope_cache_cleared_ms": _median_ms(envelope_cleared),
            "cached_ms": _median_ms(cached),
        }
    out["envelope_20"] = sets["20"]
    return out


def bench_llguidance_compile(engine, tools: list, repeats: int = 5) -> dict:
    """llguidance: ``engine.compile`` uncached and cached, and matcher creation, in ms."""
    import llguidance

    from edgeagent.runtime import engines as engine_mod

    env = build_envelope(tools, mode="auto", max_calls=4, answer_cap=1200, string_cap=STRING_CAP)
    uncached, cached, matcher, from_lark = [], [], [], []
    for _ in range(repeats):
        engine_mod._GRAMMAR_CACHE.clear()
        started = time.perf_counter()
        engine.compile(env.gbnf)
        uncached.append(time.perf_counter() - started)
    for _ in range(repeats):
        started = time.perf_counter()
        engine.compile(env.gbnf)
        cached.append(time.perf_counter() - started)
    for _ in range(repeats):
        started = time.perf_counter()
        engine.constraint(env.gbnf)
        matcher.append(time.perf_counter() - started)
    for _ in range(repeats):
        started = time.perf_counter()
        grammar = llguidance.LLMatcher.grammar_from_lark(env.lark)
        llguidance.LLMatcher.validate_grammar(grammar, engine.tokenizer)
        from_lark.append(time.perf_counter() - started)
    return {
        "engine_compile_uncached_ms": _median_ms(uncached),
        "engine_compile_cached_ms": _median_ms(cached),
        "matcher_creation_ms": _median_ms(matcher),
        "lark_rendering_compile_ms": _median_ms(from_lark),
    }


class _Timed:
    """Wraps a constraint and accumulates the time spent in each of its methods."""

    def __init__(self, inner, acc: dict) -> None:
        self._inner, self._acc = inner, acc

    def __getattr__(self, name):
        method = getattr(self._inner, name)

        def timed(*args):
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                self._acc[f"constraint.{name}"] += time.perf_counter() - started

        return timed


def profile_ours(model: LocalModel, engine, prepared: list[tuple], cache: str) -> dict:
    """Where our decode loop spends its time over all cases (seconds, summed), one pass."""
    acc: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    originals = {name: getattr(model, name) for name in ("_sample", "_eval", "_last_logits")}

    def wrap(name):
        inner = originals[name]

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                acc[f"model.{name}"] += time.perf_counter() - started
                counts[name] += 1

        return timed

    for name in originals:
        setattr(model, name, wrap(name))
    total = 0.0
    try:
        for _name, tokens, env, _grammar, _validator in prepared:
            _prepare(model.llama, tokens, cache)
            started = time.perf_counter()
            constraint = _Timed(engine.constraint(env.gbnf), acc)
            model.generate(tokens, constraint=constraint, max_tokens=MAX_TOKENS, temperature=0.0)
            total += time.perf_counter() - started
    finally:
        for name in originals:
            delattr(model, name)
    out = {k: round(v, 4) for k, v in sorted(acc.items())}
    sample_only = acc["model._sample"] - acc["model._last_logits"] - acc["constraint.allowed"]
    out["model._sample_numpy_only"] = round(sample_only, 4)
    out["total"] = round(total, 4)
    out["calls"] = dict(counts)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def _ratios(med: dict) -> dict:
    return {
        "gbnf_over_ours": _ratio(med.get("gbnf"), med["ours"]),
        "ours_over_free": _ratio(med["ours"], med.get("free")),
        "ours_over_free_same": _ratio(med["ours"], med["free_same"]),
        "gbnf_over_free": _ratio(med.get("gbnf"), med.get("free")),
    }


def _one_run(model: LocalModel, engine, case: tuple, cache: str) -> dict:
    """Every method once on one case, in the fixed order ours, gbnf, free, free_same."""
    _name, tokens, env, grammar, validator = case
    llm = model.llama
    out = {}
    _prepare(llm, tokens, cache)
    out["ours"] = run_ours(model, engine, env.gbnf, tokens)
    if grammar is not None:
        _prepare(llm, tokens, cache)
        out["gbnf"] = run_gbnf(llm, grammar, tokens)
        _prepare(llm, tokens, cache)
        out["free"] = run_free(model, tokens, out["gbnf"]["tokens"])
    _prepare(llm, tokens, cache)
    out["free_same"] = run_free(model, tokens, out["ours"]["tokens"])
    for method, result in out.items():
        text = result["text"]
        if method == "ours":
            parsed = parse_envelope(text)
            text = text if isinstance(parsed, list) and len(parsed) == 1 else ""
        result["valid"] = is_valid_call(text.strip(), validator)
    return out


def _prefill_s(llm, tokens: list[int]) -> float:
    _prepare(llm, tokens, "cold")
    started = time.perf_counter()
    llm.eval(tokens)
    return time.perf_counter() - started


def bench_model(
    model_id: str,
    runs: int,
    models_dir: Path,
    envelope_20: list,
    threads: int | None,
    caches: tuple[str, ...] = ("warm",),
) -> dict:
    """Per-case medians of every method (warm, optionally cold), validity, ratios, profile."""
    from edgeagent.runtime.engines import LLGuidanceEngine

    settings = load_settings(models_dir=models_dir, n_threads=threads)
    path = pull_model(load_catalog().get(model_id), settings)
    model = LocalModel(path, settings)
    llm = model.llama
    started = time.perf_counter()
    engine = LLGuidanceEngine(llm, model.fingerprint)
    tokenizer_s = time.perf_counter() - started
    specs = tool_specs()

    prepared = []
    for name, request in CASES:
        spec = specs[name]
        messages = [
            {"role": "system", "content": system_prompt([spec])},
            {"role": "user", "content": request},
        ]
        tokens = model.tokenize(model.render(messages))
        env = build_envelope([(name, spec.parameters)], mode=name, string_cap=STRING_CAP)
        engine.compile(env.gbnf)  # compiled once per (model, tool set), as in the agent
        grammar = anchor_grammar(llm, name, spec.parameters)
        validator = make_validator(call_schema(name, spec.parameters))
        prepared.append((name, tokens, env, grammar, validator))

    samples: dict = defaultdict(lambda: defaultdict(list))  # (case, cache) -> method -> runs
    prefill: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        for case in prepared:
            prefill[case[0]].append(_prefill_s(llm, case[1]))
            for cache in caches:
                for method, result in _one_run(model, engine, case, cache).items():
                    samples[(case[0], cache)][method].append(result)

    cases = []
    totals = {cache: defaultdict(float) for cache in caches}
    per_case: dict = {cache: defaultdict(list) for cache in caches}
    validity = {method: [0, 0] for method in METHODS}
    for name, tokens, _env, grammar, _validator in prepared:
        row: dict = {
            "case": name,
            "prompt_tokens": len(tokens),
            "prefill_s": round(statistics.median(prefill[name]), 4),
            "anchor_refused": grammar is None,
        }
        totals["warm"]["prefill"] += statistics.median(prefill[name]) if grammar else 0.0
        for cache in caches:
            bucket = samples[(name, cache)]
            med = {m: statistics.median(r["s"] for r in bucket[m]) for m in bucket}
            if grammar is not None:
                for m in METHODS:
                    totals[cache][m] += med[m]
            row[cache] = {**{f"{m}_s": round(v, 4) for m, v in med.items()}, **_ratios(med)}
            for key, value in row[cache].items():
                if key.endswith(("_over_ours", "_over_free", "_over_free_same")) and value:
                    per_case[cache][key].append(value)
        for m in METHODS:
            results = [r for cache in caches for r in samples[(name, cache)].get(m, [])]
            if not results:
                continue
            validity[m][0] += sum(r["valid"] for r in results)
            validity[m][1] += len(results)
            last = samples[(name, "warm")][m][-1]
            row[m] = {
                "tokens": last["tokens"],
                "sampled": last["sampled"],
                "finish": last["finish"],
                "valid": f"{sum(r['valid'] for r in results)}/{len(results)}",
                "text": last["text"],
            }
        row["ours"]["cached_prompt_tokens_warm"] = samples[(name, "warm")]["ours"][-1][
            "cached_prompt_tokens"
        ]
        cases.append(row)

    summary = {"cases_in_sums": sum(c[3] is not None for c in prepared)}
    for cache in caches:
        t = totals[cache]
        summary[cache] = {
            **{f"{m}_s_sum": round(t[m], 4) for m in METHODS},
            "sum_ratios": _ratios(t),
            "median_case_ratios": {
                k: round(statistics.median(v), 2) for k, v in per_case[cache].items()
            },
        }
    t = totals["warm"]
    cold = {m: t["prefill"] + t[m] for m in METHODS}
    summary["cold_derived"] = {
        "prefill_s_sum": round(t["prefill"], 4),
        **{f"{m}_s_sum": round(v, 4) for m, v in cold.items()},
        "sum_ratios": _ratios(cold),
    }
    profile = profile_ours(model, engine, prepared, "warm")
    compile_ms = bench_llguidance_compile(engine, envelope_20)
    result = {
        "model": model_id,
        "n_vocab": model.n_vocab,
        "n_threads": model.n_threads,
        "runs": runs,
        "max_tokens": MAX_TOKENS,
        "tokenizer_build_s": round(tokenizer_s, 3),
        "summary": summary,
        "validity": {m: f"{v[0]}/{v[1]}" for m, v in validity.items()},
        "llguidance_compile_20_tools": compile_ms,
        "profile_ours_s": profile,
        "cases": cases,
    }
    model.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (0: default)")
    parser.add_argument("--cold", action="store_true", help="also time every method cold")
    parser.add_argument(
        "--models-dir", type=Path, default=Path.home() / ".cache/edgeagent/test-models"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    args = parser.parse_args()
    started = time.perf_counter()
    compile_bench = bench_envelope_compile()
    envelope_20 = compile_bench.pop("envelope_20")
    models = []
    for model_id in args.models.split(","):
        models.append(
            bench_model(
                model_id,
                args.runs,
                args.models_dir,
                envelope_20,
                args.threads or None,
                ("warm", "cold") if args.cold else ("warm",),
            )
        )
        print(f"{model_id}: {json.dumps(models[-1]['summary'])}", file=sys.stderr)
    import llama_cpp
    import llguidance

    report = {
        "date": dt.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "llama_cpp_python": llama_cpp.__version__,
        "llguidance": getattr(llguidance, "__version__", ""),
        "string_cap": STRING_CAP,
        "envelope_compile": compile_bench,
        "models": models,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out = args.out or Path(__file__).parent / "out" / f"grammar_{report['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
