"""JSON Schema -> GBNF compiler: every keyword accepted, rejected, reported or refused.

Acceptance is checked by llguidance over the real SmolLM2 vocabulary (no model weights are
run); every grammar must also parse in llama.cpp's own GBNF parser.
"""

from __future__ import annotations

import ctypes
import json
import math
import random
import re
import warnings
from pathlib import Path

import jsonschema
import pytest

from edgeagent.errors import GrammarError
from edgeagent.grammar.compiler import (
    SchemaCompiler,
    compile_schema,
    describe_validator_keywords,
    lark_for,
)
from edgeagent.grammar.nodes import Ref, alt
from edgeagent.grammar.rendering import MAX_REPEAT

REPO = Path(__file__).resolve().parents[2]


class Engines:
    """Both engines over a real vocabulary, without running the model.

    llguidance: a matcher from the grammar's ``lark`` rendering (or ``gbnf_to_lark`` for raw
    GBNF text). llama.cpp: its own grammar sampler (``llama_sampler_init_grammar``; note that
    ``LlamaGrammar.from_string`` only stores the text and never parses it), fed token by token.
    """

    def __init__(self, llm, tokenizer) -> None:
        self.llm = llm  # the tokenizer calls into this model's vocabulary: keep it alive
        self.tok = tokenizer
        self.vocab = llm._model.vocab
        self._matchers: dict[tuple[str, bool], object] = {}

    def llama_sampler(self, gbnf: str):
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not sampler:
            pytest.fail(f"llama.cpp refused the grammar (its parser printed why):\n{gbnf}")
        return sampler

    def _llama_allows(self, sampler, token: int) -> bool:
        import llama_cpp

        data = (llama_cpp.llama_token_data * 1)()
        data[0].id, data[0].logit, data[0].p = token, 0.0, 0.0
        arr = llama_cpp.llama_token_data_array(data=data, size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        return not math.isinf(data[0].logit)

    def llama_accepts(self, gbnf: str, text: str) -> bool:
        import llama_cpp

        sampler = self.llama_sampler(gbnf)
        try:
            for token in self.llm.tokenize(text.encode(), add_bos=False, special=False):
                if not self._llama_allows(sampler, token):
                    return False
                llama_cpp.llama_sampler_accept(sampler, token)
            return self._llama_allows(sampler, llama_cpp.llama_vocab_eos(self.vocab))
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def matcher(self, grammar):
        """A fresh-state matcher for a CompiledGrammar/Envelope (its .lark) or raw GBNF text.

        Also asserts that llama.cpp parses the GBNF and llguidance accepts gbnf_to_lark(GBNF).
        """
        gbnf = grammar if isinstance(grammar, str) else grammar.gbnf
        key = (gbnf, isinstance(grammar, str))
        if key not in self._matchers:
            import llama_cpp
            import llguidance
            from llguidance.gbnf_to_lark import gbnf_to_lark

            llama_cpp.llama_sampler_free(self.llama_sampler(gbnf))
            converted = llguidance.LLMatcher.grammar_from_lark(gbnf_to_lark(gbnf))
            error = llguidance.LLMatcher.validate_grammar(converted, self.tok)
            assert not error, f"llguidance refused gbnf_to_lark(gbnf): {error}\n{gbnf}"
            lark = gbnf_to_lark(gbnf) if isinstance(grammar, str) else grammar.lark
            m = llguidance.LLMatcher(
                self.tok, llguidance.LLMatcher.grammar_from_lark(lark), log_level=0
            )
            assert not m.is_error(), f"llguidance refused the grammar: {m.get_error()}\n{lark}"
            self._matchers[key] = m
        return self._matchers[key]

    def accepts(self, grammar, text: str) -> bool:
        """llguidance's verdict; for compiled grammars llama.cpp must agree."""
        m = self.matcher(grammar).deep_copy()
        verdict = m.consume_tokens(self.tok.tokenize_str(text)) and m.is_accepting()
        if not isinstance(grammar, str):
            gbnf = grammar.gbnf
            assert self.llama_accepts(gbnf, text) == verdict, (
                f"engines disagree on {text!r}: llguidance says {verdict}\n{gbnf}"
            )
        return verdict

    def walk(
        self, grammar, rng: random.Random, max_tokens: int = 300, prefix: str = ""
    ) -> str | None:
        """Sample uniformly among allowed tokens until the grammar may stop; None if it never did.

        ``prefix`` is consumed first (it must be allowed), to steer the walk into a branch.
        """
        import numpy as np
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        m = self.matcher(grammar).deep_copy()
        mask = allocate_token_bitmask(1, self.tok.vocab_size)
        eos = self.tok.eos_token
        out: list[int] = self.tok.tokenize_str(prefix) if prefix else []
        assert m.consume_tokens(out), m.get_error()
        for _ in range(max_tokens):
            if m.is_stopped():
                break
            fill_next_token_bitmask(m, mask)
            bits = np.unpackbits(mask[0].view(np.uint8), bitorder="little")[: self.tok.vocab_size]
            allowed = np.flatnonzero(bits)
            can_stop = m.is_accepting() and eos in allowed
            others = allowed[allowed != eos]
            if can_stop and (not len(others) or rng.random() < 0.5):
                break
            token = int(others[rng.randrange(len(others))])
            assert m.consume_token(token), m.get_error()
            out.append(token)
        if not m.is_accepting():
            return None
        return self.tok.decode_bytes(out).decode("utf-8")


@pytest.fixture(scope="session")
def engines(smollm_path) -> Engines:
    import llama_cpp
    from llguidance.llamacpp import lltokenizer_from_vocab

    llm = llama_cpp.Llama(model_path=str(smollm_path), vocab_only=True, verbose=False)
    with warnings.catch_warnings():  # llguidance calls a deprecated llama.cpp function per token
        warnings.simplefilter("ignore", DeprecationWarning)
        return Engines(llm, lltokenizer_from_vocab(llm._model.vocab))


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check(engines: Engines, schema: object, good: list, bad: list, **kw) -> str:
    """Compile; every value in ``good`` (dumped compactly) is accepted, every text in ``bad`` not."""
    compiled = compile_schema(schema, **kw)
    gbnf = compiled.gbnf
    for value in good:
        text = value if isinstance(value, str) and value.startswith("RAW:") else dumps(value)
        text = text.removeprefix("RAW:")
        assert engines.accepts(compiled, text), f"rejected valid {text!r}\n{gbnf}"
    for text in bad:
        text = text if isinstance(text, str) else dumps(text)
        assert not engines.accepts(compiled, text), f"accepted invalid {text!r}\n{gbnf}"
    return gbnf


def keywords(schema: object, **kw) -> set[tuple[str, str]]:
    return {(v.keyword, v.json_path) for v in compile_schema(schema, **kw).validator_keywords}


# ---------------------------------------------------------------------------- types


def test_scalar_types(engines):
    check(engines, {"type": "string"}, ["", "héllo 😀", 'a"b\\c\n'], ["1", "null", '"a'])
    check(engines, {"type": "boolean"}, [True, False], ["1", '"true"', "True"])
    check(engines, {"type": "null"}, [None], ["0", '"null"'])
    check(engines, {"type": "integer"}, [0, -7, 10**18], ["1.5", "01", "-0", "1e3", '"1"'])
    check(
        engines,
        {"type": "number"},
        [0, -1.5, 3.25e-7, 12345.678, 1e20],
        ["01", ".5", "1.", "+1", "NaN", "1e999"],
    )


def test_type_list_and_missing_type(engines):
    check(engines, {"type": ["string", "null"]}, ["x", None], ["1", "true"])
    check(
        engines,
        {"description": "anything"},
        [1, "x", None, [1, {"a": []}], {"b": 2.5}],
        ["{'a':1}"],
    )
    # without "type", type-specific keywords constrain only their own type (JSON Schema semantics)
    check(engines, {"minLength": 2}, ["ab", 5, None, [1]], ['"a"'])


def test_compact_fixed_whitespace(engines):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "array", "items": {"type": "integer"}}},
    }
    check(engines, schema, [{"a": [1, 2]}, {}], ['{"a": [1,2]}', '{ "a":[1,2]}', '{"a":[1, 2]}'])


