"""Property tests: grammars accept every instance they should and emit only valid instances.

Schemas come from the grammar-exact subset (no validator-enforced keywords), so both
directions must hold without exceptions: (1) random valid instances, dumped compactly in
schema property order, are accepted; (2) random walks through the grammar (uniform choice
among the tokens llguidance allows) produce JSON that validates with ``jsonschema`` + formats.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import string
import uuid

import jsonschema
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from edgeagent.errors import GrammarError
from edgeagent.grammar.compiler import compile_schema
from tests.unit.test_compiler import dumps, engines  # noqa: F401  (fixture)

STRING_CAP = 10
ARRAY_CAP = 3
EXAMPLES = int(os.environ.get("EDGEAGENT_HYPOTHESIS_EXAMPLES", "60"))  # raise it to search harder
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# (pattern, generator of matching strings); generators stay inside STRING_CAP
PATTERNS = [
    (
        "^[a-z]{1,5}$",
        lambda r: "".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(1, 5))),
    ),
    ("^\\d{3}-\\d{2}$", lambda r: f"{r.randint(0, 999):03d}-{r.randint(0, 99):02d}"),
    ("^(?:red|green|blue)!?$", lambda r: r.choice(["red", "green", "blue"]) + r.choice(["", "!"])),
    ("ab", lambda r: r.choice(["", "x", "é"]) + "ab" + r.choice(["", "\n", '"'])),
    (
        "^[A-Z][^\\s]*$",
        lambda r: r.choice("ABC") + "".join(r.choice('x"\\é1') for _ in range(r.randint(0, 4))),
    ),
    ("\\.$", lambda r: "".join(r.choice("ab ") for _ in range(r.randint(0, 5))) + "."),
]
FORMATS = {
    "date": lambda r: (
        datetime.date(2000, 1, 1) + datetime.timedelta(days=r.randint(0, 20000))
    ).isoformat(),
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z",
    "date-time": lambda r: f"2024-02-29T{r.randint(0, 23):02d}:05:59.25+05:30",
    "uuid": lambda r: str(uuid.UUID(int=r.getrandbits(128))),
    "email": lambda r: (
        r.choice(["a", "bob.smith", "x_y+z"]) + "@example." + r.choice(["com", "org"])
    ),
    "uri": lambda r: r.choice(
        ["https://a.example.com/x?y=1", "ftp://h:21/p/q", "http://e.org#top"]
    ),
}
NAMES = ["a", "b", "name", "x-y", "é", "n2"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-50, 50), st.text('ab"\\é\n', max_size=3))


def _leaf() -> st.SearchStrategy:
    integer = st.builds(
        lambda lo, span, excl: (
            {"type": "integer", **({} if lo is None else {"minimum": lo})}
            | (
                {}
                if span is None
                else {("exclusiveMaximum" if excl else "maximum"): (lo or 0) + span}
            )
        ),
        st.none() | st.integers(-300, 300),
        st.none() | st.integers(1, 1200),
        st.booleans(),
    )
    strings = st.builds(
        lambda lo, extra: (
            {"type": "string", "minLength": lo}
            | ({} if extra is None else {"maxLength": lo + extra})
        ),
        st.integers(0, 3),
        st.none() | st.integers(0, 5),
    )
    return st.one_of(
        st.just({"type": "boolean"}),
        st.just({"type": "null"}),
        st.just({"type": "number"}),
        st.just({"type": ["string", "null"], "maxLength": 4}),
        integer,
        strings,
        st.sampled_from(PATTERNS).map(lambda p: {"type": "string", "pattern": p[0]}),
        st.sampled_from(sorted(FORMATS)).map(lambda f: {"type": "string", "format": f}),
        st.lists(SCALARS, min_size=1, max_size=4).map(lambda v: {"enum": v}),
        SCALARS.map(lambda v: {"const": v}),
    )


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    obj = st.builds(
        lambda props, req_mask, addl: {
            "type": "object",
            "properties": props,
            "required": [k for k, r in zip(props, req_mask, strict=False) if r],
            **addl,
        },
        st.dictionaries(st.sampled_from(NAMES), children, max_size=4),
        st.lists(st.booleans(), min_size=4, max_size=4),
        st.sampled_from([{}, {"additionalProperties": False}]),
    )
    free_dict = children.map(
        lambda c: {"type": "object", "additionalProperties": c, "maxProperties": 2}
    )
    arr = st.builds(
        lambda items, lo, extra: {
            "type": "array",
            "items": items,
            "minItems": lo,
            "maxItems": lo + extra,
        },
        children,
        st.integers(0, 2),
        st.integers(0, 2),
    )
    tup = st.builds(
        lambda a, b, closed: {
            "type": "array",
            "prefixItems": [a, b],
            **({"items": False} if closed else {"maxItems": 3}),
        },
        children,
        children,
        st.booleans(),
    )
    any_of = st.lists(children, min_size=2, max_size=3).map(lambda bs: {"anyOf": bs})
    return st.one_of(obj, free_dict, arr, tup, any_of)


SCHEMAS = st.recursive(_leaf(), _extend, max_leaves=6)


def instance(schema: dict, r: random.Random) -> object:
    """A random instance in the grammar's canonical form (schema property order, no extra keys)."""
    if "anyOf" in schema:
        return instance(r.choice(schema["anyOf"]), r)
    if "enum" in schema:
        return r.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    kind = schema["type"]
    if isinstance(kind, list):
        kind = r.choice(kind)
    if kind == "boolean":
        return r.random() < 0.5
    if kind == "null":
        return None
    if kind == "number":
        return r.choice(
            [0, -3, round(r.uniform(-1e4, 1e4), 3), r.uniform(-1, 1) * 10 ** r.randint(-20, 20)]
        )
    if kind == "integer":
        lo = schema.get("minimum", -(10**6))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 10**6 + 1) - 1)
        return r.randint(lo, hi)
    if kind == "string":
        if "pattern" in schema:
            return dict(PATTERNS)[schema["pattern"]](r)
        if "format" in schema:
            return FORMATS[schema["format"]](r)
        lo = schema.get("minLength", 0)
        hi = min(schema.get("maxLength", STRING_CAP), STRING_CAP)
        return "".join(r.choice('aZ "\\\n\t\x01é😀/') for _ in range(r.randint(lo, max(lo, hi))))
    if kind == "array":
        prefix = schema.get("prefixItems", [])
        hi = (
            min(schema.get("maxItems", len(prefix)), ARRAY_CAP)
            if schema.get("items") is not False
            else len(prefix)
        )
        n = r.randint(min(schema.get("minItems", 0), hi), hi)
        tail = schema.get("items", {"type": "integer"})  # absent items: anything; use integers
        return [instance(prefix[i] if i < len(prefix) else tail, r) for i in range(n)]
    out = {}
    for key, sub in schema.get("properties", {}).items():
        if key in schema.get("required", []) or r.random() < 0.5:
            out[key] = instance(sub, r)
    if isinstance(schema.get("additionalProperties"), dict):
        for key in r.sample(["k1", "k2", "k3"], r.randint(0, 2)):
            out[key] = instance(schema["additionalProperties"], r)
    return out


