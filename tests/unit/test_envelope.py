"""Tool-choice envelope: modes, parallel calls, the plain-answer branch, and reading output back."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeagent.errors import EnvelopeParseError, GrammarError
from edgeagent.grammar.compiler import lark_for
from edgeagent.grammar.envelope import (
    ParsedCall,
    build_envelope,
    describe_envelope_keywords,
    first_of_each,
    parse_envelope,
)
from edgeagent.grammar.schema_keywords import jp
from tests.unit.test_compiler import engines  # noqa: F401  (fixture)

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city"],
}
SEARCH = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 30},
        "limit": {"type": "number", "maximum": 50},
    },
    "required": ["query"],
}
TOOLS = [("get_weather", WEATHER), ("web.search", SEARCH)]


def call(name: str, args: dict) -> str:
    return json.dumps({"name": name, "arguments": args}, separators=(",", ":"), ensure_ascii=False)


W = call("get_weather", {"city": "Paris", "days": 3})
S = call("web.search", {"query": "llama"})


def test_auto_mode_accepts_calls_and_answers(engines):  # noqa: F811
    env = build_envelope(TOOLS)
    for text in (
        W,
        S,
        call("get_weather", {"city": "Oslo", "unit": "f"}),
        "Hello!",
        "It is\nsunny {not json}",
        "é",
    ):
        assert engines.accepts(env, text), text
    for text in (
        " Hello",
        "\nHi",
        "",
        "[" + W + "]",  # parallel calls are off by default
        call("get_weather", {"city": "Paris", "days": 9}),
        call("get_weather", {"days": 3}),
        call("delete_all", {}),
        '{"name": "get_weather", "arguments": {"city": "x"}}',
        '{"arguments":{"city":"x"},"name":"get_weather"}',
        W + W,
    ):
        assert not engines.accepts(env, text), text
    assert env.tool_names == ("get_weather", "web.search") and env.mode == "auto"


def test_parallel_calls(engines):  # noqa: F811
    env = build_envelope(TOOLS, max_calls=3)
    for text in (W, f"[{W}]", f"[{W},{S}]", f"[{S},{S},{W}]"):
        assert engines.accepts(env, text), text
    for text in ("[]", f"[{W},{S},{W},{S}]", f"[{W},]", f"[{W}] "):
        assert not engines.accepts(env, text), text


def test_required_none_and_named_modes(engines):  # noqa: F811
    required = build_envelope(TOOLS, mode="required", max_calls=2)
    assert engines.accepts(required, W) and engines.accepts(required, f"[{W},{S}]")
    assert not engines.accepts(required, "Sure, here you go")

    none = build_envelope(TOOLS, mode="none")
    assert engines.accepts(none, "Just text.")
    assert not engines.accepts(none, W) and not engines.accepts(none, "[1]")
    assert none.validator_keywords == {}

    named = build_envelope(TOOLS, mode="web.search", max_calls=3)
    assert engines.accepts(named, S)
    for text in (W, f"[{S}]", "text"):
        assert not engines.accepts(named, text), text
    assert set(named.validator_keywords) == {"web.search"}


def test_answer_cap(engines):  # noqa: F811
    env = build_envelope(TOOLS, answer_cap=5)
    assert engines.accepts(env, "abcde")
    assert not engines.accepts(env, "abcdef")
    assert any("capped at 5 characters" in n for n in env.notes)


def test_validator_keywords_per_tool():
    env = build_envelope(TOOLS)
    assert env.validator_keywords["get_weather"] == ()
    (limit,) = env.validator_keywords["web.search"]
    assert (limit.keyword, limit.json_path) == ("maximum", "$.properties.limit")
    assert describe_envelope_keywords(env) == [
        "note: tool web.search: maximum at $.properties.limit is enforced by the validator,"
        " not the grammar (the grammar does not bound non-integer numbers)"
    ]


def test_tools_with_defs_get_separate_rules(engines):  # noqa: F811
    def tool(kind: str) -> dict:
        return {
            "$defs": {
                "Item": {
                    "type": "object",
                    "properties": {kind: {"type": "integer"}},
                    "required": [kind],
                }
            },
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 2}
            },
            "required": ["items"],
        }

    env = build_envelope([("a", tool("x")), ("b", tool("y"))])
    assert engines.accepts(env, call("a", {"items": [{"x": 1}]}))
    assert engines.accepts(env, call("b", {"items": [{"y": 1}, {"y": 2}]}))
    assert not engines.accepts(env, call("a", {"items": [{"y": 1}]}))


def test_envelope_errors():
    with pytest.raises(GrammarError, match="duplicate"):
        build_envelope([("a", {}), ("a", {})])
    with pytest.raises(GrammarError, match="unknown tool-choice mode"):
        build_envelope(TOOLS, mode="sometimes")
    with pytest.raises(GrammarError):
        build_envelope([], mode="required")
    with pytest.raises(GrammarError):
        build_envelope(TOOLS, max_calls=0)
    with pytest.raises(GrammarError) as err:
        build_envelope([("ok", {}), ("bad", {"type": "object", "properties": {"x": {"not": {}}}})])
    assert "tool 'bad'" in err.value.message
    assert (err.value.keyword, err.value.path) == ("not", "$.properties.x")
    with pytest.raises(GrammarError) as err:
        build_envelope([("s", {"type": "string"})])
    assert err.value.keyword == "type"


def test_no_tools_auto_is_answer_only(engines):  # noqa: F811
    env = build_envelope([])
    assert engines.accepts(env, "plain")
    assert not engines.accepts(env, "{}")


def test_cache_and_many_tools():
    tools = [(f"tool_{i}", {**WEATHER, "title": f"T{i}"}) for i in range(20)]
    first = build_envelope(tools, max_calls=2)
    assert build_envelope(json.loads(json.dumps(tools)), max_calls=2) is first
    assert build_envelope(tools, max_calls=3) is not first
    assert first.gbnf.count("string-0-20 ::=") == 1  # shared across the 20 tools
    assert lark_for(first.gbnf) == first.lark


def test_random_walks_parse_and_validate(engines):  # noqa: F811
    schemas = dict(TOOLS)
    env = build_envelope(TOOLS, max_calls=2, answer_cap=40, string_cap=12)
    rng = random.Random(7)
    kinds = set()
    for i in range(45):
        text = engines.walk(env, rng, max_tokens=200, prefix=["", "{", "["][i % 3])
        if text is None:
            continue
        result = parse_envelope(text)
        if isinstance(result, str):
            kinds.add("answer")
            assert result[0] not in "{[ \t\r\n"
            continue
        kinds.add("calls" if text.startswith("{") else "parallel")
        for parsed in result:
            reported = {(k.keyword, k.json_path) for k in env.validator_keywords[parsed.name]}
            validator = jsonschema.Draft202012Validator(schemas[parsed.name])
            for error in validator.iter_errors(parsed.arguments):
                where = (error.validator, jp("$", *list(error.absolute_schema_path)[:-1]))
                assert where in reported, (text, error.message)
    assert kinds == {"answer", "calls", "parallel"}


def test_parse_envelope():
    assert parse_envelope(W) == [ParsedCall("get_weather", {"city": "Paris", "days": 3})]
    assert parse_envelope(f"[{W},{S}]") == [
        ParsedCall("get_weather", {"city": "Paris", "days": 3}),
        ParsedCall("web.search", {"query": "llama"}),
    ]
    assert parse_envelope("  " + W + "\n") == parse_envelope(W)
    assert parse_envelope("The answer is 4.") == "The answer is 4."
    for bad in (
        '{"name":"x","arguments":{"a":1}',
        "[]",
        '{"name":"x"}',
        '{"name":"x","arguments":[]}',
        '{"name":"","arguments":{}}',
        '{"name":"x","arguments":{},"extra":1}',
        "[1]",
        W + "trailing",
    ):
        with pytest.raises(EnvelopeParseError):
            parse_envelope(bad)


def test_first_of_each_drops_identical_calls_only():
    a = ParsedCall("get_weather", {"city": "Paris", "days": 3})
    a_reordered = ParsedCall("get_weather", {"days": 3, "city": "Paris"})
    b = ParsedCall("get_weather", {"city": "Paris", "days": 4})
    c = ParsedCall("web.search", {"city": "Paris", "days": 3})
    assert first_of_each([a, a_reordered, b, a, c]) == ([0, 2, 4], 2)
    assert first_of_each([a]) == ([0], 0)
    assert first_of_each([]) == ([], 0)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from('{}[]":,namergutsx1 \n\\'), max_size=40) | st.text(max_size=20)
)
def test_parse_envelope_fuzz(text):
    try:
        result = parse_envelope(text)
    except EnvelopeParseError as exc:
        assert exc.message
        return
    assert isinstance(result, str) or all(isinstance(c, ParsedCall) for c in result)