def test_string_characters_and_escapes(engines):
    schema = {"type": "string", "maxLength": 3}
    # an escape counts as one character, a surrogate pair written raw is one character
    good = ["RAW:" + '"\\n\\"\\\\"', "RAW:" + '"\\u00e9ab"', "😀😀😀", "RAW:" + '"\\/"']
    bad = ['"abcd"', '"\\x41"', '"\\ud800"', '"a\nb"', '"\\u00e9abc"']
    gbnf = check(engines, schema, good, bad)
    for text in ('"\\n\\"\\\\"', '"\\u00e9ab"'):
        assert len(json.loads(text)) == 3
    assert "\\x00-\\x1F" in gbnf


def test_min_max_length(engines):
    check(
        engines,
        {"type": "string", "minLength": 2, "maxLength": 4},
        ["ab", "abcd", "é😀"],
        ['"a"', '"abcde"'],
    )
    check(engines, {"type": "string", "maxLength": 0}, [""], ['"a"'])
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "string", "minLength": 5, "maxLength": 2})
    assert err.value.keyword == "maxLength"


def test_string_cap_is_a_note(engines):
    compiled = compile_schema({"type": "string"}, string_cap=5)
    assert any("capped at 5 characters" in n for n in compiled.notes)
    assert engines.accepts(compiled, '"abcde"')
    assert not engines.accepts(compiled, '"abcdef"')


