"""Grammar rules for scalar values: enum/const, strings (formats, patterns) and numbers.

Each function takes the ``RuleBuilder`` and one checked schema object; none of them compiles
subschemas (objects and arrays are in ``schema_objects``).
"""

from __future__ import annotations

import functools

from edgeagent.errors import GrammarError
from edgeagent.grammar import numbers
from edgeagent.grammar.charsets import encode_json, json_text
from edgeagent.grammar.nodes import Lit, Node, alt, has_empty_class, length_bounds, rep, seq
from edgeagent.grammar.regex_gbnf import FORMATS, format_node, parse_pattern
from edgeagent.grammar.rules import RuleBuilder
from edgeagent.grammar.schema_keywords import (
    ARRAY_KW,
    NUMBER_KW,
    OBJECT_KW,
    STRING_KW,
    VALUE_KW,
    constraints,
    expand_types,
    json_type,
    type_list,
    value_key,
)

MAX_BOUND = 10000  # largest length/count bound put into a grammar (llama.cpp unrolls bounds)


@functools.cache
def _format_bounds(name: str) -> tuple[int, int | None]:
    """The (min, max) length in characters of a string in the format ``name``."""
    return length_bounds(format_node(name))


# ---------------------------------------------------------------------- length and count bounds


def bound(b: RuleBuilder, s: dict, key: str, path: str) -> int | None:
    """A length/count keyword; upper bounds above MAX_BOUND are lowered to it (noted)."""
    if key not in s:
        return None
    value = int(s[key])
    if value <= MAX_BOUND:
        return value
    if key.startswith("min"):
        raise GrammarError(
            f"{key} {value} is above the grammar limit of {MAX_BOUND}",
            keyword=key,
            path=path,
            hint="lower it; a model should not be asked for that much structured output",
        )
    b.note(f"{key} above {MAX_BOUND} is lowered to {MAX_BOUND} in the grammar", path)
    return MAX_BOUND


# ---------------------------------------------------------------------- enum / const


def enum_node(b: RuleBuilder, s: dict, path: str) -> Node:
    """The listed enum/const values of the schema's type, as literals."""
    values = list(s["enum"]) if "enum" in s else [s["const"]]
    if "const" in s and "enum" in s:
        values = [v for v in values if value_key(v) == value_key(s["const"])]
    if "type" in s:
        allowed = expand_types(type_list(s["type"]))
        values = [v for v in values if json_type(v) in allowed]
    if not values:
        raise GrammarError(
            "no enum/const value satisfies the schema's type", keyword="enum", path=path
        )
    kinds = {json_type(v) for v in values}
    applicable = set()
    if "string" in kinds:
        applicable |= STRING_KW
    if kinds & {"integer", "number"}:
        applicable |= NUMBER_KW
    if "object" in kinds:
        applicable |= OBJECT_KW
    if "array" in kinds:
        applicable |= ARRAY_KW
    for key in constraints(s, VALUE_KW):
        if key in applicable:
            b.report(
                key,
                path,
                f"enum/const values are emitted as listed; each is checked against {key}",
            )
    try:
        texts = list(dict.fromkeys(json_text(v) for v in values))
    except ValueError as exc:  # NaN or infinity
        raise GrammarError(
            f"enum/const value is not JSON: {exc}", keyword="enum", path=path
        ) from None
    return alt(*(Lit(t) for t in texts))


# ---------------------------------------------------------------------- strings


def string_node(b: RuleBuilder, s: dict, path: str, hint: str) -> Node:
    """A JSON string within minLength/maxLength, in a format or matching a pattern."""
    lo = bound(b, s, "minLength", path) or 0
    hi = bound(b, s, "maxLength", path)
    if hi is not None and lo > hi:
        raise GrammarError("minLength is above maxLength", keyword="maxLength", path=path)
    if "format" in s:
        fmt = s["format"]
        if fmt not in FORMATS:
            raise GrammarError(
                f"unsupported format {fmt!r}",
                keyword="format",
                path=path,
                hint=f"supported formats: {', '.join(FORMATS)}; or use a pattern",
            )
        if "pattern" in s:
            b.report("pattern", path, f"with format {fmt!r} the grammar enforces the format only")
        _length_fit(b, _format_bounds(fmt), lo, hi, path)
        return b.base(fmt)
    if "pattern" in s:
        return pattern_node(b, s["pattern"], lo, hi, path, hint)
    top = hi
    if top is None:
        top = max(lo, b.string_cap)
        b.note(f"strings without maxLength are capped at {top} characters", path)
        if lo == 0 and top == b.string_cap:
            return b.base("string")
    body = seq(Lit('"'), rep(b.base("char"), lo, top), Lit('"'))
    return b.rule(f"string-{lo}-{top}", body, token=True)


