"""Both grammar engines on the real SmolLM2 vocabulary: random walks under the mask yield
instances that validate against the schema, and forced tokens are fast-forwarded."""

from __future__ import annotations

import json
import random

import jsonschema
import numpy as np
import pytest

from edgeagent.errors import GrammarError
from edgeagent.grammar.compiler import compile_schema
from edgeagent.runtime.engines import LlamaCppEngine, LLGuidanceEngine, constrain

SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "unit": {"enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
        },
        "required": ["city"],
    },
    {
        "type": "object",
        "properties": {
            "values": {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
            "flag": {"type": "boolean"},
            "note": {"type": ["string", "null"], "maxLength": 8},
        },
        "required": ["values", "flag"],
    },
    {
        "type": "object",
        "properties": {
            "when": {"type": "string", "format": "date"},
            "id": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        },
        "required": ["when", "id"],
    },
]


@pytest.fixture(scope="module")
def vocab_llama(smollm_path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(smollm_path), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def random_walk(llm, constraint, rng: random.Random, limit: int = 160) -> str:
    """Pick random allowed tokens (random logits under the mask) until the grammar is done."""
    eos = llm.token_eos()
    tokens: list[int] = []
    for _ in range(limit):
        forced = constraint.forced_tokens()
        if forced:
            for t in forced:
                constraint.consume(t)
            tokens.extend(forced)
            if constraint.is_finished():
                break
            continue
        allowed = np.flatnonzero(constraint.allowed())
        assert allowed.size, "the grammar allowed nothing"
        token = int(rng.choice(list(allowed)))
        if token == eos:
            break
        constraint.consume(token)
        tokens.append(token)
        if constraint.is_finished():
            break
    return llm.detokenize(tokens).decode("utf-8")


@pytest.mark.parametrize("engine_cls", [LLGuidanceEngine, LlamaCppEngine])
@pytest.mark.parametrize("schema_index", range(len(SCHEMAS)))
def test_random_walks_produce_valid_instances(vocab_llama, engine_cls, schema_index):
    schema = SCHEMAS[schema_index]
    gbnf = compile_schema(schema, string_cap=16).gbnf
    engine = engine_cls(vocab_llama, "smollm-test")
    rng = random.Random(schema_index)
    walks = 6 if engine_cls is LLGuidanceEngine else 2  # the native sampler scans 49k tokens/step
    for _ in range(walks):
        text = random_walk(vocab_llama, engine.constraint(gbnf), rng)
        instance = json.loads(text)
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(instance)


def test_llguidance_fast_forwards_forced_tokens(vocab_llama):
    gbnf = compile_schema(
        {
            "type": "object",
            "properties": {"temperature_unit": {"const": "c"}},
            "required": ["temperature_unit"],
        }
    ).gbnf
    constraint = LLGuidanceEngine(vocab_llama, "smollm-test").constraint(gbnf)
    forced = constraint.forced_tokens()
    text = vocab_llama.detokenize(forced).decode()
    assert text == '{"temperature_unit":"c"}'


def test_broken_grammar_is_a_grammar_error_in_both_engines(vocab_llama):
    for engine in (LLGuidanceEngine(vocab_llama, "x"), LlamaCppEngine(vocab_llama)):
        with pytest.raises(GrammarError):
            engine.compile('root ::= "a" undefined-rule')


def test_constrain_falls_back_to_llama_cpp(vocab_llama, monkeypatch):
    engine = LLGuidanceEngine(vocab_llama, "fallback-test")

    def refuse(_gbnf):
        raise GrammarError("llguidance refused the grammar: test")

    monkeypatch.setattr(engine, "constraint", refuse)
    gbnf = compile_schema({"type": "boolean"}).gbnf
    constraint, info = constrain(engine, gbnf)
    assert info.name == "llama.cpp-gbnf" and "test" in info.reason
    assert constraint.allowed().sum() >= 2  # "true" / "false" prefixes


def test_matchers_of_one_grammar_are_independent_copies(vocab_llama, monkeypatch):
    import edgeagent.runtime.engines as engine_module

    monkeypatch.setattr(engine_module, "MATCHER_TEMPLATES", 2)
    monkeypatch.delattr(vocab_llama, "_edgeagent_matchers", raising=False)
    engine = LLGuidanceEngine(vocab_llama, "copies")
    gbnf = compile_schema(SCHEMAS[0]).gbnf
    first, second = engine.constraint(gbnf), engine.constraint(gbnf)
    rng = random.Random(7)
    walked = json.loads(random_walk(vocab_llama, first, rng))
    jsonschema.validate(walked, SCHEMAS[0])
    assert first.is_finished() or first.is_accepting()
    # the second matcher (and a third, from the kept pristine one) start at the beginning
    for fresh in (second, engine.constraint(gbnf)):
        assert vocab_llama.detokenize(fresh.forced_tokens()).decode().startswith('{"city')
    for schema in SCHEMAS[1:]:  # the pristine matchers kept per model stay bounded
        engine.constraint(compile_schema(schema).gbnf)
    assert len(vocab_llama._edgeagent_matchers) == 2