def test_repetition_bounds_above_2000_are_split(engines):
    compiled = compile_schema({"type": "string", "minLength": 2500, "maxLength": 4100})
    bounds = [int(n) for n in re.findall(r"\{(?:\d+,)?(\d+)\}", compiled.gbnf)]
    assert bounds and max(bounds) <= MAX_REPEAT
    for n, ok in ((2499, False), (2500, True), (4000, True), (4100, True), (4101, False)):
        assert engines.accepts(compiled, dumps("x" * n)) is ok, n


# ---------------------------------------------------------------------------- enum / const


def test_enum_and_const(engines):
    check(
        engines,
        {"enum": ["a", 1, None, {"k": [1, 2]}, [True], 2.5]},
        ["a", 1, None, {"k": [1, 2]}, [True], 2.5],
        ['"b"', "2", '{"k": [1,2]}', "[true,true]"],
    )
    check(engines, {"const": "only"}, ["only"], ['"other"'])
    check(engines, {"type": "string", "enum": ["x", 1]}, ["x"], ["1"])
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "integer", "enum": ["x"]})
    assert err.value.keyword == "enum"


def test_enum_sibling_constraints_are_validator_keywords():
    assert keywords({"enum": ["a", "bbb"], "maxLength": 2}) == {("maxLength", "$")}
    assert keywords({"enum": ["a", "bbb"], "minimum": 2}) == set()  # no effect on strings


# ---------------------------------------------------------------------------- objects


def test_properties_fixed_order_and_required(engines):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "boolean"}},
        "required": ["b"],
    }
    good = [{"b": "x"}, {"a": 1, "b": "x"}, {"b": "x", "c": True}, {"a": 1, "b": "x", "c": False}]
    bad = [{}, {"a": 1}, {"b": "x", "a": 1}, {"c": True, "b": "x"}, {"b": "x", "d": 1}]
    check(engines, schema, good, bad)


def test_optional_properties_nest_instead_of_chaining(engines):
    names = [f"p{i}" for i in range(8)]
    schema = {"type": "object", "properties": {n: {"type": "integer"} for n in names}}
    compiled = compile_schema(schema)
    assert len(compiled.gbnf) < 3000  # linear in the number of properties
    assert not re.search(r"\)\? \(", compiled.gbnf), "chained optionals"
    rng = random.Random(3)
    for _ in range(25):
        subset = [n for n in names if rng.random() < 0.5]
        assert engines.accepts(compiled, dumps({n: 1 for n in subset}))
    assert engines.accepts(compiled, "{}")
    assert not engines.accepts(compiled, '{,"p1":1}')
    assert not engines.accepts(compiled, '{"p1":1,}')
    assert not engines.accepts(compiled, '{"p2":1,"p1":1}')


