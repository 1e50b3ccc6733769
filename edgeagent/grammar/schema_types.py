"""Grammar rules for typed values: enum/const, strings, numbers, objects and arrays.

``TypeRulesMixin`` is mixed into ``SchemaCompiler`` and uses its rule bookkeeping (``_schema``,
``_rule``, ``_named``, ``_base``, ``_list``, ``_note``, ``_report``).
"""

from __future__ import annotations

import functools

from edgeagent.errors import GrammarError
from edgeagent.grammar import numbers
from edgeagent.grammar.charsets import encode_json, json_text
from edgeagent.grammar.nodes import (
    EMPTY,
    Lit,
    Node,
    alt,
    has_empty_class,
    length_bounds,
    opt,
    rep,
    seq,
)
from edgeagent.grammar.regex_gbnf import FORMATS, format_node, parse_pattern
from edgeagent.grammar.schema_combinators import SchemaDoc
from edgeagent.grammar.schema_keywords import (
    ALL_TYPES,
    ARRAY_KW,
    NUMBER_KW,
    OBJECT_KW,
    STRING_KW,
    VALUE_KW,
    expand_types,
    jp,
    json_type,
    type_list,
    value_key,
)

MAX_BOUND = 10000  # largest length/count bound put into a grammar (llama.cpp unrolls bounds)


@functools.cache
def _format_bounds(name: str) -> tuple[int, int | None]:
    return length_bounds(format_node(name))


class _Missing:
    pass


MISSING = _Missing()