def _length_fit(
    b: RuleBuilder, bounds: tuple[int, int | None], lo: int, hi: int | None, path: str
) -> None:
    """Check a format's length range against min/maxLength: error, fit, or report."""
    blo, bhi = bounds
    if (hi is not None and blo > hi) or (bhi is not None and bhi < lo):
        raise GrammarError(
            "minLength/maxLength cannot be met by the format",
            keyword="maxLength" if hi is not None and blo > hi else "minLength",
            path=path,
        )
    if blo < lo:
        b.report("minLength", path, "the grammar cannot combine it with the format")
    if hi is not None and (bhi is None or bhi > hi):
        b.report("maxLength", path, "the grammar cannot combine it with the format")


def pattern_node(b: RuleBuilder, src: str, lo: int, hi: int | None, path: str, hint: str) -> Node:
    """A JSON string matching the regex ``src`` (alternatives that cannot fit are dropped)."""
    cap = hi if hi is not None else b.string_cap
    parsed = parse_pattern(src, cap, path)
    pad = rep(b.base("char"), 0, cap)
    alts: list[Node] = []
    unsure = False
    for branch in parsed.branches:
        blo, bhi = length_bounds(branch.node)
        if hi is not None and blo > hi:
            continue  # this alternative can never fit
        anchored = branch.start and branch.end
        if anchored and bhi is not None and bhi < lo:
            continue
        if not (blo >= lo and (hi is None or (anchored and bhi is not None and bhi <= hi))):
            unsure = True
        if not anchored:
            b.note(
                f"unanchored pattern: free text around the match is capped at {cap} characters",
                path,
            )
        parts = [] if branch.start else [pad]
        core = encode_json(branch.node)
        if has_empty_class(core):
            b.mark_unproductive()  # an empty class like [^\s\S]
        parts.append(core)
        if not branch.end:
            parts.append(pad)
        alts.append(seq(*parts))
    if not alts:
        raise GrammarError(
            "no alternative of the pattern fits minLength/maxLength",
            keyword="pattern",
            path=path,
        )
    if unsure:
        for key, val in (("minLength", lo if lo else None), ("maxLength", hi)):
            if val is not None:
                b.report(key, path, "the grammar cannot combine it with the pattern")
    if parsed.capped and hi is None:
        b.note(f"unbounded pattern quantifiers are capped at {cap} repetitions", path)
    return b.rule(f"{hint}-pattern", seq(Lit('"'), alt(*alts), Lit('"')), token=True)


# ---------------------------------------------------------------------- numbers


def integer_node(b: RuleBuilder, s: dict, path: str) -> Node:
    """An integer within the schema's bounds (unbounded sides are capped in digits)."""
    lo, hi = numbers.integer_bounds(
        s.get("minimum"), s.get("maximum"), s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
    )
    if "multipleOf" in s:
        b.report("multipleOf", path, "the grammar cannot express divisibility")
    if lo is not None and hi is not None and lo > hi:
        raise GrammarError(
            "no integer lies between the minimum and maximum", keyword="maximum", path=path
        )
    if lo is None and hi is None:
        b.note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
        return b.base("integer")
    lo2, hi2, capped = numbers.capped_range(lo, hi)
    if capped:
        b.note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
    name = f"int-{lo2}-{hi2}".replace("--", "-m")
    return b.rule(name, numbers.integer_range(lo2, hi2), token=True)


def number_node(b: RuleBuilder, s: dict, path: str) -> Node:
    """Any JSON number (its bounds are left to the validator)."""
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        if key in s:
            b.report(key, path, "the grammar does not bound non-integer numbers")
    b.note(
        f"numbers have at most {numbers.INT_PART_DIGITS} integer digits, "
        f"{numbers.FRAC_DIGITS} fraction digits and a {numbers.EXP_DIGITS}-digit exponent",
        path,
    )
    return b.base("number")