def test_additional_properties(engines):
    props = {"a": {"type": "integer"}}
    check(
        engines,
        {"type": "object", "properties": props, "additionalProperties": False},
        [{"a": 1}, {}],
        [{"b": 1}],
    )
    strict = compile_schema({"type": "object", "properties": props})
    assert any("strict_objects" in n for n in strict.notes)
    assert not engines.accepts(strict, '{"a":1,"zz":2}')
    check(
        engines,
        {"type": "object", "properties": props},
        [{"a": 1, "zz": [1]}, {"zz": "x"}],
        [],
        strict_objects=False,
    )
    typed = {"type": "object", "properties": props, "additionalProperties": {"type": "string"}}
    check(engines, typed, [{"a": 1, "x": "s", "y": "t"}, {"x": "s"}], [{"a": 1, "x": 2}])
    assert ("additionalProperties", "$") in keywords(typed)
    # an object without listed properties stays a free-form dict even in strict mode
    check(engines, {"type": "object"}, [{}, {"k": {"n": [1, None]}}], ["[]"])


def test_required_without_property_schema(engines):
    check(engines, {"type": "object", "required": ["x"]}, [{"x": [1]}], ["{}"])
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "object", "required": ["x"], "additionalProperties": False})
    assert (err.value.keyword, err.value.path) == ("required", "$")


def test_false_property_schema(engines):
    schema = {"type": "object", "properties": {"a": False, "b": {"type": "integer"}}}
    check(engines, schema, [{"b": 1}, {}], [{"a": 1}])
    with pytest.raises(GrammarError):
        compile_schema({"type": "object", "properties": {"a": False}, "required": ["a"]})


def test_min_max_properties(engines):
    fixed = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    exact = {
        **fixed,
        "additionalProperties": {"type": "integer"},
        "minProperties": 2,
        "maxProperties": 3,
    }
    check(
        engines,
        exact,
        [{"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}],
        [{"a": 1}, {"a": 1, "b": 2, "c": 3, "d": 4}],
    )
    assert ("maxProperties", "$") not in keywords(exact)
    assert ("minProperties", "$") in keywords(exact)  # {"a":1,"b":2,"b":3} parses to 2 keys
    loose = {"type": "object", "properties": {"a": {}, "b": {}}, "minProperties": 1}
    assert ("minProperties", "$") in keywords(loose)
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "object", "properties": {"a": {}}, "minProperties": 2})
    assert err.value.keyword == "minProperties"
    with pytest.raises(GrammarError):
        compile_schema({"type": "object", "minProperties": 3, "maxProperties": 2})


def test_odd_property_names_make_valid_rule_names(engines):
    names = ["start", "if", "3d", "", "a b", "ÄÖ", "x-y", "x_y", "root", "string", 'quote"s']
    schema = {
        "type": "object",
        "properties": {n: {"type": "string", "maxLength": 3} for n in names},
    }
    value = {n: "v" for n in names}
    check(engines, schema, [value], [])


# ---------------------------------------------------------------------------- arrays


def test_items_min_max(engines):
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3}
    check(engines, schema, [[1], [1, 2, 3]], ["[]", "[1,2,3,4]", '["a"]', "[1,]"])
    check(engines, {"type": "array"}, [[], [1, "a", None]], ["{}"])
    assert any("capped at 64 items" in n for n in compile_schema({"type": "array"}).notes)
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "array", "minItems": 3, "maxItems": 2})
    assert err.value.keyword == "minItems"


def test_prefix_items(engines):
    tup = {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
    }
    check(engines, tup, [[], ["a"], ["a", 1]], ["[1]", '["a",1,2]', '["a","b"]'])
    rest = {
        "type": "array",
        "prefixItems": [{"type": "string"}],
        "items": {"type": "boolean"},
        "minItems": 2,
        "maxItems": 3,
    }
    check(engines, rest, [["a", True], ["a", True, False]], ['["a"]', '["a",1]', "[true,true]"])
    with pytest.raises(GrammarError):
        compile_schema({"type": "array", "prefixItems": [{}], "items": False, "minItems": 2})