class TypeRulesMixin:
    """Typed-value rules for ``SchemaCompiler``."""

    # ------------------------------------------------------------------ length and count bounds

    def _bound(self, s: dict, key: str, path: str) -> int | None:
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
        self._note(f"{key} above {MAX_BOUND} is lowered to {MAX_BOUND} in the grammar", path)
        return MAX_BOUND

    # ------------------------------------------------------------------ enum / const

    def _enum(self, s: dict, path: str) -> Node:
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
        for key in self._constraints(s, VALUE_KW):
            if key in applicable:
                self._report(
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

    # ------------------------------------------------------------------ typed values

    def _typed(self, s: dict, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
        types = type_list(s["type"]) if "type" in s else list(ALL_TYPES)
        if "number" in types and "integer" in types:
            types.remove("integer")
        if "type" in s:
            present = s.keys()
            for kws, kinds in (
                (STRING_KW, {"string"}),
                (NUMBER_KW, {"number", "integer"}),
                (OBJECT_KW, {"object"}),
                (ARRAY_KW, {"array"}),
            ):
                if kinds.isdisjoint(types):
                    for key in sorted(kws.intersection(present)):
                        self._note(f"{key} has no effect on type {'/'.join(types)}", path)
        parts = []
        for t in types:
            if t == "string":
                parts.append(self._string(s, path, hint))
            elif t == "integer":
                parts.append(self._integer(s, path))
            elif t == "number":
                parts.append(self._number(s, path))
            elif t == "boolean":
                parts.append(alt(Lit("true"), Lit("false")))
            elif t == "null":
                parts.append(Lit("null"))
            elif t == "object":
                parts.append(self._object(s, path, doc, hint, depth))
            else:
                parts.append(self._array(s, path, doc, hint, depth))
        return alt(*parts)

    def _string(self, s: dict, path: str, hint: str) -> Node:
        lo = self._bound(s, "minLength", path) or 0
        hi = self._bound(s, "maxLength", path)
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
                self._report(
                    "pattern", path, f"with format {fmt!r} the grammar enforces the format only"
                )
            self._length_fit(_format_bounds(fmt), lo, hi, path)
            return self._base(fmt)
        if "pattern" in s:
            return self._pattern(s["pattern"], lo, hi, path, hint)
        top = hi
        if top is None:
            top = max(lo, self.string_cap)
            self._note(f"strings without maxLength are capped at {top} characters", path)
            if lo == 0 and top == self.string_cap:
                return self._base("string")
        body = seq(Lit('"'), rep(self._base("char"), lo, top), Lit('"'))
        return self._rule(f"string-{lo}-{top}", body, token=True)

    def _length_fit(
        self, bounds: tuple[int, int | None], lo: int, hi: int | None, path: str
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
            self._report("minLength", path, "the grammar cannot combine it with the format")
        if hi is not None and (bhi is None or bhi > hi):
            self._report("maxLength", path, "the grammar cannot combine it with the format")

    def _pattern(self, src: str, lo: int, hi: int | None, path: str, hint: str) -> Node:
        cap = hi if hi is not None else self.string_cap
        parsed = parse_pattern(src, cap, path)
        pad = rep(self._base("char"), 0, cap)
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
                self._note(
                    f"unanchored pattern: free text around the match is capped at {cap} characters",
                    path,
                )
            parts = [] if branch.start else [pad]
            core = encode_json(branch.node)
            if has_empty_class(core):
                self._maybe_unproductive = True  # an empty class like [^\s\S]
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
                    self._report(key, path, "the grammar cannot combine it with the pattern")
        if parsed.capped and hi is None:
            self._note(f"unbounded pattern quantifiers are capped at {cap} repetitions", path)
        return self._rule(f"{hint}-pattern", seq(Lit('"'), alt(*alts), Lit('"')), token=True)

    def _integer(self, s: dict, path: str) -> Node:
        lo, hi = numbers.integer_bounds(
            s.get("minimum"), s.get("maximum"), s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        )
        if "multipleOf" in s:
            self._report("multipleOf", path, "the grammar cannot express divisibility")
        if lo is not None and hi is not None and lo > hi:
            raise GrammarError(
                "no integer lies between the minimum and maximum", keyword="maximum", path=path
            )
        if lo is None and hi is None:
            self._note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
            return self._base("integer")
        lo2, hi2, capped = numbers.capped_range(lo, hi)
        if capped:
            self._note(f"integers without bounds are capped at {numbers.INT_DIGITS} digits", path)
        name = f"int-{lo2}-{hi2}".replace("--", "-m")
        return self._rule(name, numbers.integer_range(lo2, hi2), token=True)

    def _number(self, s: dict, path: str) -> Node:
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
            if key in s:
                self._report(key, path, "the grammar does not bound non-integer numbers")
        self._note(
            f"numbers have at most {numbers.INT_PART_DIGITS} integer digits, "
            f"{numbers.FRAC_DIGITS} fraction digits and a {numbers.EXP_DIGITS}-digit exponent",
            path,
        )
        return self._base("number")

    # ------------------------------------------------------------------ objects and arrays

    def _object(self, s: dict, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
        props: dict = s.get("properties", {})
        required = list(dict.fromkeys(s.get("required", [])))
        addl = s.get("additionalProperties", MISSING)
        listed: list[tuple[str, object, bool, str]] = []
        for key, sub in props.items():
            req = key in required
            if sub is False:
                if req:
                    raise GrammarError(
                        f"property {key!r} is required but its schema is false",
                        keyword="required",
                        path=path,
                    )
                continue
            listed.append((key, sub, req, jp(path, "properties", key)))
        for key in required:
            if key not in props:
                if addl is False:
                    raise GrammarError(
                        f"property {key!r} is required but additionalProperties is false",
                        keyword="required",
                        path=path,
                    )
                sub = addl if isinstance(addl, dict) else True
                listed.append((key, sub, True, jp(path, "additionalProperties")))
        if addl is MISSING:
            if self.strict_objects and (props or required):
                extra: object = None
                self._note("additionalProperties absent: no extra keys (strict_objects=True)", path)
            else:
                extra = True
        else:
            extra = None if addl is False else addl

        n_req = sum(1 for _, _, req, _ in listed if req)
        n_opt = len(listed) - n_req
        min_p = self._bound(s, "minProperties", path)
        max_p = self._bound(s, "maxProperties", path)
        unsat = GrammarError(
            "minProperties/maxProperties cannot be met by the listed properties",
            keyword="maxProperties" if max_p is not None and max_p < n_req else "minProperties",
            path=path,
        )
        if (max_p is not None and n_req > max_p) or (
            min_p is not None and max_p is not None and min_p > max_p
        ):
            raise unsat
        elo, ehi = 0, 0
        if extra is None:
            if min_p is not None and n_req + n_opt < min_p:
                raise unsat
            if min_p is not None and n_req < min_p:
                self._report(
                    "minProperties", path, "counting optional properties is left to the validator"
                )
            if max_p is not None and n_req + n_opt > max_p:
                self._report(
                    "maxProperties", path, "counting optional properties is left to the validator"
                )
        else:
            if n_opt == 0:
                elo = max(0, (min_p or 0) - n_req)
                ehi = max_p - n_req if max_p is not None else max(elo, self.array_cap)
                if elo:
                    self._report(
                        "minProperties", path, "repeated free keys collapse into one when parsed"
                    )
            else:
                ehi = max_p - n_req if max_p is not None else self.array_cap
                for key, val in (("minProperties", min_p), ("maxProperties", max_p)):
                    if val is not None:
                        self._report(
                            key, path, "counting optional properties is left to the validator"
                        )
            if max_p is None:
                self._note(f"extra object keys are capped at {ehi}", path)
            if listed:
                self._report(
                    "additionalProperties",
                    path,
                    "extra keys are free strings; one equal to a listed property is rejected after decoding",
                )

        kvs: list[Node] = []
        for key, sub, _, kpath in listed:
            value = self._schema(sub, kpath, doc, f"{hint}-{key}", depth + 1)
            kvs.append(seq(Lit(json_text(key) + ":"), self._named(value, f"{hint}-{key}")))
        reqs = [req for _, _, req, _ in listed]
        body = self._members(kvs, reqs, hint)
        nullable = not any(reqs)
        if extra is not None:
            xpath = jp(path, "additionalProperties")
            extra_value = self._schema(extra, xpath, doc, f"{hint}-extra", depth + 1)
            xnode = seq(self._base("string"), Lit(":"), self._named(extra_value, f"{hint}-extra"))
            tail = rep(seq(Lit(","), xnode), elo, ehi)
            if not kvs:
                body = self._list(xnode, elo, ehi)
            elif not nullable:
                body = seq(body, tail)
            else:
                only_extra = seq(xnode, rep(seq(Lit(","), xnode), 0, ehi - 1)) if ehi else None
                with_listed = seq(body, rep(seq(Lit(","), xnode), 0, ehi))
                body = opt(alt(with_listed, only_extra) if only_extra else with_listed)
        elif nullable:
            body = opt(body)
        return seq(Lit("{"), body, Lit("}"))

    def _members(self, kvs: list[Node], reqs: list[bool], hint: str) -> Node:
        """Non-empty member lists in fixed order; optional members nest, they never chain."""
        n = len(kvs)
        if n == 0:
            return EMPTY
        nullable_from = [all(not r for r in reqs[i:]) for i in range(n)] + [True]
        tails: dict[int, Node] = {}
        heads: dict[int, Node] = {}

        def rest(i: int) -> Node:  # possibly empty, each member preceded by ","
            if i == n:
                return EMPTY
            return opt(tail(i)) if nullable_from[i] else tail(i)

        def tail(i: int) -> Node:  # non-empty, each member preceded by ","
            if i not in tails:
                with_i = seq(Lit(","), kvs[i], rest(i + 1))
                if reqs[i] or i + 1 == n:
                    tails[i] = with_i
                else:
                    tails[i] = self._rule(f"{hint}-tail{i}", alt(with_i, tail(i + 1)))
            return tails[i]

        def head(i: int) -> Node:  # non-empty, no leading ","
            if i not in heads:
                with_i = seq(kvs[i], rest(i + 1))
                if reqs[i] or i + 1 == n:
                    heads[i] = with_i
                else:
                    heads[i] = self._rule(f"{hint}-head{i}", alt(with_i, head(i + 1)))
            return heads[i]

        for i in range(n - 1, -1, -1):  # build from the end: shallow recursion
            tail(i)
        return head(0)

    def _array(self, s: dict, path: str, doc: SchemaDoc, hint: str, depth: int) -> Node:
        prefix = list(s.get("prefixItems", []))
        tail_schema = s.get("items", True)
        lo = self._bound(s, "minItems", path) or 0
        hi = self._bound(s, "maxItems", path)
        for i, p in enumerate(prefix):
            if p is False:
                hi = i if hi is None else min(hi, i)
                prefix = prefix[:i]
                break
        if tail_schema is False:
            hi = len(prefix) if hi is None else min(hi, len(prefix))
        if hi is None:
            hi = max(lo, len(prefix), self.array_cap)
            self._note(f"arrays without maxItems are capped at {hi} items", path)
        if lo > hi:
            raise GrammarError(
                "minItems cannot be met (maxItems, or items/prefixItems false, forbid it)",
                keyword="minItems",
                path=path,
            )
        if s.get("uniqueItems") is True:
            self._report("uniqueItems", path, "the grammar cannot compare items")
        prefix = prefix[:hi]
        nodes = [
            self._named(
                self._schema(p, jp(path, "prefixItems", i), doc, f"{hint}-{i}", depth + 1),
                f"{hint}-{i}",
            )
            for i, p in enumerate(prefix)
        ]
        tail: Node = EMPTY
        if hi > len(prefix):
            tail = self._named(
                self._schema(tail_schema, jp(path, "items"), doc, f"{hint}-item", depth + 1),
                f"{hint}-item",
            )

        body: Node = EMPTY
        if hi > len(prefix):
            k = len(prefix)
            rlo, rhi = max(0, lo - k), hi - k
            body = self._list(tail, rlo, rhi) if k == 0 else rep(seq(Lit(","), tail), rlo, rhi)
        for i in range(len(prefix) - 1, -1, -1):
            here = seq(Lit(",") if i else EMPTY, nodes[i], body)
            body = here if i < lo else opt(here)
        return seq(Lit("["), body, Lit("]"))