def validate(schema: dict, value: object) -> None:
    # not jsonschema.FormatChecker(): its class-wide registry checks "time" the draft-3 way
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema.Draft202012Validator(schema, format_checker=checker).validate(value)


def _compile(schema: dict):
    compiled = compile_schema(schema, string_cap=STRING_CAP, array_cap=ARRAY_CAP)
    assert compiled.validator_keywords == (), compiled.validator_keywords  # the subset is exact
    return compiled


@SETTINGS
@given(schema=SCHEMAS, seed=st.integers(0, 2**32))
def test_valid_instances_are_accepted(engines, schema, seed):  # noqa: F811
    note(json.dumps(schema))
    compiled = _compile(schema)
    r = random.Random(seed)
    for _ in range(3):
        value = instance(schema, r)
        try:
            validate(schema, value)
        except jsonschema.ValidationError:
            continue  # e.g. an anyOf branch instance the generator cannot make valid
        text = dumps(value)
        assert engines.accepts(compiled, text), f"rejected {text!r}\n{compiled.gbnf}"


@SETTINGS
@given(schema=SCHEMAS, seed=st.integers(0, 2**32))
def test_random_walks_produce_valid_instances(engines, schema, seed):  # noqa: F811
    note(json.dumps(schema))
    compiled = _compile(schema)
    text = engines.walk(compiled, random.Random(seed), max_tokens=400)
    assume(text is not None)  # the walk hit its token bound before the grammar allowed a stop
    note(repr(text))
    assert engines.llama_accepts(compiled.gbnf, text), "llama.cpp rejects llguidance's output"
    validate(schema, json.loads(text))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(["string", "integer", "object", "array", "#", "#/$defs/a", "^a+$", "date"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "type", "properties", "required", "items", "prefixItems", "enum", "const", "anyOf",
                "oneOf", "allOf", "$ref", "$defs", "additionalProperties", "minLength", "maxLength",
                "minimum", "maximum", "exclusiveMinimum", "pattern", "format", "minItems",
                "maxItems", "not", "a",
            ]
        )
        | st.text(max_size=4),
        children,
        max_size=5,
    ),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=EXAMPLES * 7, deadline=None)
@given(schema=JSON_VALUES)
def test_fuzz_only_grammar_errors(schema):
    try:
        compiled = compile_schema(schema, string_cap=8)
    except GrammarError as exc:
        assert exc.message and (exc.path or "").startswith("$")
        return
    assert compiled.gbnf.startswith("root ::= ")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(schema=JSON_VALUES)
def test_fuzz_successes_load_in_both_engines(engines, schema):  # noqa: F811
    try:
        compiled = compile_schema(schema, string_cap=8)
    except GrammarError:
        return
    engines.matcher(compiled)  # asserts llama.cpp and llguidance both accept the grammar