def test_unique_items_is_a_validator_keyword():
    assert keywords({"type": "array", "uniqueItems": True}) == {("uniqueItems", "$")}
    assert keywords({"type": "array", "uniqueItems": False}) == set()


# ---------------------------------------------------------------------------- numbers


def test_integer_ranges(engines):
    compiled = compile_schema({"type": "integer", "minimum": -12, "maximum": 105})
    for v in range(-40, 140):
        assert engines.accepts(compiled, str(v)) is (-12 <= v <= 105), v
    check(
        engines,
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
        [1, 2],
        ["0", "3"],
    )
    check(engines, {"type": "integer", "minimum": 0.5, "maximum": 2.5}, [1, 2], ["0", "3"])
    check(engines, {"type": "integer", "minimum": 10**20}, [10**20, 10**21 - 1], [str(10**20 - 1)])
    with pytest.raises(GrammarError):
        compile_schema({"type": "integer", "minimum": 3, "maximum": 2})
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "integer", "exclusiveMinimum": True})
    assert err.value.keyword == "exclusiveMinimum"


def test_number_bounds_and_multiple_of_are_validator_keywords():
    schema = {"type": "number", "minimum": 0, "exclusiveMaximum": 1.5, "multipleOf": 0.5}
    assert keywords(schema) == {("minimum", "$"), ("exclusiveMaximum", "$"), ("multipleOf", "$")}
    assert keywords({"type": "integer", "multipleOf": 3}) == {("multipleOf", "$")}
    lines = describe_validator_keywords(compile_schema({"properties": {"x": {"multipleOf": 2}}}))
    assert lines == [
        "note: multipleOf at $.properties.x is enforced by the validator, not the grammar"
        " (the grammar does not bound non-integer numbers)"
    ]


# ---------------------------------------------------------------------------- pattern / format


def test_pattern_anchored_and_unanchored(engines):
    check(
        engines,
        {"type": "string", "pattern": "^[a-z]{2,3}-\\d+$"},
        ["ab-1", "abc-123"],
        ['"ab-"', '"Ab-1"', '"wxab-1"'],
    )
    # JSON Schema patterns are searches: an unanchored pattern may match anywhere
    check(engines, {"type": "string", "pattern": "ab+c"}, ["abc", "xxabbbcyy"], ['"ac"', '"abx"'])
    check(engines, {"type": "string", "pattern": "^x|y$"}, ["x", "xq", "qy", "y"], ['"qx"', '"yq"'])
    check(
        engines,
        {"type": "string", "pattern": '^(?:a|"|\\\\)(?<n>\\.)?$'},
        ["a", '"', "\\", "a."],
        ['"b"'],
    )
    check(
        engines, {"type": "string", "pattern": "^[^a-c]$"}, ["d", "\n", '"', "é"], ['"a"', '"dd"']
    )
    check(engines, {"type": "string", "pattern": "^\\s\\S\\w\\W\\D$"}, [" a_!x"], ['"  _!x"'])


@pytest.mark.parametrize(
    "pattern",
    [
        "(?=a)",
        "(?!a)",
        "(?<=a)b",
        "(?<!a)b",
        "(a)\\1",
        "\\bword",
        "a^b",
        "a$b",
        "(?i)a",
        "\\p{L}",
        "[]",
        "a{2}{3}",
    ],
)
def test_unsupported_pattern_features(pattern):
    with pytest.raises(GrammarError) as err:
        compile_schema(
            {"type": "object", "properties": {"p": {"type": "string", "pattern": pattern}}}
        )
    assert err.value.keyword == "pattern"
    assert err.value.path == "$.properties.p"


def test_pattern_with_lengths(engines):
    anchored = {"type": "string", "pattern": "^[a-z]{2,4}$", "maxLength": 4}
    assert keywords(anchored) == set()
    loose = {"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}
    assert keywords(loose) == set()  # unbounded quantifiers are bounded by maxLength itself
    check(engines, loose, ["abc"], ['"abcd"'])
    unanchored = {"type": "string", "pattern": "a", "maxLength": 3}
    assert keywords(unanchored) == {("maxLength", "$")}
    with pytest.raises(GrammarError):
        compile_schema({"type": "string", "pattern": "^abcd$", "maxLength": 3})


def test_formats(engines):
    check(
        engines,
        {"type": "string", "format": "date"},
        ["2024-02-29", "2000-02-29", "1999-12-31", "0001-01-01"],
        ['"2023-02-29"', '"1900-02-29"', '"2024-04-31"', '"0000-01-01"', '"2024-1-01"'],
    )
    check(
        engines,
        {"type": "string", "format": "time"},
        ["23:59:59Z", "08:00:00.5+02:00"],
        ['"24:00:00Z"', '"08:00:00"'],
    )
    check(
        engines,
        {"type": "string", "format": "date-time"},
        ["2024-05-01T12:30:00Z"],
        ['"2024-05-01 12:30:00Z"'],
    )
    check(
        engines,
        {"type": "string", "format": "uuid"},
        ["123e4567-e89b-12d3-a456-426614174000"],
        ['"123e4567e89b12d3a456426614174000"'],
    )
    check(
        engines,
        {"type": "string", "format": "email"},
        ["a.b+c@example.co.uk"],
        ['"a@b"', '"a b@example.com"'],
    )
    check(
        engines,
        {"type": "string", "format": "uri"},
        ["https://example.com:8080/a/b?q=1#f"],
        ['"example.com"', '"http://a b"'],
    )
    with pytest.raises(GrammarError) as err:
        compile_schema({"type": "string", "format": "hostname"})
    assert err.value.keyword == "format"
    assert "hostname" in err.value.message


def test_format_with_pattern_or_lengths():
    assert keywords({"type": "string", "format": "date", "pattern": "^2"}) == {("pattern", "$")}
    assert keywords({"type": "string", "format": "date", "maxLength": 10}) == set()
    assert keywords({"type": "string", "format": "email", "maxLength": 20}) == {("maxLength", "$")}
    compiled = compile_schema({"type": "integer", "format": "int32"})
    assert any("format has no effect" in n for n in compiled.notes)


# ---------------------------------------------------------------------------- combinators


def test_any_of_and_one_of(engines):
    any_of = {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]}
    check(engines, any_of, [1, "ab"], ['"abc"', "true"])
    assert keywords(any_of) == set()
    siblings = {
        "type": "object",
        "properties": {"k": {"type": "string"}},
        "anyOf": [{"required": ["k"]}, {"maxProperties": 0}],
    }
    check(engines, siblings, [{"k": "v"}, {}], [])
    overlapping = {"oneOf": [{"type": "integer"}, {"type": "number"}]}
    assert keywords(overlapping) == {("oneOf", "$")}
    assert keywords({"oneOf": [{"type": "integer"}, {"type": "string"}]}) == set()
    tagged = {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
            {
                "type": "object",
                "properties": {"kind": {"const": "b"}, "x": {}},
                "required": ["kind"],
            },
        ]
    }
    assert keywords(tagged) == set()
    untyped = {"oneOf": [{k: v for k, v in b.items() if k != "type"} for b in tagged["oneOf"]]}
    assert keywords(untyped) == {("oneOf", "$")}  # "x" would match both branches
    check(engines, tagged, [{"kind": "a"}, {"kind": "b", "x": 1}], [{"kind": "c"}])


def test_all_of_merges(engines):
    schema = {
        "allOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "integer", "minimum": 0}},
                "required": ["a"],
            },
            {"properties": {"a": {"maximum": 5}, "b": {"type": "string"}}},
        ]
    }
    check(engines, schema, [{"a": 0}, {"a": 5, "b": "x"}], [{"a": 6}, {"b": "x"}])
    with pytest.raises(GrammarError) as err:
        compile_schema({"allOf": [{"type": "string"}, {"type": "integer"}]})
    assert err.value.keyword == "type"
    with pytest.raises(GrammarError) as err:
        compile_schema({"allOf": [{"pattern": "a"}, {"pattern": "b"}]})
    assert err.value.keyword == "allOf"
    with pytest.raises(GrammarError):
        compile_schema(
            {
                "allOf": [
                    {"properties": {"a": {}}, "additionalProperties": False},
                    {"properties": {"b": {}}},
                ]
            }
        )


def test_refs_and_recursion(engines):
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer"},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["v"],
            }
        },
        "$ref": "#/$defs/node",
    }
    gbnf = check(
        engines,
        tree,
        [{"v": 1}, {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}, {"v": 4}]}],
        [{"kids": []}],
    )
    assert re.search(r"^root-node ::=", gbnf, re.M)
    check(
        engines,
        {
            "definitions": {"s": {"type": "string"}},
            "items": {"$ref": "#/definitions/s"},
            "type": "array",
        },
        [["a"]],
        ["[1]"],
    )
    self_ref = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    check(engines, self_ref, [{}, {"next": {"next": {}}}], [{"next": 1}])
    with pytest.raises(GrammarError) as err:
        compile_schema(
            {
                "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}},
                "$ref": "#/$defs/a",
            }
        )
    assert err.value.keyword == "$ref"


@pytest.mark.parametrize(
    "ref",
    ["http://example.com/s.json", "other.json#/x", "#anchor", "#/$defs/missing"],
)
def test_bad_refs(ref):
    with pytest.raises(GrammarError) as err:
        compile_schema({"properties": {"x": {"$ref": ref}}, "$defs": {}})
    assert (err.value.keyword, err.value.path) == ("$ref", "$.properties.x")


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("not", {"type": "string"}),
        ("if", {"type": "string"}),
        ("then", {}),
        ("else", {}),
        ("patternProperties", {"^a": {}}),
        ("dependentSchemas", {"a": {}}),
        ("dependentRequired", {"a": ["b"]}),
        ("unevaluatedProperties", False),
        ("unevaluatedItems", False),
        ("propertyNames", {"maxLength": 3}),
        ("contains", {}),
        ("minContains", 1),
        ("$dynamicRef", "#x"),
        ("nullable", True),
        ("x-custom", 1),
    ],
)
def test_unsupported_keywords_name_keyword_and_path(keyword, value):
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {keyword: value}}},
    }
    with pytest.raises(GrammarError) as err:
        compile_schema(schema)
    assert err.value.keyword == keyword
    assert err.value.path == "$.properties.items.items"
    assert keyword in err.value.message


@pytest.mark.parametrize(
    "schema, keyword",
    [
        ({"type": "strng"}, "type"),
        ({"type": "array", "items": [{}]}, "items"),
        ({"required": "a"}, "required"),
        ({"minLength": -1}, "minLength"),
        ({"maxItems": 1.5}, "maxItems"),
        ({"multipleOf": 0}, "multipleOf"),
        ({"enum": []}, "enum"),
        ({"anyOf": []}, "anyOf"),
        ({"properties": {"a": 3}}, "properties"),
        ({"$defs": {"a": {"$id": "x"}}, "$ref": "#/$defs/a"}, "$id"),
    ],
)
def test_malformed_keyword_values(schema, keyword):
    with pytest.raises(GrammarError) as err:
        compile_schema(schema)
    assert err.value.keyword == keyword


def test_annotations_are_ignored(engines):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/tool",
        "title": "T",
        "description": "d",
        "$comment": "c",
        "type": "string",
        "default": "x",
        "examples": ["y"],
        "deprecated": False,
        "readOnly": False,
        "writeOnly": False,
        "contentMediaType": "text/plain",
    }
    compiled = compile_schema(schema)
    assert compiled.validator_keywords == ()
    assert engines.accepts(compiled, '"z"')


def test_false_and_non_object_schemas():
    for schema in (False, 3, "string", [], None):
        with pytest.raises(GrammarError):
            compile_schema(schema)
    with pytest.raises(GrammarError):
        compile_schema({"a": float("nan")})


# ---------------------------------------------------------------------------- API


def test_cache_and_result_shape():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    first = compile_schema(schema)
    assert compile_schema(json.loads(json.dumps(schema))) is first
    assert first.root == "root" and first.gbnf.startswith("root ::= ")
    named = compile_schema(schema, name="search")
    assert named.root == "search" and named.gbnf.startswith("root ::= search\n")


def test_schema_compiler_shares_base_rules():
    comp = SchemaCompiler()
    a = comp.compile({"type": "object", "properties": {"s": {"type": "string"}}}, name="a")
    b = comp.compile({"type": "object", "properties": {"s": {"type": "string"}}}, name="b")
    comp.add_rule("root", alt(Ref(a), Ref(b)))
    gbnf = comp.grammar("root")
    assert gbnf.count("string ::=") == 1 and gbnf.count("char ::=") == 1
    names = [line.split(" ::= ")[0] for line in gbnf.splitlines()]
    assert len(names) == len(set(names))


WALK_SCHEMAS = [
    {  # recursion through $defs
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer", "minimum": 0, "maximum": 9},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2},
                },
                "required": ["v"],
            }
        },
        "$ref": "#/$defs/node",
    },
    {  # allOf merge with a $ref and tightened bounds
        "$defs": {"base": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "allOf": [{"$ref": "#/$defs/base"}, {"properties": {"n": {"minimum": -3, "maximum": 3}}}],
        "required": ["n"],
    },
    {  # tagged union
        "oneOf": [
            {"type": "object", "properties": {"t": {"const": "a"}, "x": {"type": "boolean"}}, "required": ["t"]},
            {"type": "object", "properties": {"t": {"const": "b"}, "y": {"type": "null"}}, "required": ["t", "y"]},
        ]
    },
    {"type": "array", "prefixItems": [{"format": "date", "type": "string"}], "items": {"enum": [1, "x"]}, "maxItems": 3},
    {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[a-c]+$"}, "maxProperties": 2},
    {},
]  # fmt: skip


@pytest.mark.parametrize("schema", WALK_SCHEMAS, ids=range(len(WALK_SCHEMAS)))
def test_random_walks_validate(engines, schema):
    compiled = compile_schema(schema, string_cap=8, array_cap=3)
    assert compiled.validator_keywords == ()
    rng = random.Random(11)
    done = 0
    for _ in range(15):
        text = engines.walk(compiled, rng, max_tokens=300)
        if text is None:
            continue
        done += 1
        checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        jsonschema.Draft202012Validator(schema, format_checker=checker).validate(json.loads(text))
        assert engines.llama_accepts(compiled.gbnf, text)
    assert done >= 10


def test_lark_rendering_is_exact_where_gbnf_to_lark_is_not(engines):
    """gbnf_to_lark makes `[null]` one greedy lexeme that shadows `[` of the recursive branch."""
    schema = {
        "anyOf": [
            {"type": "array", "items": {"type": "null"}, "maxItems": 1},
            {"type": "array", "prefixItems": [{"type": "null"}, {"type": "boolean"}]},
        ]
    }
    compiled = compile_schema(schema, array_cap=3)
    text = "[null,true,[1]]"
    assert engines.accepts(compiled, text)
    assert not engines.accepts(compiled.gbnf, text)  # raw GBNF through gbnf_to_lark
    assert "start:" in compiled.lark and "STRING:" in compiled.lark
    assert lark_for(compiled.gbnf) == compiled.lark  # engines that take GBNF text look it up
    assert lark_for('root ::= "x"\n') is None


def test_nested_quantifiers_render_unambiguously(engines):
    check(
        engines,
        {"type": "string", "pattern": "^(?:a{2}){3}$"},
        ["aaaaaa"],
        ['"aaaa"', '"aaaaaaaa"'],
    )
    check(
        engines,
        {"type": "string", "pattern": "^(?:ab?){2,3}$"},
        ["aa", "abab", "aaab"],
        ['"a"', '"abababa"'],
    )
    check(
        engines, {"type": "string", "pattern": "^(?:a{2}){1,2}$"}, ["aa", "aaaa"], ['"aaa"', '"a"']
    )


def test_base_json_grammar_file_matches_compiler(engines):
    text = (REPO / "grammars" / "json.gbnf").read_text()
    rules = (
        "\n".join(line for line in text.splitlines() if line and not line.startswith("#")) + "\n"
    )
    assert rules == compile_schema({}).gbnf
    for value in ({"a": [1, -2.5e3, None, True, "x\n"]}, [], "s", 0):
        assert engines.accepts(text, dumps(value))
